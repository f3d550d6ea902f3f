"""GP-based Bayesian optimisation over architectures (the ``bo`` strategy)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Strategy, Suggestion
from nasforge.strategies.bo.acquisition import ACQUISITIONS, acquire
from nasforge.strategies.bo.batch import BATCH_METHODS, condition_on, kdpp_quality, kriging_believer, random_batch
from nasforge.strategies.bo.gp import TRANSFORMS, GaussianProcess, blas_single_thread
from nasforge.strategies.bo.kernels import AUTO, KERNELS, KernelCache, default_kernel, get_kernel


class GPBayesOpt(Strategy):
    """Bayesian optimisation with an exact GP and an architecture kernel.

    After ``n_init`` random architectures, each selection step fits the GP (hyperparameters by
    marginal likelihood every ``refit_every`` new observations, warm-started; in between only the
    Cholesky factor is updated with the new data), builds a candidate set (up to ``n_local``
    unseen neighbours of each of the ``n_incumbents`` best observed architectures, plus
    ``n_random`` random unseen architectures) and picks the maximiser of the acquisition
    (``ei``, ``ucb`` with ``beta``, or ``ts``: a joint posterior draw for cheap kernels, an
    independent one per candidate for the expensive ``hot``).

    Kernels (``kernel=``): ``hamming``, ``path``, ``wl``, ``tw``, ``tw2``, ``hot`` on the space's
    graph view, ``onehot`` on its own encoding (any space), or ``auto`` (default): ``tw2`` where
    the graph view has branching cells (NB201, DARTS, NAS-Bench-101, NAS-Bench-Graph), ``onehot``
    elsewhere (layer-wise spaces, user spaces); the chosen name is what :meth:`config` stores (see
    :mod:`nasforge.strategies.bo.kernels`). ``kernel_params`` passes their settings. ``hot``
    solves one fused Gromov-Wasserstein problem per (candidate, observation) pair (about 0.3 ms
    each): give it a smaller candidate set (e.g. ``n_random=30, n_incumbents=3, n_local=10``).
    Targets are normalised with ``transform`` (default ``rank``: a Gaussian copula, robust to the
    few cells that do not train; ``standard``: z-scores). Failed evaluations stay out of the model.
    ``initial`` (optional) lists architectures to evaluate first, the start of the initial design
    (random ones fill it up to ``n_init``), e.g. a zero-cost warm start
    (:func:`nasforge.estimation.proxies.proxy_warm_start`); it is stored in the configuration.

    Batches (``batch_size`` B > 1): one selection step chooses B architectures at once with
    ``batch_method`` (``kdpp``: k-DPP with quality, ``kb``: Kriging believer, ``random``: B
    uniform draws) from the ``batch_pool`` candidates with the best single-point acquisition;
    successive ``ask()`` calls hand them out, and the next batch is chosen when they are used up.
    Architectures asked but not yet told (pending) are conditioned on with the Kriging-believer
    fantasy (the posterior covariance shrinks around them), and a new batch only fills the free
    slots (B minus pending). ``ask()`` is a deterministic function of the seed and the tells,
    so studies resume by replay.
    """

    name = "bo"

    def __init__(
        self,
        space: SearchSpace,
        kernel: str = "auto",
        acquisition: str = "ei",
        batch_size: int = 1,
        batch_method: str = "kdpp",
        n_init: int = 10,
        n_random: int = 100,
        n_incumbents: int = 5,
        n_local: int = 24,
        refit_every: int = 5,
        transform: str = "rank",
        beta: float = 2.0,
        xi: float = 0.0,
        batch_pool: int = 100,
        dpp_temperature: float = 1.0,
        kernel_params: dict[str, Any] | None = None,
        initial: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(space, **kwargs)
        self._set_initial(initial)
        if kernel != AUTO and kernel not in KERNELS:
            raise NasforgeError(f"unknown kernel {kernel!r}; allowed: {AUTO}, {', '.join(KERNELS)}")
        if acquisition not in ACQUISITIONS:
            raise NasforgeError(f"unknown acquisition {acquisition!r}; allowed: {', '.join(ACQUISITIONS)}")
        if batch_method not in BATCH_METHODS:
            raise NasforgeError(f"unknown batch_method {batch_method!r}; allowed: {', '.join(BATCH_METHODS)}")
        if transform not in TRANSFORMS:
            raise NasforgeError(f"unknown transform {transform!r}; allowed: {', '.join(TRANSFORMS)}")
        for key, val, lo in (("batch_size", batch_size, 1), ("n_init", n_init, 1), ("n_random", n_random, 0),
                             ("n_incumbents", n_incumbents, 0), ("n_local", n_local, 0),
                             ("refit_every", refit_every, 1), ("batch_pool", batch_pool, 1)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
                raise NasforgeError(f"bo setting {key} must be an integer >= {lo}, got {val!r}")
        if n_random + n_incumbents * n_local < 1:
            raise NasforgeError("bo needs candidates: n_random > 0 or n_incumbents * n_local > 0")
        if beta < 0 or dpp_temperature <= 0:
            raise NasforgeError(f"bo needs beta >= 0 and dpp_temperature > 0; got {beta!r}, {dpp_temperature!r}")
        if kernel_params is not None and not isinstance(kernel_params, dict):
            raise NasforgeError(f"kernel_params must be a dict of kernel settings, got {kernel_params!r}")
        if kernel == AUTO:
            kernel = default_kernel(space)
        self.kernel_name = kernel
        self.acquisition = acquisition
        self.batch_size = int(batch_size)
        self.batch_method = batch_method
        self.n_init = int(n_init)
        self.n_random = int(n_random)
        self.n_incumbents = int(n_incumbents)
        self.n_local = int(n_local)
        self.refit_every = int(refit_every)
        self.transform = transform
        self.beta = float(beta)
        self.xi = float(xi)
        self.batch_pool = int(batch_pool)
        self.dpp_temperature = float(dpp_temperature)
        self.kernel_params = dict(kernel_params or {})
        self.kernel = get_kernel(kernel, space, **self.kernel_params)
        self.cache = KernelCache(self.kernel)
        self.gp = GaussianProcess(self.kernel, transform=transform)
        self._y: list[float] = []
        self._queue: deque[Suggestion] = deque()
        self._pending: dict[Hashable, Any] = {}
        self._n_asked = 0
        self._n_at_refit = -1
        self._n_batches = 0
        self._settle_params(**{k: getattr(self, k) for k in (
            "batch_size", "n_init", "n_random", "n_incumbents", "n_local", "refit_every", "beta", "xi", "batch_pool",
            "dpp_temperature")}, kernel=kernel, kernel_params=dict(self.kernel_params), initial=self.initial)

    # --- ask / tell ------------------------------------------------------------------------------
    def ask(self) -> Suggestion:
        self._n_asked += 1
        warm = None if self._queue else self._initial_suggestion(self._n_asked)
        if warm is not None:
            self._queue.append(warm)
        elif not self._queue:
            if self._n_asked <= self.n_init or len(self._y) < 2:
                arch = self._unique(lambda: self.space.sample(self.rng))
                self._queue.append(self._claim(arch, phase="init"))
            else:
                size = max(1, self.batch_size - len(self._pending))
                with blas_single_thread():
                    self._queue.extend(self._select(size))
        sug = self._queue.popleft()
        self._pending[sug.arch] = None
        return sug

    def _observe(self, suggestion: Suggestion, score: float, result: Any) -> None:
        self._pending.pop(suggestion.arch, None)
        if score == -math.inf:  # failed: keeps its place in the seen set, stays out of the model
            return
        self.cache.add(suggestion.arch)
        self._y.append(score)

    # --- model ---------------------------------------------------------------------------------
    def _fit(self) -> bool:
        """Condition the GP on the observations; True when its hyperparameters were refitted."""
        n = len(self._y)
        refit = self._refit_due()
        self.gp.fit(self.cache.C, np.asarray(self._y), optimize=refit)
        if refit:
            self._n_at_refit = n
        return refit

    def _refit_due(self) -> bool:
        return self.gp.params is None or len(self._y) - self._n_at_refit >= self.refit_every

    def _gp_record(self) -> dict[str, list[float]]:
        """The fitted hyperparameters, exactly (JSON keeps every bit of a float): stored with the
        trial asked after a refit, so that a resumed study restores them instead of refitting."""
        return {"params": [float(v) for v in self.gp.params], "scales": [float(v) for v in self.gp.scales]}

    def replay_ask(self, arch: Any, info: dict[str, Any] | None = None) -> Suggestion:
        """What :meth:`ask` returns when a stored study is replayed, given that it returned
        ``arch`` (an architecture or its string) with ``info`` before.

        A one-at-a-time step with a deterministic acquisition (``ei``, ``ucb``) skips the model:
        the candidate set is drawn as in :meth:`ask` (the generator and the kernel cache move
        exactly as they did), the stored architecture must be among the candidates, and the GP
        hyperparameters recorded at a refit are restored rather than re-optimised. The strategy
        is then in the state :meth:`ask` would have left, bit for bit (tested), at a fraction of
        the cost. Any other step (initial design, batches, Thompson sampling, a study stored
        without the record) runs :meth:`ask` itself.
        """
        info = info if isinstance(info, dict) else {}
        rec = info.get("gp")
        size = max(1, self.batch_size - len(self._pending))
        due = self._refit_due()
        if (self._queue or self._n_asked + 1 <= self.n_init or len(self._y) < 2 or size != 1
                or self.acquisition not in ("ei", "ucb") or info.get("phase") != "bo"
                or due != isinstance(rec, dict)):
            return self.ask()
        target = self.space.coerce(arch)
        self._n_asked += 1
        cands = self.candidates()
        if target not in set(cands):
            raise NasforgeError(f"cannot replay the bo study: {self.space.format(target)} is not among the "
                                "candidates this strategy proposes at that step; was the seed or the search space "
                                "changed?")
        self.cache.cross(cands)  # the candidate rows the cache keeps, as ask() leaves them
        if due:
            self.gp.params = np.asarray(rec["params"], dtype=float)
            self.gp.scales = np.asarray(rec["scales"], dtype=float)
            self.gp.n_refits += 1
            self._n_at_refit = len(self._y)
        self._n_batches += 1
        keep = {k: info[k] for k in ("mean", "sd", "gp") if k in info}
        sug = self._claim(target, phase="bo", step=self._n_batches, **keep)
        self._pending[sug.arch] = None
        return sug

    def candidates(self) -> list[Any]:
        """Unseen neighbours of the best observed architectures, then random unseen ones."""
        out: list[Any] = []
        keys: set[Hashable] = set()

        def fresh(a: Any) -> bool:
            return self._key(a) not in keys and self.is_new(a)

        def add(a: Any) -> None:
            keys.add(self._key(a))
            out.append(a)

        if self.n_incumbents and self.n_local:
            order = sorted(range(len(self._y)), key=lambda i: (-self._y[i], i))
            incumbents: list[Any] = []
            for i in order:
                a = self.cache.archs[i]
                if a not in incumbents:
                    incumbents.append(a)
                if len(incumbents) == self.n_incumbents:
                    break
            for inc in incumbents:
                nbrs = [a for a in self.space.neighbors(inc) if fresh(a)]
                if len(nbrs) > self.n_local:
                    pick = np.sort(self.rng.choice(len(nbrs), size=self.n_local, replace=False))
                    nbrs = [nbrs[i] for i in pick]
                for a in nbrs:
                    if fresh(a):
                        add(a)
        target = len(out) + self.n_random
        for _ in range(3 * self.n_random):
            if len(out) >= target:
                break
            a = self.space.sample(self.rng)
            if fresh(a):
                add(a)
        return out

    def _select(self, size: int) -> list[Suggestion]:
        cands = self.candidates()
        if not cands:  # nothing new nearby or at random: enumerate what is left (or fail clearly)
            return [self._claim(self._unique(lambda: self.space.sample(self.rng)), phase="fallback")]
        refit = self._fit()
        gp = self.gp
        mu, var = gp.predict(self.cache.cross(cands))
        best = gp.best
        pending = [a for a in self._pending if a not in set(cands)]
        self._n_batches += 1
        info: dict[str, Any] = {"phase": "bo", "step": self._n_batches}
        if refit:
            info["gp"] = self._gp_record()
        if size == 1 and not pending:
            cov = None
            if self.acquisition == "ts" and self.kernel.cheap:
                _, cov = gp.posterior(self.cache.cross(cands, keep=False), self.cache.among(cands))
            scores = acquire(self.acquisition, mu, var, best, self.rng, cov=cov, beta=self.beta, xi=self.xi)
            j = int(np.argmax(scores))
            return [self._claim(cands[j], mean=round(float(mu[j]), 6), sd=round(float(np.sqrt(var[j])), 6), **info)]
        # batch (or pending evaluations): joint posterior over the pool and the pending points
        if len(cands) > self.batch_pool:
            single = acquire(self.acquisition, mu, var, best, self.rng, beta=self.beta, xi=self.xi)
            keep = np.sort(np.argsort(-single, kind="stable")[: self.batch_pool])
            pool = [cands[i] for i in keep]
        else:
            pool = cands
        union = pending + pool
        mu_u, cov_u = gp.posterior(self.cache.cross(union, keep=False), self.cache.among(union))
        npend = len(pending)
        if npend:
            cov_u = condition_on(cov_u, list(range(npend)), gp.noise)
            best = max(best, float(mu_u[:npend].max()))
        mu_p, cov_p = mu_u[npend:], cov_u[npend:, npend:]
        if size == 1:
            scores = acquire(self.acquisition, mu_p, np.maximum(np.diag(cov_p), 1e-12), best, self.rng,
                             cov=cov_p if self.acquisition == "ts" else None, beta=self.beta, xi=self.xi)
            chosen = [int(np.argmax(scores))]
        elif self.batch_method == "kb":
            chosen = kriging_believer(mu_p, cov_p, size, self.acquisition, best, gp.noise, self.rng,
                                      beta=self.beta, xi=self.xi)
        elif self.batch_method == "kdpp":
            chosen = kdpp_quality(mu_p, cov_p, size, self.rng, temperature=self.dpp_temperature)
        else:
            chosen = random_batch(len(pool), size, self.rng)
        return [self._claim(pool[j], mean=round(float(mu_p[j]), 6), sd=round(float(np.sqrt(max(cov_p[j, j], 0.0))), 6),
                            batch=self.batch_method if size > 1 else None, **info) for j in chosen]
