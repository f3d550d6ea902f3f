"""Benchmarks by name: ``nb201:cifar10``, ``nb201:/path/to/table.csv``, ``nbgraph:cora``.

A spec is ``family:name``; each family has a loader, ``loader(name, data_dir)`` returning a
:class:`TabularBenchmark` built with its ``default_metric`` (what search selects by: a
validation metric) and ``report_metric`` (what is reported: a test metric, never used to select).
``name`` is ``""`` for a bare family (the loader picks its default dataset). New families are added
with :func:`register_benchmark`.

A ``+parts`` suffix adds hardware metrics of the benchmark's space (see
:func:`~nasforge.estimation.hardware.with_hardware`): ``nb201:cifar10+hw`` (every part),
``nb201:cifar10+latency+cost``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from nasforge.errors import NasforgeError, shorten
from nasforge.estimation.tabular import TabularBenchmark
from nasforge.params import built_by, register

#: a family's loader: ``loader(name, data_dir) -> TabularBenchmark`` (``name`` may be ``""``)
BenchmarkLoader = Callable[[str, "str | os.PathLike[str] | None"], TabularBenchmark]

_LOADERS: dict[str, BenchmarkLoader] = {}
_HELP: dict[str, str] = {}


def register_benchmark(family: str, loader: BenchmarkLoader, help: str = "", replace: bool = False) -> None:
    """Make ``load_benchmark("<family>:<name>")`` call ``loader(name, data_dir)``.

    ``loader`` returns a :class:`TabularBenchmark` constructed with its ``default_metric`` and
    ``report_metric``; ``help`` is a short description of the names it takes, shown in errors.
    Registering a family twice is an error unless ``replace``.
    """
    if not isinstance(family, str) or not family or ":" in family or "+" in family or family != family.strip():
        raise NasforgeError(f"a benchmark family is a non-empty name without ':' or '+', got {family!r}")
    if not callable(loader):
        raise NasforgeError(f"the loader of benchmark family {family!r} must be callable, got {loader!r}")
    if family in _LOADERS and not replace and _LOADERS[family] is not loader:
        raise NasforgeError(f"benchmark family {family!r} is already registered (pass replace=True to replace it)")
    _LOADERS[family] = loader
    _HELP[family] = help


def unregister_benchmark(family: str) -> None:
    """Remove a family added with :func:`register_benchmark` (no error when it is absent)."""
    _LOADERS.pop(family, None)
    _HELP.pop(family, None)


def benchmark_families() -> tuple[str, ...]:
    """The registered families, in registration order."""
    return tuple(_LOADERS)


def load_benchmark(spec: str, data_dir: str | os.PathLike[str] | None = None) -> TabularBenchmark:
    """A tabular benchmark from ``family:name`` (a bare family takes its default dataset).

    The result carries ``default_metric`` (what search selects by: a validation metric) and
    ``report_metric`` (what is reported: a test metric, never used to select). Its ``spec()``
    is this call (the benchmark's name and ``data_dir``), not the table's contents.
    """
    bench = _load(spec, data_dir)
    return built_by(bench, load_benchmark, spec=spec, data_dir=None if data_dir is None else os.fspath(data_dir))


def _families_help() -> str:
    return "; ".join(f"{f}:<dataset>" + (f" ({_HELP[f]})" if _HELP.get(f) else "") for f in _LOADERS)


def _load(spec: str, data_dir: str | os.PathLike[str] | None) -> TabularBenchmark:
    if not isinstance(spec, str):
        raise NasforgeError(f"a benchmark is named by a string 'family:name', got {shorten(spec)}")
    family, _, rest = spec.partition(":")
    loader = _LOADERS.get(family)
    if loader is None:
        raise NasforgeError(
            f"unknown benchmark {shorten(spec)}: no family {shorten(family)}; registered families: "
            f"{', '.join(_LOADERS) or 'none'}. Use {_families_help()}; append +hw (or +<part>, e.g. "
            "+latency, +pi5, +cost) for hardware metrics"
        )
    name, plus, parts = rest.partition("+")
    bench = loader(name, data_dir)
    if not isinstance(bench, TabularBenchmark):
        raise NasforgeError(f"the loader of benchmark family {family!r} returned {type(bench).__name__}, "
                            "not a TabularBenchmark")
    if plus:
        from nasforge.estimation.hardware import with_hardware

        bench = with_hardware(bench, None if parts == "hw" else parts.split("+"), data_dir=data_dir)
    return bench


# --- the built-in families ---------------------------------------------------------------------
def _load_nb201(name: str, data_dir: str | os.PathLike[str] | None) -> TabularBenchmark:
    from nasforge.estimation.nb201_table import load_nb201

    table = load_nb201(name or "cifar10", data_dir=data_dir)
    # the NB201 protocol: select by validation accuracy; report the test accuracy of the
    # 50k-image training run where the table has it (CIFAR-10), else the test accuracy
    report = "test_acc_full" if "test_acc_200_full" in table.columns else "test_acc"
    return table.derive(default_metric="valid_acc", report_metric=report)


def _load_nbgraph(name: str, data_dir: str | os.PathLike[str] | None) -> TabularBenchmark:
    from nasforge.estimation.nbgraph_table import load_nbgraph

    return load_nbgraph(name or "cora").derive(default_metric="valid_perf", report_metric="test_perf")


register_benchmark("nb201", _load_nb201, help="default cifar10; also a CSV path: nb201:/path/table.csv")
register_benchmark("nbgraph", _load_nbgraph, help="default cora")


def __getattr__(name: str) -> Any:
    if name == "FAMILIES":  # the registered families, as the old constant named them
        return benchmark_families()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


register(load_benchmark)
