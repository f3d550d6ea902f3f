"""Latency-constrained differentiable search: HardCoRe-NAS and a soft-penalty baseline.

**HardCoRe-NAS** (Nayman et al., "HardCoRe-NAS: Hard Constrained diffeRentiable Neural
Architecture Search", ICML 2021), method ``hardcore``. The architecture parameters are the
attentions themselves, rows on the simplex: op attentions α (which block configuration or
operation an edge takes) and, where the space has depth choices, depth attentions β. The space's
latency model (:class:`~nasforge.spaces.latency_model.AdditiveLatency`, from its lookup table) gives
the expected latency, bilinear in (α, β). Each bilevel step takes the stochastic gradient ``g`` of
the validation loss and makes one block-coordinate Frank-Wolfe step on one block (α and β
alternately, α only where there is no β):

    s = argmin_{s in block polytope} <g, s>   s.t. latency(s, other block fixed) <= target   (an LP)
    block <- (1 - γ) block + γ s,   γ = min(gamma_max, 2n / (k + 2n)),  n blocks, k steps so far

The LP is solved by SciPy's ``linprog`` (HiGHS) with the target lowered by ``1e-9`` relative, so the
convex combination of a feasible point and the LP's vertex stays feasible: the latency constraint
holds at every step. The start is feasible too: the uniform mixture if it meets the target,
otherwise the first point on the segment from it to the fastest architecture that does.

**Projection.** The final architecture is the most probable one *that meets the target*: the
mixed-integer program ``max sum x log w`` over one-hot choices ``x`` (a block counts only when the
chosen depth reaches it, so the objective is the log-probability of drawing the architecture from
the attentions) subject to the LUT latency of ``x`` being at most the target, solved exactly by
SciPy's ``milp``. The paper sparsifies with further LP steps and takes the argmax; the exact program
is our choice, and it coincides with the argmax whenever the argmax meets the target.

An infeasible target (below the fastest architecture the supernet allows, found by the same
program with latency as the objective) is refused at construction with the minimum achievable
latency in the message.

**Soft penalty** (method ``latency-penalty``): the DARTS relaxation (softmax α, the loop's Adam)
with the expected latency in the α loss, ``L_val + lam * max(0, latency / target - 1)``, and the
DARTS argmax at the end; no guarantee, which is what the benchmark measures.

Both take ``target`` (ms), ``latency`` (a device of the space's published tables, e.g. NB201's
``pixel3``, fitted per operation; a lookup-table file of the space, e.g. the mbv3 table of
``benchmarks/mbv3_latency_lut.py``; or a mapping), ``data_dir`` (the reference data folder for
device tables) and ``warmup`` (epochs during which only the weights train).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from torch import Tensor

from nasforge.errors import NasforgeError
from nasforge.oneshot.differentiable.methods import METHODS, Method
from nasforge.spaces.latency_model import AdditiveLatency
from nasforge.spaces.supernet import Supernet, SupernetLayout

__all__ = ["HardCoRe", "LatencyPenalty", "resolve_latency", "min_latency", "project", "LP_MARGIN"]

#: relative margin the LP keeps below the target (so rounding never crosses it)
LP_MARGIN = 1e-9


def resolve_latency(layout: SupernetLayout, latency: Any, data_dir: str | os.PathLike[str] | None = None) -> AdditiveLatency:
    """The latency model of ``layout`` from ``latency``: a device name of the space's published
    tables (fitted per operation), a lookup-table file of the space, or a mapping."""
    space = layout.space
    if isinstance(latency, AdditiveLatency):
        return latency
    if latency is None:
        raise NasforgeError(f"a latency-constrained search on space {layout.name!r} needs latency=<device of its "
                            f"tables or a lookup-table file>{_devices_hint(space)}")
    if isinstance(latency, Mapping):
        return layout.latency_model(dict(latency))
    if isinstance(latency, str):
        from nasforge.estimation.hardware import device_tables, latency_metric, load_device_table

        for which, table in device_tables(space).items():
            if latency in table.devices:
                bench = load_device_table(space, which, data_dir)
                values = bench.values(latency_metric(latency))
                model = layout.latency_model({a: float(v) for a, v in zip(bench.archs, values)})
                model.source = f"{space.name} {latency} latency ({model.source})"
                return model
    if isinstance(latency, (str, os.PathLike)) and os.path.isfile(latency):
        return layout.latency_model(os.fspath(latency))
    raise NasforgeError(f"unknown latency {latency!r} for space {layout.name!r}: not a device of its tables nor a "
                        f"lookup-table file{_devices_hint(space)}")


def _devices_hint(space: Any) -> str:
    from nasforge.estimation.hardware import device_tables

    devs = [d for t in device_tables(space).values() if t.unit == "latency_ms" for d in t.devices]
    return f"; devices: {', '.join(devs)}" if devs else ""


def _milp(model: AdditiveLatency, allowed: np.ndarray, objective: np.ndarray,
          target: float | None) -> tuple[int, ...] | None:
    """One-hot choices minimising ``sum(objective * x)`` over the allowed entries, gated edges
    present exactly when their gate's choice reaches them, LUT latency <= ``target`` when given;
    ``None`` when no choice meets the target."""
    n_e, n_w = allowed.shape
    cells = [(e, k) for e in range(n_e) for k in range(n_w) if allowed[e, k]]
    col = {c: i for i, c in enumerate(cells)}
    n = len(cells)
    rows, rhs = [], []
    for e in range(n_e):
        r = np.zeros(n)
        for k in np.flatnonzero(allowed[e]):
            r[col[(e, int(k))]] = 1.0
        g = model.gates[e]
        if g is None:
            rhs.append(1.0)
        else:
            for j in np.flatnonzero(g[1] & allowed[g[0], : len(g[1])]):
                r[col[(g[0], int(j))]] -= 1.0
            rhs.append(0.0)
        rows.append(r)
    cons = [LinearConstraint(np.array(rows), np.array(rhs), np.array(rhs))]
    if target is not None:
        lat = np.array([model.cost[e, k] for e, k in cells])
        cons.append(LinearConstraint(lat[None, :], -np.inf, target - model.const))
    c = np.array([objective[e, k] for e, k in cells])
    res = milp(c, constraints=cons, integrality=np.ones(n), bounds=Bounds(0, 1))
    if res.x is None:
        return None
    x = np.zeros(allowed.shape)
    for (e, k), v in zip(cells, res.x):
        x[e, k] = v
    idx = []
    for e in range(n_e):
        row = np.where(allowed[e], x[e], -1.0)
        if row.max() > 0.5:
            idx.append(int(row.argmax()))
        else:  # an absent block: its choice does not matter; the best-scored allowed one
            idx.append(int(np.where(allowed[e], -objective[e], -np.inf).argmax()))
    return tuple(idx)


def min_latency(model: AdditiveLatency, allowed: np.ndarray) -> tuple[float, tuple[int, ...]]:
    """The fastest architecture of the allowed mask under ``model`` and its latency."""
    idx = _milp(model, allowed, model.cost, None)
    assert idx is not None
    return model.of_indices(idx), idx


def project(model: AdditiveLatency, allowed: np.ndarray, w: np.ndarray, target: float) -> tuple[int, ...]:
    """The most probable architecture under attentions ``w`` whose latency is at most ``target``
    (see the module docstring); an error when none is."""
    score = -np.log(np.clip(np.asarray(w, dtype=np.float64), 1e-12, None))
    idx = _milp(model, allowed, score, target)
    if idx is None:
        low, _ = min_latency(model, allowed)
        raise NasforgeError(f"no architecture meets the latency target {target:.6g} ms (the fastest takes {low:.6g} ms)")
    return idx


class _LatencyMethod(Method):
    """Shared set-up: the latency model, the target, the feasibility check, the warm-up."""

    defaults: dict[str, Any] = {"target": None, "latency": None, "data_dir": None, "warmup": 0}

    def __init__(self, model: Supernet, **params: Any) -> None:
        super().__init__(model, **params)
        target = self.params["target"]
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not math.isfinite(target) or target <= 0:
            raise NasforgeError(f"method {self.name!r} needs a latency target in ms > 0 (target=...), got {target!r}")
        self.target = float(target)
        self.lat = resolve_latency(self.layout, self.params["latency"], self.params["data_dir"])
        if self.lat.cost.shape != (self.layout.n_edges, self.layout.n_ops):
            raise NasforgeError(f"the latency model has shape {self.lat.cost.shape}; the {self.layout.name} supernet "
                                f"needs {(self.layout.n_edges, self.layout.n_ops)}")
        self.allowed = np.asarray(model.allowed, dtype=bool)
        self.min_latency, self.fastest = min_latency(self.lat, self.allowed)
        if self.target < self.min_latency:
            raise NasforgeError(f"latency target {self.target:.6g} ms is infeasible: the fastest architecture of the "
                                f"{self.layout.name} supernet takes {self.min_latency:.6g} ms ({self.lat.source}); "
                                f"choose target >= {self.min_latency:.6g}")
        self._cost = torch.as_tensor(self.lat.cost, dtype=torch.float32)

    def frozen(self) -> bool:
        return self.epoch < int(self.params["warmup"])

    def expected_latency_t(self, w: Tensor) -> Tensor:
        """The model's expected latency of mixture ``w`` as a differentiable tensor."""
        per_edge = (w * self._cost).sum(dim=1)
        presence = []
        for g in self.lat.gates:
            if g is None:
                presence.append(torch.ones((), dtype=w.dtype))
            else:
                presence.append(w[g[0], : len(g[1])][torch.as_tensor(g[1])].sum())
        return self.lat.const + (torch.stack(presence) * per_edge).sum()

    def epoch_log(self) -> dict[str, float]:
        lat = self.stats.get("latency", [])
        out = super().epoch_log()
        idx = self.discretize()
        out.update({"latency_max": float(max(lat)) if lat else float("nan"), "target": self.target,
                    "arch_latency": self.lat.of_indices(idx), "min_latency": self.min_latency})
        return out


