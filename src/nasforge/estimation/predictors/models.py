"""Predictors on a space's vector encoding: gradient-boosted trees (xgboost, or scikit-learn's
when xgboost is absent), random forest, quantile boosting, a GP on the encoding, and the
SemiNAS-style self-training wrapper around any of them."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.estimation.predictors.base import Predictor, check_int
from nasforge.spaces.base import SearchSpace

GBT_BACKENDS = ("auto", "xgboost", "sklearn")


def xgboost_available() -> bool:
    return importlib.util.find_spec("xgboost") is not None


class GBTPredictor(Predictor):
    """Gradient-boosted regression trees (NASLib's ``xgb``).

    ``backend="auto"`` uses xgboost when it is installed (``pip install nasforge[xgboost]``) and
    otherwise scikit-learn's ``GradientBoostingRegressor`` with the same depth, rate and number of
    trees, warning once; ``backend="xgboost"`` requires it. ``backend_`` says which one fitted.
    """

    name = "xgb"

    def __init__(self, space: SearchSpace, n_estimators: int = 500, max_depth: int = 6, learning_rate: float = 0.05,
                 subsample: float = 0.9, backend: str = "auto", **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if backend not in GBT_BACKENDS:
            raise NasforgeError(f"unknown gradient-boosting backend {backend!r}; allowed: {', '.join(GBT_BACKENDS)}")
        if backend == "xgboost" and not xgboost_available():
            raise NasforgeError("backend 'xgboost' needs the xgboost package: pip install 'nasforge[xgboost]' "
                                "(or use backend='sklearn')")
        if not 0 < learning_rate <= 1 or not 0 < subsample <= 1:
            raise NasforgeError(f"learning_rate and subsample must be in (0, 1]; got {learning_rate!r}, {subsample!r}")
        self.n_estimators = check_int("n_estimators", n_estimators, 1)
        self.max_depth = check_int("max_depth", max_depth, 1)
        self.learning_rate, self.subsample, self.backend = float(learning_rate), float(subsample), backend
        self.backend_ = "xgboost" if backend != "sklearn" and xgboost_available() else "sklearn"

    def _fit(self, archs: list[Any], z: np.ndarray) -> None:
        X = self.features(archs)
        if self.backend_ == "xgboost":
            import xgboost as xgb

            self.model = xgb.XGBRegressor(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                          learning_rate=self.learning_rate, subsample=self.subsample,
                                          min_child_weight=1.0, n_jobs=1, random_state=self.sub_seed(),
                                          tree_method="exact")
        else:
            if self.backend == "auto":
                _warn_once("xgboost is not installed; the 'xgb' predictor uses scikit-learn's "
                           "GradientBoostingRegressor instead (pip install 'nasforge[xgboost]')")
            from sklearn.ensemble import GradientBoostingRegressor

            self.model = GradientBoostingRegressor(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                                   learning_rate=self.learning_rate, subsample=self.subsample,
                                                   random_state=self.sub_seed())
        self.model.fit(X, z)

    def _predict(self, archs: list[Any]) -> tuple[np.ndarray, None]:
        return self.model.predict(self.features(archs)), None


_WARNED: set[str] = set()


def _warn_once(msg: str) -> None:
    if msg not in _WARNED:
        _WARNED.add(msg)
        warnings.warn(msg, stacklevel=3)


class RFPredictor(Predictor):
    """Random forest (scikit-learn); the spread of the trees' predictions is its uncertainty."""

    name = "rf"
    probabilistic = True

    def __init__(self, space: SearchSpace, n_estimators: int = 300, min_samples_leaf: int = 1,
                 max_features: float = 0.5, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self.n_estimators = check_int("n_estimators", n_estimators, 1)
        self.min_samples_leaf = check_int("min_samples_leaf", min_samples_leaf, 1)
        if not 0 < max_features <= 1:
            raise NasforgeError(f"max_features must be a fraction in (0, 1], got {max_features!r}")
        self.max_features = float(max_features)

    def _fit(self, archs: list[Any], z: np.ndarray) -> None:
        from sklearn.ensemble import RandomForestRegressor

        self.model = RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                           max_features=self.max_features, random_state=self.sub_seed(), n_jobs=1)
        self.model.fit(self.features(archs), z)

    def _predict(self, archs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        X = self.features(archs)
        per_tree = np.stack([t.predict(X) for t in self.model.estimators_])
        return per_tree.mean(axis=0), per_tree.std(axis=0)


class QuantileGBTPredictor(Predictor):
    """A probabilistic tree predictor: three gradient-boosting models (scikit-learn, quantile
    loss) for the 16th, 50th and 84th percentiles; mean = the median, std = half the 16-84
    spread (the Gaussian reading). Stands in for NGBoost, whose PyPI release pins an older
    scikit-learn than this package uses."""

    name = "quantile_gbt"
    probabilistic = True

    def __init__(self, space: SearchSpace, n_estimators: int = 200, max_depth: int = 3, learning_rate: float = 0.05,
                 **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self.n_estimators = check_int("n_estimators", n_estimators, 1)
        self.max_depth = check_int("max_depth", max_depth, 1)
        if not 0 < learning_rate <= 1:
            raise NasforgeError(f"learning_rate must be in (0, 1], got {learning_rate!r}")
        self.learning_rate = float(learning_rate)

    def _fit(self, archs: list[Any], z: np.ndarray) -> None:
        from sklearn.ensemble import GradientBoostingRegressor

        X = self.features(archs)
        self.models = []
        for q in (0.16, 0.5, 0.84):
            m = GradientBoostingRegressor(loss="quantile", alpha=q, n_estimators=self.n_estimators,
                                          max_depth=self.max_depth, learning_rate=self.learning_rate,
                                          subsample=0.9, random_state=self.sub_seed())
            self.models.append(m.fit(X, z))

    def _predict(self, archs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        X = self.features(archs)
        lo, med, hi = (m.predict(X) for m in self.models)
        return med, np.maximum(hi - lo, 0.0) / 2.0


class EncodingGPPredictor(Predictor):
    """A Gaussian process on the encoding vectors (scikit-learn: constant x Matern-5/2 with one
    length scale, plus white noise; hyperparameters by marginal likelihood). With
    ``encoding="cate"`` it reads the CATE embedding (:mod:`nasforge.estimation.predictors.cate`).
    ``linear`` adds a (constant x dot-product) term to the kernel.
    """

    name = "gp_encoding"
    probabilistic = True

    def __init__(self, space: SearchSpace, cate_params: dict[str, Any] | None = None, linear: bool = False,
                 **kwargs: Any) -> None:
        enc = kwargs.get("encoding", "onehot")
        if enc == "cate":  # not one of the space's own encodings: checked by the CATE encoder
            kwargs = {**kwargs, "encoding": "onehot"}
        super().__init__(space, **kwargs)
        if cate_params is not None and not isinstance(cate_params, dict):
            raise NasforgeError(f"cate_params must be a dict of CATE settings, got {cate_params!r}")
        self.cate_params = dict(cate_params or {})
        self.linear = bool(linear)
        self._cate = None
        if enc == "cate":
            self.encoding = "cate"
            self._settle_params(encoding="cate")

    def features(self, archs: list[Any]) -> np.ndarray:
        if self.encoding != "cate":
            return super().features(archs)
        if self._cate is None:
            from nasforge.estimation.predictors.cate import cate_encoder

            self._cate = cate_encoder(self.space, **self.cate_params)
        return self._cate.matrix(archs)

    def _fit(self, archs: list[Any], z: np.ndarray) -> None:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, DotProduct, Matern, WhiteKernel

        X = self.features(archs)
        self._scale = X.std(axis=0) + 1e-6
        kernel = ConstantKernel(1.0, (0.05, 20.0)) * Matern(length_scale=np.sqrt(X.shape[1]),
                                                              length_scale_bounds=(1e-2, 1e3), nu=2.5) \
            + WhiteKernel(1e-2, (1e-6, 1.0))
        if self.linear:  # a linear term: the encoding's linear signal survives a short Matern length scale
            kernel = kernel + ConstantKernel(0.1, (1e-4, 10.0)) * DotProduct(1.0, (1e-3, 1e2))
        self.model = GaussianProcessRegressor(kernel=kernel, normalize_y=False, n_restarts_optimizer=1,
                                              random_state=self.sub_seed())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(X / self._scale, z)

    def _predict(self, archs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self.model.predict(self.features(archs) / self._scale, return_std=True)
        return mean, std


class SelfTrainingPredictor(Predictor):
    """SemiNAS-style self-training (Luo et al., 2020): fit ``base`` on the labelled cells, label
    ``n_unlabeled`` random unlabelled cells with its predictions, refit on both, ``rounds``
    times. ``base`` is a predictor name with ``base_params`` (its seed and encoding follow this
    predictor's). The unlabelled cells are drawn with the predictor's seed."""

    name = "seminas"

    def __init__(self, space: SearchSpace, base: str = "xgb", base_params: dict[str, Any] | None = None,
                 n_unlabeled: int = 1000, rounds: int = 1, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        from nasforge.estimation.predictors.registry import PREDICTORS

        if base == "seminas" or base not in PREDICTORS:
            raise NasforgeError(f"unknown base predictor {base!r} for self-training; allowed: "
                                f"{', '.join(n for n in PREDICTORS if n != 'seminas')}")
        if base_params is not None and not isinstance(base_params, dict):
            raise NasforgeError(f"base_params must be a dict of predictor settings, got {base_params!r}")
        self.base, self.base_params = base, dict(base_params or {})
        self.n_unlabeled = check_int("n_unlabeled", n_unlabeled, 1)
        self.rounds = check_int("rounds", rounds, 1)
        self.probabilistic = False

    def _make(self) -> Predictor:
        from nasforge.estimation.predictors.registry import get_predictor

        params = {"encoding": self.encoding, **self.base_params, "seed": self.sub_seed()}
        return get_predictor(self.base, self.space, **params)

    def _fit(self, archs: list[Any], z: np.ndarray) -> None:
        labelled = set(archs)
        pool: list[Any] = []
        seen: set[Any] = set()
        for _ in range(20 * self.n_unlabeled):
            if len(pool) >= self.n_unlabeled:
                break
            a = self.space.sample(self.rng)
            if a not in labelled and a not in seen:
                seen.add(a)
                pool.append(a)
        model = self._make().fit(archs, z)
        for _ in range(self.rounds):
            pseudo = model.predict(pool)
            model = self._make().fit(list(archs) + pool, np.concatenate([z, pseudo]))
        self.model = model

    def _predict(self, archs: list[Any]) -> tuple[np.ndarray, None]:
        return self.model.predict(archs), None
