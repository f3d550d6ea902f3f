"""What the dashboard shows, read from a storage without writing to it.

:class:`Reader` opens the storage read-only (nothing is created, migrated or locked) and keeps one
:class:`Snapshot` per study: its trials as read at one moment, with the columns, orders and
figures computed from them. A snapshot is rebuilt only when the study's progress (a cheap read:
its event counter and trials per state) says that something changed, so a page that polls while
a study runs costs one small query per poll until a new result arrives.

Figures are plain Plotly figure dicts (``{"data": [...], "layout": {...}}``) that the page hands
to plotly.js. Every string a study stores (architectures, metric names) is HTML-escaped before it
goes into a figure, since plotly.js reads a few HTML tags in its texts.
"""

from __future__ import annotations

import html
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError, shorten
from nasforge.study.storage import Storage, StudyProgress, Trial, TrialState, get_storage, worker_dead

#: the most markers one figure trace carries (the rest is sampled evenly; incumbents are exact)
MAX_POINTS = 3000
#: the most rows one page of the trial table may ask for
MAX_PAGE = 500
#: op-frequency view: the best trials it counts (at most) and the sample of all trials it compares with
TOP_OPS, ALL_OPS = 500, 2000
#: seconds without a heartbeat after which a running trial's worker counts as gone (as the study's)
STALE_AFTER = 60.0
#: fixed trial columns of the table (then one column per metric)
FIXED_COLUMNS = ("number", "state", "value", "fidelity", "cost", "duration", "started", "arch")
#: x axes of the anytime curve
CURVE_AXES = {"trials": "finished trials", "cost": "cumulative cost", "seconds": "wall-clock seconds",
              "simulated": "simulated seconds"}


class StorageUnavailable(NasforgeError):
    """The storage cannot be opened or read (missing file, not a database, server down)."""


class StudyNotFound(NasforgeError):
    """No study of that name in the storage."""


def clean(obj: Any) -> Any:
    """``obj`` as strict JSON data: NaN and infinities become ``None``, numpy values plain numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, np.generic):
        return clean(obj.item())
    return obj


def esc(text: Any) -> str:
    """Text for a Plotly label: HTML-escaped (plotly.js renders ``&lt;`` as ``<``, never a tag)."""
    return html.escape(str(text), quote=True)


def _fmt_fid(f: float | None) -> str:
    if f is None:
        return "-"
    return f"{f:g}"


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _even(n: int, k: int) -> np.ndarray:
    """At most ``k`` indices spread evenly over ``range(n)`` (all of them when ``n <= k``)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


# --- one study at one moment -----------------------------------------------------------------------
class _Objectives:
    """What :class:`~nasforge.study.Study` reads to define its best trial and Pareto front, over the
    snapshot's trials (so the dashboard applies the library's own definitions)."""

    def __init__(self, trials: list[Trial], metrics: list[str], directions: list[bool]) -> None:
        self.trials = trials
        self.metrics, self.directions = metrics, directions
        self.metric, self.maximize = metrics[0], directions[0]


def _objectives(config: dict[str, Any]) -> tuple[list[str], list[bool]]:
    metric, maximize = config.get("metric", "value"), config.get("maximize", True)
    metrics = [str(m) for m in metric] if isinstance(metric, list) else [str(metric)]
    dirs = [bool(d) for d in maximize] if isinstance(maximize, list) else [bool(maximize)] * len(metrics)
    if len(dirs) != len(metrics):
        dirs = [True] * len(metrics)
    return metrics, dirs


