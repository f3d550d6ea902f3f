"""MDL-NAS (Wang et al., CVPR 2023) at CPU scale: one ViT supernet for several domains.

The space and the supernet live in :mod:`nasforge.spaces.vit_multidomain`. Here:

* :func:`task_data`: a :class:`~nasforge.data.Dataset` as one task (images resized to a square
  side by whole factors, vectors as 1 x D images with 1 x p patches);
* :func:`train_supernet`: every step, each task draws a subnet (coarse architecture and sharing
  of every block) uniformly, or the largest one with probability ``p_largest``; the tasks' losses
  are summed and one AdamW step updates the shared and the tasks' own weights together;
* :func:`joint_search`: regularised evolution over joint architectures with the total storage
  (:meth:`MDLSpace.storage`) at most ``budget`` as a hard constraint; fitness is the tasks' mean
  validation accuracy with inherited weights (each task's accuracy is cached, it does not depend
  on the other tasks' choices);
* :func:`finetune`: the chosen joint subnet trained further (fixed architecture);
* :func:`add_task` and :func:`train_task` with ``only=``: incremental learning. A new task gets
  its own parts; training updates only them (every existing weight frozen, so the old tasks'
  outputs stay bit-identical), and :func:`joint_search` with ``fixed=`` searches only its
  architecture under the budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nasforge.data import Dataset
from nasforge.errors import NasforgeError, check_float, check_int, check_seed, shorten
from nasforge.spaces.vit_multidomain import MDLSpace, MDLSupernet, TaskArch, TaskSpec


@dataclass
class TaskData:
    """One task's tensors (float32 NCHW inputs, int64 labels) and its :class:`TaskSpec`."""

    spec: TaskSpec
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def split(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        if which not in ("train", "val", "test"):
            raise NasforgeError(f"unknown split {shorten(which)}; allowed: train, val, test")
        return getattr(self, f"x_{which}"), getattr(self, f"y_{which}")


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    side = x.shape[-1]
    if x.shape[-2] != side:
        raise NasforgeError(f"images must be square to resize, got {x.shape[-2]} x {side}")
    if size == side:
        return x
    if size > side and size % side == 0:
        f = size // side
        return x.repeat(f, axis=-2).repeat(f, axis=-1)
    if size < side and side % size == 0:
        f = side // size
        return x.reshape(*x.shape[:-2], size, f, size, f).mean(axis=(-3, -1))
    raise NasforgeError(f"cannot resize {side} x {side} images to {size}: one side must divide the other")


def task_data(ds: Dataset, name: str | None = None, size: int = 16, patch: int = 4,
              n_test: int | None = None) -> TaskData:
    """A dataset as an MDL task: images resized to ``size`` (whole factors) with ``patch`` x ``patch``
    patches; vectors (N, D) as 1 x 1 x D images with 1 x ``patch`` patches. ``n_test`` keeps the
    first ``n_test`` test samples (all by default)."""
    check_int(size, "size", 1)
    check_int(patch, "patch", 1)
    conv = (lambda x: _resize(x, size)) if ds.kind == "image" else (lambda x: x.reshape(len(x), 1, 1, -1))
    xs = [conv(np.asarray(a, np.float32)) for a in (ds.x_train, ds.x_val, ds.x_test)]
    shape = tuple(int(v) for v in xs[0].shape[1:])
    spec = TaskSpec(name or ds.name, shape, (patch, patch) if ds.kind == "image" else (1, patch), ds.num_classes)
    xt, yt = xs[2], ds.y_test
    if n_test is not None:
        check_int(n_test, "n_test", 1)
        xt, yt = xt[:n_test], yt[:n_test]
    t = lambda a, dt=torch.float32: torch.as_tensor(np.ascontiguousarray(a), dtype=dt)  # noqa: E731
    return TaskData(spec, t(xs[0]), t(ds.y_train, torch.long), t(xs[1]), t(ds.y_val, torch.long), t(xt),
                    t(yt, torch.long))


def _check_tasks(space: MDLSpace, tasks: Mapping[str, TaskData]) -> None:
    for n, d in tasks.items():
        spec = space.task(n)
        if d.spec != spec:
            raise NasforgeError(f"task {n!r}: data describe {d.spec}, the space holds {spec}")


def train_supernet(net: MDLSupernet, tasks: Mapping[str, TaskData], steps: int, batch_size: int = 64,
                   lr: float = 2e-3, weight_decay: float = 0.05, seed: int = 0,
                   archs: Mapping[str, TaskArch] | None = None, p_largest: float = 0.25,
                   only: str | None = None) -> list[float]:
    """Train ``net`` on ``tasks`` jointly for ``steps`` AdamW steps (cosine lr); returns the summed loss
    per step.

    Each step, each task draws its subnet (``archs[task]`` where given, else the largest
    architecture with probability ``p_largest``, else a uniform sample, sharing included).
    ``only=name`` trains only that task's own parameters (every other weight frozen, and unchanged
    bit for bit): the incremental-learning step for a new task.
    """
    space = net.space
    check_int(steps, "steps", 0)
    check_int(batch_size, "batch_size", 1)
    check_float(lr, "lr", 0.0)
    check_float(p_largest, "p_largest", 0.0, 1.0)
    seed = check_seed(seed)
    if not tasks:
        raise NasforgeError("train_supernet needs at least one task")
    _check_tasks(space, tasks)
    archs = {n: space.check_task_arch(n, a) for n, a in (archs or {}).items()}
    if only is not None:
        space.task(only)
        if set(tasks) != {only}:
            raise NasforgeError(f"only={only!r} trains one task; pass tasks={{{only!r}: ...}}, got {sorted(tasks)}")
        params = net.task_parameters(only)
    else:
        params = list(net.parameters())
    saved = {id(p): p.requires_grad for p in net.parameters()}
    keep = {id(p) for p in params}
    for p in net.parameters():
        p.requires_grad_(id(p) in keep)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    losses: list[float] = []
    net.train()
    try:
        for step in range(steps):
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for n, d in tasks.items():
                if n in archs:
                    ta = archs[n]
                elif rng.random() < p_largest:
                    ta = space.largest(float(space.share_ratios[rng.integers(len(space.share_ratios))]))
                else:
                    ta = space.sample_task(n, rng)
                idx = torch.randint(len(d.y_train), (min(batch_size, len(d.y_train)),), generator=gen)
                loss = F.cross_entropy(net(d.x_train[idx], n, ta), d.y_train[idx])
                loss.backward()
                total += float(loss.detach())
            opt.step()
            losses.append(total)
    finally:
        for p in net.parameters():
            p.requires_grad_(saved[id(p)])
    return losses


def finetune(net: MDLSupernet, tasks: Mapping[str, TaskData], arch: Mapping[str, TaskArch], steps: int,
             **kwargs: Any) -> list[float]:
    """Train the joint subnet ``arch`` (fixed) further; keywords as :func:`train_supernet`."""
    arch = {n: net.space.check_task_arch(n, arch[n]) if n in arch else None for n in tasks}
    missing = [n for n, a in arch.items() if a is None]
    if missing:
        raise NasforgeError(f"finetune: no architecture for task(s) {', '.join(missing)}")
    return train_supernet(net, tasks, steps, archs=arch, **kwargs)


@torch.no_grad()
def accuracy(net: MDLSupernet, task: str, ta: TaskArch, data: TaskData, split: str = "val",
             batch_size: int = 1000) -> float:
    """Accuracy (%) of one task's subnet on a split of its data (inherited weights)."""
    x, y = data.split(split)
    net.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((net(x[i:i + batch_size], task, ta).argmax(1) == y[i:i + batch_size]).sum())
    return 100.0 * correct / len(y)


@torch.no_grad()
def outputs(net: MDLSupernet, task: str, ta: TaskArch, x: torch.Tensor) -> torch.Tensor:
    """Logits of one task's subnet (eval mode): what the no-forgetting check compares."""
    net.eval()
    return net(x, task, ta)


def add_task(net: MDLSupernet, data: TaskData, seed: int | None = None) -> None:
    """Add a new task's own parts to ``net`` (the space grows with it); existing weights are untouched."""
    net.add_task(data.spec, seed=seed)


def train_task(net: MDLSupernet, name: str, data: TaskData, steps: int, archs: TaskArch | None = None,
               **kwargs: Any) -> list[float]:
    """Train only task ``name``'s own parameters (incremental learning); ``archs`` fixes its subnet."""
    return train_supernet(net, {name: data}, steps, archs=None if archs is None else {name: archs}, only=name,
                          **kwargs)


@dataclass
class SearchResult:
    """The best joint architecture found, its validation accuracies, storage and the search history."""

    arch: dict[str, TaskArch]
    val_acc: dict[str, float]
    fitness: float
    storage: dict[str, int]
    history: list[tuple[float, int]] = field(default_factory=list)  # (fitness, storage) per evaluation
    evaluations: int = 0


def joint_search(net: MDLSupernet, tasks: Mapping[str, TaskData], budget: int, population: int = 16,
                 cycles: int = 64, sample_size: int = 4, seed: int = 0,
                 fixed: Mapping[str, TaskArch] | None = None, max_tries: int = 2000) -> SearchResult:
    """Regularised evolution over joint architectures with storage <= ``budget`` (parameters).

    ``fixed`` holds tasks whose architecture stays as given (incremental learning searches only
    the new task's). Every candidate satisfies the budget; a budget below the smallest joint
    architecture's storage is an error naming both numbers.
    """
    space = net.space
    _check_tasks(space, tasks)
    check_int(budget, "budget", 1)
    check_int(population, "population", 2)
    check_int(cycles, "cycles", 0)
    check_int(sample_size, "sample_size", 1, population)
    seed = check_seed(seed)
    fixed = {n: space.check_task_arch(n, a) for n, a in (fixed or {}).items()}
    missing = [n for n in space.task_names if n not in tasks]
    if missing:
        raise NasforgeError(f"joint_search: no data for task(s) {', '.join(missing)}")
    free = [n for n in space.task_names if n not in fixed]
    if not free:
        raise NasforgeError("joint_search: every task is fixed; nothing to search")
    smallest = {n: fixed.get(n, space.smallest()) for n in space.task_names}
    floor = space.storage(smallest)["total"]
    if budget < floor:
        raise NasforgeError(f"budget {budget:,} parameters is below the smallest joint architecture's storage "
                            f"({floor:,}); allowed: >= {floor:,}")
    rng = np.random.default_rng(seed)
    cache: dict[tuple[str, TaskArch], float] = {}
    history: list[tuple[float, int]] = []

    def task_acc(n: str, ta: TaskArch) -> float:
        if (n, ta) not in cache:
            cache[(n, ta)] = accuracy(net, n, ta, tasks[n], "val")
        return cache[(n, ta)]

    def evaluate(arch: dict[str, TaskArch]) -> tuple[float, int]:
        fit = float(np.mean([task_acc(n, a) for n, a in arch.items()]))
        st = space.storage(arch)["total"]
        history.append((fit, st))
        return fit, st

    def feasible(make) -> dict[str, TaskArch] | None:
        for _ in range(max_tries):
            a = make()
            if space.storage(a)["total"] <= budget:
                return a
        return None

    def draw() -> dict[str, TaskArch]:
        a = {n: fixed[n] if n in fixed else space.sample_task(n, rng) for n in space.task_names}
        return space.check(a)

    pop: list[tuple[dict[str, TaskArch], float]] = []
    for _ in range(population):
        a = feasible(draw)
        if a is None:  # the budget is tight: start from the smallest and grow by mutation
            a = space.check(smallest)
        pop.append((a, evaluate(a)[0]))
    best = max(pop, key=lambda p: p[1])
    for _ in range(cycles):
        pick = [pop[i] for i in rng.choice(len(pop), sample_size, replace=False)]
        parent = max(pick, key=lambda p: p[1])[0]

        def child() -> dict[str, TaskArch]:
            c = dict(parent)
            n = free[rng.integers(len(free))]
            c[n] = space.mutate_task(n, c[n], rng)
            return space.check(c)

        c = feasible(child)
        if c is None:
            continue
        fit = evaluate(c)[0]
        pop.append((c, fit))
        pop.pop(0)
        if fit > best[1]:
            best = (c, fit)
    arch = best[0]
    return SearchResult(arch, {n: task_acc(n, a) for n, a in arch.items()}, best[1], space.storage(arch),
                        history, len(history))


def train_separate(space: MDLSpace, name: str, ta: TaskArch, data: TaskData, steps: int, batch_size: int = 64,
                   lr: float = 2e-3, weight_decay: float = 0.05, seed: int = 0) -> torch.nn.Module:
    """A stand-alone ViT of ``ta`` for one task, trained from scratch (the per-task baseline)."""
    check_int(steps, "steps", 0)
    seed = check_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = space.build(name, ta)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))
        idx = torch.randint(len(data.y_train), (min(batch_size, len(data.y_train)),), generator=gen)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
        opt.step()
    return model


