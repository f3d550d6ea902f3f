"""Anytime curves: the reported metric of the best-so-far architecture after each query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def incumbent_curve(select: Sequence[float], report: Sequence[float], maximize: bool = True) -> np.ndarray:
    """After each query, the ``report`` value of the best-so-far architecture by ``select``.

    Search chooses by ``select`` (a validation metric); ``report`` (a test metric) is only read
    off for the chosen architecture. Failed queries (NaN select) never become the incumbent;
    entries before the first success are NaN.
    """
    s = np.asarray(select, dtype=float)
    r = np.asarray(report, dtype=float)
    if s.shape != r.shape:
        raise ValueError(f"select and report differ in length: {s.shape} vs {r.shape}")
    out = np.full(len(s), np.nan)
    best, cur = -np.inf, np.nan
    sign = 1.0 if maximize else -1.0
    for i, (a, b) in enumerate(zip(s.tolist(), r.tolist())):
        if a == a and sign * a > best:  # a == a: not NaN
            best, cur = sign * a, b
        out[i] = cur
    return out


def anytime_table(curves: Mapping[str, Sequence[np.ndarray]], at: Sequence[int]) -> "object":
    """Mean, std, standard error and count of each method's curves at query counts ``at``.

    ``curves[method]`` holds one incumbent curve per seed. Returns a pandas DataFrame indexed by
    (method, queries). A run shorter than a query count contributes its last value.
    """
    import pandas as pd

    rows = []
    for method, runs in curves.items():
        for q in at:
            vals = np.array([c[min(q, len(c)) - 1] for c in runs if len(c)], dtype=float)
            vals = vals[~np.isnan(vals)]
            n = len(vals)
            std = float(vals.std(ddof=1)) if n > 1 else float("nan")
            rows.append({"method": method, "queries": int(q), "mean": float(vals.mean()) if n else float("nan"),
                         "std": std, "se": std / np.sqrt(n) if n > 1 else float("nan"), "n": n})
    return pd.DataFrame(rows).set_index(["method", "queries"])


def plot_anytime(curves: Mapping[str, Sequence[np.ndarray]], path: str, ylabel: str, title: str = "",
                 optimum: float | None = None) -> None:
    """Mean incumbent curve ± standard error per method, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for method, runs in curves.items():
        n = max(len(c) for c in runs)
        mat = np.full((len(runs), n), np.nan)
        for i, c in enumerate(runs):
            mat[i, : len(c)] = c
            mat[i, len(c):] = c[-1] if len(c) else np.nan
        mean = np.nanmean(mat, axis=0)
        se = np.nanstd(mat, axis=0, ddof=1) / np.sqrt(np.sum(~np.isnan(mat), axis=0)) if len(runs) > 1 else 0 * mean
        x = np.arange(1, n + 1)
        ax.plot(x, mean, label=method)
        ax.fill_between(x, mean - se, mean + se, alpha=0.2)
    if optimum is not None:
        ax.axhline(optimum, color="k", ls="--", lw=0.8, label="optimum")
    ax.set_xscale("log")
    ax.set_xlabel("queries")
    ax.set_ylabel(ylabel)
    # zoom on the interesting part: from the median value at 10 queries upwards
    firsts = [np.nanmedian([c[min(9, len(c) - 1)] for c in runs if len(c)]) for runs in curves.values()]
    lo = np.nanmin(firsts) if firsts else None
    if lo is not None and np.isfinite(lo):
        top = optimum if optimum is not None else ax.get_ylim()[1]
        ax.set_ylim(lo - 0.05 * abs(top - lo), top + 0.05 * abs(top - lo) + 1e-9)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
