"""The NAS-Bench-201 network (Dong & Yang, ICLR 2020) as a PyTorch module.

The macro skeleton is the benchmark's own "infer" network: a 3x3 convolution stem, three stages
of ``N`` identical cells (``C``, ``2C`` and ``4C`` channels) joined by two residual reduction
blocks, then BatchNorm-ReLU, global average pooling and a linear classifier.  With the default
``C=16, N=5`` and 10 classes the parameter counts equal the published ones, from 73,306 (no
convolution in the cell) to 1,531,546 (six ``nor_conv_3x3`` edges).

Submodule names follow the official implementation (``stem``, ``cells.<i>.layers.<e>.op``,
``cells.<i>.conv_a``/``conv_b``/``downsample``, ``lastact``, ``classifier``), so the state dict
of a network built here has the same keys as the benchmark's own.

:func:`nb201_param_count` gives the parameter count in closed form, without building anything.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

import torch
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.spaces.nb201 import EDGES, OPS, NB201Arch, NB201Space, check_network_config

__all__ = ["NB201Network", "InferCell", "ResNetBasicBlock", "ReLUConvBN", "nb201_param_count"]

_SPACE = NB201Space()


def _coerce_arch(arch: Any) -> NB201Arch:
    return _SPACE.coerce(arch)


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NasforgeError(f"{name} must be a positive integer, got {value!r}")
    return value


# --- closed-form parameter count --------------------------------------------------------------
def _op_params(op: str, c: int) -> int:
    """Parameters of one cell edge at ``c`` channels (conv weight without bias + BN affine)."""
    if op == "nor_conv_3x3":
        return 9 * c * c + 2 * c
    if op == "nor_conv_1x1":
        return c * c + 2 * c
    return 0  # none, skip_connect, avg_pool_3x3


def _reduction_params(c_in: int, c_out: int) -> int:
    """Residual block: 3x3 conv (stride 2) + BN, 3x3 conv + BN, 1x1 conv on the shortcut."""
    return 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out + c_in * c_out


def nb201_param_count(
    arch: Any, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3
) -> int:
    """Number of parameters of :class:`NB201Network` for ``arch``, computed in closed form.

    Counted: convolution weights (no biases), BatchNorm weights and biases, the classifier.
    With ``e3`` edges ``nor_conv_3x3`` and ``e1`` edges ``nor_conv_1x1`` in the cell (the other
    operations hold no parameters), each cell at width ``c`` holds
    ``e3 * (9c^2 + 2c) + e1 * (c^2 + 2c)``; there are ``N`` cells at each of ``c = C, 2C, 4C``.
    The skeleton holds ``9*in_channels*C + 2C`` (stem), ``R(C, 2C) + R(2C, 4C)`` (reductions,
    ``R(a, b) = 9ab + 9b^2 + ab + 4b``) and ``8C + 4C*num_classes + num_classes`` (head).
    For ``C=16, N=5``, 3 input channels and 10 classes: ``73,306 + 243,040*e3 + 28,000*e1``.
    """
    arch = _coerce_arch(arch)
    C = _check_positive("C", C)
    N = _check_positive("N", N)
    num_classes = _check_positive("num_classes", num_classes)
    in_channels = _check_positive("in_channels", in_channels)
    total = 9 * in_channels * C + 2 * C  # stem: conv (no bias) + BN
    total += _reduction_params(C, 2 * C) + _reduction_params(2 * C, 4 * C)
    total += 2 * 4 * C + 4 * C * num_classes + num_classes  # head: BN + linear
    for c in (C, 2 * C, 4 * C):
        total += N * sum(_op_params(op, c) for op in arch)
    return total


# --- operations -------------------------------------------------------------------------------
class ReLUConvBN(nn.Module):
    """ReLU, convolution without bias, BatchNorm (affine, running statistics)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=True, track_running_stats=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Pooling(nn.Module):
    """3x3 average pooling, stride 1, padding excluded from the average."""

    def __init__(self) -> None:
        super().__init__()
        self.op = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Zero(nn.Module):
    """The ``none`` operation. :class:`InferCell` never calls it; kept for the official layout."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


def _make_op(name: str, c: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1)
    if name == "avg_pool_3x3":
        return Pooling()
    raise NasforgeError(f"unknown NB201 operation {name!r}; allowed: {', '.join(OPS)}")


# --- blocks -----------------------------------------------------------------------------------
class InferCell(nn.Module):
    """An NB201 cell with fixed operations: node j = sum of op(i -> j)(node i) over i < j.

    ``none`` edges are skipped (they add zeros); a node all of whose inputs are ``none`` is the
    zero tensor, materialised only when another operation or the cell output needs it.
    """

    def __init__(self, arch: NB201Arch, C: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([_make_op(op, C) for op in arch])
        self.edge_src: List[int] = [src for src, _ in EDGES]
        self.edge_dst: List[int] = [dst for _, dst in EDGES]
        self.edge_active: List[bool] = [op != "none" for op in arch]

    def forward(self, x: Tensor) -> Tensor:
        nodes: List[Optional[Tensor]] = [x, None, None, None]
        # edges come in the official order: every source node is complete before it is read
        for k, layer in enumerate(self.layers):
            if self.edge_active[k]:
                inp = nodes[self.edge_src[k]]
                if inp is None:
                    inp = torch.zeros_like(x)
                y = layer(inp)
                dst = self.edge_dst[k]
                acc = nodes[dst]
                if acc is None:
                    nodes[dst] = y
                else:
                    nodes[dst] = acc + y
        out = nodes[3]
        if out is None:
            out = torch.zeros_like(x)
        return out


class ResNetBasicBlock(nn.Module):
    """Stride-2 residual reduction: ReLU-conv3x3(s2)-BN, ReLU-conv3x3-BN; avgpool + 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


