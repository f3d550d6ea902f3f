"""Latency of a supernet layout as a sum of per-choice costs, and its expectation over mixtures.

HardCoRe-NAS (Nayman et al., ICML 2021) needs the latency of a *relaxed* architecture, one whose
every decision point holds a distribution over its candidates, as a closed form that is linear in
each block of variables. :class:`AdditiveLatency` is that form over a
:class:`~nasforge.spaces.supernet.SupernetLayout`:

    latency(w) = const + sum_e  present_e(w) * sum_k w[e, k] * cost[e, k]

where ``w`` holds per-edge operation weights (edges x width, each row on the simplex) and
``present_e(w)`` is 1 for an edge that is always in the network, or, for an edge that exists only
at some choices of a *gate* edge (a block beyond a stage's minimum depth, present only when the
stage's depth edge picks a depth that reaches it), the gate's total weight on those choices. Gate
edges cost nothing themselves. For one-hot ``w`` (an architecture) this is exactly the sum of the
costs of the pieces the architecture has; for mixtures it is the expected latency of drawing every
edge independently from its row. It is linear in the non-gate rows when the gates are fixed and
linear in the gate rows when the others are fixed (bilinear overall), which is what a
block-coordinate Frank-Wolfe step needs.

The model is plain NumPy, owned by the space (``SupernetLayout.latency_model``), so a search
outside ``spaces`` never needs to know what the costs are.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nasforge.errors import NasforgeError

__all__ = ["AdditiveLatency", "POOR_FIT_R2", "fit_additive"]

#: below this R² (or with a negative fastest latency) :func:`fit_additive` warns that the table is not additive
POOR_FIT_R2 = 0.95


@dataclass
class AdditiveLatency:
    """``const`` plus per-(edge, operation) ``cost`` (edges x width, ms) with optional ``gates``:
    per edge ``None`` (always present) or ``(gate_edge, mask)``, the edge being present when the
    gate edge's choice lies in ``mask`` (a boolean row of the gate's width). ``source`` says where
    the numbers come from (for messages and logs)."""

    const: float
    cost: np.ndarray
    gates: list[tuple[int, np.ndarray] | None] = field(default_factory=list)
    source: str = ""
    #: how well the costs describe the measurements they came from (fitted models)
    fit: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cost = np.asarray(self.cost, dtype=np.float64)
        if self.cost.ndim != 2:
            raise NasforgeError(f"latency costs must be an edges x operations array, got shape {self.cost.shape}")
        if not self.gates:
            self.gates = [None] * self.cost.shape[0]
        if len(self.gates) != self.cost.shape[0]:
            raise NasforgeError(f"latency gates must be given for {self.cost.shape[0]} edges, got {len(self.gates)}")
        if not np.isfinite(self.cost).all() or not np.isfinite(self.const):
            raise NasforgeError(f"latency costs of {self.source or 'the model'} hold NaN or infinite values")
        self.gates = [None if g is None else (int(g[0]), np.asarray(g[1], dtype=bool)) for g in self.gates]

    # --- structure ------------------------------------------------------------------------------
    @property
    def gate_edges(self) -> list[int]:
        """Edges that gate others (depth choices); the β block of a block-coordinate step."""
        return sorted({g[0] for g in self.gates if g is not None})

    @property
    def op_edges(self) -> list[int]:
        """Edges whose operations cost time (every edge that gates nothing); the α block."""
        gated = set(self.gate_edges)
        return [e for e in range(self.cost.shape[0]) if e not in gated]

    def presence(self, w: np.ndarray) -> np.ndarray:
        """Per edge, the probability that the edge is in the network under mixture ``w``."""
        w = np.asarray(w, dtype=np.float64)
        out = np.ones(self.cost.shape[0])
        for e, g in enumerate(self.gates):
            if g is not None:
                out[e] = float(w[g[0], : len(g[1])][g[1]].sum())
        return out

    # --- values ---------------------------------------------------------------------------------
    def expected(self, w: np.ndarray) -> float:
        """Expected latency of mixture ``w`` (edges x width); exact for one-hot rows."""
        w = np.asarray(w, dtype=np.float64)
        per_edge = (w * self.cost).sum(axis=1)
        return float(self.const + (self.presence(w) * per_edge).sum())

    def of_indices(self, idx: Sequence[int]) -> float:
        """Latency of the architecture with per-edge operation indices ``idx``."""
        w = np.zeros_like(self.cost)
        w[np.arange(len(idx)), np.asarray(idx, dtype=np.int64)] = 1.0
        return self.expected(w)

    def alpha_constraint(self, w: np.ndarray) -> tuple[np.ndarray, float]:
        """With the gate rows of ``w`` fixed: ``(a, c)`` such that latency = ``c + sum(a * w)`` over
        the op-edge entries (``a`` has the shape of ``cost``, zero on gate rows)."""
        p = self.presence(w)
        a = self.cost * p[:, None]
        a[self.gate_edges] = 0.0
        return a, float(self.const)

    def beta_constraint(self, w: np.ndarray) -> tuple[np.ndarray, float]:
        """With the op rows of ``w`` fixed: ``(b, c)`` such that latency = ``c + sum(b * w)`` over the
        gate-edge entries (``b`` has the shape of ``cost``, zero on op rows)."""
        w = np.asarray(w, dtype=np.float64)
        per_edge = (w * self.cost).sum(axis=1)
        b = np.zeros_like(self.cost)
        c = float(self.const)
        for e, g in enumerate(self.gates):
            if g is None:
                c += float(per_edge[e])
            else:
                b[g[0], : len(g[1])] += per_edge[e] * g[1]
        return b, c


def fit_additive(idx: np.ndarray, values: np.ndarray, widths: Sequence[int], source: str = "") -> AdditiveLatency:
    """Least-squares per-(edge, operation) costs of a table of architectures: ``idx`` (n x edges)
    operation indices, ``values`` (n) latencies, ``widths`` the number of operations per edge. The
    constant absorbs each edge's cheapest operation, so every cost is >= 0. The model's ``fit`` holds
    ``r2``, the mean absolute error ``mae_ms``, the mean absolute percentage error ``mape`` and ``n``."""
    idx = np.asarray(idx, dtype=np.int64)
    y = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(y)
    idx, y = idx[keep], y[keep]
    n_e = idx.shape[1]
    if len(y) < 1 + sum(w - 1 for w in widths):
        raise NasforgeError(f"cannot fit per-operation latencies from {len(y)} measured architectures")
    offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
    x = np.zeros((len(y), int(offsets[-1]) + 1))
    x[:, -1] = 1.0
    for e in range(n_e):
        x[np.arange(len(y)), offsets[e] + idx[:, e]] = 1.0
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    width = max(widths)
    cost = np.zeros((n_e, width))
    const = float(coef[-1])
    for e in range(n_e):
        row = coef[offsets[e]:offsets[e + 1]]
        const += float(row.min())
        cost[e, : widths[e]] = row - row.min()
    pred = const + cost[np.arange(n_e)[None, :], idx].sum(axis=1)
    resid = y - pred
    r2 = 1.0 - float((resid ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-300))
    fit = {"r2": r2, "mae_ms": float(np.abs(resid).mean()),
           "mape": float(np.mean(np.abs(resid) / np.maximum(np.abs(y), 1e-12)) * 100), "n": float(len(y))}
    if const < 0 or r2 < POOR_FIT_R2:
        warnings.warn(f"{source or 'latency table'}: per-operation costs describe it poorly (R² {r2:.3f}, "
                      f"mean abs. error {fit['mae_ms']:.3g} ms, fastest predicted {const:.3g} ms); latency "
                      "constraints on this model are constraints on the fit, not on the table", stacklevel=2)
    return AdditiveLatency(const, cost, source=source, fit=fit)
