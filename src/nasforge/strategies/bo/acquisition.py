"""Acquisition functions on a GP posterior over a finite candidate set (maximisation)."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from nasforge.errors import NasforgeError

ACQUISITIONS: tuple[str, ...] = ("ei", "ucb", "ts")


def expected_improvement(mu: np.ndarray, var: np.ndarray, best: float, xi: float = 0.0) -> np.ndarray:
    """E[max(f - best - xi, 0)] under f ~ N(mu, var)."""
    sd = np.sqrt(np.maximum(var, 1e-18))
    imp = mu - best - xi
    z = imp / sd
    pdf = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    return np.maximum(imp * ndtr(z) + sd * pdf, 0.0)


def upper_confidence_bound(mu: np.ndarray, var: np.ndarray, beta: float = 2.0) -> np.ndarray:
    """mu + sqrt(beta) * sd."""
    return mu + np.sqrt(beta) * np.sqrt(np.maximum(var, 0.0))


def thompson_sample(mu: np.ndarray, cov_or_var: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One posterior draw at the candidates: joint when given a covariance matrix (factored with
    jitter / eigenvalue clipping when needed), independent per candidate when given variances."""
    if cov_or_var.ndim == 1:
        return mu + np.sqrt(np.maximum(cov_or_var, 0.0)) * rng.standard_normal(len(mu))
    from nasforge.strategies.bo.gp import robust_cholesky

    L, _, _ = robust_cholesky(cov_or_var, jitter=1e-8)
    return mu + L @ rng.standard_normal(len(mu))


def acquire(kind: str, mu: np.ndarray, var: np.ndarray, best: float, rng: np.random.Generator,
            cov: np.ndarray | None = None, beta: float = 2.0, xi: float = 0.0) -> np.ndarray:
    """Scores of every candidate under acquisition ``kind`` (``ei``, ``ucb``, ``ts``); higher is
    better. Thompson sampling draws jointly when ``cov`` is given."""
    if kind == "ei":
        return expected_improvement(mu, var, best, xi)
    if kind == "ucb":
        return upper_confidence_bound(mu, var, beta)
    if kind == "ts":
        return thompson_sample(mu, cov if cov is not None else var, rng)
    raise NasforgeError(f"unknown acquisition {kind!r}; allowed: {', '.join(ACQUISITIONS)}")
