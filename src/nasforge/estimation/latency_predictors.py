"""Latency predictors for a device from a few measured architectures.

* :class:`AdditiveLatencyModel`: a per-operation lookup table. Latency = a constant (the
  skeleton) + the sum of a cost per operation (per operation type, or per (edge, operation) with
  ``per_edge=True``), fitted to the measured architectures by non-negative ridge least squares.
  This is the classic layer-wise lookup model of hardware-aware NAS (e.g. FBNet's table).
* :class:`LearnedLatencyPredictor`: a scikit-learn regressor (default gradient-boosted trees) on
  the space's encoding plus the operation counts.
* :class:`TransferLatencyPredictor`: adaptation to a new device from <= 20 measurements, in the
  spirit of HELP (Lee et al., NeurIPS 2021): a device is represented by its latencies on a few
  architectures (its *hardware embedding*), and what is known about other (source) devices is
  transferred. Here the source devices' full latency tables form a basis: the standardised
  latencies of all architectures on the source devices are reduced to a few leading principal
  components (a low-dimensional "latency basis" learned from the sources); an architecture's
  features are its coordinates in that basis plus its operation counts, and the target's
  latency is a ridge regression on them, fitted on the few target measurements (penalty,
  number of components and log/linear scale chosen by leave-one-out cross-validation on those
  same measurements). The fitted weights are the target device's embedding.

All predictors share ``fit(archs, latencies)`` / ``predict(archs)``; :func:`evaluate_predictor`
reports Spearman rho, Kendall tau and RMSE on held-out architectures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError


def _check_xy(archs: Sequence[Any], y: Sequence[float]) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if len(archs) != len(y):
        raise NasforgeError(f"{len(archs)} architectures but {len(y)} latencies")
    if len(y) < 2:
        raise NasforgeError(f"a latency predictor needs at least 2 measured architectures, got {len(y)}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise NasforgeError("latencies must be positive finite numbers")
    return y


_OP_COUNTS: dict[tuple[str, Any], np.ndarray] = {}


def op_counts(space: Any, arch: Any) -> np.ndarray:
    """How many times each operation occurs in ``arch`` (from the space's ops-on-nodes graph)."""
    ops = getattr(space, "ops", None)
    if ops is None:
        raise NasforgeError(f"space {space.name!r} does not list its operations (needs an 'ops' attribute)")
    key = (space.name, arch)
    v = _OP_COUNTS.get(key)
    if v is None:
        _, labels = space.graph(arch)
        index = {op: i for i, op in enumerate(ops)}
        v = np.zeros(len(ops))
        for lab in labels:
            if lab in index:
                v[index[lab]] += 1
        if len(_OP_COUNTS) < 1_000_000:
            _OP_COUNTS[key] = v
    return v.copy()


class AdditiveLatencyModel:
    """Latency = skeleton + sum of per-operation costs, fitted by non-negative ridge least squares.

    ``per_edge=False`` (default): one cost per operation type (5 numbers for NB201), robust with
    few samples. ``per_edge=True``: one cost per (edge, operation) from the one-hot encoding.
    ``alpha`` is the ridge penalty (relative to the mean squared latency).
    """

    def __init__(self, space: Any, per_edge: bool = False, alpha: float = 1e-3) -> None:
        self.space = space
        self.per_edge = per_edge
        self.alpha = alpha
        self.intercept_ = 0.0
        self.costs_: np.ndarray | None = None

    def _features(self, archs: Sequence[Any]) -> np.ndarray:
        if self.per_edge:
            return np.stack([self.space.encode(a, "onehot") for a in archs]).astype(float)
        return np.stack([op_counts(self.space, a) for a in archs])

    def fit(self, archs: Sequence[Any], latencies: Sequence[float]) -> AdditiveLatencyModel:
        from scipy.optimize import nnls

        y = _check_xy(archs, latencies)
        X = self._features(archs)
        n, d = X.shape
        # augmented least squares with a free intercept: [X 1; sqrt(a) I 0] w = [y; 0], w >= 0
        lam = np.sqrt(self.alpha * float(np.mean(y ** 2)))
        A = np.vstack([np.hstack([X, np.ones((n, 1))]), np.hstack([lam * np.eye(d), np.zeros((d, 1))])])
        b = np.concatenate([y, np.zeros(d)])
        w, _ = nnls(A, b)
        self.costs_, self.intercept_ = w[:-1], float(w[-1])
        return self

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        if self.costs_ is None:
            raise NasforgeError("fit the latency model before predicting")
        return self._features(archs) @ self.costs_ + self.intercept_

    def lookup_table(self) -> dict[str, float]:
        """The fitted cost of each operation (``per_edge=False``) in the latency's unit."""
        if self.costs_ is None or self.per_edge:
            raise NasforgeError("the lookup table exists for a fitted per-operation model (per_edge=False)")
        return {"skeleton": self.intercept_, **{op: float(c) for op, c in zip(self.space.ops, self.costs_)}}


class LearnedLatencyPredictor:
    """A scikit-learn regressor of log latency on the one-hot encoding and operation counts.

    ``model``: ``"gbrt"`` (gradient-boosted trees, default), ``"rf"`` (random forest), ``"ridge"``,
    or any scikit-learn regressor instance.
    """

    MODELS = ("gbrt", "rf", "ridge")

    def __init__(self, space: Any, model: Any = "gbrt", seed: int = 0) -> None:
        self.space = space
        self.model = model
        self.seed = seed
        self._est: Any = None

    def _make(self, n: int) -> Any:
        if not isinstance(self.model, str):
            from sklearn.base import clone

            return clone(self.model)
        if self.model == "gbrt":
            from sklearn.ensemble import GradientBoostingRegressor

            return GradientBoostingRegressor(n_estimators=200, max_depth=2 if n < 50 else 3, learning_rate=0.05,
                                             subsample=1.0 if n < 50 else 0.8, random_state=self.seed)
        if self.model == "rf":
            from sklearn.ensemble import RandomForestRegressor

            return RandomForestRegressor(n_estimators=200, min_samples_leaf=1, random_state=self.seed)
        if self.model == "ridge":
            from sklearn.linear_model import RidgeCV

            return RidgeCV(alphas=np.logspace(-3, 3, 13))
        raise NasforgeError(f"unknown latency model {self.model!r}; allowed: {', '.join(self.MODELS)} "
                            "or a scikit-learn regressor")

    def _features(self, archs: Sequence[Any]) -> np.ndarray:
        return np.stack([np.concatenate([self.space.encode(a, "onehot"), op_counts(self.space, a)]) for a in archs])

    def fit(self, archs: Sequence[Any], latencies: Sequence[float]) -> LearnedLatencyPredictor:
        y = _check_xy(archs, latencies)
        self._est = self._make(len(y)).fit(self._features(archs), np.log(y))
        return self

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        if self._est is None:
            raise NasforgeError("fit the latency predictor before predicting")
        return np.exp(self._est.predict(self._features(archs)))


class TransferLatencyPredictor:
    """Latency on a new device from a few measurements, using other devices' tables (HELP-style).

    ``sources`` maps each source device to its latency over ``table_archs`` (e.g. the columns of
    ``nb201/latency_ms.csv`` except the target). The source latencies (log or linear scale),
    standardised per device, are reduced to their leading principal components: the latency
    basis. :meth:`fit` takes the target's measurements and fits a ridge regression of the
    target's latency (same scale) on the basis coordinates plus the operation counts. Several
    candidate settings (``scales`` x ``n_components``) are compared by leave-one-out error on the
    few measurements and the best is kept (:attr:`selected_`). :attr:`embedding_` holds the implied
    weight of each source device (the target's hardware embedding). ``n_components=None`` uses the
    source devices themselves as the basis.
    """

    SCALES = ("log", "linear")

    def __init__(self, space: Any, table_archs: Sequence[Any], sources: Mapping[str, Sequence[float]],
                 n_components: int | Sequence[int | None] | None = (3, 5), scales: str | Sequence[str] = SCALES,
                 use_op_counts: bool = True, alphas: Sequence[float] = tuple(np.logspace(-3, 3, 13))) -> None:
        if not sources:
            raise NasforgeError("a transfer predictor needs at least one source device")
        self.space = space
        self.devices = list(sources)
        self._row = {a: i for i, a in enumerate(table_archs)}
        L = np.column_stack([np.asarray(sources[d], dtype=float) for d in self.devices])
        if L.shape[0] != len(self._row):
            raise NasforgeError(f"source latencies have {L.shape[0]} rows, table has {len(self._row)} architectures")
        if not np.all(L > 0):
            raise NasforgeError("source latencies must be positive")
        scales = [scales] if isinstance(scales, str) else list(scales)
        for sc in scales:
            if sc not in self.SCALES:
                raise NasforgeError(f"unknown latency scale {sc!r}; allowed: {', '.join(self.SCALES)}")
        # None: every component (all source devices, rotated); alone, the devices themselves
        ks = [None] if n_components is None else ([n_components] if isinstance(n_components, int)
                                                  else list(n_components))
        for k in ks:
            if k is not None and not 1 <= k <= L.shape[1]:
                raise NasforgeError(f"n_components must be between 1 and {L.shape[1]} (source devices), got {k}")
        self._bases: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for sc in scales:
            X = np.log(L) if sc == "log" else L
            Z = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-12)
            if ks == [None]:
                self._bases[sc] = (Z, np.eye(Z.shape[1]))
            else:
                U, S, Vt = np.linalg.svd(Z, full_matrices=False)
                self._bases[sc] = (U * S, Vt)
        self.candidates = [(sc, k) for sc in scales for k in ks]
        self.use_op_counts = use_op_counts
        self.alphas = tuple(alphas)
        self._est: Any = None
        self.selected_: tuple[str, int | None] | None = None
        self.embedding_: dict[str, float] = {}

    def _rows(self, archs: Sequence[Any]) -> list[int]:
        rows = []
        for a in archs:
            try:
                rows.append(self._row[self.space.coerce(a)])
            except KeyError:
                raise NasforgeError(f"architecture {self.space.format(a)} is not in the source tables") from None
        return rows

    def _features(self, archs: Sequence[Any], cand: tuple[str, int | None] | None = None) -> np.ndarray:
        scale, k = cand or self.selected_ or self.candidates[0]
        basis = self._bases[scale][0]
        X = basis[self._rows(archs)][:, : (k or basis.shape[1])]
        if self.use_op_counts:
            X = np.hstack([X, np.stack([op_counts(self.space, a) for a in archs])])
        return X

    def _fit_one(self, X: np.ndarray, y: np.ndarray, scale: str) -> Any:
        from sklearn.linear_model import RidgeCV

        return RidgeCV(alphas=self.alphas).fit(X, np.log(y) if scale == "log" else y)

    @staticmethod
    def _to_latency(pred: np.ndarray, scale: str, floor: float) -> np.ndarray:
        return np.exp(pred) if scale == "log" else np.maximum(pred, floor)

    def fit(self, archs: Sequence[Any], latencies: Sequence[float]) -> TransferLatencyPredictor:
        y = _check_xy(archs, latencies)
        floor = float(y.min()) * 0.1
        best, best_err = self.candidates[0], np.inf
        if len(self.candidates) > 1 and len(y) >= 4:
            for cand in self.candidates:  # leave-one-out error of log latency
                X = self._features(archs, cand)
                errs = []
                for i in range(len(y)):
                    keep = np.arange(len(y)) != i
                    est = self._fit_one(X[keep], y[keep], cand[0])
                    p = self._to_latency(est.predict(X[i: i + 1]), cand[0], floor)[0]
                    errs.append((np.log(p) - np.log(y[i])) ** 2)
                err = float(np.mean(errs))
                if err < best_err:
                    best, best_err = cand, err
        self.selected_ = best
        self._floor = floor
        self._est = self._fit_one(self._features(archs, best), y, best[0])
        basis, proj = self._bases[best[0]]
        k = best[1] or basis.shape[1]
        coef = self._est.coef_[:k] @ proj[:k]
        self.embedding_ = {d: float(c) for d, c in zip(self.devices, coef)}
        return self

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        if self._est is None or self.selected_ is None:
            raise NasforgeError("fit the transfer predictor on the target's measurements before predicting")
        return self._to_latency(self._est.predict(self._features(archs)), self.selected_[0], self._floor)


