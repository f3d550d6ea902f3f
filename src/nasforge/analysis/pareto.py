"""Pareto fronts: non-dominated sorting, crowding distance, hypervolume, and plots.

Every function takes a point matrix ``Y`` of shape ``(n, m)`` and ``maximize``: one direction per
objective (a single bool applies to all). Internally everything is turned into minimisation.

Hypervolume reference points: :func:`hypervolume` takes ``ref`` explicitly. For benchmarks with a
known table, :func:`normalize` maps each objective to [0, 1] by the table's own minimum and
maximum (0 = best), and the reference point is 1.1 in every normalised objective (a point just
beyond the worst value, so the extreme points of the front count): ``hypervolume(Y, ref=[1.1]*m)``
after normalising. Exact algorithms: a sweep for 2 objectives (O(n log n)) and the "hypervolume by
slicing objectives" recursion for 3 or more (exact; fine for fronts of a few hundred points).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError


def _as_min(Y: Any, maximize: bool | Sequence[bool]) -> np.ndarray:
    A = np.asarray(Y, dtype=float)
    if A.ndim == 1:
        A = A.reshape(-1, 1) if A.size else A.reshape(0, 1)
    if A.ndim != 2:
        raise NasforgeError(f"points must be a 2-d array (n points x m objectives), got shape {A.shape}")
    m = A.shape[1]
    dirs = [bool(maximize)] * m if isinstance(maximize, (bool, np.bool_)) else [bool(d) for d in maximize]
    if len(dirs) != m:
        raise NasforgeError(f"{m} objectives but {len(dirs)} directions given")
    sign = np.array([-1.0 if d else 1.0 for d in dirs])
    return A * sign


def dominates(a: Sequence[float], b: Sequence[float], maximize: bool | Sequence[bool] = False) -> bool:
    """Whether point ``a`` Pareto-dominates ``b`` (no worse everywhere, better somewhere)."""
    A = _as_min([a, b], maximize)
    return bool(np.all(A[0] <= A[1]) and np.any(A[0] < A[1]))


def pareto_mask(Y: Any, maximize: bool | Sequence[bool] = False) -> np.ndarray:
    """Boolean mask of the non-dominated points (duplicates of a front point are all kept; rows
    with NaN are never on the front)."""
    A = _as_min(Y, maximize)
    n = len(A)
    ok = ~np.isnan(A).any(axis=1)
    mask = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(ok)
    if not len(idx):
        return mask
    B = A[idx]
    # sort lexicographically: a point can only be dominated by one earlier in this order
    order = np.lexsort(B.T[::-1])
    if B.shape[1] == 2:  # sweep: keep a point when its second objective beats every earlier one
        best, last = np.inf, None
        keep = []
        for i in order:
            x, y = B[i]
            if y < best or (last is not None and x == last[0] and y == last[1]):
                keep.append(i)
                best, last = min(best, y), (x, y)
        mask[idx[keep]] = True
        return mask
    front: list[int] = []
    for i in order:
        p = B[i]
        dominated = False
        for j in front:
            q = B[j]
            if np.all(q <= p) and np.any(q < p):
                dominated = True
                break
        if not dominated:
            front.append(i)
    mask[idx[front]] = True
    return mask


def non_dominated_sort(Y: Any, maximize: bool | Sequence[bool] = False) -> np.ndarray:
    """Front index of every point (0 = non-dominated), by Deb et al.'s fast non-dominated sort.
    Rows with NaN get the last rank + 1."""
    A = _as_min(Y, maximize)
    n = len(A)
    rank = np.full(n, -1, dtype=int)
    ok = np.flatnonzero(~np.isnan(A).any(axis=1))
    if len(ok):
        B = A[ok]
        le = np.all(B[:, None, :] <= B[None, :, :], axis=2)
        lt = np.any(B[:, None, :] < B[None, :, :], axis=2)
        dom = le & lt  # dom[i, j]: i dominates j
        count = dom.sum(axis=0)
        current = np.flatnonzero(count == 0)
        r = 0
        while len(current):
            rank[ok[current]] = r
            count = count - dom[current].sum(axis=0)
            count[current] = -1
            current = np.flatnonzero(count == 0)
            r += 1
    rank[rank < 0] = rank.max() + 1 if n and rank.max() >= 0 else 0
    return rank


def crowding_distance(Y: Any, maximize: bool | Sequence[bool] = False) -> np.ndarray:
    """NSGA-II crowding distance of each point within the set ``Y`` (boundary points: inf)."""
    A = _as_min(Y, maximize)
    n, m = A.shape
    d = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(A[:, k], kind="stable")
        v = A[order, k]
        span = v[-1] - v[0]
        d[order[0]] = d[order[-1]] = np.inf
        if span > 0:
            d[order[1:-1]] += (v[2:] - v[:-2]) / span
    return d


def _hv2(P: np.ndarray, ref: np.ndarray) -> float:
    order = np.argsort(P[:, 0], kind="stable")
    hv, best_y = 0.0, ref[1]
    for x, y in P[order]:
        if y < best_y:
            hv += (ref[0] - x) * (best_y - y)
            best_y = y
    return hv


def _hv_slice(P: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume by slicing the last objective (HSO)."""
    m = P.shape[1]
    if len(P) == 0:
        return 0.0
    if m == 1:
        return float(ref[0] - P[:, 0].min())
    if m == 2:
        return _hv2(P, ref)
    order = np.argsort(P[:, -1], kind="stable")
    P = P[order]
    hv = 0.0
    for i in range(len(P)):
        upper = P[i + 1, -1] if i + 1 < len(P) else ref[-1]
        depth = upper - P[i, -1]
        if depth <= 0:
            continue
        sub = P[: i + 1, :-1]
        sub = sub[pareto_mask(sub)]
        hv += depth * _hv_slice(sub, ref[:-1])
    return hv


