"""Performance estimation: how good is an architecture?"""

from nasforge.estimation.base import Estimator, Measurement
from nasforge.estimation.nb201_table import load_nb201
from nasforge.estimation.tabular import TabularBenchmark

__all__ = ["Estimator", "Measurement", "TabularBenchmark", "load_nb201"]
