"""The DARTS evaluation network for CIFAR (Liu, Simonyan & Yang, ICLR 2019) as a PyTorch module.

The skeleton follows the DARTS code base's ``NetworkCIFAR``: a 3x3 convolution stem to
``stem_multiplier * C`` channels with BatchNorm, then ``layers`` cells; the cells at positions
``layers // 3`` and ``2 * layers // 3`` are reduction cells (stride 2, channels doubled), the
others normal cells. Cell ``k`` reads the outputs of cells ``k-2`` and ``k-1`` (the stem output
stands for both at the start), brings each to its width with a ReLU-1x1 conv-BN (a factorized
reduction for ``k-2`` when cell ``k-1`` reduced), computes its four nodes and concatenates them.
Global average pooling and a linear classifier follow; an optional auxiliary head reads the
output of cell ``2 * layers // 3``.

Operations, at ``C`` channels (BatchNorm always affine, convolutions without bias):

- ``sep_conv_kxk``: twice (ReLU, depthwise kxk, pointwise 1x1, BN); only the first has the stride;
- ``dil_conv_kxk``: ReLU, depthwise kxk with dilation 2, pointwise 1x1, BN;
- ``max_pool_3x3``, ``avg_pool_3x3`` (padding not averaged): no BatchNorm, as in the evaluation
  network;
- ``skip_connect``: the identity, or a factorized reduction where the edge has stride 2.

During training, with ``drop_path_prob > 0``, every edge output except an identity is dropped per
sample with that probability (and the kept ones scaled up), as in the DARTS training script.

With the DARTS-V2 cell, ``C=36``, 20 layers and 10 classes the network has 3,349,342 parameters
without the auxiliary head (the paper's 3.3M); :func:`darts_param_count` gives such counts in
closed form.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.spaces.darts import CONCAT, OPS, STEPS, DartsArch, DartsSpace

__all__ = [
    "AuxiliaryHeadCIFAR",
    "DartsCell",
    "DartsNetwork",
    "DilConv",
    "FactorizedReduce",
    "ReLUConvBN",
    "SepConv",
    "darts_flops",
    "darts_param_count",
    "drop_path",
]

_SPACE = DartsSpace()


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NasforgeError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_config(C: Any, layers: Any, num_classes: Any, stem_multiplier: Any, in_channels: Any = 3,
                  input_size: Any = 32) -> None:
    for name, v in (("C", C), ("layers", layers), ("num_classes", num_classes), ("stem_multiplier", stem_multiplier),
                    ("in_channels", in_channels), ("input_size", input_size)):
        _positive(name, v)
    if input_size % 4:
        raise NasforgeError(f"input_size must be divisible by 4 (two stride-2 reductions), got {input_size}")


def _reduction_layers(layers: int) -> tuple[int, int]:
    return layers // 3, 2 * layers // 3


# --- closed-form costs ------------------------------------------------------------------------
def _op_params(op: str, c: int, stride: int) -> int:
    """Parameters of one edge operation at ``c`` channels (BN: weight and bias)."""
    if op.startswith("sep_conv_"):
        k = int(op[-1])
        return 2 * (k * k * c + c * c + 2 * c)
    if op.startswith("dil_conv_"):
        k = int(op[-1])
        return k * k * c + c * c + 2 * c
    if op == "skip_connect" and stride == 2:
        return 2 * c * (c // 2) + 2 * c
    return 0  # pools, identity


def darts_param_count(arch: Any, C: int = 36, layers: int = 20, num_classes: int = 10,
                      stem_multiplier: int = 3, auxiliary: bool = False, in_channels: int = 3) -> int:
    """Parameters of :class:`DartsNetwork`, counted in closed form.

    Stem ``9 in_channels s + 2 s`` (``s = stem_multiplier * C``); per cell at width ``c`` with inputs of
    ``a`` and ``b`` channels, ``(a + b) c + 4 c`` for the two preprocessing blocks plus its edges
    (``sep_conv_kxk``: ``2 (k^2 c + c^2 + 2c)``, ``dil_conv_kxk``: ``k^2 c + c^2 + 2c``, a stride-2
    ``skip_connect``: ``c^2 + 2c``, others none); classifier ``4c num_classes + num_classes``. The
    auxiliary head (``128 a + 256 + 4 * 128 * 768 + 1536 + 768 num_classes + num_classes`` for
    an input of ``a`` channels) counts only when ``auxiliary`` is true.
    """
    arch = _SPACE.coerce(arch)
    _check_config(C, layers, num_classes, stem_multiplier, in_channels)
    c_stem = stem_multiplier * C
    total = in_channels * 9 * c_stem + 2 * c_stem
    c_pp, c_p, c_cur = c_stem, c_stem, C
    reduction_prev = False
    c_aux = c_p
    reductions = _reduction_layers(layers)
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            c_cur *= 2
        cell = arch.reduce if reduction else arch.normal
        if reduction_prev:
            total += 2 * c_pp * (c_cur // 2) + 2 * c_cur
        else:
            total += c_pp * c_cur + 2 * c_cur
        total += c_p * c_cur + 2 * c_cur
        for op, src in cell:
            total += _op_params(op, c_cur, 2 if reduction and src < 2 else 1)
        reduction_prev = reduction
        c_pp, c_p = c_p, len(CONCAT) * c_cur
        if i == reductions[1]:
            c_aux = c_p
    total += c_p * num_classes + num_classes
    if auxiliary:
        total += 128 * c_aux + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * num_classes + num_classes
    return total


def darts_flops(arch: Any, C: int = 36, layers: int = 20, num_classes: int = 10, stem_multiplier: int = 3,
                input_size: int = 32, in_channels: int = 3) -> int:
    """Multiply-adds of one forward pass on an ``in_channels x input_size x input_size`` image, counted with
    forward hooks: for each convolution ``out_h * out_w * out_channels * in_channels / groups *
    kernel area``, for the classifier ``in * out``. Pooling, BatchNorm, additions and the
    auxiliary head (inference) are not counted."""
    arch = _SPACE.coerce(arch)
    net = DartsNetwork(arch, C=C, layers=layers, num_classes=num_classes, stem_multiplier=stem_multiplier,
                       in_channels=in_channels, input_size=input_size)
    from nasforge.spaces.counting import count_flops

    return int(count_flops(net, (in_channels, input_size, input_size), "macs").total)


# --- operations -------------------------------------------------------------------------------
class ReLUConvBN(nn.Module):
    """ReLU, convolution without bias, BatchNorm (``affine=False``: without scale and shift, as in
    the DARTS search network)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class DilConv(nn.Module):
    """ReLU, dilated depthwise convolution, pointwise convolution, BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 affine: bool = True) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=c_in,
                      bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """Two stacked (ReLU, depthwise kxk, pointwise 1x1, BatchNorm) blocks; the first has the stride."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.BatchNorm2d(c_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride=1, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: ReLU, two stride-2 1x1 convolutions (the second
    shifted by one pixel) giving half the output channels each, concatenated, BatchNorm."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise NasforgeError(f"a factorized reduction needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def make_op(name: str, c: int, stride: int, affine: bool = True) -> nn.Module:
    """One edge operation at ``c`` channels (``affine=False``: BatchNorm without scale and shift,
    as in the DARTS search network)."""
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    if name == "sep_conv_3x3":
        return SepConv(c, c, 3, stride, 1, affine)
    if name == "sep_conv_5x5":
        return SepConv(c, c, 5, stride, 2, affine)
    if name == "dil_conv_3x3":
        return DilConv(c, c, 3, stride, 2, 2, affine)
    if name == "dil_conv_5x5":
        return DilConv(c, c, 5, stride, 4, 2, affine)
    raise NasforgeError(f"unknown DARTS operation {name!r}; allowed: {', '.join(OPS)}")


