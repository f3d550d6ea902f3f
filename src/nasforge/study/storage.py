"""Where studies and their trials live: in memory, or in a relational database via SQLAlchemy."""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from nasforge.errors import NasforgeError


class TrialState(str, Enum):
    """Life cycle of a trial. ``INTERRUPTED``: the process ended while it ran (it is re-run on resume)."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    PRUNED = "pruned"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED)


@dataclass(slots=True)
class Trial:
    """One evaluation of one architecture at one fidelity."""

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


class Storage(ABC):
    """Persistence of studies (a name and a JSON config) and their numbered trials."""

    @abstractmethod
    def get_or_create_study(self, name: str, config: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        """(study id, stored config, created?) for study ``name``."""

    @abstractmethod
    def update_config(self, study_id: int, config: dict[str, Any]) -> None:
        """Replace the stored config of a study."""

    @abstractmethod
    def study_names(self) -> list[str]:
        """Names of the stored studies."""

    @abstractmethod
    def add_trial(self, study_id: int, trial: Trial) -> None:
        """Store a new trial (``trial.number`` is set by the caller and unique within the study)."""

    @abstractmethod
    def finish_trial(self, study_id: int, trial: Trial) -> None:
        """Store the final state, value, metrics, cost, duration and error of a trial."""

    @abstractmethod
    def trials(self, study_id: int) -> list[Trial]:
        """All trials of a study, by number."""

    def mark_interrupted(self, study_id: int) -> int:
        """Mark trials left RUNNING by a dead process as INTERRUPTED; returns how many."""
        n = 0
        for t in self.trials(study_id):
            if t.state is TrialState.RUNNING:
                t.state, t.error = TrialState.INTERRUPTED, "interrupted: the process ended before the trial finished"
                self.finish_trial(study_id, t)
                n += 1
        return n


class InMemoryStorage(Storage):
    """Studies in a Python dict: for fast simulation on tabular benchmarks. Nothing persists."""

    def __init__(self) -> None:
        self._studies: dict[str, tuple[int, dict[str, Any]]] = {}
        self._trials: dict[int, list[Trial]] = {}

    def get_or_create_study(self, name: str, config: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        if name in self._studies:
            sid, cfg = self._studies[name]
            return sid, cfg, False
        sid = len(self._studies)
        self._studies[name] = (sid, dict(config))
        self._trials[sid] = []
        return sid, dict(config), True

    def update_config(self, study_id: int, config: dict[str, Any]) -> None:
        for name, (sid, _) in self._studies.items():
            if sid == study_id:
                self._studies[name] = (sid, dict(config))

    def study_names(self) -> list[str]:
        return list(self._studies)

    def add_trial(self, study_id: int, trial: Trial) -> None:
        self._trials[study_id].append(trial)

    def finish_trial(self, study_id: int, trial: Trial) -> None:
        pass  # the trial object itself is the record

    def trials(self, study_id: int) -> list[Trial]:
        return list(self._trials[study_id])


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


class RDBStorage(Storage):
    """Studies in a relational database addressed by an SQLAlchemy URL (``sqlite:///study.db``,
    ``postgresql://...``).

    Each trial costs one committed INSERT when it starts and one UPDATE when it ends, so a
    killed process loses nothing that had finished. SQLite runs in WAL mode with
    ``synchronous=NORMAL``: commits survive a crash of the process (not a power cut of the OS).
    """

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.url = url
        try:
            self.engine = sa.create_engine(url, future=True)
        except Exception as exc:  # noqa: BLE001 - bad URL or missing driver
            raise NasforgeError(f"cannot open storage {url!r}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

        md = sa.MetaData()
        self.t_studies = sa.Table(
            "nasforge_studies", md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("name", sa.String(255), unique=True, nullable=False),
            sa.Column("created", sa.Float, nullable=False),
            sa.Column("config", sa.Text, nullable=False),
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
        )
        try:
            md.create_all(self.engine)
        except Exception as exc:  # noqa: BLE001 - unreachable server, not a database, ...
            raise NasforgeError(f"cannot open storage {url!r}: {str(exc).splitlines()[0]}") from None
        self._sa = sa
        self._conn = self.engine.connect()

    def close(self) -> None:
        self._conn.close()
        self.engine.dispose()

    def get_or_create_study(self, name: str, config: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        sa, t = self._sa, self.t_studies
        row = self._conn.execute(sa.select(t.c.id, t.c.config).where(t.c.name == name)).first()
        if row is not None:
            self._conn.commit()
            return int(row.id), json.loads(row.config), False
        try:
            res = self._conn.execute(t.insert().values(name=name, created=time.time(), config=_dumps(config)))
            self._conn.commit()
        except sa.exc.IntegrityError:  # created concurrently by another process
            self._conn.rollback()
            return self.get_or_create_study(name, config)
        return int(res.inserted_primary_key[0]), dict(config), True

    def update_config(self, study_id: int, config: dict[str, Any]) -> None:
        t = self.t_studies
        self._conn.execute(t.update().where(t.c.id == study_id).values(config=_dumps(config)))
        self._conn.commit()

    def study_names(self) -> list[str]:
        rows = self._conn.execute(self._sa.select(self.t_studies.c.name).order_by(self.t_studies.c.id)).all()
        self._conn.commit()
        return [r.name for r in rows]

    def _values(self, trial: Trial) -> dict[str, Any]:
        value = trial.value if trial.value is None or math.isfinite(trial.value) else None
        return dict(
            arch=trial.arch, fidelity=trial.fidelity, state=trial.state.value, value=value,
            metrics=_dumps(trial.metrics), cost=trial.cost, started=trial.started, duration=trial.duration,
            error=trial.error, info=_dumps(trial.info) if trial.info else None,
        )

    def add_trial(self, study_id: int, trial: Trial) -> None:
        self._conn.execute(self.t_trials.insert().values(study_id=study_id, number=trial.number, **self._values(trial)))
        self._conn.commit()

    def finish_trial(self, study_id: int, trial: Trial) -> None:
        t = self.t_trials
        self._conn.execute(
            t.update().where((t.c.study_id == study_id) & (t.c.number == trial.number)).values(**self._values(trial))
        )
        self._conn.commit()

    def trials(self, study_id: int) -> list[Trial]:
        t = self.t_trials
        rows = self._conn.execute(self._sa.select(t).where(t.c.study_id == study_id).order_by(t.c.number)).all()
        self._conn.commit()
        return [
            Trial(
                number=r.number, arch=r.arch, fidelity=r.fidelity, state=TrialState(r.state),
                value=r.value, metrics={k: _nan(v) for k, v in json.loads(r.metrics or "{}").items()},
                cost=r.cost or 0.0, started=r.started or 0.0, duration=r.duration or 0.0,
                error=r.error, info=json.loads(r.info) if r.info else {},
            )
            for r in rows
        ]


def get_storage(storage: str | Storage | None) -> Storage:
    """A storage from a URL (``sqlite:///path.db``, ``postgresql://...``), ``None``/``":memory:"``
    for in-memory, or an existing Storage object."""
    if storage is None or storage == ":memory:":
        return InMemoryStorage()
    if isinstance(storage, Storage):
        return storage
    if isinstance(storage, str):
        if "://" not in storage:
            raise NasforgeError(
                f"storage {storage!r} is not a database URL; use e.g. sqlite:///study.db, "
                "postgresql://user@host/db, or :memory:"
            )
        return RDBStorage(storage)
    raise NasforgeError(f"storage must be a URL string or a Storage, got {type(storage).__name__}")
