"""Evolutionary multi-task NAS, after EMT-NAS (Liao, Jin and Du, CVPR 2023), on any space with a supernet.

Several tasks (datasets) are searched at once by one multifactorial evolutionary algorithm:

* **One unified population.** Every individual is an architecture (a tuple of per-edge operation
  indices of the space's supernet layout) with a **skill factor**: the one task it is evaluated
  on. The first population holds ``population`` random architectures per task.
* **One weight-sharing supernet per task.** In every generation each task's supernet is trained
  for ``steps`` single-path steps on that task's training images; every step trains one path
  drawn uniformly from the individuals whose skill factor is that task (parents and this
  generation's offspring), as the reference implementation does.
* **Assortative mating.** Parents are drawn by roulette on their *scalar fitness*. Two parents of
  the same task always cross over; parents of different tasks cross over only with the **random
  mating probability** ``rmp``; otherwise each is mutated alone (its child keeps its task).
  Crossover is uniform per edge; every child is then mutated (each edge takes another operation
  with probability ``mutation``).
* **Vertical cultural transmission.** A child of a crossover imitates the skill factor of one
  parent chosen at random, so a child of a cross-task mating is trained into and evaluated on
  that one parent's task supernet only.
* **Fitness re-evaluation.** After training, every individual (the parents too) is scored with
  the *current* supernet weights: BatchNorm recalibrated on the path, accuracy (%) on the task's
  validation split. As in the reference implementation the measured value is blended with the
  previous one, ``f = f_old + (f_new - f_old) * log(g + 1) / log(G)`` (generation ``g`` of
  ``G``; a child's ``f_old`` is its task parent's fitness), so early, noisy supernet scores count
  for less and the last generation's are taken as measured; ``blend=False`` uses them raw.
* **Scalar fitness by factorial rank.** Within each task individuals are ranked by fitness (1 =
  best); scalar fitness is ``1 / rank``. Elitist selection keeps the ``population`` best
  (distinct) individuals of every task out of parents and offspring.

Each task's best architecture is the fittest individual of its final population. With ``rmp=0``
no genetic material crosses between tasks (tasks evolve independently in one loop): the
single-task baseline of ``benchmarks/emt_nas.py``.

Runs with ``out_dir`` write ``state.json`` (population, fitness, generator state, per-generation
history) and one supernet checkpoint per task after every generation, atomically; running again
with the same settings continues after the last finished generation and reproduces the
uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError, check_float, check_int, check_seed, shorten

__all__ = ["EMTNAS", "EMTResult", "class_subset", "STATE_FILE"]

STATE_FILE = "state.json"


def class_subset(data: Any, classes: Sequence[int], name: str | None = None, n_train: int | None = None,
                 seed: int = 0) -> Any:
    """A :class:`~nasforge.data.Dataset` holding only the examples of ``classes`` (labels
    renumbered 0..k-1 in the given order), e.g. two disjoint 5-class tasks from CIFAR-10.
    ``n_train`` keeps that many training examples (a seeded random choice)."""
    cl = [check_int(c, "class", 0, int(data.num_classes) - 1) for c in classes]
    if len(cl) < 2 or len(set(cl)) != len(cl):
        raise NasforgeError(f"a class subset needs at least 2 distinct classes of 0..{data.num_classes - 1}, got {cl}")
    lut = np.full(int(data.num_classes), -1, dtype=np.int64)
    lut[cl] = np.arange(len(cl))

    def take(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = lut[np.asarray(y)] >= 0
        return x[m], lut[np.asarray(y)[m]]

    xtr, ytr = take(data.x_train, data.y_train)
    if n_train is not None:
        n = check_int(n_train, "n_train", 2, len(ytr))
        keep = np.sort(np.random.default_rng(seed).permutation(len(ytr))[:n])
        xtr, ytr = xtr[keep], ytr[keep]
    xva, yva = take(data.x_val, data.y_val)
    xte, yte = take(data.x_test, data.y_test)
    names = [data.classes[c] for c in cl] if data.classes else None
    label = name or f"{data.name}[{','.join(map(str, cl))}]"
    return dataclasses.replace(data, name=label, x_train=xtr, y_train=ytr, x_val=xva, y_val=yva, x_test=xte,
                               y_test=yte, num_classes=len(cl), classes=names)


@dataclasses.dataclass
class EMTResult:
    """What a run found: per task its best architecture (string), that architecture's fitness
    (validation accuracy %, as blended), and the per-generation ``history``; ``test_acc`` (per
    task, inherited weights on the test split) when the run was asked to report it.

    A ``history`` record (lists run over the tasks): ``generation``; ``best``, ``best_fitness``,
    ``best_measured`` (this generation's unblended score) and ``mean_fitness`` of the population;
    ``children``, ``cross_children`` (born of a cross-task crossover) and ``cross_survivors``
    (of those, kept by selection) per task; cumulative ``train_steps`` (all tasks),
    ``evaluations`` (distinct individuals scored), ``seconds`` and ``cpu_seconds`` (process CPU
    time); this generation's ``train_seconds`` and ``eval_seconds``."""

    tasks: list[str]
    best: list[str]
    best_fitness: list[float]
    history: list[dict[str, Any]]
    test_acc: list[float] | None = None

    @property
    def cross_task_children(self) -> int:
        """Children born of a cross-task crossover over the whole run."""
        return int(sum(sum(h["cross_children"]) for h in self.history))


def _pool_sampler(layout: Any) -> Any:
    """A path sampler for one task's supernet: uniform over the task's current individuals."""
    from nasforge.oneshot.samplers import PathSampler

    class PopulationSampler(PathSampler):
        name = "emt-population"

        def __init__(self) -> None:
            super().__init__(layout=layout)
            self.pool: list[tuple[int, ...]] = []

        def sample_group(self, rng: np.random.Generator) -> list[tuple[int, ...]]:
            if not self.pool:
                raise NasforgeError("the task has no individuals to train")
            return [self.pool[int(rng.integers(len(self.pool)))]]

    return PopulationSampler()


class EMTNAS:
    """Multifactorial evolution over ``tasks`` with one supernet per task (see the module docstring).

    ``tasks``: two or more image :class:`~nasforge.data.Dataset` objects (a mapping gives them
    names), all searched in ``space`` (a space or its registry name, default ``nb201``; it must
    offer a supernet). ``population``: individuals per task; ``generations``: ``G``;
    ``steps``: supernet training steps per task per generation (batch ``batch_size``, SGD with a
    cosine learning rate from ``lr`` over all ``G * steps`` steps); ``rmp``: random mating
    probability in [0, 1]; ``mutation``: per-edge mutation probability (default ``1 / edges``).
    Scoring: BatchNorm recalibrated on ``bn_batches`` x ``bn_batch_size`` training images, accuracy
    on the first ``n_eval`` validation images (all by default). ``net``: supernet settings (default
    the space's CPU-scale ones). ``out_dir``: where the run is recorded and resumed from.
    """

    def __init__(self, tasks: Sequence[Any] | Mapping[str, Any], space: Any = "nb201", *, population: int = 10,
                 generations: int = 10, steps: int = 100, rmp: float = 0.3, mutation: float | None = None,
                 batch_size: int = 64, lr: float = 0.05, bn_batches: int = 2, bn_batch_size: int = 64,
                 n_eval: int | None = None, blend: bool = True, net: Mapping[str, Any] | None = None,
                 seed: int = 0, out_dir: str | os.PathLike[str] | None = None) -> None:
        from nasforge.spaces import get_space

        if isinstance(tasks, Mapping):
            names, datasets = [str(k) for k in tasks], list(tasks.values())
        else:
            datasets = list(tasks) if not isinstance(tasks, (str, bytes)) else [tasks]
            names = [str(getattr(d, "name", f"task{i}")) for i, d in enumerate(datasets)]
        if len(datasets) < 2:
            raise NasforgeError(f"multi-task search needs at least 2 tasks, got {len(datasets)}; "
                                "search a single task with an ordinary strategy")
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise NasforgeError(f"task names must differ; {dup!r} appears twice (pass a mapping name -> dataset)")
        for n, d in zip(names, datasets):
            if not hasattr(d, "x_train") or getattr(d, "kind", None) != "image":
                raise NasforgeError(f"task {n!r} must be an image dataset (a nasforge Dataset of images), "
                                    f"got {shorten(d) if not hasattr(d, 'kind') else d.kind + ' data'}")
        if isinstance(space, (list, tuple)):  # one space per task: they must be the same space
            if len(space) != len(datasets):
                raise NasforgeError(f"{len(space)} spaces given for {len(datasets)} tasks; give one per task or one for all")
            spaces = [get_space(s) if isinstance(s, str) else s for s in space]
            kinds = [getattr(s, "name", str(s)) for s in spaces]
            if len(set(kinds)) > 1:
                raise NasforgeError("every task of a multi-task search must use the same space (children cross "
                                    f"between tasks); got {', '.join(f'{n}: {k}' for n, k in zip(names, kinds))}")
            space = spaces[0]
        self.space = get_space(space) if isinstance(space, str) else space
        try:
            self.layout = self.space.supernet_layout()
        except (AttributeError, NotImplementedError, NasforgeError):
            raise NasforgeError(f"space {getattr(self.space, 'name', space)!r} has no weight-sharing supernet; "
                                "EMT-NAS needs one (e.g. nb201, darts, macro)") from None
        self.names, self.datasets = names, datasets
        self.population = check_int(population, "population", 2)
        self.generations = check_int(generations, "generations", 1)
        self.steps = check_int(steps, "steps", 1)
        self.rmp = check_float(rmp, "rmp (random mating probability)", 0.0, 1.0)
        n_edges = self.layout.n_edges
        self.mutation = (1.0 / n_edges if mutation is None
                         else check_float(mutation, "mutation (per-edge probability)", 0.0, 1.0))
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.lr = check_float(lr, "lr", 0.0, low_open=True)
        self.bn_batches = check_int(bn_batches, "bn_batches", 1)
        self.bn_batch_size = check_int(bn_batch_size, "bn_batch_size", 1)
        self.n_eval = None if n_eval is None else check_int(n_eval, "n_eval", 1)
        self.blend = bool(blend)
        self.net = dict(net or {})
        self.seed = check_seed(seed)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        for n, d in zip(names, datasets):
            if len(d.y_train) < self.batch_size:
                raise NasforgeError(f"task {n!r} has {len(d.y_train)} training images, fewer than batch_size "
                                    f"{self.batch_size}")
            if len(d.y_val) == 0:
                raise NasforgeError(f"task {n!r} has an empty validation split")
        total = self.layout.count(self.layout.mask(None))
        if total < self.population:
            raise NasforgeError(f"population {self.population} exceeds the {total} architectures of the space")

    # --- settings ---------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """What must match for a recorded run to be continued."""
        return {"tasks": self.names, "space": self.space.name, "population": self.population,
                "generations": self.generations, "steps": self.steps, "rmp": self.rmp, "mutation": self.mutation,
                "batch_size": self.batch_size, "lr": self.lr, "bn_batches": self.bn_batches,
                "bn_batch_size": self.bn_batch_size, "n_eval": self.n_eval, "blend": self.blend, "net": self.net,
                "seed": self.seed, "n_train": [int(len(d.y_train)) for d in self.datasets],
                "classes": [int(d.num_classes) for d in self.datasets]}

    # --- genetic operators ------------------------------------------------------------------------
    def _random(self, rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(int(v) for v in self.layout.draw(self.layout.uniform(self.layout.mask(None)), rng))

    def _mutate(self, idx: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        lay = self.layout
        for _ in range(50):
            out = list(idx)
            for e in range(lay.n_edges):
                n_ops = len(lay.ops[e])
                if n_ops > 1 and rng.random() < self.mutation:
                    out[e] = int((out[e] + 1 + rng.integers(n_ops - 1)) % n_ops)
            cand = tuple(out)
            if lay.valid(cand):
                return cand
        return tuple(lay.indices(self.space.mutate(lay.arch(idx), rng)))

    def _crossover(self, a: tuple[int, ...], b: tuple[int, ...],
                   rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
        for _ in range(50):
            swap = rng.random(len(a)) < 0.5
            c1 = tuple(int(y if s else x) for x, y, s in zip(a, b, swap))
            c2 = tuple(int(x if s else y) for x, y, s in zip(a, b, swap))
            if self.layout.valid(c1) and self.layout.valid(c2):
                return c1, c2
        return a, b

    # --- the run ----------------------------------------------------------------------------------
    def _trainers(self) -> tuple[list[Any], list[Any], list[Any]]:
        from nasforge.estimation.training import arch_seed
        from nasforge.oneshot.evaluate import PathEvaluator
        from nasforge.oneshot.train import SupernetTrainer, build_supernet

        models, trainers, evaluators = [], [], []
        for k, d in enumerate(self.datasets):
            model = build_supernet(d, self.space, seed=self.seed, **self.net)
            trainers.append(SupernetTrainer(model, _pool_sampler(self.layout), d.x_train, d.y_train,
                                            steps=self.generations * self.steps, batch_size=self.batch_size,
                                            lr=self.lr, augment=d.augment, seed=arch_seed(self.seed, f"emt-task{k}")))
            n_eval = None if self.n_eval is None else min(self.n_eval, len(d.y_val))
            evaluators.append(PathEvaluator(model, d, self.bn_batches, min(self.bn_batch_size, len(d.y_train)),
                                            n_eval, "valid", seed=self.seed))
            models.append(model)
        return models, trainers, evaluators

    def _train(self, trainers: list[Any], pop: list[dict[str, Any]], g: int) -> float:
        t0 = time.perf_counter()
        for k, tr in enumerate(trainers):
            tr.sampler.pool = [ind["idx"] for ind in pop if ind["task"] == k]
            tr.train(until=(g + 1) * self.steps)
        return time.perf_counter() - t0

    def _score(self, evaluators: list[Any], pop: list[dict[str, Any]], g: int) -> float:
        t0 = time.perf_counter()
        w = 1.0 if g == 0 or not self.blend or self.generations < 2 else math.log(g + 1) / math.log(self.generations)
        cache: dict[tuple[int, tuple[int, ...]], float] = {}
        for ind in pop:
            key = (ind["task"], ind["idx"])
            if key not in cache:
                cache[key] = float(evaluators[ind["task"]].score(ind["idx"])["acc"])
            acc = cache[key]
            old = ind.get("old")
            ind["measured"] = acc
            ind["fitness"] = acc if old is None else old + (acc - old) * w
            ind.pop("old", None)
        return time.perf_counter() - t0

    def _ranks(self, pop: list[dict[str, Any]]) -> None:
        """Factorial rank within the individual's task (1 = best; ties by order) and scalar fitness."""
        for k in range(len(self.datasets)):
            members = [i for i, ind in enumerate(pop) if ind["task"] == k]
            order = sorted(members, key=lambda i: -pop[i]["fitness"])
            for r, i in enumerate(order, 1):
                pop[i]["rank"] = r
                pop[i]["scalar"] = 1.0 / r

    def _offspring(self, pop: list[dict[str, Any]], rng: np.random.Generator) -> list[dict[str, Any]]:
        weights = np.array([ind["scalar"] for ind in pop])
        weights = weights / weights.sum()
        want = len(pop)
        children: list[dict[str, Any]] = []
        while len(children) < want:
            ia, ib = (int(v) for v in rng.choice(len(pop), size=2, p=weights))
            a, b = pop[ia], pop[ib]
            same = a["task"] == b["task"]
            if same or rng.random() < self.rmp:
                c1, c2 = self._crossover(a["idx"], b["idx"], rng)
                kids = []
                for c in (c1, c2):
                    parent = a if rng.random() < 0.5 else b  # vertical cultural transmission
                    kids.append({"idx": self._mutate(c, rng), "task": parent["task"], "old": parent["fitness"],
                                 "origin": "within" if same else "cross"})
            else:
                kids = [{"idx": self._mutate(p["idx"], rng), "task": p["task"], "old": p["fitness"],
                         "origin": "mutation"} for p in (a, b)]
            children.extend(kids[: want - len(children)])
        return children

    def _select(self, pool: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The ``population`` best distinct individuals of every task (elitist, by factorial rank)."""
        out = []
        for k in range(len(self.datasets)):
            members = sorted((ind for ind in pool if ind["task"] == k), key=lambda d: (d["rank"], -d["fitness"]))
            seen, keep, spare = set(), [], []
            for ind in members:
                (spare if ind["idx"] in seen else keep).append(ind)
                seen.add(ind["idx"])
            out.extend((keep + spare)[: self.population])
        return out

    def run(self, test: bool = False, callback: Callable[[dict[str, Any]], None] | None = None,
            threads: int | None = None, track_test: bool = False) -> EMTResult:
        """Evolve for the remaining generations (all of them on a fresh run) and return the result.
        ``test``: also score each task's best architecture on its test split (for reporting).
        ``track_test``: do so after every generation (history ``best_test``; an anytime curve for
        reporting, never seen by the search, which it leaves unchanged).
        ``callback`` sees each generation's history record. ``threads``: torch threads."""
        import torch

        if threads is not None:
            torch.set_num_threads(int(threads))
        models, trainers, evaluators = self._trainers()
        testers: list[Any] = []
        rng = np.random.default_rng(self.seed)
        pop: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        start = 0
        state_path = self.out_dir / STATE_FILE if self.out_dir is not None else None
        if state_path is not None and state_path.is_file():
            start, pop, history = self._load(state_path, rng, trainers)
        n_tasks = len(self.datasets)
        for g in range(start, self.generations):
            if g == 0:
                pop = []
                for k in range(n_tasks):
                    seen: set[tuple[int, ...]] = set()
                    while len(seen) < self.population:
                        seen.add(self._random(rng))
                    pop.extend({"idx": idx, "task": k, "origin": "initial"} for idx in sorted(seen))
                group, kids = pop, []
            else:
                kids = self._offspring(pop, rng)
                for ind in pop:
                    ind["old"] = ind["fitness"]
                group = pop + kids
            c0 = time.process_time()
            t_train = self._train(trainers, group, g)
            t_eval = self._score(evaluators, group, g)
            cpu = time.process_time() - c0
            self._ranks(group)
            pop = self._select(group)
            self._ranks(pop)
            n_scored = len({(ind["task"], ind["idx"]) for ind in group})
            history.append(self._record(g, pop, kids, n_scored, t_train, t_eval, cpu, history))
            if track_test:
                history[-1]["best_test"] = self._test(models, pop, testers)
            if state_path is not None:
                self._save(state_path, g + 1, pop, history, rng, trainers)
            if callback is not None:
                callback(history[-1])
        if not pop:  # nothing to run and no record: cannot happen with generations >= 1
            raise NasforgeError("the run has no population")
        best = [max((ind for ind in pop if ind["task"] == k), key=lambda d: d["fitness"]) for k in range(n_tasks)]
        result = EMTResult(list(self.names), [self._fmt(b["idx"]) for b in best],
                           [float(b["fitness"]) for b in best], history)
        if test:
            result.test_acc = self._test(models, pop, testers)
        return result

    def _test(self, models: list[Any], pop: list[dict[str, Any]], testers: list[Any]) -> list[float]:
        """Test accuracy (%) of each task's fittest individual, inherited weights (reporting only);
        ``testers`` (empty at first) keeps the test-split evaluators between calls."""
        from nasforge.oneshot.evaluate import PathEvaluator

        if not testers:
            testers.extend(PathEvaluator(m, d, self.bn_batches, min(self.bn_batch_size, len(d.y_train)), None,
                                         "test", seed=self.seed) for m, d in zip(models, self.datasets))
        out = []
        for k, ev in enumerate(testers):
            b = max((ind for ind in pop if ind["task"] == k), key=lambda d: d["fitness"])
            out.append(float(ev.score(b["idx"])["acc"]))
        return out

    def _fmt(self, idx: tuple[int, ...]) -> str:
        return str(self.space.format(self.layout.arch(idx)))

    def _record(self, g: int, pop: list[dict[str, Any]], kids: list[dict[str, Any]], n_scored: int, t_train: float,
                t_eval: float, cpu: float, history: list[dict[str, Any]]) -> dict[str, Any]:
        n_tasks = len(self.datasets)
        best = [max((ind for ind in pop if ind["task"] == k), key=lambda d: d["fitness"]) for k in range(n_tasks)]
        kept = {id(ind) for ind in pop}
        prev = history[-1] if history else {"evaluations": 0, "train_steps": 0, "seconds": 0.0, "cpu_seconds": 0.0}
        return {
            "generation": g,
            "best": [self._fmt(b["idx"]) for b in best],
            "best_fitness": [float(b["fitness"]) for b in best],
            "best_measured": [float(b["measured"]) for b in best],
            "mean_fitness": [float(np.mean([i["fitness"] for i in pop if i["task"] == k])) for k in range(n_tasks)],
            "cross_children": [sum(1 for c in kids if c["task"] == k and c["origin"] == "cross") for k in range(n_tasks)],
            "cross_survivors": [sum(1 for c in kids if c["task"] == k and c["origin"] == "cross" and id(c) in kept)
                                for k in range(n_tasks)],
            "children": [sum(1 for c in kids if c["task"] == k) for k in range(n_tasks)],
            "train_steps": prev["train_steps"] + self.steps * n_tasks,
            "evaluations": prev["evaluations"] + n_scored,
            "seconds": prev["seconds"] + t_train + t_eval,
            "cpu_seconds": prev["cpu_seconds"] + cpu,
            "train_seconds": t_train,
            "eval_seconds": t_eval,
        }

    # --- persistence ------------------------------------------------------------------------------
    def _save(self, path: Path, done: int, pop: list[dict[str, Any]], history: list[dict[str, Any]],
              rng: np.random.Generator, trainers: list[Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for k, tr in enumerate(trainers):
            tr.save(path.parent / f"supernet-task{k}.pt")
        state = {"settings": self.settings(), "done": done, "rng": rng.bit_generator.state,
                 "population": [{"idx": list(ind["idx"]), "task": ind["task"], "fitness": ind["fitness"],
                                 "measured": ind["measured"], "origin": ind["origin"]} for ind in pop],
                 "history": history}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, path)

    def _load(self, path: Path, rng: np.random.Generator,
              trainers: list[Any]) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise NasforgeError(f"cannot read the EMT-NAS run record {path}: {exc}".splitlines()[0]) from None
        mine, theirs = json.loads(json.dumps(self.settings())), state.get("settings", {})
        diff = [k for k in mine if mine[k] != theirs.get(k)]
        if diff:
            k = diff[0]
            raise NasforgeError(f"the run in {path.parent} was made with {k}={theirs.get(k)!r}, this one has "
                                f"{k}={mine[k]!r}; use the same settings to resume (or another folder)")
        for k, tr in enumerate(trainers):
            tr.load(path.parent / f"supernet-task{k}.pt")
        rng.bit_generator.state = state["rng"]
        pop = [{"idx": tuple(int(v) for v in ind["idx"]), "task": int(ind["task"]), "fitness": float(ind["fitness"]),
                "measured": float(ind["measured"]), "origin": ind["origin"]} for ind in state["population"]]
        self._ranks(pop)
        return int(state["done"]), pop, list(state["history"])

    def __repr__(self) -> str:
        return (f"EMTNAS({len(self.names)} tasks on {self.space.name}, population {self.population}/task, "
                f"{self.generations} generations x {self.steps} steps, rmp={self.rmp})")
