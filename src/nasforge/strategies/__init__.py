"""Search strategies: what to try next. Strategies know only the SearchSpace interface."""

from __future__ import annotations

from typing import Any

from nasforge.errors import NasforgeError, unknown
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Strategy, Suggestion
from nasforge.strategies.blackbox import LocalSearch, RandomSearch, RegularizedEvolution
from nasforge.strategies.bo import Bananas, GPBayesOpt
from nasforge.strategies.multifidelity import ASHA, PASHA, Hyperband, SuccessiveHalving

STRATEGIES: dict[str, type[Strategy]] = {
    "random": RandomSearch,
    "re": RegularizedEvolution,
    "ls": LocalSearch,
    "sh": SuccessiveHalving,
    "hyperband": Hyperband,
    "asha": ASHA,
    "pasha": PASHA,
    "bo": GPBayesOpt,
    "bananas": Bananas,
}
ALIASES = {"rs": "random", "evolution": "re", "rea": "re", "local": "ls", "local_search": "ls",
           "successive_halving": "sh", "hb": "hyperband"}
#: strategies that choose fidelities themselves (rung levels) and need a multi-fidelity estimator
MULTI_FIDELITY = ("sh", "hyperband", "asha", "pasha")


def get_strategy(name: str, space: SearchSpace, **kwargs: Any) -> Strategy:
    """A strategy by registry name (``random``, ``re``, ``ls``) with its keyword settings."""
    key = ALIASES.get(name, name)
    try:
        cls = STRATEGIES[key]
    except KeyError:
        raise unknown("strategy", name, sorted(STRATEGIES)) from None
    try:
        return cls(space, **kwargs)
    except TypeError as exc:
        raise NasforgeError(f"bad settings for strategy {key!r}: {exc}") from None


__all__ = ["Strategy", "Suggestion", "RandomSearch", "RegularizedEvolution", "LocalSearch", "SuccessiveHalving",
           "Hyperband", "ASHA", "PASHA", "MULTI_FIDELITY", "GPBayesOpt", "Bananas",
           "get_strategy", "STRATEGIES"]
