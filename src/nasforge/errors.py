"""Error types shared by every nasforge package, and the checks that raise them.

Every check raises a one-line :class:`NasforgeError` that names the bad value (shortened: a
630 KB string is echoed as its first characters and its length) and says what is allowed.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any

#: the longest message a NasforgeError keeps (longer ones lose their middle)
MAX_MESSAGE = 2000
#: the longest echo of a bad value inside a message
MAX_ECHO = 80


class NasforgeError(ValueError):
    """A user-facing error: bad input, a missing file, an unknown name.

    The message is one line (line breaks become spaces) of at most :data:`MAX_MESSAGE`
    characters. The command line prints it and exits with code 2.
    """

    def __init__(self, *args: Any) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            msg = " ".join(args[0].split("\n")).replace("\r", " ")
            if len(msg) > MAX_MESSAGE:
                half = MAX_MESSAGE // 2 - 10
                msg = f"{msg[:half]} ... ({len(msg):,} characters) ... {msg[-half:]}"
            args = (msg,)
        super().__init__(*args)


class NotAnArchitecture(NasforgeError, TypeError):
    """A value that is not an architecture of a space (also a ``TypeError``, as before)."""


def shorten(value: Any, limit: int = MAX_ECHO) -> str:
    """``repr(value)`` cut to ``limit`` characters, saying how long the whole was."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    size = f"{len(value):,} characters" if isinstance(value, str) else f"{len(text):,} characters as text"
    return f"{text[:limit]}... ({size})"


def unknown(kind: str, value: object, allowed: "list[str] | tuple[str, ...]") -> NasforgeError:
    """The standard error for a name that is not one of the allowed ones."""
    return NasforgeError(f"unknown {kind} {shorten(value)}; allowed: {', '.join(map(str, allowed))}")


# --- numbers ------------------------------------------------------------------------------------
#: seeds are whole numbers in 0..MAX_SEED (what NumPy's legacy seeding and scikit-learn accept)
MAX_SEED = 2**32 - 1


def check_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int, or a NasforgeError unless it is a whole number in ``low..high``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok and isinstance(value, float) and math.isfinite(value) and value == int(value):
        value, ok = int(value), True
    if ok and (low is None or value >= low) and (high is None or value <= high):
        return int(value)
    if low is not None and high is not None:
        allowed = f"a whole number in {low}..{high}"
    elif low is not None:
        allowed = f"a whole number >= {low}"
    elif high is not None:
        allowed = f"a whole number <= {high}"
    else:
        allowed = "a whole number"
    raise NasforgeError(f"bad {name} {shorten(value)}: expected {allowed}")


def check_seed(value: Any, name: str = "seed") -> int:
    """A seed: a whole number in 0..:data:`MAX_SEED`."""
    return check_int(value, name, 0, MAX_SEED)


def check_float(value: Any, name: str, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the given range (open or closed at each end)."""
    try:
        v = float(value) if not isinstance(value, (bool, str)) else math.nan
    except (TypeError, ValueError, OverflowError):
        v = math.nan
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if ok:
        return v
    lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
    hi = "" if high is None else (f"< {high:g}" if high_open else f"<= {high:g}")
    rng = " and ".join(p for p in (lo, hi) if p)
    raise NasforgeError(f"bad {name} {shorten(value)}: expected a finite number" + (f" {rng}" if rng else ""))


# --- files and folders --------------------------------------------------------------------------
def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_file(path: str | os.PathLike[str], what: str) -> Path:
    """A file to be written: its folder must exist and be writable, and the path must not be a
    folder. Nothing is created. Checked before the work that produces the file."""
    try:
        p = Path(os.fspath(path))
    except TypeError:
        raise NasforgeError(f"bad {what} {shorten(path)}: expected a file path") from None
    text = os.fspath(p)
    if not text or "\x00" in text:
        raise NasforgeError(f"bad {what} {shorten(path)}: expected a file path")
    if p.is_dir():
        raise NasforgeError(f"bad {what} {shorten(text)}: it is a folder; give a file name")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        missing = _nearest_existing(folder)
        why = "is not a folder" if missing.exists() and not missing.is_dir() else "does not exist"
        where = folder if why == "does not exist" else missing
        raise NasforgeError(f"bad {what} {shorten(text)}: folder {shorten(str(where))} {why} "
                            "(create it first)")
    if not os.access(folder, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise NasforgeError(f"bad {what} {shorten(text)}: cannot write in {shorten(str(folder))} (permission denied)")
    return p


def check_work_dir(path: str | os.PathLike[str], what: str, create: bool = False) -> Path:
    """A folder to write into: an existing writable folder, or one that can be created (tested
    by creating and removing a temporary folder in its nearest existing parent, so that nothing
    is left behind). With ``create`` the folder is made."""
    import tempfile

    try:
        p = Path(os.fspath(path))
    except TypeError:
        raise NasforgeError(f"bad {what} {shorten(path)}: expected a folder path") from None
    text = os.fspath(p)
    if not text or "\x00" in text:
        raise NasforgeError(f"bad {what} {shorten(path)}: expected a folder path")
    base = _nearest_existing(p)
    if not base.is_dir():
        raise NasforgeError(f"bad {what} {shorten(text)}: {shorten(str(base))} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".nasforge-check-", dir=base))
        if create:
            p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise NasforgeError(f"bad {what} {shorten(text)}: cannot write there ({reason})") from None
    return p


__all__ = ["NasforgeError", "NotAnArchitecture", "unknown", "shorten", "check_int", "check_seed", "check_float",
           "check_output_file", "check_work_dir", "MAX_SEED"]
