"""Adapting an architecture to growing data, after AdaXpert (Niu et al., ICML 2021), at CPU scale.

Data arrive in snapshots (:func:`growing_snapshots`: more training examples, more classes; each
snapshot contains the previous one). The first snapshot is searched from scratch; for every
later one:

* the **difference extent** between the previous and the current data (:func:`data_shift`): the
  label distributions' total-variation distance (new classes), plus, for the classes seen
  before, the fraction of training examples the previous architecture never saw;
* the **adaptation condition**: below ``threshold`` the previous architecture is kept and only
  retrained on the new snapshot (one training);
* otherwise the **adjuster** (:func:`adjust`) proposes ``ceil(extent * max_candidates)``
  neighbours of the previous architecture, those whose change in FLOPs is closest to a growth
  of ``log(1 + extent)`` first (more or more varied data asks for more capacity, in proportion to
  how much changed); they and the retrained previous architecture are evaluated and the best
  by validation accuracy is kept.

The paper's adjuster is a learned controller (trained with reinforcement learning across
snapshots); this one is a fixed rule over the space's neighbours and FLOPs (``space.flops``), so
it works on any space that can count them. Evaluations go through a callable, so the procedure
runs against real training (``benchmarks/adaxpert.py``) or a table alike.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError, check_int
from nasforge.spaces.base import SearchSpace


def growing_snapshots(data: Any, sizes: Sequence[int], classes: Sequence[int] | None = None,
                      seed: int = 0) -> list[Any]:
    """Nested snapshots of a :class:`~nasforge.data.Dataset`'s training split: snapshot ``k``
    holds ``sizes[k]`` training examples of the first ``classes[k]`` classes (all classes when
    ``classes`` is None) and contains snapshot ``k - 1``; its validation and test splits keep the
    same classes. Sizes and classes must not decrease."""
    if not sizes:
        raise NasforgeError("growing data needs at least one snapshot size")
    classes = list(classes) if classes is not None else [int(data.num_classes)] * len(sizes)
    if len(classes) != len(sizes):
        raise NasforgeError(f"{len(sizes)} snapshot sizes but {len(classes)} class counts")
    for k in range(len(sizes)):
        check_int(sizes[k], "snapshot size", 1)
        check_int(classes[k], "snapshot classes", 2, int(data.num_classes))
        if k and (sizes[k] < sizes[k - 1] or classes[k] < classes[k - 1]):
            raise NasforgeError(f"snapshots must grow: snapshot {k} has {sizes[k]} examples of {classes[k]} classes "
                                f"after {sizes[k - 1]} of {classes[k - 1]}")
    order = np.random.default_rng(seed).permutation(len(data.y_train))
    y = np.asarray(data.y_train)
    taken: list[int] = []
    out = []
    for n, c in zip(sizes, classes):
        have = set(taken)
        pool = [i for i in order if y[i] < c and i not in have]
        need = n - len(taken)
        if need > len(pool):
            raise NasforgeError(f"a snapshot of {n} training examples of {c} classes asks for more than the "
                                f"{len(taken) + len(pool)} the training split holds")
        # the new examples: the next ones of one fixed random order among the snapshot's classes
        taken = taken + pool[:need]
        idx = np.array(sorted(taken))
        vm, tm = data.y_val < c, data.y_test < c
        out.append(dataclasses.replace(data, name=f"{data.name}[{n}x{c}]", x_train=data.x_train[idx],
                                       y_train=data.y_train[idx], x_val=data.x_val[vm], y_val=data.y_val[vm],
                                       x_test=data.x_test[tm], y_test=data.y_test[tm], num_classes=int(c)))
    return out


def data_shift(prev: Any, new: Any) -> dict[str, float]:
    """How much snapshot ``new`` differs from ``prev``: ``class_tv`` (total-variation distance of
    the training label distributions), ``new_fraction`` (share of ``new``'s training examples,
    among classes ``prev`` had, that are not in ``prev``; by count, the snapshots being nested)
    and ``extent = class_tv + (1 - class_tv) * new_fraction`` in [0, 1]."""
    c = int(new.num_classes)
    p = np.bincount(prev.y_train, minlength=c)[:c] / len(prev.y_train)
    q = np.bincount(new.y_train, minlength=c)[:c] / len(new.y_train)
    tv = 0.5 * float(np.abs(p - q).sum())
    seen = np.isin(new.y_train, np.unique(prev.y_train))
    n_seen = int(seen.sum())
    new_fraction = max(0.0, 1.0 - len(prev.y_train) / n_seen) if n_seen else 1.0
    return {"class_tv": tv, "new_fraction": new_fraction, "extent": tv + (1.0 - tv) * new_fraction}


def adjust(space: SearchSpace, arch: Any, extent: float, rng: np.random.Generator, max_candidates: int = 6,
           flops: Callable[[Any], float] | None = None) -> list[Any]:
    """The adjuster: ``ceil(extent * max_candidates)`` (at least 1) neighbours of ``arch``, those
    whose FLOPs change is closest to ``log(1 + extent)`` (in log FLOPs) first, ties in random order."""
    check_int(max_candidates, "max_candidates", 1)
    if not 0.0 <= extent <= 1.0:
        raise NasforgeError(f"difference extent must be in [0, 1], got {extent!r}")
    count = flops or space.flops
    k = max(1, math.ceil(extent * max_candidates))
    base = math.log(max(float(count(arch)), 1.0))
    target = math.log1p(extent)
    nbrs = list(space.neighbors(arch))
    gaps = np.array([abs(math.log(max(float(count(a)), 1.0)) - base - target) for a in nbrs])
    order = np.lexsort((rng.random(len(nbrs)), gaps))
    return [nbrs[i] for i in order[:k]]


def adaxpert(space: SearchSpace, n_snapshots: int, evaluate: Callable[[Any, int], dict[str, float]],
             first: Any, data_shifts: Sequence[dict[str, float]], threshold: float = 0.2, max_candidates: int = 6,
             seed: int = 0, metric: str = "valid_acc") -> list[dict[str, Any]]:
    """Run the adaptation over snapshots 1..n-1, starting from ``first`` (the architecture found
    on snapshot 0). ``evaluate(arch, k)`` trains/queries ``arch`` on snapshot ``k`` and returns
    its metrics; ``data_shifts[k - 1]`` is :func:`data_shift` (snapshot k-1 -> k). Returns one
    record per snapshot 1..n-1: the architecture kept, its metrics, whether it adapted, the
    evaluations and seconds spent."""
    if len(data_shifts) != n_snapshots - 1:
        raise NasforgeError(f"{n_snapshots} snapshots need {n_snapshots - 1} data shifts, got {len(data_shifts)}")
    rng = np.random.default_rng(seed)
    arch, out = first, []
    for k in range(1, n_snapshots):
        t0 = time.perf_counter()
        shift = data_shifts[k - 1]
        kept = evaluate(arch, k)
        best, best_m, n_eval = arch, kept, 1
        adapt = shift["extent"] >= threshold
        if adapt:
            for cand in adjust(space, arch, shift["extent"], rng, max_candidates):
                m = evaluate(cand, k)
                n_eval += 1
                if m[metric] > best_m[metric]:
                    best, best_m = cand, m
        out.append({"snapshot": k, "arch": space.format(best), "metrics": best_m, "adapted": adapt,
                    "changed": best != arch, "evaluations": n_eval, "seconds": time.perf_counter() - t0, **shift})
        arch = best
    return out


__all__ = ["growing_snapshots", "data_shift", "adjust", "adaxpert"]
