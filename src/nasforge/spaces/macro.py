"""Macro search spaces: networks chosen layer by layer rather than as a repeated cell.

:class:`MacroSpace` (registry ``macro``) is NAS-Bench-Macro; :class:`MBV3Space` (registry ``mbv3``) is
the MobileNetV3-like space of HardCoRe-NAS (documented on the class). Both are torch-free until a
network is built or priced; their blocks and closed-form costs are in :mod:`nasforge.spaces.mbconv`.

The NAS-Bench-Macro space (Su et al., "Prioritized Architecture Sampling with Monto-Carlo Tree
Search", CVPR 2021): 8 searchable layers, 3 choices each, 3**8 = 6,561 architectures.

An architecture is written as the benchmark writes it: 8 characters, one per layer, each

- ``0``: identity (*Identity*); where the layer changes resolution or width, a strided 1x1
  convolution with batch norm takes its place, as in the benchmark's code;
- ``1``: MobileNetV2 inverted residual, expansion 3, kernel 3 (*MB3_K3*);
- ``2``: MobileNetV2 inverted residual, expansion 6, kernel 5 (*MB6_K5*).

The CIFAR-10 network of the benchmark: a 3x3 convolution stem (32 channels, BN, ReLU), then three
stages of 2, 3 and 3 searchable layers whose first layer halves the resolution and doubles the width
(64, 128, 256 channels on 16x16, 8x8, 4x4 maps), then a 1x1 convolution to 1280 channels (BN, ReLU),
global average pooling and a linear classifier. Blocks use ReLU; an inverted residual adds its input
when stride and width are unchanged.

Within a stage, an identity layer after the stage's first layer computes nothing, so moving it to the
end of the stage gives the same network; the benchmark trained one network per such class (3,969
networks) and lists the 6,561 strings with the results of their class. :meth:`MacroSpace.canonical_key`
is that class's representative, in the benchmark's form (identities moved to the stage's end).

Costs: :meth:`MacroSpace.param_count` and :meth:`MacroSpace.flops` reproduce the ``params`` and
``flops`` fields of the benchmark's ``nas-bench-macro_cifar10.json`` exactly. Parameters count
weights, biases and BN scale and shift; ``flops`` are multiply-adds of convolution and linear weights
on a 32x32 image (the benchmark's counter). The space spans 387,882 (``00000000``) to 2,932,586
(``22222222``) parameters and 7.7M to 105.7M multiply-adds.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.spaces.base import SearchSpace

#: the three candidate operations, in the benchmark's code order ('0', '1', '2')
OPS: tuple[str, ...] = ("identity", "mb3_k3", "mb6_k5")
#: (expansion, kernel) of the inverted-residual choices
_BLOCKS: dict[int, tuple[int, int]] = {1: (3, 3), 2: (6, 5)}
#: searchable layers per stage
STAGES: tuple[int, ...] = (2, 3, 3)
LAYERS = sum(STAGES)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
_ALLOWED = "each 0 (identity), 1 (MB3_K3) or 2 (MB6_K5)"


def layer_plan(stem_channels: int = STEM_CHANNELS) -> list[tuple[int, int, int]]:
    """``(in_channels, out_channels, stride)`` of the 8 searchable layers."""
    plan = []
    c = stem_channels
    for depth in STAGES:
        for i in range(depth):
            if i == 0:
                plan.append((c, 2 * c, 2))
                c *= 2
            else:
                plan.append((c, c, 1))
    return plan


class MacroArch(tuple):
    """A NAS-Bench-Macro architecture: the operation index (0, 1, 2) of each of the 8 layers."""

    __slots__ = ()

    def __str__(self) -> str:
        return "".join(str(i) for i in self)

    def __repr__(self) -> str:
        return f"MacroArch('{self}')"


# every architecture is made once and shared
_ALL: tuple[MacroArch, ...] = tuple(MacroArch(ops) for ops in itertools.product(range(len(OPS)), repeat=LAYERS))
_BY_STR: dict[str, MacroArch] = {str(a): a for a in _ALL}


def _short(value: object, limit: int = 200) -> str:
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 4] + "...'"


def parse_macro(text: str) -> MacroArch:
    """The architecture written as ``text`` (8 characters of ``0``/``1``/``2``, e.g. ``"01210121"``)."""
    if not isinstance(text, str):
        raise NasforgeError(f"a NAS-Bench-Macro architecture string is expected, got {type(text).__name__}")
    found = _BY_STR.get(text.strip())
    if found is not None:
        return found
    raise NasforgeError(f"bad NAS-Bench-Macro architecture {_short(text)}: expected {LAYERS} characters, "
                        f"{_ALLOWED} (e.g. '01210121')")


def real_arch(arch: MacroArch) -> MacroArch:
    """The benchmark's representative of ``arch``: in each stage, the identities that follow the
    stage's first layer moved to the stage's end (the same network)."""
    out: list[int] = []
    i = 0
    for depth in STAGES:
        stage = arch[i: i + depth]
        rest = [op for op in stage[1:] if op != 0]
        out += [stage[0], *rest, *[0] * (depth - 1 - len(rest))]
        i += depth
    return _ALL[_index(out)]


def _index(ops: Any) -> int:
    i = 0
    for op in ops:
        i = i * len(OPS) + int(op)
    return i


def _hook_flops(space: SearchSpace, arch: Any, convention: str, **net: Any) -> int:
    """FLOPs of ``space``'s network for ``arch`` by the generic hook counter, in ``convention``."""
    try:
        from nasforge.spaces.counting import check_convention, count_flops
    except ImportError:  # pragma: no cover - the generic counter is optional here
        raise NasforgeError(f"FLOP convention {convention!r} needs nasforge.spaces.counting; use "
                            "convention=None (multiply-adds of convolution and linear weights)") from None
    check_convention(convention)
    model = space.build(space.coerce(arch), **net)
    side = int(net["input_size"])
    return int(count_flops(model, (int(net["in_channels"]), side, side), convention).total)


