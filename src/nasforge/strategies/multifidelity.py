"""Multi-fidelity schedulers: successive halving, Hyperband, ASHA and PASHA.

Each wraps a base sampler (random search or regularised evolution) that proposes new
architectures; the scheduler decides at which fidelity (rung) each is evaluated and which are
promoted. Promotion asks for the same architecture at a larger fidelity: an estimator that keeps
checkpoints (real training) continues it, a table simply looks the larger fidelity up.

Rung levels come from ``rungs`` (e.g. ``[12, 200]`` for the NB201 tables) or from
``min_fidelity``, ``max_fidelity`` and ``eta`` (``min * eta**k``, with ``max`` appended).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Strategy, Suggestion
from nasforge.strategies.blackbox import RandomSearch, RegularizedEvolution

BASES = {"random": RandomSearch, "re": RegularizedEvolution}


def rung_levels(rungs: Sequence[float] | None, min_fidelity: float | None, max_fidelity: float | None,
                eta: float) -> list[float]:
    """Sorted rung fidelities from an explicit list or a geometric ladder."""
    if eta <= 1:
        raise NasforgeError(f"eta must be > 1, got {eta}")
    if rungs is not None:
        levels = sorted(float(r) for r in rungs)
        if len(levels) < 2 or len(set(levels)) != len(levels) or levels[0] <= 0:
            raise NasforgeError(f"rungs must be >= 2 distinct positive fidelities, got {list(rungs)}")
        return levels
    if min_fidelity is None or max_fidelity is None:
        raise NasforgeError("give rungs=[...] or both min_fidelity and max_fidelity")
    if not 0 < min_fidelity < max_fidelity:
        raise NasforgeError(f"need 0 < min_fidelity < max_fidelity, got {min_fidelity}, {max_fidelity}")
    levels = []
    r = float(min_fidelity)
    while r < max_fidelity * (1 - 1e-9):
        levels.append(float(round(r, 6)))
        r *= eta
    levels.append(float(max_fidelity))
    return levels


class _Scheduler(Strategy):
    """Shared machinery: rungs, the base sampler, bookkeeping of results per rung."""

    def __init__(
        self,
        space: SearchSpace,
        rungs: Sequence[float] | None = None,
        min_fidelity: float | None = None,
        max_fidelity: float | None = None,
        eta: float = 3,
        base: str = "random",
        base_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(space, **kwargs)
        self.levels = rung_levels(rungs, min_fidelity, max_fidelity, eta)
        self.eta = eta
        if base not in BASES:
            raise NasforgeError(f"unknown base sampler {base!r}; allowed: {', '.join(BASES)}")
        self.base_name = base
        self.base_params = dict(base_params or {})
        self.base = BASES[base](space, seed=self.seed, metric=self.metric, maximize=self.maximize,
                                allow_duplicates=self.allow_duplicates, dedup=self.dedup, feasible=self.feasible,
                                **self.base_params)
        # rung index -> {arch: score}; results arrive through tell
        self.results: list[dict[Any, float]] = [{} for _ in self.levels]
        # each rung's results kept sorted as (-score, first-arrival index, arch): _top is a slice
        self._ranked: list[list[tuple[float, int, Any]]] = [[] for _ in self.levels]
        self._rank_key: list[dict[Any, tuple[float, int, Any]]] = [{} for _ in self.levels]
        self._base_sugs: dict[Any, Suggestion] = {}
        # the levels stand for the range they were computed from (rebuilding gives the same rungs)
        self._settle_params(rungs=list(self.levels), min_fidelity=None, max_fidelity=None,
                            base_params=dict(self.base_params))

    def _new_config(self, rung: int = 0, **info: Any) -> Suggestion:
        self.base.metric, self.base.maximize = self.metric, self.maximize
        s = self.base.ask()
        self._base_sugs[s.arch] = s
        return Suggestion(s.arch, self.levels[rung], {"rung": rung, **info})

    def _promote(self, arch: Any, rung: int, **info: Any) -> Suggestion:
        return Suggestion(arch, self.levels[rung], {"rung": rung, "promoted": True, **info})

    def _rung_of(self, suggestion: Suggestion) -> int:
        rung = suggestion.info.get("rung")
        if rung is None:
            rung = self.levels.index(float(suggestion.fidelity))
        return int(rung)

    def _observe(self, suggestion: Suggestion, score: float, result: Any) -> None:
        rung = self._rung_of(suggestion)
        self._rank(rung, suggestion.arch, score)
        # a new architecture's first result also teaches the base sampler (RE's population)
        base_sug = None if suggestion.info.get("promoted") else self._base_sugs.pop(suggestion.arch, None)
        if base_sug is not None:
            self.base.tell(base_sug, result if math.isfinite(score) else None)
        self._after_tell(suggestion, rung, score)

    def _after_tell(self, suggestion: Suggestion, rung: int, score: float) -> None:
        pass

    def _rank(self, rung: int, arch: Any, score: float) -> None:
        """Record ``score`` for ``arch`` at ``rung`` (a repeated result replaces the earlier one)."""
        results, ranked, keys = self.results[rung], self._ranked[rung], self._rank_key[rung]
        old = keys.get(arch)
        if old is not None:
            del ranked[bisect.bisect_left(ranked, old[:2])]
            index = old[1]
        else:
            index = len(results)
        results[arch] = score
        key = (-score if score == score else math.inf, index, arch)  # NaN ranks last
        keys[arch] = key
        ranked.insert(bisect.bisect_left(ranked, key[:2]), key)

    def _top(self, rung: int, k: int) -> list[Any]:
        """The ``k`` best architectures of a rung (ties: earlier result first)."""
        return [key[2] for key in self._ranked[rung][:k]]


class _Bracket:
    """One synchronous successive-halving bracket starting at rung ``start`` with ``n`` configs."""

    def __init__(self, start: int, n: int, n_levels: int, eta: float, bid: int) -> None:
        self.start, self.n, self.n_levels, self.eta, self.id = start, n, n_levels, eta, bid
        self.level = start
        self.members: list[Any] = []  # architectures of the current level
        self.scores: dict[Any, float] = {}
        self.queue: deque[Any] = deque()
        self.created = 0
        self.pending = 0

    @property
    def done(self) -> bool:
        return self.level >= self.n_levels

    def size(self, level: int) -> int:
        return max(1, int(self.n / self.eta ** (level - self.start)))


class SuccessiveHalving(_Scheduler):
    """Synchronous successive halving (Jamieson & Talwalkar 2016; Karnin et al. 2013).

    A bracket evaluates ``n_configs`` new architectures at the lowest rung, keeps the best
    ``1/eta`` of them for the next rung, and so on up to the largest; then a new bracket starts.
    ``n_configs`` defaults to ``eta ** (number of rungs - 1)``. When every evaluation of the
    current level is running, the next bracket starts (rather than idling).
    """

    name = "sh"

    def __init__(self, space: SearchSpace, n_configs: int | None = None, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        k = len(self.levels)
        self.n_configs = int(n_configs) if n_configs is not None else int(round(self.eta ** (k - 1)))
        if self.n_configs < 1:
            raise NasforgeError(f"n_configs must be >= 1, got {n_configs}")
        self.brackets: list[_Bracket] = []
        self._n_brackets = 0
        self._settle_params(n_configs=self.n_configs)

    def _bracket_plan(self, index: int) -> tuple[int, int]:
        """(start rung, number of configs) of the ``index``-th bracket."""
        return 0, self.n_configs

    def ask(self) -> Suggestion:
        for b in self.brackets:
            sug = self._job(b)
            if sug is not None:
                return sug
        start, n = self._bracket_plan(self._n_brackets)
        b = _Bracket(start, n, len(self.levels), self.eta, self._n_brackets)
        self._n_brackets += 1
        self.brackets.append(b)
        sug = self._job(b)
        assert sug is not None
        return sug

    def _job(self, b: _Bracket) -> Suggestion | None:
        if b.done:
            return None
        if b.level == b.start and b.created < b.size(b.start):
            b.created += 1
            b.pending += 1
            sug = self._new_config(b.level, bracket=b.id)
            b.members.append(sug.arch)
            return sug
        if b.queue:
            b.pending += 1
            return self._promote(b.queue.popleft(), b.level, bracket=b.id)
        return None

    def _after_tell(self, suggestion: Suggestion, rung: int, score: float) -> None:
        bid = suggestion.info.get("bracket")
        b = next((x for x in self.brackets if x.id == bid), None)
        if b is None:
            return
        b.pending -= 1
        b.scores[suggestion.arch] = score
        complete = b.pending == 0 and not b.queue and (b.level != b.start or b.created >= b.size(b.start))
        if complete:
            if b.level + 1 >= b.n_levels:
                b.level = b.n_levels
                self.brackets.remove(b)
                return
            keep = b.size(b.level + 1)
            ranked = sorted(b.members, key=lambda a: -b.scores.get(a, -math.inf))[:keep]
            b.level += 1
            b.members = ranked
            b.scores = {}
            b.queue.extend(ranked)


class Hyperband(SuccessiveHalving):
    """Hyperband (Li et al., JMLR 2018): successive-halving brackets cycling through start rungs.

    With ``K`` rungs, bracket ``s = K-1, ..., 0`` starts at rung ``K-1-s`` with
    ``ceil(K / (s + 1) * eta**s)`` architectures; the cycle repeats.
    """

    name = "hyperband"

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:
        kwargs.pop("n_configs", None)
        super().__init__(space, **kwargs)
        self._settle_params(n_configs=None)  # each bracket has its own size: the setting is ignored

    def _bracket_plan(self, index: int) -> tuple[int, int]:
        k = len(self.levels)
        s = (k - 1) - index % k
        return (k - 1) - s, int(math.ceil(k / (s + 1) * self.eta ** s))


class ASHA(_Scheduler):
    """Asynchronous successive halving (Li et al., MLSys 2020).

    Each ask promotes, if it can, an architecture from the highest rung where one is among the
    top ``1/eta`` of the rung's results and not promoted yet; otherwise it starts a new
    architecture at the lowest rung. No waiting for rungs to fill.
    """

    name = "asha"

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self.promoted: list[set[Any]] = [set() for _ in self.levels]
        self.max_rung = len(self.levels) - 1  # PASHA lowers this

    def ask(self) -> Suggestion:
        for rung in range(self.max_rung - 1, -1, -1):
            res = self.results[rung]
            k = int(len(res) / self.eta)
            if k < 1:
                continue
            for arch in self._top(rung, k):
                if arch not in self.promoted[rung] and math.isfinite(res[arch]):
                    self.promoted[rung].add(arch)
                    return self._promote(arch, rung + 1)
        return self._new_config(0)


class PASHA(ASHA):
    """PASHA (Bohdal et al., ICLR 2023): ASHA whose maximum resource grows only when needed.

    It starts with the two lowest rungs. After every result it compares the ranking of the
    architectures in the current top rung with their ranking one rung below, using soft
    ranking: architectures whose previous-rung scores are within ``epsilon`` of each other are
    interchangeable. If an architecture of the top rung sits outside its soft-rank group, the
    ranking is not yet stable and the next rung is unlocked.

    ``epsilon="noise"`` (default) estimates it from the data, following the paper: over every
    pair of architectures evaluated at two consecutive rungs whose order swaps between them
    (their "learning curves" criss-cross), take the absolute score difference at the higher
    rung; epsilon is the ``percentile``-th percentile of these differences (0 while there are
    none). A number fixes epsilon instead.
    """

    name = "pasha"

    def __init__(self, space: SearchSpace, epsilon: float | str = "noise", percentile: float = 90.0,
                 **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if not (epsilon == "noise" or (isinstance(epsilon, (int, float)) and epsilon >= 0)):
            raise NasforgeError(f"epsilon must be 'noise' or a number >= 0, got {epsilon!r}")
        if not 0 <= percentile <= 100:
            raise NasforgeError(f"percentile must be in [0, 100], got {percentile}")
        self.epsilon, self.percentile = epsilon, float(percentile)
        self.max_rung = 1
        self.increases: list[int] = []  # number of results told when each rung was unlocked
        self._settle_params(percentile=self.percentile)

    def current_epsilon(self) -> float:
        if self.epsilon != "noise":
            return float(self.epsilon)  # type: ignore[arg-type]
        dists: list[float] = []
        for lo in range(self.max_rung):
            a_lo, a_hi = self.results[lo], self.results[lo + 1]
            both = [a for a in a_hi if a in a_lo and math.isfinite(a_hi[a]) and math.isfinite(a_lo[a])]
            for i in range(len(both)):
                for j in range(i + 1, len(both)):
                    x, y = both[i], both[j]
                    if (a_lo[x] - a_lo[y]) * (a_hi[x] - a_hi[y]) < 0:
                        dists.append(abs(a_hi[x] - a_hi[y]))
        return float(np.percentile(dists, self.percentile)) if dists else 0.0

    def ranking_unstable(self) -> bool:
        """Whether the top rung's ranking disagrees with the rung below beyond epsilon."""
        top, prev = self.results[self.max_rung], self.results[self.max_rung - 1]
        archs = [a for a in top if a in prev]
        if len(archs) < 2:
            return False
        eps = self.current_epsilon()
        by_top = sorted(archs, key=lambda a: -top[a])
        by_prev = sorted(archs, key=lambda a: -prev[a])
        for pos, arch in enumerate(by_top):
            ref = prev[by_prev[pos]]
            if abs(prev[arch] - ref) > eps:  # outside the soft-rank group of this position
                return True
        return False

    def _after_tell(self, suggestion: Suggestion, rung: int, score: float) -> None:
        if self.max_rung < len(self.levels) - 1 and self.ranking_unstable():
            self.max_rung += 1
            self.increases.append(self.n_told)
