"""The closing note of the commands that write: where the results (and checkpoints) are."""

from __future__ import annotations

import os
from pathlib import Path


def where_written(study: str, storage: str, folder: str | os.PathLike[str] | None = None,
                  folder_holds: str = "checkpoints and the best network") -> str:
    """Lines saying where study ``study``'s results went (``storage``) and how to look at them,
    and, with ``folder``, what that folder holds (its absolute path)."""
    import shlex

    if storage.strip() == ":memory:":
        lines = [f"results: study {study!r} was kept in memory only (--storage :memory:); give "
                 "--storage sqlite:///FILE.db to keep it"]
    else:
        lines = [f"results: study {study!r} in {storage}",
                 f"  nasforge show {shlex.quote(study)} --storage {shlex.quote(storage)}   # the best trials",
                 f"  nasforge dashboard --storage {shlex.quote(storage)}   # trials, curves and cells in the browser"]
    if folder is not None:
        lines.append(f"{folder_holds}: {Path(folder).resolve()}")
    return "\n".join(lines)


__all__ = ["where_written"]
