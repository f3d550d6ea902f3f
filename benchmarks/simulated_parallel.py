"""Simulated parallel search on the NB201 CIFAR-10 table: nasforge vs Syne Tune, W simulated workers.

Both libraries search the same table (``/work/shared/data/nb201/cifar10.csv`` through
``load_benchmark("nb201:cifar10")``) on a simulated clock with W workers (default 4): an
evaluation occupies a worker for its cost in simulated seconds, and the run stops when the
clock reaches the budget ``--budget`` (simulated seconds). The table has no training times, so
an evaluation costs its fidelity in epochs, one simulated second each (nasforge's tabular cost;
the Syne Tune blackbox reports the same cumulative ``elapsed_time``).

Methods (same seeds 0..S-1 for both libraries):

* random search at 200 epochs. nasforge: ``get_strategy("random")``; Syne Tune:
  ``baselines.RandomSearch`` over a 200-epoch-only blackbox (one result per trial).
* ASHA with rungs 12 and 200 epochs, eta = 3. nasforge: ``get_strategy("asha", rungs=[12, 200],
  eta=3)`` (promotion-based: a promoted cell is queried at 200 epochs, cost 200); Syne Tune:
  ``baselines.ASHA(grace_period=12, max_t=200, reduction_factor=3)`` over a blackbox with
  results at 12 and 200 epochs (stopping-based: a continued trial runs on from its 12-epoch
  result, 200 s in total; Syne Tune's ASHA has no promotion variant in this version).

nasforge runs ``study.optimize(strategy, bench, n_workers=W, executor="simulated")`` on an
in-memory study; Syne Tune runs a ``Tuner`` with ``UserBlackboxBackend`` (its simulator backend
for a user blackbox; ``BlackboxRepositoryBackend`` is the same over a stored blackbox) and the
``SimulatorCallback``, ``StoppingCriterion(max_wallclock_time=budget)``. Its tuner advances the
simulated clock in steps of ``tuner_sleep_time`` while all workers are busy (default 5 s; one
row per ``--st-sleep`` value). Syne Tune's log output is switched off during its runs (which only
makes it faster).

Anytime curve: at simulated time t, among the 200-epoch results that arrived by t, the one with
the best ``valid_acc`` (``valid_acc_200``); its ``test_acc_200_full`` is reported (NB201
protocol). Mean ± s.e. over seeds; n = seeds with a 200-epoch result by then.
Throughput: evaluations (results at one fidelity) that arrived by the budget, per real second of
the whole run (set-up of study/tuner included, table loading excluded).

    python benchmarks/simulated_parallel.py --seeds 10 --budget 20000 --workers 4
    python benchmarks/simulated_parallel.py --quick
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.estimation import load_benchmark

METHODS = ("random", "asha")


class _BudgetSpent(Exception):
    """Raised from a callback when a result arrives after the simulated budget."""


# --- nasforge ---------------------------------------------------------------------------------
def run_nasforge(bench: Any, method: str, seed: int, workers: int, budget: float) -> dict[str, Any]:
    from nasforge.strategies import get_strategy
    from nasforge.study import create_study

    t0 = time.perf_counter()
    space = bench.space
    if method == "asha":
        strategy = get_strategy("asha", space, seed=seed, rungs=[12, 200], eta=3)
    else:
        strategy = get_strategy("random", space, seed=seed)
    study = create_study(f"{method}-{seed}", space, metric="valid_acc", maximize=True)

    def stop_at_budget(_study: Any, trial: Any) -> None:
        if trial.info.get("sim_end", 0.0) > budget:
            raise _BudgetSpent

    try:
        study.optimize(strategy, bench, n_trials=10**7, n_workers=workers, executor="simulated",
                       callbacks=[stop_at_budget])
    except _BudgetSpent:
        pass
    wall = time.perf_counter() - t0
    evals = []
    for t in study.trials:
        end = t.info.get("sim_end")
        if end is None or end > budget or t.state.value != "complete":
            continue
        evals.append((float(end), float(t.fidelity), t.metrics["valid_acc"], t.metrics.get("test_acc_full", math.nan)))
    configs = len({t.arch for t in study.trials if t.info.get("sim_end", math.inf) <= budget})
    return {"wall": wall, "evals": evals, "trials": len(evals), "configs": configs}


# --- Syne Tune ----------------------------------------------------------------------------------
class SyneTuneNB201:
    """The NB201 table as Syne Tune blackboxes: six categorical edges, results at 12 and 200
    epochs (``valid_acc``, ``test_acc``: test_acc_200_full at 200, test_acc_12 at 12) with a
    cumulative ``elapsed_time`` of one simulated second per epoch."""

    def __init__(self, bench: Any) -> None:
        import pandas as pd
        from syne_tune.config_space import choice, randint

        from nasforge.spaces.nb201 import OPS

        archs = [list(a) for a in bench.archs]
        self.edges = [f"edge{i}" for i in range(len(archs[0]))]
        self.config_space = {e: choice(list(OPS)) for e in self.edges}
        self.hps = pd.DataFrame({e: [a[i] for a in archs] for i, e in enumerate(self.edges)})
        self.fid = {12: (bench.values("valid_acc", 12), bench.values("test_acc", 12)),
                    200: (bench.values("valid_acc", 200), bench.values("test_acc_full", 200))}
        self._randint = randint

    def blackbox(self, fidelities: tuple[int, ...]) -> Any:
        from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular

        ev = np.zeros((len(self.hps), 1, len(fidelities), 3))
        for j, f in enumerate(fidelities):
            ev[:, 0, j, 0], ev[:, 0, j, 1] = self.fid[f]
            ev[:, 0, j, 2] = float(f)
        return BlackboxTabular(self.hps, self.config_space, {"epoch": self._randint(1, 200)}, ev,
                               fidelity_values=np.array(fidelities),
                               objectives_names=["valid_acc", "test_acc", "elapsed_time"])


def run_synetune(boxes: dict[str, Any], cs: dict[str, Any], method: str, seed: int, workers: int, budget: float,
                 sleep: float, folder: str) -> dict[str, Any]:
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository.simulated_tabular_backend import (
        UserBlackboxBackend,
    )
    from syne_tune.optimizer.baselines import ASHA, RandomSearch

    os.environ["SYNETUNE_FOLDER"] = folder
    np.random.seed(seed)  # Syne Tune's ASHA draws its bracket from numpy's global generator
    buf = io.StringIO()
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            t0 = time.perf_counter()
            backend = UserBlackboxBackend(boxes[method], elapsed_time_attr="elapsed_time", seed=0,
                                          tuner_sleep_time=sleep)
            if method == "asha":
                sched = ASHA(cs, metric="valid_acc", time_attr="epoch", max_t=200, grace_period=12,
                             reduction_factor=3, do_minimize=False, random_seed=seed)
            else:
                sched = RandomSearch(cs, metrics=["valid_acc"], do_minimize=False, random_seed=seed)
            cb = SimulatorCallback()
            tuner = Tuner(trial_backend=backend, scheduler=sched,
                          stop_criterion=StoppingCriterion(max_wallclock_time=budget), n_workers=workers,
                          sleep_time=0, callbacks=[cb], save_tuner=False, results_update_interval=1e9,
                          print_update_interval=1e9, tuner_name=f"{method}-{seed}")
            tuner.run()
            wall = time.perf_counter() - t0
    finally:
        logging.disable(logging.NOTSET)
    df = cb.dataframe()
    df = df[df["st_tuner_time"] <= budget]
    evals = list(zip(df["st_tuner_time"].astype(float), df["epoch"].astype(float), df["valid_acc"].astype(float),
                     df["test_acc"].astype(float)))
    return {"wall": wall, "evals": evals, "trials": int(df["trial_id"].nunique()), "configs":
            int(df["trial_id"].nunique())}


# --- curves and tables --------------------------------------------------------------------------
def incumbent_test(evals: list[tuple[float, float, float, float]], at: float) -> float:
    """test accuracy of the best-validation 200-epoch result that arrived by ``at`` (NaN if none)."""
    best_v, best_t = -math.inf, math.nan
    for end, fid, v, t in sorted(evals):
        if end > at:
            break
        if fid == 200 and v > best_v:
            best_v, best_t = v, t
    return best_t


def _mse(values: list[float], digits: int = 2) -> str:
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.{digits}f} (n=1)"
    se = statistics.stdev(v) / math.sqrt(len(v))
    return f"{statistics.fmean(v):.{digits}f} ± {se:.{digits}f}" + (f" (n={len(v)})" if len(v) < len(values) else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--budget", type=float, default=20000.0, help="simulated seconds (= epochs) per run")
    p.add_argument("--at", default=None, help="time points of the anytime table (default: budget/8, /4, /2, 1)")
    p.add_argument("--methods", default="random,asha")
    p.add_argument("--libraries", default="nasforge,synetune")
    p.add_argument("--st-sleep", default="5,1", help="Syne Tune tuner_sleep_time values (simulated s), one row each")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, budget 4000")
    args = p.parse_args()
    if args.quick:
        args.seeds, args.budget, args.st_sleep = 2, 4000.0, "5"
    at = [float(x) for x in args.at.split(",")] if args.at else [args.budget / 8, args.budget / 4, args.budget / 2,
                                                                  args.budget]
    methods = args.methods.split(",")
    libs = args.libraries.split(",")
    print(f"command: python benchmarks/{Path(__file__).name} {shlex.join(sys.argv[1:])}")
    versions = [f"Python {sys.version.split()[0]}"]
    if "synetune" in libs:
        import syne_tune

        versions.append(f"syne-tune {syne_tune.__version__}")
    print(", ".join(versions) + f"; {os.cpu_count()} CPU cores")

    bench = load_benchmark("nb201:cifar10", data_dir=args.data_dir)
    runners: dict[str, Any] = {}
    if "nasforge" in libs:
        runners["nasforge"] = lambda m, s: run_nasforge(bench, m, s, args.workers, args.budget)
    tmp = tempfile.TemporaryDirectory()
    if "synetune" in libs:
        st = SyneTuneNB201(bench)
        boxes = {"random": st.blackbox((200,)), "asha": st.blackbox((12, 200))}
        for sl in (float(x) for x in args.st_sleep.split(",")):
            runners[f"syne-tune (sleep {sl:g} s)"] = (
                lambda m, s, sl=sl: run_synetune(boxes, st.config_space, m, s, args.workers, args.budget, sl, tmp.name))

    res: dict[tuple[str, str], list[dict[str, Any]]] = {(m, lib): [] for m in methods for lib in runners}
    for method in methods:
        for run in runners.values():
            run(method, 10**6)  # warm-up (imports, lazily built lookup tables), not timed
        for seed in range(args.seeds):  # libraries interleaved, so that a busy moment hits them alike
            for lib, run in runners.items():
                r = run(method, seed)
                res[(method, lib)].append(r)
                print(f"  {method:6s} {lib:24s} seed {seed}: {len(r['evals'])} evaluations, "
                      f"{sum(e[1] == 200 for e in r['evals'])} at 200 epochs, {r['wall']:.2f} s real, "
                      f"final {incumbent_test(r['evals'], args.budget):.2f}", flush=True)
    tmp.cleanup()

    print(f"\n### anytime: test_acc_200_full of the best-valid_acc_200 result vs simulated time, W={args.workers}, "
          f"{args.seeds} seeds (mean ± s.e.)\n")
    print("| method | library | " + " | ".join(f"t={t:g} s" for t in at) + " |")
    print("|---|---|" + "---|" * len(at))
    for (method, lib), rs in res.items():
        cells = [_mse([incumbent_test(r["evals"], t) for r in rs]) for t in at]
        print(f"| {method} | {lib} | " + " | ".join(cells) + " |")

    print(f"\n### throughput: evaluations arriving by t={args.budget:g} simulated s, per real second "
          f"(mean ± s.e. over {args.seeds} seeds)\n")
    print("| method | library | evaluations per run | 200-epoch results | trials per run | real s per run "
          "| evaluations / real s (all seeds) | nasforge speed-up |")
    print("|---|---|---|---|---|---|---|---|")

    def rate(rs: list[dict[str, Any]]) -> float:
        return sum(len(r["evals"]) for r in rs) / sum(r["wall"] for r in rs)

    for (method, lib), rs in res.items():
        ours = res.get((method, "nasforge"))
        speed = f"{rate(ours) / rate(rs):.1f}x" if ours is not None and lib != "nasforge" else "-"
        print(f"| {method} | {lib} | {_mse([float(len(r['evals'])) for r in rs], 1)} "
              f"| {_mse([float(sum(e[1] == 200 for e in r['evals'])) for r in rs], 1)} "
              f"| {_mse([float(r['trials']) for r in rs], 1)} | {_mse([r['wall'] for r in rs], 4)} "
              f"| {rate(rs):,.0f} | {speed} |")
    print("\nevaluation = one result at one fidelity (nasforge: a trial; Syne Tune: a reported result row); "
          "trial = nasforge trial (one fidelity) or Syne Tune trial (one configuration, up to two results)")


if __name__ == "__main__":
    main()
