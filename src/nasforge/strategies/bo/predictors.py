"""The BO strategies' models as stand-alone predictors (the :class:`~nasforge.estimation.predictors.Predictor`
interface): the exact GP on an architecture kernel, the BANANAS ensemble of MLPs and DNGO (an MLP
with Bayesian linear regression on its last layer), on the BO encodings (CATE included). They are
registered as ``gp``, ``bananas`` and ``dngo`` in :mod:`nasforge.estimation.predictors`."""

from __future__ import annotations

from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.estimation.predictors.base import Predictor, check_int
from nasforge.estimation.predictors.registry import register_predictor
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.bo.bananas import fit_mlps
from nasforge.strategies.bo.encodings import ENCODINGS, default_encoding, encoder
from nasforge.strategies.bo.gp import GaussianProcess, blas_single_thread
from nasforge.strategies.bo.kernels import AUTO, KERNELS, KernelCache, default_kernel, get_kernel


class GPKernelPredictor(Predictor):
    """Exact GP with an architecture kernel (``kernel``: ``auto``, ``hamming``, ``path``, ``wl``,
    ``tw``, ``tw2``, ``hot``, ``onehot``), hyperparameters by marginal likelihood, as the ``bo``
    strategy fits it."""

    name = "gp"
    probabilistic = True

    def __init__(self, space: SearchSpace, kernel: str = "auto", kernel_params: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if kernel != AUTO and kernel not in KERNELS:
            raise NasforgeError(f"unknown kernel {kernel!r}; allowed: {AUTO}, {', '.join(KERNELS)}")
        self.kernel_name = default_kernel(space) if kernel == AUTO else kernel
        self.kernel_params = dict(kernel_params or {})
        self.kernel = get_kernel(self.kernel_name, space, **self.kernel_params)
        self._features: dict[Any, Any] = {}  # per-architecture kernel features, kept across fits
        self._settle_params(kernel=self.kernel_name)

    def _fit(self, archs: list[Any], z: np.ndarray) -> None:
        self.cache = KernelCache(self.kernel, features=self._features)
        for a in archs:
            self.cache.add(a)
        self.gp = GaussianProcess(self.kernel, transform="standard")
        with blas_single_thread():
            self.gp.fit(self.cache.C, z)

    def _predict(self, archs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        with blas_single_thread():
            mu, var = self.gp.predict(self.cache.cross(archs, keep=False))
        return mu, np.sqrt(var)


def _mlp_settings(pred: Predictor, enc: str, hidden: Any, epochs: int, lr: float, truncate: int,
                  cate_params: dict[str, Any] | None) -> None:
    """Check and store the settings the MLP predictors (BANANAS, DNGO) share: the encoding
    (``auto`` = the space's default), epochs, path truncation, hidden widths, learning rate; build
    the encoder and settle the stored parameters."""
    if enc == "auto":
        enc = default_encoding(pred.space)
    if enc not in ENCODINGS:
        raise NasforgeError(f"unknown encoding {enc!r}; allowed: auto, {', '.join(ENCODINGS)}")
    pred.encoding = enc
    pred.epochs = check_int("epochs", epochs, 1)
    pred.truncate = check_int("truncate", truncate, 1)
    pred.hidden = tuple(int(h) for h in hidden)
    if not pred.hidden or min(pred.hidden) < 1:
        raise NasforgeError(f"{pred.name} hidden must list positive layer widths, got {hidden!r}")
    if not lr > 0:
        raise NasforgeError(f"{pred.name} lr must be > 0, got {lr!r}")
    pred.lr = float(lr)
    pred.encoder = encoder(pred.space, enc, truncate=pred.truncate, cate_params=cate_params)
    pred._settle_params(encoding=enc, hidden=list(pred.hidden))


class BananasPredictor(Predictor):
    """BANANAS' ensemble of MLPs (as the ``bananas`` strategy fits it) on the path encoding (or
    ``adjacency``/``trunc_path``/``onehot``/``cate``, the last with ``cate_params``); the ensemble
    spread is its uncertainty."""

    name = "bananas"
    probabilistic = True

    def __init__(self, space: SearchSpace, ensemble: int = 5, hidden: tuple[int, ...] | list[int] = (32, 32, 32),
                 epochs: int = 200, lr: float = 0.01, truncate: int = 2,
                 cate_params: dict[str, Any] | None = None, **kwargs: Any) -> None:
        enc = kwargs.pop("encoding", "auto")
        super().__init__(space, **kwargs)
        self.ensemble = check_int("ensemble", ensemble, 1)
        _mlp_settings(self, enc, hidden, epochs, lr, truncate, cate_params)

    def _X(self, archs: list[Any]) -> np.ndarray:
        return self.encoder.matrix(archs)

    def _fit(self, archs: list[Any], z: np.ndarray) -> None:
        with blas_single_thread():
            self.nets = fit_mlps(self._X(archs), z, self.ensemble, self.hidden, self.epochs, self.lr, self.rng)

    def _predict(self, archs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        X = self._X(archs)
        with blas_single_thread():
            P = np.asarray([net.predict(X) for net in self.nets])
        return P.mean(axis=0), P.std(axis=0)


class DNGOPredictor(Predictor):
    """DNGO (Snoek et al., ICML 2015): an MLP (``hidden`` tanh layers, Adam, scikit-learn) learns
    features of an encoding (``path``, ``adjacency``, ``trunc_path``, ``onehot`` or ``cate``, as
    :func:`~nasforge.strategies.bo.encodings.encoder` computes them); Bayesian linear regression on
    its last hidden layer (scikit-learn ``BayesianRidge``: weight and noise precisions by evidence
    maximisation) gives the predictive mean and standard deviation."""

    name = "dngo"
    probabilistic = True

    def __init__(self, space: SearchSpace, hidden: tuple[int, ...] | list[int] = (50, 50, 50), epochs: int = 500,
                 lr: float = 0.01, truncate: int = 2, cate_params: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        enc = kwargs.pop("encoding", "auto")
        super().__init__(space, **kwargs)
        _mlp_settings(self, enc, hidden, epochs, lr, truncate, cate_params)

    def _X(self, archs: list[Any]) -> np.ndarray:
        return np.asarray(self.encoder.matrix(archs), dtype=float)

    def _features(self, X: np.ndarray) -> np.ndarray:
        h = (X - self._xm) / self._xs
        for W, b in zip(self.net.coefs_[:-1], self.net.intercepts_[:-1]):
            h = np.tanh(h @ W + b)
        return h

    def _fit(self, archs: list[Any], z: np.ndarray) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import BayesianRidge
        from sklearn.neural_network import MLPRegressor

        X = self._X(archs)
        self._xm, self._xs = X.mean(axis=0), X.std(axis=0) + 1e-6
        self.net = MLPRegressor(hidden_layer_sizes=self.hidden, activation="tanh", learning_rate_init=self.lr,
                                max_iter=self.epochs, tol=0.0, n_iter_no_change=self.epochs + 1, alpha=1e-4,
                                random_state=self.sub_seed())
        with warnings.catch_warnings(), blas_single_thread():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.net.fit((X - self._xm) / self._xs, z)
            self.blr = BayesianRidge(fit_intercept=True).fit(self._features(X), z)

    def _predict(self, archs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        with blas_single_thread():
            mean, std = self.blr.predict(self._features(self._X(archs)), return_std=True)
        return mean, std


register_predictor("gp", GPKernelPredictor)
register_predictor("bananas", BananasPredictor)
register_predictor("dngo", DNGOPredictor)
