"""Mobile inverted-bottleneck blocks shared by the MobileNet-style spaces (``macro``, ``mbv3``).

The block is the MobileNetV2 inverted residual (Sandler et al., CVPR 2018): a 1x1 expansion to
``in_channels * expansion`` channels, a ``kernel`` x ``kernel`` depthwise convolution (carrying the
stride), an optional squeeze-and-excitation (MobileNetV3, Howard et al., ICCV 2019) and a linear 1x1
projection; a residual connection joins input and output when their shapes agree. Every convolution
is bias-free and followed by batch normalisation.

Closed forms for the parameter count and for the multiply-adds of a block sit next to the modules
so that spaces can price an architecture without building it. The multiply-add convention used
everywhere in these spaces: the weights of ``Conv2d`` and ``Linear`` layers only (``in * out * k * k
/ groups`` per output position for a convolution, ``in * out`` for a linear layer); batch
normalisation, activations, pooling, the excitation's channel scaling, residual additions and
biases are not counted. It is the convention of the NAS-Bench-Macro code base's counter and of the
"FLOPs" columns of most mobile NAS papers (which report multiply-adds).
"""

from __future__ import annotations


import torch
from torch import nn

from nasforge.errors import NasforgeError

#: activation names accepted by the blocks
ACTIVATIONS: tuple[str, ...] = ("relu", "hswish")


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), rounded up
    one more step when plain rounding would lose more than 10%; the MobileNet channel rule."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def se_channels(channels: int, ratio: float = 0.25) -> int:
    """Width of the squeeze-and-excitation bottleneck on ``channels`` channels (MobileNetV3 rule:
    a quarter of the expanded width, made divisible by 8)."""
    return make_divisible(channels * ratio, 8)


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Spatial size after a convolution padded by ``kernel // 2``."""
    pad = kernel // 2
    return (size + 2 * pad - kernel) // stride + 1


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    raise NasforgeError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}")


def conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
            act: str | None = None) -> nn.Sequential:
    """Convolution (padding ``kernel // 2``, no bias), batch norm, then ``act`` if given."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act is not None:
        layers.append(activation(act))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation as MobileNetV3 places it after the depthwise convolution: global
    average pool, 1x1 reduction (with bias) and ReLU, 1x1 expansion (with bias), hard-sigmoid
    gate that scales the channels."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise ``kernel``, optional SE, 1x1 project.

    With ``expansion == 1`` the expansion convolution is left out. The residual connection is used
    when ``stride == 1`` and ``in_channels == out_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, expansion: int, stride: int = 1,
                 se: bool = False, act: str = "relu") -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise NasforgeError(f"MBConv kernel must be odd, got {kernel!r}")
        mid = in_channels * expansion
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.expand = conv_bn(in_channels, mid, 1, act=act) if expansion != 1 else nn.Identity()
        self.depthwise = conv_bn(mid, mid, kernel, stride=stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid, se_channels(mid)) if se else nn.Identity()
        self.project = conv_bn(mid, out_channels, 1)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return y + x if self.residual else y


class DepthwiseSeparable(nn.Module):
    """Depthwise ``kernel`` convolution, BN, activation, then a linear 1x1 projection and BN
    (MobileNetV1 block; the first block of MobileNetV3-style networks)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 act: str = "relu") -> None:
        super().__init__()
        self.depthwise = conv_bn(in_channels, in_channels, kernel, stride=stride, groups=in_channels, act=act)
        self.project = conv_bn(in_channels, out_channels, 1)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(x))
        return y + x if self.residual else y


