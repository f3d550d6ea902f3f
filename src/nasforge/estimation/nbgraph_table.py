"""NAS-Bench-Graph tables, read from the ``light`` benchmark files of the ``nas_bench_graph`` package.

Each file maps the package's architecture key (``Arch(links, ops).valid_hash()``) to the mean
results of the paper's training protocol. Columns here:

``valid_perf``, ``test_perf``
    validation and test performance as fractions (accuracy; ROC-AUC on ``proteins``),
``latency``
    inference time in seconds, as stored,
``params``
    parameter count in millions, as stored.

The light files hold no training time, so a query's simulated cost is 1 (one evaluation).
"""

from __future__ import annotations

import pickle
from importlib import resources
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError, unknown
from nasforge.estimation.tabular import TabularBenchmark
from nasforge.spaces.nbgraph import NBGraphSpace

#: the datasets of the benchmark, in the paper's order
NBGRAPH_DATASETS: tuple[str, ...] = (
    "cora",
    "citeseer",
    "pubmed",
    "cs",
    "physics",
    "photo",
    "computers",
    "arxiv",
    "proteins",
)

# (stored field, column name)
_FIELDS = (("valid_perf", "valid_perf"), ("perf", "test_perf"), ("latency", "latency"), ("para", "params"))


def _read_light(dataset: str) -> dict[int, dict[str, Any]]:
    path = resources.files("nas_bench_graph").joinpath("light", f"{dataset}.bench")
    try:
        with path.open("rb") as f:
            data = pickle.load(f)
    except FileNotFoundError:
        raise NasforgeError(f"NAS-Bench-Graph file for {dataset!r} not found: {path}") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt pickle raises many types
        raise NasforgeError(f"cannot read NAS-Bench-Graph file {path}: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise NasforgeError(f"NAS-Bench-Graph file {path} does not hold a table (found {type(data).__name__})")
    return data


def load_nbgraph(dataset: str = "cora") -> TabularBenchmark:
    """The NAS-Bench-Graph table of ``dataset`` (one of :data:`NBGRAPH_DATASETS`).

    The space is ``NBGraphSpace("proteins")`` for ``proteins`` and ``NBGraphSpace("full")``
    otherwise; rows follow the space's iteration order, and any architecture (string, pair or
    equivalent wiring) is looked up through its benchmark key. The benchmark is named
    ``nbgraph:<dataset>``.
    """
    if not isinstance(dataset, str) or dataset.lower() not in NBGRAPH_DATASETS:
        raise unknown("NAS-Bench-Graph dataset", dataset, NBGRAPH_DATASETS)
    dataset = dataset.lower()
    space = NBGraphSpace("proteins" if dataset == "proteins" else "full")
    raw = _read_light(dataset)
    archs = list(space)
    keys = [space.canonical_key(a) for a in archs]
    missing = [a for a, k in zip(archs, keys) if k not in raw]
    extra = set(raw).difference(keys)
    if missing or extra:
        raise NasforgeError(
            f"NAS-Bench-Graph table {dataset!r} does not match the space ({len(space)} architectures, "
            f"{len(raw)} entries): {len(missing)} architecture(s) missing"
            + (f" (e.g. {missing[0]})" if missing else "")
            + f", {len(extra)} unknown key(s)"
            + (f" (e.g. {min(extra)})" if extra else "")
        )
    columns: dict[str, np.ndarray] = {}
    for field, column in _FIELDS:
        try:
            columns[column] = np.fromiter((raw[k][field] for k in keys), dtype=float, count=len(keys))
        except (KeyError, TypeError, ValueError) as exc:
            raise NasforgeError(f"NAS-Bench-Graph table {dataset!r}: bad or missing field {field!r} ({exc})") from None
    return TabularBenchmark(space, archs, columns, name=f"nbgraph:{dataset}", key=space.canonical_key)
