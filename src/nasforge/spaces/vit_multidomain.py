"""A multi-domain ViT search space in the manner of MDL-NAS (Wang et al., CVPR 2023).

Several tasks (datasets of different domains) share one ViT supernet. Every task has its own
input stem (patch embedding, class token, position embedding), final norm and classifier head;
the transformer blocks hold **shared** weights plus, for every task, a **task-specific** copy of
the same shape. A joint architecture chooses, for every task:

* the **coarse** architecture (:class:`TaskArch`): depth (the first ``depth`` blocks), embedding
  width, number of attention heads (head width fixed) and MLP ratio. Weights are the leading
  rows/columns of the supernet's matrices, as in one-shot ViT spaces (AutoFormer);
* the **fine** architecture, one :class:`LayerShare` per used block: of the rows (output units)
  a task's block uses in each linear layer, which are taken from the shared weights and which
  from the task's own copy. ``ratio`` is the shared fraction; ``mode="seq"`` (sequential
  sharing) shares the leading ``round(ratio * n)`` rows of each section (the query, key and
  value parts of the attention projection are sections of their own), ``mode="mask"`` (mask
  sharing) shares a seeded random subset of the same size (``mask_seed`` picks the subset). A
  ratio of 1 is full sharing, 0 a layer of the task's own.

Storage of a joint architecture counts every weight that must be kept to run all its tasks:
the union of the shared weights any task reads plus every task's own weights. A separately
trained model per task costs the sum of the tasks' parameter counts (:meth:`task_params`, the
parameter count of the plain ViT that :meth:`build` makes). Layer norms are per task.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasforge.errors import NasforgeError, check_int, shorten, unknown

MODES = ("seq", "mask")
#: the linear layers of one block, in order; each row of a weight matrix is one output unit
LINEARS = ("qkv", "proj", "fc1", "fc2")


# --- architecture values ------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskSpec:
    """One task: its name, input shape (C, H, W), patch shape (ph, pw) and number of classes."""

    name: str
    input_shape: tuple[int, int, int]
    patch: tuple[int, int]
    num_classes: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", self.name):
            raise NasforgeError(f"task name {shorten(self.name)} must be letters, digits, '_' or '-'")
        if len(self.input_shape) != 3 or any(int(v) < 1 for v in self.input_shape):
            raise NasforgeError(f"task {self.name!r}: input_shape {self.input_shape} must be (C, H, W) >= 1")
        if len(self.patch) != 2:
            raise NasforgeError(f"task {self.name!r}: patch {self.patch} must be (ph, pw)")
        _, h, w = self.input_shape
        ph, pw = self.patch
        if ph < 1 or pw < 1 or h % ph or w % pw:
            raise NasforgeError(f"task {self.name!r}: patch {self.patch} must divide the image side ({h}, {w})")
        check_int(self.num_classes, f"task {self.name!r} num_classes", 2)

    @property
    def tokens(self) -> int:
        """Number of patch tokens (without the class token)."""
        return (self.input_shape[1] // self.patch[0]) * (self.input_shape[2] // self.patch[1])


@dataclass(frozen=True)
class LayerShare:
    """How one block of a task reads the shared weights: ``mode`` (seq/mask), ``ratio``, ``mask_seed``."""

    mode: str = "seq"
    ratio: float = 1.0
    mask_seed: int = 0

    def canonical(self) -> "LayerShare":
        """Full or no sharing does not depend on the mode or the mask: one value for each."""
        if self.ratio in (0.0, 1.0):
            return LayerShare("seq", float(self.ratio), 0)
        if self.mode == "seq":
            return LayerShare("seq", float(self.ratio), 0)
        return self


@dataclass(frozen=True)
class TaskArch:
    """The coarse choice (depth, embed_dim, heads, mlp_ratio) and one :class:`LayerShare` per block."""

    depth: int
    embed_dim: int
    heads: int
    mlp_ratio: float
    share: tuple[LayerShare, ...] = field(default=())

    @property
    def hidden(self) -> int:
        """Width of the MLP's hidden layer."""
        return int(round(self.mlp_ratio * self.embed_dim))


def _fmt_ratio(r: float) -> str:
    return f"{r:g}"


