"""Predictor-guided search: any performance predictor, an acquisition, candidates by mutation."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.estimation.predictors.base import Predictor
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Suggestion
from nasforge.strategies.bo.acquisition import expected_improvement
from nasforge.strategies.bo.gp import normalise_targets
from nasforge.strategies.bo.guided import ModelGuided

ACQUISITIONS = ("auto", "ei", "ucb", "its", "mean")
TRANSFORMS = ("none", "rank")
#: the largest space whose every unseen architecture ``exhaustive=True`` scores
MAX_EXHAUSTIVE = 100_000


class PredictorSearch(ModelGuided):
    """Search guided by a performance predictor (:mod:`nasforge.estimation.predictors`).

    After ``n_init`` random architectures, each step fits the predictor on every result so far,
    proposes candidates (``n_candidates`` distinct unseen mutations of the ``n_parents`` best
    architectures, each mutated ``1..mutation_depth`` times; with ``n_local`` also up to
    ``n_local`` unseen one-step neighbours (``space.neighbors``) of each of those parents, drawn
    as the ``bo`` strategy draws them; plus ``n_random`` random ones) and evaluates the ``k``
    best by the acquisition: ``ei`` (expected improvement over the best observed score), ``ucb``
    (mean + ``beta`` x std), ``its`` (one draw from N(mean, std) per candidate, BANANAS'
    independent Thompson sampling) or ``mean`` (greedy). ``auto`` is ``ei`` for a predictor with
    its own uncertainty and ``mean`` otherwise. ``transform`` maps the scores before the
    predictor sees them: ``none`` (the default, also when left ``None``) or ``rank`` (the
    Gaussian copula of the ``bo`` strategy, robust to the few cells that do not train); the
    acquisition then works in those units. ``exhaustive=True`` (a finite space of at most
    100,000 architectures) scores every unseen architecture instead of ``n_random`` random ones:
    the acquisition is then maximised over the whole space. ``bo``'s candidate set is
    ``n_candidates=0, n_local=24, n_random=100``. ``initial`` (optional) lists architectures to
    evaluate first, the start of the initial design (random ones fill it up to ``n_init``): the
    zero-cost warm start of Abdelfattah et al. (ICLR 2021) enters here, as the top of N
    proxy-ranked samples (:func:`nasforge.estimation.proxies.proxy_warm_start`); it is stored in
    the configuration, so a study resumes with it.

    ``predictor`` is a registry name (``gp``, ``bananas``, ``xgb``, ``rf``, ``gin``, ...; its
    settings in ``predictor_params``, its seed the strategy's) or a :class:`Predictor` object,
    stored in the study's configuration as its spec. The strategy never imports torch itself; a
    torch predictor does when it is built.
    """

    name = "predictor"

    def __init__(self, space: SearchSpace, predictor: str | Predictor = "gp",
                 predictor_params: dict[str, Any] | None = None, acquisition: str = "auto", n_init: int = 10,
                 k: int = 1, n_candidates: int = 100, n_parents: int = 5, mutation_depth: int = 1,
                 n_random: int = 20, beta: float = 1.0, n_local: int | None = None,
                 transform: str | None = None, exhaustive: bool | None = None,
                 initial: Sequence[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        for key, val, lo in (("n_init", n_init, 1), ("k", k, 1), ("n_candidates", n_candidates, 0),
                             ("n_parents", n_parents, 1), ("mutation_depth", mutation_depth, 1),
                             ("n_random", n_random, 0), ("n_local", 0 if n_local is None else n_local, 0)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
                raise NasforgeError(f"predictor search setting {key} must be an integer >= {lo}, got {val!r}")
        if n_candidates + n_random + (n_local or 0) < 1:
            raise NasforgeError("predictor search needs candidates: n_candidates + n_local + n_random >= 1")
        if transform is not None and transform not in TRANSFORMS:
            raise NasforgeError(f"unknown transform {transform!r}; allowed: {', '.join(TRANSFORMS)}")
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
        self.n_local, self.transform = int(n_local or 0), transform or "none"
        self.exhaustive = bool(exhaustive)
        if self.exhaustive:
            size = space.finite_size()
            if size is None or size > MAX_EXHAUSTIVE:
                raise NasforgeError(f"exhaustive candidates need an enumerable space of at most {MAX_EXHAUSTIVE:,} "
                                    f"architectures; space {space.name!r} has "
                                    f"{'no finite size' if size is None else f'{size:,}'}")
        self._archs: list[Any] = []
        self._y: list[float] = []
        self._queue: deque[Suggestion] = deque()
        self._n_asked = 0
        self._n_fits = 0
        self._set_initial(initial)
        self._settle_params(acquisition=acquisition, initial=self.initial)

    def _min_train(self) -> int:
        return max(2, self.model.min_train)

    def candidates(self) -> list[Any]:
        """Unseen mutations of the best architectures (round robin over the parents, each 1 to
        ``mutation_depth`` mutations deep), then up to ``n_local`` unseen neighbours of each of
        those parents, then ``n_random`` unseen random architectures."""
        out, take = self._mutants_of_best(self._archs, self._y, self.n_parents, self.n_candidates,
                                          depth=self.mutation_depth)
        if self.n_local:
            order = sorted(range(len(self._y)), key=lambda i: (-self._y[i], i))
            parents: list[Any] = []
            for i in order:
                if self._archs[i] not in parents:
                    parents.append(self._archs[i])
                if len(parents) == self.n_parents:
                    break
            for parent in parents:
                nbrs = [a for a in self.space.neighbors(parent) if self.is_new(a)]
                if len(nbrs) > self.n_local:
                    pick = np.sort(self.rng.choice(len(nbrs), size=self.n_local, replace=False))
                    nbrs = [nbrs[i] for i in pick]
                for a in nbrs:
                    take(a)
        if self.exhaustive:
            for a in self.space:
                take(a)
            return out
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
        y = np.asarray(self._y)
        if self.transform == "rank":
            y = normalise_targets(y, "rank")
        self.model.fit(self._archs, y)
        self._n_fits += 1
        mean, sd = self.model.predict(cands, return_std=True)
        if self.acquisition == "ei":
            scores = expected_improvement(mean, sd**2, float(y.max()))
        elif self.acquisition == "ucb":
            scores = mean + self.beta * sd
        elif self.acquisition == "its":
            scores = mean + sd * self.rng.standard_normal(len(mean))
        else:
            scores = mean
        order = np.argsort(-scores, kind="stable")[: self.k]
        return [self._claim(cands[j], phase="predictor", pred=round(float(mean[j]), 6)) for j in order]
