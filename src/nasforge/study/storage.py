"""Where studies and their trials live: in memory, or in a relational database via SQLAlchemy.

A study is an append-only log of *events*: each strategy ``ask`` (a new trial) and each
``tell`` (a finished trial) gets the next number of a per-study counter, assigned inside an
exclusive per-study transaction (:meth:`Storage.lock`). Every process driving the study replays
the same log into its own copy of the strategy, so all of them hold the same strategy state and
a resumed study continues exactly where it stopped, whatever the order in which parallel results
arrived. Trial numbers are assigned in the same transaction, so they are unique across processes
and machines.
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from nasforge.errors import NasforgeError, shorten

#: version of the database layout written by this nasforge; older files are migrated on open
SCHEMA_VERSION = 2


class TrialState(str, Enum):
    """Life cycle of a trial.

    ``WAITING``: queued for evaluation (a re-queued copy of a trial whose worker died).
    ``INTERRUPTED``: this process was interrupted while the trial ran; ``STALE``: its worker died
    (killed, crashed, lost) — both are re-queued as a ``WAITING`` copy and do not count towards a
    budget.
    """

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    PRUNED = "pruned"
    INTERRUPTED = "interrupted"
    WAITING = "waiting"
    STALE = "stale"

    @property
    def finished(self) -> bool:
        """Counts towards the budget: complete, failed or pruned."""
        return self in (TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED)

    @property
    def active(self) -> bool:
        """Running or queued to run."""
        return self in (TrialState.RUNNING, TrialState.WAITING)


_FINISHED = frozenset((TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED))
_ACTIVE = frozenset((TrialState.RUNNING, TrialState.WAITING))


@dataclass(slots=True)
class Trial:
    """One evaluation of one architecture at one fidelity.

    ``ask_seq``/``tell_seq`` place the trial's ask and tell in the study's event log;
    ``retry_of`` is the number of the original trial when this one re-runs it; ``worker`` names
    the process that owns a running trial and ``heartbeat`` when that process was last seen.
    ``suggestion`` (not stored) is the strategy's suggestion, with the architecture object.
    """

    number: int
    arch: str
    fidelity: float | None = None
    state: TrialState = TrialState.RUNNING
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    cost: float = 0.0
    started: float = 0.0
    duration: float = 0.0
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    ask_seq: int | None = None
    tell_seq: int | None = None
    retry_of: int | None = None
    worker: str | None = None
    heartbeat: float = 0.0
    suggestion: Any = field(default=None, repr=False, compare=False)

    def copy(self) -> Trial:
        """A copy without the suggestion (metrics and info copied too)."""
        return Trial(self.number, self.arch, self.fidelity, self.state, self.value, dict(self.metrics), self.cost,
                     self.started, self.duration, self.error, dict(self.info), self.ask_seq, self.tell_seq,
                     self.retry_of, self.worker, self.heartbeat)


# --- who runs a trial -------------------------------------------------------------------------------
HOST = socket.gethostname()
_LIVE_WORKERS: set[str] = set()  # driver ids alive in this process


def new_worker_id() -> str:
    """An id for one driving process/object: ``host:pid:token``."""
    wid = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    _LIVE_WORKERS.add(wid)
    return wid


def retire_worker(wid: str) -> None:
    _LIVE_WORKERS.discard(wid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that nobody reaped yet is a zombie: dead for our purpose
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def worker_dead(worker: str | None, heartbeat: float, grace: float, now: float | None = None) -> bool:
    """Whether the owner of a running trial is gone: a process of this host that no longer
    exists (or this process's finished driver), or a heartbeat older than ``grace`` seconds."""
    if not worker:
        return True
    now = time.time() if now is None else now
    if heartbeat and now - heartbeat > grace:
        return True
    host, _, rest = worker.partition(":")
    pid_text = rest.partition(":")[0]
    if host == HOST and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            return worker not in _LIVE_WORKERS
        return not _pid_alive(pid)
    return False


# --- the interface ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyProgress:
    """How far a study is: its event counter (``seq``), how many trials it ever created
    (``n_trials``, re-queued copies included) and how many trials are in each state. Any new trial,
    result or change of state changes it, so a reader (a dashboard) polls it to tell whether there
    is anything new to read."""

    seq: int
    n_trials: int
    states: dict[str, int]

    @property
    def token(self) -> str:
        """A short string that changes whenever the progress does."""
        return f"{self.seq}.{self.n_trials}." + ".".join(f"{k}{v}" for k, v in sorted(self.states.items()))


class StudyTx(ABC):
    """An exclusive transaction on one study (see :meth:`Storage.lock`)."""

    #: the study's event counter: the seq of the last ask/tell event
    seq: int

    @abstractmethod
    def events(self, after: int) -> list[tuple[int, str, Trial]]:
        """Events with seq > ``after``, in order: (seq, "ask" | "tell", trial)."""

    @abstractmethod
    def counts(self) -> tuple[int, int, float]:
        """(finished trials, active trials, total cost of finished trials)."""

    @abstractmethod
    def add(self, trial: Trial, event: bool) -> None:
        """Insert a new trial: sets ``trial.number`` (and ``ask_seq`` when ``event``)."""

    @abstractmethod
    def update(self, trial: Trial, event: bool = False) -> None:
        """Store a trial's new state (with a tell event, setting ``tell_seq``, when ``event``)."""

    @abstractmethod
    def get(self, number: int) -> Trial | None:
        """The stored trial ``number``."""

    def owner(self, number: int) -> tuple[TrialState, str | None, int | None, int | None] | None:
        """(state, worker, ask_seq, retry_of) of trial ``number``."""
        t = self.get(number)
        return None if t is None else (t.state, t.worker, t.ask_seq, t.retry_of)

    @abstractmethod
    def claim_waiting(self, worker: str) -> Trial | None:
        """The oldest WAITING trial, now RUNNING and owned by ``worker``; None if there is none."""

    @abstractmethod
    def running(self) -> list[Trial]:
        """Every RUNNING trial."""

    def requeue(self, trial: Trial, state: TrialState, reason: str, max_retries: int = 1) -> Trial | None:
        """Mark a trial whose evaluation was lost (``STALE``/``INTERRUPTED``) and queue a WAITING
        copy of it. A trial already lost ``max_retries`` times to dead workers fails instead (a
        tell event with no result). Returns the queued copy, or None."""
        root = trial.retry_of if trial.retry_of is not None else trial.number
        lost = int(trial.info.get("stale_count", 0)) + (state is TrialState.STALE)
        trial.worker = None
        if lost > max_retries:
            trial.state, trial.error = TrialState.FAILED, f"{reason}; already re-queued {max_retries} time(s)"
            self.update(trial, event=True)
            return None
        trial.state, trial.error = state, reason
        self.update(trial)
        info = {k: v for k, v in trial.info.items() if k in ("rung", "bracket", "promoted")}
        info["stale_count"] = lost
        retry = Trial(-1, trial.arch, trial.fidelity, TrialState.WAITING, info=info, retry_of=root)
        self.add(retry, event=False)
        return retry


class Storage(ABC):
    """Persistence of studies (a name and a JSON config) and their numbered trials."""

    @abstractmethod
    def get_or_create_study(self, name: str, config: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        """(study id, stored config, created?) for study ``name``."""

    @abstractmethod
    def study_id(self, name: str) -> tuple[int, dict[str, Any]] | None:
        """(id, config) of study ``name``, or None if there is none."""

    @abstractmethod
    def update_config(self, study_id: int, config: dict[str, Any]) -> None:
        """Replace the stored config of a study."""

    @abstractmethod
    def study_names(self) -> list[str]:
        """Names of the stored studies."""

    @abstractmethod
    def trials(self, study_id: int) -> list[Trial]:
        """All trials of a study, by number."""

    @abstractmethod
    def lock(self, study_id: int) -> Any:
        """Context manager: an exclusive :class:`StudyTx` on the study, committed on exit."""

    def heartbeat(self, study_id: int, worker: str) -> None:
        """Record that ``worker`` is alive (on its running trials)."""

    def progress(self, study_id: int) -> StudyProgress:
        """How far the study is, read without locking it (see :class:`StudyProgress`). This
        default reads every trial; storages override it with a cheap read."""
        trials = self.trials(study_id)
        seq = max((s for t in trials for s in (t.ask_seq, t.tell_seq) if s is not None), default=0)
        states: dict[str, int] = {}
        for t in trials:
            states[t.state.value] = states.get(t.state.value, 0) + 1
        return StudyProgress(seq, len(trials), states)

    def describe(self) -> str:
        return type(self).__name__

    def close(self) -> None:
        pass

    # convenience for code that writes trials by hand (reports, tests)
    def add_trial(self, study_id: int, trial: Trial) -> None:
        """Store a trial outside the event log (it is not replayed into strategies)."""
        with self.lock(study_id) as tx:
            tx.add(trial, event=False)

    def finish_trial(self, study_id: int, trial: Trial) -> None:
        with self.lock(study_id) as tx:
            tx.update(trial)


# --- in memory --------------------------------------------------------------------------------------
class _MemStudy:
    def __init__(self, sid: int, name: str, config: dict[str, Any]) -> None:
        self.id, self.name, self.config = sid, name, dict(config)
        self.trials: list[Trial] = []
        self.events: list[tuple[str, int]] = []  # index i holds the event with seq i + 1
        self.waiting: list[int] = []
        self.finished = 0
        self.active = 0
        self.spent = 0.0
        self.lock = threading.RLock()
        self.tx = _MemTx(self)


class _MemTx(StudyTx):
    """Also its own context manager: holding the study's (re-entrant) lock."""

    def __init__(self, st: _MemStudy) -> None:
        self.st = st

    def __enter__(self) -> _MemTx:
        self.st.lock.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.st.lock.release()

    @property
    def seq(self) -> int:  # type: ignore[override]
        return len(self.st.events)

    def events(self, after: int) -> list[tuple[int, str, Trial]]:
        trials = self.st.trials
        return [(i, kind, trials[n].copy()) for i, (kind, n) in enumerate(self.st.events[after:], start=after + 1)]

    def counts(self) -> tuple[int, int, float]:
        return self.st.finished, self.st.active, self.st.spent

    def _account(self, t: Trial, sign: int) -> None:
        state = t.state
        if state in _FINISHED:
            self.st.finished += sign
            self.st.spent += sign * t.cost
        elif state in _ACTIVE:
            self.st.active += sign

    def add(self, trial: Trial, event: bool) -> None:
        st = self.st
        trial.number = len(st.trials)
        if event:
            st.events.append(("ask", trial.number))
            trial.ask_seq = len(st.events)
        if trial.state is TrialState.WAITING:
            st.waiting.append(trial.number)
        st.trials.append(trial.copy())
        self._account(trial, +1)

    def update(self, trial: Trial, event: bool = False) -> None:
        st = self.st
        if event:
            st.events.append(("tell", trial.number))
            trial.tell_seq = len(st.events)
        self._account(st.trials[trial.number], -1)
        st.trials[trial.number] = trial.copy()
        self._account(trial, +1)

    def get(self, number: int) -> Trial | None:
        return self.st.trials[number].copy() if 0 <= number < len(self.st.trials) else None

    def owner(self, number: int) -> tuple[TrialState, str | None, int | None, int | None] | None:
        if not 0 <= number < len(self.st.trials):
            return None
        t = self.st.trials[number]
        return t.state, t.worker, t.ask_seq, t.retry_of

    def claim_waiting(self, worker: str) -> Trial | None:
        st = self.st
        while st.waiting:
            t = st.trials[st.waiting.pop(0)]
            if t.state is TrialState.WAITING:
                t.state, t.worker, t.started, t.heartbeat = TrialState.RUNNING, worker, time.time(), time.time()
                return t.copy()
        return None

    def running(self) -> list[Trial]:
        return [t.copy() for t in self.st.trials if t.state is TrialState.RUNNING]


class InMemoryStorage(Storage):
    """Studies in a Python dict: for fast simulation on tabular benchmarks. Nothing persists;
    safe to share between the threads of one process."""

    def __init__(self) -> None:
        self._studies: dict[str, _MemStudy] = {}
        self._by_id: list[_MemStudy] = []
        self._guard = threading.Lock()

    def get_or_create_study(self, name: str, config: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        with self._guard:
            st = self._studies.get(name)
            if st is not None:
                return st.id, dict(st.config), False
            st = _MemStudy(len(self._by_id), name, config)
            self._studies[name] = st
            self._by_id.append(st)
            return st.id, dict(config), True

    def study_id(self, name: str) -> tuple[int, dict[str, Any]] | None:
        st = self._studies.get(name)
        return None if st is None else (st.id, dict(st.config))

    def update_config(self, study_id: int, config: dict[str, Any]) -> None:
        self._by_id[study_id].config = dict(config)

    def study_names(self) -> list[str]:
        return list(self._studies)

    def trials(self, study_id: int) -> list[Trial]:
        with self._by_id[study_id].lock:
            return [t.copy() for t in self._by_id[study_id].trials]

    def lock(self, study_id: int) -> _MemTx:
        return self._by_id[study_id].tx

    def progress(self, study_id: int) -> StudyProgress:
        st = self._by_id[study_id]
        with st.lock:
            states: dict[str, int] = {}
            for t in st.trials:
                states[t.state.value] = states.get(t.state.value, 0) + 1
            return StudyProgress(len(st.events), len(st.trials), states)

    def describe(self) -> str:
        return ":memory:"


# --- relational databases ---------------------------------------------------------------------------
def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {o!r}")


def _dumps(obj: Any) -> str:
    # NaN/inf are stored as null so that any database (and any JSON reader) accepts them
    if isinstance(obj, dict):
        obj = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in obj.items()}
    return json.dumps(obj, default=_json_default, separators=(",", ":"))


def _nan(v: Any) -> float:
    return math.nan if v is None else float(v)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


_TRANSIENT = ("database is locked", "deadlock detected", "could not serialize", "database is busy")


class _RDBTx(StudyTx):
    def __init__(self, store: RDBStorage, conn: Any, study_id: int, seq: int, next_number: int) -> None:
        self.s, self.conn, self.sid = store, conn, study_id
        self.seq, self.next_number = seq, next_number
        self._dirty = False

    def _rows(self, name: str, **params: Any) -> list[Any]:
        return self.conn.execute(self.s._q[name], {"sid": self.sid, **params}).all()

    def events(self, after: int) -> list[tuple[int, str, Trial]]:
        if after >= self.seq:
            return []
        out: list[tuple[int, str, Trial]] = []
        for r in self._rows("events", after=after):
            trial = self.s._trial(r)
            if r.ask_seq is not None and r.ask_seq > after:
                out.append((r.ask_seq, "ask", trial))
            if r.tell_seq is not None and r.tell_seq > after:
                out.append((r.tell_seq, "tell", trial))
        out.sort(key=lambda e: e[0])
        return out

    def counts(self) -> tuple[int, int, float]:
        fin = act = 0
        spent = 0.0
        for state, n, cost in self._rows("counts"):
            st = TrialState(state)
            if st.finished:
                fin += n
                spent += float(cost or 0.0)
            elif st.active:
                act += n
        return fin, act, spent

    def add(self, trial: Trial, event: bool) -> None:
        trial.number = self.next_number
        self.next_number += 1
        if event:
            self.seq += 1
            trial.ask_seq = self.seq
        self.conn.execute(self.s._q["insert"], {"study_id": self.sid, "number": trial.number,
                                                **self.s._values(trial)})
        self._dirty = True

    def update(self, trial: Trial, event: bool = False) -> None:
        if event:
            self.seq += 1
            trial.tell_seq = self.seq
        self.conn.execute(self.s._q["update"], {"sid": self.sid, "num": trial.number,
                                                **{f"v_{k}": v for k, v in self.s._values(trial).items()}})
        self._dirty = True

    def get(self, number: int) -> Trial | None:
        rows = self._rows("get", num=number)
        return self.s._trial(rows[0]) if rows else None

    def owner(self, number: int) -> tuple[TrialState, str | None, int | None, int | None] | None:
        rows = self._rows("owner", num=number)
        return (TrialState(rows[0][0]),) + tuple(rows[0][1:]) if rows else None  # type: ignore[return-value]

    def claim_waiting(self, worker: str) -> Trial | None:
        rows = self._rows("waiting")
        if not rows:
            return None
        trial = self.s._trial(rows[0])
        now = time.time()
        trial.state, trial.worker, trial.started, trial.heartbeat = TrialState.RUNNING, worker, now, now
        self.update(trial)
        return trial

    def running(self) -> list[Trial]:
        return [self.s._trial(r) for r in self._rows("running")]


class RDBStorage(Storage):
    """Studies in a relational database addressed by an SQLAlchemy URL (``sqlite:///study.db``,
    ``postgresql+psycopg://user@host/db``).

    Several processes, on one machine or many, may share one database: every ask and tell is a
    short exclusive transaction on its study (SQLite: ``BEGIN IMMEDIATE`` in WAL mode with a busy
    timeout; PostgreSQL: a row lock on the study), retried on transient lock errors. Each trial
    is committed when it starts and when it ends, so a killed process loses nothing that had
    finished. SQLite commits survive a crash of the process (not a power cut of the OS).
    """

    def __init__(self, url: str, busy_timeout: float = 60.0, create: bool = True) -> None:
        import sqlalchemy as sa

        self.url = url
        self._sa = sa
        #: whether opening may create the database (file and tables); without, a missing SQLite
        #: file or a database without nasforge tables is an error and nothing is written
        self.create = create
        try:
            self.engine = sa.create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
        except Exception as exc:  # noqa: BLE001 - bad URL or missing driver
            raise NasforgeError(f"cannot open storage {shorten(url)}: {_driver_hint(exc)}") from None
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite" and not create:
            self._check_sqlite_file()
        if self.dialect == "sqlite":
            ms = int(busy_timeout * 1000)

            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see "begin" below)
                cur = dbapi_conn.cursor()
                cur.execute(f"PRAGMA busy_timeout={ms}")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

            @sa.event.listens_for(self.engine, "begin")
            def _begin(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.pop("immediate", False) else "BEGIN")

        md = sa.MetaData()
        self.t_meta = sa.Table(
            "nasforge_meta", md,
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        self.t_studies = sa.Table(
            "nasforge_studies", md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("name", sa.String(255), unique=True, nullable=False),
            sa.Column("created", sa.Float, nullable=False),
            sa.Column("config", sa.Text, nullable=False),
            sa.Column("seq", sa.Integer, nullable=False, server_default="0"),
            sa.Column("next_number", sa.Integer, nullable=False, server_default="0"),
        )
        self.t_trials = sa.Table(
            "nasforge_trials", md,
            sa.Column("study_id", sa.Integer, sa.ForeignKey("nasforge_studies.id"), primary_key=True),
            sa.Column("number", sa.Integer, primary_key=True),
            sa.Column("arch", sa.Text, nullable=False),
            sa.Column("fidelity", sa.Float),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("value", sa.Float),
            sa.Column("metrics", sa.Text),
            sa.Column("cost", sa.Float),
            sa.Column("started", sa.Float),
            sa.Column("duration", sa.Float),
            sa.Column("error", sa.Text),
            sa.Column("info", sa.Text),
            sa.Column("ask_seq", sa.Integer),
            sa.Column("tell_seq", sa.Integer),
            sa.Column("retry_of", sa.Integer),
            sa.Column("worker", sa.String(128)),
            sa.Column("heartbeat", sa.Float),
            sa.Index("ix_nasforge_trials_state", "study_id", "state"),
        )
        self._md = md
        self._q = self._statements()
        try:
            self._prepare()
        except NasforgeError:
            self.engine.dispose()
            raise
        except Exception as exc:  # noqa: BLE001 - unreachable server, not a database, ...
            self.engine.dispose()
            raise NasforgeError(f"cannot open storage {url!r}: {_first_line(exc)}") from None
        self._local = threading.local()
        self._conns: list[Any] = []

    def _statements(self) -> dict[str, Any]:
        """The statements of the hot path, built once (SQLAlchemy then caches their compilation)."""
        sa, t, s = self._sa, self.t_trials, self.t_studies
        sid, num = sa.bindparam("sid"), sa.bindparam("num")
        mine = t.c.study_id == sid
        cols = [c.name for c in t.columns if c.name not in ("study_id", "number")]
        lock = sa.select(s.c.seq, s.c.next_number).where(s.c.id == sid)
        return {
            "lock": lock if self.dialect == "sqlite" else lock.with_for_update(),
            "bump": s.update().where(s.c.id == sid).values(seq=sa.bindparam("seq"), next_number=sa.bindparam("nn")),
            "events": sa.select(t).where(mine & ((t.c.ask_seq > sa.bindparam("after"))
                                                 | (t.c.tell_seq > sa.bindparam("after")))),
            "counts": sa.select(t.c.state, sa.func.count(), sa.func.sum(t.c.cost)).where(mine).group_by(t.c.state),
            "insert": t.insert(),
            "update": t.update().where(mine & (t.c.number == num)).values({c: sa.bindparam(f"v_{c}") for c in cols}),
            "get": sa.select(t).where(mine & (t.c.number == num)),
            "owner": sa.select(t.c.state, t.c.worker, t.c.ask_seq, t.c.retry_of).where(mine & (t.c.number == num)),
            "waiting": sa.select(t).where(mine & (t.c.state == "waiting")).order_by(t.c.number).limit(1),
            "running": sa.select(t).where(mine & (t.c.state == "running")).order_by(t.c.number),
        }

    def _check_sqlite_file(self) -> None:
        """Without ``create``: the SQLite file must exist (connecting would create it)."""
        db = self.engine.url.database
        if not db or db == ":memory:" or db.startswith("file:"):
            return
        if not os.path.isfile(db):
            self.engine.dispose()
            what = "is a folder" if os.path.isdir(db) else "does not exist"
            raise NasforgeError(f"no database at {shorten(self.url)}: the file {shorten(db)} {what} "
                                "(nasforge search creates one; check --storage)")

    # --- schema ---------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Check the schema (reading only, so a read-only database opens), and create or migrate
        it where needed in one transaction that excludes other processes doing the same (several
        workers may open a new database at once)."""
        with self.engine.connect() as c:
            with c.begin():
                if self._prepare_in(c, write=False):
                    return
        if not self.create:
            raise NasforgeError(f"storage {shorten(self.url)} holds no nasforge studies (no nasforge tables)")
        with self.engine.connect() as c:
            if self.dialect == "sqlite":
                c.info["immediate"] = True
            with c.begin():
                if self.dialect == "postgresql":
                    c.exec_driver_sql("SELECT pg_advisory_xact_lock(20260311)")
                self._prepare_in(c, write=True)
        if self.dialect == "sqlite":
            # write-ahead log (readers and one writer at once), set once when the schema is written:
            # it stays with the file, so opening a database to read it, or a command refused
            # before it writes, changes nothing in it
            raw = self.engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA journal_mode=WAL")
            except Exception:  # noqa: BLE001 - an in-memory database has no WAL; it works without
                pass
            finally:
                raw.close()

    def _prepare_in(self, c: Any, write: bool) -> bool:
        """Check the schema; True when it is current. With ``write``, create or migrate it."""
        sa = self._sa
        names = set(sa.inspect(c).get_table_names())
        if not write and ("nasforge_meta" not in names or "nasforge_trials" not in names):
            return False
        if "nasforge_trials" in names and "nasforge_meta" not in names:
            self._migrate_v1(c)
            return True
        if "nasforge_meta" in names:
            row = c.execute(sa.select(self.t_meta.c.value).where(self.t_meta.c.key == "schema_version")).first()
            version = int(row.value) if row is not None else 0
            if version > SCHEMA_VERSION:
                raise NasforgeError(
                    f"storage {self.url!r} has schema version {version}, newer than this nasforge understands "
                    f"({SCHEMA_VERSION}); upgrade nasforge to open it")
            if version != SCHEMA_VERSION:
                raise NasforgeError(f"storage {self.url!r} has unknown schema version {version}; "
                                    f"this nasforge reads version {SCHEMA_VERSION} (and migrates version 1)")
            return True
        if names & {"nasforge_studies"}:
            raise NasforgeError(f"storage {self.url!r} holds nasforge tables of an unknown layout")
        self._md.create_all(c)
        c.execute(self.t_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        return True

    def _migrate_v1(self, c: Any) -> None:
        """Version 1 (one process per study, no event log): add the new columns, write the log
        the serial loop implied (each finished trial asked and told in turn; interrupted trials
        were never told, and the old resume re-asked them), and a schema version."""
        sa = self._sa
        for col in ("seq INTEGER NOT NULL DEFAULT 0", "next_number INTEGER NOT NULL DEFAULT 0"):
            c.exec_driver_sql(f"ALTER TABLE nasforge_studies ADD COLUMN {col}")
        for col in ("ask_seq INTEGER", "tell_seq INTEGER", "retry_of INTEGER", "worker VARCHAR(128)",
                    "heartbeat FLOAT"):
            c.exec_driver_sql(f"ALTER TABLE nasforge_trials ADD COLUMN {col}")
        t, s = self.t_trials, self.t_studies
        for sid, in c.execute(sa.select(s.c.id)).all():
            seq = 0
            rows = c.execute(sa.select(t.c.number, t.c.state).where(t.c.study_id == sid)
                             .order_by(t.c.number)).all()
            for number, state in rows:
                values: dict[str, Any] = {}
                if TrialState(state).finished:
                    values = {"ask_seq": seq + 1, "tell_seq": seq + 2}
                    seq += 2
                elif state == "running":
                    values = {"state": "interrupted",
                              "error": "interrupted: the process ended before the trial finished"}
                if values:
                    c.execute(t.update().where((t.c.study_id == sid) & (t.c.number == number)).values(**values))
            nxt = rows[-1][0] + 1 if rows else 0
            c.execute(s.update().where(s.c.id == sid).values(seq=seq, next_number=nxt))
        self.t_meta.create(c, checkfirst=True)
        sa.Index("ix_nasforge_trials_state", t.c.study_id, t.c.state).create(c, checkfirst=True)
        c.execute(self.t_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))

    # --- plumbing -------------------------------------------------------------------------------
    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing what another thread still holds
                pass
        self._conns.clear()
        self._local = threading.local()
        self.engine.dispose()

    def describe(self) -> str:
        return self.url

    def _run(self, fn: Any, write: bool = True) -> Any:
        """Run ``fn(conn)`` in one transaction on this thread's connection, retrying transient
        lock errors; database errors become one-line NasforgeErrors."""
        conn = self._connection()
        delay = 0.01
        for attempt in range(30):
            if write and self.dialect == "sqlite":
                conn.info["immediate"] = True
            try:
                with conn.begin():
                    return fn(conn)
            except self._sa.exc.DBAPIError as exc:
                msg = _first_line(exc)
                if any(m in msg.lower() for m in _TRANSIENT) and attempt < 29:
                    time.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 1.0)
                    continue
                raise self._error(msg) from None
        raise AssertionError("unreachable")

    def _error(self, msg: str) -> NasforgeError:
        if "readonly" in msg.replace("-", "").replace(" ", "").lower():
            return NasforgeError(f"storage {self.url!r} is read-only ({msg}); copy it somewhere writable "
                                 "to continue the study")
        return NasforgeError(f"storage {self.url!r}: {msg}")

    def _connection(self) -> Any:
        """This thread's connection (SQLAlchemy connections are not shared between threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.engine.connect()
            self._conns.append(conn)
        return conn

    def _values(self, trial: Trial) -> dict[str, Any]:
        value = trial.value if trial.value is None or math.isfinite(trial.value) else None
        return dict(
            arch=trial.arch, fidelity=trial.fidelity, state=trial.state.value, value=value,
            metrics=_dumps(trial.metrics), cost=trial.cost, started=trial.started, duration=trial.duration,
            error=trial.error, info=_dumps(trial.info) if trial.info else None, ask_seq=trial.ask_seq,
            tell_seq=trial.tell_seq, retry_of=trial.retry_of, worker=trial.worker, heartbeat=trial.heartbeat,
        )

    def _trial(self, r: Any) -> Trial:
        try:
            metrics = json.loads(r.metrics or "{}")
            info = json.loads(r.info) if r.info else {}
            if not isinstance(metrics, dict) or not isinstance(info, dict):
                raise ValueError("metrics or info is not a JSON object")
            return Trial(
                number=int(r.number), arch=str(r.arch), fidelity=None if r.fidelity is None else float(r.fidelity),
                state=TrialState(r.state), value=None if r.value is None else float(r.value),
                metrics={str(k): _nan(v) for k, v in metrics.items()},
                cost=float(r.cost or 0.0), started=float(r.started or 0.0), duration=float(r.duration or 0.0),
                error=r.error, info=info, ask_seq=r.ask_seq, tell_seq=r.tell_seq,
                retry_of=r.retry_of, worker=r.worker, heartbeat=float(r.heartbeat or 0.0),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise NasforgeError(f"storage {shorten(self.url)}: trial {shorten(getattr(r, 'number', '?'))} is damaged "
                                f"({type(exc).__name__}: {exc}); the database may be corrupt") from None

    # --- studies --------------------------------------------------------------------------------
    def get_or_create_study(self, name: str, config: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        found = self.study_id(name)
        if found is not None:
            return found[0], found[1], False
        t = self.t_studies
        try:
            res = self._run(lambda c: c.execute(t.insert().values(name=name, created=time.time(),
                                                                 config=_dumps(config))))
        except NasforgeError as exc:
            if "unique" in str(exc).lower() or "duplicate" in str(exc).lower():  # created concurrently
                found = self.study_id(name)
                if found is not None:
                    return found[0], found[1], False
            raise
        return int(res.inserted_primary_key[0]), dict(config), True

    def study_id(self, name: str) -> tuple[int, dict[str, Any]] | None:
        sa, t = self._sa, self.t_studies
        row = self._run(lambda c: c.execute(sa.select(t.c.id, t.c.config).where(t.c.name == name)).first(),
                        write=False)
        if row is None:
            return None
        try:
            config = json.loads(row.config)
            if not isinstance(config, dict):
                raise ValueError("not a JSON object")
        except (ValueError, TypeError) as exc:
            raise NasforgeError(f"storage {shorten(self.url)}: the settings of study {shorten(name)} are damaged "
                                f"({exc}); the database may be corrupt") from None
        return int(row.id), config

    def update_config(self, study_id: int, config: dict[str, Any]) -> None:
        t = self.t_studies
        self._run(lambda c: c.execute(t.update().where(t.c.id == study_id).values(config=_dumps(config))))

    def study_names(self) -> list[str]:
        t = self.t_studies
        rows = self._run(lambda c: c.execute(self._sa.select(t.c.name).order_by(t.c.id)).all(), write=False)
        return [r.name for r in rows]

    def trials(self, study_id: int) -> list[Trial]:
        t = self.t_trials
        rows = self._run(lambda c: c.execute(self._sa.select(t).where(t.c.study_id == study_id)
                                             .order_by(t.c.number)).all(), write=False)
        return [self._trial(r) for r in rows]

    def progress(self, study_id: int) -> StudyProgress:
        sa, s = self._sa, self.t_studies

        def read(c: Any) -> tuple[Any, list[Any]]:
            row = c.execute(sa.select(s.c.seq, s.c.next_number).where(s.c.id == study_id)).first()
            return row, c.execute(self._q["counts"], {"sid": study_id}).all()

        row, counts = self._run(read, write=False)
        if row is None:
            raise NasforgeError(f"no study with id {study_id} in {self.url!r}")
        return StudyProgress(int(row.seq), int(row.next_number), {str(st): int(n) for st, n, _cost in counts})

    def heartbeat(self, study_id: int, worker: str) -> None:
        t = self.t_trials
        now = time.time()
        self._run(lambda c: c.execute(t.update().where(
            (t.c.study_id == study_id) & (t.c.worker == worker) & (t.c.state == "running")).values(heartbeat=now)))

    @contextmanager
    def lock(self, study_id: int) -> Iterator[StudyTx]:
        """One exclusive transaction on the study. The body must be idempotent up to the first
        write (a transient lock error before the body runs is retried; during it, it is raised)."""
        conn = self._connection()
        delay = 0.01
        row = trans = None
        for attempt in range(30):
            if self.dialect == "sqlite":
                conn.info["immediate"] = True
            try:
                trans = conn.begin()
                row = conn.execute(self._q["lock"], {"sid": study_id}).first()
                break
            except self._sa.exc.DBAPIError as exc:
                if trans is not None and trans.is_active:
                    trans.rollback()
                msg = _first_line(exc)
                if any(m in msg.lower() for m in _TRANSIENT) and attempt < 29:
                    time.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 1.0)
                    continue
                raise self._error(msg) from None
        if row is None:
            trans.rollback()
            raise NasforgeError(f"no study with id {study_id} in {self.url!r}")
        tx = _RDBTx(self, conn, study_id, int(row.seq), int(row.next_number))
        try:
            yield tx
            if tx._dirty:
                conn.execute(self._q["bump"], {"sid": study_id, "seq": tx.seq, "nn": tx.next_number})
            trans.commit()
        except self._sa.exc.DBAPIError as exc:
            trans.rollback()
            raise self._error(_first_line(exc)) from None
        except BaseException:
            trans.rollback()
            raise


def _driver_hint(exc: BaseException) -> str:
    msg = _first_line(exc)
    if isinstance(exc, ModuleNotFoundError) or "No module named" in msg:
        mod = getattr(exc, "name", None) or msg.rsplit(" ", 1)[-1].strip("'\"")
        hint = {"psycopg": "pip install 'nasforge[postgres]' (psycopg 3)", "psycopg2": "pip install psycopg2-binary",
                "pymysql": "pip install pymysql"}.get(mod.split(".")[0], f"pip install {mod.split('.')[0]}")
        return f"the database driver {mod!r} is not installed ({hint})"
    return msg


def get_storage(storage: str | Storage | None, create: bool = True) -> Storage:
    """A storage from a URL (``sqlite:///path.db``, ``postgresql+psycopg://...``), ``None``/``":memory:"``
    for in-memory, or an existing Storage object. Without ``create`` (to read studies) a URL must
    name an existing nasforge database: nothing is created or written on opening."""
    if storage is None or storage == ":memory:":
        return InMemoryStorage()
    if isinstance(storage, Storage):
        return storage
    if isinstance(storage, str):
        if "://" not in storage or "\x00" in storage:
            raise NasforgeError(
                f"storage {shorten(storage)} is not a database URL; use e.g. sqlite:///study.db, "
                "postgresql+psycopg://user@host/db, or :memory:"
            )
        return RDBStorage(storage, create=create)
    raise NasforgeError(f"storage must be a URL string or a Storage, got {type(storage).__name__}")
