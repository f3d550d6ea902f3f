"""Search spaces: what can be built."""

from __future__ import annotations

from typing import Any

from nasforge.errors import unknown
from nasforge.spaces.base import SearchSpace
from nasforge.spaces.nb201 import NB201Arch, NB201Space


def _nbgraph(**kwargs: Any) -> SearchSpace:
    from nasforge.spaces.nbgraph import NBGraphSpace

    return NBGraphSpace(**kwargs)


SPACES = {"nb201": lambda **kw: NB201Space(**kw), "nbgraph": _nbgraph}


def get_space(name: str, **kwargs: Any) -> SearchSpace:
    """A search space by registry name (``nb201``, ``nbgraph``)."""
    try:
        factory = SPACES[name]
    except KeyError:
        raise unknown("search space", name, sorted(SPACES)) from None
    return factory(**kwargs)


__all__ = ["SearchSpace", "NB201Space", "NB201Arch", "get_space", "SPACES"]
