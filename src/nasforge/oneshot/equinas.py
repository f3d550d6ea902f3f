"""Searching the symmetry group of each layer (Maile et al., ICLR 2023): EquiNAS_E, evolution by
equivariance relaxation morphisms, and EquiNAS_D, differentiable search over [G]-mixed layers.

* :func:`relaxation_search` (our reading of EquiNAS_E): start from the network whose layers all
  have the largest group, trained for ``warmup_epochs``; each generation, every member of the
  population (size ``population``) and each child made by relaxing one of its layers to the next
  smaller group (the morphism: the child computes exactly its parent's function, then trains
  on) are trained ``epochs_per_generation`` more epochs; the best ``population`` by validation
  accuracy survive. Weights are inherited throughout, so a child starts where its parent was.
* :func:`mixed_search`: one network of [G]-mixed layers; weights on training batches and the
  mixture logits on validation batches, alternately (first-order DARTS); each layer's group is
  the argmax of its logits.

Both return the chosen groups and a log; the benchmark retrains the chosen network from scratch
like every other architecture (``benchmarks/equivariance_search.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nasforge.data import Dataset
from nasforge.errors import NasforgeError, check_int
from nasforge.spaces.equivariant import ROTATION_GROUPS, base_of, is_subgroup, maximal_subgroups, parse_groups
from nasforge.spaces.equivariant_net import GroupCNN


def _search_groups(groups: Sequence[str] | str) -> tuple[str, ...]:
    groups = parse_groups(groups)  # largest first
    top = groups[0]
    if not all(is_subgroup(g, top) for g in groups):
        raise NasforgeError(f"the groups {', '.join(groups)} have no largest member for the search to start "
                            f"from: add one that holds them all (D4 holds every group)")
    return groups


@dataclass
class _Member:
    net: GroupCNN
    opt: torch.optim.Optimizer
    score: float = -math.inf
    history: list[str] = field(default_factory=list)


def _optimizer(net: torch.nn.Module, lr: float, state: dict | None = None) -> torch.optim.Optimizer:
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True)
    if state is not None:
        opt.load_state_dict(state)
    return opt


def _epoch(net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, batch: int,
           gen: torch.Generator) -> None:
    net.train()
    perm = torch.randperm(len(y), generator=gen)
    for i in range(0, len(y), batch):
        idx = perm[i: i + batch]
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.no_grad()
def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy (%) of ``net`` on ``(x, y)``."""
    net.eval()
    return 100.0 * float((net(x).argmax(1) == y).float().mean())


def _tensors(data: Dataset) -> tuple[torch.Tensor, ...]:
    if data.kind != "image":
        raise NasforgeError(f"equivariance search needs image data; dataset {data.name!r} holds vectors")
    return tuple(torch.from_numpy(a) for a in (data.x_train, data.y_train, data.x_val, data.y_val))