class NearestDeviceBaseline:
    """The source device whose latencies correlate best with the target's few measurements,
    linearly calibrated (log-log) on them: the simplest transfer baseline."""

    def __init__(self, space: Any, table_archs: Sequence[Any], sources: Mapping[str, Sequence[float]]) -> None:
        self.inner = TransferLatencyPredictor(space, table_archs, sources, n_components=None, scales="log",
                                              use_op_counts=False)
        self.device_: str | None = None
        self._ab = (1.0, 0.0)

    def fit(self, archs: Sequence[Any], latencies: Sequence[float]) -> NearestDeviceBaseline:
        y = np.log(_check_xy(archs, latencies))
        X = self.inner._features(archs, ("log", None))
        corr = [np.corrcoef(X[:, j], y)[0, 1] if X[:, j].std() > 0 else -1 for j in range(X.shape[1])]
        j = int(np.nanargmax(corr))
        self.device_ = self.inner.devices[j]
        a, b = np.polyfit(X[:, j], y, 1)
        self._j, self._ab = j, (float(a), float(b))
        return self

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        if self.device_ is None:
            raise NasforgeError("fit the baseline before predicting")
        x = self.inner._features(archs, ("log", None))[:, self._j]
        return np.exp(self._ab[0] * x + self._ab[1])


def evaluate_predictor(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """Spearman rho, Kendall tau, RMSE and MAPE of predicted latencies."""
    from scipy.stats import kendalltau, spearmanr

    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    return {"spearman": float(spearmanr(t, p)[0]), "kendall": float(kendalltau(t, p)[0]),
            "rmse": float(np.sqrt(np.mean((t - p) ** 2))), "mape": float(np.mean(np.abs(p - t) / t)),
            "n": int(len(t))}


__all__ = ["op_counts", "AdditiveLatencyModel", "LearnedLatencyPredictor", "TransferLatencyPredictor",
           "NearestDeviceBaseline", "evaluate_predictor"]
