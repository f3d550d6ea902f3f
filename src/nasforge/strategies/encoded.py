"""Local moves in an encoding: the neighbourhood that evolution and local search use, redefined
as the nearest architectures in an encoding's space.

White et al. ("A Study on Encodings for Neural Architecture Search", NeurIPS 2020) name three
encoding-dependent subroutines of NAS: sampling, *perturbing* an architecture, and training a
predictor. Regularised evolution and local search depend on the encoding only through the
perturbation (``space.mutate`` / ``space.neighbors``). :class:`EncodedNeighbourhood` wraps a
finite space so that an architecture's neighbours are the ``k`` architectures nearest to it in
an encoding (Euclidean distance; ties in the space's enumeration order) and a mutation is a
uniform draw among them. With the learnt CATE encoding this is CATE-guided evolution and local
search; with ``adjacency`` on NB201 it is the usual one-edge neighbourhood. Every other method
is the wrapped space's, so strategies run on it unchanged::

    space = EncodedNeighbourhood(bench.space, "cate")
    strategy = get_strategy("re", space, seed=0)     # or "ls"
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.bo.encodings import ENCODINGS, encoder

#: the largest space whose every architecture is encoded up front
MAX_ENUMERATED = 100_000


class EncodedNeighbourhood(SearchSpace):
    """``space`` with neighbours (and mutations) taken from an encoding (see the module notes).

    ``encoding``: one of :data:`nasforge.strategies.bo.encodings.ENCODINGS` (``cate`` pre-trains
    with ``cate_params`` on first use, cached, and imports torch). ``k``: neighbours per
    architecture; ``None`` (default) keeps the size of the space's own neighbourhood of each
    architecture. The space must be enumerable with at most 100,000 architectures.
    """

    def __init__(self, space: SearchSpace, encoding: str = "cate", k: int | None = None,
                 cate_params: dict[str, Any] | None = None, truncate: int = 2) -> None:
        if not isinstance(space, SearchSpace):
            raise NasforgeError(f"EncodedNeighbourhood needs a search space, got {space!r}")
        if encoding not in ENCODINGS:
            raise NasforgeError(f"unknown encoding {encoding!r}; allowed: {', '.join(ENCODINGS)}")
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise NasforgeError(f"neighbourhood size k must be an integer >= 1 or None, got {k!r}")
        size = space.finite_size()
        if size is None or size > MAX_ENUMERATED:
            raise NasforgeError(f"an encoded neighbourhood needs an enumerable space of at most {MAX_ENUMERATED:,} "
                                f"architectures; space {space.name!r} has {'no finite size' if size is None else f'{size:,}'}")
        self.space = space
        self.name = space.name
        self.encodings = space.encodings
        self.encoding = encoding
        self.k = None if k is None else int(k)
        self._archs = list(space)
        self._index: dict[Hashable, int] = {a: i for i, a in enumerate(self._archs)}
        enc = encoder(space, encoding, truncate=truncate, cate_params=cate_params)
        self._E = np.asarray(enc.matrix(self._archs), dtype=float)
        self._sq = (self._E**2).sum(axis=1)
        self._nbrs: dict[Hashable, list[Any]] = {}

    # --- the encoded moves -------------------------------------------------------------------------
    def neighbors(self, arch: Any) -> list[Any]:
        """The ``k`` architectures nearest to ``arch`` in the encoding, nearest first."""
        out = self._nbrs.get(arch)
        if out is None:
            i = self._index.get(arch)
            if i is None:
                raise NasforgeError(f"{self.space.format(arch)} is not an architecture of space {self.name!r}")
            k = self.k if self.k is not None else len(self.space.neighbors(arch))
            d = self._sq - 2.0 * (self._E @ self._E[i]) + self._sq[i]
            d[i] = np.inf
            order = np.argsort(np.round(d, 9), kind="stable")[: max(k, 0)]
            out = self._nbrs[arch] = [self._archs[j] for j in order]
        return list(out)

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any:
        """A uniform draw among :meth:`neighbors`."""
        nbrs = self.neighbors(arch)
        return nbrs[int(rng.integers(len(nbrs)))]

    # --- everything else is the wrapped space's ---------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Any:
        return self.space.sample(rng)

    def parse(self, text: str) -> Any:
        return self.space.parse(text)

    def format(self, arch: Any) -> str:
        return self.space.format(arch)

    def encode(self, arch: Any, kind: str = "onehot") -> np.ndarray:
        return self.space.encode(arch, kind)

    def graph(self, arch: Any) -> tuple[np.ndarray, list[str]]:
        return self.space.graph(arch)

    def canonical_key(self, arch: Any) -> Hashable:
        return self.space.canonical_key(arch)

    def coerce(self, arch: Any) -> Any:
        return self.space.coerce(arch)

    def param_count(self, arch: Any, **net: Any) -> int:
        return self.space.param_count(arch, **net)

    def flops(self, arch: Any, convention: str = "nb201", **net: Any) -> int:
        return self.space.flops(arch, convention, **net)

    def build(self, arch: Any, **kwargs: Any) -> Any:
        return self.space.build(arch, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.space)

    def __len__(self) -> int:
        return len(self.space)

    def __contains__(self, arch: object) -> bool:
        return arch in self.space

    def __getattr__(self, item: str) -> Any:
        if item == "space":  # not set yet (during construction)
            raise AttributeError(item)
        return getattr(self.space, item)


__all__ = ["EncodedNeighbourhood"]