def relaxation_search(data: Dataset, layers: int = 4, planes: int = 32, population: int = 2, generations: int = 4,
                      warmup_epochs: int = 4, epochs_per_generation: int = 2, lr: float = 0.05, batch_size: int = 32,
                      seed: int = 0, groups: Sequence[str] | str = ROTATION_GROUPS,
                      callback: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """EquiNAS_E-style search from the network whose layers all have the largest of ``groups``
    (C4 by default, D4 with flips) by relaxation morphisms: a child relaxes one layer to a
    maximal subgroup among ``groups`` (D4 -> C4 or D2, D2 -> C2 or D1, C4 -> C2, ... -> C1).

    Returns ``{"groups", "valid_acc", "network", "log"}``: the best member's groups, validation
    accuracy and trained network, and per generation the population's groups and scores
    (``callback`` gets each generation's log entry as it is made).
    """
    allowed = _search_groups(groups)
    layers, population = check_int(layers, "layers", 1), check_int(population, "population", 1)
    generations = check_int(generations, "generations", 0)
    xt, yt, xv, yv = _tensors(data)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        root = GroupCNN([allowed[0]] * layers, planes=planes, num_classes=data.num_classes,
                        in_channels=data.in_channels, base=base_of(allowed))
    opt = _optimizer(root, lr)
    for _ in range(warmup_epochs):
        _epoch(root, opt, xt, yt, batch_size, gen)
    pop = [_Member(root, opt, accuracy(root, xv, yv))]
    log: list[dict[str, Any]] = [{"generation": 0, "members": [(m.net.groups, m.score) for m in pop]}]
    if callback is not None:
        callback(log[-1])
    for g in range(1, generations + 1):
        candidates: list[_Member] = []
        for m in pop:
            candidates.append(m)
            for i, group in enumerate(m.net.groups):
                for smaller in maximal_subgroups(group, allowed):
                    if any(c.net.groups == m.net.groups[:i] + (smaller,) + m.net.groups[i + 1:] for c in candidates):
                        continue
                    child = m.net.relax(i, smaller)
                    # the optimiser restarts for the child: its parameters have new shapes
                    candidates.append(_Member(child, _optimizer(child, lr),
                                              history=m.history + [f"layer{i}->{smaller}"]))
        for c in candidates:
            for _ in range(epochs_per_generation):
                _epoch(c.net, c.opt, xt, yt, batch_size, gen)
            c.score = accuracy(c.net, xv, yv)
        candidates.sort(key=lambda c: -c.score)  # stable: ties keep the parent first
        pop = candidates[:population]
        log.append({"generation": g, "members": [(m.net.groups, m.score) for m in pop],
                    "evaluated": len(candidates)})
        if callback is not None:
            callback(log[-1])
    best = pop[0]
    return {"groups": best.net.groups, "valid_acc": best.score, "network": best.net, "log": log,
            "history": best.history}


def mixed_search(data: Dataset, layers: int = 4, planes: int = 32, epochs: int = 10, lr: float = 0.05,
                 alpha_lr: float = 3e-2, batch_size: int = 32, seed: int = 0,
                 groups: Sequence[str] | str = ROTATION_GROUPS,
                 callback: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Differentiable search over [G]-mixed layers of ``groups`` (first-order, alternating weight
    and mixture-logit steps). Returns ``{"groups", "alphas", "network"}``; ``callback`` gets
    ``{"epoch", "groups", "valid_acc"}`` after each epoch."""
    allowed = parse_groups(groups)
    layers, epochs = check_int(layers, "layers", 1), check_int(epochs, "epochs", 1)
    xt, yt, xv, yv = _tensors(data)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = GroupCNN([allowed[0]] * layers, planes=planes, num_classes=data.num_classes,
                       in_channels=data.in_channels, mixed=True, mixture=allowed)
    alphas = [p for n, p in net.named_parameters() if n.endswith("alpha")]
    weights = [p for n, p in net.named_parameters() if not n.endswith("alpha")]
    w_opt = torch.optim.SGD(weights, lr=lr, momentum=0.9, nesterov=True)
    a_opt = torch.optim.Adam(alphas, lr=alpha_lr, betas=(0.5, 0.999))
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(yt), generator=gen)
        for i in range(0, len(yt), batch_size):
            idx = perm[i: i + batch_size]
            vidx = torch.from_numpy(rng.integers(0, len(yv), len(idx)))
            a_opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(xv[vidx]), yv[vidx]).backward()
            a_opt.step()
            w_opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(xt[idx]), yt[idx]).backward()
            w_opt.step()
        if callback is not None:
            callback({"epoch": epoch + 1, "groups": tuple(layer.chosen() for layer in net.layers),
                      "valid_acc": accuracy(net, xv, yv)})
    groups = tuple(layer.chosen() for layer in net.layers)
    return {"groups": groups, "alphas": [torch.softmax(a.detach(), 0).tolist() for a in alphas], "network": net}


__all__ = ["relaxation_search", "mixed_search", "accuracy"]
