"""Few-shot supernets: split the weight-sharing supernet into sub-supernets along one edge.

Everything here works on any space's supernet through its layout (:mod:`nasforge.spaces.supernet`):
an *edge* is one of its decision points, a part is a copy of the supernet whose allowed mask is
restricted on that edge (and pruned by the layout where validity ties edges together, as in DARTS).

- **Few-shot NAS** (Zhao et al., ICML 2021): one edge is split into one sub-supernet per
  operation it allows; every sub-supernet starts from the trained supernet's weights and is
  fine-tuned on its own part of the space. An architecture is scored by the sub-supernet that
  holds it (:class:`SplitSupernet`).
- **NAS-LID** (He et al., AAAI 2023): the operations of an edge are grouped by the similarity of
  their *layer-wise local intrinsic dimension (LID) profiles*: with the operation active on the
  edge, the LID of the features after every block of the network is estimated on one batch
  (maximum likelihood, ``k`` nearest neighbours within the batch, :func:`lid_mle`); the profile
  is the vector of these LIDs, averaged over a few random configurations of the other edges
  (the same configurations for every operation). Operations are compared by the cosine
  similarity of their profiles; the edge whose best 2-way cut has the lowest mean cross-group
  similarity is split; splitting recurses into the parts (1-2 levels).
- **Gradient matching** (GM-NAS, Hu et al., ICLR 2022), the baseline criterion: the same, with
  the cosine similarity of the supernet's gradients (all weights except the edge's own candidate
  operations, summed over the same configurations) when each operation is active.

Cuts (:func:`best_cut`) are *balanced* 2-way partitions (sizes differ by at most one: 2|3 for 5
operations), scored by the mean similarity across the cut; lower is a cleaner split.

Both criteria run the network in training mode (batch statistics, as during supernet training)
without changing its BatchNorm buffers. LID needs forward passes only; gradient matching keeps
one gradient vector per operation and the activations of a backward pass, which is NAS-LID's
memory argument (the supernet benchmark measures both).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.errors import NasforgeError, unknown
from nasforge.estimation.training import arch_seed
from nasforge.spaces.supernet import Supernet, SupernetLayout, supernet_from_config

__all__ = ["SplitSupernet", "split_supernet", "lid_mle", "lid_profiles", "gradient_profiles", "cosine_matrix",
           "best_cut", "SplitDecision", "choose_split", "grow_splits", "split_steps", "CRITERIA"]

CRITERIA = ("fewshot", "lid", "gradient")


# --- the family of sub-supernets -------------------------------------------------------------
class SplitSupernet:
    """Sub-supernets that partition the space: every architecture belongs to exactly one part.

    :meth:`supernet_for` returns the part holding an architecture (so estimators and evaluators
    take a ``SplitSupernet`` wherever they take a :class:`~nasforge.spaces.supernet.Supernet`).
    """

    def __init__(self, parts: Sequence[Supernet], validate: bool = True) -> None:
        self.parts = list(parts)
        if not self.parts:
            raise NasforgeError("a split supernet needs at least one part")
        if any(p.layout.name != self.layout.name for p in self.parts):
            raise NasforgeError(f"the parts are supernets of different spaces: {sorted({p.layout.name for p in self.parts})}")
        if validate:
            lay = self.layout
            whole = lay.count(lay.mask(None))
            total = sum(p.size() for p in self.parts)
            overlap = [(i, j) for i in range(len(self.parts)) for j in range(i + 1, len(self.parts))
                       if lay.count(self.parts[i].allowed & self.parts[j].allowed) > 0]
            if total != whole or overlap:
                raise NasforgeError(f"the parts do not partition the space: {total} architectures in {len(self.parts)} "
                                    f"parts (expected {whole})" + (f", parts {overlap[0]} overlap" if overlap else ""))

    @property
    def layout(self) -> SupernetLayout:
        return self.parts[0].layout

    def supernet_for(self, arch: Any) -> Supernet:
        idx = self.layout.coerce_indices(arch)
        for p in self.parts:
            if p.contains(idx):
                return p
        raise NasforgeError(f"no part holds {self.layout.space.format(self.layout.arch(idx))}")

    def __len__(self) -> int:
        return len(self.parts)

    def __iter__(self) -> Iterator[Supernet]:
        return iter(self.parts)

    def describe(self) -> list[str]:
        """One line per part: its restricted edges and size."""
        full = self.layout.mask(None)
        out = []
        for i, p in enumerate(self.parts):
            r = [f"edge {e}: {'|'.join(ops)}" for e, ops in enumerate(p.allowed_ops())
                 if len(ops) < int(full[e].sum())]
            out.append(f"part {i}: {p.size()} {self.layout.noun}" + (f" ({'; '.join(r)})" if r else ""))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"parts": [{"config": p.config, "state": p.state_dict()} for p in self.parts]}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> SplitSupernet:
        parts = []
        for item in state["parts"]:
            net = supernet_from_config(item["config"])
            net.load_state_dict(item["state"])
            parts.append(net)
        return cls(parts)

    def __repr__(self) -> str:
        return f"SplitSupernet({len(self.parts)} parts: {[p.size() for p in self.parts]} {self.layout.noun})"


def split_supernet(supernet: Supernet, edge: int, groups: Sequence[Sequence[Any]]) -> list[Supernet]:
    """Copies of ``supernet`` (weights transferred), the ``i``-th allowing only ``groups[i]`` (names
    or indices) on ``edge``. The groups must partition the operations ``supernet`` allows there."""
    lay = supernet.layout
    if isinstance(edge, bool) or not isinstance(edge, (int, np.integer)) or not 0 <= edge < lay.n_edges:
        raise NasforgeError(f"edge must lie in 0..{lay.n_edges - 1}, got {edge!r}")
    idx_groups = [[lay.op_index(edge, o) for o in g] for g in groups]
    flat = sorted(k for g in idx_groups for k in g)
    have = sorted(int(k) for k in np.flatnonzero(supernet.allowed[edge]))
    if flat != have or any(not g for g in idx_groups):
        raise NasforgeError(f"groups {groups} must partition the operations allowed on edge {edge}: "
                            f"{[lay.ops[edge][k] for k in have]}")
    out = []
    for g in idx_groups:
        child = copy.deepcopy(supernet)
        m = supernet.allowed.copy()
        m[edge] = False
        m[edge, g] = True
        child.restrict(m)
        out.append(child)
    return out


# --- local intrinsic dimension ---------------------------------------------------------------
def lid_mle(features: Tensor, k: int = 20) -> Tensor:
    """Per-point maximum-likelihood LID estimates (Levina & Bickel, 2004) within a batch.

    ``features``: (B, ...) flattened to (B, D). With ``T_1 <= ... <= T_k`` the distances of a
    point to its ``k`` nearest other points, ``LID = [(1/(k-1)) * sum_{j<k} log(T_k / T_j)]^-1``.
    ``k`` is capped at ``B - 1`` and must be at least 2. Returns a (B,) tensor.
    """
    f = features.detach().reshape(len(features), -1).double()
    b = len(f)
    k = min(int(k), b - 1)
    if k < 2:
        raise NasforgeError(f"LID needs k >= 2 neighbours, i.e. a batch of at least 3 points; got {b} points")
    d = torch.cdist(f, f)
    d.fill_diagonal_(float("inf"))
    knn = d.topk(k, dim=1, largest=False).values  # ascending
    tiny = torch.finfo(knn.dtype).tiny
    knn = knn.clamp_min(max(tiny, float(knn[:, -1].max()) * 1e-12))
    logs = torch.log(knn[:, -1:] / knn[:, :-1]).mean(dim=1)
    return 1.0 / logs.clamp_min(1e-12)


def _blocks(model: Supernet) -> list[nn.Module]:
    """The blocks whose outputs make a layer-wise profile (the supernet's :meth:`~Supernet.blocks`)."""
    return model.blocks()


class _KeepBN:
    """Runs the model in training mode and restores BatchNorm buffers afterwards."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.saved = {k: v.clone() for k, v in self.model.state_dict().items() if "running_" in k or "num_batches" in k}
        self.model.train()

    def __exit__(self, *exc: Any) -> None:
        sd = self.model.state_dict()
        with torch.no_grad():
            for k, v in self.saved.items():
                sd[k].copy_(v)
        self.model.train(self.was_training)


def _configs(model: Supernet, edge: int, n_paths: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Random configurations of the other edges (allowed ops), the same for every op of ``edge``."""
    return [model.layout.random_config(model.allowed, rng) for _ in range(n_paths)]


def _with_op(model: Supernet, cfg: tuple[int, ...], edge: int, op: int) -> tuple[int, ...]:
    """Configuration ``cfg`` with ``op`` on ``edge`` (other edges adjusted by the layout where
    validity needs it, the same way for every op: the adjustment's randomness depends on ``cfg``)."""
    rng = np.random.default_rng([edge, *cfg])
    return model.layout.set_choice(cfg, edge, op, model.allowed, rng)


def lid_profiles(model: Supernet, x: Tensor, edge: int, n_paths: int = 4, k: int = 20,
                 rng: np.random.Generator | None = None) -> dict[int, np.ndarray]:
    """Layer-wise LID profile of every allowed operation on ``edge``: op index -> (L,) array
    (mean LID of each block's output, averaged over ``n_paths`` configurations of the others)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    blocks = _blocks(model)
    feats: list[Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, _i, out: feats.append(out.detach())) for b in blocks]
    configs = _configs(model, edge, n_paths, rng)
    out: dict[int, np.ndarray] = {}
    try:
        with _KeepBN(model), torch.no_grad():
            for op in np.flatnonzero(model.allowed[edge]):
                prof = np.zeros(len(blocks))
                for cfg in configs:
                    feats.clear()
                    model(x, _with_op(model, cfg, edge, int(op)))
                    prof += np.array([float(lid_mle(f, k).mean()) for f in feats])
                out[int(op)] = prof / len(configs)
    finally:
        for h in hooks:
            h.remove()
    return out


def gradient_profiles(model: Supernet, x: Tensor, y: Tensor, edge: int, n_paths: int = 4,
                      rng: np.random.Generator | None = None) -> dict[int, Tensor]:
    """Supernet gradient of every allowed operation on ``edge``: op index -> flattened gradient of
    all weights except the edge's candidate operations, summed over ``n_paths`` configurations."""
    rng = rng if rng is not None else np.random.default_rng(0)
    own = {id(p) for p in model.edge_parameters(edge)}
    params = [p for p in model.parameters() if id(p) not in own]
    configs = _configs(model, edge, n_paths, rng)
    out: dict[int, Tensor] = {}
    with _KeepBN(model):
        for op in np.flatnonzero(model.allowed[edge]):
            for p in model.parameters():
                p.grad = None
            for cfg in configs:
                F.cross_entropy(model(x, _with_op(model, cfg, edge, int(op))), y).backward()
            out[int(op)] = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                                      for p in params]).clone()
        for p in model.parameters():
            p.grad = None
    return out


