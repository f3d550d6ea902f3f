"""Reliability of several processes on one study: no lost or doubled trials, and recovery from kills.

Part A, many processes: W (default 8) OS processes run
``create_study(..., load_if_exists=True).optimize(random, trivial objective, n_trials=N)`` on one
storage (an SQLite file; PostgreSQL too with ``--pg-url``), N = 2,000 finished trials in total.
Counted afterwards from the storage and from what each process reported through a callback:

* lost trials: asked (stored) but never finished, and not re-run by a finished copy;
* duplicated trial numbers in the storage, and trials recorded by two processes;
* worker crashes: processes that exited with a non-zero code;
* the final number of finished trials, which must equal N.

Part B, kill test: W (default 4) processes search one study with real training (RE, seed 0;
NB201 cells with C=4, N=1 for 2 epochs on scikit-learn digits, one torch thread per process;
``--worker cli`` runs ``nasforge search`` instead) with budget B. At random moments
(uniform between ``--kill-min`` and ``--kill-max`` seconds) the driver SIGKILLs one worker,
chosen at random among those owning a running trial (it waits for one, up to 60 s; then any live
worker), and starts a new one in its place; after ``--kills`` kills the workers run to the end.
Workers running a re-queued copy are spared unless ``--kill-retries`` (a trial lost twice is
failed by design, so that a trial that kills its workers cannot stall the study). Checked:

* every trial that was running in a killed process became ``stale`` and has a re-queued copy
  (``retry_of`` = the original's number) that finished, unless that copy was killed too (a trial
  lost twice is failed by design: ``max_retries=1``);
* no trial ran twice at once: every re-queued copy started after the process holding the stale
  one was killed, and each original has exactly one finished trial in its chain;
* no trial is left running or waiting; the number of finished trials equals B; processes not
  killed exited with code 0.

    python benchmarks/parallel_reliability.py                     # A (8 x 2,000) and B (4 workers, 20 kills)
    python benchmarks/parallel_reliability.py --pg-url postgresql+psycopg://user@host/db
    python benchmarks/parallel_reliability.py --quick
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any


# --- part A -----------------------------------------------------------------------------------
def _worker_a(url: str, name: str, n_total: int, ready: Any, go: Any, results: Any) -> None:
    from nasforge.estimation import Estimator, Measurement
    from nasforge.spaces import NB201Space
    from nasforge.spaces.nb201 import OPS
    from nasforge.strategies import get_strategy
    from nasforge.study import create_study

    score = {op: i for i, op in enumerate(OPS)}

    class Trivial(Estimator):
        @property
        def metric_names(self) -> list[str]:
            return ["acc"]

        def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
            return Measurement({"acc": float(sum(score[o] for o in arch))})

    space = NB201Space()
    study = create_study(name, space, metric="acc", maximize=True, storage=url, load_if_exists=True)
    mine: list[int] = []
    ready.release()
    go.wait()
    study.optimize(get_strategy("random", space, seed=0, allow_duplicates=True), Trivial(), n_trials=n_total,
                   callbacks=[lambda _s, t: mine.append(t.number)])
    results.put((os.getpid(), mine))


def part_a(url: str, n_total: int, n_workers: int) -> dict[str, Any]:
    from nasforge.spaces import NB201Space
    from nasforge.study import create_study, load_study

    name = f"rel-a-{uuid.uuid4().hex[:10]}"
    create_study(name, NB201Space(), metric="acc", maximize=True, storage=url)
    ctx = mp.get_context("spawn")
    ready, go, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker_a, args=(url, name, n_total, ready, go, results)) for _ in range(n_workers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire(timeout=300)
    t0 = time.monotonic()
    go.set()
    reported: dict[int, list[int]] = {}
    while len(reported) < n_workers:
        try:
            pid, mine = results.get(timeout=5)
            reported[pid] = mine
        except Exception:  # noqa: BLE001 - queue.Empty: stop waiting once a worker died
            if any(p.exitcode not in (None, 0) for p in procs):
                break
    for p in procs:
        p.join()
    wall = time.monotonic() - t0
    trials = load_study(name, storage=url, space=NB201Space()).trials
    out = check_trials(trials)
    recorded = Counter(n for mine in reported.values() for n in mine)
    finished = {t.number for t in trials if t.state.finished}
    out.update(
        wall=wall, crashes=sum(p.exitcode != 0 for p in procs), target=n_total,
        recorded_twice=sum(c > 1 for c in recorded.values()),
        unreported=len(finished - set(recorded)), per_worker=sorted(len(m) for m in reported.values()),
    )
    return out


def check_trials(trials: list[Any]) -> dict[str, Any]:
    """Counts over a study's trials: states, duplicated numbers, lost trials, re-queue chains."""
    from nasforge.study import TrialState

    numbers = [t.number for t in trials]
    states = Counter(t.state.value for t in trials)
    chains: dict[int, list[Any]] = defaultdict(list)
    for t in trials:
        chains[t.number if t.retry_of is None else t.retry_of].append(t)
    lost = 0
    multi_finished = 0
    for members in chains.values():
        n_fin = sum(m.state.finished for m in members)
        multi_finished += n_fin > 1
        if n_fin == 0:
            lost += 1
    return {
        "trials": len(trials), "finished": sum(t.state.finished for t in trials), "states": dict(states),
        "duplicate_numbers": len(numbers) - len(set(numbers)), "lost": lost, "chains_finished_twice": multi_finished,
        "left_active": sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials),
        "chains": chains,
    }


