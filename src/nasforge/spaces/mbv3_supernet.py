"""The supernet of the MobileNetV3-like (HardCoRe-NAS) space: every block configuration of every
block slot, and every stage depth, with shared weights.

Layout (:data:`LAYOUT`): per stage (5) one *depth* edge choosing ``depth2``, ``depth3`` or ``depth4``
and four *block* edges choosing one of the 12 configurations of
:data:`~nasforge.spaces.macro.BLOCK_CHOICES` (``k3e3`` ... ``k5e6se``): 25 edges. Blocks 3 and 4 of a
stage exist only when the depth reaches them; an index tuple is always an architecture, and the
indices of absent blocks are ignored (:meth:`MBV3Layout.indices` writes 0 there).

The module follows :class:`~nasforge.spaces.mbconv.MobileNetV3Like`: stem, five stages of
:class:`~nasforge.spaces.mbconv.MBConv` candidates, head. ``width`` multiplies every channel count
(rounded to multiples of 8; 1.0 is the published network, the CPU-scale default 0.25).

Forward: ``model(x, arch)`` runs one path; ``model(x, weights=w)`` is the HardCoRe-NAS mixture: every
block slot outputs ``sum_c w[slot, c] * block_c(input)`` (the op attentions α), and every stage
outputs ``sum_d w[depth, d] * (output after its d-th block)`` (the depth attentions β). With weights
that do not require gradients, candidates of weight exactly 0 are not run.

Latency: :meth:`MBV3Layout.latency_model` turns a measured lookup table of the space
(``benchmarks/mbv3_latency_lut.py``; :meth:`~nasforge.spaces.macro.MBV3Space.latency_entries`) into
the bilinear expected latency of HardCoRe-NAS (:class:`~nasforge.spaces.latency_model.AdditiveLatency`).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.spaces.macro import (BLOCK_CHOICES, DEPTHS, MBV3_FEATURE_CHANNELS, MBV3_FIRST_CHANNELS,
                                   MBV3_HEAD_CHANNELS, MBV3_STAGES, MBV3_STEM_CHANNELS, MBV3Arch, MBV3Space,
                                   load_latency_table)
from nasforge.spaces.mbconv import MBConv, make_divisible, mbv3_head, mbv3_stem
from nasforge.spaces.supernet import Supernet, SupernetLayout

__all__ = ["MBV3Layout", "MBV3Supernet", "LAYOUT", "DEPTH_OPS", "BLOCK_OPS"]

#: operations of a depth edge
DEPTH_OPS: tuple[str, ...] = tuple(f"depth{d}" for d in DEPTHS)
#: operations of a block edge (the 12 configurations, in :data:`BLOCK_CHOICES` order)
BLOCK_OPS: tuple[str, ...] = tuple(str(b) for b in BLOCK_CHOICES)
_SLOTS = max(DEPTHS)
_PER_STAGE = 1 + _SLOTS
_BLOCK_INDEX = {b: i for i, b in enumerate(BLOCK_CHOICES)}


def _depth_edge(stage: int) -> int:
    return stage * _PER_STAGE


def _block_edge(stage: int, slot: int) -> int:
    return stage * _PER_STAGE + 1 + slot


class MBV3Layout(SupernetLayout):
    """The mbv3 space as decision points: per stage a depth edge and 4 block edges (see the module
    docstring)."""

    cpu_net = {"width": 0.25}
    net_keys = ("width",)

    def __init__(self) -> None:
        edges, ops = [], []
        for s in range(len(MBV3_STAGES)):
            edges.append(f"stage{s + 1} depth")
            ops.append(DEPTH_OPS)
            for j in range(_SLOTS):
                edges.append(f"stage{s + 1} block{j + 1}")
                ops.append(BLOCK_OPS)
        super().__init__(MBV3Space(), edges, ops)

    def indices(self, arch: Any) -> tuple[int, ...]:
        arch = self.space.coerce(arch)
        out: list[int] = []
        for stage in arch:
            out.append(DEPTHS.index(len(stage)))
            out += [_BLOCK_INDEX[b] for b in stage] + [0] * (_SLOTS - len(stage))
        return tuple(out)

    def arch(self, idx: Sequence[int]) -> MBV3Arch:
        stages = []
        for s in range(len(MBV3_STAGES)):
            depth = DEPTHS[int(idx[_depth_edge(s)])]
            stages.append(tuple(BLOCK_CHOICES[int(idx[_block_edge(s, j)])] for j in range(depth)))
        return MBV3Arch(stages)

    def count(self, m: np.ndarray) -> int:
        """Architectures of a mask (absent blocks' choices do not make new architectures)."""
        m = np.asarray(m, dtype=bool)
        total = 1
        for s in range(len(MBV3_STAGES)):
            n = 0
            for d_i, d in enumerate(DEPTHS):
                if m[_depth_edge(s), d_i]:
                    n += int(np.prod([int(m[_block_edge(s, j)].sum()) for j in range(d)]))
            total *= n
        return total

    def iter_indices(self, m: np.ndarray) -> Iterator[tuple[int, ...]]:
        """Every architecture of the mask once (absent blocks at their first allowed choice)."""
        m = np.asarray(m, dtype=bool)
        per_stage = []
        for s in range(len(MBV3_STAGES)):
            rows = [np.flatnonzero(m[_block_edge(s, j)]).tolist() for j in range(_SLOTS)]
            opts = []
            for d_i in np.flatnonzero(m[_depth_edge(s)]):
                d = DEPTHS[int(d_i)]
                for present in itertools.product(*rows[:d]):
                    opts.append((int(d_i), *present, *(r[0] for r in rows[d:])))
            per_stage.append(opts)
        for combo in itertools.product(*per_stage):
            yield tuple(k for stage in combo for k in stage)

    def latency_model(self, table: Any) -> Any:
        """The HardCoRe-NAS expected latency from a lookup table of the space's pieces (a mapping of
        :meth:`~nasforge.spaces.macro.MBV3Space.latency_entries` keys to ms, or a table file). The
        table's input size and class count are read from its stem and head keys. Stem and head are
        the constant; block slot ``j`` of a stage costs its configuration's entry (first block of
        the stage or a later one); slots 3 and 4 are gated by the stage's depth edge."""
        from nasforge.spaces.latency_model import AdditiveLatency

        source = "mbv3 latency table"
        if isinstance(table, (str, os.PathLike)):
            source = f"mbv3 latency table {os.fspath(table)}"
            table = load_latency_table(table)
        if not isinstance(table, Mapping):
            raise NasforgeError(f"an mbv3 latency table is a file or a mapping of keys to ms, got {type(table).__name__}")
        stem = [k for k in table if str(k).startswith("stem:")]
        head = [k for k in table if str(k).startswith("head:")]
        m_stem = re.fullmatch(r"stem:in(\d+):out\d+:r(\d+)", stem[0]) if len(stem) == 1 else None
        m_head = re.fullmatch(r"head:in\d+:out(\d+):r\d+", head[0]) if len(head) == 1 else None
        if m_stem is None or m_head is None:
            raise NasforgeError(f"{source} needs exactly one stem and one head entry (keys 'stem:in3:out16:r<size>', "
                                f"'head:in192:out<classes>:r<size>'); found {stem + head}")
        sp = MBV3Space(input_size=int(m_stem.group(2)), num_classes=int(m_head.group(1)))

        def ms(key: str) -> float:
            if key not in table:
                raise NasforgeError(f"{source} has no entry {key!r} (input_size={sp.input_size}, "
                                    f"num_classes={sp.num_classes})")
            return float(table[key])

        entries = sp.latency_entries(int(m_stem.group(1)))
        by_piece: dict[tuple[int, bool, int], str] = {}
        for e in entries:
            if e["part"] == "block":
                first = e["stride"] != 1 or e["in_channels"] != e["out_channels"]
                by_piece[(e["stage"], first, _BLOCK_INDEX[(e["kernel"], e["expansion"], e["se"])])] = e["key"]
        cost = np.zeros((self.n_edges, self.n_ops))
        gates: list[tuple[int, np.ndarray] | None] = [None] * self.n_edges
        for s in range(len(MBV3_STAGES)):
            for j in range(_SLOTS):
                e = _block_edge(s, j)
                for c in range(len(BLOCK_CHOICES)):
                    cost[e, c] = ms(by_piece[(s + 1, j == 0, c)])
                if j >= min(DEPTHS):
                    gates[e] = (_depth_edge(s), np.array([d > j for d in DEPTHS]))
        const = ms(entries[0]["key"]) + ms(entries[-1]["key"])
        return AdditiveLatency(const, cost, gates, source=source)

    def build(self, allowed: Any = None, **net: Any) -> MBV3Supernet:
        return MBV3Supernet(allowed=allowed, **net)


#: the mbv3 supernet layout (one shared instance)
LAYOUT = MBV3Layout()


class ChoiceBlock(nn.Module):
    """One block slot with its 12 candidates (``candidates.<c>``)."""

    def __init__(self, cin: int, cout: int, stride: int, act: str) -> None:
        super().__init__()
        self.candidates = nn.ModuleList([MBConv(cin, cout, b.kernel, b.expansion, stride=stride, se=b.se, act=act)
                                         for b in BLOCK_CHOICES])

    def forward(self, x: Tensor, k: int | None = None, weights: Tensor | None = None,
                allowed: np.ndarray | None = None) -> Tensor:
        """Candidate ``k``, or the mixture ``sum_c weights[c] * candidate_c(x)`` over the ``allowed``
        candidates."""
        if weights is None:
            assert k is not None
            return self.candidates[k](x)
        skip = not weights.requires_grad
        out: Tensor | None = None
        for c, cand in enumerate(self.candidates):
            if (allowed is not None and not allowed[c]) or (skip and float(weights[c]) == 0.0):
                continue
            y = weights[c] * cand(x)
            out = y if out is None else out + y
        if out is None:  # every weight zero: the shape of any candidate, all zeros
            out = 0.0 * self.candidates[0](x)
        return out


class ChoiceStage(nn.Module):
    """A stage: 4 block slots; the path runs the first ``depth`` of them, the mixture weighs the
    outputs after 2, 3 and 4 blocks by the depth attentions."""

    def __init__(self, cin: int, cout: int, stride: int, act: str) -> None:
        super().__init__()
        self.slots = nn.ModuleList([ChoiceBlock(cin if j == 0 else cout, cout, stride if j == 0 else 1, act)
                                    for j in range(_SLOTS)])

    def forward(self, x: Tensor, idx: Sequence[int] | None = None, weights: Tensor | None = None,
                allowed: np.ndarray | None = None) -> Tensor:
        """``idx``: (depth index, 4 block indices); ``weights``: (5, width) rows, depth first;
        ``allowed``: the stage's rows of the allowed mask (disallowed candidates are not run)."""
        if weights is None:
            assert idx is not None
            for j in range(DEPTHS[int(idx[0])]):
                x = self.slots[j](x, int(idx[1 + j]))
            return x
        beta = weights[0, : len(DEPTHS)]
        if allowed is not None:  # a depth that is not allowed contributes nothing
            beta = beta * torch.as_tensor(allowed[0, : len(DEPTHS)], dtype=beta.dtype)
        skip = not weights.requires_grad
        out: Tensor | None = None
        for j in range(_SLOTS):
            if j >= min(DEPTHS) and skip and float(beta[j - min(DEPTHS) + 1:].sum()) == 0.0:
                break  # no deeper depth has weight
            x = self.slots[j](x, weights=weights[1 + j], allowed=None if allowed is None else allowed[1 + j])
            if j + 1 in DEPTHS:
                b = beta[DEPTHS.index(j + 1)]
                if skip and float(b) == 0.0:
                    continue
                out = b * x if out is None else out + b * x
        assert out is not None
        return out


class MBV3Supernet(Supernet):
    """The mbv3 supernet (see the module docstring). ``width`` multiplies every channel count."""

    layout = LAYOUT

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224, width: float = 1.0,
                 allowed: Any = None) -> None:
        for name, v in (("num_classes", num_classes), ("in_channels", in_channels), ("input_size", input_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise NasforgeError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 4:
            raise NasforgeError(f"width must be a number in (0, 4], got {width!r}")
        super().__init__(allowed)
        self.num_classes, self.in_channels, self.input_size, self.width = num_classes, in_channels, input_size, float(width)

        def ch(c: int) -> int:
            return make_divisible(c * self.width, 8)

        self.stem = mbv3_stem(in_channels, ch(MBV3_STEM_CHANNELS), ch(MBV3_FIRST_CHANNELS))
        stages = []
        cin = ch(MBV3_FIRST_CHANNELS)
        for cout, stride, act in MBV3_STAGES:
            stages.append(ChoiceStage(cin, ch(cout), stride, act))
            cin = ch(cout)
        self.stages = nn.ModuleList(stages)
        self.head = mbv3_head(cin, ch(MBV3_HEAD_CHANNELS), ch(MBV3_FEATURE_CHANNELS), num_classes)

    def net_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "in_channels": self.in_channels, "input_size": self.input_size,
                "width": self.width}

    def forward_path(self, x: Tensor, idx: tuple[int, ...]) -> Tensor:
        x = self.stem(x)
        for s, stage in enumerate(self.stages):
            x = stage(x, idx=idx[s * _PER_STAGE:(s + 1) * _PER_STAGE])
        return self.head(x)

    def forward_weights(self, x: Tensor, weights: Tensor) -> Tensor:
        w = weights[0]
        x = self.stem(x)
        for s, stage in enumerate(self.stages):
            rows = slice(s * _PER_STAGE, (s + 1) * _PER_STAGE)
            x = stage(x, weights=w[rows], allowed=self.allowed[rows])
        return self.head(x)

    def candidate_modules(self, edge: int, k: int) -> list[nn.Module]:
        s, r = divmod(edge, _PER_STAGE)
        if r == 0:  # a depth choice has no module of its own
            return []
        return [self.stages[s].slots[r - 1].candidates[k]]

    def blocks(self) -> list[nn.Module]:
        """Every stage."""
        return list(self.stages)