class MacroSpace(SearchSpace):
    """NAS-Bench-Macro: 8 layers, each identity, MB3_K3 or MB6_K5; 6,561 architectures.

    Architectures are :class:`MacroArch` values written as the benchmark's 8-character strings.
    :meth:`build` gives the benchmark's CIFAR-10 network; :meth:`param_count` and :meth:`flops`
    reproduce the benchmark's ``params`` and ``flops`` fields.
    """

    name = "macro"
    ops = OPS
    encodings = ("onehot", "index")

    # --- elements ---------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> MacroArch:
        """Uniform over the space (each layer's operation uniform and independent)."""
        return _ALL[_index(rng.integers(len(OPS), size=LAYERS))]

    def neighbors(self, arch: Any) -> list[MacroArch]:
        """The 16 architectures with one layer's operation changed (layer by layer, operations in
        index order)."""
        arch = self.coerce(arch)
        out = []
        for layer in range(LAYERS):
            for op in range(len(OPS)):
                if op != arch[layer]:
                    out.append(_ALL[_index((*arch[:layer], op, *arch[layer + 1:]))])
        return out

    def mutate(self, arch: Any, rng: np.random.Generator) -> MacroArch:
        """One of the 16 :meth:`neighbors`, uniformly."""
        arch = self.coerce(arch)
        layer = int(rng.integers(LAYERS))
        op = (arch[layer] + 1 + int(rng.integers(len(OPS) - 1))) % len(OPS)
        return _ALL[_index((*arch[:layer], op, *arch[layer + 1:]))]

    def parse(self, text: str) -> MacroArch:
        return parse_macro(text)

    def format(self, arch: Any) -> str:
        if isinstance(arch, MacroArch):
            return str(arch)
        raise NasforgeError(f"{_short(arch)} is not a NAS-Bench-Macro architecture")

    def coerce(self, arch: Any) -> MacroArch:
        """A :class:`MacroArch` from itself, its string, or a sequence of 8 operation indices."""
        if isinstance(arch, MacroArch):
            return arch
        if isinstance(arch, str):
            return parse_macro(arch)
        if isinstance(arch, (list, tuple)) and len(arch) == LAYERS and all(
                isinstance(x, (int, np.integer)) and not isinstance(x, bool) and 0 <= int(x) < len(OPS)
                for x in arch):
            return _ALL[_index(arch)]
        raise NasforgeError(f"{_short(arch)} is not a NAS-Bench-Macro architecture; expected a string of "
                            f"{LAYERS} characters, {_ALLOWED}")

    def __contains__(self, arch: object) -> bool:
        return isinstance(arch, MacroArch)

    def __len__(self) -> int:
        return len(_ALL)

    @property
    def size(self) -> int:
        """Number of architectures (6,561)."""
        return len(_ALL)

    def __iter__(self) -> Iterator[MacroArch]:
        """Every architecture, in the benchmark's enumeration order ('00000000' to '22222222')."""
        return iter(_ALL)

    def canonical_key(self, arch: Any) -> MacroArch:
        """The benchmark's representative (:func:`real_arch`): architectures differing only in where a
        stage's identity layers sit after its first layer are the same network and share it.
        3,969 keys in all."""
        return real_arch(self.coerce(arch))

    # --- encodings --------------------------------------------------------------------------
    def encode(self, arch: Any, kind: str = "onehot") -> np.ndarray:
        """``onehot``: a one-hot vector of the operation of each layer, 8 x 3 = 24 values;
        ``index``: the 8 operation indices."""
        arch = self.coerce(arch)
        if kind == "onehot":
            v = np.zeros((LAYERS, len(OPS)), dtype=np.float32)
            v[np.arange(LAYERS), list(arch)] = 1.0
            return v.ravel()
        if kind == "index":
            return np.array(arch, dtype=np.int64)
        raise NasforgeError(f"unknown encoding {kind!r} for space macro; allowed: {', '.join(self.encodings)}")

    def graph(self, arch: Any) -> tuple[np.ndarray, list[str]]:
        """A chain: ``input``, the 8 layers labelled with their operation, ``output``."""
        arch = self.coerce(arch)
        n = LAYERS + 2
        adj = np.zeros((n, n), dtype=np.int8)
        adj[np.arange(n - 1), np.arange(1, n)] = 1
        return adj, ["input", *[OPS[op] for op in arch], "output"]

    # --- networks and costs -----------------------------------------------------------------
    def default_net(self) -> dict[str, Any]:
        """The network of the benchmark's published costs: 10 classes, 32x32 RGB."""
        return {"num_classes": 10, "in_channels": 3, "input_size": 32}

    def input_shape(self, **net: Any) -> tuple[int, ...]:
        side = int(net.get("input_size", 32))
        return (int(net.get("in_channels", 3)), side, side)

    def build(self, arch: Any, num_classes: int = 10, in_channels: int = 3, input_size: int = 32,
              stem_channels: int = STEM_CHANNELS, head_channels: int = HEAD_CHANNELS) -> Any:
        """The benchmark's CIFAR-10 network for ``arch`` (a ``torch.nn.Module``). It ends in global
        pooling, so it takes any input size; ``input_size`` is accepted for uniformity and unused.
        ``stem_channels`` (doubled at each stage) and ``head_channels`` narrow the network (the
        benchmark's 32 and 1,280 by default), e.g. for a supernet on a CPU."""
        from torch import nn

        from nasforge.spaces.mbconv import MBConv, conv_bn

        arch = self.coerce(arch)
        _check_widths(stem_channels, head_channels)
        plan = layer_plan(stem_channels)
        layers: list[nn.Module] = []
        for op, (cin, cout, stride) in zip(arch, plan):
            if op == 0:
                layers.append(conv_bn(cin, cout, 1, stride=stride) if (stride != 1 or cin != cout)
                              else nn.Identity())
            else:
                expansion, kernel = _BLOCKS[op]
                layers.append(MBConv(cin, cout, kernel, expansion, stride=stride, act="relu"))
        width = plan[-1][1]
        return nn.Sequential(
            conv_bn(in_channels, stem_channels, 3, act="relu"),
            *layers,
            conv_bn(width, head_channels, 1, act="relu"),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(head_channels, num_classes),
        )

    def supernet_layout(self) -> Any:
        """The supernet protocol of the space (:mod:`nasforge.spaces.macro_supernet`): 8 layers x
        3 choice blocks."""
        from nasforge.spaces.macro_supernet import LAYOUT

        return LAYOUT

    def param_count(self, arch: Any, num_classes: int = 10, in_channels: int = 3, input_size: int = 32,
                    stem_channels: int = STEM_CHANNELS, head_channels: int = HEAD_CHANNELS) -> int:
        """Parameters of :meth:`build`'s network (weights, biases, BN scale and shift; running
        statistics are buffers, not parameters), as the benchmark counts them; in closed form
        (``input_size`` does not matter)."""
        from nasforge.spaces.mbconv import conv_bn_params, mbconv_params

        arch = self.coerce(arch)
        _check_widths(stem_channels, head_channels)
        plan = layer_plan(stem_channels)
        n = conv_bn_params(in_channels, stem_channels, 3)
        for op, (cin, cout, stride) in zip(arch, plan):
            if op == 0:
                n += conv_bn_params(cin, cout, 1) if (stride != 1 or cin != cout) else 0
            else:
                expansion, kernel = _BLOCKS[op]
                n += mbconv_params(cin, cout, kernel, expansion)
        width = plan[-1][1]
        return n + conv_bn_params(width, head_channels, 1) + head_channels * num_classes + num_classes

    def flops(self, arch: Any, convention: str | None = None, input_size: int = 32, num_classes: int = 10,
              in_channels: int = 3, stem_channels: int = STEM_CHANNELS, head_channels: int = HEAD_CHANNELS) -> int:
        """Multiply-adds for one ``input_size`` x ``input_size`` image.

        By default (``convention=None``) in closed form, in the convention of the benchmark's ``flops``
        field: the weights of every convolution and of the classifier (no biases, BN, activations,
        pooling or residual additions; see :mod:`nasforge.spaces.mbconv`). A named ``convention``
        of :mod:`nasforge.spaces.counting` builds the network and counts with forward hooks."""
        from nasforge.spaces.mbconv import conv_macs, conv_out, mbconv_macs

        if convention is not None:
            return _hook_flops(self, arch, convention, num_classes=num_classes, in_channels=in_channels,
                               input_size=input_size, stem_channels=stem_channels, head_channels=head_channels)
        arch = self.coerce(arch)
        _check_widths(stem_channels, head_channels)
        plan = layer_plan(stem_channels)
        size = input_size
        n = conv_macs(in_channels, stem_channels, 3, size)
        for op, (cin, cout, stride) in zip(arch, plan):
            if op == 0:
                if stride != 1 or cin != cout:
                    size = conv_out(size, 1, stride)
                    n += conv_macs(cin, cout, 1, size)
            else:
                expansion, kernel = _BLOCKS[op]
                n += mbconv_macs(cin, cout, kernel, expansion, stride, size)
                size = conv_out(size, kernel, stride)
        width = plan[-1][1]
        return n + conv_macs(width, head_channels, 1, size) + head_channels * num_classes


