"""Studies: named, persisted searches that resume where they stopped."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from nasforge.errors import NasforgeError, check_float, check_int, shorten
from nasforge.estimation.base import Estimator, Measurement
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Strategy, Suggestion
from nasforge.study.executors import Executor, make_executor
from nasforge.study.storage import (InMemoryStorage, Storage, StudyTx, Trial, TrialState, get_storage,
                                    new_worker_id, worker_dead)

Callback = Callable[["Study", Trial], None]

#: seconds between a driver's heartbeats, and without one after which its running trials are
#: re-queued by any other process (a dead process on the same machine is noticed at once)
HEARTBEAT_INTERVAL = 5.0
STALE_AFTER = 60.0


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
        self.name = check_study_name(name)
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
        spec = _spec_of(space)
        if spec is not None:
            cfg.setdefault("space_spec", spec)
        self._id, self.config, self.created = self.storage.get_or_create_study(name, cfg)
        if not self.created:
            for key in ("space", "metric", "maximize") + (("constraints",) if self.constraints is not None else ()):
                if key in self.config and self.config[key] != cfg[key]:
                    raise NasforgeError(
                        f"study {name!r} exists with {key}={self.config[key]!r}, not {cfg[key]!r}; "
                        "choose another study name or the stored setting"
                    )
        #: how many trials were left running by a process that is gone (re-queued on the next run)
        self.n_interrupted = sum(t.state is TrialState.RUNNING and worker_dead(t.worker, t.heartbeat, STALE_AFTER)
                                 for t in self.storage.trials(self._id))
        self._strategy: Strategy | None = None
        self._worker: str | None = None
        self._seq = 0
        self._sugs: dict[int, Suggestion] = {}

    # --- reading ----------------------------------------------------------------------------
    @property
    def trials(self) -> list[Trial]:
        """Every trial, by number (read from the storage: other processes' trials included)."""
        return self.storage.trials(self._id)

    @property
    def finished_trials(self) -> list[Trial]:
        """Trials that count towards the budget: complete, failed or pruned."""
        return [t for t in self.trials if t.state.finished]

    @property
    def best_trial(self) -> Trial | None:
        """The complete trial with the best objective value at the largest fidelity evaluated.

        Values measured at different fidelities (e.g. 12- and 200-epoch accuracies) are never
        compared with each other: the best is chosen among the trials of the highest fidelity
        present (trials without a fidelity count as the highest). Ties: the earliest trial.
        Trials marked infeasible (hard constraints) are never the best. In a multi-objective
        study this is the best by the first objective; see :attr:`pareto_front`.
        """
        done = [t for t in self.trials
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

        done = [t for t in self.trials if t.state is TrialState.COMPLETE and t.info.get("feasible", True)
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
        for t in self.trials:
            row: dict[str, Any] = {k: getattr(t, k) for k in self._FIXED}
            row["state"] = t.state.value
            for k, v in t.metrics.items():
                row[f"metric_{k}" if k in self._FIXED else k] = v
            rows.append(row)
        return pd.DataFrame(rows, columns=None if rows else list(self._FIXED))

    # --- driving: ask and tell ------------------------------------------------------------------
    def ask(self, strategy: Strategy | None = None) -> Trial:
        """The next trial to evaluate: a re-queued trial whose worker died, if any, else the
        strategy's next suggestion. Evaluate ``trial.suggestion.arch`` at ``trial.fidelity`` (or
        parse ``trial.arch``) and report with :meth:`tell`. ``strategy`` binds the study's
        strategy on first use (default: random search, seed 0); later calls may omit it.
        """
        self._bind(strategy)
        with self.storage.lock(self._id) as tx:
            trial = self._next(tx, None, None)
        assert trial is not None
        return trial

    def tell(self, trial: Trial | int, result: Any = None, state: str | TrialState | None = None) -> Trial:
        """Report the result of a trial from :meth:`ask`: a :class:`Measurement`, a dict of
        metrics, a number (the objective's value), or ``None``/an exception for a failed
        evaluation; ``state="pruned"`` stops it early. Returns the stored trial."""
        if self._strategy is None:
            raise NasforgeError("tell() needs a trial from this study's ask()")
        number = trial if isinstance(trial, int) else trial.number
        if not isinstance(trial, Trial) or trial.suggestion is None:
            with self.storage.lock(self._id) as tx:
                stored = tx.get(number)
            if stored is None:
                raise NasforgeError(f"study {self.name!r} has no trial {number}")
            trial = stored
        if state is not None:
            try:
                state = TrialState(state)
            except ValueError:
                raise NasforgeError(f"unknown trial state {state!r}; allowed: complete, failed, pruned") from None
        if trial.state is not TrialState.RUNNING:
            raise NasforgeError(f"trial {number} of study {self.name!r} is {trial.state.value}, not running")
        if isinstance(result, BaseException):
            self._fail(trial, result, time.time() - trial.started)
        elif result is None and state is not TrialState.PRUNED:
            trial.state, trial.error = TrialState.FAILED, "no result"
            trial.duration = time.time() - trial.started
        else:
            m = _measurement(result, self.metric)
            self._complete(trial, m, self.metric, time.time() - trial.started, self.metrics[1:])
            self._check_feasible(trial, trial.suggestion.arch if trial.suggestion is not None else None)
        if state is TrialState.PRUNED:
            trial.state = TrialState.PRUNED
        elif state is TrialState.FAILED and trial.state is TrialState.COMPLETE:
            trial.state, trial.error = TrialState.FAILED, trial.error or "failed"
        self._record(trial)
        return trial

    def _bind(self, strategy: Strategy | None) -> Strategy:
        """Make ``strategy`` the one this object drives; a fresh strategy replays the study's log."""
        if strategy is None:
            if self._strategy is not None:
                return self._strategy
            from nasforge.strategies import get_strategy

            strategy = get_strategy("random", self.space, seed=0)
        if strategy is self._strategy:
            return strategy
        if strategy.space is not self.space and strategy.space.name != self.space.name:
            raise NasforgeError(f"strategy searches space {strategy.space.name!r}, study is on {self.space.name!r}")
        multi = getattr(strategy, "multi_objective", False)
        if multi and not self.is_multi_objective:
            raise NasforgeError(f"strategy {strategy.name!r} is multi-objective; create the study with several "
                                "metrics, e.g. metric=['valid_acc', 'latency_ms[pixel3]'], maximize=[True, False]")
        if strategy.n_told:
            raise NasforgeError("resume needs a fresh strategy object (this one has already been told results)")
        if strategy.metric is None:  # a scalar strategy in a multi-objective study optimises the first objective
            strategy.metric = list(self.metrics) if multi else self.metric
        if strategy.maximize is None:
            strategy.maximize = list(self.directions) if multi else self.maximize
        if self.constraints is not None:
            for s in (strategy, getattr(strategy, "base", None)):  # schedulers sample through a base strategy
                if s is not None and getattr(s, "feasible", None) is None:
                    s.feasible = self.constraints
        self._check_strategy(strategy)
        self._strategy, self._seq, self._sugs = strategy, 0, {}
        if self._worker is None:
            self._worker = new_worker_id()
        with self.storage.lock(self._id) as tx:
            self._reap(tx)
            self._sync(tx)
        return strategy

    def _sync(self, tx: StudyTx) -> None:
        """Replay the log's events after ours into the strategy (other processes' asks and tells,
        or the whole history for a fresh strategy), so that every driver holds the same state."""
        if tx.seq <= self._seq:
            return
        strategy, fmt, sugs = self._strategy, self.space.format, self._sugs
        assert strategy is not None
        for seq, kind, t in tx.events(self._seq):
            if kind == "ask":
                # a strategy may replay an ask from what it recorded in the trial (BO: its fitted
                # model), rather than recompute it; it returns the same suggestion either way
                replay = getattr(strategy, "replay_ask", None)
                sug = replay(t.arch, t.info) if replay is not None else strategy.ask()
                if fmt(sug.arch) != t.arch:
                    raise NasforgeError(
                        f"cannot resume study {self.name!r}: at trial {t.number} the strategy asks for "
                        f"{fmt(sug.arch)} but the study holds {t.arch}; was the seed or the search space changed?")
                sugs[t.number] = sug
            else:
                root = t.number if t.retry_of is None else t.retry_of
                sug = sugs.pop(root, None)
                if sug is not None:  # None: a trial stored outside the log (old files, hand-written)
                    strategy.tell(sug, Measurement(t.metrics, t.cost, t.fidelity)
                                  if t.state is TrialState.COMPLETE else None)
            self._seq = seq

    def _next(self, tx: StudyTx, n_trials: int | None, max_cost: float | None) -> Trial | None:
        """Inside the study's lock: claim a re-queued trial or ask the strategy for a new one;
        None when the budget (finished + active trials, finished cost) leaves no room."""
        self._sync(tx)
        strategy = self._strategy
        assert strategy is not None and self._worker is not None
        if n_trials is not None or max_cost is not None:
            finished, active, spent = tx.counts()
            if max_cost is not None and spent >= max_cost:
                return None
            room = n_trials is None or finished + active < n_trials
        else:
            room = True
        trial = tx.claim_waiting(self._worker)
        if trial is not None:
            trial.suggestion = self._sugs.get(trial.retry_of if trial.retry_of is not None else trial.number)
            if trial.suggestion is None:  # not in the log (hand-written): rebuild from the string
                trial.suggestion = Suggestion(self.space.parse(trial.arch), trial.fidelity, dict(trial.info))
            return trial
        if not room:
            return None
        sug = strategy.ask()
        now = time.time()
        trial = Trial(-1, self.space.format(sug.arch), sug.fidelity, started=now,
                      info=dict(sug.info) if sug.info else {}, worker=self._worker, heartbeat=now)
        tx.add(trial, event=True)
        self._seq = trial.ask_seq  # type: ignore[assignment]
        self._sugs[trial.number] = sug
        trial.suggestion = sug
        return trial

    def _record(self, trial: Trial) -> bool:
        """Store a finished trial and tell the strategy (one tell event). False when the trial is
        no longer ours (another process found us dead and re-queued it): the result is dropped."""
        strategy = self._strategy
        assert strategy is not None
        with self.storage.lock(self._id) as tx:
            self._sync(tx)
            cur = tx.owner(trial.number)
            if cur is None or cur[0] is not TrialState.RUNNING or cur[1] != self._worker:
                return False
            trial.ask_seq, trial.retry_of = cur[2], cur[3]
            trial.worker = self._worker
            tx.update(trial, event=True)
            self._seq = trial.tell_seq  # type: ignore[assignment]
            root = trial.number if trial.retry_of is None else trial.retry_of
            sug = self._sugs.pop(root, None)
            if sug is not None:
                strategy.tell(sug, Measurement(trial.metrics, trial.cost, trial.fidelity, trial.info)
                              if trial.state is TrialState.COMPLETE else None)
        return True

    def _lose(self, trials: Sequence[Trial], state: TrialState, reason: str) -> None:
        """Re-queue our trials whose evaluation was lost (interrupt, dead pool worker)."""
        if not trials:
            return
        with self.storage.lock(self._id) as tx:
            for trial in trials:
                cur = tx.get(trial.number)
                if cur is not None and cur.state is TrialState.RUNNING and cur.worker == self._worker:
                    tx.requeue(cur, state, reason)
            if self._strategy is not None:
                self._sync(tx)

    def _reap(self, tx: StudyTx, stale_after: float = STALE_AFTER) -> int:
        """Inside the lock: re-queue running trials whose worker is gone."""
        n = 0
        now = time.time()
        for t in tx.running():
            if t.worker != self._worker and worker_dead(t.worker, t.heartbeat, stale_after, now):
                tx.requeue(t, TrialState.STALE, f"stale: worker {t.worker} died or stopped sending heartbeats")
                n += 1
        return n

    # --- the loop -----------------------------------------------------------------------------
    def optimize(
        self,
        strategy: Strategy | None,
        estimator: Estimator,
        n_trials: int | None = None,
        max_cost: float | None = None,
        timeout: float | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool = False,
        catch: tuple[type[BaseException], ...] = (Exception,),
        n_workers: int = 1,
        executor: str | Executor | None = None,
        ray_address: str | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        stale_after: float = STALE_AFTER,
    ) -> Study:
        """Run ``strategy`` against ``estimator`` until the budget is spent.

        Budgets (any combination; at least one): ``n_trials`` finished trials in total (over
        every process working on the study), ``max_cost`` total cost (seconds; see
        :class:`Measurement`), ``timeout`` wall-clock seconds for this call. ``n_workers``
        evaluations run at once on ``executor``: ``"thread"``, ``"process"`` (a process pool on
        this machine), ``"ray"`` (a Ray cluster at ``ray_address``, or a local one), or
        ``"simulated"`` (a simulated clock: each trial occupies a worker for its measured cost;
        ``trial.info["sim_start"]``/``["sim_end"]`` record when). Results reach the strategy in
        the order they arrive, and that order is stored, so a resumed study replays it exactly.
        Several processes may run ``optimize`` on one stored study at once: they share the budget,
        and a trial whose process died (no heartbeat for ``stale_after`` seconds, or its process
        is gone from this machine) is re-queued once. An exception in the estimator fails the
        trial (its message is stored) and the search goes on; exceptions outside ``catch``
        propagate after the running trials are marked interrupted and re-queued.
        """
        if n_trials is None and max_cost is None and timeout is None:
            raise NasforgeError("optimize needs a budget: n_trials, max_cost or timeout")
        if n_trials is not None:
            n_trials = check_int(n_trials, "n_trials (trial budget)", 0)
        if max_cost is not None:
            max_cost = check_float(max_cost, "max_cost (cost budget)", 0, low_open=True)
        if timeout is not None:
            timeout = check_float(timeout, "timeout (seconds)", 0, low_open=True)
        try:
            n_workers = check_int(n_workers, "n_workers", 1)
        except NasforgeError:
            raise NasforgeError(f"n_workers must be a whole number >= 1, got {n_workers!r}") from None
        if estimator is None:
            raise NasforgeError("optimize needs an estimator (what measures an architecture)")
        ex = make_executor(executor, n_workers, ray_address)  # validates before anything runs
        self._bind(strategy)
        n_done = len(self.finished_trials) if progress else 0
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_trials, initial=min(n_done, n_trials or n_done), desc=self.name, unit="trial",
                       dynamic_ncols=True)
        start = time.perf_counter()
        beat = _Heartbeat(self.storage, self._id, self._worker, heartbeat_interval)  # type: ignore[arg-type]
        inflight: dict[int, Trial] = {}
        last_reap = time.perf_counter()
        last_postfix, postfix_every = 0.0, 0.5
        metric, extra = self.metric, self.metrics[1:]
        ex.start(estimator, catch)
        try:
            beat.start()
            while True:
                left = None if timeout is None else timeout - (time.perf_counter() - start)
                if left is None or left > 0:
                    while ex.free > 0:
                        with self.storage.lock(self._id) as tx:
                            trial = self._next(tx, n_trials, max_cost)
                        if trial is None:
                            break
                        inflight[trial.number] = trial
                        ex.submit(trial.number, trial.suggestion.arch, trial.fidelity)
                if not inflight:
                    if (left is not None and left <= 0) or not self._others_active(n_trials, max_cost):
                        if bar is not None:  # the bar ends with the study's best, however recent
                            best = self.best_trial
                            if best is not None:
                                bar.set_postfix_str(f"best {metric}={best.value:.4g}", refresh=False)
                        break
                    time.sleep(min(0.2, heartbeat_interval))  # others' trials may come back re-queued
                wait = heartbeat_interval if left is None or left <= 0 else min(heartbeat_interval, left)
                for r in (ex.wait(wait) if inflight else ()):
                    trial = inflight.pop(r.key)
                    if r.lost:
                        self._lose([trial], TrialState.STALE, f"stale: {r.error}")
                        continue
                    if r.error is not None:
                        trial.state, trial.error, trial.duration = TrialState.FAILED, r.error[:2000], r.seconds
                    else:
                        self._complete(trial, r.measurement, metric, r.seconds, extra)  # type: ignore[arg-type]
                        self._check_feasible(trial, trial.suggestion.arch)
                    if r.sim_end is not None:
                        trial.info["sim_start"], trial.info["sim_end"] = r.sim_start, r.sim_end
                    if not self._record(trial):
                        continue
                    for cb in callbacks:
                        cb(self, trial)
                    if bar is not None:
                        bar.update(1)
                        now = time.perf_counter()
                        if now - last_postfix > postfix_every:
                            # best_trial reads every trial: at most twice a second, and at most 5% of the
                            # time (a large study's read would otherwise come after every trial)
                            best = self.best_trial
                            last_postfix = time.perf_counter()
                            postfix_every = max(0.5, 20 * (last_postfix - now))
                            if best is not None:
                                bar.set_postfix_str(f"best {metric}={best.value:.4g}", refresh=False)
                if time.perf_counter() - last_reap > heartbeat_interval and not isinstance(self.storage,
                                                                                          InMemoryStorage):
                    last_reap = time.perf_counter()
                    with self.storage.lock(self._id) as tx:
                        self._reap(tx, stale_after)
        except BaseException as exc:
            lost = list(inflight.values())
            inflight.clear()
            try:
                self._lose(lost, TrialState.INTERRUPTED, f"interrupted: {type(exc).__name__}")
            finally:
                raise
        finally:
            beat.stop()
            ex.shutdown()
            if bar is not None:
                bar.close()
        return self

    def _others_active(self, n_trials: int | None, max_cost: float | None) -> bool:
        """Whether trials of other processes are still running or queued and the budget is not
        spent: then this process waits for them (and re-runs any that come back re-queued)."""
        if isinstance(self.storage, InMemoryStorage):
            return False
        with self.storage.lock(self._id) as tx:
            self._reap(tx)
            finished, active, spent = tx.counts()
        if max_cost is not None and spent >= max_cost:
            return False
        return active > 0 and (n_trials is None or finished < n_trials)

    def _check_feasible(self, trial: Trial, arch: Any) -> None:
        if self.constraints is not None and trial.state is TrialState.COMPLETE:
            ok = self.constraints.feasible(arch, trial.metrics)
            trial.info["feasible"] = bool(ok)

    @staticmethod
    def _complete(trial: Trial, m: Measurement, metric: str, seconds: float, extra: Sequence[str] = ()) -> None:
        trial.cost = m.cost
        trial.duration = seconds
        if m.fidelity is not None:
            trial.fidelity = m.fidelity
        if m.info:
            trial.info.update(m.info)
        # metrics are stored as numbers: NaN stays NaN (a missing value); an infinite value, which a
        # database cannot hold, fails the trial when it is an objective and becomes NaN otherwise,
        # so that the trial reads the same in memory and after a reload
        metrics, bad = _finite_metrics(m.metrics)
        trial.metrics = metrics
        if bad:
            trial.info["non_finite"] = sorted(bad)
        value = metrics.get(metric)
        objectives = [metric, *extra]
        cost = _number(m.cost)
        if value is None:
            trial.state = TrialState.FAILED
            trial.error = f"measurement has no metric {metric!r}; it has: {', '.join(metrics)}"
        elif math.isnan(value):
            trial.state, trial.value = TrialState.FAILED, None
            trial.error = f"{metric} is {bad.get(metric, 'NaN')}"
        elif cost is None or not math.isfinite(cost) or cost < 0:
            trial.state, trial.value, trial.cost = TrialState.FAILED, None, 0.0
            trial.error = f"the measurement's cost is {shorten(m.cost)}; expected a finite number >= 0"
        else:
            trial.state, trial.value, trial.cost = TrialState.COMPLETE, value, cost
            missing = [k for k in extra if k not in metrics]
            nonfinite = [k for k in objectives[1:] if k in metrics and math.isnan(metrics[k])]
            if missing:  # every objective of a multi-objective study must be measured
                trial.state, trial.value = TrialState.FAILED, None
                trial.error = f"measurement has no metric {missing[0]!r}; it has: {', '.join(metrics)}"
            elif nonfinite:
                trial.state, trial.value = TrialState.FAILED, None
                trial.error = f"{nonfinite[0]} is {bad.get(nonfinite[0], 'NaN')}"
        if trial.state is TrialState.FAILED and not math.isfinite(_number(trial.cost) or 0.0):
            trial.cost = 0.0

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

    def summary(self, report: Iterable[str] = ()) -> str:
        """A short text summary: counts and the best trial with chosen metrics."""
        states: dict[str, int] = {}
        trials = self.trials
        for t in trials:
            states[t.state.value] = states.get(t.state.value, 0) + 1
        lines = [f"study {self.name!r}: {len(trials)} trials ("
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


def _measurement(result: Any, metric: str) -> Measurement:
    """A Measurement from what a user reports: a Measurement, a dict of metrics or a number."""
    if isinstance(result, Measurement):
        return result
    try:
        if isinstance(result, dict):
            return Measurement({str(k): float(v) for k, v in result.items()})
        if isinstance(result, (str, bytes, bool)):
            raise TypeError
        return Measurement({metric: float(result)})
    except (TypeError, ValueError, OverflowError):
        raise NasforgeError(f"cannot read a result from {shorten(result)}: give a Measurement, a dict of metric "
                            "numbers or a number") from None


def _number(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return None


def _finite_metrics(metrics: Any) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics as floats with infinite and unreadable values made NaN, {name: what it was})."""
    out: dict[str, float] = {}
    bad: dict[str, str] = {}
    items = metrics.items() if isinstance(metrics, dict) else ()
    for k, v in items:
        f = _number(v)
        if f is None or math.isinf(f):
            bad[str(k)] = "inf" if f == math.inf else "-inf" if f == -math.inf else f"not a number ({shorten(v)})"
            f = math.nan
        out[str(k)] = f
    return out, bad


#: the longest study name (what every storage holds: PostgreSQL's column is VARCHAR(255))
MAX_STUDY_NAME = 255


def check_study_name(name: Any) -> str:
    """``name`` if it can name a study in every storage: a non-empty string of at most 255
    characters without NUL or other control characters."""
    if not isinstance(name, str) or not name.strip():
        raise NasforgeError(f"bad study name {shorten(name)}: expected a non-empty string")
    if len(name) > MAX_STUDY_NAME:
        raise NasforgeError(f"bad study name {shorten(name)}: {len(name):,} characters; at most {MAX_STUDY_NAME}")
    ctrl = next((c for c in name if ord(c) < 32 or ord(c) == 127), None)
    if ctrl is not None:
        raise NasforgeError(f"bad study name {shorten(name)}: it contains the control character {ctrl!r}")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise NasforgeError(f"bad study name {shorten(name)}: it is not valid Unicode text")
    return name


class _Heartbeat:
    """A daemon thread that stamps this driver's running trials every ``interval`` seconds."""

    def __init__(self, storage: Storage, study_id: int, worker: str, interval: float) -> None:
        self.storage, self.study_id, self.worker, self.interval = storage, study_id, worker, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if isinstance(self.storage, InMemoryStorage):
            return
        self._thread = threading.Thread(target=self._run, name="nasforge-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.heartbeat(self.study_id, self.worker)
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next interval
                pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _spec_of(obj: Any) -> dict[str, Any] | None:
    """The object's rebuild recipe, when it can give one."""
    try:
        return obj.spec()
    except Exception:  # noqa: BLE001 - no spec(), or parameters that are not data
        return None


def create_study(
    name: str,
    space: SearchSpace,
    metric: str | Sequence[str] = "valid_acc",
    maximize: bool | Sequence[bool] = True,
    storage: str | Storage | None = None,
    *,
    config: dict[str, Any] | None = None,
    constraints: Any = None,
    load_if_exists: bool = False,
) -> Study:
    """A new study ``name`` in ``storage`` (a URL, a Storage, or None for in memory).

    If the name is taken, this is an error unless ``load_if_exists`` (then the stored study is
    loaded, after checking that space, metric and direction agree)."""
    name = check_study_name(name)
    store = get_storage(storage)
    if not load_if_exists and store.study_id(name) is not None:
        raise NasforgeError(f"study {name!r} already exists in {store.describe()}; use load_study({name!r}, ...) "
                            "or create_study(..., load_if_exists=True), or choose another name")
    return Study(name, space, metric, maximize=maximize, storage=store, config=config, constraints=constraints)


def load_study(name: str, storage: str | Storage, space: SearchSpace | None = None) -> Study:
    """The stored study ``name``: its space is rebuilt from the stored description (or given),
    its objectives and settings read back (``study.config``; the command line's settings are
    under ``config["search"]``)."""
    name = check_study_name(name)
    store = get_storage(storage)
    found = store.study_id(name)
    if found is None:
        names = store.study_names()
        raise NasforgeError(f"no study {name!r} in {store.describe()}; studies: {', '.join(names) or 'none'}")
    cfg = found[1]
    if space is None:
        space = _stored_space(cfg)
    return Study(name, space, cfg["metric"], maximize=cfg["maximize"], storage=store)


def _stored_space(cfg: dict[str, Any]) -> SearchSpace:
    spec = cfg.get("space_spec")
    if spec is not None:
        try:
            from nasforge.params import from_spec

            return from_spec(spec)
        except ImportError:
            pass
    from nasforge.spaces import get_space

    return get_space(cfg["space"])
