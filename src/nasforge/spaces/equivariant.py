"""Group-equivariant convolutions with a symmetry group per layer (Maile et al., ICLR 2023,
"Equivariance-aware architectural optimization of neural networks").

Groups: the subgroups of D4 (the eight symmetries of a square: four rotations by 90°, each with
or without a mirror flip) acting on images: ``"D4"`` (rotations and flips), ``"C4"`` (rotations
by 90°), ``"D2"`` (180° turns and the left-right flip), ``"C2"`` (180° turns), ``"D1"`` (the
left-right flip) and ``"C1"`` (none: a plain convolution). Every feature map has the same number
of *planes* ``W``; a layer of group ``H`` sees them as ``W / |H|`` channels of the regular
representation of ``H`` (``|H|`` planes each) and ties its filters accordingly (``|H|`` times
fewer parameters than a plain convolution of ``W`` planes).

Layout. Planes are stored in the order of one *base* group ``B`` (``C4`` for networks of rotation
groups only, ``D4`` as soon as a layer has a flip): plane ``|B| c + i`` is channel ``c`` at base
element ``i``. An element ``(f, r)`` acts on an image as a left-right flip if ``f`` followed by
``r`` quarter turns; base elements are indexed ``4 f + r``. A layer of a subgroup ``H`` splits
each channel of ``B`` into the right cosets ``H k`` (``|B| / |H|`` of them, in order of their
first element): its channel ``c' = c |B|/|H| + j`` holds, as element ``h`` of ``H``, the plane of
``h k_j``, so the ``H`` view of a ``B`` feature map is the restriction of its representation and
layers of any groups compose (for ``C2`` in a ``C4`` base this swaps the two middle bits of the
plane index). Each layer stores only its free filters and expands them into an ordinary
convolution weight in the canonical order, so the forward pass is one ``conv2d``.

* :class:`~nasforge.spaces.equivariant_net.GroupConv` is a lifting layer (``lifting=True``: the
  input is an image, trivial representation) or a regular-to-regular group convolution.
* :meth:`GroupConv.relax` is the *equivariance relaxation morphism*: the same layer for a
  subgroup ``K`` of its group, initialised so that it computes exactly the same function (its
  free filters are read off the expanded weight, which is ``K``-equivariant too).
* :class:`MixedGroupConv` is a ``[G]``-mixed layer: a softmax-weighted sum of one layer per
  group (for differentiable search over the group of each layer).
* :class:`GroupCNN` stacks layers of given groups: a lifting layer, group convolutions, a norm
  that commutes with any plane permutation, spatial mean and max over the ``|B|`` planes of each
  channel (so a network of D4 layers is invariant to turns and flips), a linear classifier.
* :func:`equivariant_space` is a :class:`~nasforge.spaces.choice.ChoiceSpace` of the group per
  layer whose builder is :class:`GroupCNN`, so every strategy and estimator works on it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from nasforge.errors import NasforgeError, check_int
from nasforge.spaces.choice import ChoiceSpace

Element = tuple[int, int]  # (flip, quarter turns): flip left-right if flip, then turn r x 90°

#: the elements of each group, identity first; base elements (of D4) are indexed 4 * flip + turns
_ELEMENTS: dict[str, tuple[Element, ...]] = {
    "D4": tuple((f, r) for f in (0, 1) for r in range(4)),
    "C4": tuple((0, r) for r in range(4)),
    "D2": ((0, 0), (0, 2), (1, 0), (1, 2)),
    "C2": ((0, 0), (0, 2)),
    "D1": ((0, 0), (1, 0)),
    "C1": ((0, 0),),
}
#: the groups a layer may have, largest first, and their orders
GROUPS: dict[str, int] = {g: len(e) for g, e in _ELEMENTS.items()}
#: the rotation groups (a network of these alone keeps the C4 plane layout)
ROTATION_GROUPS: tuple[str, ...] = ("C4", "C2", "C1")
#: rotations and flips
DIHEDRAL_GROUPS: tuple[str, ...] = tuple(_ELEMENTS)
BASES: tuple[str, ...] = ("C4", "D4")


def check_group(group: str) -> int:
    """The order of ``group``; a clear error for an unknown name."""
    if group not in GROUPS:
        raise NasforgeError(f"unknown symmetry group {group!r}; allowed: {', '.join(GROUPS)}")
    return GROUPS[group]


def parse_groups(text: str | Sequence[str]) -> tuple[str, ...]:
    """Groups from ``"D4,C4,C1"`` (or a sequence), checked, without repeats, largest first."""
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else [str(t) for t in text]
    items = [t.upper() for t in items if t]
    given = text if isinstance(text, str) else ",".join(map(str, text))
    if not items:
        raise NasforgeError(f"bad groups {given!r}: no symmetry group given; allowed: {', '.join(GROUPS)}")
    for g in items:
        if g not in GROUPS:
            raise NasforgeError(f"bad groups {given!r}: unknown symmetry group {g!r}; allowed: {', '.join(GROUPS)}")
    return tuple(g for g in GROUPS if g in items)


def elements(group: str) -> tuple[Element, ...]:
    """The elements of ``group``, identity first."""
    check_group(group)
    return _ELEMENTS[group]


def compose(a: Element, b: Element) -> Element:
    """The element ``a b`` (``b`` acts first): R^ra F^fa R^rb F^fb = R^(ra +- rb) F^(fa + fb)."""
    return (a[0] ^ b[0], (a[1] + (-b[1] if a[0] else b[1])) % 4)


def inverse(a: Element) -> Element:
    """The inverse element (a flip composed with turns is its own inverse)."""
    return a if a[0] else (0, (-a[1]) % 4)


def is_subgroup(h: str, g: str) -> bool:
    """Whether group ``h`` is a subgroup of ``g``."""
    check_group(h), check_group(g)
    return set(_ELEMENTS[h]) <= set(_ELEMENTS[g])


def base_of(groups: Sequence[str]) -> str:
    """The smallest base (``C4`` or ``D4``) that holds every group of ``groups``."""
    return "D4" if any(not is_subgroup(g, "C4") for g in groups) else "C4"


def check_base(base: str, groups: Sequence[str] = ()) -> int:
    """The order of ``base``; errors for a base that is not C4/D4 or does not hold ``groups``."""
    if base not in BASES:
        raise NasforgeError(f"unknown base group {base!r}; allowed: {', '.join(BASES)}")
    for g in groups:
        if not is_subgroup(g, base):
            raise NasforgeError(f"group {g!r} is not a subgroup of the base group {base}: use base D4")
    return GROUPS[base]


def maximal_subgroups(group: str, among: Sequence[str] = DIHEDRAL_GROUPS) -> list[str]:
    """The proper subgroups of ``group`` in ``among`` with no group of ``among`` between them and
    ``group`` (the targets of one relaxation step: D4 -> C4, D2; C4 -> C2; D2 -> C2, D1; ...)."""
    below = [h for h in among if h != group and is_subgroup(h, group)]
    return [h for h in below if not any(k != h and is_subgroup(h, k) for k in below)]


@functools.lru_cache(maxsize=None)
def _cosets(group: str, base: str) -> tuple[tuple[int, ...], ...]:
    """Per right coset ``H k`` of ``group`` in ``base`` (ordered by first base element): the base
    index of ``h k`` for each ``h`` of ``group`` in its own order."""
    check_base(base, (group,))
    base_el = _ELEMENTS[base]
    index = {e: i for i, e in enumerate(base_el)}
    seen: set[int] = set()
    out = []
    for k in base_el:
        if index[k] in seen:
            continue
        coset = tuple(index[compose(h, k)] for h in _ELEMENTS[group])
        seen.update(coset)
        out.append(coset)
    return tuple(out)


def plane_index(group: str | int, planes: int, base: str = "C4") -> list[int]:
    """Canonical plane of each plane of a ``group`` layer's own order ``(channel, element)``
    (``group`` may be given as the order ``n`` of the rotation group ``Cn``)."""
    if isinstance(group, int):
        group = f"C{group}"
    size = check_base(base, (group,))
    cosets = _cosets(group, base)
    out = []
    for c in range(planes // size):
        for coset in cosets:
            out.extend(size * c + i for i in coset)
    return out


@functools.lru_cache(maxsize=None)
def filter_index(group: str) -> tuple[tuple[int, ...], ...]:
    """``m[a][b]``: the free filter (by element index) that output element ``a`` applies to input
    element ``b`` in a regular group convolution, that of ``h_a^-1 h_b``."""
    el = elements(group)
    index = {e: i for i, e in enumerate(el)}
    return tuple(tuple(index[compose(inverse(a), b)] for b in el) for a in el)


def build_group_cnn(config: dict[str, Any], num_classes: int = 10, in_channels: int = 1, planes: int = 32,
                    kernel_size: int = 3, pool_after: Sequence[int] = (1,), base: str | None = None,
                    **_: Any) -> Any:
    """The :class:`GroupCNN` of a configuration ``{"layer0": "C4", "layer1": "C2", ...}``."""
    groups = [config[k] for k in sorted(config, key=lambda k: int(k[5:]))]
    from nasforge.spaces.equivariant_net import GroupCNN

    return GroupCNN(groups, planes=planes, num_classes=num_classes, in_channels=in_channels,
                    kernel_size=kernel_size, pool_after=pool_after, base=base)


class EquivariantSpace(ChoiceSpace):
    """The space of one symmetry group per layer (``layer0`` .. ``layer{layers-1}``), each from
    ``groups``; its builder is :class:`~nasforge.spaces.equivariant_net.GroupCNN`. Networks of a
    space with a flip group use the D4 plane layout (and pool over 8 planes per channel), also
    those whose layers happen to be rotation groups only, so all its networks share one head.
    Described by ``(layers, groups)``, so a stored study rebuilds it."""

    def __init__(self, layers: int = 4, groups: Sequence[str] = ROTATION_GROUPS) -> None:
        layers = check_int(layers, "layers", 1)
        groups = parse_groups(groups)
        self.layers, self.groups, self.base = layers, groups, base_of(groups)
        super().__init__({f"layer{i}": list(groups) for i in range(layers)},
                         builder=functools.partial(build_group_cnn, base=self.base),
                         name="equivariant" if self.base == "C4" else "equivariant-d4")
        self._settle_params(layers=layers, groups=list(groups))

    def _settle_params(self, **values: Any) -> None:
        values.pop("choices", None)  # the choices follow from (layers, groups), which describe the space
        super()._settle_params(**values)


def equivariant_space(layers: int = 4, groups: Sequence[str] = ROTATION_GROUPS) -> EquivariantSpace:
    """The space of one symmetry group per layer (:class:`EquivariantSpace`)."""
    return EquivariantSpace(layers, groups)


__all__ = ["GROUPS", "ROTATION_GROUPS", "DIHEDRAL_GROUPS", "BASES", "check_group", "parse_groups", "elements",
           "compose", "inverse", "is_subgroup", "base_of", "check_base", "maximal_subgroups", "plane_index",
           "filter_index", "build_group_cnn", "EquivariantSpace", "equivariant_space"]
