"""What every differentiable method needs from a supernet, through the protocol only.

- :func:`derive`: the discrete architecture of per-edge operation weights (the DARTS rule: on an
  independent layout the strongest operation of every edge; where structural choices tie edges
  together, such as DARTS's two inputs per node, the valid tuple that keeps the strongest
  non-structural operations, i.e. per node the two edges with the largest best-operation weight);
- :class:`OnePath`: a context in which a weighted forward runs only the chosen operation of every
  edge (the others return zeros of the right shape without computing anything), so a hard one-hot
  mixture (GDAS) costs one path while its weights still carry gradients to the architecture;
- :func:`layer_gradient_correlation`: the mean pairwise cosine of per-cell gradients (Λ-DARTS).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.spaces.supernet import Supernet, SupernetLayout

__all__ = ["derive", "skip_count", "OnePath", "layer_gradient_correlation", "SKIP"]

#: the name of the identity operation whose count signals the DARTS collapse
SKIP = "skip_connect"


def derive(layout: SupernetLayout, w: np.ndarray, allowed: np.ndarray | None = None) -> tuple[int, ...]:
    """Per-edge operation indices of the architecture that per-edge weights ``w`` (edges x width,
    e.g. ``softmax(alpha)``) select (see the module docstring)."""
    w = np.asarray(w, dtype=np.float64)
    m = layout.candidates if allowed is None else np.asarray(allowed, dtype=bool)
    if w.shape != m.shape:
        raise NasforgeError(f"operation weights must have shape {m.shape}, got {w.shape}")
    if not np.isfinite(w).all():
        raise NasforgeError("operation weights hold NaN or infinite values; cannot derive an architecture")
    masked = np.where(m, w, -np.inf)
    if layout.independent:
        return tuple(int(k) for k in masked.argmax(axis=1))
    free = m & ~layout.structural
    best = np.where(free, w, -np.inf).argmax(axis=1)
    strength = np.where(free, w, -np.inf).max(axis=1)
    keep = np.zeros_like(m)
    keep[np.arange(layout.n_edges), best] = True
    keep |= layout.structural & m
    cands = np.array(list(layout.iter_indices(layout.prune(keep))), dtype=np.int64)
    if not len(cands):
        raise NasforgeError("no architecture is left to derive from the allowed operations")
    on = ~layout.structural[np.arange(layout.n_edges)[None, :], cands]
    score = np.where(on, np.log(np.maximum(strength, 1e-300))[None, :], 0.0).sum(axis=1)
    return tuple(int(k) for k in cands[int(score.argmax())])


def skip_count(layout: SupernetLayout, idx: Sequence[int]) -> int:
    """How many edges of ``idx`` choose the skip connection."""
    return sum(1 for e, k in enumerate(idx) if layout.ops[e][k] == SKIP)


class OnePath:
    """``with OnePath(model, idx):`` every candidate module of every edge except operation
    ``idx[e]`` returns zeros (of the shape it would return) instead of computing.

    A weighted forward then costs one path, and ``w[e, k] * 0`` still gives the selected weight
    its gradient. Output shapes are measured once per supernet (one batch-1 mixture forward in
    evaluation mode, no gradient) and cached on the module.
    """

    def __init__(self, model: Supernet, idx: Sequence[int]) -> None:
        self.model = model
        self.idx = tuple(int(k) for k in idx)
        if len(self.idx) != model.layout.n_edges:
            raise NasforgeError(f"one path needs {model.layout.n_edges} operation indices, got {len(self.idx)}")
        self._patched: list[nn.Module] = []

    @staticmethod
    def shapes(model: Supernet) -> dict[int, tuple[int, ...]]:
        """Output shape (without the batch) of every candidate module the mixture runs."""
        cached = getattr(model, "_one_path_shapes", None)
        if cached is not None:
            return cached
        cfg = model.net_config()
        if "in_channels" not in cfg or "input_size" not in cfg:
            raise NasforgeError(f"the {model.layout.name} supernet does not state its input shape; one-path "
                                "mixtures need in_channels and input_size in its net_config")
        lay = model.layout
        out: dict[int, tuple[int, ...]] = {}
        hooks = []
        for e in range(lay.n_edges):
            for k in range(len(lay.ops[e])):
                for mod in model.candidate_modules(e, k):
                    def rec(m: nn.Module, _inp: Any, y: Tensor) -> None:
                        out[id(m)] = tuple(y.shape[1:])
                    hooks.append(mod.register_forward_hook(rec))
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                x = torch.zeros(1, int(cfg["in_channels"]), int(cfg["input_size"]), int(cfg["input_size"]))
                model(x, weights=torch.as_tensor(lay.candidates, dtype=torch.float32))
        finally:
            for h in hooks:
                h.remove()
            model.train(was)
        model._one_path_shapes = out  # type: ignore[attr-defined]
        return out

    def __enter__(self) -> OnePath:
        shapes = self.shapes(self.model)
        lay = self.model.layout
        for e in range(lay.n_edges):
            for k in range(len(lay.ops[e])):
                if k == self.idx[e]:
                    continue
                for mod in self.model.candidate_modules(e, k):
                    shape = shapes.get(id(mod))
                    if shape is None:  # never run by the mixture (e.g. ``none``)
                        continue

                    def zero(x: Tensor, *_: Any, _s: tuple[int, ...] = shape) -> Tensor:
                        return x.new_zeros((x.shape[0], *_s))
                    mod.forward = zero  # type: ignore[method-assign]
                    self._patched.append(mod)
        return self

    def __exit__(self, *exc: Any) -> None:
        for mod in self._patched:
            del mod.forward
        self._patched = []


def layer_gradient_correlation(grads: Sequence[Tensor]) -> tuple[float, list[tuple[int, int]]]:
    """Mean pairwise cosine similarity of per-cell gradients (flattened), over the pairs of cells
    whose gradients share support (cells of different types, such as DARTS normal and reduction
    cells, read disjoint rows and are not compared); also returns those pairs."""
    flat = [g.reshape(-1) for g in grads]
    support = [g.ne(0) for g in flat]
    pairs = [(i, j) for i in range(len(flat)) for j in range(i + 1, len(flat))
             if bool((support[i] & support[j]).any())]
    if not pairs:
        return float("nan"), pairs
    vals = [float(torch.dot(flat[i], flat[j]) / (flat[i].norm() * flat[j].norm() + 1e-12)) for i, j in pairs]
    return float(np.mean(vals)), pairs
