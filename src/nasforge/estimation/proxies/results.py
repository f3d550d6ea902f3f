"""Proxy scores on disk: a resumable CSV (one row per architecture, appended as it goes).

The file ``<name>.csv`` has the columns ``arch``, one per proxy, ``seconds`` (cost of the row) and
``sec_<group>`` (seconds per computation group). Beside it, ``<name>.csv.json`` stores the
settings that determine the scores (space, dataset, batch, seed, network arguments, proxies);
reopening the file with other settings is refused, so one file never mixes runs. A row is
flushed as soon as it is written; a row cut short by a killed process is dropped on reopening.

No torch here: results can be read, ranked and correlated anywhere.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.estimation.base import Estimator, Measurement
from nasforge.estimation.proxies.base import PROXIES
from nasforge.spaces.base import SearchSpace

__all__ = ["ProxyResults", "read_results", "sample_archs", "score_archs", "ProxyTable"]


def _fmt(v: float) -> str:
    return repr(float(v))


class ProxyResults:
    """An append-only CSV of proxy scores, resumable.

    ``ProxyResults(path, proxies, settings)`` creates the file (and its settings sidecar) or
    reopens it; :attr:`done` maps each architecture string already scored to its row.
    """

    def __init__(self, path: str | os.PathLike[str], proxies: Sequence[str], settings: Mapping[str, Any],
                 groups: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.meta_path = self.path.with_name(self.path.name + ".json")
        self.proxies = list(proxies)
        self.settings = {**settings, "proxies": self.proxies}
        self.columns = ["arch", *self.proxies, "seconds", *(f"sec_{g}" for g in groups)]
        self.done: dict[str, dict[str, float]] = {}
        if self.path.exists():
            self._reopen()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.meta_path.write_text(json.dumps(self.settings, indent=1, sort_keys=True) + "\n")
            with open(self.path, "w", newline="") as f:
                f.write(",".join(self.columns) + "\n")

    def _reopen(self) -> None:
        if not self.meta_path.is_file():
            raise NasforgeError(f"{self.path} exists without its settings file {self.meta_path.name}; "
                                "choose another output file")
        try:
            stored = json.loads(self.meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise NasforgeError(f"cannot read {self.meta_path}: {exc}") from None
        if stored != json.loads(json.dumps(self.settings, sort_keys=True)):
            diff = ", ".join(f"{k}: stored {stored.get(k)!r}, given {self.settings.get(k)!r}"
                             for k in sorted(set(stored) | set(self.settings)) if stored.get(k) != self.settings.get(k))
            raise NasforgeError(f"{self.path} holds scores made with other settings ({diff}); "
                                "use the stored settings or another output file")
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):  # a row cut short by a killed process
            raw = raw[: raw.rfind(b"\n") + 1]
            with open(self.path, "wb") as f:
                f.write(raw)
        reader = csv.reader(io.StringIO(raw.decode()))
        header = next(reader, None)
        if header is None:
            with open(self.path, "w", newline="") as f:
                f.write(",".join(self.columns) + "\n")
            return
        if header != self.columns:
            raise NasforgeError(f"{self.path} has columns {', '.join(header)}; expected {', '.join(self.columns)}")
        for row in reader:
            if len(row) != len(header):
                continue
            try:
                self.done[row[0]] = {c: float(v) for c, v in zip(header[1:], row[1:])}
            except ValueError:
                continue

    def append(self, arch: str, scores: Mapping[str, float], seconds: float,
               group_seconds: Mapping[str, float] | None = None) -> None:
        """Write one architecture's row and flush it to disk."""
        row = {"seconds": seconds, **{f"sec_{g}": s for g, s in (group_seconds or {}).items()}, **scores}
        values = [arch] + [_fmt(row.get(c, float("nan"))) for c in self.columns[1:]]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        with open(self.path, "a", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        self.done[arch] = {c: float(v) for c, v in zip(self.columns[1:], values[1:])}

    def __len__(self) -> int:
        return len(self.done)


def read_results(path: str | os.PathLike[str]) -> Any:
    """A results CSV as a pandas DataFrame indexed by architecture string (settings in ``df.attrs``)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise NasforgeError(f"proxy results file not found: {p}")
    df = pd.read_csv(p, on_bad_lines="skip")
    if "arch" not in df.columns:
        raise NasforgeError(f"{p} is not a proxy results file (no 'arch' column)")
    df = df.drop_duplicates("arch", keep="last").set_index("arch")
    meta = p.with_name(p.name + ".json")
    if meta.is_file():
        df.attrs["settings"] = json.loads(meta.read_text())
    return df


#: a finite space is enumerated (for a nested, seeded permutation of all of it) only up to this
#: size; a larger one (DARTS: about 1e18 architectures) is sampled like an infinite one
ENUMERATE_MAX = 1_000_000


def sample_archs(space: SearchSpace, n: int | None, seed: int = 0) -> list[Any]:
    """``n`` distinct architectures drawn with ``seed`` (all of a finite space when ``n`` is None).

    For a finite, enumerable space of at most :data:`ENUMERATE_MAX` architectures the sample is a
    prefix of one seeded permutation of the whole space, so a smaller sample is always contained
    in a larger one with the same seed. Any other space is sampled with ``space.sample``, keeping
    the first draw of each ``space.canonical_key`` (isomorphic NB101 cells are one architecture);
    there too the first ``n`` of a larger sample are the smaller one.
    """
    size = space.finite_size()
    if n is None:
        if size is None or size > ENUMERATE_MAX:
            raise NasforgeError(f"space {space.name!r} is not enumerable here: give a sample size")
        return list(space)
    if n < 1:
        raise NasforgeError(f"sample size must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    if size is not None and n > size:
        raise NasforgeError(f"sample size {n} exceeds the {size} architectures of space {space.name!r}")
    if size is not None and size <= ENUMERATE_MAX:
        try:
            archs = list(space)
        except TypeError:  # finite but not iterable: sample it
            pass
        else:
            return [archs[i] for i in rng.permutation(size)[:n]]
    return draw_distinct(space, n, rng, key=space.canonical_key)


def draw_distinct(space: SearchSpace, n: int, rng: np.random.Generator,
                  key: Callable[[Any], Any] | None = None) -> list[Any]:
    """``n`` distinct ``space.sample(rng)`` draws in order of first appearance (at most 100·n draws);
    with ``key``, draws with an equal ``key(arch)`` count once (the first is kept)."""
    seen: dict[Any, Any] = {}
    for _ in range(100 * n):
        arch = space.sample(rng)
        seen.setdefault(arch if key is None else key(arch), arch)
        if len(seen) == n:
            break
    if len(seen) < n:
        raise NasforgeError(f"could not draw {n} distinct architectures from space {space.name!r}")
    return list(seen.values())


def score_archs(
    estimator: Estimator,
    archs: Iterable[Any],
    results: ProxyResults,
    progress: bool = True,
    on_row: Callable[[str, Measurement], None] | None = None,
) -> int:
    """Score every architecture not yet in ``results`` with ``estimator`` and append its row.

    Returns the number of new rows. ``progress`` shows a tqdm bar.
    """
    space = estimator.space  # type: ignore[attr-defined]
    todo = [a for a in archs if space.format(a) not in results.done]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="scoring", unit="arch", dynamic_ncols=True)
    n = 0
    try:
        for a in todo:
            m = estimator.estimate(a)
            text = space.format(a)
            groups = m.info.get("seconds", {})
            results.append(text, m.metrics, m.cost, {g: groups.get(g, 0.0) for g in
                                                      (c[4:] for c in results.columns if c.startswith("sec_"))})
            n += 1
            if on_row is not None:
                on_row(text, m)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return n


class ProxyTable(Estimator):
    """Stored proxy scores (a results file or DataFrame) as an estimator: a lookup, no network.

    The cost of a query is the row's recorded ``seconds`` (what scoring it took), or the sum of
    the chosen ``groups``' seconds (``sec_<group>`` columns) when given, so searches simulated on
    stored scores are charged what computing those proxies costs.
    """

    fidelities = None

    def __init__(self, space: SearchSpace, table: Any, groups: Sequence[str] | None = None) -> None:
        import pandas as pd

        self.space = space
        self.table = read_results(table) if not isinstance(table, pd.DataFrame) else table
        self.proxies = [c for c in self.table.columns if c in PROXIES]
        if groups is not None:
            missing = [g for g in groups if f"sec_{g}" not in self.table.columns]
            if missing:
                raise NasforgeError(f"no timing column for group(s) {', '.join(missing)} in the table")
            self._cost = self.table[[f"sec_{g}" for g in groups]].sum(axis=1).to_numpy(float)
        else:
            self._cost = self.table["seconds"].to_numpy(float) if "seconds" in self.table else np.zeros(len(self.table))
        self._row = {a: i for i, a in enumerate(self.table.index)}
        self._values = self.table[self.proxies].to_numpy(float)

    @property
    def metric_names(self) -> list[str]:
        return list(self.proxies)

    def higher_is_better(self, metric: str) -> bool:
        return PROXIES[metric].higher_is_better if metric in PROXIES else super().higher_is_better(metric)

    @property
    def archs(self) -> list[Any]:
        """The architectures the table holds (parsed)."""
        return [self.space.parse(a) for a in self.table.index]

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        text = self.space.format(self.space.coerce(arch))
        i = self._row.get(text)
        if i is None:
            raise NasforgeError(f"architecture {text} has no stored proxy scores")
        return Measurement(dict(zip(self.proxies, self._values[i].tolist())), float(self._cost[i]))
