"""Nero: per-neuron normalised updates on balanced networks (Liu et al., "Learning by Turning:
Neural Architecture Aware Optimisation", ICML 2021).

A *neuron* is one row of a weight tensor (one output unit: ``w[i]`` flattened over its inputs).
Nero keeps every neuron of a matrix or convolution *balanced*: zero mean and unit norm over its
inputs (projected once when the parameter is first updated, and after every step), so an update
can only turn the neuron. Each step moves neuron ``i`` by ``lr * scale * g_i / sqrt(v_i)``, where
``v_i`` is a bias-corrected running average (rate ``beta``) of the squared norm of that neuron's
gradient: every neuron turns by about the same angle whatever the scale of its gradient, which is
why one learning rate (0.01) works across architectures without tuning.

Vectors (biases, BatchNorm gains and shifts) have one "neuron" per entry, are not projected,
and are scaled by the mean absolute value of the vector when first updated (``0.01`` where that is
zero, as for a zero-initialised bias). There is no weight decay: the constraints fix the norm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from nasforge.errors import NasforgeError

__all__ = ["Nero", "neuron_norm", "neuron_mean"]


def _rows(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def _shape(x: Tensor) -> tuple[int, ...]:
    return (x.shape[0],) + (1,) * (x.dim() - 1)


def neuron_norm(x: Tensor) -> Tensor:
    """The L2 norm of each neuron (row) of ``x``, broadcastable against ``x``; ``|x|`` for a vector."""
    if x.dim() <= 1:
        return x.abs()
    return _rows(x).norm(dim=1).reshape(_shape(x))


def neuron_mean(x: Tensor) -> Tensor:
    """The mean of each neuron (row) of a matrix or convolution ``x``, broadcastable against ``x``."""
    if x.dim() <= 1:
        raise NasforgeError(f"neuron_mean needs a tensor of 2 or more dimensions, got shape {tuple(x.shape)}")
    return _rows(x).mean(dim=1).reshape(_shape(x))


def _balance(p: Tensor) -> None:
    """Project every neuron of ``p`` (in place) onto zero mean and unit norm."""
    p.sub_(neuron_mean(p))
    norm = neuron_norm(p)
    p.div_(torch.where(norm > 0, norm, torch.ones_like(norm)))


class Nero(torch.optim.Optimizer):
    """The Nero optimiser (see the module docstring).

    ``lr``: the step, relative to each parameter's scale (the paper uses 0.01 everywhere);
    ``beta``: averaging rate of the squared per-neuron gradient norms (0.999);
    ``constraints``: keep matrices and convolutions balanced (zero-mean, unit-norm neurons).
    Deterministic: no random numbers are drawn; state (``step``, ``exp_avg_sq``, ``scale``) is
    saved and restored with ``state_dict``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 0.01, beta: float = 0.999,
                 constraints: bool = True) -> None:
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise NasforgeError(f"bad Nero lr {lr!r}: expected a number > 0")
        if not (isinstance(beta, (int, float)) and 0 <= beta < 1):
            raise NasforgeError(f"bad Nero beta {beta!r}: expected a number in [0, 1)")
        super().__init__(params, {"lr": float(lr), "beta": float(beta), "constraints": bool(constraints)})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, beta, constrain = group["lr"], group["beta"], group["constraints"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                matrix = p.dim() > 1
                if not state:
                    if constrain and matrix:
                        _balance(p)
                    scale = float(neuron_norm(p).mean())
                    state["step"] = 0
                    state["exp_avg_sq"] = torch.zeros_like(neuron_norm(p))
                    state["scale"] = scale if scale != 0.0 else 0.01
                state["step"] += 1
                g = p.grad
                v = state["exp_avg_sq"]
                v.mul_(beta).add_(neuron_norm(g).square(), alpha=1.0 - beta)
                denom = (v / (1.0 - beta ** state["step"])).sqrt()
                # a neuron whose gradients have all been zero does not move (0/0 in the paper's code)
                update = torch.where(denom > 0, g / torch.where(denom > 0, denom, torch.ones_like(denom)),
                                     torch.zeros_like(g))
                p.sub_(update, alpha=lr * state["scale"])
                if constrain and matrix:
                    _balance(p)
        return loss
