"""TNAS-style transfer: a deep-kernel GP meta-learned on bank tasks, fine-tuned during the search.

After Shala et al., "Transfer NAS with meta-learned Bayesian surrogates" (ICLR 2023), at CPU
scale and for tabular tasks:

* **Features.** An MLP encodes an architecture's fixed-length encoding (``space.encode``, the
  one-hot of its operations and wiring); a learned embedding of the task is appended and a
  second layer maps both to the GP's feature space, so the kernel itself depends on the task.
  Tabular tasks have no examples to encode, so each source task gets a free embedding vector
  (the paper's dataset encoder needs images); the target's starts at the mean of the sources'.
* **Deep-kernel GP.** ``k(x, x') = s^2 exp(-|phi(x) - phi(x')|^2 / 2 l^2)`` plus noise, with a
  learned mean ``m(x) = w . phi(x) + b``. Meta-training maximises the GP's marginal likelihood
  of random subsets of one source task at a time (targets rank-normalised per task), so the
  features, mean, kernel and task embeddings are learnt jointly.
* **Search.** Warm start: the ``n_warm`` architectures the meta-model ranks highest (its mean,
  with the target's starting embedding) over the whole space where it is finite and not too
  large, else a random pool. Then every step fine-tunes the model on the target's observations
  (a few Adam steps on their marginal likelihood, all parameters) and picks the expected
  improvement maximiser among unseen neighbours of the incumbents and random architectures.

The model is torch; it is seeded (``torch.manual_seed`` inside a forked RNG, computations in
float64 on one thread), so the same bank, seed and results give the same search, which is how a
study resumes (by replay).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from scipy.special import ndtri

from nasforge.errors import NasforgeError, check_int
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Strategy, Suggestion
from nasforge.strategies.bo.acquisition import expected_improvement
from nasforge.transfer.bank import BankTask, check_tasks, space_key


def copula(y: np.ndarray) -> np.ndarray:
    """Rank-based Gaussian copula of ``y`` (ties by order of appearance): comparable targets
    across tasks whatever their units."""
    y = np.asarray(y, dtype=float)
    ranks = np.empty(len(y))
    ranks[np.argsort(y, kind="stable")] = np.arange(len(y), dtype=float)
    return ndtri((ranks + 0.5) / len(y))


class MetaSurrogate:
    """The meta-learned deep-kernel GP (see the module notes).

    ``tasks``: the bank tasks to meta-train on (one space). ``meta_steps`` Adam steps, each on a
    random subset of ``batch`` architectures of one task (tasks in turn). :meth:`fit` trains;
    :meth:`for_target` gives an independent copy with a fresh target embedding for one search.
    """

    def __init__(self, space: SearchSpace, tasks: Sequence[BankTask], hidden: int = 64, features: int = 16,
                 embed: int = 4, meta_steps: int = 600, batch: int = 64, lr: float = 2e-3, seed: int = 0,
                 encoding: str = "onehot") -> None:
        check_tasks(tasks, space, "TNAS needs at least one source task in the bank")
        if encoding not in space.encodings:
            raise NasforgeError(f"space {space.name!r} has no encoding {encoding!r}; it has: {', '.join(space.encodings)}")
        for name, v, lo in (("hidden", hidden, 1), ("features", features, 1), ("embed", embed, 1),
                            ("meta_steps", meta_steps, 0), ("batch", batch, 2)):
            check_int(v, name, lo)
        self.space, self.tasks, self.encoding = space, list(tasks), encoding
        self.hidden, self.features, self.embed = hidden, features, embed
        self.meta_steps, self.batch, self.lr, self.seed = meta_steps, batch, float(lr), int(seed)
        self._enc: dict[Hashable, np.ndarray] = {}
        self.net: Any = None
        self.meta_loss: list[float] = []

    # --- torch model -----------------------------------------------------------------------------
    def _build(self) -> Any:
        import torch
        from torch import nn

        d = len(self.space.encode(self.space.sample(np.random.default_rng(0)), self.encoding))

        class Net(nn.Module):
            def __init__(s) -> None:
                super().__init__()
                s.arch = nn.Sequential(nn.Linear(d, self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.hidden),
                                       nn.ReLU())
                s.head = nn.Linear(self.hidden + self.embed, self.features)
                s.mean = nn.Linear(self.features, 1)
                s.tasks = nn.Parameter(0.1 * torch.randn(len(self.tasks), self.embed, dtype=torch.float64))
                s.target = nn.Parameter(torch.zeros(self.embed, dtype=torch.float64))
                s.log_ls = nn.Parameter(torch.tensor(0.0, dtype=torch.float64))
                s.log_var = nn.Parameter(torch.tensor(0.0, dtype=torch.float64))
                s.log_noise = nn.Parameter(torch.tensor(math.log(0.1), dtype=torch.float64))

            def phi(s, x: Any, z: Any) -> Any:
                h = s.arch(x)
                return torch.tanh(s.head(torch.cat([h, z.expand(h.shape[0], -1)], dim=1)))

        return Net().double()

    @staticmethod
    def _kernel(net: Any, fa: Any, fb: Any) -> Any:
        import torch

        d2 = torch.cdist(fa, fb).pow(2)
        return torch.exp(net.log_var) * torch.exp(-0.5 * d2 / torch.exp(2 * net.log_ls))

    def _nll(self, net: Any, x: Any, y: Any, z: Any) -> Any:
        import torch

        f = net.phi(x, z)
        m = net.mean(f).squeeze(1)
        noise = torch.exp(net.log_noise).clamp(min=1e-4)
        K = self._kernel(net, f, f) + (noise + 1e-6) * torch.eye(len(y), dtype=torch.float64)
        L = torch.linalg.cholesky(K)
        r = (y - m).unsqueeze(1)
        alpha = torch.cholesky_solve(r, L)
        return 0.5 * (r * alpha).sum() / len(y) + torch.log(torch.diagonal(L)).sum() / len(y)

    def encode(self, archs: Sequence[Any]) -> np.ndarray:
        """The encodings of ``archs`` (memoised per architecture), one row each."""
        out = np.empty((len(archs), 0))
        rows = []
        enc = self._enc
        for a in archs:
            v = enc.get(a)
            if v is None:
                v = enc[a] = np.asarray(self.space.encode(a, self.encoding), dtype=float)
            rows.append(v)
        return np.vstack(rows) if rows else out

    def fit(self) -> MetaSurrogate:
        """Meta-train on the source tasks (seeded; runs once)."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = self._build()
            rng = np.random.default_rng(self.seed)
            data = [(torch.as_tensor(self.encode(t.archs)), torch.as_tensor(copula(t.scores))) for t in self.tasks]
            opt = torch.optim.Adam(net.parameters(), lr=self.lr)
            for step in range(self.meta_steps):
                ti = step % len(data)
                X, Y = data[ti]
                n = min(self.batch, len(Y))
                if n < 2:
                    continue
                idx = torch.as_tensor(rng.choice(len(Y), size=n, replace=False))
                loss = self._nll(net, X[idx], Y[idx], net.tasks[ti])
                opt.zero_grad()
                loss.backward()
                opt.step()
                self.meta_loss.append(loss.item())
            with torch.no_grad():
                net.target.copy_(net.tasks.mean(0))
        self.net = net
        return self

    def for_target(self) -> TargetModel:
        """A copy of the meta-trained model for one target search (fine-tuning never touches this one)."""
        if self.net is None:
            self.fit()
        return TargetModel(self, copy.deepcopy(self.net))

    def fingerprint(self) -> dict[str, Any]:
        """What defines the meta-model: stored with a study so a resumed search uses the same one."""
        return {"tasks": [f"{t.name}:{t.label}:{len(t)}" for t in self.tasks], "hidden": self.hidden,
                "features": self.features, "embed": self.embed, "meta_steps": self.meta_steps, "batch": self.batch,
                "lr": self.lr, "seed": self.seed, "encoding": self.encoding}


