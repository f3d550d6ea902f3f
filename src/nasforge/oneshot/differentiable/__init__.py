"""Differentiable architecture search over any space's supernet: DARTS (first and second order),
GDAS, DrNAS, Λ-DARTS and iDARTS behind one bilevel loop.

- :mod:`~nasforge.oneshot.differentiable.search`: the loop (:class:`DifferentiableSearch`,
  :func:`search`), checkpoints, the per-epoch log;
- :mod:`~nasforge.oneshot.differentiable.methods`: the methods (:data:`METHODS`);
- :mod:`~nasforge.oneshot.differentiable.core`: deriving the genotype, one-path mixtures, layer
  gradient correlation.
"""

from nasforge.oneshot.differentiable.core import OnePath, derive, layer_gradient_correlation, skip_count
from nasforge.oneshot.differentiable.methods import METHODS, Method, make_method
from nasforge.oneshot.differentiable.search import SEARCH_DEFAULTS, DifferentiableSearch, SearchResult, search

__all__ = ["METHODS", "Method", "make_method", "SEARCH_DEFAULTS", "DifferentiableSearch", "SearchResult", "search",
           "OnePath", "derive", "layer_gradient_correlation", "skip_count"]