def drop_path(x: Tensor, drop_prob: float) -> Tensor:
    """Zero whole samples of ``x`` with probability ``drop_prob``; scale the others by ``1/(1-p)``."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


# --- blocks -----------------------------------------------------------------------------------
class DartsCell(nn.Module):
    """One cell: preprocess both inputs to ``c`` channels, four nodes of two summed edges each,
    output the concatenation of the four nodes (``4c`` channels)."""

    def __init__(self, edges: tuple[tuple[str, int], ...], c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0: nn.Module = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self._ops = nn.ModuleList(make_op(op, c, 2 if reduction and src < 2 else 1) for op, src in edges)
        self.indices: list[int] = [src for _op, src in edges]
        self.identity: list[bool] = [isinstance(m, nn.Identity) for m in self._ops]
        self.concat: list[int] = list(CONCAT)
        self.multiplier = len(CONCAT)

    def forward(self, s0: Tensor, s1: Tensor, drop_prob: float = 0.0) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        use_drop = self.training and drop_prob > 0.0
        for step in range(STEPS):
            total: Tensor | None = None
            for k in (2 * step, 2 * step + 1):
                h = self._ops[k](states[self.indices[k]])
                if use_drop and not self.identity[k]:
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            assert total is not None
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    """The auxiliary classifier of DARTS for an 8x8 feature map: ReLU, 5x5 average pooling (stride
    3), 1x1 conv to 128 + BN + ReLU, 2x2 conv to 768 + BN + ReLU, linear."""

    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


# --- network ----------------------------------------------------------------------------------
class DartsNetwork(nn.Module):
    """The DARTS CIFAR evaluation network for one architecture.

    ``forward`` returns the logits; in training mode with ``auxiliary=True`` it returns the pair
    ``(logits, auxiliary_logits)``. ``drop_path_prob`` may be changed between epochs (the DARTS
    schedule raises it linearly). ``in_channels`` and ``input_size`` (side of the square input,
    divisible by 4) describe the images, as for the other spaces' networks; the network itself
    adapts to any such side, except the auxiliary head, which needs 32x32 inputs (an 8x8 map after
    the two reductions).
    """

    def __init__(self, arch: Any, C: int = 36, layers: int = 20, num_classes: int = 10, auxiliary: bool = False,
                 drop_path_prob: float = 0.0, stem_multiplier: int = 3, in_channels: int = 3,
                 input_size: int = 32) -> None:
        super().__init__()
        arch = _SPACE.coerce(arch)
        _check_config(C, layers, num_classes, stem_multiplier, in_channels, input_size)
        if not isinstance(auxiliary, bool):
            raise NasforgeError(f"auxiliary must be true or false, got {auxiliary!r}")
        if isinstance(drop_path_prob, bool) or not isinstance(drop_path_prob, (int, float)) \
                or not 0.0 <= drop_path_prob < 1.0:
            raise NasforgeError(f"drop_path_prob must be a number in [0, 1), got {drop_path_prob!r}")
        reductions = _reduction_layers(layers)
        if auxiliary and reductions[0] == reductions[1]:
            raise NasforgeError(f"the auxiliary head needs two reduction cells, so layers >= 2; got layers={layers}")
        if auxiliary and input_size != 32:
            raise NasforgeError(f"the auxiliary head is made for 32x32 inputs (an 8x8 map); got input_size={input_size}")
        self.arch: DartsArch = arch
        self.C = C
        self.layers = layers
        self.num_classes = num_classes
        self.auxiliary = auxiliary
        self.drop_path_prob = float(drop_path_prob)
        self.in_channels = in_channels
        self.input_size = input_size
        self.aux_position = reductions[1]

        c_cur = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_cur, 3, padding=1, bias=False), nn.BatchNorm2d(c_cur))
        c_pp, c_p, c_cur = c_cur, c_cur, C
        cells: list[nn.Module] = []
        reduction_prev = False
        c_aux = c_p
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c_cur *= 2
            cell = DartsCell(arch.reduce if reduction else arch.normal, c_pp, c_p, c_cur, reduction, reduction_prev)
            cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_cur
            if i == self.aux_position:
                c_aux = c_p
        self.cells = nn.ModuleList(cells)
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(c_aux, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        logits_aux: Tensor | None = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_position and self.auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        out = self.global_pooling(s1)
        logits = self.classifier(torch.flatten(out, 1))
        if logits_aux is not None:
            return logits, logits_aux
        return logits

    def extra_repr(self) -> str:
        return (f"C={self.C}, layers={self.layers}, num_classes={self.num_classes}, auxiliary={self.auxiliary}, "
                f"drop_path_prob={self.drop_path_prob}")