# --- part B -------------------------------------------------------------------------------------
_PID = re.compile(r"worker [^\s:]+:(\d+):")


def _running_pids(study: Any) -> dict[int, Any]:
    """pid -> the trial it runs, from the storage (workers are named host:pid:token)."""
    from nasforge.study import TrialState

    out = {}
    for t in study.trials:
        if t.state is TrialState.RUNNING and t.worker:
            parts = t.worker.split(":")
            if len(parts) >= 2 and parts[1].isdigit():
                out[int(parts[1])] = t
    return out


def _pick_victim(study: Any, live: list[Any], target: str, spare_retries: bool, rng: random.Random,
                 patience: float = 60.0) -> tuple[Any, Any]:
    """(process to kill, the trial it runs or None). ``target="running"``: a worker that owns a
    running trial (not a re-queued copy when ``spare_retries``), waiting up to ``patience``
    seconds for one; then, or with ``target="any"``, any live worker."""
    deadline = time.time() + patience
    while target == "running" and time.time() < deadline:
        running = _running_pids(study)
        cands = [p for p in live if p.poll() is None and p.pid in running
                 and not (spare_retries and running[p.pid].retry_of is not None)]
        if cands:
            p = rng.choice(cands)
            return p, running[p.pid]
        time.sleep(0.25)
    live = [p for p in live if p.poll() is None]
    p = rng.choice(live)
    return p, _running_pids(study).get(p.pid)


def worker_b(name: str, url: str, budget: int, epochs: int) -> None:
    """One part-B worker in this process: what ``nasforge search --dataset digits --epochs E --C 4
    --N 1 --strategy re --seed 0`` runs, with one torch thread (several processes share the cores)."""
    from nasforge.data import load_dataset
    from nasforge.estimation.training import TrainingEstimator
    from nasforge.spaces import NB201Space
    from nasforge.strategies import get_strategy
    from nasforge.study import create_study

    space = NB201Space()
    est = TrainingEstimator(space, load_dataset("digits", seed=0), max_epochs=epochs, net={"C": 4, "N": 1}, seed=0,
                            threads=1)
    study = create_study(name, space, metric="valid_acc", maximize=True, storage=url, load_if_exists=True)
    study.optimize(get_strategy("re", space, seed=0), est, n_trials=budget)
    print(f"worker {os.getpid()}: done, {len(study.finished_trials)} finished trials in the study", flush=True)


