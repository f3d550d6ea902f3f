"""Batch selection on a GP posterior over a finite pool: k-DPP with quality, Kriging believer,
batch random. Every function returns distinct pool indices."""

from __future__ import annotations

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.strategies.bo.acquisition import acquire

BATCH_METHODS: tuple[str, ...] = ("kdpp", "kb", "random")


def condition_on(cov: np.ndarray, idx: list[int] | np.ndarray, noise: float) -> np.ndarray:
    """Posterior covariance after observing the points ``idx`` with noise variance ``noise``
    (values unknown: a Gaussian posterior covariance does not depend on them). With the
    Kriging-believer fantasy (observed value = posterior mean) the mean is unchanged."""
    idx = np.asarray(idx, dtype=int)
    if not len(idx):
        return cov
    S = cov[np.ix_(idx, idx)] + noise * np.eye(len(idx))
    Kc = cov[:, idx]
    out = cov - Kc @ np.linalg.solve(S, Kc.T)
    return 0.5 * (out + out.T)


def kriging_believer(mu: np.ndarray, cov: np.ndarray, k: int, acquisition: str, best: float, noise: float,
                     rng: np.random.Generator, beta: float = 2.0, xi: float = 0.0) -> list[int]:
    """Greedy batch: take the acquisition's best point, pretend its value is the posterior mean
    (the GP's belief), condition, repeat ``k`` times. Thompson sampling redraws each time."""
    cov = cov.copy()
    chosen: list[int] = []
    for _ in range(min(k, len(mu))):
        var = np.maximum(np.diag(cov), 1e-12)
        scores = acquire(acquisition, mu, var, best, rng, cov=cov if acquisition == "ts" else None,
                         beta=beta, xi=xi).astype(float)
        scores[chosen] = -np.inf
        j = int(np.argmax(scores))
        chosen.append(j)
        best = max(best, float(mu[j]))
        c = cov[:, j].copy()
        cov -= np.outer(c, c) / (c[j] + noise)
    return chosen


def sample_kdpp(L: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """Exact sample of a k-DPP with kernel ``L`` (Kulesza & Taskar 2011/2012: choose ``k``
    eigenvectors via elementary symmetric polynomials, then sample the projection DPP). When
    ``L`` has rank below ``k`` the sample is completed by the items with the largest diagonal."""
    n = L.shape[0]
    if k >= n:
        return list(range(n))
    w, V = np.linalg.eigh(0.5 * (L + L.T))
    top = w.max() if len(w) else 0.0
    w = np.clip(w, 0.0, None) / (top if top > 0 else 1.0)
    w[w < 1e-10] = 0.0
    E = np.zeros((k + 1, n + 1))
    E[0, :] = 1.0
    for r in range(1, k + 1):
        for m in range(1, n + 1):
            E[r, m] = E[r, m - 1] + w[m - 1] * E[r - 1, m - 1]
    J: list[int] = []
    r = k
    for m in range(n, 0, -1):
        if r == 0:
            break
        if E[r, m] <= 0:
            break
        if rng.random() < w[m - 1] * E[r - 1, m - 1] / E[r, m]:
            J.append(m - 1)
            r -= 1
    Vs = V[:, J]
    items: list[int] = []
    while Vs.shape[1] > 0:
        p = np.sum(Vs * Vs, axis=1)
        p[items] = 0.0
        tot = p.sum()
        if tot <= 1e-12:
            break
        i = int(rng.choice(n, p=p / tot))
        items.append(i)
        j = int(np.argmax(np.abs(Vs[i])))
        vj = Vs[:, j].copy()
        Vs = np.delete(Vs - np.outer(vj, Vs[i] / vj[i]), j, axis=1)
        if Vs.shape[1]:
            Vs, _ = np.linalg.qr(Vs)
    if len(items) < k:  # rank-deficient kernel: fill with the best remaining diagonal entries
        order = np.argsort(-np.diag(L), kind="stable")
        items.extend(int(i) for i in order if int(i) not in items)
        items = items[:k]
    return items


def kdpp_quality(mu: np.ndarray, cov: np.ndarray, k: int, rng: np.random.Generator,
                 temperature: float = 1.0) -> list[int]:
    """TW-NAS's k-DPP with quality: sample a k-DPP with ``L = diag(q) cov diag(q)``,
    ``q = exp(mu / temperature)`` (maximisation; TW-NAS minimises and uses ``exp(-mu)``).
    Diverse under the posterior covariance, biased to high posterior means."""
    if temperature <= 0:
        raise NasforgeError(f"k-DPP temperature must be > 0, got {temperature}")
    q = np.exp((mu - mu.max()) / temperature)  # a k-DPP is invariant to scaling L
    L = q[:, None] * cov * q[None, :]
    return sample_kdpp(L, k, rng)


def random_batch(n: int, k: int, rng: np.random.Generator) -> list[int]:
    """``k`` distinct pool members drawn uniformly (the batch-random baseline)."""
    return [int(i) for i in rng.choice(n, size=min(k, n), replace=False)]
