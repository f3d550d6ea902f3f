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

With ``flatness=True`` the path is also scored by GeNAS's flatness of the inherited weights
(Jeong et al., IJCAI 2023; :func:`nasforge.estimation.flatness.genas_flatness`): after the same
BatchNorm recalibration, a copy of the supernet has every weight perturbed with Gaussian noise of
growing standard deviation (default :data:`~nasforge.estimation.flatness.GENAS_SUPERNET_STDS`,
0.001, 0.003, 0.006, as the reference search), the cross-entropy of the path on the same held-back
images is read at each level, and ``flatness = 1 / (P + 1e-5)`` from the summed loss slope ``P``.
The noise comes from one seeded generator (the same draws for every architecture). The
:class:`SupernetEstimator` searches by accuracy, flatness or GeNAS's combination
``acc / 100 + gamma * flatness / sigma_1`` (``score="acc"``, ``"flatness"``, ``"acc+flatness"``).
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
from nasforge.estimation.flatness import GENAS_SUPERNET_STDS, check_stds, genas_combined, genas_flatness
from nasforge.estimation.training import arch_seed
from nasforge.spaces.supernet import Supernet, SupernetLayout, default_layout

__all__ = ["recalibrate_bn", "evaluate_path", "PathEvaluator", "SupernetEstimator", "BN_BATCHES", "BN_BATCH_SIZE",
           "sample_archs", "ENUMERATE_LIMIT", "SCORES", "PathNet"]

BN_BATCHES = 4
BN_BATCH_SIZE = 128
#: what a supernet estimator can search by
SCORES = ("acc", "flatness", "acc+flatness")


class PathNet(nn.Module):
    """One path of a supernet as a plain module: ``forward(x) = supernet(x, arch)`` (shares the
    supernet's weights)."""

    def __init__(self, supernet: Supernet, arch: Any) -> None:
        super().__init__()
        self.supernet, self.arch = supernet, arch

    def forward(self, x: Tensor) -> Tensor:
        return self.supernet(x, self.arch)


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
    only for reporting). ``flatness``: also GeNAS's flatness of the inherited weights on the same
    images, at noise levels ``stds`` (see the module docstring); the noise is seeded from ``seed``.
    """

    def __init__(self, supernets: Any, dataset: Dataset, bn_batches: int = BN_BATCHES,
                 bn_batch_size: int = BN_BATCH_SIZE, n_eval: int | None = None, split: str = "valid",
                 seed: int = 0, eval_batch_size: int = 500, flatness: bool = False,
                 stds: Sequence[float] = GENAS_SUPERNET_STDS) -> None:
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
        self.flatness = bool(flatness)
        self.stds = tuple(check_stds(stds))
        self.noise_seed = arch_seed(seed, "genas-flatness")

    def score(self, arch: Any) -> dict[str, Any]:
        """``acc`` (%), ``loss`` and ``seconds`` for one architecture; with flatness also
        ``flatness`` and ``flat_losses`` (the loss at each noise level)."""
        t0 = time.perf_counter()
        idx = self.layout.coerce_indices(arch)
        model = _route(self.supernets, idx)
        recalibrate_bn(model, idx, self.calib)
        acc, loss = evaluate_path(model, idx, self.x, self.y, self.eval_batch_size)
        out: dict[str, Any] = {"acc": acc, "loss": loss}
        if self.flatness:
            flat, losses = genas_flatness(PathNet(model, idx), self.x, self.y, self.stds, seed=self.noise_seed,
                                          batch_size=self.eval_batch_size)
            out.update(flatness=flat, flat_losses=losses)
        out["seconds"] = time.perf_counter() - t0
        return out

    def settings(self) -> dict[str, Any]:
        out = {"bn_batches": self.bn_batches, "bn_batch_size": self.bn_batch_size, "n_eval": len(self.y),
               "split": self.split, "seed": self.seed}
        if self.flatness:
            out["stds"] = list(self.stds)
        return out


class SupernetEstimator(Estimator):
    """A trained supernet (or split supernet) as an estimator any strategy can search with.

    ``estimate(arch)`` recalibrates BatchNorm on the path and measures it on held-back images
    (see :class:`PathEvaluator`): metrics ``valid_acc`` (%) and ``valid_loss`` (``test_*`` when
    ``split="test"``), cost = seconds of the evaluation. There is a single fidelity (``None``).
    ``threads`` sets ``torch.set_num_threads`` when given.

    ``score`` (one of :data:`SCORES`) names what a search should maximise, :attr:`objective`:
    ``"acc"`` (``valid_acc``), ``"flatness"`` (``valid_flatness``, GeNAS's flatness of the inherited
    weights at noise levels ``stds``) or ``"acc+flatness"`` (``valid_genas`` = ``valid_acc / 100 +
    flat_weight * valid_flatness / stds[0]``, GeNAS's combination). The flatness metrics are
    measured only when the score needs them.
    """

    fidelities = None

    def __init__(self, supernets: Any, dataset: Dataset, bn_batches: int = BN_BATCHES,
                 bn_batch_size: int = BN_BATCH_SIZE, n_eval: int | None = None, split: str = "valid",
                 seed: int = 0, threads: int | None = None, score: str = "acc",
                 stds: Sequence[float] = GENAS_SUPERNET_STDS, flat_weight: float = 1.0) -> None:
        if score not in SCORES:
            raise NasforgeError(f"unknown supernet score {score!r}; allowed: {', '.join(SCORES)}")
        if isinstance(flat_weight, bool) or not isinstance(flat_weight, (int, float)) or not (
                np.isfinite(flat_weight) and flat_weight >= 0):
            raise NasforgeError(f"bad flat_weight {flat_weight!r}: expected a finite number >= 0")
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.score, self.flat_weight = score, float(flat_weight)
        self.evaluator = PathEvaluator(supernets, dataset, bn_batches, bn_batch_size, n_eval, split, seed,
                                       flatness=score != "acc", stds=stds)
        self.prefix = "valid" if split == "valid" else "test"

    @property
    def objective(self) -> str:
        """The metric a search by :attr:`score` maximises."""
        return f"{self.prefix}_" + {"acc": "acc", "flatness": "flatness", "acc+flatness": "genas"}[self.score]

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        if fidelity is not None:
            raise NasforgeError(f"a supernet estimator has a single fidelity (None), got {fidelity!r}")
        layout = self.evaluator.layout
        idx = layout.coerce_indices(arch)
        r = self.evaluator.score(idx)
        p = self.prefix
        metrics = {f"{p}_acc": r["acc"], f"{p}_loss": r["loss"]}
        if self.evaluator.flatness:
            metrics[f"{p}_flatness"] = r["flatness"]
            metrics[f"{p}_genas"] = genas_combined(r["acc"] / 100.0, r["flatness"], self.evaluator.stds,
                                                   self.flat_weight)
        return Measurement(metrics, r["seconds"], None, {"arch": layout.space.format(layout.arch(idx))})

    @property
    def metric_names(self) -> list[str]:
        names = [f"{self.prefix}_acc", f"{self.prefix}_loss"]
        if self.evaluator.flatness:
            names += [f"{self.prefix}_flatness", f"{self.prefix}_genas"]
        return names

    def __repr__(self) -> str:
        s = self.evaluator.settings()
        extra = "" if self.score == "acc" else (f", score={self.score}, stds={s['stds']}"
                                                + (f", flat_weight={self.flat_weight:g}" if self.score != "flatness" else ""))
        return (f"SupernetEstimator(bn={s['bn_batches']}x{s['bn_batch_size']}, n_eval={s['n_eval']} "
                f"{s['split']} images{extra})")


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