class Snapshot:
    """One study's trials as read at one moment, with what the pages show computed from them."""

    def __init__(self, name: str, study_id: int, config: dict[str, Any], trials: list[Trial],
                 progress: StudyProgress, seconds: float) -> None:
        from nasforge.study import Study

        self.name, self.study_id, self.config, self.trials = name, study_id, config, trials
        self.progress, self.read_seconds = progress, seconds
        self.built = time.time()
        self.metrics, self.directions = _objectives(config)
        self.metric, self.maximize = self.metrics[0], self.directions[0]
        view = _Objectives(trials, self.metrics, self.directions)
        self.best: Trial | None = Study.best_trial.fget(view)  # type: ignore[attr-defined]
        self.front: list[Trial] = Study.pareto_front.fget(view) if len(self.metrics) > 1 else []  # type: ignore[attr-defined]
        names: dict[str, None] = dict.fromkeys(self.metrics)
        for t in trials:
            names.update(dict.fromkeys(t.metrics))
        #: every metric any trial carries, objectives first
        self.metric_names = list(names)
        self.states: dict[str, int] = {}
        for t in trials:
            self.states[t.state.value] = self.states.get(t.state.value, 0) + 1
        self._orders: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._figures: dict[str, Any] = {}

    # --- summary ----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Counts, state, settings and the best trial (what the study list and header show)."""
        now = time.time()
        running = [t for t in self.trials if t.state is TrialState.RUNNING]
        alive = sum(not worker_dead(t.worker, t.heartbeat, STALE_AFTER, now) for t in running)
        waiting = self.states.get(TrialState.WAITING.value, 0)
        if alive or waiting:
            state = "running"
        elif running:
            state = "interrupted"
        else:
            state = "idle" if self.trials else "empty"
        finished = sum(self.states.get(s.value, 0) for s in TrialState if s.finished)
        ends = [t.started + t.duration for t in self.trials if t.started]
        cfg, search = self.config, self.config.get("search") or {}
        strategy = cfg.get("strategy") or {}
        strat = None
        if isinstance(strategy, dict) and strategy.get("name"):
            strat = str(strategy["name"]) + (f" (seed {strategy['seed']})" if strategy.get("seed") is not None else "")
        if search.get("benchmark"):
            estimator = f"table {search['benchmark']}"
        elif search.get("dataset"):
            estimator = f"training on {search['dataset']}"
        else:
            estimator = None
        best = self.best
        return clean({
            "name": self.name,
            "space": cfg.get("space"),
            "estimator": estimator,
            "strategy": strat,
            "metrics": self.metrics,
            "directions": ["max" if d else "min" for d in self.directions],
            "state": state,
            "states": self.states,
            "n_trials": len(self.trials),
            "n_finished": finished,
            "n_running": len(running),
            "n_running_alive": alive,
            "n_waiting": waiting,
            "best": None if best is None else {"number": best.number, "value": best.value, "arch": best.arch,
                                               "fidelity": best.fidelity},
            "front_size": len(self.front),
            "multi_objective": len(self.metrics) > 1,
            "first_start": min((t.started for t in self.trials if t.started), default=None),
            "last_activity": max(ends, default=None),
            "settings": {k: v for k, v in search.items() if v not in (None, {}, [])},
            "constraints": cfg.get("constraints") or [],
            "token": self.progress.token,
            "read_seconds": self.read_seconds,
        })

    # --- the trial table ----------------------------------------------------------------------
    def columns(self) -> list[str]:
        """The table's columns: the fixed ones, then every metric (objectives first); a metric
        named like a fixed column is shown as ``metric:<name>``."""
        return list(FIXED_COLUMNS) + [f"metric:{m}" if m in FIXED_COLUMNS else m for m in self.metric_names]

    def _column_values(self, column: str) -> list[Any]:
        if column in FIXED_COLUMNS:
            if column == "state":
                return [t.state.value for t in self.trials]
            return [getattr(t, column) for t in self.trials]
        name = column[len("metric:"):] if column.startswith("metric:") else column
        if name not in self.metric_names:
            raise NasforgeError(f"unknown column {shorten(column)}; columns: {', '.join(self.columns())}")
        return [t.metrics.get(name) for t in self.trials]

    def order(self, column: str, descending: bool = False) -> np.ndarray:
        """Trial indices sorted by ``column`` (missing and NaN values last either way; ties by
        trial number)."""
        key = f"{column}:{int(descending)}"
        with self._lock:
            cached = self._orders.get(key)
        if cached is not None:
            return cached
        values = self._column_values(column)
        n = len(values)
        numbers = np.array([t.number for t in self.trials], dtype=np.int64)
        if column in ("state", "arch"):
            texts = [str(v) for v in values]
            ranks = np.empty(n, dtype=np.int64)
            ranks[np.array(sorted(range(n), key=texts.__getitem__), dtype=np.int64)] = np.arange(n)
            primary = -ranks if descending else ranks
            order = np.lexsort((numbers, primary))
        else:
            arr = np.array([float(v) if _finite(v) else np.nan for v in values], dtype=float)
            missing = np.isnan(arr)
            primary = np.where(missing, 0.0, -arr if descending else arr)
            order = np.lexsort((numbers, primary, missing))
        with self._lock:
            self._orders[key] = order
        return order

    def rows(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Table rows for the trials at ``indices``: the fixed columns and a ``metrics`` dict."""
        out = []
        for i in indices:
            t = self.trials[int(i)]
            out.append({"number": t.number, "state": t.state.value, "value": t.value, "fidelity": t.fidelity,
                        "cost": t.cost, "duration": t.duration, "started": t.started or None, "arch": t.arch,
                        "error": t.error, "feasible": t.info.get("feasible", True),
                        "metrics": {("metric:" + k if k in FIXED_COLUMNS else k): v for k, v in t.metrics.items()}})
        return clean(out)

    def select(self, sort: str = "number", descending: bool = False, state: str | None = None,
               query: str | None = None) -> np.ndarray:
        """Indices of the trials matching ``state`` (a trial state) and ``query`` (text the
        architecture contains, case-insensitive; or ``#N`` for trial N), sorted by ``sort``."""
        order = self.order(sort, descending)
        if state:
            try:
                wanted = TrialState(state)
            except ValueError:
                raise NasforgeError(f"unknown trial state {shorten(state)}; allowed: "
                                    f"{', '.join(s.value for s in TrialState)}") from None
            keep = np.array([self.trials[i].state is wanted for i in order], dtype=bool)
            order = order[keep] if len(order) else order
        if query:
            q = query.strip()
            if q.startswith("#") and q[1:].strip().isdigit():
                num = int(q[1:])
                keep = np.array([self.trials[i].number == num for i in order], dtype=bool)
            else:
                low = q.lower()
                keep = np.array([low in self.trials[i].arch.lower() for i in order], dtype=bool)
            order = order[keep] if len(order) else order
        return order

    def page(self, sort: str = "number", descending: bool = False, state: str | None = None,
             query: str | None = None, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        """One page of the trial table."""
        if not 1 <= limit <= MAX_PAGE:
            raise NasforgeError(f"bad limit {limit}: expected 1..{MAX_PAGE}")
        if offset < 0:
            raise NasforgeError(f"bad offset {offset}: expected a whole number >= 0")
        order = self.select(sort, descending, state, query)
        part = order[offset:offset + limit]
        return {"total": len(self.trials), "matching": int(len(order)), "offset": offset, "limit": limit,
                "sort": sort, "descending": descending, "columns": self.columns(), "objectives": self.metrics,
                "rows": self.rows(part), "token": self.progress.token}

    def csv_lines(self, sort: str = "number", descending: bool = False, state: str | None = None,
                  query: str | None = None) -> Iterator[str]:
        """The matching trials as CSV text, line by line (every column; texts that a spreadsheet
        would run as a formula are prefixed with ``'``)."""
        import csv
        import io

        order = self.select(sort, descending, state, query)
        metric_cols = self.metric_names
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["number", "state", "value", "fidelity", "cost", "duration", "started", "arch", "error"]
                        + [f"metric_{m}" if m in FIXED_COLUMNS or m == "error" else m for m in metric_cols])
        yield buf.getvalue()
        for start in range(0, len(order), 1000):
            buf.seek(0)
            buf.truncate()
            for i in order[start:start + 1000]:
                t = self.trials[int(i)]
                writer.writerow([t.number, t.state.value, _csv_num(t.value), _csv_num(t.fidelity), _csv_num(t.cost),
                                 _csv_num(t.duration), _csv_num(t.started), _csv_text(t.arch), _csv_text(t.error)]
                                + [_csv_num(t.metrics.get(m)) for m in metric_cols])
            yield buf.getvalue()

    # --- figures ------------------------------------------------------------------------------
    def _finished_in_order(self) -> list[Trial]:
        done = [t for t in self.trials if t.state.finished]
        if all(t.tell_seq is not None for t in done):
            return sorted(done, key=lambda t: t.tell_seq)  # type: ignore[arg-type, return-value]
        return sorted(done, key=lambda t: (t.started + t.duration, t.number))

    def curve_axes(self) -> list[str]:
        """The x axes the anytime curve can be drawn against."""
        axes = ["trials", "cost", "seconds"]
        done = [t for t in self.trials if t.state.finished]
        if done and all("sim_end" in t.info for t in done):
            axes.append("simulated")
        return axes

    def curve(self, x: str = "trials") -> dict[str, Any]:
        """The anytime curve of the first objective: every complete trial's value and the best so
        far, one line per fidelity (values of different fidelities are never compared)."""
        if x not in CURVE_AXES:
            raise NasforgeError(f"unknown x axis {shorten(x)}; allowed: {', '.join(CURVE_AXES)}")
        if x not in self.curve_axes():
            raise NasforgeError(f"x axis {x!r} is not available for study {shorten(self.name)}; "
                                f"available: {', '.join(self.curve_axes())}")
        key = f"curve:{x}"
        if key in self._figures:
            return self._figures[key]
        done = self._finished_in_order()
        if x == "trials":
            xs = np.arange(1, len(done) + 1, dtype=float)
        elif x == "cost":
            xs = np.cumsum([float(t.cost) if _finite(t.cost) else 0.0 for t in done])
        elif x == "seconds":
            t0 = min((t.started for t in done if t.started), default=0.0)
            xs = np.array([t.started + t.duration - t0 if t.started else np.nan for t in done], dtype=float)
        else:
            t0 = min(float(t.info["sim_start"]) for t in done) if done and all("sim_start" in t.info for t in done) \
                else 0.0
            xs = np.array([float(t.info["sim_end"]) - t0 for t in done], dtype=float)
        sign = 1.0 if self.maximize else -1.0
        fids = sorted({t.fidelity for t in done if t.state is TrialState.COMPLETE},
                      key=lambda f: math.inf if f is None else f)
        palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
        data: list[dict[str, Any]] = []
        many = len(fids) > 1
        for k, fid in enumerate(fids):
            colour = palette[k % len(palette)]
            idx = [i for i, t in enumerate(done) if t.state is TrialState.COMPLETE and t.fidelity == fid
                   and _finite(t.value)]
            feasible = [i for i in idx if done[i].info.get("feasible", True)]
            infeasible = [i for i in idx if not done[i].info.get("feasible", True)]
            # the incumbent: exact, one point per improvement (and the last x)
            inc_x: list[float] = []
            inc_y: list[float] = []
            improving: list[int] = []
            best = -math.inf
            for i in feasible:
                v = sign * float(done[i].value)  # type: ignore[arg-type]
                if v > best:
                    best = v
                    improving.append(i)
                    inc_x.append(float(xs[i]))
                    inc_y.append(float(done[i].value))  # type: ignore[arg-type]
            if inc_x and len(done):
                inc_x.append(float(np.nanmax(xs)))
                inc_y.append(inc_y[-1])
            keep = set(improving)
            shown = sorted(keep | {feasible[j] for j in _even(len(feasible), MAX_POINTS)})
            suffix = f" (fidelity {_fmt_fid(fid)})" if many else ""
            data.append({
                "type": "scatter", "mode": "markers", "name": esc("trials" + suffix),
                "x": xs[shown].tolist() if shown else [], "y": [done[i].value for i in shown],
                "customdata": [done[i].number for i in shown],
                "text": [esc(done[i].arch) for i in shown],
                "hovertemplate": "trial #%{customdata}<br>%{text}<br>%{y}<extra></extra>",
                "marker": {"size": 5, "opacity": 0.45, "color": colour},
            })
            if infeasible:
                sub = [infeasible[j] for j in _even(len(infeasible), MAX_POINTS)]
                data.append({
                    "type": "scatter", "mode": "markers", "name": esc("infeasible" + suffix),
                    "x": xs[sub].tolist(), "y": [done[i].value for i in sub],
                    "customdata": [done[i].number for i in sub], "text": [esc(done[i].arch) for i in sub],
                    "hovertemplate": "trial #%{customdata} (infeasible)<br>%{text}<br>%{y}<extra></extra>",
                    "marker": {"size": 5, "opacity": 0.5, "color": "#999999", "symbol": "x"},
                })
            data.append({
                "type": "scatter", "mode": "lines", "name": esc("best so far" + suffix), "x": inc_x, "y": inc_y,
                "line": {"shape": "hv", "width": 2.5, "color": colour}, "hoverinfo": "x+y",
            })
        figure = {
            "data": data,
            "layout": {
                "xaxis": {"title": {"text": esc(CURVE_AXES[x])}},
                "yaxis": {"title": {"text": esc(f"{self.metric} ({'max' if self.maximize else 'min'})")}},
                "margin": {"l": 60, "r": 20, "t": 30, "b": 50}, "hovermode": "closest",
                "legend": {"orientation": "h", "y": 1.12},
            },
            "meta": {"x": x, "axes": self.curve_axes(), "complete": sum(len(d["x"]) for d in data
                                                                         if d["mode"] == "markers"),
                     "finished": len(done), "token": self.progress.token},
        }
        figure = clean(figure)
        self._figures[key] = figure
        return figure

    def top_fidelity_complete(self) -> list[Trial]:
        """Complete, feasible trials with a finite objective at the largest fidelity evaluated."""
        done = [t for t in self.trials if t.state is TrialState.COMPLETE and _finite(t.value)
                and t.info.get("feasible", True)]
        if not done:
            return []
        top = max(math.inf if t.fidelity is None else t.fidelity for t in done)
        return [t for t in done if (math.inf if t.fidelity is None else t.fidelity) == top]

    def op_frequency(self, space: Any) -> dict[str, Any]:
        """How often each operation (node label of ``space.graph``) appears per architecture in
        the best trials (top 10%, at most :data:`TOP_OPS`) against all complete trials (an even
        sample of at most :data:`ALL_OPS`), at the largest fidelity."""
        if "ops" in self._figures:
            return self._figures["ops"]
        done = self.top_fidelity_complete()
        if not done:
            return {"data": [], "layout": {}, "meta": {"empty": "no complete trial yet"}}
        sign = -1.0 if self.maximize else 1.0
        ranked = sorted(done, key=lambda t: (sign * float(t.value), t.number))  # type: ignore[arg-type]
        n_top = min(TOP_OPS, max(1, len(ranked) // 10))
        top = ranked[:n_top]
        everyone = [ranked[i] for i in _even(len(ranked), ALL_OPS)]
        labels_of: dict[str, list[str]] = {}
        failed = 0

        def count(trials: list[Trial]) -> dict[str, float]:
            nonlocal failed
            totals: dict[str, float] = {}
            for t in trials:
                labels = labels_of.get(t.arch)
                if labels is None:
                    try:
                        _adj, labels = space.graph(space.parse(t.arch))
                        labels = [str(v) for v in list(labels)[1:-1]]  # node 0 is the input, the last the output
                    except Exception:  # noqa: BLE001 - an architecture the space no longer reads
                        failed += 1
                        labels = []
                    labels_of[t.arch] = labels
                for lab in labels:
                    totals[lab] = totals.get(lab, 0.0) + 1.0
            return {k: v / max(1, len(trials)) for k, v in totals.items()}

        f_top, f_all = count(top), count(everyone)
        ops = sorted(set(f_top) | set(f_all), key=lambda k: (-(f_top.get(k, 0.0) + f_all.get(k, 0.0)), k))[:40]
        figure = {
            "data": [
                {"type": "bar", "name": esc(f"best {len(top)}"), "x": [esc(o) for o in ops],
                 "y": [f_top.get(o, 0.0) for o in ops], "marker": {"color": "#d62728"}},
                {"type": "bar", "name": esc(f"all ({len(everyone)}" + (" sampled)" if len(everyone) < len(ranked)
                                                                       else ")")),
                 "x": [esc(o) for o in ops], "y": [f_all.get(o, 0.0) for o in ops], "marker": {"color": "#7f7f7f"}},
            ],
            "layout": {"barmode": "group", "yaxis": {"title": {"text": "occurrences per architecture"}},
                       "margin": {"l": 60, "r": 20, "t": 30, "b": 110}, "legend": {"orientation": "h", "y": 1.12}},
            "meta": {"top": len(top), "all": len(everyone), "unreadable": failed},
        }
        figure = clean(figure)
        self._figures["ops"] = figure
        return figure

    def pareto(self) -> dict[str, Any] | None:
        """The first two objectives of every complete feasible trial at the largest fidelity, with
        the Pareto front (over all objectives) drawn as a line; None for a single objective."""
        if len(self.metrics) < 2:
            return None
        if "pareto" in self._figures:
            return self._figures["pareto"]
        m0, m1 = self.metrics[0], self.metrics[1]
        on_front = {t.number for t in self.front}
        pts = [t for t in self.top_fidelity_complete()
               if all(_finite(t.metrics.get(m)) for m in self.metrics) and t.number not in on_front]
        sub = [pts[i] for i in _even(len(pts), MAX_POINTS)]
        front = sorted(self.front, key=lambda t: (float(t.metrics[m0]), float(t.metrics[m1])))

        def trace(ts: list[Trial], name: str, style: dict[str, Any]) -> dict[str, Any]:
            return {"type": "scatter", "name": esc(name), "x": [t.metrics[m0] for t in ts],
                    "y": [t.metrics[m1] for t in ts], "customdata": [t.number for t in ts],
                    "text": [esc(t.arch) for t in ts],
                    "hovertemplate": "trial #%{customdata}<br>%{text}<br>(%{x}, %{y})<extra></extra>", **style}

        figure = {
            "data": [trace(sub, "dominated", {"mode": "markers", "marker": {"size": 5, "color": "#9e9e9e",
                                                                             "opacity": 0.5}}),
                     trace(front, f"Pareto front ({len(front)})",
                           {"mode": "lines+markers", "line": {"shape": "linear", "color": "#d62728"},
                            "marker": {"size": 8, "color": "#d62728"}})],
            "layout": {
                "xaxis": {"title": {"text": esc(f"{m0} ({'max' if self.directions[0] else 'min'})")}},
                "yaxis": {"title": {"text": esc(f"{m1} ({'max' if self.directions[1] else 'min'})")}},
                "margin": {"l": 60, "r": 20, "t": 30, "b": 50}, "hovermode": "closest",
                "legend": {"orientation": "h", "y": 1.12},
            },
            "meta": {"front": len(front), "objectives": self.metrics,
                     "note": (f"front over all {len(self.metrics)} objectives; the first two shown"
                              if len(self.metrics) > 2 else "")},
        }
        figure = clean(figure)
        self._figures["pareto"] = figure
        return figure

    def rank_scatter(self) -> dict[str, Any] | None:
        """Ranks of each zero-cost proxy score against ranks of a reference metric (the first
        objective unless it is itself a proxy), over the complete trials that have both, with
        Spearman's rho and Kendall's tau; None when no trial has both."""
        if "rank" in self._figures:
            return self._figures["rank"]
        from nasforge.analysis.correlation import kendall_tau, rankdata, spearman
        from nasforge.estimation.proxies.base import PROXIES

        proxies = [m for m in self.metric_names if m in PROXIES]
        if not any(PROXIES[m].reference != "baseline" for m in proxies):
            return None  # only parameter or FLOP counts (a table's cost columns): no proxy results
        refs = [m for m in self.metric_names if m not in PROXIES]
        if not refs:
            return None
        ref = self.metric if self.metric in refs else refs[0]
        done = [t for t in self.trials if t.state is TrialState.COMPLETE]
        data: list[dict[str, Any]] = []
        stats: list[dict[str, Any]] = []
        for p in proxies:
            pairs = [(float(t.metrics[p]), float(t.metrics[ref]), t) for t in done
                     if _finite(t.metrics.get(p)) and _finite(t.metrics.get(ref))]
            if len(pairs) < 3:
                continue
            x = np.array([a for a, _, _ in pairs])
            y = np.array([b for _, b, _ in pairs])
            rho = spearman(x, y)
            sample = _even(len(x), MAX_POINTS)
            tau = kendall_tau(x[sample], y[sample])
            rx, ry = rankdata(x), rankdata(y)
            stats.append({"proxy": p, "n": len(pairs), "spearman": rho, "kendall": tau,
                          "kendall_sample": int(len(sample))})
            data.append({
                "type": "scatter", "mode": "markers", "name": esc(p), "visible": not data,
                "x": rx[sample].tolist(), "y": ry[sample].tolist(),
                "customdata": [pairs[i][2].number for i in sample],
                "text": [esc(pairs[i][2].arch) for i in sample],
                "hovertemplate": "trial #%{customdata}<br>%{text}<extra></extra>", "marker": {"size": 5, "opacity": 0.6},
            })
        if not data:
            return None
        title = [esc(f"{s['proxy']}: Spearman ρ = {s['spearman']:.3f}, Kendall τ = {s['kendall']:.3f} "
                     f"({s['n']} trials)") for s in stats]
        buttons = [{"label": esc(s["proxy"]), "method": "update",
                    "args": [{"visible": [j == i for j in range(len(data))]}, {"title": {"text": title[i]}}]}
                   for i, s in enumerate(stats)]
        figure = {
            "data": data,
            "layout": {
                "title": {"text": title[0], "font": {"size": 13}},
                "xaxis": {"title": {"text": "rank of the proxy score (1 = lowest)"}},
                "yaxis": {"title": {"text": esc(f"rank of {ref} (1 = lowest)")}},
                "margin": {"l": 60, "r": 20, "t": 60, "b": 50}, "hovermode": "closest", "showlegend": False,
                "updatemenus": [{"buttons": buttons, "x": 1.0, "xanchor": "right", "y": 1.18, "yanchor": "top"}]
                if len(buttons) > 1 else [],
            },
            "meta": {"reference": ref, "stats": stats},
        }
        figure = clean(figure)
        self._figures["rank"] = figure
        return figure


def _csv_num(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return "" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def _csv_text(v: Any) -> str:
    if v is None:
        return ""
    s = str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


# --- the reader ------------------------------------------------------------------------------------
@dataclass
class _Entry:
    snapshot: Snapshot
    checked: float


class Reader:
    """Read-only access to the studies of one storage, with a snapshot cache.

    ``storage`` is a URL (opened with ``create=False``: a missing SQLite file or a database without
    nasforge tables is a :class:`StorageUnavailable` error, and nothing is written) or a
    :class:`Storage`. A storage that could not be opened is tried again on the next call, so the
    page recovers once the database appears.
    """

    def __init__(self, storage: str | Storage, cache_size: int = 8) -> None:
        self.spec = storage
        self.cache_size = cache_size
        self._storage: Storage | None = storage if isinstance(storage, Storage) else None
        self._guard = threading.Lock()
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._building: dict[str, threading.Lock] = {}
        self._spaces: dict[str, Any] = {}
        self._closed = False

    def describe(self) -> str:
        """The storage's URL with any password hidden."""
        if isinstance(self.spec, Storage):
            return self.spec.describe()
        return public_url(self.spec)

    def storage(self) -> Storage:
        with self._guard:
            if self._closed:
                raise StorageUnavailable("the dashboard is shutting down")
            if self._storage is None:
                try:
                    self._storage = get_storage(self.spec, create=False)
                except NasforgeError as exc:
                    raise StorageUnavailable(str(exc)) from None
                except Exception as exc:  # noqa: BLE001 - a driver error the storage did not word
                    raise StorageUnavailable(f"cannot open storage {self.describe()}: {type(exc).__name__}: "
                                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
            return self._storage

    def _read(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (StorageUnavailable, StudyNotFound):
            raise
        except NasforgeError as exc:
            raise StorageUnavailable(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the database vanished or broke under us
            raise StorageUnavailable(f"cannot read storage {self.describe()}: {type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else ''}") from None

    def close(self) -> None:
        with self._guard:
            self._closed = True
            if self._storage is not None and not isinstance(self.spec, Storage):
                self._storage.close()
            self._storage = None
            self._cache.clear()

    def study_names(self) -> list[str]:
        store = self.storage()
        return self._read(store.study_names)

    def _find(self, name: str) -> tuple[int, dict[str, Any]]:
        store = self.storage()
        found = self._read(store.study_id, name)
        if found is None:
            names = self._read(store.study_names)
            listed = ", ".join(shorten(n, 60) for n in names[:20]) + (" ..." if len(names) > 20 else "")
            raise StudyNotFound(f"no study {shorten(name)} in {self.describe()}; studies: {listed or 'none'}")
        return found

    def exists(self, name: str) -> None:
        """Raise :class:`StudyNotFound` (listing the studies) unless study ``name`` exists."""
        self._find(name)

    def warm(self, limit: int | None = None) -> None:
        """Read the snapshots of the most recent studies (at most the cache size) and prepare their
        spaces, so that the first page a user opens is quick. Errors are left for the pages."""
        try:
            names = self.study_names()[::-1][: limit or self.cache_size]
            for name in names:
                snap = self.snapshot(name)
                space = self.space(snap)
                if snap.best is not None:
                    space.graph(space.parse(snap.best.arch))  # spaces that build tables on first use
        except Exception:  # noqa: BLE001 - the pages report what went wrong
            pass

    def progress(self, name: str) -> StudyProgress:
        """The study's progress (one small query)."""
        sid, _cfg = self._find(name)
        return self._read(self.storage().progress, sid)

    def snapshot(self, name: str) -> Snapshot:
        """The study's snapshot, rebuilt when its progress changed since the cached one."""
        sid, cfg = self._find(name)
        store = self.storage()
        progress = self._read(store.progress, sid)
        with self._guard:
            entry = self._cache.get(name)
            if entry is not None and entry.snapshot.study_id == sid and entry.snapshot.progress == progress:
                self._cache.move_to_end(name)
                return entry.snapshot
            building = self._building.setdefault(name, threading.Lock())
        with building:  # one build per study at a time; the others wait for it
            with self._guard:
                entry = self._cache.get(name)
            if entry is not None and entry.snapshot.study_id == sid and entry.snapshot.progress == progress:
                return entry.snapshot
            t0 = time.perf_counter()
            trials = self._read(store.trials, sid)
            snap = Snapshot(name, sid, cfg, trials, progress, time.perf_counter() - t0)
            with self._guard:
                self._cache[name] = _Entry(snap, time.time())
                self._cache.move_to_end(name)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return snap

    def summaries(self) -> list[dict[str, Any]]:
        """A summary of every study (see :meth:`Snapshot.summary`); a study that cannot be read
        gets an ``error`` entry instead of failing the list."""
        out = []
        for name in self.study_names():
            try:
                out.append(self.snapshot(name).summary())
            except StorageUnavailable:
                raise
            except NasforgeError as exc:
                out.append({"name": name, "error": str(exc)})
        return out

    def space(self, snap: Snapshot) -> Any:
        """The study's search space, rebuilt from its stored description (cached)."""
        spec = snap.config.get("space_spec")
        key = json.dumps([snap.config.get("space"), spec], sort_keys=True, default=str)
        with self._guard:
            if key in self._spaces:
                return self._spaces[key]
        space = stored_space(snap.config)
        with self._guard:
            self._spaces[key] = space
        return space

    def cell(self, name: str, number: int) -> dict[str, Any]:
        """Trial ``number`` of the study: its record and the SVG diagram of its architecture."""
        from nasforge.dashboard.cells import render_svg

        snap = self.snapshot(name)
        trial = next((t for t in snap.trials if t.number == number), None)
        if trial is None:
            raise StudyNotFound(f"study {shorten(name)} has no trial {number}")
        record = snap.rows([snap.trials.index(trial)])[0]
        record["info"] = clean({k: v for k, v in trial.info.items() if isinstance(v, (int, float, str, bool))
                                or v is None})
        try:
            space = self.space(snap)
            arch = space.parse(trial.arch)
            cells = getattr(space, "cells", None)
            if callable(cells):
                graphs = list(cells(arch))
                names = list(getattr(space, "cell_names", ())) or [f"cell {i + 1}" for i in range(len(graphs))]
            else:
                graphs, names = [space.graph(arch)], [""]
            record["svg"] = render_svg(graphs, names)
            record["space"] = getattr(space, "name", "")
        except Exception as exc:  # noqa: BLE001 - any space error is shown, not raised
            record["svg"] = None
            record["diagram_error"] = f"no diagram: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return record

    def figures(self, name: str) -> dict[str, Any]:
        """Op-frequency, Pareto and rank-scatter figures (each None where it does not apply)."""
        snap = self.snapshot(name)
        out: dict[str, Any] = {"token": snap.progress.token}
        try:
            out["ops"] = snap.op_frequency(self.space(snap))
        except Exception as exc:  # noqa: BLE001 - a space that cannot be rebuilt here
            out["ops"] = {"data": [], "layout": {}, "meta": {"empty": f"cannot rebuild the search space: "
                                                                      f"{str(exc).splitlines()[0] if str(exc) else exc}"}}
        out["pareto"] = snap.pareto()
        out["rank"] = snap.rank_scatter()
        return out


def stored_space(config: dict[str, Any]) -> Any:
    """A study's search space from its stored configuration: its spec, else its registry name."""
    from nasforge.params import from_spec
    from nasforge.spaces import get_space

    spec = config.get("space_spec")
    if spec is not None:
        return from_spec(spec)
    return get_space(str(config.get("space")))


def public_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: show it as given (shortened)
        return shorten(url, 200).strip("'")


__all__ = ["Reader", "Snapshot", "StorageUnavailable", "StudyNotFound", "clean", "esc", "stored_space", "public_url",
           "MAX_PAGE", "MAX_POINTS", "CURVE_AXES"]
