"""Search strategies: what to try next. Strategies know only the SearchSpace interface."""

from __future__ import annotations

from typing import Any

from nasforge.errors import NasforgeError, unknown
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Strategy, Suggestion
from nasforge.strategies.blackbox import LocalSearch, RandomSearch, RegularizedEvolution
from nasforge.strategies.bo import Bananas, GPBayesOpt
from nasforge.strategies.multifidelity import ASHA, PASHA, Hyperband, SuccessiveHalving
from nasforge.strategies.bohb import BOHB
from nasforge.strategies.predictive import PredictorSearch
from nasforge.strategies.multiobjective import (ChebyshevScalarization, MORandomSearch, MORegularizedEvolution,
                                                MultiObjectiveStrategy, NSGA2)

STRATEGIES: dict[str, type[Strategy]] = {
    "random": RandomSearch,
    "re": RegularizedEvolution,
    "ls": LocalSearch,
    "sh": SuccessiveHalving,
    "hyperband": Hyperband,
    "asha": ASHA,
    "pasha": PASHA,
    "bohb": BOHB,
    "bo": GPBayesOpt,
    "bananas": Bananas,
    "predictor": PredictorSearch,
    "nsga2": NSGA2,
    "mo-re": MORegularizedEvolution,
    "chebyshev": ChebyshevScalarization,
    "mo-random": MORandomSearch,
}
ALIASES = {"rs": "random", "evolution": "re", "rea": "re", "local": "ls", "local_search": "ls",
           "successive_halving": "sh", "hb": "hyperband",
           "nsga-ii": "nsga2", "nsgaii": "nsga2", "more": "mo-re", "mo_re": "mo-re",
           "mo_random": "mo-random"}
#: strategies that optimise several objectives (metric = a list of names)
MULTI_OBJECTIVE = ("nsga2", "mo-re", "chebyshev", "mo-random")
#: strategies that choose fidelities themselves (rung levels) and need a multi-fidelity estimator
MULTI_FIDELITY = ("sh", "hyperband", "asha", "pasha", "bohb")


def get_strategy(name: str, space: SearchSpace, **kwargs: Any) -> Strategy:
    """A strategy by registry name (``random``, ``re``, ``ls``) with its keyword settings."""
    key = ALIASES.get(name, name) if isinstance(name, str) else name
    try:
        cls = STRATEGIES[key]
    except (KeyError, TypeError):  # TypeError: not a name (an unhashable value)
        raise unknown("strategy", name, sorted(STRATEGIES)) from None
    try:
        return cls(space, **kwargs)
    except TypeError as exc:
        raise NasforgeError(f"bad settings for strategy {key!r}: {exc}") from None


__all__ = ["Strategy", "Suggestion", "RandomSearch", "RegularizedEvolution", "LocalSearch", "SuccessiveHalving",
           "Hyperband", "ASHA", "PASHA", "BOHB", "MULTI_FIDELITY", "GPBayesOpt", "Bananas",
           "NSGA2", "MORegularizedEvolution", "ChebyshevScalarization", "MORandomSearch",
           "MultiObjectiveStrategy", "MULTI_OBJECTIVE", "get_strategy", "STRATEGIES", "PredictorSearch"]
