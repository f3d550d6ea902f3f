"""Predictor-guided search: any performance predictor, an acquisition, candidates by mutation."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.estimation.predictors.base import Predictor
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Suggestion
from nasforge.strategies.bo.acquisition import expected_improvement
from nasforge.strategies.bo.guided import ModelGuided

ACQUISITIONS = ("auto", "ei", "ucb", "its", "mean")


class PredictorSearch(ModelGuided):
    """Search guided by a performance predictor (:mod:`nasforge.estimation.predictors`).

    After ``n_init`` random architectures, each step fits the predictor on every result so far,
    proposes candidates (``n_candidates`` distinct unseen mutations of the ``n_parents`` best
    architectures, each mutated ``1..mutation_depth`` times, plus ``n_random`` random ones) and
    evaluates the ``k`` best by the acquisition: ``ei`` (expected improvement over the best
    observed score), ``ucb`` (mean + ``beta`` x std), ``its`` (one draw from N(mean, std) per
    candidate, BANANAS' independent Thompson sampling) or ``mean`` (greedy). ``auto`` is ``ei``
    for a predictor with its own uncertainty and ``mean`` otherwise.

    ``predictor`` is a registry name (``gp``, ``bananas``, ``xgb``, ``rf``, ``gin``, ...; its
    settings in ``predictor_params``, its seed the strategy's) or a :class:`Predictor` object,
    stored in the study's configuration as its spec. The strategy never imports torch itself; a
    torch predictor does when it is built.
    """

    name = "predictor"

    def __init__(self, space: SearchSpace, predictor: str | Predictor = "gp",
                 predictor_params: dict[str, Any] | None = None, acquisition: str = "auto", n_init: int = 10,
                 k: int = 1, n_candidates: int = 100, n_parents: int = 5, mutation_depth: int = 1,
                 n_random: int = 20, beta: float = 1.0, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        for key, val, lo in (("n_init", n_init, 1), ("k", k, 1), ("n_candidates", n_candidates, 0),
                             ("n_parents", n_parents, 1), ("mutation_depth", mutation_depth, 1),
                             ("n_random", n_random, 0)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
                raise NasforgeError(f"predictor search setting {key} must be an integer >= {lo}, got {val!r}")
        if n_candidates + n_random < 1:
            raise NasforgeError("predictor search needs candidates: n_candidates + n_random >= 1")
        if acquisition not in ACQUISITIONS:
            raise NasforgeError(f"unknown acquisition {acquisition!r}; allowed: {', '.join(ACQUISITIONS)}")
        if not beta >= 0:
            raise NasforgeError(f"beta must be >= 0, got {beta!r}")
        if predictor_params is not None and not isinstance(predictor_params, dict):
            raise NasforgeError(f"predictor_params must be a dict of predictor settings, got {predictor_params!r}")
        if isinstance(predictor, Predictor):
            if predictor_params:
                raise NasforgeError("predictor_params apply to a predictor given by name; this one is an object")
            if predictor.space is not space and type(predictor.space) is not type(space):
                raise NasforgeError(f"the predictor is for space {predictor.space.name!r}, the search for "
                                    f"{space.name!r}")
            self.model = predictor
        elif isinstance(predictor, str):
            from nasforge.estimation.predictors.registry import get_predictor

            params = dict(predictor_params or {})
            params.setdefault("seed", 0 if self.seed is None else int(self.seed))
            self.model = get_predictor(predictor, space, **params)
        else:
            raise NasforgeError(f"predictor must be a predictor name or a Predictor object, got {predictor!r}")
        if acquisition == "auto":
            acquisition = "ei" if self.model.probabilistic else "mean"
        if acquisition in ("ei", "ucb", "its") and not self.model.probabilistic:
            raise NasforgeError(f"acquisition {acquisition!r} needs a predictor with uncertainty; "
                                f"{self.model.name!r} has none (use 'mean')")
        self.acquisition = acquisition
        self.n_init, self.k, self.n_candidates = int(n_init), int(k), int(n_candidates)
        self.n_parents, self.mutation_depth, self.n_random = int(n_parents), int(mutation_depth), int(n_random)
        self.beta = float(beta)
        self._archs: list[Any] = []
        self._y: list[float] = []
        self._queue: deque[Suggestion] = deque()
        self._n_asked = 0
        self._n_fits = 0
        self._settle_params(acquisition=acquisition)

    def _min_train(self) -> int:
        return max(2, self.model.min_train)

    def candidates(self) -> list[Any]:
        """Unseen mutations of the best architectures (round robin over the parents, each 1 to
        ``mutation_depth`` mutations deep), then ``n_random`` unseen random architectures."""
        out, take = self._mutants_of_best(self._archs, self._y, self.n_parents, self.n_candidates,
                                          depth=self.mutation_depth)
        target = len(out) + self.n_random
        for _ in range(5 * self.n_random):
            if len(out) >= target:
                break
            take(self.space.sample(self.rng))
        return out

    def _select(self) -> list[Suggestion]:
        cands = self.candidates()
        if not cands:
            return [self._claim(self._unique(lambda: self.space.sample(self.rng)), phase="fallback")]
        self.model.fit(self._archs, np.asarray(self._y))
        self._n_fits += 1
        mean, sd = self.model.predict(cands, return_std=True)
        if self.acquisition == "ei":
            scores = expected_improvement(mean, sd**2, float(max(self._y)))
        elif self.acquisition == "ucb":
            scores = mean + self.beta * sd
        elif self.acquisition == "its":
            scores = mean + sd * self.rng.standard_normal(len(mean))
        else:
            scores = mean
        order = np.argsort(-scores, kind="stable")[: self.k]
        return [self._claim(cands[j], phase="predictor", pred=round(float(mean[j]), 6)) for j in order]