class TargetModel:
    """The meta-model adapted to one target task: fine-tuned on its observations, predicting the
    GP posterior (in rank-normalised units) at candidates."""

    def __init__(self, meta: MetaSurrogate, net: Any) -> None:
        self.meta, self.net = meta, net
        self._X: Any = None
        self._y: Any = None
        self.n_finetuned = 0

    def prior_mean(self, archs: Sequence[Any]) -> np.ndarray:
        """The meta-model's mean before any target observation (the warm-start ranking)."""
        import torch

        with torch.no_grad():
            X = torch.as_tensor(self.meta.encode(archs))
            return self.net.mean(self.net.phi(X, self.net.target)).squeeze(1).numpy()

    def finetune(self, archs: Sequence[Any], scores: Sequence[float], steps: int, lr: float) -> None:
        """``steps`` Adam steps on the marginal likelihood of the target's observations (seeded by
        the number of observations, so replay repeats it)."""
        import torch

        X = torch.as_tensor(self.meta.encode(archs))
        y = torch.as_tensor(copula(np.asarray(scores, dtype=float)))
        self._X, self._y = X, y
        if steps <= 0 or len(y) < 2:
            return
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        for _ in range(steps):
            loss = self.meta._nll(self.net, X, y, self.net.target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.n_finetuned += 1

    def set_data(self, archs: Sequence[Any], scores: Sequence[float]) -> None:
        import torch

        self._X = torch.as_tensor(self.meta.encode(archs))
        self._y = torch.as_tensor(copula(np.asarray(scores, dtype=float)))

    def predict(self, archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, float]:
        """Posterior mean and variance at ``archs`` and the best observed (normalised) target."""
        import torch

        net = self.net
        with torch.no_grad():
            Xc = torch.as_tensor(self.meta.encode(archs))
            z = net.target
            fc = net.phi(Xc, z)
            mc = net.mean(fc).squeeze(1)
            var0 = torch.exp(net.log_var)
            if self._y is None or len(self._y) == 0:
                return mc.numpy(), np.full(len(archs), float(var0)), -math.inf
            fo = net.phi(self._X, z)
            mo = net.mean(fo).squeeze(1)
            noise = torch.exp(net.log_noise).clamp(min=1e-4)
            K = self.meta._kernel(net, fo, fo) + (noise + 1e-6) * torch.eye(len(self._y), dtype=torch.float64)
            L = torch.linalg.cholesky(K)
            Ks = self.meta._kernel(net, fc, fo)
            alpha = torch.cholesky_solve((self._y - mo).unsqueeze(1), L)
            mu = mc + (Ks @ alpha).squeeze(1)
            v = torch.linalg.solve_triangular(L, Ks.T, upper=False)
            var = (var0 - v.pow(2).sum(0)).clamp(min=1e-12)
            return mu.numpy(), var.numpy(), float(self._y.max())


class TNAS(Strategy):
    """Transfer BO with a meta-learned deep-kernel GP (``surrogate``, a :class:`MetaSurrogate`).

    ``n_warm`` warm-start architectures (the meta-model's top ranked), then expected improvement
    over ``n_random`` random unseen architectures plus up to ``n_local`` unseen neighbours of each
    of the ``n_incumbents`` best; the model is fine-tuned with ``finetune_steps`` Adam steps
    (learning rate ``finetune_lr``) before every choice. ``warm_pool``: how many random
    architectures the warm start ranks when the space is larger than that (else all of them).
    """

    name = "tnas"
    NOT_CONFIG = Strategy.NOT_CONFIG + ("surrogate",)

    def __init__(self, space: SearchSpace, surrogate: MetaSurrogate, n_warm: int = 5, n_random: int = 200,
                 n_incumbents: int = 5, n_local: int = 30, finetune_steps: int = 20, finetune_lr: float = 1e-3,
                 warm_pool: int = 30000, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if not isinstance(surrogate, MetaSurrogate):
            raise NasforgeError(f"TNAS needs a MetaSurrogate, got {type(surrogate).__name__}")
        if space_key(surrogate.space) != space_key(space):
            raise NasforgeError(f"the meta-model was trained on space {space_key(surrogate.space)}, "
                                f"the search is on {space_key(space)}")
        for key, v, lo in (("n_warm", n_warm, 0), ("n_random", n_random, 0), ("n_incumbents", n_incumbents, 0),
                           ("n_local", n_local, 0), ("finetune_steps", finetune_steps, 0), ("warm_pool", warm_pool, 1)):
            check_int(v, key, lo)
        if n_random + n_incumbents * n_local < 1:
            raise NasforgeError("tnas needs candidates: n_random > 0 or n_incumbents * n_local > 0")
        self.surrogate = surrogate
        self.n_warm, self.n_random, self.n_incumbents, self.n_local = n_warm, n_random, n_incumbents, n_local
        self.finetune_steps, self.finetune_lr, self.warm_pool = finetune_steps, float(finetune_lr), warm_pool
        self.model = surrogate.for_target()
        self._warm: list[Any] | None = None
        self._archs: list[Any] = []
        self._scores: list[float] = []
        self._n_asked = 0

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["surrogate"] = self.surrogate.fingerprint()
        return cfg

    def _warm_start(self) -> list[Any]:
        if self._warm is None:
            try:
                size = len(self.space)
            except TypeError:
                size = None
            if size is not None and size <= self.warm_pool:
                pool = list(self.space)
            else:
                prng = np.random.default_rng(self.surrogate.seed)
                pool = list(dict.fromkeys(self.space.sample(prng) for _ in range(self.warm_pool)))
            if self.feasible is not None:
                pool = [a for a in pool if self.feasible(a)]
            m = self.model.prior_mean(pool)
            order = np.argsort(-m, kind="stable")
            self._warm = [pool[i] for i in order[: max(self.n_warm * 4, self.n_warm)]]
        return self._warm

    def ask(self) -> Suggestion:
        self._n_asked += 1
        if self._n_asked <= self.n_warm:
            for a in self._warm_start():
                if self.is_new(a):
                    return self._claim(a, phase="warm")
            return self._claim(self._unique(lambda: self.space.sample(self.rng)), phase="warm")
        if len(self._scores) < 2:
            return self._claim(self._unique(lambda: self.space.sample(self.rng)), phase="init")
        cands = self._candidates()
        if not cands:
            return self._claim(self._unique(lambda: self.space.sample(self.rng)), phase="fallback")
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(len(self._scores))
            self.model.finetune(self._archs, self._scores, self.finetune_steps, self.finetune_lr)
            mu, var, best = self.model.predict(cands)
        ei = expected_improvement(mu, var, best)
        j = int(np.argmax(ei))
        return self._claim(cands[j], phase="tnas", mean=round(float(mu[j]), 6), sd=round(float(math.sqrt(var[j])), 6))

    def _candidates(self) -> list[Any]:
        out: list[Any] = []
        keys: set[Hashable] = set()

        def add(a: Any) -> None:
            k = self._key(a)
            if k not in keys and self.is_new(a):
                keys.add(k)
                out.append(a)

        order = np.argsort(-np.asarray(self._scores), kind="stable")
        incumbents: list[Any] = []
        for i in order:
            if self._archs[i] not in incumbents:
                incumbents.append(self._archs[i])
            if len(incumbents) >= self.n_incumbents:
                break
        for inc in incumbents:
            nbrs = self.space.neighbors(inc)
            if len(nbrs) > self.n_local:
                nbrs = [nbrs[i] for i in np.sort(self.rng.choice(len(nbrs), size=self.n_local, replace=False))]
            for a in nbrs:
                add(a)
        target = len(out) + self.n_random
        for _ in range(3 * self.n_random):
            if len(out) >= target:
                break
            add(self.space.sample(self.rng))
        return out

    def _observe(self, suggestion: Suggestion, score: float, result: Any) -> None:
        if score == -math.inf:
            return
        self._archs.append(suggestion.arch)
        self._scores.append(score)


__all__ = ["MetaSurrogate", "TargetModel", "TNAS", "copula"]