def _check_widths(stem_channels: Any, head_channels: Any) -> None:
    for name, v in (("stem_channels", stem_channels), ("head_channels", head_channels)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise NasforgeError(f"{name} must be a positive integer, got {v!r}")




# ================================================================================================
# MobileNetV3-like space (HardCoRe-NAS)
# ================================================================================================
#: per-block choices of HardCoRe-NAS (Nayman et al., "HardCoRe-NAS: Hard Constrained diffeRentiable
#: Neural Architecture Search", ICML 2021): depthwise kernel, expansion ratio, squeeze-excitation
KERNELS: tuple[int, ...] = (3, 5)
EXPANSIONS: tuple[int, ...] = (3, 4, 6)
SE_CHOICES: tuple[bool, ...] = (False, True)
#: blocks per searchable stage
DEPTHS: tuple[int, ...] = (2, 3, 4)
#: the five searchable stages: (output channels, stride of the first block, activation), after a
#: fixed stem (3x3 stride-2 convolution to 32 channels, separable block to 16 channels)
MBV3_STAGES: tuple[tuple[int, int, str], ...] = (
    (24, 2, "relu"),
    (40, 2, "relu"),
    (80, 2, "hswish"),
    (112, 1, "hswish"),
    (192, 2, "hswish"),
)
MBV3_STEM_CHANNELS = 32
MBV3_FIRST_CHANNELS = 16
MBV3_HEAD_CHANNELS = 960
MBV3_FEATURE_CHANNELS = 1280
SAMPLINGS: tuple[str, ...] = ("per_choice", "uniform")


class MBV3Block(NamedTuple):
    """One inverted-residual block's choices; written ``k5e6se`` (``k5e6`` without SE)."""

    kernel: int
    expansion: int
    se: bool

    def __str__(self) -> str:
        return f"k{self.kernel}e{self.expansion}{'se' if self.se else ''}"


#: the 12 block configurations, in index order (kernel, then expansion, then SE off/on)
BLOCK_CHOICES: tuple[MBV3Block, ...] = tuple(
    MBV3Block(k, e, se) for k in KERNELS for e in EXPANSIONS for se in SE_CHOICES
)
_BLOCK_INDEX = {b: i for i, b in enumerate(BLOCK_CHOICES)}
_BLOCK_BY_STR = {str(b): b for b in BLOCK_CHOICES}
_BLOCK_RE = re.compile(r"k(\d+)e(\d+)(se)?")
_MBV3_FORMAT = "5 stages separated by '|', each 2 to 4 blocks separated by ',', a block written k<3|5>e<3|4|6>[se]"


def _mbv3_fail(text: object, message: str) -> NasforgeError:
    return NasforgeError(f"bad mbv3 architecture {_short(text)}: {message}")


class MBV3Arch(tuple):
    """A MobileNetV3-like architecture: for each of the 5 stages a tuple of 2 to 4 :class:`MBV3Block`.

    ``str()`` gives the canonical string, e.g. ``k5e3,k5e3se|k5e3,k5e6se|k5e6se,k5e6se|...``.
    """

    __slots__ = ()

    def __new__(cls, stages: Any) -> MBV3Arch:  # noqa: PYI034 - a final value type, never subclassed
        if isinstance(stages, (str, bytes)) or not isinstance(stages, Iterable):
            raise _mbv3_fail(stages, f"expected {len(MBV3_STAGES)} stages of blocks")
        out = []
        for i, stage in enumerate(stages):
            if isinstance(stage, (str, bytes)) or not isinstance(stage, Iterable):
                raise _mbv3_fail(stages, f"stage {i + 1} is not a sequence of blocks")
            blocks = []
            for block in stage:
                try:
                    b = MBV3Block(*block)
                    known = b in _BLOCK_INDEX
                except TypeError:
                    raise _mbv3_fail(stages, f"block {block!r} of stage {i + 1} is not (kernel, expansion, se)") from None
                if not known:
                    raise _mbv3_fail(stages, f"block {block!r} of stage {i + 1}; allowed kernels "
                                             f"{', '.join(map(str, KERNELS))}, expansions "
                                             f"{', '.join(map(str, EXPANSIONS))}, se True/False")
                blocks.append(BLOCK_CHOICES[_BLOCK_INDEX[b]])
            if len(blocks) not in DEPTHS:
                raise _mbv3_fail(stages, f"stage {i + 1} has {len(blocks)} blocks; allowed depths: "
                                         f"{', '.join(map(str, DEPTHS))}")
            out.append(tuple(blocks))
        if len(out) != len(MBV3_STAGES):
            raise _mbv3_fail(stages, f"{len(out)} stages; expected {len(MBV3_STAGES)}")
        return super().__new__(cls, out)

    def __str__(self) -> str:
        return "|".join(",".join(str(b) for b in stage) for stage in self)

    def __repr__(self) -> str:
        return f"MBV3Arch('{self}')"

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(stage) for stage in self)


