"""Counting the cost of a built network: parameters, and FLOPs (multiply-adds) by forward hooks.

This is the generic cost model every space falls back on (:meth:`SearchSpace.param_count` and
:meth:`SearchSpace.flops` build the network and count); spaces with a closed form override those
methods. :mod:`nasforge.estimation.hardware` re-exports these functions.

FLOP conventions (``convention=``), all in multiply-accumulates (MACs) per sample:

``"macs"``
    Weights only: convolutions ``k_h*k_w*C_in/groups*C_out*H_out*W_out`` and linear layers
    ``in*out``, no bias terms, nothing else (the convention of the DARTS and MobileNet papers'
    "multiply-adds").
``"nb201"`` (default)
    The official NAS-Bench-201 counter (``get_model_infos`` of the benchmark's code): convolutions
    ``k_h*k_w*C_in/groups*C_out*H_out*W_out`` (+ ``C_out*H_out*W_out`` with a bias), linear layers
    ``in*out`` (+ ``out`` with a bias). Its pooling hook charges ``k^2 x output elements`` but that
    count is left out of the official sum, and BatchNorm, activations, additions and global
    pooling have no hook: they cost 0.
``"nb201+pool"``
    ``"nb201"`` plus pooling at ``kernel area x output elements`` (the official pooling hook, summed).
``"full"``
    ``"nb201+pool"`` plus BatchNorm at 2 per element (1 without affine), activations at 1 per
    element and adaptive (global) pooling at 1 per input element. Tensor additions are not modules
    and are not counted in any convention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nasforge.errors import NasforgeError, unknown

FLOP_CONVENTIONS = ("macs", "nb201", "nb201+pool", "full")
_LEVEL = {"macs": 0, "nb201": 0, "nb201+pool": 1, "full": 2}


def check_convention(convention: str) -> None:
    """Raise a clear error unless ``convention`` is one of :data:`FLOP_CONVENTIONS`."""
    if convention not in FLOP_CONVENTIONS:
        raise unknown("FLOP convention", convention, FLOP_CONVENTIONS)


def count_params(model: Any, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (every parameter, or only those requiring gradients)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


@dataclass
class FlopCount:
    """FLOPs (MACs) of one forward pass per sample, with the share of each module type."""

    total: int
    by_type: dict[str, int]
    convention: str
    input_shape: tuple[int, ...]

    @property
    def mflops(self) -> float:
        """``total / 1e6``, the unit NB201 reports."""
        return self.total / 1e6


def _count_by_level(model: Any, input_shape: Sequence[int]
                    ) -> tuple[tuple[int, ...], dict[str, tuple[int, int]], dict[str, int]]:
    """One hooked forward pass: {module type: (convention level, MACs)}, and the bias terms inside
    the level-0 counts {module type: adds}; level 0 counts in every convention (less the biases in
    ``macs``), 1 from ``nb201+pool`` on, 2 only in ``full``."""
    import torch
    from torch import nn

    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise NasforgeError(f"input_shape must be positive sizes without the batch dimension, got {input_shape!r}")
    counts: dict[str, tuple[int, int]] = {}
    biases: dict[str, int] = {}

    def add(m: nn.Module, level: int, n: float, bias: int = 0) -> None:
        k = type(m).__name__
        counts[k] = (level, counts.get(k, (level, 0))[1] + int(round(n)) + bias)
        if bias:
            biases[k] = biases.get(k, 0) + bias

    def conv(m: nn.Module, inp: tuple, out: Any) -> None:
        per_pos = math.prod(m.kernel_size) * m.in_channels // m.groups * m.out_channels
        positions = out.numel() // out.shape[1]  # batch x spatial
        add(m, 0, per_pos * positions, m.out_channels * positions if m.bias is not None else 0)

    def linear(m: nn.Module, inp: tuple, out: Any) -> None:
        rows = out.numel() // m.out_features
        add(m, 0, rows * m.in_features * m.out_features, rows * m.out_features if m.bias is not None else 0)

    def pool(m: nn.Module, inp: tuple, out: Any) -> None:
        ks = m.kernel_size
        area = math.prod(ks) if isinstance(ks, (tuple, list)) else ks ** (out.dim() - 2)
        add(m, 1, area * out.numel())

    def norm(m: nn.Module, inp: tuple, out: Any) -> None:
        affine = getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)
        add(m, 2, inp[0].numel() * (2 if affine else 1))

    def elementwise_in(m: nn.Module, inp: tuple, out: Any) -> None:
        add(m, 2, inp[0].numel())

    rules: list[tuple[tuple[type, ...], Any]] = [
        ((nn.Conv1d, nn.Conv2d, nn.Conv3d), conv), ((nn.Linear,), linear),
        ((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d), pool),
        ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d), norm),
        ((nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
          nn.Hardsigmoid, nn.Mish), elementwise_in),
        ((nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool2d), elementwise_in),
    ]
    handles = []
    for m in model.modules():
        for types, hook in rules:
            if isinstance(m, types):
                handles.append(m.register_forward_hook(hook))
                break
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.rand(1, *shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return shape, counts, biases


def _flop_count(shape: tuple[int, ...], counts: dict[str, tuple[int, int]], biases: dict[str, int],
                convention: str) -> FlopCount:
    top = _LEVEL[convention]
    less = biases if convention == "macs" else {}
    by_type = {k: n - less.get(k, 0) for k, (lvl, n) in sorted(counts.items()) if lvl <= top}
    return FlopCount(int(sum(by_type.values())), by_type, convention, shape)


def count_flops(model: Any, input_shape: Sequence[int], convention: str = "nb201") -> FlopCount:
    """FLOPs (MACs) of ``model`` on one input of ``input_shape`` (without the batch dimension).

    Counted by forward hooks on the modules that run, for the size given, so it works for any
    network (see the module docstring for the conventions). The model is run once in eval mode
    under ``torch.no_grad()`` on a batch of one random input; its training mode is restored.
    """
    check_convention(convention)
    return _flop_count(*_count_by_level(model, input_shape), convention)


def count_flops_all(model: Any, input_shape: Sequence[int]) -> dict[str, FlopCount]:
    """:func:`count_flops` in every convention, from one forward pass."""
    shape, counts, biases = _count_by_level(model, input_shape)
    return {c: _flop_count(shape, counts, biases, c) for c in FLOP_CONVENTIONS}


__all__ = ["FLOP_CONVENTIONS", "FlopCount", "check_convention", "count_params", "count_flops", "count_flops_all"]