class MDLSpace:
    """The joint coarse-to-fine space over ``tasks``; architectures are ``{task name: TaskArch}``.

    ``depths``, ``embed_dims``, ``heads`` and ``mlp_ratios`` are the coarse choices, ``head_dim``
    the width of one attention head, ``share_ratios`` the fine choices of shared fraction and
    ``mask_seeds`` the number of distinct masks per ratio. ``seed``-free: sampling takes an rng.
    """

    def __init__(self, tasks: Sequence[TaskSpec], depths: Sequence[int] = (1, 2, 3),
                 embed_dims: Sequence[int] = (16, 24, 32), heads: Sequence[int] = (1, 2, 4),
                 mlp_ratios: Sequence[float] = (1.0, 2.0), head_dim: int = 8,
                 share_ratios: Sequence[float] = (0.0, 0.5, 1.0), mask_seeds: int = 4) -> None:
        tasks = list(tasks)
        if not tasks:
            raise NasforgeError("MDLSpace needs at least one task")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise NasforgeError(f"task names must be unique, got {names}")
        for kind, vals in (("depths", depths), ("embed_dims", embed_dims), ("heads", heads)):
            if not vals or any(int(v) != v or v < 1 for v in vals):
                raise NasforgeError(f"{kind} {list(vals)} must be a non-empty list of whole numbers >= 1")
        if not mlp_ratios or any(not (r > 0) for r in mlp_ratios):
            raise NasforgeError(f"mlp_ratios {list(mlp_ratios)} must be positive numbers")
        if not share_ratios or any(not (0.0 <= r <= 1.0) for r in share_ratios):
            raise NasforgeError(f"share_ratios {list(share_ratios)} must lie in [0, 1]")
        self.tasks = tasks
        self.depths = tuple(sorted(int(v) for v in set(depths)))
        self.embed_dims = tuple(sorted(int(v) for v in set(embed_dims)))
        self.heads = tuple(sorted(int(v) for v in set(heads)))
        self.mlp_ratios = tuple(sorted(float(v) for v in set(mlp_ratios)))
        self.head_dim = check_int(head_dim, "head_dim", 1)
        self.share_ratios = tuple(sorted(float(v) for v in set(share_ratios)))
        self.mask_seeds = check_int(mask_seeds, "mask_seeds", 1)
        self.max_depth = self.depths[-1]
        self.max_embed = self.embed_dims[-1]
        self.max_heads = self.heads[-1]
        self.max_hidden = int(round(self.mlp_ratios[-1] * self.max_embed))

    # -- tasks -----------------------------------------------------------------------------
    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task(self, name: str) -> TaskSpec:
        """The :class:`TaskSpec` called ``name`` (clear error for an unknown task)."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise unknown("task", name, self.task_names)

    def with_task(self, spec: TaskSpec) -> "MDLSpace":
        """The same space with one more task (for incremental learning)."""
        if spec.name in self.task_names:
            raise NasforgeError(f"task {spec.name!r} is already in the space ({', '.join(self.task_names)})")
        return MDLSpace(self.tasks + [spec], self.depths, self.embed_dims, self.heads, self.mlp_ratios,
                        self.head_dim, self.share_ratios, self.mask_seeds)

    # -- checking ----------------------------------------------------------------------------
    def check_task_arch(self, name: str, ta: TaskArch) -> TaskArch:
        """``ta`` with canonical sharing, or a clear error naming the bad choice."""
        self.task(name)
        if not isinstance(ta, TaskArch):
            raise NasforgeError(f"task {name!r}: architecture must be a TaskArch, got {shorten(ta)}")
        for kind, val, allowed in (("depth", ta.depth, self.depths), ("embed_dim", ta.embed_dim, self.embed_dims),
                                   ("heads", ta.heads, self.heads), ("mlp_ratio", ta.mlp_ratio, self.mlp_ratios)):
            if val not in allowed:
                raise NasforgeError(f"task {name!r}: {kind} {shorten(val)} is not allowed; allowed: "
                                    f"{', '.join(map(str, allowed))}")
        if len(ta.share) != ta.depth:
            raise NasforgeError(f"task {name!r}: {len(ta.share)} sharing choices for depth {ta.depth}; "
                                "need one per block")
        out = []
        for i, s in enumerate(ta.share):
            if s.mode not in MODES:
                raise unknown(f"sharing mode (task {name!r}, block {i})", s.mode, MODES)
            if s.ratio not in self.share_ratios:
                raise NasforgeError(f"task {name!r}, block {i}: share ratio {s.ratio!r} is not allowed; allowed: "
                                    f"{', '.join(map(_fmt_ratio, self.share_ratios))}")
            if not (isinstance(s.mask_seed, int) and 0 <= s.mask_seed < self.mask_seeds):
                raise NasforgeError(f"task {name!r}, block {i}: mask_seed {shorten(s.mask_seed)} is out of range "
                                    f"0..{self.mask_seeds - 1}")
            out.append(s.canonical())
        return TaskArch(ta.depth, ta.embed_dim, ta.heads, float(ta.mlp_ratio), tuple(out))

    def check(self, arch: Mapping[str, TaskArch]) -> dict[str, TaskArch]:
        """A joint architecture in task order with every part checked (unknown or missing tasks named)."""
        if not isinstance(arch, Mapping):
            raise NasforgeError(f"a joint architecture is a mapping task -> TaskArch, got {shorten(arch)}")
        for name in arch:
            self.task(name)
        missing = [n for n in self.task_names if n not in arch]
        if missing:
            raise NasforgeError(f"joint architecture lacks task(s) {', '.join(missing)}")
        return {n: self.check_task_arch(n, arch[n]) for n in self.task_names}

    # -- sampling and mutation -----------------------------------------------------------------
    def _sample_share(self, rng: np.random.Generator) -> LayerShare:
        ratio = float(self.share_ratios[rng.integers(len(self.share_ratios))])
        mode = MODES[rng.integers(len(MODES))]
        return LayerShare(mode, ratio, int(rng.integers(self.mask_seeds))).canonical()

    def sample_task(self, name: str, rng: np.random.Generator) -> TaskArch:
        """A uniformly drawn coarse architecture with uniformly drawn sharing for task ``name``."""
        self.task(name)
        depth = int(self.depths[rng.integers(len(self.depths))])
        e = int(self.embed_dims[rng.integers(len(self.embed_dims))])
        h = int(self.heads[rng.integers(len(self.heads))])
        r = float(self.mlp_ratios[rng.integers(len(self.mlp_ratios))])
        return TaskArch(depth, e, h, r, tuple(self._sample_share(rng) for _ in range(depth)))

    def sample(self, rng: np.random.Generator) -> dict[str, TaskArch]:
        """A joint architecture: one :meth:`sample_task` per task, in task order."""
        return {n: self.sample_task(n, rng) for n in self.task_names}

    def largest(self, share: float = 1.0) -> TaskArch:
        """The largest coarse architecture with every block sharing ``share`` sequentially."""
        return TaskArch(self.max_depth, self.max_embed, self.max_heads, self.mlp_ratios[-1],
                        tuple(LayerShare("seq", float(share), 0).canonical() for _ in range(self.max_depth)))

    def smallest(self) -> TaskArch:
        """The smallest coarse architecture, fully shared (the least storage a task can add)."""
        return TaskArch(self.depths[0], self.embed_dims[0], self.heads[0], self.mlp_ratios[0],
                        tuple(LayerShare("seq", 1.0, 0) for _ in range(self.depths[0])))

    def mutate_task(self, name: str, ta: TaskArch, rng: np.random.Generator) -> TaskArch:
        """One change: a coarse choice (depth grows with new blocks' sharing drawn) or one block's sharing."""
        ta = self.check_task_arch(name, ta)
        while True:
            what = rng.integers(5)
            if what == 0 and len(self.depths) > 1:
                d = int(rng.choice([v for v in self.depths if v != ta.depth]))
                share = ta.share[:d] + tuple(self._sample_share(rng) for _ in range(d - ta.depth))
                new = TaskArch(d, ta.embed_dim, ta.heads, ta.mlp_ratio, share)
            elif what == 1 and len(self.embed_dims) > 1:
                new = TaskArch(ta.depth, int(rng.choice([v for v in self.embed_dims if v != ta.embed_dim])),
                               ta.heads, ta.mlp_ratio, ta.share)
            elif what == 2 and len(self.heads) > 1:
                new = TaskArch(ta.depth, ta.embed_dim, int(rng.choice([v for v in self.heads if v != ta.heads])),
                               ta.mlp_ratio, ta.share)
            elif what == 3 and len(self.mlp_ratios) > 1:
                new = TaskArch(ta.depth, ta.embed_dim, ta.heads,
                               float(rng.choice([v for v in self.mlp_ratios if v != ta.mlp_ratio])), ta.share)
            elif what == 4:
                i = int(rng.integers(ta.depth))
                share = list(ta.share)
                share[i] = self._sample_share(rng)
                new = TaskArch(ta.depth, ta.embed_dim, ta.heads, ta.mlp_ratio, tuple(share))
            else:
                continue
            if new != ta:
                return new

    def mutate(self, arch: Mapping[str, TaskArch], rng: np.random.Generator) -> dict[str, TaskArch]:
        """One task's architecture mutated (the task drawn uniformly)."""
        arch = self.check(arch)
        name = self.task_names[rng.integers(len(self.tasks))]
        arch[name] = self.mutate_task(name, arch[name], rng)
        return arch

    # -- text ----------------------------------------------------------------------------------
    def format_task(self, ta: TaskArch) -> str:
        """``d3-e32-h4-r2:seq1,mask0.5@2,seq0`` (depth, width, heads, MLP ratio: sharing per block)."""
        share = ",".join(f"{s.mode}{_fmt_ratio(s.ratio)}" + (f"@{s.mask_seed}" if s.mode == "mask" else "")
                         for s in ta.share)
        return f"d{ta.depth}-e{ta.embed_dim}-h{ta.heads}-r{_fmt_ratio(ta.mlp_ratio)}:{share}"

    def format(self, arch: Mapping[str, TaskArch]) -> str:
        """``task=...;task=...`` in task order."""
        arch = self.check(arch)
        return ";".join(f"{n}={self.format_task(a)}" for n, a in arch.items())

    def parse(self, text: str) -> dict[str, TaskArch]:
        """The inverse of :meth:`format` (clear error naming a malformed part)."""
        if not isinstance(text, str):
            raise NasforgeError(f"an MDL architecture string is expected, got {shorten(text)}")
        out: dict[str, TaskArch] = {}
        pat = re.compile(r"d(\d+)-e(\d+)-h(\d+)-r([0-9.]+):(.*)")
        for part in filter(None, text.strip().split(";")):
            name, eq, body = part.partition("=")
            m = pat.fullmatch(body.strip())
            if not eq or m is None:
                raise NasforgeError(f"cannot read {shorten(part)}: expected task=dD-eE-hH-rR:seq1,mask0.5@2,...")
            share = []
            for tok in filter(None, m.group(5).split(",")):
                s = re.fullmatch(r"(seq|mask)([0-9.]+)(?:@(\d+))?", tok)
                if s is None:
                    raise NasforgeError(f"cannot read sharing {shorten(tok)}: expected seqR or maskR@SEED")
                share.append(LayerShare(s.group(1), float(s.group(2)), int(s.group(3) or 0)))
            out[name.strip()] = TaskArch(int(m.group(1)), int(m.group(2)), int(m.group(3)), float(m.group(4)),
                                         tuple(share))
        return self.check(out)

    # -- row layout and sharing masks ---------------------------------------------------------------
    def linear_rows(self, ta: TaskArch, linear: str) -> list[np.ndarray]:
        """Supernet row indices a task uses in one linear layer, as sections (q/k/v are three)."""
        hd = ta.heads * self.head_dim
        if linear == "qkv":
            full = self.max_heads * self.head_dim
            return [np.arange(hd) + j * full for j in range(3)]
        if linear in ("proj", "fc2"):
            return [np.arange(ta.embed_dim)]
        if linear == "fc1":
            return [np.arange(ta.hidden)]
        raise unknown("linear layer", linear, LINEARS)

    def linear_cols(self, ta: TaskArch, linear: str) -> int:
        """How many leading input columns of a linear layer the task reads."""
        return {"qkv": ta.embed_dim, "proj": ta.heads * self.head_dim, "fc1": ta.embed_dim,
                "fc2": ta.hidden}[linear]

    def shared_rows(self, ta: TaskArch, block: int, linear: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, shared flags) of one linear layer of one block: which used rows read shared weights."""
        s = ta.share[block]
        rows, flags = [], []
        for j, sec in enumerate(self.linear_rows(ta, linear)):
            n = len(sec)
            k = int(round(s.ratio * n))
            flag = np.zeros(n, bool)
            if s.mode == "seq" or k in (0, n):
                flag[:k] = True
            else:
                rng = np.random.default_rng([s.mask_seed, block, LINEARS.index(linear), j, n])
                flag[rng.permutation(n)[:k]] = True
            rows.append(sec)
            flags.append(flag)
        return np.concatenate(rows), np.concatenate(flags)

    def shape(self, linear: str) -> tuple[int, int]:
        """(rows, cols) of a supernet linear layer."""
        e, a, m = self.max_embed, self.max_heads * self.head_dim, self.max_hidden
        return {"qkv": (3 * a, e), "proj": (e, a), "fc1": (m, e), "fc2": (e, m)}[linear]

    def shared_usage(self, name: str, ta: TaskArch) -> dict[tuple[int, str], np.ndarray]:
        """Per (block, linear): a boolean (rows, cols + 1) matrix of shared weights (last column: bias) read."""
        ta = self.check_task_arch(name, ta)
        out = {}
        for b in range(ta.depth):
            for lin in LINEARS:
                rows, flags = self.shared_rows(ta, b, lin)
                used = np.zeros((self.shape(lin)[0], self.shape(lin)[1] + 1), bool)
                cols = self.linear_cols(ta, lin)
                r = rows[flags]
                used[np.ix_(r, np.arange(cols))] = True
                used[r, -1] = True
                out[(b, lin)] = used
        return out

    # -- parameter counts -----------------------------------------------------------------------
    def task_params(self, name: str, ta: TaskArch) -> int:
        """Parameters of the task's model on its own (what :meth:`build` makes): stem, blocks, head."""
        spec = self.task(name)
        ta = self.check_task_arch(name, ta)
        e, a, m = ta.embed_dim, ta.heads * self.head_dim, ta.hidden
        c, _, _ = spec.input_shape
        ph, pw = spec.patch
        stem = c * ph * pw * e + e + e + (spec.tokens + 1) * e  # patch conv + bias, cls token, positions
        block = 2 * e + (3 * a * e + 3 * a) + (e * a + e) + 2 * e + (m * e + m) + (e * m + e)
        head = 2 * e + e * spec.num_classes + spec.num_classes
        return stem + ta.depth * block + head

    def storage(self, arch: Mapping[str, TaskArch]) -> dict[str, int]:
        """Weights to keep for all tasks: ``shared`` (union read by any task), ``own`` per task, ``total``;
        ``separate`` is the sum of the tasks' stand-alone parameter counts."""
        arch = self.check(arch)
        union: dict[tuple[int, str], np.ndarray] = {}
        out: dict[str, int] = {}
        total_own = 0
        separate = 0
        for n, ta in arch.items():
            use = self.shared_usage(n, ta)
            p = self.task_params(n, ta)
            own = p - int(sum(u.sum() for u in use.values()))
            out[f"own[{n}]"] = own
            total_own += own
            separate += p
            for k, u in use.items():
                union[k] = u if k not in union else (union[k] | u)
        shared = int(sum(u.sum() for u in union.values()))
        out.update(shared=shared, own=total_own, total=shared + total_own, separate=separate)
        return out

    # -- networks --------------------------------------------------------------------------------
    def build(self, name: str, ta: TaskArch) -> "ViT":
        """The plain ViT of one task's coarse architecture (its own weights, no sharing)."""
        spec = self.task(name)
        ta = self.check_task_arch(name, ta)
        return ViT(spec, ta.depth, ta.embed_dim, ta.heads, self.head_dim, ta.hidden)

    def supernet(self, seed: int = 0) -> "MDLSupernet":
        """The weight-sharing supernet of this space (weights drawn from ``seed``)."""
        return MDLSupernet(self, seed=seed)


# --- networks ---------------------------------------------------------------------------------------
def _attention(x: torch.Tensor, qkv: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    b, n, _ = x.shape
    q, k, v = qkv.reshape(b, n, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(head_dim))
    return (att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, heads * head_dim)


class ViT(nn.Module):
    """A small pre-norm ViT for one task (class token, learned positions, GELU MLP)."""

    def __init__(self, spec: TaskSpec, depth: int, embed_dim: int, heads: int, head_dim: int, hidden: int) -> None:
        super().__init__()
        c = spec.input_shape[0]
        self.spec, self.heads, self.head_dim = spec, heads, head_dim
        self.patch = nn.Conv2d(c, embed_dim, spec.patch, stride=spec.patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos = nn.Parameter(torch.randn(1, spec.tokens + 1, embed_dim) * 0.02)
        a = heads * head_dim
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            self.blocks.append(nn.ModuleDict({
                "ln1": nn.LayerNorm(embed_dim), "qkv": nn.Linear(embed_dim, 3 * a), "proj": nn.Linear(a, embed_dim),
                "ln2": nn.LayerNorm(embed_dim), "fc1": nn.Linear(embed_dim, hidden), "fc2": nn.Linear(hidden, embed_dim)}))
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], 1) + self.pos
        for blk in self.blocks:
            x = x + blk["proj"](_attention(x, blk["qkv"](blk["ln1"](x)), self.heads, self.head_dim))
            x = x + blk["fc2"](F.gelu(blk["fc1"](blk["ln2"](x))))
        return self.head(self.norm(x[:, 0]))


def _linear_params(rows: int, cols: int, gen: torch.Generator) -> tuple[nn.Parameter, nn.Parameter]:
    bound = 1.0 / math.sqrt(cols)
    w = (torch.rand(rows, cols, generator=gen) * 2 - 1) * bound
    b = (torch.rand(rows, generator=gen) * 2 - 1) * bound
    return nn.Parameter(w), nn.Parameter(b)


class _TaskParts(nn.Module):
    """One task's own weights at supernet size: stem, per-block norms and linear copies, head."""

    def __init__(self, space: MDLSpace, spec: TaskSpec, gen: torch.Generator) -> None:
        super().__init__()
        e = space.max_embed
        c = spec.input_shape[0]
        ph, pw = spec.patch
        fan = c * ph * pw
        bound = 1.0 / math.sqrt(fan)
        self.patch_w = nn.Parameter((torch.rand(e, c, ph, pw, generator=gen) * 2 - 1) * bound)
        self.patch_b = nn.Parameter((torch.rand(e, generator=gen) * 2 - 1) * bound)
        self.cls = nn.Parameter(torch.zeros(1, 1, e))
        self.pos = nn.Parameter(torch.randn(1, spec.tokens + 1, e, generator=gen) * 0.02)
        self.blocks = nn.ModuleList()
        for _ in range(space.max_depth):
            blk = nn.ParameterDict()
            for ln in ("ln1", "ln2"):
                blk[f"{ln}_w"] = nn.Parameter(torch.ones(e))
                blk[f"{ln}_b"] = nn.Parameter(torch.zeros(e))
            for lin in LINEARS:
                blk[f"{lin}_w"], blk[f"{lin}_b"] = _linear_params(*space.shape(lin), gen)
            self.blocks.append(blk)
        self.norm_w = nn.Parameter(torch.ones(e))
        self.norm_b = nn.Parameter(torch.zeros(e))
        self.head_w, self.head_b = _linear_params(spec.num_classes, e, gen)


class MDLSupernet(nn.Module):
    """Shared block weights plus every task's own parts; ``forward(x, task, ta)`` runs one task's subnet.

    A task's linear layer reads, row by row, the shared weight (rows flagged shared by its
    :class:`LayerShare`) or its own copy; columns are the leading ``linear_cols``. Gradients thus
    reach only the shared rows a task reads and only its own rows elsewhere.
    """

    def __init__(self, space: MDLSpace, seed: int = 0) -> None:
        super().__init__()
        self.space = space
        gen = torch.Generator().manual_seed(int(seed))
        self.shared = nn.ModuleList()
        for _ in range(space.max_depth):
            blk = nn.ParameterDict()
            for lin in LINEARS:
                blk[f"{lin}_w"], blk[f"{lin}_b"] = _linear_params(*space.shape(lin), gen)
            self.shared.append(blk)
        self.tasks = nn.ModuleDict({t.name: _TaskParts(space, t, gen) for t in space.tasks})
        self._seed = int(seed)
        self._index_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._checked: set[tuple[str, TaskArch]] = set()

    def add_task(self, spec: TaskSpec, seed: int | None = None) -> None:
        """Add a task's own parts (drawn from ``seed``, default: the supernet's seed plus the task count);
        nothing existing changes."""
        self.space = self.space.with_task(spec)
        gen = torch.Generator().manual_seed(self._seed + len(self.tasks) if seed is None else int(seed))
        self.tasks[spec.name] = _TaskParts(self.space, spec, gen)

    def task_parameters(self, name: str) -> list[nn.Parameter]:
        """The parameters owned by one task."""
        self.space.task(name)
        return list(self.tasks[name].parameters())

    def _rows(self, ta: TaskArch, block: int, lin: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = (ta.heads, ta.embed_dim, ta.mlp_ratio, ta.share[block], block, lin)
        if key not in self._index_cache:
            rows, flags = self.space.shared_rows(ta, block, lin)
            self._index_cache[key] = (torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(flags))
        return self._index_cache[key]

    def effective(self, name: str, ta: TaskArch, block: int, lin: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The (weight, bias) one task's block uses in one linear layer."""
        rows, flags = self._rows(ta, block, lin)
        cols = self.space.linear_cols(ta, lin)
        sw, sb = self.shared[block][f"{lin}_w"], self.shared[block][f"{lin}_b"]
        own = self.tasks[name].blocks[block]
        ow, ob = own[f"{lin}_w"], own[f"{lin}_b"]
        if bool(flags.all()):
            return sw[rows, :cols], sb[rows]
        if not bool(flags.any()):
            return ow[rows, :cols], ob[rows]
        w = torch.where(flags[:, None], sw[rows, :cols], ow[rows, :cols])
        return w, torch.where(flags, sb[rows], ob[rows])

    def forward(self, x: torch.Tensor, task: str, ta: TaskArch) -> torch.Tensor:
        space = self.space
        if (task, ta) not in self._checked:  # a bad task or architecture is named, once
            space.check_task_arch(task, ta)
            self._checked.add((task, ta))
        parts = self.tasks[task]
        e = ta.embed_dim
        x = F.conv2d(x, parts.patch_w[:e], parts.patch_b[:e], stride=space.task(task).patch)
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([parts.cls[..., :e].expand(len(x), -1, -1), x], 1) + parts.pos[..., :e]
        for b in range(ta.depth):
            own = parts.blocks[b]
            h = F.layer_norm(x, (e,), own["ln1_w"][:e], own["ln1_b"][:e])
            h = _attention(h, F.linear(h, *self.effective(task, ta, b, "qkv")), ta.heads, space.head_dim)
            x = x + F.linear(h, *self.effective(task, ta, b, "proj"))
            h = F.layer_norm(x, (e,), own["ln2_w"][:e], own["ln2_b"][:e])
            h = F.gelu(F.linear(h, *self.effective(task, ta, b, "fc1")))
            x = x + F.linear(h, *self.effective(task, ta, b, "fc2"))
        x = F.layer_norm(x[:, 0], (e,), parts.norm_w[:e], parts.norm_b[:e])
        return F.linear(x, parts.head_w[:, :e], parts.head_b)

    @torch.no_grad()
    def extract(self, task: str, ta: TaskArch) -> ViT:
        """The stand-alone :class:`ViT` that computes what ``forward(x, task, ta)`` computes."""
        ta = self.space.check_task_arch(task, ta)
        net = self.space.build(task, ta)
        parts = self.tasks[task]
        e = ta.embed_dim
        net.patch.weight.copy_(parts.patch_w[:e])
        net.patch.bias.copy_(parts.patch_b[:e])
        net.cls.copy_(parts.cls[..., :e])
        net.pos.copy_(parts.pos[..., :e])
        for b, blk in enumerate(net.blocks):
            own = parts.blocks[b]
            for ln in ("ln1", "ln2"):
                blk[ln].weight.copy_(own[f"{ln}_w"][:e])
                blk[ln].bias.copy_(own[f"{ln}_b"][:e])
            for lin in LINEARS:
                w, bias = self.effective(task, ta, b, lin)
                blk[lin].weight.copy_(w)
                blk[lin].bias.copy_(bias)
        net.norm.weight.copy_(parts.norm_w[:e])
        net.norm.bias.copy_(parts.norm_b[:e])
        net.head.weight.copy_(parts.head_w[:, :e])
        net.head.bias.copy_(parts.head_b)
        return net


__all__ = ["TaskSpec", "TaskArch", "LayerShare", "MDLSpace", "MDLSupernet", "ViT", "MODES", "LINEARS"]
