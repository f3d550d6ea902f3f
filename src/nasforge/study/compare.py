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
) -> dict[str, list[np.ndarray]]:
    """Incumbent curves of ``report`` (selected by ``metric``) per strategy label, one per seed.

    ``strategies`` maps a label to (registry name, settings). Every run is an in-memory
    :class:`Study`, so the comparison exercises exactly the loop users run.
    """
    curves: dict[str, list[np.ndarray]] = {label: [] for label in strategies}
    for label, (name, params) in strategies.items():
        for seed in seeds:
            strategy = get_strategy(name, space, seed=int(seed), **params)
            study = Study(f"{label}-{seed}", space, metric, maximize=maximize)
            study.optimize(strategy, estimator, n_trials=n_trials)
            trials = study.finished_trials
            sel = [t.metrics.get(metric, np.nan) if t.value is not None else np.nan for t in trials]
            rep = [t.metrics.get(report, np.nan) for t in trials]
            curves[label].append(incumbent_curve(sel, rep, maximize=maximize))
            if on_run is not None:
                on_run(label, int(seed))
    return curves
