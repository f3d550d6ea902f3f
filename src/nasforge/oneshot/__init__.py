"""One-shot NAS: methods that search inside one trained weight-sharing network.

- :mod:`~nasforge.oneshot.supernet`: the NB201 supernet (one path or a weighted mixture);
- :mod:`~nasforge.oneshot.samplers`: path samplers (SPOS uniform, FairNAS, PA&DA);
- :mod:`~nasforge.oneshot.train`: the single-path training loop with resumable checkpoints;
- :mod:`~nasforge.oneshot.evaluate`: inherited-weight evaluation (BatchNorm recalibrated) and
  :class:`SupernetEstimator`;
- :mod:`~nasforge.oneshot.fewshot`: few-shot sub-supernets, NAS-LID and gradient-matching splits.
"""

from nasforge.oneshot.evaluate import PathEvaluator, SupernetEstimator, recalibrate_bn, sample_archs
from nasforge.oneshot.fewshot import SplitSupernet, choose_split, grow_splits, lid_mle, split_supernet
from nasforge.oneshot.samplers import FairSampler, PADASampler, PathSampler, UniformSampler, make_sampler
from nasforge.oneshot.supernet import NB201Supernet
from nasforge.oneshot.train import SupernetTrainer, build_supernet, downsample

__all__ = ["NB201Supernet", "PathSampler", "UniformSampler", "FairSampler", "PADASampler", "make_sampler",
           "SupernetTrainer", "build_supernet", "downsample", "PathEvaluator", "SupernetEstimator",
           "recalibrate_bn", "sample_archs", "SplitSupernet", "split_supernet", "choose_split", "grow_splits",
           "lid_mle"]
