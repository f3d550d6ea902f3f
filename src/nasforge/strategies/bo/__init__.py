"""Model-based search: GP Bayesian optimisation with architecture kernels, batch BO, BANANAS.

Everything reads architectures through the space's graph view (``space.graph``), so the
strategies run on any space that provides it (NB201, NAS-Bench-Graph).
"""

from nasforge.strategies.bo.acquisition import ACQUISITIONS, expected_improvement, thompson_sample, upper_confidence_bound
from nasforge.strategies.bo.bananas import Bananas
from nasforge.strategies.bo.batch import BATCH_METHODS, kdpp_quality, kriging_believer, random_batch, sample_kdpp
from nasforge.strategies.bo.encodings import AdjacencyEncoder, PathEncoder, encode
from nasforge.strategies.bo.gp import GaussianProcess, robust_cholesky
from nasforge.strategies.bo.kernels import KERNELS, ArchKernel, KernelCache, get_kernel
from nasforge.strategies.bo.predictors import BananasPredictor, GPKernelPredictor
from nasforge.strategies.bo.strategy import GPBayesOpt

__all__ = ["GPBayesOpt", "Bananas", "GaussianProcess", "robust_cholesky", "ArchKernel", "KernelCache", "get_kernel",
           "KERNELS", "ACQUISITIONS", "BATCH_METHODS", "expected_improvement", "upper_confidence_bound",
           "thompson_sample", "kdpp_quality", "kriging_believer", "random_batch", "sample_kdpp", "PathEncoder",
           "AdjacencyEncoder", "encode", "GPKernelPredictor", "BananasPredictor"]
