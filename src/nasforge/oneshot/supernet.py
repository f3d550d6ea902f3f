"""Supernets live with their spaces now (:mod:`nasforge.spaces.supernet` holds the protocol).

This module keeps the names earlier code imported from here: the protocol classes, and for the
default space (:data:`~nasforge.spaces.supernet.DEFAULT_SPACE`) the translation between
architectures and per-edge operation indices. ``NB201Supernet``, ``SearchCell``, ``N_EDGES``,
``N_OPS`` and ``PARAM_OPS`` are the default space's supernet module's, resolved on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from nasforge.spaces.supernet import Supernet, SupernetLayout, default_layout, supernet_from_config

__all__ = ["Supernet", "SupernetLayout", "default_layout", "supernet_from_config", "arch_indices", "indices_arch"]

#: names of the default space's supernet module still importable from here
_LEGACY = ("NB201Supernet", "SearchCell", "N_EDGES", "N_OPS", "PARAM_OPS")


def arch_indices(arch: Any) -> tuple[int, ...]:
    """Per-edge operation indices of an architecture of the default space, its string, or indices."""
    return default_layout().coerce_indices(arch)


def indices_arch(idx: Sequence[int]) -> Any:
    """The default space's architecture of per-edge operation indices."""
    layout = default_layout()
    return layout.arch(layout.coerce_indices(tuple(idx)))


def __getattr__(name: str) -> Any:
    if name in _LEGACY:
        module = type(default_layout()).__module__
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

