"""The predictor interface: learn an architecture's score from a few measured ones.

A :class:`Predictor` is a regression model from architectures of one space to a number (an
accuracy, a loss): ``fit(archs, y)`` then ``predict(archs)`` (the mean) or
``predict(archs, return_std=True)`` (mean and standard deviation; a predictor without its own
uncertainty returns zeros and has ``probabilistic = False``). Architectures are read through the
space only: its ``encode(arch, kind)`` for the vector predictors, its ``graph(arch)`` view for
the graph networks and CATE. Every predictor is seeded (same seed, same data: same predictions),
standardises its targets internally and predicts in the targets' own units.

This module needs numpy only; the torch predictors (GIN/GCN, CATE) import torch when built.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.params import Configurable
from nasforge.spaces.base import SearchSpace


def check_archs(space: SearchSpace, archs: Any, what: str = "archs") -> list[Any]:
    """``archs`` as a list of the space's architectures (strings parsed); one-line errors."""
    if isinstance(archs, (str, bytes)) or not isinstance(archs, Sequence) and not hasattr(archs, "__iter__"):
        raise NasforgeError(f"{what} must be a list of architectures of space {space.name!r}, got {archs!r}")
    out = []
    for a in archs:
        try:
            out.append(space.coerce(a))
        except NasforgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to read it is the user's bad value
            raise NasforgeError(f"{a!r} in {what} is not an architecture of space {space.name!r}: {exc}") from None
    return out


def check_targets(y: Any, n: int) -> np.ndarray:
    """``y`` as a finite float vector of length ``n``."""
    try:
        arr = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise NasforgeError(f"targets y must be numbers, got {y!r}") from None
    if arr.ndim != 1:
        raise NasforgeError(f"targets y must be one number per architecture (1-d), got shape {arr.shape}")
    if len(arr) != n:
        raise NasforgeError(f"got {n} architectures but {len(arr)} targets; they must match")
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        raise NasforgeError(f"targets y must be finite; y[{bad[0]}] is {arr[bad[0]]!r}")
    return arr


def check_int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise NasforgeError(f"predictor setting {name} must be an integer >= {lo}, got {value!r}")
    return int(value)


class Predictor(Configurable):
    """Base of every performance predictor (see the module notes).

    ``encoding``: the space's encoding the vector predictors read (``space.encode(arch, kind)``;
    ``onehot`` exists in every space); graph predictors ignore it. ``seed`` fixes every random
    choice. Subclasses implement :meth:`_fit` (on standardised targets) and :meth:`_predict`.
    """

    name: str = ""
    #: whether :meth:`predict` with ``return_std=True`` returns a model-based spread
    probabilistic: bool = False
    #: the fewest training architectures the model accepts
    min_train: int = 2

    def __init__(self, space: SearchSpace, encoding: str = "onehot", seed: int = 0) -> None:
        if not isinstance(space, SearchSpace):
            raise NasforgeError(f"a predictor needs a search space, got {space!r}")
        allowed = tuple(getattr(space, "encodings", ()) or ())
        if not isinstance(encoding, str) or (allowed and encoding not in allowed):
            raise NasforgeError(f"space {space.name!r} has no encoding {encoding!r}; allowed: "
                                f"{', '.join(allowed) or 'onehot'}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise NasforgeError(f"predictor seed must be an integer, got {seed!r}")
        self.space = space
        self.encoding = encoding
        self.seed = int(seed)
        self._enc_cache: dict[Hashable, np.ndarray] = {}
        self._mu = 0.0
        self._sd = 1.0
        self.fitted = False

    # --- the interface ---------------------------------------------------------------------------
    def fit(self, archs: Sequence[Any], y: Sequence[float]) -> Predictor:
        """Train on architectures ``archs`` with scores ``y`` (replaces any earlier fit)."""
        archs = check_archs(self.space, archs)
        y = check_targets(y, len(archs))
        if len(archs) < self.min_train:
            raise NasforgeError(f"predictor {self.name!r} needs at least {self.min_train} training architectures, "
                                f"got {len(archs)}")
        self._mu = float(y.mean())
        sd = float(y.std())
        self._sd = sd if sd > 0 else 1.0
        self.rng = np.random.default_rng(self.seed)
        self._fit(archs, (y - self._mu) / self._sd)
        self.fitted = True
        return self

    def predict(self, archs: Sequence[Any], return_std: bool = False) -> Any:
        """Predicted scores of ``archs`` (target units); with ``return_std`` also their standard
        deviations (zeros where the predictor has no uncertainty of its own)."""
        if not self.fitted:
            raise NasforgeError(f"predictor {self.name!r} is not fitted: call fit(archs, y) first")
        archs = check_archs(self.space, archs)
        if not archs:
            empty = np.zeros(0)
            return (empty, empty) if return_std else empty
        mean, std = self._predict(archs)
        mean = self._mu + self._sd * np.asarray(mean, dtype=float)
        if not return_std:
            return mean
        std = np.zeros(len(archs)) if std is None else self._sd * np.asarray(std, dtype=float)
        return mean, std

    @abstractmethod
    def _fit(self, archs: list[Any], z: np.ndarray) -> None:
        """Train on standardised targets ``z``."""

    @abstractmethod
    def _predict(self, archs: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """Standardised mean and standard deviation (``None``: no uncertainty)."""

    # --- helpers -----------------------------------------------------------------------------------
    def features(self, archs: Sequence[Any]) -> np.ndarray:
        """The ``encoding`` of each architecture, stacked (cached per architecture)."""
        rows = []
        for a in archs:
            v = self._enc_cache.get(a)
            if v is None:
                v = self._enc_cache[a] = np.asarray(self.space.encode(a, self.encoding), dtype=float).ravel()
            rows.append(v)
        widths = {len(r) for r in rows}
        if len(widths) > 1:
            raise NasforgeError(f"space {self.space.name!r}: encode(arch, {self.encoding!r}) has different lengths "
                                f"{sorted(widths)}; a vector predictor needs one length")
        return np.stack(rows) if rows else np.zeros((0, 0))

    def sub_seed(self) -> int:
        """A fresh integer seed from the predictor's generator (for scikit-learn / xgboost / torch)."""
        return int(self.rng.integers(2**31 - 1))

    def __repr__(self) -> str:
        params = {k: v for k, v in self.get_params().items() if k != "space"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"


def finite_or_raise(values: np.ndarray, who: str) -> np.ndarray:
    """Predictions must be finite; a model that diverged says so."""
    if not np.all(np.isfinite(values)):
        raise NasforgeError(f"predictor {who!r} produced non-finite predictions (diverged training?)")
    return values


def nan_safe_mean(x: Sequence[float]) -> float:
    vals = [v for v in x if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")
