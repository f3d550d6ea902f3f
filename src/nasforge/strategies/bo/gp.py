"""Exact Gaussian-process regression on precomputed architecture-kernel components.

The GP never sees architectures: it receives the components of an :class:`ArchKernel`
(distances or similarities, cached incrementally by :class:`KernelCache`) and owns the
hyperparameters: the signal variance sigma^2, the noise variance and the kernel's ``theta``,
fitted by maximising the log marginal likelihood (L-BFGS-B with analytic gradients, warm-started
from the previous optimum). Targets are normalised (z-score, or a rank-based Gaussian copula)
before fitting; predictions are in normalised units.

Numerical stability: a zero-mean prior on normalised targets, bounded hyperparameters, and
:func:`robust_cholesky` (jitter growing 10x per retry, then a projection onto the PSD cone).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from scipy.linalg import LinAlgError, cho_solve, solve_triangular
from scipy.optimize import minimize
from scipy.special import ndtri

from nasforge.errors import NasforgeError
from nasforge.strategies.bo.kernels import ArchKernel

TRANSFORMS = ("standard", "rank")
_CONTROLLER: Any = None


@contextmanager
def blas_single_thread() -> Iterator[None]:
    """Run BLAS single-threaded inside the block. GP matrices have at most a few hundred rows:
    threads gain nothing there, and on shared cores OpenBLAS's spinning threads made a BO step
    many times slower (a 100-query run: 12 s instead of 0.6 s on the 2-core development machine)."""
    global _CONTROLLER
    try:
        if _CONTROLLER is None:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER = ThreadpoolController()
        ctx = _CONTROLLER.limit(limits=1, user_api="blas")
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with ctx:
        yield


def robust_cholesky(K: np.ndarray, jitter: float = 1e-8, max_tries: int = 6) -> tuple[np.ndarray, float, bool]:
    """Lower Cholesky factor of ``K``, made positive definite when it is not.

    Tries ``K``, then ``K + j I`` with ``j = jitter * mean(diag K)`` growing 10x per retry
    (``max_tries`` retries); if that fails (an indefinite kernel), clips the eigenvalues of ``K``
    at ``jitter * mean(diag K)`` and factors the result. Returns (L, jitter added, clipped?).
    """
    scale = float(np.mean(np.diag(K))) if K.size else 1.0
    scale = scale if scale > 0 and math.isfinite(scale) else 1.0
    eye = np.eye(K.shape[0])
    added = 0.0
    for t in range(max_tries + 1):
        try:
            return np.linalg.cholesky(K + added * eye), added, False
        except np.linalg.LinAlgError:
            added = jitter * scale * 10.0**t
    w, V = np.linalg.eigh(0.5 * (K + K.T))
    floor = jitter * scale
    Kp = (V * np.maximum(w, floor)) @ V.T
    try:
        return np.linalg.cholesky(Kp + floor * eye), floor, True
    except np.linalg.LinAlgError as exc:  # pragma: no cover - eigen-clipped matrices factor
        raise LinAlgError(f"covariance matrix cannot be factored even after eigenvalue clipping: {exc}") from None


def normalise_targets(y: np.ndarray, transform: str = "standard") -> np.ndarray:
    """``standard``: (y - mean) / std. ``rank``: the Gaussian copula ``Phi^-1((rank + 0.5) / n)``
    (ties get their mean rank), robust to heavy tails such as the few NB201 cells that do not
    train at all."""
    y = np.asarray(y, dtype=float)
    if transform == "standard":
        sd = float(y.std())
        return (y - y.mean()) / (sd if sd > 0 else 1.0)
    if transform == "rank":
        order = np.argsort(y, kind="stable")
        ranks = np.empty(len(y))
        ranks[order] = np.arange(len(y), dtype=float)
        # ties: average rank
        _, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
        if np.any(counts > 1):
            sums = np.bincount(inv, weights=ranks)
            ranks = sums[inv] / counts[inv]
        return ndtri((ranks + 0.5) / len(y))
    raise NasforgeError(f"unknown target transform {transform!r}; allowed: {', '.join(TRANSFORMS)}")


class GaussianProcess:
    """Exact GP on kernel components with marginal-likelihood hyperparameters.

    Hyperparameter vector: ``[log sigma^2, log noise, theta...]``, all bounded. Call
    :meth:`fit` with the observation components and raw targets (``optimize=False`` keeps the
    current hyperparameters and only refactors), then :meth:`predict` / :meth:`posterior`.
    """

    def __init__(
        self,
        kernel: ArchKernel,
        transform: str = "standard",
        noise_bounds: tuple[float, float] = (1e-6, 0.5),
        variance_bounds: tuple[float, float] = (0.05, 20.0),
        max_iter: int = 60,
    ) -> None:
        if transform not in TRANSFORMS:
            raise NasforgeError(f"unknown target transform {transform!r}; allowed: {', '.join(TRANSFORMS)}")
        self.kernel = kernel
        self.transform = transform
        self.bounds = [tuple(np.log(variance_bounds)), tuple(np.log(noise_bounds)), *kernel.theta_bounds()]
        self.max_iter = max_iter
        self.params: np.ndarray | None = None
        self.scales: np.ndarray | None = None
        #: counters: factorisations that needed jitter / eigenvalue clipping, and ML refits
        self.n_jitter = 0
        self.n_clipped = 0
        self.n_refits = 0
        self.y = np.zeros(0)

    # --- hyperparameters -------------------------------------------------------------------------
    def default_params(self) -> np.ndarray:
        return np.concatenate([[0.0, np.log(1e-2)], self.kernel.theta0()])

    def _clip(self, p: np.ndarray) -> np.ndarray:
        lo = np.array([b[0] for b in self.bounds])
        hi = np.array([b[1] for b in self.bounds])
        return np.clip(p, lo, hi)

    def neg_log_marginal_likelihood(self, p: np.ndarray, C: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative log marginal likelihood and its gradient in the log-parameters."""
        n = len(y)
        amp, noise, theta = math.exp(p[0]), math.exp(p[1]), p[2:]
        Kt = self.kernel.gram(C, theta, self.scales)
        K = amp * Kt + noise * np.eye(n)
        L, _, _ = robust_cholesky(K)
        alpha = cho_solve((L, True), y)
        nll = 0.5 * float(y @ alpha) + float(np.log(np.diag(L)).sum()) + 0.5 * n * math.log(2 * math.pi)
        Kinv = cho_solve((L, True), np.eye(n))
        W = np.outer(alpha, alpha) - Kinv
        grads = [amp * Kt, noise * np.eye(n)] + [amp * g for g in self.kernel.gram_grads(C, theta, self.scales, Kt)]
        g = np.array([-0.5 * float(np.sum(W * dK)) for dK in grads])
        return nll, g

    def optimize(self, C: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Maximise the marginal likelihood from the previous optimum and from the defaults."""
        starts = [self.default_params()]
        if self.params is not None:
            starts.insert(0, self.params)
        best_p, best_v = None, math.inf
        for s in starts:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    res = minimize(self.neg_log_marginal_likelihood, self._clip(s), args=(C, y), jac=True,
                                   method="L-BFGS-B", bounds=self.bounds, options={"maxiter": self.max_iter})
                except (LinAlgError, np.linalg.LinAlgError, ValueError):
                    continue
            if math.isfinite(res.fun) and res.fun < best_v:
                best_p, best_v = np.asarray(res.x), float(res.fun)
        self.n_refits += 1
        return best_p if best_p is not None else self._clip(starts[0])

    # --- fitting and prediction -----------------------------------------------------------------
    def fit(self, C: np.ndarray, y_raw: np.ndarray, optimize: bool = True) -> GaussianProcess:
        """Condition on observations with components ``C`` (k, n, n) and raw targets ``y_raw``."""
        y_raw = np.asarray(y_raw, dtype=float)
        if C.shape[1] != len(y_raw):
            raise NasforgeError(f"GP fit: {C.shape[1]} observations in the kernel, {len(y_raw)} targets")
        self.y = normalise_targets(y_raw, self.transform)
        if optimize or self.params is None or self.scales is None:
            self.scales = self.kernel.scales(C)
            self.params = self.optimize(C, self.y)
        amp, noise = math.exp(self.params[0]), math.exp(self.params[1])
        K = amp * self.kernel.gram(C, self.params[2:], self.scales) + noise * np.eye(len(self.y))
        self.L, added, clipped = robust_cholesky(K)
        self.n_jitter += added > 0 and not clipped
        self.n_clipped += clipped
        self.alpha = cho_solve((self.L, True), self.y)
        return self

    @property
    def variance(self) -> float:
        return math.exp(self.params[0]) if self.params is not None else 1.0

    @property
    def noise(self) -> float:
        return math.exp(self.params[1]) if self.params is not None else 1e-2

    def _cross(self, C_cross: np.ndarray) -> np.ndarray:
        return self.variance * self.kernel.gram(C_cross, self.params[2:], self.scales)

    def predict(self, C_cross: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the latent function (normalised units) at candidates
        with components ``C_cross`` (k, m, n)."""
        Ks = self._cross(C_cross)
        mu = Ks @ self.alpha
        V = solve_triangular(self.L, Ks.T, lower=True)
        var = np.maximum(self.variance - np.sum(V * V, axis=0), 1e-12)
        return mu, var

    def posterior(self, C_cross: np.ndarray, C_among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and full covariance of the latent function at candidates."""
        Ks = self._cross(C_cross)
        mu = Ks @ self.alpha
        V = solve_triangular(self.L, Ks.T, lower=True)
        cov = self.variance * self.kernel.gram(C_among, self.params[2:], self.scales) - V.T @ V
        cov = 0.5 * (cov + cov.T)
        return mu, cov

    @property
    def best(self) -> float:
        """Largest normalised target observed."""
        return float(self.y.max()) if len(self.y) else 0.0

    def state(self) -> dict[str, Any]:
        """Fitted hyperparameters, for inspection."""
        if self.params is None:
            return {}
        return {"variance": self.variance, "noise": self.noise,
                "theta": [float(t) for t in self.params[2:]],
                "scales": [float(s) for s in (self.scales if self.scales is not None else [])]}
