"""The NAS-Bench-101 network (Ying et al., ICML 2019) as a PyTorch module.

The skeleton is the benchmark's: a 3x3 conv-BN-ReLU stem (3 -> ``stem_channels``), then
``num_stacks`` stacks of ``cells_per_stack`` cells; before every stack but the first a 2x2 max
pool of stride 2 halves the resolution and the channel count doubles; then global average
pooling and a dense layer (with bias) to the classes. Defaults are the benchmark's: 128 stem
channels, 3 stacks of 3 cells, 10 classes.

Inside a cell (``NB101Cell``), as the benchmark's ``build_module``:

- the cell's output channels ``C`` are split among the vertices that feed the output (their
  outputs are concatenated): each gets ``C // k`` channels, the first ``C % k`` of them one more;
  any other interior vertex gets the largest channel count among the interior vertices it feeds
  (``vertex_channels``);
- an edge from the input is a 1x1 conv-BN-ReLU projection of the cell input to the receiving
  vertex's channels; an edge between interior vertices passes the tensor on, its first channels
  kept when the source has one channel more than the receiver;
- an interior vertex sums its inputs and applies its operation (3x3 or 1x1 conv-BN-ReLU keeping
  the channel count, or 3x3 max pooling of stride 1);
- when the input is joined to the output directly, a 1x1 conv-BN-ReLU projection of the cell
  input to ``C`` channels is added to the concatenation (or is the whole output when no interior
  vertex remains).

Convolutions have no bias; batch normalisation has a learnable scale and shift (TensorFlow's
defaults, ``epsilon=1e-5`` and momentum 0.997, i.e. PyTorch momentum 0.003). The parameter
count of a network built here equals the benchmark's ``trainable_parameters``;
:func:`nb101_param_count` gives it in closed form.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.spaces.nb101 import CONV1X1, CONV3X3, MAXPOOL3X3, NB101Arch, NB101Space

__all__ = ["ConvBnRelu", "NB101Cell", "NB101Network", "nb101_param_count", "vertex_channels"]

_SPACE = NB101Space()
BN_MOMENTUM = 0.997  # TensorFlow convention: the weight of the old running statistics
BN_EPSILON = 1e-5


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NasforgeError(f"{name} must be a positive integer, got {value!r}")
    return value


def vertex_channels(arch: NB101Arch, in_channels: int, out_channels: int) -> list[int]:
    """Channels of every vertex of the (pruned) cell, as the benchmark's ``compute_vertex_channels``.

    Vertex 0 has ``in_channels`` and the output ``out_channels``; the vertices feeding the
    output share ``out_channels`` (``out // k`` each, the first ``out % k`` of them one more);
    every other interior vertex takes the maximum over the interior vertices it feeds.
    """
    m = arch.matrix
    n = arch.num_vertices
    ch = [0] * n
    ch[0] = in_channels
    ch[n - 1] = out_channels
    if n == 2:
        return ch
    fan_in = sum(m[v][n - 1] for v in range(1, n - 1))
    base, extra = divmod(out_channels, fan_in)
    for v in range(1, n - 1):
        if m[v][n - 1]:
            ch[v] = base + (1 if extra > 0 else 0)
            extra -= 1
    for v in range(n - 3, 0, -1):
        if not m[v][n - 1]:
            for w in range(v + 1, n - 1):
                if m[v][w]:
                    ch[v] = max(ch[v], ch[w])
    if any(c <= 0 for c in ch[1:-1]):
        raise NasforgeError(
            f"{out_channels} output channels cannot be split over the {fan_in} vertices feeding the "
            "output of this cell; use more channels"
        )
    return ch


def _conv_bn_relu_params(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out + 2 * c_out


def _cell_params(arch: NB101Arch, c_in: int, c_out: int) -> int:
    m, ops, n = arch.matrix, arch.ops, arch.num_vertices
    ch = vertex_channels(arch, c_in, c_out)
    total = 0
    for t in range(1, n - 1):
        if m[0][t]:
            total += _conv_bn_relu_params(1, c_in, ch[t])
        if ops[t] == CONV3X3:
            total += _conv_bn_relu_params(3, ch[t], ch[t])
        elif ops[t] == CONV1X1:
            total += _conv_bn_relu_params(1, ch[t], ch[t])
    if m[0][n - 1]:
        total += _conv_bn_relu_params(1, c_in, c_out)
    return total


def nb101_param_count(
    arch: Any,
    stem_channels: int = 128,
    num_stacks: int = 3,
    cells_per_stack: int = 3,
    num_classes: int = 10,
    in_channels: int = 3,
) -> int:
    """Trainable parameters of :class:`NB101Network` for ``arch``, in closed form.

    Counted as the benchmark counts its TensorFlow variables: convolution kernels (no biases),
    batch-norm scale and shift, the dense layer's weights and biases.
    """
    arch = _SPACE.coerce(arch)
    for name, v in (("stem_channels", stem_channels), ("num_stacks", num_stacks),
                    ("cells_per_stack", cells_per_stack), ("num_classes", num_classes),
                    ("in_channels", in_channels)):
        _check_positive(name, v)
    total = _conv_bn_relu_params(3, in_channels, stem_channels)
    c = stem_channels
    for stack in range(num_stacks):
        c_in = c
        if stack > 0:
            c *= 2
        for _ in range(cells_per_stack):
            total += _cell_params(arch, c_in, c)
            c_in = c
    return total + c * num_classes + num_classes


class ConvBnRelu(nn.Module):
    """Convolution (no bias, 'same' padding, stride 1), batch norm, ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPSILON, momentum=1.0 - BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


def _make_op(name: str, channels: int) -> nn.Module:
    if name == CONV3X3:
        return ConvBnRelu(channels, channels, 3)
    if name == CONV1X1:
        return ConvBnRelu(channels, channels, 1)
    if name == MAXPOOL3X3:
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise NasforgeError(f"unknown NAS-Bench-101 operation {name!r}")


class NB101Cell(nn.Module):
    """One NAS-Bench-101 cell (the benchmark's "module") from ``in_channels`` to ``out_channels``."""

    def __init__(self, arch: NB101Arch, in_channels: int, out_channels: int) -> None:
        super().__init__()
        m, n = arch.matrix, arch.num_vertices
        self.num_vertices = n
        self.channels: list[int] = vertex_channels(arch, in_channels, out_channels)
        # for each interior vertex: the interior sources, whether the input feeds it
        self.sources: list[list[int]] = [[s for s in range(1, t) if m[s][t]] for t in range(n)]
        self.from_input: list[bool] = [bool(m[0][t]) for t in range(n)]
        self.to_output: list[int] = [t for t in range(1, n - 1) if m[t][n - 1]]
        self.projections = nn.ModuleDict(
            {str(t): ConvBnRelu(in_channels, self.channels[t], 1) for t in range(1, n - 1) if m[0][t]}
        )
        self.ops = nn.ModuleDict({str(t): _make_op(arch.ops[t], self.channels[t]) for t in range(1, n - 1)})
        self.output_projection = ConvBnRelu(in_channels, out_channels, 1) if m[0][n - 1] else None

    def forward(self, x: Tensor) -> Tensor:
        n = self.num_vertices
        tensors: list[Tensor] = [x]
        for t in range(1, n - 1):
            c = self.channels[t]
            total: Tensor | None = None
            for s in self.sources[t]:
                y = tensors[s][:, :c]
                total = y if total is None else total + y
            if self.from_input[t]:
                y = self.projections[str(t)](x)
                total = y if total is None else total + y
            assert total is not None  # a pruned cell has an input for every vertex
            tensors.append(self.ops[str(t)](total))
        parts = [tensors[t] for t in self.to_output]
        if not parts:
            assert self.output_projection is not None
            return self.output_projection(x)
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if self.output_projection is not None:
            out = out + self.output_projection(x)
        return out


class NB101Network(nn.Module):
    """The NAS-Bench-101 network for one cell; ``forward`` returns the logits."""

    def __init__(
        self,
        arch: Any,
        stem_channels: int = 128,
        num_stacks: int = 3,
        cells_per_stack: int = 3,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        arch = _SPACE.coerce(arch)
        for name, v in (("stem_channels", stem_channels), ("num_stacks", num_stacks),
                        ("cells_per_stack", cells_per_stack), ("num_classes", num_classes),
                        ("in_channels", in_channels)):
            _check_positive(name, v)
        self.arch = arch
        self.stem_channels = stem_channels
        self.num_stacks = num_stacks
        self.cells_per_stack = cells_per_stack
        self.num_classes = num_classes
        self.in_channels = in_channels

        self.stem = ConvBnRelu(in_channels, stem_channels, 3)
        layers: list[nn.Module] = []
        c = stem_channels
        for stack in range(num_stacks):
            c_in = c
            if stack > 0:
                # TensorFlow's 'same' 2x2/2 pooling: odd sides round up
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                c *= 2
            for _ in range(cells_per_stack):
                layers.append(NB101Cell(arch, c_in, c))
                c_in = c
        self.layers = nn.Sequential(*layers)
        # a module, not a functional mean: what reads the features before global pooling (the
        # Zen-score, feature hooks) finds it by type
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.global_pooling(self.layers(self.stem(x)))
        return self.classifier(torch.flatten(out, 1))

    def extra_repr(self) -> str:
        return (f"arch={self.arch}, stem_channels={self.stem_channels}, num_stacks={self.num_stacks}, "
                f"cells_per_stack={self.cells_per_stack}, num_classes={self.num_classes}")