class HardCoRe(_LatencyMethod):
    """HardCoRe-NAS: block-coordinate stochastic Frank-Wolfe under a hard latency constraint (see
    the module docstring)."""

    name = "hardcore"
    defaults = {**_LatencyMethod.defaults, "gamma_max": 1.0}

    def __init__(self, model: Supernet, **params: Any) -> None:
        super().__init__(model, **params)
        g = self.params["gamma_max"]
        if not 0 < float(g) <= 1:
            raise NasforgeError(f"hardcore gamma_max must lie in (0, 1], got {g!r}")
        self.blocks = [b for b in (self.lat.op_edges, self.lat.gate_edges) if b]
        self.k = 0
        # the attentions in float64, so that what the constraint is checked on is what is stored
        self.alpha = torch.nn.Parameter(torch.as_tensor(self._feasible_start(), dtype=torch.float64))

    def _feasible_start(self) -> np.ndarray:
        """The uniform mixture, or the first point toward the fastest architecture that meets the target."""
        m = self.allowed.astype(np.float64)
        u = m / m.sum(axis=1, keepdims=True)
        fast = np.zeros_like(u)
        fast[np.arange(len(self.fastest)), self.fastest] = 1.0
        for t in np.linspace(0.0, 1.0, 1001):
            w = (1 - t) * u + t * fast
            if self.lat.expected(w) <= self.target * (1 - LP_MARGIN):
                return w
        return fast

    def mixture(self) -> Tensor:
        return (self.alpha * self.mask).float()

    def probs(self) -> np.ndarray:
        with torch.no_grad():
            return (self.alpha * self.mask).numpy().copy()

    def weight_backward(self, x: Tensor, y: Tensor, ctx: Any) -> tuple[float, Tensor]:
        loss, logits = self.loss(x, y, self.mixture().detach())  # zero attentions skip their candidates
        loss.backward()
        return loss.item(), logits

    def discretize(self) -> tuple[int, ...]:
        return project(self.lat, self.allowed, self.probs(), self.target)

    def lp(self, grad: np.ndarray, w: np.ndarray, block: list[int]) -> np.ndarray | None:
        """The Frank-Wolfe vertex for ``block``: ``argmin <grad, s>`` over its rows on the simplex
        (allowed entries) with the other rows of ``w`` fixed and latency <= target."""
        is_gate = block == self.lat.gate_edges and bool(self.lat.gate_edges)
        a, c = self.lat.beta_constraint(w) if is_gate else self.lat.alpha_constraint(w)
        cells = [(e, int(k)) for e in block for k in np.flatnonzero(self.allowed[e])]
        n = len(cells)
        a_eq = np.zeros((len(block), n))
        pos = {e: i for i, e in enumerate(block)}
        for j, (e, _k) in enumerate(cells):
            a_eq[pos[e], j] = 1.0
        a_ub = np.array([[a[e, k] for e, k in cells]])
        b_ub = np.array([self.target * (1 - LP_MARGIN) - c])
        cost = np.array([grad[e, k] for e, k in cells])
        res = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=np.ones(len(block)), bounds=(0, 1), method="highs")
        if res.status != 0 or res.x is None:
            return None
        s = w.copy()
        s[block] = 0.0
        for (e, k), v in zip(cells, np.clip(res.x, 0.0, 1.0)):
            s[e, k] = v
        s[block] /= s[block].sum(axis=1, keepdims=True)
        if self.lat.expected(s) > self.target:  # rounding: never step toward an infeasible vertex
            return None
        return s

    def arch_step(self, optimizer: torch.optim.Optimizer) -> None:
        w = self.probs()
        if not self.frozen():
            block = self.blocks[self.k % len(self.blocks)]
            s = self.lp(self.alpha.grad.detach().numpy().astype(np.float64), w, block)
            n = len(self.blocks)
            gamma = min(float(self.params["gamma_max"]), 2.0 * n / (self.k + 2.0 * n))
            self.k += 1
            if s is not None:
                new = (1 - gamma) * w + gamma * s
                if self.lat.expected(new) <= self.target:
                    w = new
                    with torch.no_grad():
                        self.alpha.copy_(torch.as_tensor(w, dtype=torch.float64))
            self.note("gamma", gamma)
        self.note("latency", self.lat.expected(w))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "k": self.k}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.k = int(state["k"])


class LatencyPenalty(_LatencyMethod):
    """Soft-penalty baseline: DARTS with ``lam * max(0, latency / target - 1)`` in the α loss."""

    name = "latency-penalty"
    defaults = {**_LatencyMethod.defaults, "lam": 1.0}

    def arch_backward(self, xt: Tensor, yt: Tensor, xv: Tensor, yv: Tensor, ctx: Any) -> float:
        loss, _ = self.loss(xv, yv)
        lat = self.expected_latency_t(F.softmax(self.logits(), dim=-1))
        pen = float(self.params["lam"]) * torch.relu(lat / self.target - 1.0)
        self.alpha.grad = torch.autograd.grad(loss + pen, self.alpha)[0]
        return loss.item()

    def arch_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self.frozen():
            optimizer.step()
        self.note("latency", self.lat.expected(self.probs()))


METHODS.update({c.name: c for c in (HardCoRe, LatencyPenalty)})
