"""The NAS-Bench-Macro supernet: every choice block of every searchable layer, weights shared.

Layout (:data:`LAYOUT`): the 8 searchable layers, each choosing ``identity``, ``mb3_k3`` or
``mb6_k5`` (the indices of :class:`~nasforge.spaces.macro.MacroArch`); every combination is an
architecture (6,561).

The module is :meth:`~nasforge.spaces.macro.MacroSpace.build`'s network with each searchable layer
replaced by a :class:`ChoiceLayer` holding the three candidates (the ``identity`` candidate is a
strided 1x1 convolution with BatchNorm where the layer changes resolution or width, as in the
benchmark): ``stem``, ``layers.<l>.candidates.<k>``, ``head``, ``classifier``. A path therefore
computes exactly the stand-alone network with the same weights, and :meth:`MacroSupernet.extract`
hands them over. ``stem_channels`` and ``head_channels`` (32 and 1,280 in the benchmark) shrink the
network for CPU-scale runs.

Forward: ``model(x, arch)`` runs one candidate per layer; ``model(x, weights=w)`` with ``w`` of shape
(8, 3) outputs ``sum_k w[l, k] * candidate_k(input)`` at every layer (single-path one-shot methods
over MobileNet-like spaces use exactly this, e.g. with Gumbel-softmax samples of ``w``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.spaces.macro import _BLOCKS, HEAD_CHANNELS, LAYERS, OPS, STEM_CHANNELS, MacroArch, MacroSpace, layer_plan
from nasforge.spaces.mbconv import MBConv, conv_bn
from nasforge.spaces.supernet import Supernet, SupernetLayout

__all__ = ["MacroLayout", "MacroSupernet", "ChoiceLayer", "LAYOUT"]


class MacroLayout(SupernetLayout):
    """NAS-Bench-Macro as decision points: 8 layers x {identity, mb3_k3, mb6_k5}."""

    cpu_net = {"stem_channels": 8, "head_channels": 64}
    net_keys = ("stem_channels", "head_channels")

    def __init__(self) -> None:
        super().__init__(MacroSpace(), [f"layer {i}" for i in range(LAYERS)], [OPS] * LAYERS)

    def indices(self, arch: Any) -> tuple[int, ...]:
        return tuple(int(k) for k in self.space.coerce(arch))

    def arch(self, idx: Sequence[int]) -> MacroArch:
        return self.space.coerce(tuple(int(k) for k in idx))

    def build(self, allowed: Any = None, **net: Any) -> MacroSupernet:
        return MacroSupernet(allowed=allowed, **net)


#: the NAS-Bench-Macro supernet layout (one shared instance)
LAYOUT = MacroLayout()


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NasforgeError(f"{name} must be a positive integer, got {value!r}")
    return value


class ChoiceLayer(nn.Module):
    """One searchable layer with its three candidates (``candidates.<k>``)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        ident: nn.Module = conv_bn(cin, cout, 1, stride=stride) if (stride != 1 or cin != cout) else nn.Identity()
        blocks = [MBConv(cin, cout, _BLOCKS[k][1], _BLOCKS[k][0], stride=stride, act="relu") for k in (1, 2)]
        self.candidates = nn.ModuleList([ident, *blocks])

    def forward(self, x: Tensor, k: int | None = None, weights: Tensor | None = None) -> Tensor:
        """Candidate ``k``, or the mixture ``sum_k weights[k] * candidate_k(x)``."""
        if weights is None:
            assert k is not None
            return self.candidates[k](x)
        out = weights[0] * self.candidates[0](x)
        for j in range(1, len(self.candidates)):
            out = out + weights[j] * self.candidates[j](x)
        return out


class MacroSupernet(Supernet):
    """The NAS-Bench-Macro supernet (see the module docstring); network settings as for
    :meth:`~nasforge.spaces.macro.MacroSpace.build`. ``allowed``: an (8, 3) mask or 8 lists of
    operation names."""

    layout = LAYOUT

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 32,
                 stem_channels: int = STEM_CHANNELS, head_channels: int = HEAD_CHANNELS, allowed: Any = None) -> None:
        for name, v in (("num_classes", num_classes), ("in_channels", in_channels), ("input_size", input_size),
                        ("stem_channels", stem_channels), ("head_channels", head_channels)):
            _positive(name, v)
        super().__init__(allowed)
        self.num_classes, self.in_channels, self.input_size = num_classes, in_channels, input_size
        self.stem_channels, self.head_channels = stem_channels, head_channels
        plan = layer_plan(stem_channels)
        self.stem = conv_bn(in_channels, stem_channels, 3, act="relu")
        self.layers = nn.ModuleList([ChoiceLayer(cin, cout, stride) for cin, cout, stride in plan])
        self.head = conv_bn(plan[-1][1], head_channels, 1, act="relu")
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head_channels, num_classes)

    def net_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "in_channels": self.in_channels, "input_size": self.input_size,
                "stem_channels": self.stem_channels, "head_channels": self.head_channels}

    def _head(self, out: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.global_pooling(self.head(out)), 1))

    def forward_path(self, x: Tensor, idx: tuple[int, ...]) -> Tensor:
        out = self.stem(x)
        for layer, k in zip(self.layers, idx):
            out = layer(out, k)
        return self._head(out)

    def forward_weights(self, x: Tensor, weights: Tensor) -> Tensor:
        out = self.stem(x)
        for layer, w in zip(self.layers, weights[0]):
            out = layer(out, weights=w)
        return self._head(out)

    def candidate_modules(self, edge: int, k: int) -> list[nn.Module]:
        return [self.layers[edge].candidates[k]]

    def blocks(self) -> list[nn.Module]:
        """Every searchable layer."""
        return list(self.layers)

    def path_state_dict(self, arch: Any) -> dict[str, Tensor]:
        """The state dict of :meth:`MacroSpace.build`'s ``nn.Sequential`` for ``arch``: the stem is
        module 0, layer ``l`` module ``l + 1``, the head convolution module 9, the classifier 12."""
        idx = self.indices(arch)
        rename = {"stem": "0", "head": str(LAYERS + 1), "classifier": str(LAYERS + 4)}
        out: dict[str, Tensor] = {}
        for key, value in self.state_dict().items():
            parts = key.split(".")
            if parts[0] == "layers":
                layer, k = int(parts[1]), int(parts[3])
                if k != idx[layer]:
                    continue
                key = ".".join([str(layer + 1)] + parts[4:])
            else:
                key = ".".join([rename[parts[0]]] + parts[1:])
            out[key] = value
        return out

    def extract(self, arch: Any) -> nn.Module:
        """:meth:`MacroSpace.build`'s network for ``arch`` holding copies of the inherited weights."""
        net = self.space.build(self.to_arch(self.indices(arch)), num_classes=self.num_classes,
                               in_channels=self.in_channels, input_size=self.input_size,
                               stem_channels=self.stem_channels, head_channels=self.head_channels)
        net.load_state_dict({k: v.clone() for k, v in self.path_state_dict(arch).items()}, strict=True)
        net.train(self.training)
        return net
