"""NAS-Bench-201 tables (any CSV with an ``arch`` column of official strings)."""

from __future__ import annotations

import os
from pathlib import Path

from nasforge.errors import NasforgeError, shorten
from nasforge.estimation.tabular import TabularBenchmark, find_data_dir, read_arch_table
from nasforge.spaces.nb201 import NB201Space

def load_nb201(
    dataset: str | os.PathLike[str] = "cifar10", data_dir: str | os.PathLike[str] | None = None
) -> TabularBenchmark:
    """An NB201 table: a dataset name looked up as ``<data_dir>/nb201/<name>.csv``, or a CSV path.

    ``data_dir`` defaults to ``$NASFORGE_DATA`` or a ``shared/data`` folder near the working
    directory (see :func:`~nasforge.estimation.tabular.find_data_dir`).
    """
    text = str(dataset)
    if text.endswith(".csv") or os.sep in text or "/" in text:
        path = Path(text)
        name = path.stem
    else:
        root = find_data_dir(data_dir)
        if root is None:
            raise NasforgeError(
                f"NB201 table {shorten(text)} needs the reference data folder: pass data_dir, set NASFORGE_DATA, "
                "or give the path of a CSV file"
            )
        path = root / "nb201" / f"{text}.csv"
        if not path.is_file():
            avail = sorted(p.stem for p in (root / "nb201").glob("*.csv")) if (root / "nb201").is_dir() else []
            raise NasforgeError(
                f"no NB201 table {shorten(text)} in {root / 'nb201'}; available: {', '.join(avail) or 'none'}"
            )
        name = text
    space = NB201Space()
    archs, columns = read_arch_table(path, space.parse)
    if len(archs) < len(space):  # said once, at load; a search on it proposes only what it holds
        import warnings

        warnings.warn(f"NB201 table {path} holds {len(archs):,} of the {len(space):,} cells; the others are "
                      "not in this benchmark", stacklevel=2)
    return TabularBenchmark(space, archs, columns, name=f"nb201:{name}")
