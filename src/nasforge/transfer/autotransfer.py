"""AutoTransfer-style design priors from the task bank (after Cao et al., ICLR 2023).

* **Task embedding.** A task is described by how it ranks a fixed set of anchor architectures
  (``anchors``: seeded draws from the space, the same for every task). AutoTransfer's own
  embedding uses the Fisher information of anchor models trained on the task's data; tables
  have no data to compute it from, so here the embedding is the anchors' performance ranking
  (rank-normalised scores): on the target the anchors are evaluated (they are real queries and
  count towards the budget); on a bank task their scores are predicted by a GP (the ``bo``
  strategy's kernel and model) fitted to that task's trials, unless the task evaluated them.
* **Distance and prior.** Task distance is the Euclidean distance between embeddings (divided by
  sqrt(number of anchors)); the ``n_neighbors`` nearest bank tasks get weights
  ``exp(-d / temperature)`` (normalised), and the design prior is the mixture of their
  ``top_k`` best designs, each design carrying its task's weight / top_k.
* **Sampling.** A draw from the prior picks a design by weight and applies a geometric number of
  random mutations (mean ``mutations``); with probability ``explore`` it is a uniform draw.
  :class:`PriorSearch` uses the prior as the sampler of random search (``base='random'``) or as
  the initial population of regularised evolution (``base='re'``).

Everything here is numpy: no torch.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError, check_int, unknown
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Strategy, Suggestion
from nasforge.transfer.bank import BankTask, check_tasks
from nasforge.transfer.tnas import copula


def anchors(space: SearchSpace, n: int = 8, seed: int = 0) -> list[Any]:
    """``n`` distinct anchor architectures drawn from ``space`` with ``seed`` (the same for every task)."""
    check_int(n, "n_anchors", 2)
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for _ in range(100 * n):
        a = space.sample(rng)
        if a not in out:
            out.append(a)
        if len(out) == n:
            return out
    raise NasforgeError(f"space {space.name!r} has fewer than {n} architectures to use as anchors")


def predicted_scores(task: BankTask, archs: Sequence[Any], max_train: int = 300, seed: int = 0) -> np.ndarray:
    """Scores of ``archs`` on ``task``: the measured score where the task evaluated the
    architecture, else the posterior mean of a GP (the ``bo`` strategy's default kernel, rank
    targets) fitted to up to ``max_train`` of its trials (its best half and a seeded sample of the
    rest). Rank-comparable, not in the metric's units."""
    from nasforge.strategies.bo.gp import GaussianProcess, blas_single_thread
    from nasforge.strategies.bo.kernels import KernelCache, default_kernel, get_kernel

    key = ("pred", tuple(task.space.format(a) for a in archs), max_train, seed)
    if key in task.cache:
        return task.cache[key]
    n = len(task)
    if n > max_train:
        order = np.argsort(-task.scores, kind="stable")
        top, rest = order[: max_train // 2], order[max_train // 2:]
        rest = np.random.default_rng(seed).choice(rest, size=max_train - len(top), replace=False)
        idx = np.concatenate([top, np.sort(rest)])
    else:
        idx = np.arange(n)
    y = task.scores[idx]
    measured = {a: float(s) for a, s in zip(task.archs, task.scores)}
    if len(idx) >= 3:
        kernel = get_kernel(default_kernel(task.space), task.space)
        cache = KernelCache(kernel)
        for i in idx:
            cache.add(task.archs[i])
        gp = GaussianProcess(kernel, transform="rank")
        with blas_single_thread():
            gp.fit(cache.C, y, optimize=True)
            mu, _ = gp.predict(cache.cross(list(archs), keep=False))
        z = copula(y)
        # back to the task's units by matching normalised ranks (monotone: ranks are what count)
        pred = np.interp(mu, np.sort(z), np.sort(y))
    else:
        pred = np.full(len(archs), float(np.mean(y)))
    out = np.array([measured.get(a, p) for a, p in zip(archs, pred)], dtype=float)
    task.cache[key] = out
    return out


def embedding(scores: Sequence[float]) -> np.ndarray:
    """A task's embedding from its anchors' scores: their rank-normalised values."""
    return copula(np.asarray(scores, dtype=float))


def design_prior(tasks: Sequence[BankTask], target_embedding: np.ndarray, anchor_archs: Sequence[Any],
                 n_neighbors: int = 3, top_k: int = 10, temperature: float = 0.25,
                 ) -> tuple[list[tuple[Any, float]], list[tuple[str, float, float]]]:
    """The design prior for a target with ``target_embedding``: a list of (design, weight)
    summing to 1, and the neighbours used as (task name, distance, weight)."""
    check_int(n_neighbors, "n_neighbors", 1)
    check_int(top_k, "top_k", 1)
    if not temperature > 0:
        raise NasforgeError(f"temperature must be > 0, got {temperature!r}")
    if not tasks:
        raise NasforgeError("a design prior needs at least one bank task")
    dists = []
    for t in tasks:
        e = embedding(predicted_scores(t, anchor_archs))
        dists.append(float(np.linalg.norm(e - target_embedding) / math.sqrt(len(e))))
    order = np.argsort(dists, kind="stable")[:n_neighbors]
    raw = np.array([math.exp(-dists[i] / temperature) for i in order])
    w = raw / raw.sum()
    mix: dict[Any, float] = {}
    for wi, i in zip(w, order):
        top = tasks[i].top(top_k)
        for a, _ in top:
            mix[a] = mix.get(a, 0.0) + float(wi) / len(top)
    return list(mix.items()), [(tasks[i].name, dists[i], float(wi)) for wi, i in zip(w, order)]


class PriorSearch(Strategy):
    """Random search or regularised evolution whose sampler is an AutoTransfer design prior.

    The first ``n_anchors`` asks evaluate the anchors; their results give the target's
    embedding, hence the prior over the bank ``tasks`` (see the module notes). Afterwards
    ``base='random'`` samples every architecture from the prior; ``base='re'`` fills the
    population (``population_size``, anchors included) from it and then evolves as regularised
    evolution (tournament of ``sample_size``, one mutation). ``bank`` describes the tasks in the
    stored configuration; the tasks themselves are not configuration.
    """

    name = "prior"
    NOT_CONFIG = Strategy.NOT_CONFIG + ("tasks",)
    BASES = ("random", "re")

    def __init__(self, space: SearchSpace, tasks: Sequence[BankTask], base: str = "re", n_anchors: int = 8,
                 anchor_seed: int = 0, n_neighbors: int = 3, top_k: int = 10, temperature: float = 0.25,
                 mutations: float = 1.0, explore: float = 0.1, population_size: int = 20, sample_size: int = 10,
                 **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if base not in self.BASES:
            raise unknown("prior search base", base, self.BASES)
        check_tasks(tasks, space, "prior search needs at least one bank task")
        check_int(n_anchors, "n_anchors", 2)
        check_int(population_size, "population_size", 1)
        check_int(sample_size, "sample_size", 1, population_size)
        if not mutations >= 0 or not 0 <= explore <= 1:
            raise NasforgeError(f"prior search needs mutations >= 0 and 0 <= explore <= 1; got {mutations!r}, {explore!r}")
        self.tasks, self.base, self.n_anchors, self.anchor_seed = list(tasks), base, n_anchors, anchor_seed
        self.n_neighbors, self.top_k, self.temperature = n_neighbors, top_k, float(temperature)
        self.mutations, self.explore = float(mutations), float(explore)
        self.population_size, self.sample_size = population_size, sample_size
        self.anchor_archs = anchors(space, n_anchors, anchor_seed)
        self._anchor_scores: dict[Any, float] = {}
        self.prior: list[tuple[Any, float]] | None = None
        self.neighbours: list[tuple[str, float, float]] = []
        self.population: deque[tuple[Any, float]] = deque()
        self._n_asked = 0

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["bank"] = [f"{t.name}:{t.label}:{len(t)}" for t in self.tasks]
        return cfg

    def _build_prior(self) -> None:
        scores = [self._anchor_scores.get(a, -math.inf) for a in self.anchor_archs]
        finite = [s for s in scores if math.isfinite(s)]
        low = min(finite) - 1.0 if finite else 0.0
        emb = embedding([s if math.isfinite(s) else low for s in scores])
        self.prior, self.neighbours = design_prior(self.tasks, emb, self.anchor_archs, self.n_neighbors, self.top_k,
                                                   self.temperature)
        self._designs = [a for a, _ in self.prior]
        p = np.array([w for _, w in self.prior])
        self._p = p / p.sum()

    def sample_prior(self) -> Any:
        """One draw from the design prior (see the module notes)."""
        if self.prior is None:
            self._build_prior()
        if self.rng.random() < self.explore:
            return self.space.sample(self.rng)
        a = self._designs[int(self.rng.choice(len(self._designs), p=self._p))]
        # geometric number of mutations with mean `mutations` (0 allowed)
        q = 1.0 / (1.0 + self.mutations)
        for _ in range(int(self.rng.geometric(q)) - 1):
            a = self.space.mutate(a, self.rng)
        return a

    def ask(self) -> Suggestion:
        self._n_asked += 1
        if self._n_asked <= self.n_anchors:
            a = self.anchor_archs[self._n_asked - 1]
            if self.is_new(a):
                return self._claim(a, phase="anchor")
            return self._claim(self._unique(lambda: self.space.sample(self.rng)), phase="anchor")
        if self.prior is None:
            self._build_prior()
        if self.base == "random" or self._n_asked <= self.population_size or not self.population:
            return self._claim(self._unique(self.sample_prior), phase="prior")
        members = list(self.population)
        k = min(self.sample_size, len(members))
        idx = self.rng.choice(len(members), size=k, replace=False)
        parent = max((members[i] for i in idx), key=lambda m: m[1])[0]
        return self._claim(self._unique(lambda: self.space.mutate(parent, self.rng)), phase="evolve",
                           parent=self.space.format(parent))

    def _observe(self, suggestion: Suggestion, score: float, result: Any) -> None:
        if suggestion.info.get("phase") == "anchor" and self.prior is None:
            self._anchor_scores[suggestion.arch] = score
        if score == -math.inf:
            return
        self.population.append((suggestion.arch, score))
        if len(self.population) > self.population_size:
            self.population.popleft()


__all__ = ["anchors", "predicted_scores", "embedding", "design_prior", "PriorSearch"]
