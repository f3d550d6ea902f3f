"""Tabular benchmarks as estimators: O(1) lookup of published measurements."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError, shorten
from nasforge.estimation.base import Estimator, Measurement
from nasforge.spaces.base import SearchSpace

# "valid_acc_200" -> ("valid_acc", 200, ""); "test_acc_200_full" -> ("test_acc", 200, "_full")
_FIDELITY_COLUMN = re.compile(r"^(?P<base>[a-z][a-z_]*?[a-z])_(?P<fid>\d+)(?P<suffix>_[a-z_]+)?$")


def split_column(column: str) -> tuple[str, float | None]:
    """Split a column name into (metric, fidelity): ``test_acc_200_full`` -> (``test_acc_full``, 200).

    Only a candidate: :class:`TabularBenchmark` treats a number as a fidelity only when some
    metric of the table appears at two or more such numbers (so ``gold_6240``, a CPU name, stays
    a plain column beside ``valid_acc_12``/``valid_acc_200``)."""
    m = _FIDELITY_COLUMN.match(column)
    if not m:
        return column, None
    return m["base"] + (m["suffix"] or ""), float(m["fid"])


def find_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Where the reference data lives: ``explicit``, ``$NASFORGE_DATA``, or a ``shared/data`` folder
    beside or above the working directory or this source checkout. ``None`` when there is none."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("NASFORGE_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *Path.cwd().parents[:2], *here.parents[:5]):
        for cand in (base / "shared" / "data", base / ".." / "shared" / "data"):
            if (cand / "README.md").is_file() or (cand / "nb201").is_dir():
                return cand.resolve()
    return None


class TabularBenchmark(Estimator):
    """A table of measured metrics, one row per architecture, as an estimator.

    Columns named ``<metric>_<fidelity>[_suffix]`` (e.g. ``valid_acc_200``, ``test_acc_200_full``)
    are grouped by fidelity: a measurement at fidelity 200 carries ``valid_acc``, ``test_acc_full``
    and every column without a fidelity. A query is a dictionary lookup; no file is read after
    construction. The simulated cost of a query is the value of the ``cost_metric`` column when
    given, otherwise the fidelity (in epochs), or 1 for a table without fidelities.
    """

    def __init__(
        self,
        space: SearchSpace,
        archs: Sequence[Any],
        columns: dict[str, np.ndarray],
        name: str = "table",
        key: Callable[[Any], Hashable] | None = None,
        cost_metric: str | None = None,
        default_metric: str | None = None,
        report_metric: str | None = None,
    ) -> None:
        self.space = space
        self.name = name
        self.archs = list(archs)
        self._key = key
        self.columns = {c: np.asarray(v, dtype=float) for c, v in columns.items()}
        self.cost_metric = cost_metric
        self._settle_params(archs=self.archs, columns=self.columns)  # no second copy of the table
        #: what a search on this table selects by (a validation metric), and what it reports (a
        #: test metric, never used to select); given by the benchmark's loader
        self.default_metric: str | None = default_metric
        self.report_metric: str | None = report_metric
        for c, v in self.columns.items():
            if v.ndim != 1 or len(v) != len(self.archs):
                raise NasforgeError(f"benchmark {name!r}: column {c!r} has {len(v)} rows, expected {len(self.archs)}")
            inf = np.flatnonzero(np.isinf(v))
            if len(inf):  # NaN is a missing value; an infinite one is a damaged table
                raise NasforgeError(
                    f"benchmark {name!r}: column {c!r} holds {len(inf)} infinite value(s) (first: row {int(inf[0])}, "
                    f"{space.format(self.archs[int(inf[0])])}, value {v[inf[0]]}); values must be finite numbers "
                    "(NaN for a missing one)")
        keyf = key or (lambda a: a)
        self._row: dict[Hashable, int] = {}
        for i, a in enumerate(self.archs):
            k = keyf(a)
            if k in self._row:
                raise NasforgeError(f"benchmark {name!r}: architecture {space.format(a)} appears twice")
            self._row[k] = i
        split = {c: split_column(c) for c in self.columns}
        seen: dict[str, set[float]] = {}
        for metric, fid in split.values():
            if fid is not None:
                seen.setdefault(metric, set()).add(fid)
        real = set().union(*(f for f in seen.values() if len(f) > 1))
        groups: dict[float | None, dict[str, str]] = {}
        for c, (metric, fid) in split.items():
            if fid in real:
                groups.setdefault(fid, {})[metric] = c
            else:
                groups.setdefault(None, {})[c] = c
        fids = sorted(f for f in groups if f is not None)
        self.fidelities = tuple(fids) if fids else None
        self._groups = groups
        self._rows_cache: dict[float | None, list[dict[str, float]]] = {}

    def derive(self, columns: dict[str, np.ndarray] | None = None, name: str | None = None,
               **settings: Any) -> TabularBenchmark:
        """A new benchmark over the same architectures (space, key, cost metric, default and
        report metrics), with ``columns`` in place of this one's and ``settings`` (any of
        ``name``, ``cost_metric``, ``default_metric``, ``report_metric``) changed."""
        kw: dict[str, Any] = {"name": self.name if name is None else name, "key": self._key,
                              "cost_metric": self.cost_metric, "default_metric": self.default_metric,
                              "report_metric": self.report_metric}
        for k, v in settings.items():
            if k not in ("cost_metric", "default_metric", "report_metric"):
                raise TypeError(f"derive() got an unexpected setting {k!r}")
            kw[k] = v
        return TabularBenchmark(self.space, self.archs, self.columns if columns is None else columns, **kw)

    # --- lookup -----------------------------------------------------------------------------
    def row(self, arch: Any) -> int:
        """Row index of ``arch``; a clear error when the table does not hold it."""
        try:
            return self._row[self._key(arch) if self._key else arch]
        except (KeyError, TypeError):
            pass
        try:
            a = self.space.coerce(arch)
            return self._row[self._key(a) if self._key else a]
        except KeyError:
            raise NasforgeError(
                f"architecture {self.space.format(a)} is not in benchmark {self.name!r}"
            ) from None

    def _fidelity(self, fidelity: float | None) -> float | None:
        if fidelity is None:
            return self.fidelities[-1] if self.fidelities else None
        if self.fidelities is None or float(fidelity) not in self.fidelities:
            allowed = ", ".join(f"{f:g}" for f in self.fidelities) if self.fidelities else "none (single fidelity)"
            raise NasforgeError(f"benchmark {self.name!r} has no fidelity {fidelity!r}; allowed: {allowed}")
        return float(fidelity)

    def _rows(self, fid: float | None) -> list[dict[str, float]]:
        rows = self._rows_cache.get(fid)
        if rows is None:
            cols = dict(self._groups.get(None, {}))
            if fid is not None:
                cols.update(self._groups[fid])
            names = list(cols)
            data = np.stack([self.columns[cols[m]] for m in names], axis=1).tolist() if names else [[]] * len(self.archs)
            rows = [dict(zip(names, r)) for r in data]
            self._rows_cache[fid] = rows
        return rows

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        fid = self._fidelity(fidelity)
        r = self.row(arch)
        metrics = dict(self._rows(fid)[r])
        if self.cost_metric is not None:
            cost = float(self.columns[self.cost_metric][r])
        else:
            cost = fid if fid is not None else 1.0
        return Measurement(metrics, cost, fid)

    @property
    def metric_names(self) -> list[str]:
        return list(self.columns)

    def metrics_at(self, fidelity: float | None = None) -> list[str]:
        """Metric names a measurement at ``fidelity`` carries."""
        return list(self._rows(self._fidelity(fidelity))[0]) if self.archs else []

    def column(self, metric: str, fidelity: float | None = None) -> str:
        """The table column for ``metric``: a column name, or a metric name at ``fidelity``."""
        if metric in self.columns and fidelity is None:
            return metric
        fid = self._fidelity(fidelity)
        for group in (self._groups.get(fid, {}), self._groups.get(None, {})):
            if metric in group:
                return group[metric]
        raise NasforgeError(
            f"unknown metric {metric!r} for benchmark {self.name!r}; available: {', '.join(self.columns)}"
            + (f" (or, at a fidelity, {', '.join(sorted({m for g in self._groups.values() for m in g}))})"
               if self.fidelities else "")
        )

    def values(self, metric: str, fidelity: float | None = None) -> np.ndarray:
        """All values of ``metric`` in row order (read-only view)."""
        v = self.columns[self.column(metric, fidelity)].view()
        v.flags.writeable = False
        return v

    def query(self, arch: Any, metric: str, fidelity: float | None = None) -> float:
        """One value: ``metric`` of ``arch``."""
        return float(self.columns[self.column(metric, fidelity)][self.row(arch)])

    def optimum(self, metric: str, maximize: bool | None = None, fidelity: float | None = None) -> tuple[Any, float]:
        """The best architecture of the table by ``metric`` and its value."""
        v = self.values(metric, fidelity)
        if maximize is None:
            maximize = self.higher_is_better(metric)
        i = int(np.nanargmax(v) if maximize else np.nanargmin(v))
        return self.archs[i], float(v[i])

    def percentile(self, metric: str, value: float, fidelity: float | None = None) -> float:
        """Percentage of architectures whose ``metric`` is at most ``value`` (0-100)."""
        v = self.values(metric, fidelity)
        v = v[~np.isnan(v)]
        return float(100.0 * np.count_nonzero(v <= value) / len(v))

    def fraction_better(self, metric: str, value: float, maximize: bool = True, fidelity: float | None = None) -> float:
        """Percentage of architectures strictly better than ``value`` by ``metric`` (0-100)."""
        v = self.values(metric, fidelity)
        v = v[~np.isnan(v)]
        better = v > value if maximize else v < value
        return float(100.0 * np.count_nonzero(better) / len(v))

    def __len__(self) -> int:
        return len(self.archs)

    def __contains__(self, arch: object) -> bool:
        try:
            self.row(arch)
        except (NasforgeError, TypeError):
            return False
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} architectures, fidelities={self.fidelities})"


def _check_csv_shape(p: Path) -> None:
    """A CSV table's header names each column once, and every row has as many fields as the
    header (a file cut off mid-line, or a row with a field too many or too few, is an error)."""
    import csv

    try:
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise NasforgeError(f"benchmark file {p} is empty")
            seen: set[str] = set()
            for name in header:
                if name in seen:
                    raise NasforgeError(f"benchmark file {p}: column {shorten(name)} appears twice in the header")
                seen.add(name)
            for row in reader:
                if not row:  # a blank line
                    continue
                if len(row) != len(header):
                    cut = " (the file may be cut off)" if len(row) < len(header) else ""
                    raise NasforgeError(f"{p}, line {reader.line_num}: {len(row)} field(s), the header has "
                                        f"{len(header)}{cut}")
    except UnicodeDecodeError as exc:
        raise NasforgeError(f"cannot read benchmark file {p}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise NasforgeError(f"cannot read benchmark file {p}: {exc}") from None


def read_arch_table(
    path: str | os.PathLike[str],
    parse: Callable[[str], Any],
    drop: Iterable[str] = ("index",),
) -> tuple[list[Any], dict[str, np.ndarray]]:
    """Read a CSV with an ``arch`` column and numeric metric columns; clear errors for bad files."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise NasforgeError(f"benchmark file not found: {shorten(str(p))}")
    _check_csv_shape(p)
    try:
        df = pd.read_csv(p)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types for a corrupt file
        raise NasforgeError(f"cannot read benchmark file {p}: {exc}".splitlines()[0]) from None
    if "arch" not in df.columns:
        raise NasforgeError(f"benchmark file {p} has no 'arch' column (columns: {', '.join(map(str, df.columns))})")
    archs = []
    for line, text in enumerate(df["arch"].tolist(), start=2):
        try:
            archs.append(parse(str(text)))
        except NasforgeError as exc:
            raise NasforgeError(f"{p}, line {line}: {exc}") from None
    columns: dict[str, np.ndarray] = {}
    for c in df.columns:
        if c == "arch" or c in drop:
            continue
        col = pd.to_numeric(df[c], errors="coerce")
        bad = col.isna() & df[c].notna()
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise NasforgeError(f"{p}, line {line}: column {c!r} holds a non-number: {shorten(df[c].iloc[line - 2])}")
        values = col.to_numpy(dtype=float)
        inf = np.flatnonzero(np.isinf(values))
        if len(inf):
            line = int(inf[0]) + 2
            raise NasforgeError(f"{p}, line {line}: column {c!r} holds an infinite value ({shorten(df[c].iloc[line - 2])}"
                                f"; {len(inf)} such row(s)); values must be finite numbers, or empty when missing")
        columns[str(c)] = values
    if not columns:
        raise NasforgeError(f"benchmark file {p} has no metric columns")
    return archs, columns