# --- network ----------------------------------------------------------------------------------

def build_backbone(net: nn.Module, C: int, N: int, num_classes: int, in_channels: int,
                   make_cell: Callable[[int], nn.Module]) -> None:
    """Give ``net`` the NB201 macro skeleton: ``stem``, ``cells`` (3 stages of ``N`` cells made by
    ``make_cell(channels)``, with residual reduction blocks between stages), ``lastact``,
    ``global_pooling`` and ``classifier``. Modules are created in the official order, so seeded
    initialisation and state-dict keys match the official network."""
    net.stem = nn.Sequential(
        nn.Conv2d(in_channels, C, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(C),
    )
    cells: List[nn.Module] = []
    c = C
    for stage in range(3):
        if stage > 0:
            cells.append(ResNetBasicBlock(c, 2 * c))
            c *= 2
        for _ in range(N):
            cells.append(make_cell(c))
    net.cells = nn.ModuleList(cells)
    net.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
    net.global_pooling = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Linear(c, num_classes)

class NB201Network(nn.Module):
    """The NB201 network for one cell; ``forward`` returns the logits.

    ``C`` channels in the first stage (doubled at each of the two reductions), ``N`` cells per
    stage.  ``input_size`` (side of the square input) is only recorded, for FLOP counting; the
    network accepts any side divisible by 4.
    """

    def __init__(
        self,
        arch: Any,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
    ) -> None:
        super().__init__()
        arch = _coerce_arch(arch)
        check_network_config(C, N, num_classes, in_channels, input_size)
        self.arch = arch
        self.C = C
        self.N = N
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.input_size = input_size

        build_backbone(self, C, N, num_classes, in_channels, lambda c: InferCell(arch, c))

    def forward(self, x: Tensor) -> Tensor:
        out = self.stem(x)
        for cell in self.cells:
            out = cell(out)
        out = self.global_pooling(self.lastact(out))
        return self.classifier(torch.flatten(out, 1))

    def extra_repr(self) -> str:
        return f"arch={self.arch}, C={self.C}, N={self.N}, num_classes={self.num_classes}"
