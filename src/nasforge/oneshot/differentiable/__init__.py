"""Differentiable architecture search over any space's supernet: DARTS (first and second order),
GDAS, DrNAS, Λ-DARTS, iDARTS, transferability-encouraging DARTS and the latency-constrained
HardCoRe-NAS (with a soft-penalty baseline) behind one bilevel loop.

- :mod:`~nasforge.oneshot.differentiable.search`: the loop (:class:`DifferentiableSearch`,
  :func:`search`), checkpoints, the per-epoch log;
- :mod:`~nasforge.oneshot.differentiable.methods`: the methods (:data:`METHODS`);
- :mod:`~nasforge.oneshot.differentiable.hardcore`: HardCoRe-NAS and the latency-penalty baseline;
- :mod:`~nasforge.oneshot.differentiable.transfer`: transferability-encouraging DARTS;
- :mod:`~nasforge.oneshot.differentiable.core`: deriving the genotype, one-path mixtures, layer
  gradient correlation;
- :mod:`~nasforge.oneshot.differentiable.retrain`: training a found cell from scratch
  (:func:`retrain`), for spaces without a table (DARTS).
"""

from nasforge.oneshot.differentiable.core import OnePath, derive, layer_gradient_correlation, skip_count
from nasforge.oneshot.differentiable.methods import METHODS, Method, make_method
from nasforge.oneshot.differentiable.hardcore import HardCoRe, LatencyPenalty, min_latency, project, resolve_latency
from nasforge.oneshot.differentiable.transfer import TransferDarts, qrs_loss
from nasforge.oneshot.differentiable.search import SEARCH_DEFAULTS, DifferentiableSearch, SearchResult, search
from nasforge.oneshot.differentiable.retrain import load_retrain_data, retrain

__all__ = ["METHODS", "Method", "make_method", "SEARCH_DEFAULTS", "DifferentiableSearch", "SearchResult", "search",
           "OnePath", "derive", "layer_gradient_correlation", "skip_count", "HardCoRe", "LatencyPenalty",
           "min_latency", "project", "resolve_latency", "TransferDarts", "qrs_loss", "retrain", "load_retrain_data"]