def cosine_matrix(vectors: Sequence[Any]) -> np.ndarray:
    """Pairwise cosine similarities of equally long vectors (a zero vector is similar to nothing)."""
    v = torch.stack([torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a).double().reshape(-1)
                     for a in vectors])
    n = v.norm(dim=1, keepdim=True)
    u = torch.where(n > 0, v / n.clamp_min(1e-300), torch.zeros_like(v))
    return (u @ u.T).numpy()


def best_cut(sim: np.ndarray, balanced: bool = True) -> tuple[list[list[int]], float]:
    """The 2-way partition of ``range(n)`` with the lowest mean similarity across the cut.

    ``balanced`` keeps the group sizes within one of each other. Returns (groups as lists of
    positions, score); ties go to the first partition in enumeration order.
    """
    n = len(sim)
    if n < 2:
        raise NasforgeError(f"a cut needs at least 2 items, got {n}")
    best: tuple[list[list[int]], float] | None = None
    for r in range(1, n // 2 + 1):
        if balanced and r != n // 2:
            continue
        for a in itertools.combinations(range(1, n), r - 1):
            left = [0, *a]  # position 0 always on the left: each partition once
            right = [i for i in range(n) if i not in left]
            if len(right) < len(left):
                continue
            score = float(np.mean([sim[i, j] for i in left for j in right]))
            if best is None or score < best[1] - 1e-12:
                best = ([left, right], score)
    assert best is not None
    return best


@dataclass
class SplitDecision:
    """Which edge to split and how: ``groups`` of operation names, the cut ``score`` (mean
    cross-group similarity) and every candidate edge's best score."""

    criterion: str
    edge: int
    groups: list[list[str]]
    score: float
    edge_scores: dict[int, float] = field(default_factory=dict)
    similarity: list[list[float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["edge_scores"] = {str(k): v for k, v in self.edge_scores.items()}
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SplitDecision:
        d = dict(d)
        d["edge_scores"] = {int(k): float(v) for k, v in d.get("edge_scores", {}).items()}
        return cls(**d)


def choose_split(model: Supernet, x: Tensor, y: Tensor | None = None, criterion: str = "lid",
                 edge: int | None = None, n_paths: int = 4, k: int = 20, balanced: bool = True,
                 seed: int = 0) -> SplitDecision:
    """Decide the next split of ``model`` with ``criterion``.

    ``fewshot``: one group per operation on ``edge`` (default: the first edge with several
    operations). ``lid`` / ``gradient``: the edge (``edge`` to force one) and 2-way grouping
    with the lowest cross-cut similarity of LID profiles / gradients on the batch ``x`` (``y``
    labels needed for gradients).
    """
    if criterion not in CRITERIA:
        raise unknown("split criterion", criterion, CRITERIA)
    lay = model.layout
    splittable = [e for e in range(lay.n_edges) if model.allowed[e].sum() >= 2]
    if edge is not None:
        if edge not in splittable:
            raise NasforgeError(f"edge {edge} cannot be split: it allows {model.allowed_ops()[edge]}")
        splittable = [edge]
    if not splittable:
        raise NasforgeError("no edge of this supernet has two or more operations left to split")
    if criterion == "fewshot":
        e = splittable[0]
        return SplitDecision("fewshot", e, [[lay.ops[e][k]] for k in np.flatnonzero(model.allowed[e])], float("nan"))
    if criterion == "gradient" and y is None:
        raise NasforgeError("the gradient criterion needs labels y")
    best: SplitDecision | None = None
    scores: dict[int, float] = {}
    for e in splittable:
        rng = np.random.default_rng(arch_seed(seed, f"split-edge-{e}"))
        if criterion == "lid":
            prof: dict[int, Any] = lid_profiles(model, x, e, n_paths=n_paths, k=k, rng=rng)
        else:
            assert y is not None
            prof = gradient_profiles(model, x, y, e, n_paths=n_paths, rng=rng)
        ops = sorted(prof)
        sim = cosine_matrix([prof[o] for o in ops])
        groups, score = best_cut(sim, balanced=balanced)
        scores[e] = score
        if best is None or score < best.score - 1e-12:
            best = SplitDecision(criterion, e, [[lay.ops[e][ops[i]] for i in g] for g in groups], score,
                                 similarity=sim.round(6).tolist())
    assert best is not None
    best.edge_scores = scores
    return best


# --- growing and training the split -----------------------------------------------------------
def split_steps(remaining: int, parts_per_level: Sequence[int]) -> list[int]:
    """Steps for each sub-supernet of each level when ``remaining`` steps are shared equally
    between the levels and, within a level, between its parts."""
    if remaining < 0 or not parts_per_level or any(p < 1 for p in parts_per_level):
        raise NasforgeError(f"bad split budget: remaining={remaining}, parts per level={list(parts_per_level)}")
    share = remaining // len(parts_per_level)
    out = [share // p for p in parts_per_level]
    if any(s < 1 for s in out):
        raise NasforgeError(f"{remaining} steps are too few for {list(parts_per_level)} sub-supernets per level")
    return out


def grow_splits(
    root: Supernet,
    make_trainer: Callable[[Supernet, int, tuple[float, float], str], Any],
    x_split: Tensor,
    y_split: Tensor,
    criterion: str = "lid",
    levels: int = 1,
    steps: Sequence[int] = (),
    schedule_start: float = 0.5,
    root_optimizer: dict[str, Any] | None = None,
    edge: int | None = None,
    n_paths: int = 4,
    k: int = 20,
    seed: int = 0,
    workdir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> tuple[SplitSupernet, list[dict[str, Any]]]:
    """Split ``root`` ``levels`` times with ``criterion`` and fine-tune every sub-supernet.

    ``make_trainer(model, steps, schedule, node_id)`` builds the trainer of one sub-supernet
    (a :class:`~nasforge.oneshot.train.SupernetTrainer` with its own checkpoint, so the whole
    growth resumes); ``steps[l]`` is the number of steps of each part at level ``l + 1``.
    Learning rate: the root stopped at ``schedule_start`` on its cosine curve; the levels share
    the rest of the curve equally, so every sub-supernet ends annealed, like the one-shot runs.
    ``root_optimizer`` (the root trainer's optimiser state) carries its momentum into the
    children. Decisions go to ``workdir/decisions.json`` and are reused on a re-run. ``progress``
    shows a progress bar per sub-supernet.
    Returns the split supernet and the decisions (node ids ``0``, ``0.1``, ``0.1.0``, ...).
    """
    if levels < 1 or len(steps) != levels:
        raise NasforgeError(f"need one step count per level: levels={levels}, steps={list(steps)}")
    if criterion == "fewshot" and levels != 1:
        raise NasforgeError("few-shot splitting (one sub-supernet per operation) uses one level")
    if not 0.0 <= schedule_start < 1.0:
        raise NasforgeError(f"schedule_start must lie in [0, 1), got {schedule_start}")
    bounds = np.linspace(schedule_start, 1.0, levels + 1)
    wd = Path(workdir) if workdir is not None else None
    saved: dict[str, Any] = {}
    if wd is not None and (wd / "decisions.json").is_file():
        saved = json.loads((wd / "decisions.json").read_text())
    decisions: list[dict[str, Any]] = []
    frontier: list[tuple[str, Supernet, dict[str, Any] | None]] = [("0", root, root_optimizer)]
    for level in range(1, levels + 1):
        nxt: list[tuple[str, Supernet, dict[str, Any] | None]] = []
        for node, model, opt_state in frontier:
            if not (model.allowed.sum(axis=1) >= 2).any():
                nxt.append((node, model, opt_state))
                continue
            if node in saved:
                dec = SplitDecision.from_json(saved[node])
            else:
                dec = choose_split(model, x_split, y_split, criterion, edge=edge, n_paths=n_paths, k=k,
                                   seed=arch_seed(seed, node))
                saved[node] = dec.to_json()
                if wd is not None:
                    wd.mkdir(parents=True, exist_ok=True)
                    tmp = wd / "decisions.json.tmp"
                    tmp.write_text(json.dumps(saved, indent=1))
                    os.replace(tmp, wd / "decisions.json")
            decisions.append({"node": node, **dec.to_json()})
            if log is not None:
                log(f"split {node}: edge {dec.edge} -> {' / '.join('|'.join(g) for g in dec.groups)}"
                    + ("" if np.isnan(dec.score) else f" (cross similarity {dec.score:.4f})"))
            for j, child in enumerate(split_supernet(model, dec.edge, dec.groups)):
                cid = f"{node}.{j}"
                sched = (float(bounds[level - 1]), float(bounds[level]))
                trainer = make_trainer(child, int(steps[level - 1]), sched, cid)
                if opt_state is not None:
                    trainer.optimizer.load_state_dict(copy.deepcopy(opt_state))  # no shared buffers
                trainer.train(progress=progress, desc=f"part {cid}")
                nxt.append((cid, child, copy.deepcopy(trainer.optimizer.state_dict())))
        frontier = nxt
    return SplitSupernet([m for _, m, _ in frontier]), decisions
