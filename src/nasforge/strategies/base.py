"""The ask/tell interface every search strategy implements."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.params import Configurable, jsonable, parameter_defaults
from nasforge.spaces.base import SearchSpace


@dataclass(frozen=True, slots=True)
class Suggestion:
    """What a strategy asks to evaluate: an architecture at a fidelity (``None``: the full one)."""

    arch: Any
    fidelity: float | None = None
    info: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class Strategy(Configurable, ABC):
    """A seeded search strategy behind ``ask()`` / ``tell()``.

    ``metric`` names the measurement entry to optimise and ``maximize`` its direction; a study
    fills both in when they are left ``None``. ``tell`` takes a :class:`Measurement`, a plain
    number (the metric's value), or ``None`` for a failed evaluation. By default no architecture
    is suggested twice (``allow_duplicates=False``): ``dedup`` chooses whether "twice" means the
    same architecture (``"arch"``) or the same canonical key (``"canonical"``). ``feasible`` is an
    optional predicate for hard constraints known before evaluation (parameters, FLOPs, table
    latency): architectures it rejects are never suggested (every proposal goes through
    :meth:`is_new`, so sampling rejects and mutation repairs by proposing again).

    Determinism: the same seed and the same sequence of ``tell`` results give the same sequence
    of suggestions. Studies resume by replaying the stored results through a fresh strategy.

    A strategy describes itself by its constructor arguments (``get_params()``, ``spec()``; see
    :mod:`nasforge.params`); :meth:`config` is the part of them a study stores and compares.
    """

    name: str = ""
    #: constructor parameters that are not part of :meth:`config`: what a study supplies itself
    #: (the space and the objective) and the constraint predicate (a function, not a setting)
    NOT_CONFIG: tuple[str, ...] = ("space", "metric", "maximize", "feasible")

    def __init__(
        self,
        space: SearchSpace,
        seed: int | None = 0,
        metric: str | None = None,
        maximize: bool | None = None,
        fidelity: float | None = None,
        allow_duplicates: bool = False,
        dedup: str = "arch",
        feasible: Callable[[Any], bool] | None = None,
    ) -> None:
        if dedup not in ("arch", "canonical"):
            raise NasforgeError(f"unknown dedup mode {dedup!r}; allowed: arch, canonical")
        self.space = space
        self.seed = seed
        self.metric = metric
        self.maximize = maximize
        self.fidelity = fidelity
        self.allow_duplicates = allow_duplicates
        self.dedup = dedup
        self.feasible = feasible
        self.rng = np.random.default_rng(seed)
        self._seen: set[Hashable] = set()
        self._initial: list[Any] = []  # a warm start, for the strategies that take one (_set_initial)
        self.n_told = 0
        self.best_arch: Any = None
        self.best_score = -math.inf

    # --- the interface ----------------------------------------------------------------------
    @abstractmethod
    def ask(self) -> Suggestion:
        """The next architecture (and fidelity) to evaluate."""

    def tell(self, suggestion: Suggestion, result: Any) -> None:
        """Report the result of evaluating ``suggestion`` (Measurement, number, or None if failed)."""
        score = self.score(result)
        self.n_told += 1
        if score > self.best_score:
            self.best_score, self.best_arch = score, suggestion.arch
        self._observe(suggestion, score, result)

    def _observe(self, suggestion: Suggestion, score: float, result: Any) -> None:
        """Strategy-specific bookkeeping for a result (``score`` is higher-is-better, -inf if failed)."""

    def config(self) -> dict[str, Any]:
        """The constructor settings that define this strategy's trajectory (stored with studies).

        ``name``, ``seed``, ``fidelity``, ``allow_duplicates`` and ``dedup``, then every other
        constructor parameter (as :meth:`get_params` reports it, in plain JSON data) except those
        in :attr:`NOT_CONFIG`. A setting whose default is ``None`` is left out while it is
        ``None``, so adding an optional setting leaves the configurations stored before unchanged.
        """
        params = self.get_params()
        defaults = parameter_defaults(type(self))
        cfg: dict[str, Any] = {"name": self.name}
        for key in ("seed", "fidelity", "allow_duplicates", "dedup"):
            cfg[key] = jsonable(params.pop(key), key)
        for key, value in params.items():
            if key in self.NOT_CONFIG or (value is None and defaults.get(key) is None):
                continue
            cfg[key] = jsonable(value, key)
        return cfg

    # --- helpers ----------------------------------------------------------------------------
    def score(self, result: Any) -> float:
        """Higher-is-better number for a result; ``-inf`` for a failure or a missing value."""
        if result is None:
            return -math.inf
        if isinstance(result, (int, float, np.floating, np.integer)):
            value = float(result)
        else:
            metrics = getattr(result, "metrics", result)
            if self.metric is None:
                raise NasforgeError(f"strategy {self.name!r} has no metric to optimise; set metric=...")
            if self.metric not in metrics:
                raise NasforgeError(
                    f"measurement has no metric {self.metric!r}; it has: {', '.join(metrics)}"
                )
            value = float(metrics[self.metric])
        if math.isnan(value):
            return -math.inf
        return value if self.maximize is not False else -value

    def _set_initial(self, initial: Sequence[Any] | None) -> None:
        """Store a warm start: architectures (objects or strings) to evaluate first, in order, kept
        in the configuration as strings (duplicates dropped), so a study resumes with them."""
        if initial is not None and (isinstance(initial, str) or not isinstance(initial, Sequence)):
            raise NasforgeError(f"initial must be a list of architectures, got {type(initial).__name__}")
        #: the warm-start architectures as strings, or None
        self.initial: list[str] | None = (
            None if initial is None else list(dict.fromkeys(self.space.format(self.space.coerce(a)) for a in initial))
        )
        self._initial = [self.space.coerce(t) for t in self.initial or ()]

    def _initial_suggestion(self, n_asked: int) -> Suggestion | None:
        """The ``n_asked``-th suggestion of the warm start (1-based) while it lasts: the listed
        architecture, or a random new one in its place if it was seen or is infeasible."""
        if n_asked > len(self._initial):
            return None
        arch = self._initial[n_asked - 1]
        if self.is_new(arch):
            return self._claim(arch, phase="initial")
        return self._claim(self._unique(lambda: self.space.sample(self.rng)))

    def _key(self, arch: Any) -> Hashable:
        return self.space.canonical_key(arch) if self.dedup == "canonical" else arch

    def is_new(self, arch: Any) -> bool:
        """Whether ``arch`` may be suggested: not suggested before (unless duplicates are allowed)
        and feasible under the hard constraint, if any."""
        if not (self.allow_duplicates or self._key(arch) not in self._seen):
            return False
        return self.feasible is None or bool(self.feasible(arch))

    def _mutants_of_best(self, archs: list[Any], scores: list[float], n_parents: int, n: int,
                         depth: int | None = None) -> tuple[list[Any], Callable[[Any], None]]:
        """Up to ``n`` distinct new mutations of the ``n_parents`` best of ``archs`` (round robin
        over the parents, at most ``20 n`` tries), each mutated once (``depth=None``) or a random
        ``1..depth`` times. Returns the list and the function that adds one more architecture to it
        if it is new and distinct, for topping it up."""
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        parents: list[Any] = []
        for i in order:
            if archs[i] not in parents:
                parents.append(archs[i])
            if len(parents) == n_parents:
                break
        out: list[Any] = []
        keys: set[Hashable] = set()

        def take(a: Any) -> None:
            if self._key(a) not in keys and self.is_new(a):
                keys.add(self._key(a))
                out.append(a)

        tries = 0
        while len(out) < n and tries < 20 * n and parents:
            a = parents[tries % len(parents)]
            for _ in range(1 if depth is None else 1 + int(self.rng.integers(depth))):
                a = self.space.mutate(a, self.rng)
            take(a)
            tries += 1
        return out, take

    def _claim(self, arch: Any, fidelity: float | None = None, **info: Any) -> Suggestion:
        """Mark ``arch`` as suggested and wrap it."""
        if not self.allow_duplicates:
            self._seen.add(self._key(arch))
        return Suggestion(arch, self.fidelity if fidelity is None else fidelity, info)

    def _unique(self, propose: Callable[[], Any], tries: int = 200) -> Any:
        """The first new architecture from ``propose``; falls back to random sampling, then to
        enumerating the space, so a finite space is never reported exhausted too early."""
        for _ in range(tries):
            arch = propose()
            if self.is_new(arch):
                return arch
        for _ in range(tries):
            arch = self.space.sample(self.rng)
            if self.is_new(arch):
                return arch
        try:
            every = iter(self.space)
        except TypeError:  # not enumerable: too large to be used up, so nothing new was found
            raise NasforgeError(
                f"no new {'feasible ' if self.feasible is not None else ''}architecture of space "
                f"{self.space.name!r} in {2 * tries} proposals"
                + (": the constraints may be too tight for it" if self.feasible is not None else "")
            ) from None
        candidates = [a for a in every if self.is_new(a)]
        if not candidates:
            raise NasforgeError(
                f"search space {self.space.name!r} is exhausted: every "
                + ("feasible " if self.feasible is not None else "")
                + "architecture was evaluated"
            )
        return candidates[int(self.rng.integers(len(candidates)))]

    def __repr__(self) -> str:
        try:
            settings = self.config()
        except NasforgeError:  # a setting that is not plain data: show it as it is
            settings = {k: v for k, v in self.get_params().items() if k not in self.NOT_CONFIG}
        def show(k: str, v: Any) -> str:  # a warm start's architectures by their number
            return f"[{len(v)} architectures]" if k == "initial" and isinstance(v, list) else repr(v)

        params = ", ".join(f"{k}={show(k, v)}" for k, v in settings.items() if k != "name")
        return f"{type(self).__name__}({params})"
