"""Group-equivariant convolutions with a symmetry group per layer (Maile et al., ICLR 2023,
"Equivariance-aware architectural optimization of neural networks").

Groups: the rotation subgroups of C4 acting on images, ``"C4"`` (rotations by 90°), ``"C2"``
(by 180°) and ``"C1"`` (none: a plain convolution). Every feature map has the same number of
*planes* ``W``; a ``Cn`` layer sees them as ``W / n`` channels of the regular representation of
``Cn`` (``n`` planes each) and ties its filters accordingly (``n`` times fewer parameters than a
plain convolution of ``W`` planes).

Layout. Planes are stored in one canonical order, that of C4: plane ``4c + r`` is channel ``c``
at rotation ``r`` (x 90°). A ``Cn`` layer reads channel ``c' = c * (4/n) + j``, group element
``s`` at plane ``4c + s * (4/n) + j`` (for C4 and C1 this is the identity; for C2 it swaps the
two middle bits), so the C2 view of a C4 feature map is the restriction of its representation,
and layers of any groups compose. Each layer stores only its free filters and expands them into
an ordinary convolution weight in the canonical order, so the forward pass is one ``conv2d``.

* :class:`GroupConv` is a lifting layer (``lifting=True``: the input is an image, trivial
  representation) or a regular-to-regular group convolution.
* :meth:`GroupConv.relax` is the *equivariance relaxation morphism*: the same layer for a
  subgroup ``H`` of its group, initialised so that it computes exactly the same function (its
  free filters are read off the expanded weight, which is ``H``-equivariant too).
* :class:`MixedGroupConv` is a ``[G]``-mixed layer: a softmax-weighted sum of one layer per
  group (for differentiable search over the group of each layer).
* :class:`GroupCNN` stacks layers of given groups: a lifting layer, group convolutions, a norm
  that commutes with any plane permutation, spatial mean and max over the four rotation planes of
  each channel (so a network of C4 layers is invariant to 90° rotations), a linear classifier.
* :func:`equivariant_space` is a :class:`~nasforge.spaces.choice.ChoiceSpace` of the group per
  layer whose builder is :class:`GroupCNN`, so every strategy and estimator works on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nasforge.errors import NasforgeError, check_int

#: the groups a layer may have, largest first, and their orders
GROUPS: dict[str, int] = {"C4": 4, "C2": 2, "C1": 1}


def check_group(group: str) -> int:
    if group not in GROUPS:
        raise NasforgeError(f"unknown symmetry group {group!r}; allowed: {', '.join(GROUPS)}")
    return GROUPS[group]


def is_subgroup(h: str, g: str) -> bool:
    """Whether group ``h`` is a subgroup of ``g`` (all are subgroups of C4, nested)."""
    return check_group(g) % check_group(h) == 0


def plane_index(n: int, planes: int) -> list[int]:
    """Canonical plane of each plane of a ``Cn`` layer's own order ``(channel, group element)``."""
    step = 4 // n
    out = []
    for cp in range(planes // n):
        c, j = divmod(cp, step)
        for s in range(n):
            out.append(4 * c + s * step + j)
    return out


def build_group_cnn(config: dict[str, Any], num_classes: int = 10, in_channels: int = 1, planes: int = 32,
                    kernel_size: int = 3, pool_after: Sequence[int] = (1,), **_: Any) -> Any:
    """The :class:`GroupCNN` of a configuration ``{"layer0": "C4", "layer1": "C2", ...}``."""
    groups = [config[k] for k in sorted(config, key=lambda k: int(k[5:]))]
    from nasforge.spaces.equivariant_net import GroupCNN

    return GroupCNN(groups, planes=planes, num_classes=num_classes, in_channels=in_channels,
                        kernel_size=kernel_size, pool_after=pool_after)


def equivariant_space(layers: int = 4, groups: Sequence[str] = tuple(GROUPS)) -> Any:
    """The space of one symmetry group per layer (``layer0`` .. ``layer{layers-1}``)."""
    from nasforge.spaces.choice import ChoiceSpace

    layers = check_int(layers, "layers", 1)
    for g in groups:
        check_group(g)
    return ChoiceSpace({f"layer{i}": list(groups) for i in range(layers)}, builder=build_group_cnn,
                       name="equivariant")


__all__ = ["GROUPS", "check_group", "is_subgroup", "plane_index", "build_group_cnn",
           "equivariant_space"]
