"""GeNAS's flatness of a trained network's minimum (Jeong et al., "GeNAS: Neural Architecture
Search with Better Generalization", IJCAI 2023).

Every parameter is perturbed with Gaussian noise of growing standard deviation ``sigma_1 <
sigma_2 < ...`` (GeNAS: 0.01, 0.015, ..., 0.05; the noise is added cumulatively, drawing the
difference ``sigma_{j+1} - sigma_j`` at each level, as the reference code does), and the mean
cross-entropy ``L_j`` of the perturbed network on held-out data is measured at each level. The
"poor minimum" measure is the summed slope of the loss along the levels,

    P = |L_1 / sigma_1| + sum_j |(L_{j+1} - L_j) / (sigma_{j+1} - sigma_j)|

(the first term takes the loss at no noise as 0, as the reference code does), and the flatness is
``1 / (P + 1e-5)``: higher means a wider, flatter minimum. The network runs in eval mode with the
BatchNorm statistics it was trained with; the noise is drawn from a seeded generator, so the same
network and seed give the same value.

On supernet weights (GeNAS's search, :class:`~nasforge.oneshot.evaluate.PathEvaluator` with
``flatness=True``) the reference search uses much smaller levels, :data:`GENAS_SUPERNET_STDS`
(0.001, 0.003, 0.006), after recalibrating the path's BatchNorm statistics, and combines the
measure with the path's validation accuracy ``a`` (a fraction) as

    a + gamma * flatness / sigma_1                      (:func:`genas_combined`)

(the reference code's ``acc + wlm_weight * (1 / stds[0]) * wlm``). Since ``sigma_1 * P`` is
close to the unperturbed loss for small levels, ``flatness / sigma_1`` is of the order of one over
the validation loss, so ``gamma`` near 1 weighs the two terms about equally.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.errors import NasforgeError

__all__ = ["GENAS_STDS", "GENAS_SUPERNET_STDS", "genas_flatness", "genas_combined", "poor_minimum", "check_stds"]

#: the perturbation levels of the GeNAS reference code
GENAS_STDS: tuple[float, ...] = (0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05)
#: the levels of the reference search on supernet weights
GENAS_SUPERNET_STDS: tuple[float, ...] = (0.001, 0.003, 0.006)


def check_stds(stds: Sequence[float]) -> list[float]:
    """``stds`` as floats; an error unless they are positive and strictly increasing."""
    try:
        out = [float(s) for s in stds]
    except (TypeError, ValueError):
        raise NasforgeError(f"bad noise levels {stds!r}: expected numbers") from None
    if not out or out[0] <= 0 or any(b <= a for a, b in zip(out, out[1:])) or not all(map(math.isfinite, out)):
        raise NasforgeError(f"bad noise levels {out}: expected positive, strictly increasing standard deviations")
    return out


def genas_combined(acc: float, flatness: float, stds: Sequence[float] = GENAS_SUPERNET_STDS,
                   weight: float = 1.0) -> float:
    """GeNAS's accuracy + flatness score ``acc + weight * flatness / stds[0]``; ``acc`` is a
    fraction in [0, 1] (divide a percentage by 100)."""
    return float(acc) + float(weight) * float(flatness) / check_stds(stds)[0]


def poor_minimum(losses: Sequence[float], stds: Sequence[float]) -> float:
    """GeNAS's summed loss slope ``P`` for losses measured at increasing noise levels ``stds``."""
    if len(losses) != len(stds) or not losses:
        raise NasforgeError(f"need one loss per noise level; got {len(losses)} losses for {len(stds)} levels")
    p = abs(losses[0] / stds[0])
    for j in range(len(losses) - 1):
        p += abs((losses[j + 1] - losses[j]) / (stds[j + 1] - stds[j]))
    return float(p)


@torch.no_grad()
def _mean_loss(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> float:
    total = 0.0
    for i in range(0, len(y), batch_size):
        total += float(F.cross_entropy(model(x[i: i + batch_size]), y[i: i + batch_size], reduction="sum"))
    return total / max(1, len(y))


@torch.no_grad()
def genas_flatness(model: nn.Module, inputs: Tensor, targets: Tensor, stds: Sequence[float] = GENAS_STDS,
                   seed: int = 0, batch_size: int = 1024) -> tuple[float, list[float]]:
    """``(flatness, losses per noise level)`` of ``model`` on ``(inputs, targets)``; ``model`` is
    left unchanged (a copy is perturbed)."""
    stds = check_stds(stds)
    net = copy.deepcopy(model)
    net.eval()
    gen = torch.Generator().manual_seed(int(seed))
    losses: list[float] = []
    prev = 0.0
    for s in stds:
        step = s - prev
        prev = s
        for p in net.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.dtype)
            p.add_(noise, alpha=step)
        losses.append(_mean_loss(net, inputs, targets, batch_size))
    return 1.0 / (poor_minimum(losses, stds) + 1e-5), losses
