"""One-shot NAS: methods that search inside one trained weight-sharing network, on any space.

A space offers a supernet through the protocol of :mod:`nasforge.spaces.supernet`
(``space.supernet_layout()`` / ``space.supernet(**net)``): decision points ("edges") with candidate
operations, architectures as per-edge operation indices, an allowed mask, a one-path forward
``model(x, arch)`` and a weighted forward ``model(x, weights=w)``. Everything here programs
against that protocol only:

- :mod:`~nasforge.oneshot.samplers`: path samplers (SPOS uniform, FairNAS, PA&DA) that shape
  per-edge probabilities while the space draws valid architectures;
- :mod:`~nasforge.oneshot.train`: the single-path training loop with resumable checkpoints
  (:func:`build_supernet` sizes a space's supernet for a dataset);
- :mod:`~nasforge.oneshot.evaluate`: inherited-weight evaluation (BatchNorm recalibrated) and
  :class:`SupernetEstimator`;
- :mod:`~nasforge.oneshot.fewshot`: few-shot sub-supernets, NAS-LID and gradient-matching splits;
- :mod:`~nasforge.oneshot.run`: the run protocol behind ``nasforge supernet`` and the supernet
  benchmark (train a root supernet and its splits into a run folder, load it, rank, estimate).

``NB201Supernet`` (and :mod:`nasforge.oneshot.supernet`'s helpers) stay importable from here for
earlier code; the supernets themselves live in :mod:`nasforge.spaces`.
"""

from typing import Any

from nasforge.oneshot.evaluate import PathEvaluator, SupernetEstimator, recalibrate_bn, sample_archs
from nasforge.oneshot.fewshot import SplitSupernet, choose_split, grow_splits, lid_mle, split_supernet
from nasforge.oneshot.samplers import FairSampler, PADASampler, PathSampler, UniformSampler, make_sampler
from nasforge.oneshot.train import SupernetTrainer, build_supernet, downsample
from nasforge.spaces.supernet import Supernet, SupernetLayout

__all__ = ["Supernet", "SupernetLayout", "NB201Supernet", "PathSampler", "UniformSampler", "FairSampler",
           "PADASampler", "make_sampler", "SupernetTrainer", "build_supernet", "downsample", "PathEvaluator",
           "SupernetEstimator", "recalibrate_bn", "sample_archs", "SplitSupernet", "split_supernet", "choose_split",
           "grow_splits", "lid_mle"]


def __getattr__(name: str) -> Any:
    if name == "NB201Supernet":  # the default space's supernet, from before spaces owned supernets
        from nasforge.oneshot import supernet

        return supernet.NB201Supernet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
