"""Benchmarks by name: ``nb201:cifar10``, ``nb201:/path/to/table.csv``, ``nbgraph:cora``."""

from __future__ import annotations

import os

from nasforge.errors import NasforgeError
from nasforge.estimation.tabular import TabularBenchmark
from nasforge.params import built_by, register

FAMILIES = ("nb201", "nbgraph")


def load_benchmark(spec: str, data_dir: str | os.PathLike[str] | None = None) -> TabularBenchmark:
    """A tabular benchmark from ``family:name`` (a bare family takes its default dataset).

    The result carries ``default_metric`` (what search selects by: a validation metric) and
    ``report_metric`` (what is reported: a test metric, never used to select). Its ``spec()``
    is this call (the benchmark's name and ``data_dir``), not the table's contents.
    """
    bench = _load(spec, data_dir)
    return built_by(bench, load_benchmark, spec=spec, data_dir=None if data_dir is None else os.fspath(data_dir))


def _load(spec: str, data_dir: str | os.PathLike[str] | None) -> TabularBenchmark:
    family, _, name = spec.partition(":")
    if family == "nb201":
        from nasforge.estimation.nb201_table import load_nb201

        name, plus, parts = (name or "cifar10").partition("+")  # nb201:cifar10+hw: with device metrics
        bench = load_nb201(name or "cifar10", data_dir=data_dir)
        # the NB201 protocol: select by validation accuracy; report the test accuracy of the
        # 50k-image training run where the table has it (CIFAR-10), else the test accuracy
        bench.default_metric = "valid_acc"
        bench.report_metric = "test_acc_full" if "test_acc_200_full" in bench.columns else "test_acc"
        if plus:
            from nasforge.estimation.hardware import HARDWARE_PARTS, with_hardware

            bench = with_hardware(bench, HARDWARE_PARTS if parts == "hw" else parts.split("+"), data_dir=data_dir)
        return bench
    if family == "nbgraph":
        from nasforge.estimation.nbgraph_table import load_nbgraph

        bench = load_nbgraph(name or "cora")
        bench.default_metric = "valid_perf"
        bench.report_metric = "test_perf"
        return bench
    raise NasforgeError(
        f"unknown benchmark {spec!r}; use one of {', '.join(f + ':<dataset>' for f in FAMILIES)} "
        "(nb201 also takes a CSV path: nb201:/path/table.csv, and device metrics: nb201:cifar10+hw, "
        "or any of +latency, +pi5, +cost)"
    )


register(load_benchmark)
