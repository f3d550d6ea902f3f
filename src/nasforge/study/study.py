"""Studies: named, persisted searches that resume where they stopped."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from nasforge.errors import NasforgeError
from nasforge.estimation.base import Estimator, Measurement
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Strategy
from nasforge.study.storage import Storage, Trial, TrialState, get_storage

Callback = Callable[["Study", Trial], None]


class Study:
    """A named search over one space for one objective, with every trial persisted.

    ``metric`` is the measurement entry the search optimises (``maximize`` gives its
    direction). Creating a Study with a name that already exists in ``storage`` loads it:
    :meth:`optimize` then replays the completed trials into the (fresh, identically configured)
    strategy, so the search continues exactly as if it had never stopped, and the budget counts
    the trials already done. Trials left running by a killed process are marked ``interrupted``
    and evaluated again.

    Several objectives: ``metric=["valid_acc", "latency_ms[pixel3]"], maximize=[True, False]``;
    the study then keeps the Pareto front (:attr:`pareto_front`), ``metric``/``maximize`` name the
    first objective, and a scalar strategy run on it optimises that one. ``constraints`` (a bound
    :class:`~nasforge.estimation.constraints.ConstraintSet`) become the strategy's ``feasible``
    predicate when it has none, and mark each result feasible or not: an infeasible trial is
    never the best trial nor on the front.
    """

    _FIXED = ("number", "arch", "fidelity", "state", "value", "cost", "started", "duration", "error")

    def __init__(
        self,
        name: str,
        space: SearchSpace,
        metric: str | Sequence[str],
        maximize: bool | Sequence[bool] = True,
        storage: str | Storage | None = None,
        config: dict[str, Any] | None = None,
        constraints: Any = None,
    ) -> None:
        if not name or not isinstance(name, str):
            raise NasforgeError(f"a study needs a non-empty name, got {name!r}")
        self.name = name
        self.space = space
        #: every objective and its direction; ``metric``/``maximize`` are the first (primary) one
        self.metrics, self.directions = _objectives(metric, maximize)
        self.metric = self.metrics[0]
        self.maximize = self.directions[0]
        #: hard constraints (a bound ``ConstraintSet``): set as the strategy's ``feasible`` predicate
        #: and checked on every result; infeasible trials are never the best nor on the front
        self.constraints = constraints if constraints else None
        self.storage = get_storage(storage)
        multi = len(self.metrics) > 1
        cfg = {"space": space.name, "metric": list(self.metrics) if multi else self.metric,
               "maximize": list(self.directions) if multi else self.maximize, **(config or {})}
        if self.constraints is not None:
            cfg["constraints"] = self.constraints.strings()
        self._id, self.config, self.created = self.storage.get_or_create_study(name, cfg)
        if not self.created:
            for key in ("space", "metric", "maximize") + (("constraints",) if self.constraints is not None else ()):
                if key in self.config and self.config[key] != cfg[key]:
                    raise NasforgeError(
                        f"study {name!r} exists with {key}={self.config[key]!r}, not {cfg[key]!r}; "
                        "choose another study name or the stored setting"
                    )
        self._trials: list[Trial] = self.storage.trials(self._id)
        self.n_interrupted = sum(t.state is TrialState.RUNNING for t in self._trials)
        if self.n_interrupted:
            self.storage.mark_interrupted(self._id)
            self._trials = self.storage.trials(self._id)

    # --- reading ----------------------------------------------------------------------------
    @property
    def trials(self) -> list[Trial]:
        """Every trial, by number (a copy of the list)."""
        return list(self._trials)

    @property
    def finished_trials(self) -> list[Trial]:
        """Trials that count towards the budget: complete, failed or pruned."""
        return [t for t in self._trials if t.state.finished]

    @property
    def best_trial(self) -> Trial | None:
        """The complete trial with the best objective value at the largest fidelity evaluated.

        Values measured at different fidelities (e.g. 12- and 200-epoch accuracies) are never
        compared with each other: the best is chosen among the trials of the highest fidelity
        present (trials without a fidelity count as the highest). Ties: the earliest trial.
        Trials marked infeasible (hard constraints) are never the best. In a multi-objective
        study this is the best by the first objective; see :attr:`pareto_front`.
        """
        done = [t for t in self._trials
                if t.state is TrialState.COMPLETE and t.value is not None and not math.isnan(t.value)
                and t.info.get("feasible", True)]
        if not done:
            return None
        top = max(math.inf if t.fidelity is None else t.fidelity for t in done)
        sign = 1.0 if self.maximize else -1.0
        best: Trial | None = None
        for t in done:
            if (math.inf if t.fidelity is None else t.fidelity) == top:
                if best is None or sign * t.value > sign * best.value:  # type: ignore[operator]
                    best = t
        return best

    @property
    def is_multi_objective(self) -> bool:
        return len(self.metrics) > 1

    @property
    def pareto_front(self) -> list[Trial]:
        """The non-dominated complete, feasible trials over every objective, at the largest
        fidelity evaluated (as :attr:`best_trial`), ordered by the first objective (best first)."""
        from nasforge.analysis.pareto import pareto_mask

        done = [t for t in self._trials if t.state is TrialState.COMPLETE and t.info.get("feasible", True)
                and all(m in t.metrics and not math.isnan(float(t.metrics[m])) for m in self.metrics)]
        if not done:
            return []
        top = max(math.inf if t.fidelity is None else t.fidelity for t in done)
        done = [t for t in done if (math.inf if t.fidelity is None else t.fidelity) == top]
        Y = [[float(t.metrics[m]) for m in self.metrics] for t in done]
        mask = pareto_mask(Y, self.directions)
        sign = -1.0 if self.maximize else 1.0
        return sorted((t for t, keep in zip(done, mask) if keep),
                      key=lambda t: (sign * float(t.metrics[self.metric]), t.number))

    def trials_dataframe(self) -> Any:
        """The trials as a pandas DataFrame: one row per trial, metrics as columns."""
        import pandas as pd

        rows = []
        for t in self._trials:
            row: dict[str, Any] = {k: getattr(t, k) for k in self._FIXED}
            row["state"] = t.state.value
            for k, v in t.metrics.items():
                row[f"metric_{k}" if k in self._FIXED else k] = v
            rows.append(row)
        return pd.DataFrame(rows, columns=None if rows else list(self._FIXED))

    # --- running ----------------------------------------------------------------------------
    def optimize(
        self,
        strategy: Strategy,
        estimator: Estimator,
        n_trials: int | None = None,
        max_cost: float | None = None,
        timeout: float | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool = False,
        catch: tuple[type[BaseException], ...] = (Exception,),
    ) -> Study:
        """Run ``strategy`` against ``estimator`` until the budget is spent.

        Budgets (any combination; at least one): ``n_trials`` finished trials in total,
        ``max_cost`` total simulated cost (seconds; see :class:`Measurement`), ``timeout``
        wall-clock seconds for this call. An exception in the estimator fails the trial (its
        message is stored) and the search goes on; exceptions outside ``catch`` propagate after
        the trial is marked interrupted.
        """
        if n_trials is None and max_cost is None and timeout is None:
            raise NasforgeError("optimize needs a budget: n_trials, max_cost or timeout")
        if n_trials is not None and n_trials < 0:
            raise NasforgeError(f"n_trials must be >= 0, got {n_trials}")
        if strategy.space is not self.space and strategy.space.name != self.space.name:
            raise NasforgeError(f"strategy searches space {strategy.space.name!r}, study is on {self.space.name!r}")
        multi = getattr(strategy, "multi_objective", False)
        if multi and not self.is_multi_objective:
            raise NasforgeError(f"strategy {strategy.name!r} is multi-objective; create the study with several "
                                "metrics, e.g. metric=['valid_acc', 'latency_ms[pixel3]'], maximize=[True, False]")
        if strategy.metric is None:  # a scalar strategy in a multi-objective study optimises the first objective
            strategy.metric = list(self.metrics) if multi else self.metric
        if strategy.maximize is None:
            strategy.maximize = list(self.directions) if multi else self.maximize
        if self.constraints is not None:
            for s in (strategy, getattr(strategy, "base", None)):  # schedulers sample through a base strategy
                if s is not None and getattr(s, "feasible", None) is None:
                    s.feasible = self.constraints
        self._check_strategy(strategy)
        self._replay(strategy)

        done = self.finished_trials
        n_done = len(done)
        spent = sum(t.cost for t in done)
        start = time.perf_counter()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_trials, initial=min(n_done, n_trials or n_done), desc=self.name, unit="trial",
                       dynamic_ncols=True)
        last_postfix = 0.0
        number = len(self._trials)
        storage, sid, fmt = self.storage, self._id, self.space.format
        metric = self.metric
        extra = self.metrics[1:]
        try:
            while (n_trials is None or n_done < n_trials) and (max_cost is None or spent < max_cost) and (
                timeout is None or time.perf_counter() - start < timeout
            ):
                sug = strategy.ask()
                trial = Trial(number, fmt(sug.arch), sug.fidelity, started=time.time(),
                              info=dict(sug.info) if sug.info else {})
                number += 1
                self._trials.append(trial)
                storage.add_trial(sid, trial)
                t0 = time.perf_counter()
                try:
                    m = estimator.estimate(sug.arch, sug.fidelity)
                except catch as exc:
                    self._fail(trial, exc, time.perf_counter() - t0)
                    strategy.tell(sug, None)
                except BaseException as exc:
                    trial.state, trial.error = TrialState.INTERRUPTED, f"interrupted: {type(exc).__name__}"
                    trial.duration = time.perf_counter() - t0
                    storage.finish_trial(sid, trial)
                    raise
                else:
                    self._complete(trial, m, metric, time.perf_counter() - t0, extra)
                    self._check_feasible(trial, sug.arch)
                    strategy.tell(sug, m if trial.state is TrialState.COMPLETE else None)
                storage.finish_trial(sid, trial)
                n_done += 1
                spent += trial.cost
                for cb in callbacks:
                    cb(self, trial)
                if bar is not None:
                    bar.update(1)
                    now = time.perf_counter()
                    if now - last_postfix > 0.5:  # best_trial is O(trials): refresh twice a second
                        last_postfix = now
                        best = self.best_trial
                        if best is not None:
                            bar.set_postfix_str(f"best {metric}={best.value:.4g}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        return self

    def _check_feasible(self, trial: Trial, arch: Any) -> None:
        if self.constraints is not None and trial.state is TrialState.COMPLETE:
            ok = self.constraints.feasible(arch, trial.metrics)
            trial.info["feasible"] = bool(ok)

    @staticmethod
    def _complete(trial: Trial, m: Measurement, metric: str, seconds: float, extra: Sequence[str] = ()) -> None:
        trial.metrics = m.metrics
        trial.cost = m.cost
        trial.duration = seconds
        if m.fidelity is not None:
            trial.fidelity = m.fidelity
        if m.info:
            trial.info.update(m.info)
        value = m.metrics.get(metric)
        if value is None:
            trial.state = TrialState.FAILED
            trial.error = f"measurement has no metric {metric!r}; it has: {', '.join(m.metrics)}"
        elif isinstance(value, float) and math.isnan(value):
            trial.state, trial.value, trial.error = TrialState.FAILED, value, f"{metric} is NaN"
        else:
            trial.state, trial.value = TrialState.COMPLETE, float(value)
            missing = [k for k in extra if k not in m.metrics]
            if missing:  # every objective of a multi-objective study must be measured
                trial.state = TrialState.FAILED
                trial.error = f"measurement has no metric {missing[0]!r}; it has: {', '.join(m.metrics)}"

    @staticmethod
    def _fail(trial: Trial, exc: BaseException, seconds: float) -> None:
        trial.state = TrialState.FAILED
        trial.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:2000]
        trial.duration = seconds

    def _check_strategy(self, strategy: Strategy) -> None:
        cfg = strategy.config()
        stored = self.config.get("strategy")
        if stored is None:
            self.config["strategy"] = cfg
            self.storage.update_config(self._id, self.config)
        elif stored != cfg:
            diff = ", ".join(
                f"{k}: stored {stored.get(k)!r}, given {cfg.get(k)!r}"
                for k in sorted(set(stored) | set(cfg)) if stored.get(k) != cfg.get(k)
            )
            raise NasforgeError(
                f"study {self.name!r} was run with a different strategy ({diff}); resume it with the stored "
                "settings or use a new study name"
            )

    def _replay(self, strategy: Strategy) -> None:
        """Feed the finished trials back through the strategy, checking it asks the same things."""
        if strategy.n_told:
            raise NasforgeError("resume needs a fresh strategy object (this one has already been told results)")
        for t in self._trials:
            if not t.state.finished:
                continue
            sug = strategy.ask()
            if self.space.format(sug.arch) != t.arch:
                raise NasforgeError(
                    f"cannot resume study {self.name!r}: at trial {t.number} the strategy asks for "
                    f"{self.space.format(sug.arch)} but the study holds {t.arch}; was the seed or the "
                    "search space changed?"
                )
            if t.state is TrialState.COMPLETE:
                strategy.tell(sug, Measurement(t.metrics, t.cost, t.fidelity))
            else:
                strategy.tell(sug, None)

    def summary(self, report: Iterable[str] = ()) -> str:
        """A short text summary: counts and the best trial with chosen metrics."""
        states: dict[str, int] = {}
        for t in self._trials:
            states[t.state.value] = states.get(t.state.value, 0) + 1
        lines = [f"study {self.name!r}: {len(self._trials)} trials ("
                 + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + ")"]
        best = self.best_trial
        if best is not None:
            lines.append(f"best trial #{best.number}: {best.arch}")
            lines.append(f"  {self.metric} = {best.value:.4f}")
            if self.is_multi_objective:
                lines.append(f"  Pareto front over {', '.join(self.metrics)}: {len(self.pareto_front)} trial(s)")
            for r in report:
                if r in best.metrics and r != self.metric:
                    lines.append(f"  {r} = {best.metrics[r]:.4f}")
        return "\n".join(lines)


def _objectives(metric: str | Sequence[str], maximize: bool | Sequence[bool]) -> tuple[list[str], list[bool]]:
    """(metric names, directions) from a single metric or a list, with one direction each."""
    if isinstance(metric, str):
        if not isinstance(maximize, (bool, int)):
            raise NasforgeError(f"one metric ({metric!r}) needs one direction (a bool), got {maximize!r}")
        return [metric], [bool(maximize)]
    metrics = [str(m) for m in metric]
    if not metrics or len(set(metrics)) != len(metrics):
        raise NasforgeError(f"a study needs one or more distinct metric names, got {list(metric)!r}")
    dirs = [bool(maximize)] * len(metrics) if isinstance(maximize, (bool, int)) else [bool(d) for d in maximize]
    if len(dirs) != len(metrics):
        raise NasforgeError(f"{len(metrics)} metrics ({', '.join(metrics)}) but {len(dirs)} directions ({dirs})")
    return metrics, dirs
