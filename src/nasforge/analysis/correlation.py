"""Rank correlations between predicted scores and measured performance (numpy only, no torch).

Used to judge performance predictors such as zero-cost proxies: Spearman's rho, Kendall's
tau-b, top-k precision, bootstrap error bars, and a score-vs-accuracy scatter plot.

Conventions: ``x`` is the predictor's score (higher = predicted better; negate it first for a
lower-is-better predictor) and ``y`` the measured metric. Pairs where either value is NaN are
dropped; ``-inf``/``+inf`` are valid values (the lowest/highest possible score) and rank as such.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["rankdata", "spearman", "kendall_tau", "top_k_precision", "bootstrap", "correlation_table",
           "plot_score_vs_metric"]


def _pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x, dtype=float).ravel()
    b = np.asarray(y, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"x and y differ in length: {a.size} vs {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep]


def rankdata(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as ``scipy.stats.rankdata``); NaN ranks lowest."""
    v = np.asarray(values, dtype=float).ravel()
    v = np.where(np.isnan(v), -np.inf, v)
    order = np.argsort(v, kind="mergesort")
    s = v[order]
    n = len(v)
    # boundaries of runs of equal values in sorted order
    new = np.concatenate(([True], s[1:] != s[:-1])) if n else np.zeros(0, bool)
    starts = np.flatnonzero(new)
    ends = np.concatenate((starts[1:], [n]))
    avg = (starts + ends + 1) / 2.0  # mean of 1-based positions start+1..end
    ranks = np.empty(n)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson correlation of average ranks); NaN if undefined."""
    a, b = _pairs(x, y)
    if len(a) < 2:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def kendall_tau(x: Sequence[float], y: Sequence[float], block: int = 512) -> float:
    """Kendall's tau-b (ties corrected, as ``scipy.stats.kendalltau``); NaN if undefined.

    Counts concordant minus discordant pairs exactly, in blocks of ``block`` rows (O(n^2) work,
    vectorised: about a second for 15,000 pairs of values).
    """
    a, b = _pairs(x, y)
    n = len(a)
    if n < 2:
        return float("nan")
    # replace values by dense integer ranks: exact comparisons, infinities included
    a = np.unique(a, return_inverse=True)[1].astype(np.int32)
    b = np.unique(b, return_inverse=True)[1].astype(np.int32)
    s = 0
    for i in range(0, n, block):
        da = np.sign(a[i:i + block, None] - a[None, :])
        db = np.sign(b[i:i + block, None] - b[None, :])
        s += int((da * db).sum(dtype=np.int64))
    s //= 2  # every unordered pair was counted twice
    n0 = n * (n - 1) // 2

    def tied_pairs(v: np.ndarray) -> int:
        counts = np.bincount(v)
        return int((counts * (counts - 1) // 2).sum())

    n1, n2 = tied_pairs(a), tied_pairs(b)
    den = np.sqrt(float(n0 - n1) * float(n0 - n2))
    return float(s / den) if den > 0 else float("nan")


def top_k_precision(x: Sequence[float], y: Sequence[float], k: float = 0.1) -> float:
    """Share of the top-``k`` architectures by score that are also in the top-``k`` by metric.

    ``k`` is a count (``k >= 1``) or a fraction of the architectures (``0 < k < 1``; 0.1 is the
    top 10%). Ties at the cut are broken by position, for both rankings alike.
    """
    a, b = _pairs(x, y)
    n = len(a)
    if n == 0:
        return float("nan")
    if k <= 0:
        raise ValueError(f"k must be a positive count or a fraction in (0, 1), got {k}")
    m = int(round(k * n)) if k < 1 else int(k)
    m = max(1, min(m, n))
    top_a = np.argsort(-a, kind="mergesort")[:m]
    top_b = np.argsort(-b, kind="mergesort")[:m]
    return float(len(np.intersect1d(top_a, top_b)) / m)


def bootstrap(
    stat: Callable[[np.ndarray, np.ndarray], float],
    x: Sequence[float],
    y: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Bootstrap over architectures (pairs resampled with replacement) of ``stat(x, y)``.

    Returns the statistic on the full data (``value``), the bootstrap standard error (``se``) and
    the percentile interval at ``level`` (``low``, ``high``), plus ``n`` pairs used.
    """
    a, b = _pairs(x, y)
    n = len(a)
    value = stat(a, b)
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        reps[i] = stat(a[idx], b[idx])
    reps = reps[~np.isnan(reps)]
    if len(reps) == 0:
        return {"value": value, "se": float("nan"), "low": float("nan"), "high": float("nan"), "n": n}
    tail = (1.0 - level) / 2.0
    return {"value": float(value), "se": float(reps.std(ddof=1)) if len(reps) > 1 else float("nan"),
            "low": float(np.quantile(reps, tail)), "high": float(np.quantile(reps, 1.0 - tail)), "n": n}


def correlation_table(
    scores: Mapping[str, Sequence[float]],
    target: Sequence[float],
    higher_is_better: Mapping[str, bool] | None = None,
    top_k: Sequence[float] = (0.1,),
    n_boot: int = 0,
    seed: int = 0,
) -> Any:
    """Spearman rho, Kendall tau and top-k precision of every score column against ``target``.

    ``higher_is_better[name] == False`` negates that column first (so a good lower-is-better
    predictor gets a positive rho). With ``n_boot > 0`` the table adds the bootstrap standard
    error and 95% interval of rho. Returns a pandas DataFrame indexed by score name.
    """
    import pandas as pd

    rows = []
    for name, col in scores.items():
        v = np.asarray(col, dtype=float)
        if higher_is_better is not None and higher_is_better.get(name, True) is False:
            v = -v
        row: dict[str, Any] = {"proxy": name, "n": int(len(_pairs(v, target)[0])),
                               "spearman": spearman(v, target), "kendall": kendall_tau(v, target)}
        if n_boot > 0:
            bs = bootstrap(spearman, v, target, n_boot=n_boot, seed=seed)
            row.update(spearman_se=bs["se"], spearman_low=bs["low"], spearman_high=bs["high"])
        for k in top_k:
            label = f"top{k * 100:g}%" if k < 1 else f"top{int(k)}"
            row[label] = top_k_precision(v, target, k)
        rows.append(row)
    return pd.DataFrame(rows).set_index("proxy")


def plot_score_vs_metric(
    score: Sequence[float],
    metric: Sequence[float],
    path: str,
    xlabel: str,
    ylabel: str,
    title: str = "",
    log: bool | None = None,
) -> None:
    """A scatter plot of one predictor's scores against the measured metric, saved as a PNG.

    Scores spanning several orders of magnitude (all positive, max/min > 1e3) are drawn on a
    log axis unless ``log`` says otherwise; infinite scores are left out of the drawing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = _pairs(score, metric)
    rho, n_all = spearman(a, b), len(a)  # infinite scores count (as the lowest/highest) in rho
    finite = np.isfinite(a)
    a, b = a[finite], b[finite]
    if log is None:
        log = bool(len(a)) and a.min() > 0 and a.max() / a.min() > 1e3
    fig, ax = plt.subplots(figsize=(5.0, 3.8), dpi=110)
    ax.scatter(a, b, s=5, alpha=0.45, linewidths=0)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    hidden = f", {n_all - len(a)} infinite not drawn" if n_all > len(a) else ""
    ax.set_title((title + "  " if title else "") + f"Spearman ρ = {rho:.3f} (n = {n_all}{hidden})", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