class MobileNetV3Like(nn.Module):
    """A MobileNetV3-style network (the HardCoRe-NAS / timm ``MobileNetV3`` layout).

    ``stem``: 3x3 stride-2 convolution to ``stem_channels`` (BN, h-swish) and a depthwise-separable
    block to ``first_channels`` (ReLU). ``blocks``: one list per stage of ``(in, out, kernel,
    expansion, stride, se, act)`` tuples, each an :class:`MBConv`. ``head``: 1x1 convolution to
    ``head_channels`` (BN, h-swish), global average pooling, 1x1 convolution with bias to
    ``feature_channels`` and h-swish (no BN), then the linear classifier.
    """

    def __init__(self, blocks: list[list[tuple[int, int, int, int, int, bool, str]]], num_classes: int = 1000,
                 in_channels: int = 3, stem_channels: int = 32, first_channels: int = 16,
                 head_channels: int = 960, feature_channels: int = 1280) -> None:
        super().__init__()
        self.stem = mbv3_stem(in_channels, stem_channels, first_channels)
        self.stages = nn.Sequential(*[
            nn.Sequential(*[MBConv(cin, cout, k, e, stride=s, se=se, act=act) for cin, cout, k, e, s, se, act in stage])
            for stage in blocks
        ])
        last = blocks[-1][-1][1] if blocks and blocks[-1] else first_channels
        self.head = mbv3_head(last, head_channels, feature_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def mbv3_stem(in_channels: int = 3, stem_channels: int = 32, first_channels: int = 16) -> nn.Sequential:
    """The fixed start of :class:`MobileNetV3Like`: strided 3x3 convolution and a separable block."""
    return nn.Sequential(conv_bn(in_channels, stem_channels, 3, stride=2, act="hswish"),
                         DepthwiseSeparable(stem_channels, first_channels, 3, act="relu"))


def mbv3_head(in_channels: int, head_channels: int = 960, feature_channels: int = 1280,
              num_classes: int = 1000) -> nn.Sequential:
    """The fixed end of :class:`MobileNetV3Like`, from the last stage's output to the logits."""
    return nn.Sequential(
        conv_bn(in_channels, head_channels, 1, act="hswish"),
        nn.AdaptiveAvgPool2d(1),
        nn.Conv2d(head_channels, feature_channels, 1, bias=True),
        nn.Hardswish(inplace=True),
        nn.Flatten(),
        nn.Linear(feature_channels, num_classes),
    )


# --- closed forms -------------------------------------------------------------------------------
def conv_bn_params(cin: int, cout: int, kernel: int = 1, groups: int = 1) -> int:
    """Parameters of :func:`conv_bn`: the weight and the BN scale and shift."""
    return cin // groups * cout * kernel * kernel + 2 * cout


def conv_macs(cin: int, cout: int, kernel: int, out_size: int, groups: int = 1) -> int:
    """Multiply-adds of a convolution producing an ``out_size`` x ``out_size`` map."""
    return cin // groups * cout * kernel * kernel * out_size * out_size


def mbconv_params(cin: int, cout: int, kernel: int, expansion: int, se: bool = False) -> int:
    """Parameters of :class:`MBConv` (BN scale and shift included, running statistics not)."""
    mid = cin * expansion
    n = conv_bn_params(cin, mid) if expansion != 1 else 0
    n += conv_bn_params(mid, mid, kernel, groups=mid) + conv_bn_params(mid, cout)
    if se:
        r = se_channels(mid)
        n += mid * r + r + r * mid + mid
    return n


def mbconv_macs(cin: int, cout: int, kernel: int, expansion: int, stride: int, size: int,
                se: bool = False) -> int:
    """Multiply-adds of :class:`MBConv` on a ``size`` x ``size`` input (module docstring's convention;
    the SE convolutions count once, on the pooled 1x1 map)."""
    mid = cin * expansion
    out = conv_out(size, kernel, stride)
    n = conv_macs(cin, mid, 1, size) if expansion != 1 else 0
    n += conv_macs(mid, mid, kernel, out, groups=mid) + conv_macs(mid, cout, 1, out)
    if se:
        r = se_channels(mid)
        n += 2 * mid * r
    return n


def count_macs(model: nn.Module, input_size: int, in_channels: int = 3) -> int:
    """Multiply-adds of ``model`` for one ``input_size`` x ``input_size`` image, counted by forward
    hooks on every ``Conv2d`` and ``Linear`` (the ``"macs"`` convention of
    :mod:`nasforge.spaces.counting`). Used to check the closed forms."""
    from nasforge.spaces.counting import count_flops

    return int(count_flops(model, (in_channels, input_size, input_size), "macs").total)


__all__ = [
    "ACTIVATIONS", "DepthwiseSeparable", "MBConv", "MobileNetV3Like", "SqueezeExcite", "conv_bn", "conv_bn_params",
    "conv_macs", "conv_out", "count_macs", "make_divisible", "mbconv_macs", "mbconv_params", "mbv3_head", "mbv3_stem",
    "se_channels",
]
