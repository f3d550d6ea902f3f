"""Performance estimation: how good is an architecture?"""

from nasforge.estimation.base import Estimator, Measurement
from nasforge.estimation.nb201_table import load_nb201
from nasforge.estimation.registry import load_benchmark
from nasforge.estimation.tabular import TabularBenchmark

__all__ = ["Estimator", "Measurement", "TabularBenchmark", "load_nb201", "load_benchmark",
           "load_nbgraph", "NBGRAPH_DATASETS"]

# NAS-Bench-Graph needs the nas_bench_graph package: its loader is imported on first use only
_LAZY = ("load_nbgraph", "NBGRAPH_DATASETS")


def __getattr__(name: str) -> object:
    if name == "ProxyEstimator":  # zero-cost proxies need torch: imported on first use only
        from nasforge.estimation.proxies import ProxyEstimator

        return ProxyEstimator
    if name in _LAZY:
        from nasforge.estimation import nbgraph_table

        return getattr(nbgraph_table, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
