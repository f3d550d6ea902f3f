"""Several strategies x many seeds on one estimator, on equal query budgets."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from nasforge.analysis.anytime import incumbent_curve
from nasforge.estimation.base import Estimator
from nasforge.spaces.base import SearchSpace
from nasforge.strategies import get_strategy
from nasforge.study.study import Study


def compare_strategies(
    space: SearchSpace,
    estimator: Estimator,
    strategies: Mapping[str, tuple[str, dict[str, Any]]],
    seeds: Sequence[int],
    n_trials: int,
    metric: str,
    report: str,
    maximize: bool = True,
    on_run: Callable[[str, int], None] | None = None,
    n_workers: int = 1,
    times: dict[str, list[np.ndarray]] | None = None,
) -> dict[str, list[np.ndarray]]:
    """Incumbent curves of ``report`` (selected by ``metric``) per strategy label, one per seed,
    over the results in the order they were told.

    ``strategies`` maps a label to (registry name, settings). Every run is an in-memory
    :class:`Study`, so the comparison exercises exactly the loop users run. With
    ``n_workers > 1`` each run has that many simulated workers (each trial occupies one for its
    measured cost); pass a dict as ``times`` to receive, per label and seed, the simulated time
    at which each result of the curve arrived (see :func:`curves_at_times`).
    """
    curves: dict[str, list[np.ndarray]] = {label: [] for label in strategies}
    for label, (name, params) in strategies.items():
        for seed in seeds:
            strategy = get_strategy(name, space, seed=int(seed), **params)
            study = Study(f"{label}-{seed}", space, metric, maximize=maximize)
            study.optimize(strategy, estimator, n_trials=n_trials, n_workers=n_workers,
                           executor="simulated" if n_workers > 1 or times is not None else None)
            trials = sorted(study.finished_trials, key=lambda t: (t.tell_seq is None, t.tell_seq, t.number))
            if times is not None:
                times.setdefault(label, []).append(np.array([t.info.get("sim_end", np.nan) for t in trials]))
            sel = [t.metrics.get(metric, np.nan) if t.value is not None else np.nan for t in trials]
            rep = [t.metrics.get(report, np.nan) for t in trials]
            curves[label].append(incumbent_curve(sel, rep, maximize=maximize))
            if on_run is not None:
                on_run(label, int(seed))
    return curves


def curves_at_times(curves: dict[str, list[np.ndarray]], times: dict[str, list[np.ndarray]],
                    grid: Sequence[float]) -> dict[str, list[np.ndarray]]:
    """Each curve read at the (simulated) times ``grid``: the incumbent of the last result that
    arrived by then (NaN before the first)."""
    out: dict[str, list[np.ndarray]] = {}
    g = np.asarray(grid, dtype=float)
    for label, runs in curves.items():
        out[label] = []
        for curve, t in zip(runs, times[label]):
            idx = np.searchsorted(t, g, side="right") - 1
            out[label].append(np.where(idx >= 0, curve[np.clip(idx, 0, None)], np.nan) if len(curve)
                              else np.full(len(g), np.nan))
    return out
