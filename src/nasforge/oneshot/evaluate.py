"""Inherited-weight evaluation of supernet paths, and the supernet as an :class:`Estimator`.

Single-path training leaves BatchNorm running statistics that belong to no particular path (and
the operations a path did not use keep stale ones), so scoring a cell with them is misleading.
Before scoring each architecture, :func:`recalibrate_bn` resets every BatchNorm layer and
re-estimates its statistics as an exact average (``momentum=None``) over a fixed set of
training batches run through that path in training mode, without gradients (SPOS's recipe).
The default is **4 batches of 128 training images** (512 images, no augmentation), the same
images for every architecture; :class:`PathEvaluator` takes other counts.

The architecture is then scored on held-back images (the dataset's validation split, never
trained on): accuracy (%) and mean cross-entropy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.data import Dataset
from nasforge.errors import NasforgeError
from nasforge.estimation.base import Estimator, Measurement
from nasforge.estimation.training import arch_seed
from nasforge.spaces.supernet import Supernet, SupernetLayout, default_layout

__all__ = ["recalibrate_bn", "evaluate_path", "PathEvaluator", "SupernetEstimator", "BN_BATCHES", "BN_BATCH_SIZE",
           "sample_archs", "ENUMERATE_LIMIT"]

BN_BATCHES = 4
BN_BATCH_SIZE = 128


@torch.no_grad()
def recalibrate_bn(model: Supernet, arch: Any, batches: Sequence[Tensor]) -> None:
    """Reset every BatchNorm layer's running statistics and re-estimate them on ``batches``
    through the path ``arch`` (cumulative average over all batches). Leaves the model in eval
    mode. Only layers on the path receive statistics; the others stay reset."""
    if not batches:
        raise NasforgeError("BatchNorm recalibration needs at least one batch")
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # exact cumulative average
    model.train()
    try:
        for xb in batches:
            model(xb, arch)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.eval()


@torch.no_grad()
def evaluate_path(model: Supernet, arch: Any, x: Tensor, y: Tensor, batch_size: int = 500) -> tuple[float, float]:
    """(accuracy %, mean cross-entropy) of the path ``arch`` on ``x``/``y`` in eval mode."""
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(y), batch_size):
        out = model(x[i: i + batch_size], arch)
        loss += float(F.cross_entropy(out, y[i: i + batch_size], reduction="sum"))
        correct += int((out.argmax(1) == y[i: i + batch_size]).sum())
    n = max(1, len(y))
    return 100.0 * correct / n, loss / n


def _route(supernets: Any, arch: Any) -> Supernet:
    if hasattr(supernets, "supernet_for"):
        return supernets.supernet_for(arch)
    raise NasforgeError(f"expected a Supernet or a SplitSupernet, got {type(supernets).__name__}")


def _layout(supernets: Any) -> SupernetLayout:
    layout = getattr(supernets, "layout", None)
    if not isinstance(layout, SupernetLayout):
        raise NasforgeError(f"expected a Supernet or a SplitSupernet, got {type(supernets).__name__}")
    return layout


class PathEvaluator:
    """Scores architectures with inherited weights: BN recalibration, then held-back accuracy.

    ``supernets``: a :class:`~nasforge.spaces.supernet.Supernet` of any space or a
    :class:`~nasforge.oneshot.fewshot.SplitSupernet`
    (each architecture is scored by the sub-supernet that holds it). Calibration: ``bn_batches``
    batches of ``bn_batch_size`` training images drawn once (seeded), without augmentation.
    Scoring: the first ``n_eval`` images (all by default) of ``split`` (``"valid"``; ``"test"``
    only for reporting).
    """

    def __init__(self, supernets: Any, dataset: Dataset, bn_batches: int = BN_BATCHES,
                 bn_batch_size: int = BN_BATCH_SIZE, n_eval: int | None = None, split: str = "valid",
                 seed: int = 0, eval_batch_size: int = 500) -> None:
        if split not in ("valid", "test"):
            raise NasforgeError(f"unknown split {split!r}; allowed: valid, test")
        if bn_batches < 1 or bn_batch_size < 1:
            raise NasforgeError(f"bn_batches and bn_batch_size must be >= 1, got {bn_batches}, {bn_batch_size}")
        self.supernets, self.dataset = supernets, dataset
        self.layout = _layout(supernets)
        self.bn_batches, self.bn_batch_size, self.split, self.seed = int(bn_batches), int(bn_batch_size), split, seed
        x_tr = torch.from_numpy(dataset.x_train)
        need = self.bn_batches * self.bn_batch_size
        if need > len(x_tr):
            raise NasforgeError(f"BN calibration needs {need} images; the training split has {len(x_tr)}")
        g = torch.Generator().manual_seed(arch_seed(seed, "bn-calibration"))
        perm = torch.randperm(len(x_tr), generator=g)[:need]
        self.calib = [x_tr[perm[i: i + self.bn_batch_size]] for i in range(0, need, self.bn_batch_size)]
        x, y = (dataset.x_val, dataset.y_val) if split == "valid" else (dataset.x_test, dataset.y_test)
        if len(y) == 0:
            raise NasforgeError(f"dataset {dataset.name!r} has an empty {split} split")
        n = len(y) if n_eval is None else int(n_eval)
        if not 1 <= n <= len(y):
            raise NasforgeError(f"n_eval must lie in 1..{len(y)} ({split} images), got {n_eval}")
        self.x, self.y = torch.from_numpy(x[:n]), torch.from_numpy(y[:n])
        self.eval_batch_size = int(eval_batch_size)

    def score(self, arch: Any) -> dict[str, float]:
        """``acc`` (%), ``loss`` and ``seconds`` for one architecture."""
        t0 = time.perf_counter()
        idx = self.layout.coerce_indices(arch)
        model = _route(self.supernets, idx)
        recalibrate_bn(model, idx, self.calib)
        acc, loss = evaluate_path(model, idx, self.x, self.y, self.eval_batch_size)
        return {"acc": acc, "loss": loss, "seconds": time.perf_counter() - t0}

    def settings(self) -> dict[str, Any]:
        return {"bn_batches": self.bn_batches, "bn_batch_size": self.bn_batch_size, "n_eval": len(self.y),
                "split": self.split, "seed": self.seed}


class SupernetEstimator(Estimator):
    """A trained supernet (or split supernet) as an estimator any strategy can search with.

    ``estimate(arch)`` recalibrates BatchNorm on the path and measures it on held-back images
    (see :class:`PathEvaluator`): metrics ``valid_acc`` (%) and ``valid_loss`` (``test_*`` when
    ``split="test"``), cost = seconds of the evaluation. There is a single fidelity (``None``).
    ``threads`` sets ``torch.set_num_threads`` when given.
    """

    fidelities = None

    def __init__(self, supernets: Any, dataset: Dataset, bn_batches: int = BN_BATCHES,
                 bn_batch_size: int = BN_BATCH_SIZE, n_eval: int | None = None, split: str = "valid",
                 seed: int = 0, threads: int | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.evaluator = PathEvaluator(supernets, dataset, bn_batches, bn_batch_size, n_eval, split, seed)
        self.prefix = "valid" if split == "valid" else "test"

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        if fidelity is not None:
            raise NasforgeError(f"a supernet estimator has a single fidelity (None), got {fidelity!r}")
        layout = self.evaluator.layout
        idx = layout.coerce_indices(arch)
        r = self.evaluator.score(idx)
        metrics = {f"{self.prefix}_acc": r["acc"], f"{self.prefix}_loss": r["loss"]}
        return Measurement(metrics, r["seconds"], None, {"arch": layout.space.format(layout.arch(idx))})

    @property
    def metric_names(self) -> list[str]:
        return [f"{self.prefix}_acc", f"{self.prefix}_loss"]

    def __repr__(self) -> str:
        s = self.evaluator.settings()
        return (f"SupernetEstimator(bn={s['bn_batches']}x{s['bn_batch_size']}, n_eval={s['n_eval']} "
                f"{s['split']} images)")


#: spaces (or restricted supernets) up to this many architectures are sampled by enumeration
ENUMERATE_LIMIT = 200_000


def sample_archs(n: int, seed: int = 0, within: Any = None) -> list[Any]:
    """``n`` distinct random architectures (seeded) of the space of ``within`` (a supernet or a
    split supernet; default: the default space), only those a restricted supernet holds.

    Up to :data:`ENUMERATE_LIMIT` architectures, ``n`` of the enumerated list are picked without
    replacement; larger spaces (DARTS) are drawn uniformly by the layout, repeats skipped."""
    layout = default_layout() if within is None else _layout(within)
    mask = getattr(within, "allowed", None)
    mask = layout.mask(mask) if mask is not None else layout.mask(None)
    total = layout.count(mask)
    if not 1 <= n <= total:
        raise NasforgeError(f"cannot sample {n} distinct architectures from {total}")
    rng = np.random.default_rng(seed)
    if total <= ENUMERATE_LIMIT:
        pool = list(layout.iter_indices(mask))
        pick = rng.choice(len(pool), size=n, replace=False)
        return [layout.arch(pool[int(i)]) for i in pick]
    p = layout.uniform(mask)
    seen: dict[tuple[int, ...], None] = {}
    while len(seen) < n:
        seen.setdefault(layout.draw(p, rng))
    return [layout.arch(idx) for idx in seen]
