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
from nasforge.spaces.equivariant import GROUPS, check_group, is_subgroup, plane_index


class GroupConv(nn.Module):
    """A ``group``-equivariant 2-D convolution between feature maps of ``planes_in`` and
    ``planes_out`` planes (a lifting layer from ``planes_in`` image channels when ``lifting``)."""

    def __init__(self, group: str, planes_in: int, planes_out: int, kernel_size: int = 3,
                 lifting: bool = False, bias: bool = True) -> None:
        super().__init__()
        n = check_group(group)
        if planes_out % 4 or (not lifting and planes_in % 4):
            raise NasforgeError(f"planes must be multiples of 4 (the order of C4), got {planes_in} -> {planes_out}")
        self.group, self.n, self.lifting = group, n, lifting
        self.planes_in, self.planes_out, self.k = planes_in, planes_out, kernel_size
        c_out = planes_out // n
        shape = (c_out, planes_in) if lifting else (c_out, planes_in // n, n)
        fan_in = planes_in * kernel_size ** 2
        self.weight = nn.Parameter(torch.randn(*shape, kernel_size, kernel_size) * math.sqrt(2.0 / fan_in))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.register_buffer("_out_perm", torch.tensor(plane_index(n, planes_out)), persistent=False)
        self.register_buffer("_in_perm", torch.tensor(plane_index(n, planes_in) if not lifting
                                                      else list(range(planes_in))), persistent=False)

    def full_weight(self) -> torch.Tensor:
        """The ordinary convolution weight (planes_out, planes_in, k, k), canonical plane order."""
        n, step = self.n, 4 // self.n
        rows = []
        for s in range(n):  # output group element s: the filters rotated by s generator steps
            w = self.weight if self.lifting else torch.roll(self.weight, shifts=s, dims=2)
            rows.append(torch.rot90(w, k=s * step, dims=(-2, -1)))
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
        new = GroupConv(group, self.planes_in, self.planes_out, self.k, self.lifting, self.bias is not None)
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
        return f"{self.group}, {kind}, planes {self.planes_in}->{self.planes_out}, k={self.k}"

class MixedGroupConv(nn.Module):
    """A ``[G]``-mixed layer: ``sum_g softmax(alpha)_g * conv_g(x)`` over ``groups``."""

    def __init__(self, groups: Sequence[str], planes_in: int, planes_out: int, kernel_size: int = 3,
                 lifting: bool = False) -> None:
        super().__init__()
        self.groups = tuple(groups)
        self.convs = nn.ModuleList(GroupConv(g, planes_in, planes_out, kernel_size, lifting) for g in self.groups)
        self.alpha = nn.Parameter(torch.zeros(len(self.groups)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.alpha, 0)
        return sum(wi * conv(x) for wi, conv in zip(w, self.convs))

    def chosen(self) -> str:
        return self.groups[int(torch.argmax(self.alpha))]

class GroupCNN(nn.Module):
    """Layers of the given groups (the first lifts the image), each followed by a plane-order
    free normalisation and ReLU; spatial mean, max over each channel's 4 rotation planes, linear."""

    def __init__(self, groups: Sequence[str], planes: int = 16, num_classes: int = 10, in_channels: int = 1,
                 kernel_size: int = 3, mixed: bool = False, pool_after: Sequence[int] = (1,)) -> None:
        super().__init__()
        self.pool_after = tuple(int(i) for i in pool_after)
        if not groups:
            raise NasforgeError("a group CNN needs at least one layer")
        planes = check_int(planes, "planes", 4)
        if planes % 4:
            raise NasforgeError(f"bad planes {planes}: must be a multiple of 4 (the order of C4)")
        layers = []
        for i, g in enumerate(groups):
            p_in = in_channels if i == 0 else planes
            if mixed:
                layers.append(MixedGroupConv(tuple(GROUPS), p_in, planes, kernel_size, lifting=i == 0))
            else:
                layers.append(GroupConv(g, p_in, planes, kernel_size, lifting=i == 0))
        self.layers = nn.ModuleList(layers)
        self.planes = planes
        self.head = nn.Linear(planes // 4, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = F.relu(F.group_norm(layer(x), 1))
            if i in self.pool_after and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0:
                x = F.max_pool2d(x, 2)  # on an even grid, 2x2 pooling commutes with 90-degree turns
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x).mean(dim=(2, 3))  # batch, planes
        f = f.reshape(len(f), self.planes // 4, 4).amax(dim=2)  # max over the 4 rotations of each channel
        return self.head(f)

    def relax(self, index: int, group: str) -> GroupCNN:
        """A copy with layer ``index`` relaxed to ``group`` (the same function)."""
        new = copy.deepcopy(self)
        new.layers[index] = self.layers[index].relax(group)
        return new

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(getattr(layer, "group", "mixed") for layer in self.layers)


__all__ = ["GroupConv", "MixedGroupConv", "GroupCNN"]