def parse_mbv3(text: str) -> MBV3Arch:
    """The architecture written as ``text``: stages separated by ``|``, blocks by ``,``, each block
    ``k<kernel>e<expansion>`` with an ``se`` suffix when it has squeeze-excitation."""
    if not isinstance(text, str):
        raise NasforgeError(f"an mbv3 architecture string is expected, got {type(text).__name__}")
    parts = text.strip().split("|")
    if len(parts) != len(MBV3_STAGES):
        raise _mbv3_fail(text, f"{len(parts)} stage(s); expected {_MBV3_FORMAT}")
    stages = []
    for i, part in enumerate(parts):
        blocks = []
        for token in part.split(","):
            token = token.strip()
            b = _BLOCK_BY_STR.get(token)
            if b is None:
                m = _BLOCK_RE.fullmatch(token)
                if m is None:
                    raise _mbv3_fail(text, f"block {token!r} in stage {i + 1} is not written k<kernel>e<expansion>[se]; "
                                           f"expected {_MBV3_FORMAT}")
                raise _mbv3_fail(text, f"block {token!r} in stage {i + 1}; allowed kernels "
                                       f"{', '.join(map(str, KERNELS))}, expansions {', '.join(map(str, EXPANSIONS))}")
            blocks.append(b)
        if len(blocks) not in DEPTHS:
            raise _mbv3_fail(text, f"stage {i + 1} has {len(blocks)} blocks; allowed depths: "
                                   f"{', '.join(map(str, DEPTHS))}")
        stages.append(tuple(blocks))
    return MBV3Arch(stages)


def _stage_count() -> int:
    return sum(len(BLOCK_CHOICES) ** d for d in DEPTHS)


#: architectures per stage (22,608) and in the space (22,608 ** 5, about 5.9e21)
MBV3_STAGE_SIZE = _stage_count()
MBV3_SIZE = MBV3_STAGE_SIZE ** len(MBV3_STAGES)


def load_latency_table(path: str | os.PathLike[str]) -> dict[str, float]:
    """A latency table written by ``benchmarks/mbv3_latency_lut.py``: a CSV file with ``key`` and
    ``ms`` columns, or a JSON file holding ``{key: ms}`` or ``{"entries": [{"key": ..., "ms": ...}]}``."""
    p = Path(path)
    if not p.is_file():
        raise NasforgeError(f"latency table {str(p)!r} not found")
    if p.suffix.lower() == ".json":
        data = json.loads(p.read_text())
        if isinstance(data, dict) and "entries" in data:
            data = {row["key"]: row["ms"] for row in data["entries"]}
        if not isinstance(data, dict):
            raise NasforgeError(f"latency table {str(p)!r}: expected a JSON object of key -> ms")
        return {str(k): float(v) for k, v in data.items()}
    with p.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"key", "ms"} <= set(reader.fieldnames):
            raise NasforgeError(f"latency table {str(p)!r}: expected CSV columns 'key' and 'ms', "
                                f"found {reader.fieldnames!r}")
        return {row["key"]: float(row["ms"]) for row in reader}