def hypervolume(Y: Any, ref: Sequence[float], maximize: bool | Sequence[bool] = False) -> float:
    """The hypervolume dominated by ``Y`` up to reference point ``ref`` (given in the same units
    and directions as ``Y``). Points not strictly better than ``ref`` in every objective add nothing."""
    A = _as_min(Y, maximize)
    r = _as_min([list(ref)], maximize)[0]
    if len(r) != A.shape[1] and len(A):
        raise NasforgeError(f"reference point has {len(r)} coordinates, points have {A.shape[1]}")
    if not len(A):
        return 0.0
    A = A[~np.isnan(A).any(axis=1)]
    A = A[np.all(A < r, axis=1)]
    if not len(A):
        return 0.0
    A = A[pareto_mask(A)]
    A = np.unique(A, axis=0)
    return float(_hv_slice(A, r))


def normalize(Y: Any, lo: Sequence[float], hi: Sequence[float], maximize: bool | Sequence[bool] = False) -> np.ndarray:
    """Map each objective to [0, 1] with 0 = best, from the bounds ``lo``/``hi`` (raw units): the
    result is to be minimised in every objective."""
    A = np.asarray(Y, dtype=float).reshape(-1, len(lo))
    lo_, hi_ = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    span = np.where(hi_ > lo_, hi_ - lo_, 1.0)
    Z = (A - lo_) / span
    dirs = [bool(maximize)] * A.shape[1] if isinstance(maximize, (bool, np.bool_)) else list(maximize)
    for k, d in enumerate(dirs):
        if d:
            Z[:, k] = 1.0 - Z[:, k]
    return Z


def hypervolume_fraction(Y: Any, true_front: Any, maximize: bool | Sequence[bool], lo: Sequence[float] | None = None,
                         hi: Sequence[float] | None = None, ref: float = 1.1) -> float:
    """Hypervolume of ``Y`` as a fraction of ``true_front``'s, both normalised by ``lo``/``hi``
    (default: the true front's own range) with the reference point ``ref`` in every objective."""
    T = np.asarray(true_front, dtype=float)
    lo = T.min(axis=0) if lo is None else lo
    hi = T.max(axis=0) if hi is None else hi
    m = T.shape[1]
    r = [ref] * m
    total = hypervolume(normalize(T, lo, hi, maximize), r)
    if total <= 0:
        raise NasforgeError("the true front has zero hypervolume: check the bounds and reference point")
    return hypervolume(normalize(Y, lo, hi, maximize), r) / total


def plot_front(points: Any, path: str, labels: Sequence[str], maximize: Sequence[bool], true_front: Any = None,
               all_points: Any = None, title: str = "", series: str = "found") -> None:
    """Scatter of evaluated points with their non-dominated front (steps), and the true front and
    the whole table in the background when given. Two objectives; saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    P = np.asarray(points, dtype=float).reshape(-1, 2)
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    if all_points is not None:
        Q = np.asarray(all_points, dtype=float).reshape(-1, 2)
        ax.scatter(Q[:, 0], Q[:, 1], s=2, c="0.85", label="all architectures", rasterized=True)

    def steps(F: np.ndarray, **kw: Any) -> None:
        F = F[np.argsort(F[:, 0])]
        ax.step(F[:, 0], F[:, 1], where="post", **kw)

    if true_front is not None:
        T = np.asarray(true_front, dtype=float).reshape(-1, 2)
        steps(T, color="k", lw=1.0, ls="--", label="true front")
    if len(P):
        ax.scatter(P[:, 0], P[:, 1], s=10, c="tab:blue", alpha=0.5, label=f"{series} ({len(P)})")
        F = P[pareto_mask(P, maximize)]
        steps(F, color="tab:red", lw=1.5, label=f"{series} front ({len(F)})")
        ax.scatter(F[:, 0], F[:, 1], s=18, c="tab:red", zorder=3)
    ax.set_xlabel(labels[0] + (" (max)" if maximize[0] else " (min)"))
    ax.set_ylabel(labels[1] + (" (max)" if maximize[1] else " (min)"))
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


__all__ = ["dominates", "pareto_mask", "non_dominated_sort", "crowding_distance", "hypervolume", "normalize",
           "hypervolume_fraction", "plot_front"]
