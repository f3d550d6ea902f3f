"""Predictors by name. The GP (architecture kernels) and BANANAS ensemble predictors belong to
:mod:`nasforge.strategies.bo` and register themselves here when ``nasforge.strategies`` is
imported (estimation never imports strategies)."""

from __future__ import annotations

import importlib
from typing import Any

from nasforge.errors import NasforgeError
from nasforge.spaces.base import SearchSpace

#: name -> ("module:Class", fixed settings); torch-backed entries import torch only when built
PREDICTORS: dict[str, tuple[str, dict[str, Any]]] = {
    "xgb": ("nasforge.estimation.predictors.models:GBTPredictor", {}),
    "rf": ("nasforge.estimation.predictors.models:RFPredictor", {}),
    "quantile_gbt": ("nasforge.estimation.predictors.models:QuantileGBTPredictor", {}),
    "gp_encoding": ("nasforge.estimation.predictors.models:EncodingGPPredictor", {}),
    "seminas": ("nasforge.estimation.predictors.models:SelfTrainingPredictor", {}),
    "gin": ("nasforge.estimation.predictors.graph:GraphPredictor", {"kind": "gin"}),
    "gcn": ("nasforge.estimation.predictors.graph:GraphPredictor", {"kind": "gcn"}),
    "lce": ("nasforge.estimation.predictors.curve:LearningCurvePredictor", {}),
    "ensemble": ("nasforge.estimation.predictors.ensemble:EnsemblePredictor", {}),
}
#: predictors that other packages register (and the package that does)
PLUGINS = {"gp": "nasforge.strategies", "bananas": "nasforge.strategies", "dngo": "nasforge.strategies"}


def register_predictor(name: str, cls: type, **fixed: Any) -> None:
    """Make ``get_predictor(name, ...)`` build ``cls`` (with ``fixed`` settings)."""
    PREDICTORS[name] = (f"{cls.__module__}:{cls.__qualname__}", dict(fixed))


def predictor_class(name: str) -> tuple[type, dict[str, Any]]:
    if not isinstance(name, str) or name not in PREDICTORS:
        missing = [n for n in PLUGINS if n not in PREDICTORS]
        hint = f" ({', '.join(missing)} need `import nasforge.strategies`)" if missing else ""
        raise NasforgeError(f"unknown predictor {name!r}; allowed: {', '.join(sorted(PREDICTORS))}{hint}")
    path, fixed = PREDICTORS[name]
    module, _, qual = path.partition(":")
    return getattr(importlib.import_module(module), qual), fixed


def get_predictor(name: str, space: SearchSpace, **settings: Any) -> Any:
    """A predictor by name (``xgb``, ``rf``, ``quantile_gbt``, ``gp_encoding``, ``seminas``, ``gin``,
    ``gcn``, ``lce``, ``ensemble``, and ``gp``/``bananas``/``dngo`` from :mod:`nasforge.strategies.bo`) with its settings."""
    cls, fixed = predictor_class(name)
    try:
        return cls(space, **{**fixed, **settings})
    except TypeError as exc:
        raise NasforgeError(f"bad settings for predictor {name!r}: {exc}") from None