class MBV3Space(SearchSpace):
    """The MobileNetV3-like space of HardCoRe-NAS (as also used by OFA-style supernets).

    A fixed stem (3x3 stride-2 convolution to 32 channels with h-swish, a depthwise-separable block
    to 16 channels with ReLU) feeds 5 searchable stages of 24, 40, 80, 112 and 192 channels (first
    block strides 2, 2, 2, 1, 2; ReLU in the first two stages, h-swish after, as MobileNetV3 does).
    Each stage has 2, 3 or 4 inverted-residual blocks; each block chooses its depthwise kernel (3, 5),
    expansion ratio (3, 4, 6) and squeeze-excitation (off, on; a quarter of the expanded width,
    hard-sigmoid gate): 12 choices per block, 22,608 per stage, 22,608**5 (about 5.9e21)
    architectures. A fixed head follows: 1x1 convolution to 960 channels, global pooling, 1x1
    convolution to 1280 (h-swish) and the classifier. This is the layout of the HardCoRe-NAS
    release: its supernet (``mobilenasnet``) has these stages, 4 blocks each with depth choices
    2, 3, 4, kernels 3, 5, expansions 3, 4, 6 (the set its latency-table script uses; an "extended"
    option adds 2 and 2.5, left out here) and SE ratio 0 or 0.25; its A-F networks are
    :data:`HARDCORENAS`, whose parameter counts match timm's ``hardcorenas_a`` ... ``_f`` exactly.
    The paper uses 224x224 ImageNet inputs, the default here.

    ``input_size`` (square) and ``num_classes`` describe the task and set the defaults of
    :meth:`build`, :meth:`flops` and the latency table keys. ``sampling``: ``"per_choice"`` (default,
    the OFA / HardCoRe-NAS supernet convention) draws each stage's depth uniformly and then every
    block's choices uniformly; ``"uniform"`` draws every architecture with equal probability (a
    stage then has 4 blocks with probability 20,736 / 22,608).
    """

    name = "mbv3"
    encodings = ("onehot", "index")
    #: the labels of the graph view's block nodes
    ops: tuple[str, ...] = tuple(
        f"stage{s + 1}_k{b.kernel}_e{b.expansion}{'_se' if b.se else ''}"
        for s in range(len(MBV3_STAGES)) for b in BLOCK_CHOICES
    )

    def __init__(self, input_size: int = 224, num_classes: int = 1000, sampling: str = "per_choice") -> None:
        for label, value in (("input_size", input_size), ("num_classes", num_classes)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise NasforgeError(f"mbv3 {label} must be a positive integer, got {value!r}")
        if sampling not in SAMPLINGS:
            raise NasforgeError(f"unknown mbv3 sampling {sampling!r}; allowed: {', '.join(SAMPLINGS)}")
        self.input_size = int(input_size)
        self.num_classes = int(num_classes)
        self.sampling = sampling

    # --- elements ---------------------------------------------------------------------------
    def _depth_probs(self) -> np.ndarray:
        if self.sampling == "uniform":
            w = np.array([len(BLOCK_CHOICES) ** d for d in DEPTHS], dtype=float)
            return w / w.sum()
        return np.full(len(DEPTHS), 1.0 / len(DEPTHS))

    def sample(self, rng: np.random.Generator) -> MBV3Arch:
        """Per stage a depth (uniform, or weighted so every architecture is equally likely when
        ``sampling="uniform"``), then each block's configuration uniformly."""
        probs = self._depth_probs()
        stages = []
        for _ in MBV3_STAGES:
            depth = DEPTHS[int(rng.choice(len(DEPTHS), p=probs))]
            stages.append(tuple(BLOCK_CHOICES[int(i)] for i in rng.integers(len(BLOCK_CHOICES), size=depth)))
        return MBV3Arch(stages)

    @staticmethod
    def _block_moves(block: MBV3Block) -> list[MBV3Block]:
        """The blocks differing from ``block`` in exactly one choice (kernel, expansion or SE)."""
        out = [MBV3Block(k, block.expansion, block.se) for k in KERNELS if k != block.kernel]
        out += [MBV3Block(block.kernel, e, block.se) for e in EXPANSIONS if e != block.expansion]
        out.append(MBV3Block(block.kernel, block.expansion, not block.se))
        return [BLOCK_CHOICES[_BLOCK_INDEX[b]] for b in out]

    def neighbors(self, arch: Any) -> list[MBV3Arch]:
        """Every architecture one change away, stage by stage: one block with one choice changed
        (4 per block), the stage's last block removed (when deeper than 2), a block of any of the 12
        configurations appended (when shallower than 4)."""
        arch = self.coerce(arch)
        out = []
        for s, stage in enumerate(arch):
            def with_stage(new: tuple[MBV3Block, ...], s: int = s) -> MBV3Arch:
                return MBV3Arch((*arch[:s], new, *arch[s + 1:]))

            for j, block in enumerate(stage):
                out += [with_stage((*stage[:j], b, *stage[j + 1:])) for b in self._block_moves(block)]
            if len(stage) > min(DEPTHS):
                out.append(with_stage(stage[:-1]))
            if len(stage) < max(DEPTHS):
                out += [with_stage((*stage, b)) for b in BLOCK_CHOICES]
        return out

    def mutate(self, arch: Any, rng: np.random.Generator) -> MBV3Arch:
        """One of :meth:`neighbors`, uniformly."""
        moves = self.neighbors(arch)
        return moves[int(rng.integers(len(moves)))]

    def parse(self, text: str) -> MBV3Arch:
        return parse_mbv3(text)

    def format(self, arch: Any) -> str:
        if isinstance(arch, MBV3Arch):
            return str(arch)
        raise NasforgeError(f"{_short(arch)} is not an mbv3 architecture")

    def coerce(self, arch: Any) -> MBV3Arch:
        """An :class:`MBV3Arch` from itself, its string, or nested sequences of (kernel, expansion, se)."""
        if isinstance(arch, MBV3Arch):
            return arch
        if isinstance(arch, str):
            return parse_mbv3(arch)
        return MBV3Arch(arch)

    def __contains__(self, arch: object) -> bool:
        return isinstance(arch, MBV3Arch)

    @property
    def size(self) -> int:
        """Number of architectures, exactly: ``22,608 ** 5`` (per stage 12**2 + 12**3 + 12**4 block
        sequences) = 5,906,234,995,112,194,080,768, about 5.9e21."""
        return MBV3_SIZE

    def __len__(self) -> int:
        """Not available: the size (:attr:`size`) exceeds what ``len()`` can return (``sys.maxsize``);
        raises ``TypeError`` like other spaces that cannot be listed."""
        raise TypeError(f"space 'mbv3' has {MBV3_SIZE:,} architectures, more than len() can return; "
                        "see its size attribute")

    # --- encodings --------------------------------------------------------------------------
    def encode(self, arch: Any, kind: str = "onehot") -> np.ndarray:
        """``onehot``: for each stage's 4 block slots a one-hot vector of the 12 block
        configurations, zeros for slots beyond the stage's depth: 5 x 4 x 12 = 240 values.
        ``index``: per slot 0 (absent) or 1 + the configuration's index in :data:`BLOCK_CHOICES`:
        20 integers. Both one-to-one."""
        arch = self.coerce(arch)
        slots = max(DEPTHS)
        if kind == "onehot":
            v = np.zeros((len(MBV3_STAGES), slots, len(BLOCK_CHOICES)), dtype=np.float32)
            for s, stage in enumerate(arch):
                for j, block in enumerate(stage):
                    v[s, j, _BLOCK_INDEX[block]] = 1.0
            return v.ravel()
        if kind == "index":
            v = np.zeros((len(MBV3_STAGES), slots), dtype=np.int64)
            for s, stage in enumerate(arch):
                for j, block in enumerate(stage):
                    v[s, j] = 1 + _BLOCK_INDEX[block]
            return v.ravel()
        raise NasforgeError(f"unknown encoding {kind!r} for space mbv3; allowed: {', '.join(self.encodings)}")

    def graph(self, arch: Any) -> tuple[np.ndarray, list[str]]:
        """A chain: ``input``, every block in order labelled ``stage<i>_k<k>_e<e>`` (plus ``_se``),
        ``output``. The stage in the label keeps the view one-to-one."""
        arch = self.coerce(arch)
        labels = ["input"]
        for s, stage in enumerate(arch):
            labels += [f"stage{s + 1}_k{b.kernel}_e{b.expansion}{'_se' if b.se else ''}" for b in stage]
        labels.append("output")
        n = len(labels)
        adj = np.zeros((n, n), dtype=np.int8)
        adj[np.arange(n - 1), np.arange(1, n)] = 1
        return adj, labels

    # --- layout -----------------------------------------------------------------------------
    def _sizes(self, input_size: int) -> tuple[int, list[int]]:
        """Resolution after the stem, and at the input of each stage (plus the head's)."""
        from_stem = (input_size - 1) // 2 + 1
        sizes = [from_stem]
        for _c, stride, _a in MBV3_STAGES:
            sizes.append((sizes[-1] - 1) // stride + 1)
        return from_stem, sizes

    def blocks(self, arch: Any) -> list[list[tuple[int, int, int, int, int, bool, str]]]:
        """Per stage, ``(in, out, kernel, expansion, stride, se, activation)`` of each block."""
        arch = self.coerce(arch)
        out = []
        cin = MBV3_FIRST_CHANNELS
        for stage, (cout, stride, act) in zip(arch, MBV3_STAGES):
            rows = []
            for j, b in enumerate(stage):
                rows.append((cin if j == 0 else cout, cout, b.kernel, b.expansion, stride if j == 0 else 1, b.se, act))
            out.append(rows)
            cin = cout
        return out

    def supernet_layout(self) -> Any:
        """The supernet protocol of the space (:mod:`nasforge.spaces.mbv3_supernet`): per stage a
        depth edge and 4 block edges of 12 configurations."""
        from nasforge.spaces.mbv3_supernet import LAYOUT

        return LAYOUT

    # --- networks and costs -----------------------------------------------------------------
    def default_net(self) -> dict[str, Any]:
        """The space's task: ``num_classes`` classes, ``input_size`` x ``input_size`` RGB."""
        return {"num_classes": self.num_classes, "in_channels": 3, "input_size": self.input_size}

    def input_shape(self, **net: Any) -> tuple[int, ...]:
        side = int(net.get("input_size", self.input_size))
        return (int(net.get("in_channels", 3)), side, side)

    def build(self, arch: Any, num_classes: int | None = None, in_channels: int = 3,
              input_size: int | None = None) -> Any:
        """The network (:class:`~nasforge.spaces.mbconv.MobileNetV3Like`). It ends in global pooling,
        so it takes any input size; ``input_size`` is accepted for uniformity and unused."""
        from nasforge.spaces.mbconv import MobileNetV3Like

        return MobileNetV3Like(self.blocks(arch), num_classes=self.num_classes if num_classes is None else num_classes,
                               in_channels=in_channels, stem_channels=MBV3_STEM_CHANNELS,
                               first_channels=MBV3_FIRST_CHANNELS, head_channels=MBV3_HEAD_CHANNELS,
                               feature_channels=MBV3_FEATURE_CHANNELS)

    @staticmethod
    def _stem_params(in_channels: int) -> int:
        from nasforge.spaces.mbconv import conv_bn_params

        c = MBV3_STEM_CHANNELS
        return (conv_bn_params(in_channels, c, 3) + conv_bn_params(c, c, 3, groups=c)
                + conv_bn_params(c, MBV3_FIRST_CHANNELS))

    @staticmethod
    def _head_params(num_classes: int) -> int:
        from nasforge.spaces.mbconv import conv_bn_params

        h, f = MBV3_HEAD_CHANNELS, MBV3_FEATURE_CHANNELS
        return conv_bn_params(MBV3_STAGES[-1][0], h) + h * f + f + f * num_classes + num_classes

    def param_count(self, arch: Any, num_classes: int | None = None, in_channels: int = 3,
                    input_size: int | None = None) -> int:
        """Parameters of :meth:`build`'s network (BN scale and shift included, running statistics
        not), in closed form."""
        from nasforge.spaces.mbconv import mbconv_params

        n = self._stem_params(in_channels)
        n += self._head_params(self.num_classes if num_classes is None else num_classes)
        for stage in self.blocks(arch):
            n += sum(mbconv_params(cin, cout, k, e, se) for cin, cout, k, e, _s, se, _a in stage)
        return n

    @staticmethod
    def _stem_macs(in_channels: int, input_size: int) -> int:
        from nasforge.spaces.mbconv import conv_macs

        c = MBV3_STEM_CHANNELS
        size = (input_size - 1) // 2 + 1
        return (conv_macs(in_channels, c, 3, size) + conv_macs(c, c, 3, size, groups=c)
                + conv_macs(c, MBV3_FIRST_CHANNELS, 1, size))

    @staticmethod
    def _head_macs(num_classes: int, size: int) -> int:
        from nasforge.spaces.mbconv import conv_macs

        h, f = MBV3_HEAD_CHANNELS, MBV3_FEATURE_CHANNELS
        return conv_macs(MBV3_STAGES[-1][0], h, 1, size) + h * f + f * num_classes

    def flops(self, arch: Any, convention: str | None = None, input_size: int | None = None,
              num_classes: int | None = None, in_channels: int = 3) -> int:
        """Multiply-adds for one ``input_size`` x ``input_size`` image (default: the space's).

        By default (``convention=None``) in closed form: the weights of every convolution (SE ones
        on their 1x1 map) and of the classifier, no biases; see :mod:`nasforge.spaces.mbconv`. A
        named ``convention`` of :mod:`nasforge.spaces.counting` builds the network and counts with
        forward hooks."""
        from nasforge.spaces.mbconv import mbconv_macs

        size0 = self.input_size if input_size is None else input_size
        if convention is not None:
            return _hook_flops(self, arch, convention, num_classes=self.num_classes if num_classes is None
                               else num_classes, in_channels=in_channels, input_size=size0)
        n = self._stem_macs(in_channels, size0)
        _stem, sizes = self._sizes(size0)
        for stage, size in zip(self.blocks(arch), sizes):
            for j, (cin, cout, k, e, s, se, _a) in enumerate(stage):
                n += mbconv_macs(cin, cout, k, e, s, size if j == 0 else (size - 1) // stage[0][4] + 1, se)
        return n + self._head_macs(self.num_classes if num_classes is None else num_classes, sizes[-1])

    # --- latency lookup table ---------------------------------------------------------------
    def latency_entries(self, in_channels: int = 3) -> list[dict[str, Any]]:
        """Every distinct piece of the network a latency table needs, at the space's ``input_size``:
        the fixed ``stem``, for each stage and each of the 12 block configurations the stage's first
        block and its later blocks, and the fixed ``head`` (2 + 5 x 2 x 12 = 122 entries). Each entry
        is a dict with ``key`` and the configuration (``part``, ``stage``, ``kernel``, ``expansion``,
        ``se``, ``in_channels``, ``out_channels``, ``stride``, ``input_size``)."""
        _stem, sizes = self._sizes(self.input_size)
        rows: list[dict[str, Any]] = [self._entry("stem", 0, 0, 0, False, in_channels, MBV3_FIRST_CHANNELS,
                                                  2, self.input_size)]
        cin = MBV3_FIRST_CHANNELS
        for s, ((cout, stride, _act), size) in enumerate(zip(MBV3_STAGES, sizes)):
            out_size = (size - 1) // stride + 1
            for first in (True, False):
                for b in BLOCK_CHOICES:
                    rows.append(self._entry("block", s + 1, b.kernel, b.expansion, b.se,
                                            cin if first else cout, cout, stride if first else 1,
                                            size if first else out_size))
            cin = cout
        rows.append(self._entry("head", 0, 0, 0, False, MBV3_STAGES[-1][0], self.num_classes, 1, sizes[-1]))
        return rows

    @staticmethod
    def _entry(part: str, stage: int, kernel: int, expansion: int, se: bool, cin: int, cout: int, stride: int,
               size: int) -> dict[str, Any]:
        if part == "block":
            key = f"stage{stage}:k{kernel}:e{expansion}:se{int(se)}:in{cin}:out{cout}:s{stride}:r{size}"
        else:
            key = f"{part}:in{cin}:out{cout}:r{size}"
        return {"key": key, "part": part, "stage": stage, "kernel": kernel, "expansion": expansion,
                "se": bool(se), "in_channels": cin, "out_channels": cout, "stride": stride, "input_size": size}

    def latency_keys(self, arch: Any, in_channels: int = 3) -> list[str]:
        """The table keys whose latencies add up to ``arch``'s: stem, every block, head."""
        _stem, sizes = self._sizes(self.input_size)
        keys = [self._entry("stem", 0, 0, 0, False, in_channels, MBV3_FIRST_CHANNELS, 2, self.input_size)["key"]]
        for s, (stage, size) in enumerate(zip(self.blocks(arch), sizes)):
            for j, (cin, cout, k, e, stride, se, _a) in enumerate(stage):
                in_size = size if j == 0 else (size - 1) // stage[0][4] + 1
                keys.append(self._entry("block", s + 1, k, e, se, cin, cout, stride, in_size)["key"])
        keys.append(self._entry("head", 0, 0, 0, False, MBV3_STAGES[-1][0], self.num_classes, 1, sizes[-1])["key"])
        return keys

    def latency_ms(self, arch: Any, table: Mapping[str, float] | str | os.PathLike[str]) -> float:
        """Predicted latency of ``arch``: the sum of its pieces' table entries (stem, blocks, head).

        ``table`` maps :meth:`latency_entries` keys to milliseconds, or is the path of a table file
        (:func:`load_latency_table`). A missing entry is an error naming it (tables are specific to
        one input size and class count)."""
        if not isinstance(table, Mapping):
            table = load_latency_table(table)
        total = 0.0
        for key in self.latency_keys(arch):
            try:
                total += float(table[key])
            except KeyError:
                raise NasforgeError(f"latency table has no entry {key!r}; it must be measured for this space "
                                    f"(input_size={self.input_size}, num_classes={self.num_classes})") from None
        return total

    def latency_module(self, entry: Mapping[str, Any]) -> Any:
        """The ``torch.nn.Module`` a latency table entry times, and the input it takes (a tensor of
        shape ``(1, in_channels, input_size, input_size)``) as ``(module, input_shape)``."""
        from torch import nn

        from nasforge.spaces.mbconv import MBConv, mbv3_head, mbv3_stem

        part = entry["part"]
        cin, size = int(entry["in_channels"]), int(entry["input_size"])
        module: nn.Module
        if part == "stem":
            module = mbv3_stem(cin, MBV3_STEM_CHANNELS, MBV3_FIRST_CHANNELS)
        elif part == "head":
            module = mbv3_head(cin, MBV3_HEAD_CHANNELS, MBV3_FEATURE_CHANNELS, int(entry["out_channels"]))
        elif part == "block":
            act = MBV3_STAGES[int(entry["stage"]) - 1][2]
            module = MBConv(cin, int(entry["out_channels"]), int(entry["kernel"]), int(entry["expansion"]),
                            stride=int(entry["stride"]), se=bool(entry["se"]), act=act)
        else:
            raise NasforgeError(f"unknown latency entry part {part!r}; allowed: stem, block, head")
        return module, (1, cin, size, size)


def _hc(*stages: str) -> MBV3Arch:
    return parse_mbv3("|".join(stages))


#: the HardCoRe-NAS A-F networks as their release (and timm's ``hardcorenas_a`` ...) define them.
#: Parameters at 1000 classes: 5,260,232; 5,176,544; 5,521,224; 7,500,208; 8,070,992; 8,199,688
#: (timm reports 5.26M, 5.18M, 5.52M, 7.5M, 8.07M, 8.2M).
HARDCORENAS: dict[str, MBV3Arch] = {
    "a": _hc("k5e3,k5e3se", "k5e3,k5e6se", "k5e6se,k5e6se", "k5e6se,k5e6se", "k5e6se,k5e6se"),
    "b": _hc("k5e3,k5e3se,k3e3", "k5e3,k5e3,k5e3", "k5e3,k5e3,k3e3,k3e3", "k5e3,k3e3,k3e3,k3e3",
             "k5e6se,k5e6se,k3e3se"),
    "c": _hc("k5e3,k5e3se", "k5e3,k5e3,k5e3,k5e3", "k5e4,k5e6se,k3e3,k3e3", "k5e6se,k3e3,k3e3,k3e3",
             "k5e6se,k5e6se,k3e3se"),
    "d": _hc("k5e3se,k5e3se", "k5e3se,k5e4se,k3e3se", "k5e4se,k3e3se,k3e3se,k3e3se",
             "k3e4se,k5e4se,k3e3se,k5e3se", "k5e6se,k5e6se,k5e6se,k3e6se"),
    "e": _hc("k5e3se,k5e3se", "k5e6se,k5e4se,k5e4se,k3e3se", "k5e4se,k3e6se", "k5e6se,k5e6se,k5e6se,k5e3se",
             "k5e6se,k5e6se,k5e6se,k3e6se"),
    "f": _hc("k5e3se,k5e3se", "k5e6se,k5e6se", "k5e6se,k5e6se,k3e3se,k3e3se", "k3e6se,k5e6se,k5e6se,k3e3se",
             "k5e6se,k5e6se,k3e6se,k3e6se"),
}


__all__ = [
    "BLOCK_CHOICES", "DEPTHS", "EXPANSIONS", "HARDCORENAS", "KERNELS", "LAYERS", "MBV3_SIZE", "MBV3_STAGES",
    "OPS", "STAGES", "MBV3Arch", "MBV3Block", "MBV3Space", "MacroArch", "MacroSpace", "layer_plan",
    "load_latency_table", "parse_macro", "parse_mbv3", "real_arch",
]
