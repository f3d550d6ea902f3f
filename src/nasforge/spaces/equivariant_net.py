"""The torch modules of :mod:`nasforge.spaces.equivariant`: group convolutions per layer, the
equivariance relaxation morphism, [G]-mixed layers and the group CNN."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.errors import NasforgeError, check_int
from nasforge.spaces.equivariant import (ROTATION_GROUPS, Element, base_of, check_base, check_group,
                                         elements, filter_index, is_subgroup, plane_index)


def transform(x: torch.Tensor, element: Element) -> torch.Tensor:
    """``x`` (..., H, W) flipped left-right if ``element[0]``, then turned ``element[1]`` x 90°."""
    if element[0]:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k=element[1], dims=(-2, -1)) if element[1] else x


class GroupConv(nn.Module):
    """A ``group``-equivariant 2-D convolution between feature maps of ``planes_in`` and
    ``planes_out`` planes (a lifting layer from ``planes_in`` image channels when ``lifting``),
    planes laid out in the order of ``base`` (C4, or D4 for a flip group; default: the smallest
    that holds ``group``)."""

    def __init__(self, group: str, planes_in: int, planes_out: int, kernel_size: int = 3,
                 lifting: bool = False, bias: bool = True, base: str | None = None) -> None:
        super().__init__()
        n = check_group(group)
        base = base_of([group]) if base is None else base
        size = check_base(base, (group,))
        if planes_out % size or (not lifting and planes_in % size):
            raise NasforgeError(f"planes must be multiples of {size} (the order of {base}), "
                                f"got {planes_in} -> {planes_out}")
        self.group, self.n, self.lifting, self.base = group, n, lifting, base
        self.planes_in, self.planes_out, self.k = planes_in, planes_out, kernel_size
        c_out = planes_out // n
        shape = (c_out, planes_in) if lifting else (c_out, planes_in // n, n)
        fan_in = planes_in * kernel_size ** 2
        self.weight = nn.Parameter(torch.randn(*shape, kernel_size, kernel_size) * math.sqrt(2.0 / fan_in))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self._elements = elements(group)
        self.register_buffer("_out_perm", torch.tensor(plane_index(group, planes_out, base)), persistent=False)
        self.register_buffer("_in_perm", torch.tensor(plane_index(group, planes_in, base) if not lifting
                                                      else list(range(planes_in))), persistent=False)
        self.register_buffer("_filters", torch.tensor(filter_index(group)), persistent=False)

    def full_weight(self) -> torch.Tensor:
        """The ordinary convolution weight (planes_out, planes_in, k, k), canonical plane order."""
        rows = []
        for a, element in enumerate(self._elements):  # output element a: filters h_a^-1 h_b, moved by h_a
            w = self.weight if self.lifting else self.weight[:, :, self._filters[a]]
            rows.append(transform(w, element))
        w = torch.stack(rows, dim=1)  # c_out, n, (planes_in | c_in, n), k, k
        w = w.reshape(self.planes_out, self.planes_in, self.k, self.k)  # the layer's own order
        full = torch.empty_like(w)
        full[self._out_perm[:, None], self._in_perm[None, :]] = w
        return full

    def full_bias(self) -> torch.Tensor | None:
        if self.bias is None:
            return None
        b = self.bias.repeat_interleave(self.n)
        full = torch.empty_like(b)
        full[self._out_perm] = b
        return full

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.full_weight(), self.full_bias(), padding=self.k // 2)

    def relax(self, group: str) -> GroupConv:
        """The same function as a ``group``-equivariant layer (``group`` a subgroup of this one's)."""
        if not is_subgroup(group, self.group):
            raise NasforgeError(f"cannot relax a {self.group} layer to {group}: {group} is not a subgroup of "
                                f"{self.group} (relaxation only removes symmetry)")
        new = GroupConv(group, self.planes_in, self.planes_out, self.k, self.lifting, self.bias is not None,
                        base=self.base).to(device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            full = self.full_weight()
            rows = full[new._out_perm]  # the new layer's own order
            cols = rows[:, new._in_perm]
            m = new.n
            w = cols.reshape(self.planes_out // m, m, self.planes_in, self.k, self.k)[:, 0]
            if not self.lifting:
                w = w.reshape(self.planes_out // m, self.planes_in // m, m, self.k, self.k)
            new.weight.copy_(w)
            if self.bias is not None:
                new.bias.copy_(self.full_bias()[new._out_perm].reshape(-1, m)[:, 0])
        return new

    def extra_repr(self) -> str:
        kind = "lifting" if self.lifting else "group"
        return f"{self.group} (base {self.base}), {kind}, planes {self.planes_in}->{self.planes_out}, k={self.k}"

class MixedGroupConv(nn.Module):
    """A ``[G]``-mixed layer: ``sum_g softmax(alpha)_g * conv_g(x)`` over ``groups``."""

    def __init__(self, groups: Sequence[str], planes_in: int, planes_out: int, kernel_size: int = 3,
                 lifting: bool = False, base: str | None = None) -> None:
        super().__init__()
        self.groups = tuple(groups)
        base = base_of(self.groups) if base is None else base
        self.convs = nn.ModuleList(GroupConv(g, planes_in, planes_out, kernel_size, lifting, base=base)
                                   for g in self.groups)
        self.alpha = nn.Parameter(torch.zeros(len(self.groups)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.alpha, 0)
        return sum(wi * conv(x) for wi, conv in zip(w, self.convs))

    def chosen(self) -> str:
        return self.groups[int(torch.argmax(self.alpha))]

class GroupCNN(nn.Module):
    """Layers of the given groups (the first lifts the image), each followed by a plane-order
    free normalisation and ReLU; spatial mean, max over the ``|base|`` planes of each channel
    (4 rotations, or 8 rotations and flips), linear. ``mixed``: every layer is a [G]-mixed layer
    over ``mixture`` (default C4, C2, C1) and ``groups`` only gives the number of layers. ``base``:
    the plane layout, by default the smallest (C4 or D4) that holds every group used."""

    def __init__(self, groups: Sequence[str], planes: int = 16, num_classes: int = 10, in_channels: int = 1,
                 kernel_size: int = 3, mixed: bool = False, pool_after: Sequence[int] = (1,),
                 mixture: Sequence[str] | None = None, base: str | None = None) -> None:
        super().__init__()
        self.pool_after = tuple(int(i) for i in pool_after)
        if not groups:
            raise NasforgeError("a group CNN needs at least one layer")
        mixture = tuple(ROTATION_GROUPS if mixture is None else mixture)
        for g in (*mixture, *groups) if mixed else groups:
            check_group(g)
        used = mixture if mixed else tuple(groups)
        base = base_of(used) if base is None else base
        size = check_base(base, used)
        planes = check_int(planes, "planes", size)
        if planes % size:
            raise NasforgeError(f"bad planes {planes}: must be a multiple of {size} (the order of {base})")
        layers = []
        for i, g in enumerate(groups):
            p_in = in_channels if i == 0 else planes
            if mixed:
                layers.append(MixedGroupConv(mixture, p_in, planes, kernel_size, lifting=i == 0, base=base))
            else:
                layers.append(GroupConv(g, p_in, planes, kernel_size, lifting=i == 0, base=base))
        self.layers = nn.ModuleList(layers)
        self.planes, self.base, self.block = planes, base, size
        self.head = nn.Linear(planes // size, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (batch, planes, h, w), planes in the base order."""
        for i, layer in enumerate(self.layers):
            x = F.relu(F.group_norm(layer(x), 1))
            if i in self.pool_after and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0:
                x = F.max_pool2d(x, 2)  # on an even grid, 2x2 pooling commutes with turns and flips
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x).mean(dim=(2, 3))  # batch, planes
        f = f.reshape(len(f), self.planes // self.block, self.block).amax(dim=2)  # max over each channel's block
        return self.head(f)

    def relax(self, index: int, group: str) -> GroupCNN:
        """A copy with layer ``index`` relaxed to ``group`` (the same function)."""
        new = copy.deepcopy(self)
        new.layers[index] = self.layers[index].relax(group)
        return new

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(getattr(layer, "group", "mixed") for layer in self.layers)


__all__ = ["transform", "GroupConv", "MixedGroupConv", "GroupCNN"]
