"""Black-box strategies: random search, regularised evolution, local search."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

from nasforge.errors import NasforgeError
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Strategy, Suggestion


class RandomSearch(Strategy):
    """Uniform random sampling of new architectures."""

    name = "random"

    def ask(self) -> Suggestion:
        sample, rng = self.space.sample, self.rng
        arch = sample(rng)
        if not self.is_new(arch):
            arch = self._unique(lambda: sample(rng))
        return self._claim(arch)


class RegularizedEvolution(Strategy):
    """Regularised (aging) evolution, Real et al. (AAAI 2019).

    The first ``population_size`` suggestions are random. Afterwards each suggestion mutates the
    best of ``sample_size`` members drawn uniformly (without replacement) from the population;
    when its result arrives the child joins the population and the oldest member leaves.

    ``initial`` (optional) lists architectures (objects or strings) to evaluate first, in order,
    as the start of the initial population; random ones fill it up to ``population_size``. This
    is how a warm start enters, e.g. NASWOT's AREA: the top of N proxy-ranked samples (the
    ranking happens outside the strategy; see ``nasforge.estimation.proxies.proxy_warm_start``).
    The list is part of the configuration (stored as strings), so a study resumes with it.
    """

    name = "re"

    def __init__(self, space: SearchSpace, population_size: int = 20, sample_size: int = 10,
                 initial: Sequence[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if population_size < 1 or not 1 <= sample_size <= population_size:
            raise NasforgeError(
                f"regularised evolution needs population_size >= 1 and 1 <= sample_size <= population_size; "
                f"got population_size={population_size}, sample_size={sample_size}"
            )
        self.population_size = population_size
        self.sample_size = sample_size
        self.population: deque[tuple[Any, float]] = deque()
        self._n_asked = 0
        self._set_initial(initial)
        self._settle_params(initial=None if self.initial is None else list(self.initial))

    def ask(self) -> Suggestion:
        self._n_asked += 1
        warm = self._initial_suggestion(self._n_asked)
        if warm is not None:
            return warm
        if len(self.population) < self.population_size and self._n_asked <= self.population_size:
            return self._claim(self._unique(lambda: self.space.sample(self.rng)))
        if not self.population:  # every initial evaluation failed: keep sampling
            return self._claim(self._unique(lambda: self.space.sample(self.rng)))
        members = list(self.population)
        k = min(self.sample_size, len(members))
        idx = self.rng.choice(len(members), size=k, replace=False)
        parent = max((members[i] for i in idx), key=lambda m: m[1])[0]
        child = self._unique(lambda: self.space.mutate(parent, self.rng))
        return self._claim(child, parent=self.space.format(parent))

    def _observe(self, suggestion: Suggestion, score: float, result: Any) -> None:
        if score == -math.inf:  # failed evaluations do not enter the population
            return
        self.population.append((suggestion.arch, score))
        if len(self.population) > self.population_size:
            self.population.popleft()


class LocalSearch(Strategy):
    """Best-improvement hill climbing with random restarts (White et al., 2021).

    Start from ``n_init`` random architectures and climb from the best: evaluate every neighbour
    of the current architecture, then move to the best neighbour if it improves on the current
    one; when none does (a local optimum), restart from a new random architecture. Neighbours
    evaluated earlier are not queried again; their known scores still count. With several
    evaluations in flight, asks that would have to wait for a decision are filled at random.
    """

    name = "ls"

    def __init__(self, space: SearchSpace, n_init: int = 10, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if n_init < 1:
            raise NasforgeError(f"local search needs n_init >= 1, got {n_init}")
        self.n_init = n_init
        self._scores: dict[Any, float] = {}
        self._current: Any = None
        self._expanded = False
        self._queue: deque[Any] = deque()
        self._waiting: set[Any] = set()
        self._restart_arch: Any = None
        self._n_init_asked = 0
        self.n_restarts = 0

    def _random(self, phase: str, wait: bool = True) -> Suggestion:
        arch = self._unique(lambda: self.space.sample(self.rng))
        if wait:
            self._waiting.add(arch)
        return self._claim(arch, phase=phase)

    def ask(self) -> Suggestion:
        if self._n_init_asked < self.n_init:
            self._n_init_asked += 1
            return self._random("init")
        while True:
            while self._queue:
                arch = self._queue.popleft()
                if self.is_new(arch):
                    self._waiting.add(arch)
                    return self._claim(arch, phase="neighbor")
            if self._waiting:  # the next move depends on results still outstanding
                return self._random("fill", wait=False)
            if self._current is None:
                if not self._scores:
                    return self._random("init")
                self._current, self._expanded = max(self._scores, key=self._scores.__getitem__), False
            if not self._expanded:
                nbrs = self.space.neighbors(self._current)
                order = self.rng.permutation(len(nbrs))
                self._queue.extend(nbrs[i] for i in order if nbrs[i] not in self._scores)
                self._expanded = True
                continue
            nbrs = [a for a in self.space.neighbors(self._current) if a in self._scores]
            best = max(nbrs, key=self._scores.__getitem__, default=None)
            if best is not None and self._scores[best] > self._scores[self._current]:
                self._current, self._expanded = best, False
                continue
            # a local optimum: restart from a random architecture
            self.n_restarts += 1
            sug = self._random("restart")
            self._restart_arch = sug.arch
            self._current = None
            return sug

    def _observe(self, suggestion: Suggestion, score: float, result: Any) -> None:
        arch = suggestion.arch
        self._waiting.discard(arch)
        self._scores[arch] = score
        if arch == self._restart_arch:
            self._restart_arch = None
            self._current, self._expanded = arch, False
