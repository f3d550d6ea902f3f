"""Learning-curve extrapolation: predict the full-budget score from low-fidelity measurements.

The predictor reads each architecture's score at the ``early`` fidelities of a multi-fidelity
:class:`~nasforge.estimation.tabular.TabularBenchmark` and regresses the full-budget target on
them (plus the architecture's encoding, when ``with_encoding``), in the manner of NASLib's
learning-curve SVR. Using it has a cost the other predictors do not pay: every test architecture
must be measured at the early fidelities first.

On the shared NB201 tables the only low fidelity is the 12-epoch column (``valid_acc_12``), and it
comes from NB201's separate 12-epoch schedule (hp=12), not from the first 12 epochs of the
200-epoch run: what is extrapolated is "short schedule -> long schedule", not a partial curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.estimation.predictors.base import Predictor
from nasforge.estimation.tabular import TabularBenchmark
from nasforge.spaces.base import SearchSpace

CURVE_MODELS = ("svr", "ridge")


class LearningCurvePredictor(Predictor):
    """Regress the final score on ``metric`` at the ``early`` fidelities of ``benchmark``.

    ``model``: ``svr`` (nu-SVR, RBF kernel) or ``ridge`` (linear). The early values are read from
    the table when :meth:`fit`/:meth:`predict` are called (so a test architecture's early
    measurement is assumed paid for).
    """

    name = "lce"

    def __init__(self, space: SearchSpace, benchmark: TabularBenchmark | None = None, metric: str = "valid_acc",
                 early: Sequence[float] = (12,), with_encoding: bool = True, model: str = "svr",
                 **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if not isinstance(benchmark, TabularBenchmark):
            raise NasforgeError("learning-curve extrapolation needs a multi-fidelity tabular benchmark "
                                f"(benchmark=load_benchmark('nb201:cifar10')), got {benchmark!r}")
        if model not in CURVE_MODELS:
            raise NasforgeError(f"unknown learning-curve model {model!r}; allowed: {', '.join(CURVE_MODELS)}")
        early = tuple(float(f) for f in early)
        fids = benchmark.fidelities or ()
        if not early:
            raise NasforgeError("learning-curve extrapolation needs at least one early fidelity")
        for f in early:
            if f not in fids or f == max(fids):
                allowed = ", ".join(f"{x:g}" for x in fids[:-1]) or "none"
                raise NasforgeError(f"early fidelity {f:g} is not a low fidelity of benchmark {benchmark.name!r}; "
                                    f"allowed: {allowed}")
        for f in early:
            benchmark.column(metric, f)  # an unknown metric is a clear error now
        self.benchmark, self.metric, self.early = benchmark, metric, early
        self.with_encoding, self.model_kind = bool(with_encoding), model
        self._settle_params(early=list(early))

    def curve(self, archs: Sequence[Any]) -> np.ndarray:
        """``metric`` at each early fidelity, one row per architecture."""
        return np.array([[self.benchmark.query(a, self.metric, f) for f in self.early] for a in archs], dtype=float)

    def _X(self, archs: list[Any]) -> np.ndarray:
        C = (self.curve(archs) - self._cmu) / self._csd
        return np.hstack([C, 0.5 * self.features(archs)]) if self.with_encoding else C

    def _fit(self, archs: list[Any], z: np.ndarray) -> None:
        C = self.curve(archs)
        self._cmu, sd = C.mean(axis=0), C.std(axis=0)
        self._csd = np.where(sd > 0, sd, 1.0)
        X = self._X(archs)
        if self.model_kind == "svr":
            from sklearn.svm import NuSVR

            self.model = NuSVR(nu=0.5, C=3.0, gamma="scale")
        else:
            from sklearn.linear_model import Ridge

            self.model = Ridge(alpha=1.0)
        self.model.fit(X, z)

    def _predict(self, archs: list[Any]) -> tuple[np.ndarray, None]:
        return self.model.predict(self._X(archs)), None
