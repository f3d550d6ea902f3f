"""The task bank: finished studies turned into meta-training data.

A :class:`BankTask` is what one finished study teaches: its space, the label of what it searched
(a benchmark such as ``nb201:cifar10``, or a dataset), the metric, and the architectures it
evaluated with their scores (higher is better: a minimised metric is negated). A
:class:`TaskBank` holds several of them and hands a new search the ones it can learn from
(:meth:`TaskBank.compatible`): the same space (same space description, so NAS-Bench-Graph's
``full`` and ``proteins`` spaces are told apart) and the same metric.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError, shorten
from nasforge.spaces.base import SearchSpace


def space_key(space: SearchSpace) -> str:
    """What two spaces must share for their architectures to be the same objects: the space's
    rebuild description where it has one (``nbgraph`` with ``ops='full'`` is not ``ops='proteins'``),
    else its name."""
    try:
        spec = space.spec()
    except Exception:  # noqa: BLE001 - a space whose parameters are not data
        return space.name
    params = ",".join(f"{k}={v!r}" for k, v in sorted((spec.get("params") or {}).items()))
    return f"{space.name}({params})" if params else space.name


@dataclass
class BankTask:
    """One source task: architectures and their scores (higher is better) on one benchmark or dataset."""

    name: str
    space: SearchSpace
    label: str
    metric: str
    maximize: bool
    archs: list[Any]
    scores: np.ndarray
    #: memoised values other code derives from the task (e.g. predicted anchor scores)
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.archs) == 0:
            raise NasforgeError(f"task {self.name!r} has no complete trials with metric {self.metric!r}; "
                                "a bank task needs at least one evaluated architecture")
        self.scores = np.asarray(self.scores, dtype=float)
        if self.scores.shape != (len(self.archs),):
            raise NasforgeError(f"task {self.name!r}: {len(self.archs)} architectures but {self.scores.size} scores")

    @property
    def space_key(self) -> str:
        return space_key(self.space)

    def __len__(self) -> int:
        return len(self.archs)

    def top(self, k: int) -> list[tuple[Any, float]]:
        """The ``k`` best architectures with their scores, best first (ties: first evaluated)."""
        order = np.argsort(-self.scores, kind="stable")[:k]
        return [(self.archs[i], float(self.scores[i])) for i in order]

    def values(self) -> np.ndarray:
        """The metric's values as measured (the scores with the metric's sign)."""
        return self.scores if self.maximize else -self.scores


def check_tasks(tasks: Sequence[BankTask], space: SearchSpace, empty: str) -> None:
    """Refuse an empty list of bank tasks (with the message ``empty``) and any task of another space."""
    if not tasks:
        raise NasforgeError(empty)
    key = space_key(space)
    for t in tasks:
        if t.space_key != key:
            raise NasforgeError(f"bank task {t.name!r} searched space {t.space_key}, not {key}")


def task_from_study(study: Any, metric: str | None = None) -> BankTask:
    """The bank task of a finished study: its complete trials at the highest fidelity it reached
    (an architecture evaluated twice keeps its last result), scored by ``metric`` (default: the
    study's objective). A study with no such trial, or whose trials lack ``metric``, is an error."""
    from nasforge.study import TrialState

    metric = study.metric if metric is None else metric
    if metric != study.metric:
        raise NasforgeError(f"study {study.name!r} optimised {study.metric!r}, not {metric!r}: mismatched metrics "
                            "(a bank learns the metric its studies selected by)")
    done = [t for t in study.trials if t.state is TrialState.COMPLETE]
    if not done:
        raise NasforgeError(f"study {study.name!r} has no complete trials (a task of 0 trials cannot be learnt from)")
    top = max(math.inf if t.fidelity is None else t.fidelity for t in done)
    by_arch: dict[str, float] = {}
    for t in done:
        if (math.inf if t.fidelity is None else t.fidelity) != top:
            continue
        v = t.metrics.get(metric, t.value if metric == study.metric else None)
        if v is None or not math.isfinite(float(v)):
            continue
        by_arch[t.arch] = float(v)
    if not by_arch:
        raise NasforgeError(f"study {study.name!r} has no complete trial with a finite {metric!r}")
    search = (study.config or {}).get("search") or {}
    label = str(search.get("benchmark") or search.get("dataset") or study.name)
    archs = [study.space.parse(a) for a in by_arch]
    sign = 1.0 if study.maximize else -1.0
    return BankTask(study.name, study.space, label, metric, bool(study.maximize), archs,
                    sign * np.fromiter(by_arch.values(), dtype=float, count=len(by_arch)))


class TaskBank:
    """Source tasks for transfer: add finished studies (:meth:`add_study`, :meth:`from_storage`)
    or tasks built elsewhere (:meth:`add`), then ask for those a new search can use
    (:meth:`compatible`)."""

    def __init__(self, tasks: Iterable[BankTask] = ()) -> None:
        self.tasks: list[BankTask] = []
        for t in tasks:
            self.add(t)

    def add(self, task: BankTask) -> BankTask:
        if any(t.name == task.name for t in self.tasks):
            raise NasforgeError(f"the bank already holds a task named {task.name!r}")
        self.tasks.append(task)
        return task

    def add_study(self, study: Any, metric: str | None = None) -> BankTask:
        """Add a finished study (see :func:`task_from_study`)."""
        return self.add(task_from_study(study, metric))

    @classmethod
    def from_storage(cls, storage: Any, names: Sequence[str] | None = None, metric: str | None = None,
                     skip_unusable: bool = False) -> TaskBank:
        """A bank of the studies ``names`` in ``storage`` (a URL or a Storage; default every study).
        ``skip_unusable`` leaves out studies with no complete trial or another metric instead of
        raising (used when a whole storage is read)."""
        from nasforge.study import get_storage, load_study

        store = get_storage(storage)
        available = store.study_names()
        chosen = list(available) if names is None else list(names)
        bank = cls()
        for name in chosen:
            if name not in available:
                raise NasforgeError(f"no study {shorten(name)} in {store.describe()}; studies: "
                                    f"{', '.join(map(shorten, available)) or 'none'}")
            study = load_study(name, store)
            if study.is_multi_objective:
                if skip_unusable:
                    continue
                raise NasforgeError(f"study {name!r} is multi-objective; a bank task needs one metric")
            try:
                bank.add_study(study, metric if metric is not None else None)
            except NasforgeError:
                if not skip_unusable:
                    raise
        return bank

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Any:
        return iter(self.tasks)

    def compatible(self, space: SearchSpace, metric: str | None = None, exclude: Iterable[str] = ()) -> list[BankTask]:
        """The tasks a search on ``space`` for ``metric`` can learn from: same space, same metric,
        label not in ``exclude`` (e.g. the target benchmark itself). None left is an error that
        says what the bank holds."""
        if not self.tasks:
            raise NasforgeError("the task bank is empty: add finished studies first")
        key = space_key(space)
        skip = set(exclude)
        same_space = [t for t in self.tasks if t.space_key == key]
        if not same_space:
            held = sorted({t.space_key for t in self.tasks})
            raise NasforgeError(f"no task in the bank searched space {key}; the bank holds spaces: {', '.join(held)}")
        if metric is not None:
            same_metric = [t for t in same_space if t.metric == metric]
            if not same_metric:
                held = sorted({t.metric for t in same_space})
                raise NasforgeError(f"mismatched metrics: no bank task on space {key} has metric {metric!r}; "
                                    f"they have: {', '.join(held)}")
            same_space = same_metric
        out = [t for t in same_space if t.label not in skip]
        if not out:
            raise NasforgeError(f"every bank task on space {key} is on {', '.join(sorted(skip))}, which is the "
                                "target itself; add studies of other datasets or benchmarks")
        return out

    def describe(self) -> list[dict[str, Any]]:
        """One row per task: name, space, label, metric, direction, trials, best value."""
        rows = []
        for t in self.tasks:
            best = t.top(1)[0][1]
            rows.append({"task": t.name, "space": t.space_key, "label": t.label, "metric": t.metric,
                         "direction": "max" if t.maximize else "min", "trials": len(t),
                         "best": best if t.maximize else -best})
        return rows


__all__ = ["BankTask", "TaskBank", "check_tasks", "task_from_study", "space_key"]