def part_b(url: str, budget: int, n_workers: int, kills: int, kill_min: float, kill_max: float, epochs: int,
           seed: int, logdir: Path, target: str, worker: str, spare_retries: bool) -> dict[str, Any]:
    from nasforge.study import load_study

    name = f"rel-b-{uuid.uuid4().hex[:10]}"
    rng = random.Random(seed)
    if worker == "cli":
        cmd = [sys.executable, "-m", "nasforge", "search", "--study", name, "--storage", url, "--dataset", "digits",
               "--budget", str(budget), "--epochs", str(epochs), "--C", "4", "--N", "1", "--quiet",
               "--workdir", str(logdir / "work")]
    else:
        cmd = [sys.executable, __file__, "--run-worker", name, "--run-worker-url", url, "--budget", str(budget),
               "--epochs", str(epochs)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs: list[subprocess.Popen] = []
    count = iter(range(10**6))

    def start() -> subprocess.Popen:
        i = next(count)
        log = open(logdir / f"worker{i}.log", "wb")  # noqa: SIM115 - closed when the process ends
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        p.log = log  # type: ignore[attr-defined]
        procs.append(p)
        return p

    # the first worker creates the study; the others join once it exists (same settings, stored)
    live = [start()]
    t_start = time.time()
    while time.time() - t_start < 120:
        try:
            study = load_study(name, storage=url)
            break
        except Exception:  # noqa: BLE001 - not created yet
            time.sleep(0.2)
    else:
        raise RuntimeError("the first worker did not create the study within 120 s; see " + str(logdir))
    live += [start() for _ in range(n_workers - 1)]
    killed: dict[int, float] = {}  # pid -> time.time() of the kill
    hit_running: list[int] = []
    for _ in range(kills):
        time.sleep(rng.uniform(kill_min, kill_max))
        live = [p for p in live if p.poll() is None]
        if not live:
            break
        victim, trial = _pick_victim(study, live, target, spare_retries, rng)
        killed[victim.pid] = time.time()
        victim.send_signal(signal.SIGKILL)
        victim.wait()  # reap it: a zombie would still look alive
        if trial is not None:
            hit_running.append(trial.number)
        live.remove(victim)
        live.append(start())
    deadline = time.time() + 1800
    for p in procs:
        p.wait(timeout=max(1.0, deadline - time.time()))
        p.log.close()  # type: ignore[attr-defined]
    wall = time.time() - t_start

    trials = load_study(name, storage=url).trials
    out = check_trials(trials)
    from nasforge.study import TrialState

    stale = [t for t in trials if t.state in (TrialState.STALE, TrialState.INTERRUPTED)]
    by_number = {t.number: t for t in trials}
    unrecovered, overlaps, unknown_pid = [], [], 0
    for s in stale:
        root = s.number if s.retry_of is None else s.retry_of
        later = sorted((m for m in out["chains"][root] if m.number > s.number), key=lambda m: m.number)
        if not later:
            unrecovered.append(s.number)
            continue
        m = _PID.search(s.error or "")
        if m is None or int(m.group(1)) not in killed:
            unknown_pid += 1
            continue
        if later[0].started < killed[int(m.group(1))]:
            overlaps.append((s.number, later[0].number))
    chain_ok = sum(any(m.state is TrialState.COMPLETE for m in out["chains"][
        s.number if s.retry_of is None else s.retry_of]) for s in stale)
    failed_twice = [t.number for t in trials if t.state is TrialState.FAILED and "re-queued" in (t.error or "")]
    codes = Counter()
    for p in procs:
        codes["killed (-9)" if p.pid in killed else f"exit {p.returncode}"] += 1
    out.update(
        name=name, wall=wall, target=budget, kills=len(killed), kills_on_running=len(hit_running),
        stale=len(stale), stale_recovered=chain_ok, unrecovered=unrecovered, overlaps=overlaps,
        unknown_pid=unknown_pid, failed_twice=failed_twice, exit_codes=dict(codes),
        crashes=sum(p.returncode != 0 for p in procs if p.pid not in killed),
        killed_trials_stale=sum(by_number[n].state in (TrialState.STALE, TrialState.INTERRUPTED, TrialState.FAILED)
                                for n in hit_running if n in by_number),
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default="a,b")
    p.add_argument("--trials", type=int, default=2000, help="part A: finished trials in total")
    p.add_argument("--workers-a", type=int, default=8)
    p.add_argument("--budget", type=int, default=300, help="part B: finished trials in total")
    p.add_argument("--workers-b", type=int, default=4)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--kill-min", type=float, default=2.0, help="part B: least seconds between kills")
    p.add_argument("--kill-max", type=float, default=8.0, help="part B: most seconds between kills")
    p.add_argument("--target", choices=("running", "any"), default="running",
                   help="part B: kill a worker that owns a running trial (default; waits up to 60 s for one) or any "
                        "live worker")
    p.add_argument("--kill-retries", action="store_true",
                   help="part B: may also kill a worker running a re-queued copy (a trial lost twice is failed by "
                        "design); by default such workers are spared")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--worker", choices=("python", "cli"), default="python",
                   help="part B worker: this script's worker (one torch thread per process) or `nasforge search` "
                        "(which trains with every core in each process)")
    p.add_argument("--run-worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--run-worker-url", default=None, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help="part B: seed of the kill schedule")
    p.add_argument("--pg-url", default=None, help="also run on this PostgreSQL URL (SQLAlchemy form)")
    p.add_argument("--quick", action="store_true", help="smoke run: A 4 x 200 trials; B budget 40, 4 kills")
    p.add_argument("--keep", default=None, help="keep storage files and worker logs in this folder")
    args = p.parse_args()
    if args.run_worker:
        worker_b(args.run_worker, args.run_worker_url, args.budget, args.epochs)
        return
    if args.quick:
        args.trials, args.workers_a, args.budget, args.kills = 200, 4, 40, 4
    print(f"command: python benchmarks/{Path(__file__).name} {shlex.join(sys.argv[1:])}")
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPU cores")
    parts = args.parts.split(",")
    tmp = tempfile.TemporaryDirectory() if args.keep is None else None
    root = Path(args.keep or tmp.name)  # type: ignore[union-attr]
    root.mkdir(parents=True, exist_ok=True)
    storages = {"sqlite": lambda tag: f"sqlite:///{root / f'{tag}.db'}"}
    if args.pg_url:
        storages["postgresql"] = lambda tag: args.pg_url

    if "a" in parts:
        rows = []
        for label, url in storages.items():
            r = part_a(url(f"a-{uuid.uuid4().hex[:6]}"), args.trials, args.workers_a)
            rows.append((label, r))
            print(f"  A {label}: {r['finished']}/{args.trials} finished in {r['wall']:.1f} s, states {r['states']}, "
                  f"trials per worker {r['per_worker']}", flush=True)
        print(f"\n### Part A: {args.workers_a} processes, trivial objective, {args.trials} trials in total\n")
        print("| storage | finished / budget | trials stored | lost | duplicated numbers | recorded twice "
              "| worker crashes | trials per worker (min-max) | wall s | trials/s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for label, r in rows:
            share = f"{r['per_worker'][0]}-{r['per_worker'][-1]}" if r["per_worker"] else "-"
            print(f"| {label} | {r['finished']} / {r['target']} | {r['trials']} | {r['lost']} "
                  f"| {r['duplicate_numbers']} | {r['recorded_twice']} | {r['crashes']} | {share} | {r['wall']:.1f} "
                  f"| {r['finished'] / r['wall']:.0f} |")

    if "b" in parts:
        rows = []
        for label, url in storages.items():
            logdir = root / f"b-{label}-{uuid.uuid4().hex[:6]}"
            logdir.mkdir()
            r = part_b(url(f"b-{uuid.uuid4().hex[:6]}"), args.budget, args.workers_b, args.kills, args.kill_min,
                       args.kill_max, args.epochs, args.seed, logdir, args.target, args.worker,
                       not args.kill_retries)
            rows.append((label, r))
            print(f"  B {label}: {r['finished']}/{args.budget} finished in {r['wall']:.1f} s; states {r['states']}; "
                  f"exit codes {r['exit_codes']}; unrecovered {r['unrecovered']}; overlaps {r['overlaps']}; "
                  f"failed after two losses {r['failed_twice']}", flush=True)
        what = "`nasforge search`" if args.worker == "cli" else "search (RE, seed 0)"
        print(f"\n### Part B: {args.workers_b} {what} processes (digits, C=4, N=1, {args.epochs} epochs), "
              f"{args.kills} SIGKILLs ({args.kill_min:g}-{args.kill_max:g} s apart, target: {args.target}"
              f"{', re-queued copies too' if args.kill_retries else ', re-queued copies spared'}), "
              f"budget {args.budget}\n")
        print("| storage | finished / budget | kills (on a running trial / it became stale) | stale trials "
              "| stale re-run to completion "
              "| failed after 2 losses | ran twice at once | chains finished twice | left running/waiting "
              "| duplicated numbers | crashes (not killed) | wall s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for label, r in rows:
            print(f"| {label} | {r['finished']} / {r['target']} | {r['kills']} ({r['kills_on_running']} / "
                  f"{r['killed_trials_stale']}) "
                  f"| {r['stale']} | {r['stale_recovered']} | {len(r['failed_twice'])} "
                  f"| {len(r['overlaps'])}" + (f" ({r['unknown_pid']} unchecked)" if r["unknown_pid"] else "")
                  + f" | {r['chains_finished_twice']} | {r['left_active']} | {r['duplicate_numbers']} "
                  f"| {r['crashes']} | {r['wall']:.0f} |")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
