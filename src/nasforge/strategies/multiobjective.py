"""Multi-objective strategies: NSGA-II, multi-objective regularised evolution, random Chebyshev scalarisation.

They extend the scalar ask/tell interface: ``metric`` is a list of metric names and ``maximize``
a list of directions (a study fills both in from its objectives), and ``tell`` takes a
Measurement (or a mapping) holding every objective. Internally each result becomes a vector to
maximise (minimised objectives are negated); a failed or incomplete result never enters a
population. Like every strategy they are deterministic given the seed and the results told, never
suggest an architecture twice, and respect a ``feasible=`` predicate (hard constraints).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from nasforge.analysis.pareto import crowding_distance, non_dominated_sort
from nasforge.errors import NasforgeError
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Strategy, Suggestion


class MultiObjectiveStrategy(Strategy):
    """Base of strategies that optimise several metrics at once.

    ``metric``: the objective names (two or more); ``maximize``: one direction per objective (a
    single bool applies to all; ``None`` lets a study fill it in). ``best_arch``/``best_score``
    track the first objective only, for compatibility with scalar code.
    """

    multi_objective = True

    def __init__(self, space: SearchSpace, metric: Sequence[str] | None = None,
                 maximize: Sequence[bool] | bool | None = None, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self.metric = list(metric) if metric is not None and not isinstance(metric, str) else metric
        self.maximize = maximize
        #: every successful result: (arch, objective vector to maximise)
        self.observed: list[tuple[Any, np.ndarray]] = []

    # --- objectives ---------------------------------------------------------------------------
    def _objectives(self) -> tuple[list[str], list[bool]]:
        metrics = self.metric
        if metrics is None or isinstance(metrics, str):
            raise NasforgeError(f"strategy {self.name!r} is multi-objective: set metric to a list of two or more "
                                f"metric names (got {metrics!r})")
        metrics = list(metrics)
        if len(metrics) < 2:
            raise NasforgeError(f"strategy {self.name!r} needs two or more objectives, got {metrics!r}")
        dirs = self.maximize
        if dirs is None:
            raise NasforgeError(f"strategy {self.name!r}: set maximize to one direction per objective")
        dirs = [bool(dirs)] * len(metrics) if isinstance(dirs, (bool, np.bool_)) else [bool(d) for d in dirs]
        if len(dirs) != len(metrics):
            raise NasforgeError(f"{len(metrics)} objectives ({', '.join(metrics)}) but {len(dirs)} directions")
        return metrics, dirs

    def vector(self, result: Any) -> np.ndarray | None:
        """The result as a vector to maximise; ``None`` for a failure or a missing/NaN objective."""
        if result is None:
            return None
        metrics, dirs = self._objectives()
        values = getattr(result, "metrics", result)
        if not isinstance(values, dict):
            raise NasforgeError(f"strategy {self.name!r} needs a Measurement or a dict of metrics, got {result!r}")
        out = []
        for m, d in zip(metrics, dirs):
            if m not in values:
                raise NasforgeError(f"measurement has no metric {m!r}; it has: {', '.join(values)}")
            v = float(values[m])
            if math.isnan(v):
                return None
            out.append(v if d else -v)
        return np.array(out)

    def tell(self, suggestion: Suggestion, result: Any) -> None:
        vec = self.vector(result)
        self.n_told += 1
        score = -math.inf if vec is None else float(vec[0])
        if score > self.best_score:
            self.best_score, self.best_arch = score, suggestion.arch
        if vec is not None:
            self.observed.append((suggestion.arch, vec))
        self._observe_vector(suggestion, vec)

    def _observe_vector(self, suggestion: Suggestion, vec: np.ndarray | None) -> None:
        """Strategy-specific bookkeeping (``vec`` is to be maximised; ``None`` if failed)."""

    # --- shared helpers ----------------------------------------------------------------------
    @staticmethod
    def _rank_and_crowding(V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """NSGA-II rank (0 best) and crowding distance within each front, for maximised vectors."""
        rank = non_dominated_sort(V, maximize=True)
        crowd = np.zeros(len(V))
        for r in np.unique(rank):
            idx = np.flatnonzero(rank == r)
            crowd[idx] = crowding_distance(V[idx], maximize=True)
        return rank, crowd

    def _random(self, **info: Any) -> Suggestion:
        return self._claim(self._unique(lambda: self.space.sample(self.rng)), **info)

    def _child(self, parent: Any, other: Any = None, crossover_prob: float = 0.0) -> Any:
        """A new architecture from ``parent``: uniform crossover with ``other`` (tuple-valued
        architectures of equal length, when the space accepts the result), then one mutation
        unless the crossover child is already new. Proposals that are not new (or not feasible)
        are repaired by mutating again (see ``Strategy._unique``)."""
        space, rng = self.space, self.rng

        def propose() -> Any:
            base = parent
            if other is not None and crossover_prob > 0 and rng.random() < crossover_prob:
                cand = _crossover(space, parent, other, rng)
                if cand is not None:
                    if self.is_new(cand):
                        return cand
                    base = cand
            return space.mutate(base, rng)

        return self._unique(propose)


def _crossover(space: SearchSpace, a: Any, b: Any, rng: np.random.Generator) -> Any:
    if not (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) and len(a) > 1):
        return None
    pick = rng.random(len(a)) < 0.5
    child = tuple(x if p else y for x, y, p in zip(a, b, pick))
    try:
        return space.coerce(child)
    except Exception:  # noqa: BLE001 - a combination the space does not hold
        return None


class NSGA2(MultiObjectiveStrategy):
    """NSGA-II (Deb et al., 2002) with ask/tell: generations of ``population_size`` children.

    The first generation is random. Each child is made from two parents drawn by binary
    tournament (lower non-domination rank, then larger crowding distance), by uniform crossover
    with probability ``crossover_prob`` and one mutation. When a whole generation has been told,
    parents and children are merged and the best ``population_size`` by rank and crowding
    survive (elitism). Asks made before a generation is complete draw from the current parents.
    """

    name = "nsga2"

    def __init__(self, space: SearchSpace, population_size: int = 20, crossover_prob: float = 0.5,
                 **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if population_size < 2:
            raise NasforgeError(f"NSGA-II needs population_size >= 2, got {population_size}")
        if not 0.0 <= crossover_prob <= 1.0:
            raise NasforgeError(f"crossover_prob must be in [0, 1], got {crossover_prob}")
        self.population_size = population_size
        self.crossover_prob = crossover_prob
        self.parents: list[tuple[Any, np.ndarray]] = []
        self.offspring: list[tuple[Any, np.ndarray]] = []
        self._asked_in_gen = 0
        self._pending = 0
        self.generation = 0
        self._rank = np.zeros(0)
        self._crowd = np.zeros(0)

    def _tournament(self) -> Any:
        i, j = self.rng.integers(len(self.parents), size=2)
        better = i if (self._rank[i], -self._crowd[i]) <= (self._rank[j], -self._crowd[j]) else j
        return self.parents[int(better)][0]

    def ask(self) -> Suggestion:
        self._pending += 1
        if not self.parents:  # first generation (or every parent failed): random
            return self._random(generation=self.generation)
        a = self._tournament()
        b = self._tournament()
        return self._claim(self._child(a, b, self.crossover_prob), generation=self.generation,
                           parent=self.space.format(a))

    def _observe_vector(self, suggestion: Suggestion, vec: np.ndarray | None) -> None:
        self._pending = max(0, self._pending - 1)
        self._asked_in_gen += 1
        if vec is not None:
            self.offspring.append((suggestion.arch, vec))
        if self._asked_in_gen >= self.population_size:
            self._survive()

    def _survive(self) -> None:
        pool = self.parents + self.offspring
        self.offspring, self._asked_in_gen = [], 0
        self.generation += 1
        if not pool:
            return
        V = np.stack([v for _, v in pool])
        rank, crowd = self._rank_and_crowding(V)
        order = sorted(range(len(pool)), key=lambda i: (rank[i], -crowd[i], i))[: self.population_size]
        self.parents = [pool[i] for i in order]
        PV = np.stack([v for _, v in self.parents])
        self._rank, self._crowd = self._rank_and_crowding(PV)


class MORegularizedEvolution(MultiObjectiveStrategy):
    """Multi-objective regularised (aging) evolution.

    As regularised evolution (Real et al., 2019), with the tournament decided by Pareto
    dominance: among ``sample_size`` members drawn from the population, the parent is the one with
    the lowest non-domination rank within the population, ties broken by crowding distance (the
    NSGA-II order). The child replaces the oldest member.
    """

    name = "mo-re"

    def __init__(self, space: SearchSpace, population_size: int = 20, sample_size: int = 10, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if population_size < 1 or not 1 <= sample_size <= population_size:
            raise NasforgeError(
                "multi-objective regularised evolution needs population_size >= 1 and 1 <= sample_size <= "
                f"population_size; got population_size={population_size}, sample_size={sample_size}"
            )
        self.population_size = population_size
        self.sample_size = sample_size
        self.population: deque[tuple[Any, np.ndarray]] = deque()
        self._n_asked = 0

    def ask(self) -> Suggestion:
        self._n_asked += 1
        if not self.population or (len(self.population) < self.population_size
                                   and self._n_asked <= self.population_size):
            return self._random()
        members = list(self.population)
        V = np.stack([v for _, v in members])
        rank, crowd = self._rank_and_crowding(V)
        k = min(self.sample_size, len(members))
        idx = self.rng.choice(len(members), size=k, replace=False)
        best = min(idx, key=lambda i: (rank[i], -crowd[i], i))
        parent = members[int(best)][0]
        return self._claim(self._child(parent), parent=self.space.format(parent))

    def _observe_vector(self, suggestion: Suggestion, vec: np.ndarray | None) -> None:
        if vec is None:
            return
        self.population.append((suggestion.arch, vec))
        if len(self.population) > self.population_size:
            self.population.popleft()


class ChebyshevScalarization(MultiObjectiveStrategy):
    """Random Chebyshev scalarisation (ParEGO-style weights) driving regularised evolution.

    Each ask draws weights ``w`` uniformly from the simplex and scores population members by the
    augmented Chebyshev function ``max_i w_i d_i + 0.05 * sum_i w_i d_i`` of their normalised
    distances ``d_i`` to the best value seen in objective ``i`` (normalised by the range seen so
    far); the best of ``sample_size`` sampled members is mutated. The population ages as in
    regularised evolution. A scalarising baseline: one random trade-off per step.
    """

    name = "chebyshev"

    def __init__(self, space: SearchSpace, population_size: int = 20, sample_size: int = 10, rho: float = 0.05,
                 **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if population_size < 1 or not 1 <= sample_size <= population_size:
            raise NasforgeError(
                f"Chebyshev scalarisation needs population_size >= 1 and 1 <= sample_size <= population_size; "
                f"got population_size={population_size}, sample_size={sample_size}"
            )
        if rho < 0:
            raise NasforgeError(f"rho must be >= 0, got {rho}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.rho = rho
        self.population: deque[tuple[Any, np.ndarray]] = deque()
        self._n_asked = 0

    def ask(self) -> Suggestion:
        self._n_asked += 1
        if not self.population or (len(self.population) < self.population_size
                                   and self._n_asked <= self.population_size):
            return self._random()
        allv = np.stack([v for _, v in self.observed])
        ideal, worst = allv.max(axis=0), allv.min(axis=0)
        span = np.where(ideal > worst, ideal - worst, 1.0)
        w = self.rng.dirichlet(np.ones(len(ideal)))
        members = list(self.population)
        k = min(self.sample_size, len(members))
        idx = self.rng.choice(len(members), size=k, replace=False)

        def cheb(i: int) -> float:
            d = (ideal - members[i][1]) / span
            return float(np.max(w * d) + self.rho * np.sum(w * d))

        best = min(idx, key=lambda i: (cheb(int(i)), i))
        parent = members[int(best)][0]
        return self._claim(self._child(parent), parent=self.space.format(parent),
                           weights=[round(float(x), 4) for x in w])

    def _observe_vector(self, suggestion: Suggestion, vec: np.ndarray | None) -> None:
        if vec is None:
            return
        self.population.append((suggestion.arch, vec))
        if len(self.population) > self.population_size:
            self.population.popleft()


class MORandomSearch(MultiObjectiveStrategy):
    """Uniform random sampling, told several objectives (the multi-objective baseline)."""

    name = "mo-random"

    def ask(self) -> Suggestion:
        return self._random()


__all__ = ["MultiObjectiveStrategy", "NSGA2", "MORegularizedEvolution", "ChebyshevScalarization", "MORandomSearch"]
