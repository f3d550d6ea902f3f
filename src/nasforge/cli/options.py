"""Parsers for option values shared by several commands."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from typing import Any

from nasforge.errors import NasforgeError


def parse_top_k(text: str) -> list[float]:
    """``--top-k``: comma-separated counts (``50``) or percentages (``10%``, returned as 0.1)."""
    out = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        try:
            k = float(item[:-1]) / 100.0 if item.endswith("%") else float(item)
        except ValueError:
            raise NasforgeError(f"bad --top-k {item!r}: expected a count (50) or a percentage (10%)") from None
        if k <= 0 or (k >= 1 and k != int(k)) or (item.endswith("%") and k >= 1):
            raise NasforgeError(f"bad --top-k {item!r}: expected a positive count or a percentage below 100%")
        out.append(k)
    return out


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r} (expected a whole number >= 1)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r} (expected a whole number >= 1)")
    return value


def finite_float(text: str) -> float:
    """A finite number (``1e400``, ``inf`` and ``nan`` are refused as typed)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a finite number")
    return value


def parse_key_values(items: Sequence[str] | None, option: str, example: str) -> dict[str, Any]:
    """``KEY=VALUE`` items (``--param``, ``--net``): values parsed as JSON where they are JSON
    (``3``, ``0.5``, ``true``, ``[1, 2]``), else kept as strings."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise NasforgeError(f"bad {option} {item!r}: expected KEY=VALUE, e.g. {example}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out