@torch.no_grad()
def model_accuracy(model: torch.nn.Module, data: TaskData, split: str = "test", batch_size: int = 1000) -> float:
    """Accuracy (%) of a stand-alone model on a split."""
    x, y = data.split(split)
    model.eval()
    correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                  for i in range(0, len(y), batch_size))
    return 100.0 * correct / len(y)


def largest_within(space: MDLSpace, budget: int, names: Sequence[str] | None = None) -> TaskArch:
    """The coarse architecture (the same for every task, no sharing) with the most parameters whose
    separate models for ``names`` fit ``budget`` together: the equal-storage baseline."""
    names = list(names or space.task_names)
    best = None
    for d in space.depths:
        for e in space.embed_dims:
            for h in space.heads:
                for r in space.mlp_ratios:
                    ta = TaskArch(d, e, h, r, tuple(space.largest().share[:1]) * d)
                    p = sum(space.task_params(n, ta) for n in names)
                    if p <= budget and (best is None or p > best[0]):
                        best = (p, ta)
    if best is None:
        raise NasforgeError(f"no separate models fit the budget {budget:,}")
    return best[1]


def run_mdl(tasks: Mapping[str, TaskData], steps: int = 300, budget: int | None = None, seed: int = 0,
            add: TaskData | None = None, population: int = 16, cycles: int = 64) -> dict[str, Any]:
    """The whole MDL-NAS protocol on ``tasks``: supernet training (``steps``), joint search under
    ``budget`` (default: half the storage of separate largest models), ``steps // 3`` finetuning
    steps; with ``add``, that task is then learnt incrementally (its own parts only; its
    architecture searched under a quarter of the budget more) and the old tasks' test logits are
    compared bit for bit. Returns a plain dict (architectures as text)."""
    if not tasks:
        raise NasforgeError("run_mdl needs at least one task")
    seed = check_seed(seed)
    check_int(steps, "steps", 1)
    space = MDLSpace([d.spec for d in tasks.values()])
    if budget is None:
        budget = space.storage({n: space.largest(0.0) for n in tasks})["total"] // 2
    net = space.supernet(seed)
    train_supernet(net, tasks, steps, seed=seed)
    size = min(4, population)
    found = joint_search(net, tasks, budget, population=population, cycles=cycles, sample_size=size, seed=seed)
    finetune(net, tasks, found.arch, steps // 3, seed=seed + 1)
    arch = found.arch
    out: dict[str, Any] = {
        "arch": space.format(arch), "budget": budget, "storage": space.storage(arch),
        "val_acc": {n: accuracy(net, n, arch[n], d, "val") for n, d in tasks.items()},
        "test_acc": {n: accuracy(net, n, arch[n], d, "test") for n, d in tasks.items()}}
    if add is not None:
        before = {n: outputs(net, n, arch[n], d.x_test).clone() for n, d in tasks.items()}
        add_task(net, add, seed=seed + 100)
        name = add.spec.name
        train_task(net, name, add, steps, seed=seed + 2)
        budget2 = out["storage"]["total"] + budget // 4
        found2 = joint_search(net, {**tasks, name: add}, budget2, population=population, cycles=cycles, sample_size=size,
                              fixed=arch, seed=seed + 3)
        train_task(net, name, add, steps // 3, archs=found2.arch[name], seed=seed + 4)
        st2 = net.space.storage(found2.arch)
        out["added"] = {
            "task": name, "arch": net.space.format_task(found2.arch[name]), "budget": budget2, "storage": st2,
            "added_storage": st2["total"] - out["storage"]["total"],
            "test_acc": accuracy(net, name, found2.arch[name], add, "test"),
            "old_identical": {n: bool(torch.equal(before[n], outputs(net, n, arch[n], d.x_test)))
                              for n, d in tasks.items()}}
    return out


__all__ = ["run_mdl", "TaskData", "task_data", "train_supernet", "finetune", "accuracy", "outputs", "add_task", "train_task",
           "SearchResult", "joint_search", "train_separate", "model_accuracy", "largest_within"]
