"""Search spaces: what can be built."""

from __future__ import annotations

import importlib
from typing import Any

from nasforge.errors import unknown
from nasforge.spaces.base import SearchSpace
from nasforge.spaces.choice import ChoiceSpace, Choices
from nasforge.spaces.nb201 import NB201Arch, NB201Space

#: registry name -> "module:class" of the spaces that need no arguments (imported on first use)
SPACES: dict[str, str] = {
    "nb201": "nasforge.spaces.nb201:NB201Space",
    "nbgraph": "nasforge.spaces.nbgraph:NBGraphSpace",
    "darts": "nasforge.spaces.darts:DartsSpace",
    "nb101": "nasforge.spaces.nb101:NB101Space",
    "macro": "nasforge.spaces.macro:MacroSpace",
    "mbv3": "nasforge.spaces.macro:MBV3Space",
}


def get_space(name: str, **kwargs: Any) -> SearchSpace:
    """A search space by registry name (``nb201``, ``nbgraph``, ``darts``, ``nb101``); user spaces
    are built directly (:class:`ChoiceSpace`)."""
    try:
        module, _, cls = SPACES[name].partition(":")
    except (KeyError, TypeError):  # TypeError: not a name (an unhashable value)
        raise unknown("search space", name, sorted(SPACES)) from None
    return getattr(importlib.import_module(module), cls)(**kwargs)


__all__ = ["SearchSpace", "NB201Space", "NB201Arch", "ChoiceSpace", "Choices", "get_space", "SPACES"]
