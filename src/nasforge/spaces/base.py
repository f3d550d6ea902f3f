"""The search-space interface every space implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np

from nasforge.params import Configurable


class SearchSpace(Configurable, ABC):
    """A set of architectures with sampling, local moves, encodings and a network builder.

    Architectures are immutable, hashable values owned by the space; ``format`` gives their one
    canonical string and ``parse`` reads it back. Spaces hold no random state: every random
    operation takes a ``numpy.random.Generator``. A space describes itself by its constructor
    arguments (``get_params()``, ``spec()``; see :mod:`nasforge.params`).
    """

    #: short registry name, e.g. ``"nb201"``
    name: str = ""
    #: encodings accepted by :meth:`encode`
    encodings: tuple[str, ...] = ()

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """One architecture drawn at random."""

    @abstractmethod
    def mutate(self, arch: Any, rng: np.random.Generator) -> Any:
        """A random neighbour of ``arch`` (one local change; never ``arch`` itself)."""

    @abstractmethod
    def neighbors(self, arch: Any) -> list[Any]:
        """Every architecture one local change away from ``arch``, in a fixed order."""

    @abstractmethod
    def parse(self, text: str) -> Any:
        """The architecture written as ``text``; raises ``NasforgeError`` saying what is wrong."""

    @abstractmethod
    def format(self, arch: Any) -> str:
        """The canonical string of ``arch``."""

    @abstractmethod
    def encode(self, arch: Any, kind: str = "onehot") -> np.ndarray:
        """A fixed-length numeric vector for ``arch``."""

    @abstractmethod
    def graph(self, arch: Any) -> tuple[np.ndarray, list[str]]:
        """The architecture as a DAG with operations on nodes: (adjacency matrix, node labels).

        Node 0 is the input and the last node the output; model-based strategies define their
        graph kernels through this view, so they are not tied to one space.
        """

    def canonical_key(self, arch: Any) -> Hashable:
        """A key equal for architectures that compute the same function (default: the arch)."""
        return arch

    def build(self, arch: Any, **kwargs: Any) -> Any:
        """The PyTorch ``nn.Module`` for ``arch``."""
        raise NotImplementedError(f"space {self.name!r} does not build networks")

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(f"space {self.name!r} is not enumerable")

    def __len__(self) -> int:
        raise TypeError(f"space {self.name!r} has no finite size")

    def __contains__(self, arch: object) -> bool:
        try:
            self.format(arch)
        except Exception:  # noqa: BLE001 - anything the space cannot format is not in it
            return False
        return True

    def coerce(self, arch: Any) -> Any:
        """Accept an architecture or its string; return the architecture."""
        if isinstance(arch, str):
            return self.parse(arch)
        if arch not in self:
            raise TypeError(f"{arch!r} is not an architecture of space {self.name!r}")
        return arch
