"""Rank ensembles of proxies, as a ranking, as an estimator, and as a warm start for search.

No torch here: an ensemble combines scores, wherever they come from (a :class:`ProxyEstimator`,
a stored :class:`~nasforge.estimation.proxies.results.ProxyTable`, any estimator whose metrics
are proxy scores).

* :class:`RankEnsemble` ranks a set of architectures by the (weighted) mean of their per-proxy
  ranks, each proxy oriented by its declared direction. Weights are equal by default;
  :meth:`RankEnsemble.fit` learns non-negative weights on a labelled set (least squares of the
  target's normalised rank on the proxies' normalised ranks). Fit on architectures disjoint from
  those you evaluate it on.
* :class:`EnsembleEstimator` scores one architecture at a time: each proxy's score becomes its
  percentile within a fixed reference sample (scored once), and the ensemble is the weighted
  mean percentile, so the score of an architecture never depends on what else was evaluated.
* :func:`proxy_warm_start` draws N architectures, scores them, and returns the top ones by the
  ensemble: the initial population of regularised evolution in NASWOT's AREA
  (``RegularizedEvolution(space, initial=warm.archs)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasforge.analysis.correlation import rankdata
from nasforge.errors import NasforgeError
from nasforge.estimation.base import Estimator, Measurement
from nasforge.estimation.proxies.base import PROXIES, resolve_proxies
from nasforge.estimation.proxies.results import draw_distinct
from nasforge.spaces.base import SearchSpace

__all__ = ["RankEnsemble", "EnsembleEstimator", "WarmStart", "proxy_warm_start", "normalized_ranks"]


def normalized_ranks(values: Sequence[float], higher_is_better: bool = True) -> np.ndarray:
    """Ranks scaled to (0, 1]: the best value gets 1; ties share their average; NaN ranks worst."""
    v = np.asarray(values, dtype=float)
    if not higher_is_better:
        v = -v
    return rankdata(v) / max(len(v), 1)


class RankEnsemble:
    """The (weighted) mean of per-proxy normalised ranks; higher is better.

    ``proxies`` names the members (``all``/``cheap`` or a list); ``weights`` maps names to
    non-negative weights (default: equal). Directions come from the proxy registry, or from
    ``directions`` for scores the registry does not know.
    """

    def __init__(self, proxies: str | Sequence[str], weights: Mapping[str, float] | None = None,
                 directions: Mapping[str, bool] | None = None) -> None:
        directions = dict(directions or {})
        names = [p.strip() for p in proxies.split(",")] if isinstance(proxies, str) else list(proxies)
        known = [n for n in names if n not in directions]
        resolved = resolve_proxies(known) if known else []
        self.proxies = [*resolved, *(n for n in names if n in directions and n not in resolved)]
        self.directions = {p: directions.get(p, PROXIES[p].higher_is_better if p in PROXIES else True)
                           for p in self.proxies}
        if weights is None:
            self.weights = {p: 1.0 / len(self.proxies) for p in self.proxies}
        else:
            bad = [k for k in weights if k not in self.proxies]
            if bad:
                raise NasforgeError(f"weights for proxies not in the ensemble: {', '.join(bad)}; "
                                    f"members: {', '.join(self.proxies)}")
            w = np.array([float(weights.get(p, 0.0)) for p in self.proxies])
            if np.any(w < 0) or w.sum() <= 0:
                raise NasforgeError(f"ensemble weights must be non-negative with a positive sum, got {dict(weights)}")
            self.weights = dict(zip(self.proxies, (w / w.sum()).tolist()))

    def _columns(self, table: Any) -> list[np.ndarray]:
        cols = []
        for p in self.proxies:
            try:
                cols.append(np.asarray(table[p], dtype=float))
            except KeyError:
                raise NasforgeError(f"the score table has no column {p!r}") from None
        return cols

    def member_ranks(self, table: Any) -> np.ndarray:
        """(n, members) normalised ranks of the rows of ``table`` (a DataFrame or mapping of columns)."""
        return np.stack([normalized_ranks(c, self.directions[p]) for p, c in zip(self.proxies, self._columns(table))],
                        axis=1)

    def score(self, table: Any) -> np.ndarray:
        """The ensemble score of every row of ``table``: weighted mean of normalised ranks within it."""
        w = np.array([self.weights[p] for p in self.proxies])
        return self.member_ranks(table) @ w

    def fit(self, table: Any, target: Sequence[float], higher_is_better: bool = True) -> RankEnsemble:
        """Learn non-negative weights on a labelled set; returns ``self``.

        Least squares of the target's normalised rank on the members' normalised ranks, with
        weights constrained to be >= 0 (``scipy.optimize.nnls``), then scaled to sum to 1.
        """
        from scipy.optimize import nnls

        y = np.asarray(target, dtype=float)
        keep = ~np.isnan(y)
        ranks = self.member_ranks(table)
        if keep.sum() < 3:
            raise NasforgeError(f"fitting ensemble weights needs at least 3 labelled architectures, got {keep.sum()}")
        r = ranks[keep]
        t = normalized_ranks(y[keep], higher_is_better)
        # centre both sides: the weights explain the ordering, not the offset
        w, _ = nnls(r - r.mean(0), t - t.mean())
        if w.sum() <= 0:
            w = np.ones(len(self.proxies))
        self.weights = dict(zip(self.proxies, (w / w.sum()).tolist()))
        return self

    def __repr__(self) -> str:
        return "RankEnsemble(" + ", ".join(f"{p}={w:.3g}" for p, w in self.weights.items()) + ")"


class EnsembleEstimator(Estimator):
    """An ensemble of proxies as an estimator: the weighted mean of each proxy's percentile.

    ``estimator`` supplies the proxy scores of one architecture (a :class:`ProxyEstimator`, a
    :class:`ProxyTable`, ...); ``reference`` holds each member's scores on a fixed reference sample
    (a DataFrame or mapping of columns, e.g. a results file). A score's percentile is the share
    of reference scores below it (ties count half), oriented by the proxy's direction. The
    measurement carries the member scores and ``ensemble`` (in [0, 1], higher is better); its
    cost is the inner estimator's.
    """

    fidelities = None

    def __init__(self, estimator: Estimator, ensemble: RankEnsemble, reference: Any) -> None:
        self.estimator = estimator
        self.ensemble = ensemble
        self.space = getattr(estimator, "space", None)
        self._ref = {}
        for p in ensemble.proxies:
            try:
                col = np.asarray(reference[p], dtype=float)
            except KeyError:
                raise NasforgeError(f"the reference sample has no scores for {p!r}") from None
            col = np.where(np.isnan(col), -np.inf, col)
            self._ref[p] = np.sort(col if ensemble.directions[p] else -col)
        if not all(len(v) for v in self._ref.values()):
            raise NasforgeError("the reference sample is empty")

    @property
    def metric_names(self) -> list[str]:
        return ["ensemble", *self.ensemble.proxies]

    def higher_is_better(self, metric: str) -> bool:
        if metric == "ensemble":
            return True
        return self.estimator.higher_is_better(metric)

    def percentile(self, proxy: str, value: float) -> float:
        """Share of the reference scores of ``proxy`` below ``value`` (ties count half), oriented."""
        ref = self._ref[proxy]
        v = -np.inf if np.isnan(value) else (value if self.ensemble.directions[proxy] else -value)
        lo = np.searchsorted(ref, v, side="left")
        hi = np.searchsorted(ref, v, side="right")
        return float((lo + 0.5 * (hi - lo)) / len(ref))

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        m = self.estimator.estimate(arch, fidelity)
        metrics = {p: float(m.metrics[p]) for p in self.ensemble.proxies}
        metrics["ensemble"] = float(sum(self.ensemble.weights[p] * self.percentile(p, metrics[p])
                                        for p in self.ensemble.proxies))
        return Measurement(metrics, m.cost, m.fidelity, dict(m.info))


@dataclass
class WarmStart:
    """The outcome of :func:`proxy_warm_start`: the chosen architectures (best first, as strings),
    every sampled architecture with its ensemble score, and the seconds spent scoring."""

    archs: list[str]
    sampled: list[str] = field(default_factory=list)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seconds: float = 0.0


def proxy_warm_start(
    space: SearchSpace,
    estimator: Estimator,
    n_samples: int,
    n_top: int,
    seed: int = 0,
    ensemble: RankEnsemble | None = None,
    candidates: Iterable[Any] | None = None,
) -> WarmStart:
    """The top ``n_top`` of ``n_samples`` distinct random architectures by a proxy ensemble (AREA).

    Architectures are drawn with ``seed`` from the space, or from ``candidates`` when given (for
    instance the architectures of a stored score table), scored with ``estimator`` (whose cost
    is summed into ``seconds``) and ranked within the sample by ``ensemble`` (default: equal
    weights over the estimator's proxy metrics). Deterministic given the seed and the scores.
    """
    if n_top < 1 or n_samples < n_top:
        raise NasforgeError(f"need 1 <= n_top <= n_samples, got n_top={n_top}, n_samples={n_samples}")
    rng = np.random.default_rng(seed)
    if candidates is not None:
        pool = list(dict.fromkeys(space.coerce(a) for a in candidates))
        if len(pool) < n_samples:
            raise NasforgeError(f"n_samples={n_samples} exceeds the {len(pool)} candidate architectures")
        picked = [pool[i] for i in rng.choice(len(pool), n_samples, replace=False)]
    else:
        picked = draw_distinct(space, n_samples, rng)
    if ensemble is None:
        names = [m for m in estimator.metric_names if m in PROXIES]
        if not names:
            raise NasforgeError("the estimator reports no proxy metrics; pass an ensemble")
        ensemble = RankEnsemble(names)
    rows: dict[str, list[float]] = {p: [] for p in ensemble.proxies}
    seconds = 0.0
    for a in picked:
        m = estimator.estimate(a)
        seconds += m.cost
        for p in ensemble.proxies:
            rows[p].append(float(m.metrics[p]))
    scores = ensemble.score(rows)
    order = np.argsort(-scores, kind="mergesort")  # ties: the earlier sample first
    texts = [space.format(a) for a in picked]
    return WarmStart([texts[i] for i in order[:n_top]], texts, scores, seconds)
