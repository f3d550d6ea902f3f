"""Parallel study throughput: W worker processes sharing one study storage, nasforge vs Optuna.

W separate OS processes (1, 2, 4, 8) cooperate on one study through its storage and run random
search over the NB201 cell (6 categorical choices of 5 operations) until the study holds the
same number of finished trials (``--trials``). Two objectives: a trivial one (a sum of operation
scores) and one that sleeps ``--sleep`` seconds (a stand-in for real evaluation work).

* nasforge: every process runs ``create_study(..., load_if_exists=True).optimize(random,
  estimator, n_trials=N)``; ``n_trials`` counts the study's finished trials, so N in total.
  Storage: an SQLite file (WAL), and PostgreSQL with ``--pg-url``.
* Optuna: every process runs ``optuna.create_study(..., load_if_exists=True).optimize(objective,
  n_trials=N/W)`` with a ``RandomSampler`` (seeded per worker) over six
  ``suggest_categorical`` calls; N in total. Storages: ``RDBStorage`` on an SQLite file (with a
  60 s lock timeout, as its docs advise for several processes), on PostgreSQL with ``--pg-url``,
  and ``JournalStorage`` on a file (``JournalFileBackend``).

Each process imports its library and opens the study before a common start signal; the clock
runs from that signal until the last process is done (imports and process start-up are not
counted). A fresh storage (SQLite/journal file, or a new study name on PostgreSQL) per run.

Measures (printed with the tables):

* trials/s = finished trials / wall-clock seconds;
* overhead (worker-ms/trial) = (wall seconds x W - total objective seconds) / finished trials:
  the worker time per trial not spent inside the objective (includes waiting for locks and, with
  more processes than cores, for a CPU);
* CPU overhead (ms/trial) = (CPU seconds of all workers - CPU seconds inside the objective) /
  finished trials: the processor time the library itself spends per trial, independent of how
  many cores the machine has.

    python benchmarks/parallel_throughput.py --trials 400 --sleep-trials 160 --repeats 2
    python benchmarks/parallel_throughput.py --pg-url postgresql+psycopg://user@host/db
    python benchmarks/parallel_throughput.py --quick
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
SCORE = {op: i for i, op in enumerate(OPS)}
N_EDGES = 6


class ObjectiveClock:
    """Wall and CPU seconds spent inside the objective, and how often it ran."""

    def __init__(self, sleep: float) -> None:
        self.sleep = sleep
        self.wall = 0.0
        self.cpu = 0.0
        self.calls = 0

    def __call__(self, ops: list[str]) -> float:
        w0, c0 = time.perf_counter(), time.process_time()
        value = float(sum(SCORE[o] for o in ops))
        if self.sleep > 0:
            time.sleep(self.sleep)
        self.cpu += time.process_time() - c0
        self.wall += time.perf_counter() - w0
        self.calls += 1
        return value


# --- the two libraries, as run inside one worker process ------------------------------------
def _nasforge_prepare(url: str, name: str, n_total: int, clock: ObjectiveClock, seed: int) -> Any:
    from nasforge.estimation import Estimator, Measurement
    from nasforge.spaces import NB201Space
    from nasforge.strategies import get_strategy
    from nasforge.study import create_study

    class Objective(Estimator):
        @property
        def metric_names(self) -> list[str]:
            return ["acc"]

        def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
            return Measurement({"acc": clock(list(arch))})

    space = NB201Space()
    study = create_study(name, space, metric="acc", maximize=True, storage=url, load_if_exists=True)
    strategy = get_strategy("random", space, seed=seed, allow_duplicates=True)
    est = Objective()

    def run() -> None:
        study.optimize(strategy, est, n_trials=n_total)

    return run


def _optuna_storage(kind: str, url: str) -> Any:
    import optuna

    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url))
    if url.startswith("sqlite"):
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.RDBStorage(url)


def _optuna_prepare(kind: str, url: str, name: str, n_mine: int, clock: ObjectiveClock, seed: int) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=_optuna_storage(kind, url), direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=seed), load_if_exists=True)
    choices = list(OPS)

    def objective(trial: optuna.Trial) -> float:
        return clock([trial.suggest_categorical(f"e{i}", choices) for i in range(N_EDGES)])

    def run() -> None:
        study.optimize(objective, n_trials=n_mine)

    return run


def worker(backend: str, url: str, name: str, n_total: int, n_workers: int, index: int, sleep: float,
           ready: Any, go: Any, results: Any) -> None:
    clock = ObjectiveClock(sleep)
    lib, kind = backend.split("/", 1)
    if lib == "nasforge":
        run = _nasforge_prepare(url, name, n_total, clock, seed=0)
    else:
        share = n_total // n_workers + (1 if index < n_total % n_workers else 0)
        run = _optuna_prepare(kind, url, name, share, clock, seed=1000 + index)
    ready.release()
    go.wait()
    t0, c0 = time.monotonic(), time.process_time()
    run()
    results.put({"index": index, "start": t0, "end": time.monotonic(), "cpu": time.process_time() - c0,
                 "obj_wall": clock.wall, "obj_cpu": clock.cpu, "calls": clock.calls})


# --- storage set-up and the final count -----------------------------------------------------
def _create(backend: str, url: str, name: str) -> None:
    lib, kind = backend.split("/", 1)
    if lib == "nasforge":
        from nasforge.spaces import NB201Space
        from nasforge.study import create_study

        create_study(name, NB201Space(), metric="acc", maximize=True, storage=url, load_if_exists=True)
    else:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        optuna.create_study(study_name=name, storage=_optuna_storage(kind, url), direction="maximize",
                            load_if_exists=True)


def _count(backend: str, url: str, name: str) -> tuple[int, int, list[int]]:
    """(finished trials, all trials, trial numbers) of the study after the run."""
    lib, kind = backend.split("/", 1)
    if lib == "nasforge":
        from nasforge.spaces import NB201Space
        from nasforge.study import load_study

        st = load_study(name, storage=url, space=NB201Space())
        trials = st.trials
        return len(st.finished_trials), len(trials), [t.number for t in trials]
    import optuna

    st = optuna.load_study(study_name=name, storage=_optuna_storage(kind, url))
    trials = st.get_trials(deepcopy=False)
    done = [t for t in trials if t.state.is_finished()]
    return len(done), len(trials), [t.number for t in trials]


def run_once(backend: str, url: str, n_total: int, n_workers: int, sleep: float) -> dict[str, Any]:
    name = f"tp-{uuid.uuid4().hex[:12]}"
    _create(backend, url, name)
    ctx = mp.get_context("spawn")
    ready, go, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(backend, url, name, n_total, n_workers, i, sleep, ready, go, results))
             for i in range(n_workers)]
    for p in procs:
        p.start()
    for _ in procs:
        if not ready.acquire(timeout=300):
            raise RuntimeError(f"{backend}: a worker did not get ready within 300 s")
    t0 = time.monotonic()
    go.set()
    rows = []
    while len(rows) < n_workers:
        try:
            rows.append(results.get(timeout=5))
        except Exception:  # noqa: BLE001 - queue.Empty: check whether a worker died
            if any(p.exitcode not in (None, 0) for p in procs):
                break
    for p in procs:
        p.join()
    codes = [p.exitcode for p in procs]
    end = max((r["end"] for r in rows), default=time.monotonic())
    wall = end - t0
    finished, total, numbers = _count(backend, url, name)
    return {
        "backend": backend, "workers": n_workers, "wall": wall, "finished": finished, "total": total,
        "duplicates": len(numbers) - len(set(numbers)), "crashes": sum(c != 0 for c in codes),
        "obj_wall": sum(r["obj_wall"] for r in rows), "obj_cpu": sum(r["obj_cpu"] for r in rows),
        "cpu": sum(r["cpu"] for r in rows), "calls": sum(r["calls"] for r in rows),
        "share": sorted(r["calls"] for r in rows),
    }


def _mse(values: list[float], fmt: str = "{:.2f}") -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    se = statistics.stdev(values) / len(values) ** 0.5
    return f"{fmt.format(statistics.fmean(values))} ± {fmt.format(se)}"


def backends_for(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """backend label -> a function returning a fresh storage URL (or file path) per run."""
    out: dict[str, Any] = {}
    counter = iter(range(10**9))

    def file(suffix: str, scheme: str = "sqlite:///") -> Any:
        return lambda: f"{scheme}{tmp / f'run{next(counter)}{suffix}'}"

    libs = args.libraries.split(",")
    if "nasforge" in libs:
        out["nasforge/sqlite"] = file(".db")
        if args.pg_url:
            out["nasforge/postgresql"] = lambda: args.pg_url
    if "optuna" in libs:
        out["optuna/rdb-sqlite"] = file(".db")
        if args.pg_url:
            out["optuna/rdb-postgresql"] = lambda: args.pg_url
        out["optuna/journal"] = file(".log", scheme="")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=400, help="finished trials per run, trivial objective")
    p.add_argument("--sleep-trials", type=int, default=160, help="finished trials per run, sleeping objective")
    p.add_argument("--sleep", type=float, default=0.2, help="seconds the second objective sleeps")
    p.add_argument("--workers", default="1,2,4,8")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--sleep-repeats", type=int, default=1)
    p.add_argument("--libraries", default="nasforge,optuna")
    p.add_argument("--pg-url", default=None,
                   help="PostgreSQL URL for both libraries (SQLAlchemy form, e.g. postgresql+psycopg://user@host/db)")
    p.add_argument("--objectives", default="trivial,sleep")
    p.add_argument("--quick", action="store_true", help="smoke run: 60/16 trials, workers 1,4, one repeat")
    p.add_argument("--tmp", default=None, help="folder for the SQLite/journal files (default: a temporary folder)")
    args = p.parse_args()
    if args.quick:
        args.trials, args.sleep_trials, args.workers, args.repeats, args.sleep_repeats = 60, 16, "1,4", 1, 1
    workers = [int(w) for w in args.workers.split(",")]
    import optuna

    if "nasforge" in args.libraries.split(","):
        try:
            from nasforge.study import create_study, load_study  # noqa: F401
        except ImportError:
            print("nasforge.study has no create_study/load_study yet: nasforge rows skipped")
            args.libraries = ",".join(lib for lib in args.libraries.split(",") if lib != "nasforge")

    print(f"command: python benchmarks/{Path(__file__).name} {shlex.join(sys.argv[1:])}")
    print(f"Python {sys.version.split()[0]}, optuna {optuna.__version__}, {os.cpu_count()} CPU cores")
    objectives = {"trivial": (0.0, args.trials, args.repeats), "sleep": (args.sleep, args.sleep_trials,
                                                                         args.sleep_repeats)}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        backends = backends_for(args, Path(d))
        for obj in args.objectives.split(","):
            sleep, n, repeats = objectives[obj]
            for w in workers:
                for r in range(repeats):  # libraries interleaved, so that a busy moment hits them alike
                    for backend, make_url in backends.items():
                        res = run_once(backend, make_url(), n, w, sleep)
                        res.update(objective=obj, repeat=r, target=n)
                        rows.append(res)
                        print(f"  {obj:7s} W={w} {backend:22s} rep {r}: {res['finished']}/{n} finished "
                              f"({res['total']} trials) in {res['wall']:.2f} s; crashes {res['crashes']}",
                              flush=True)

    print("\noverhead = (wall s x W - objective s) / finished trials (worker-ms per trial outside the objective);"
          "\nCPU overhead = (CPU s of all workers - CPU s in the objective) / finished trials;"
          f"\nmean ± s.e. over repeats ({args.repeats} trivial, {args.sleep_repeats} sleep; no ± when one)")
    for obj in args.objectives.split(","):
        sleep, n, repeats = objectives[obj]
        label = "trivial objective" if obj == "trivial" else f"objective sleeping {sleep:g} s"
        print(f"\n### {label}, {n} finished trials per run\n")
        print("| library / storage | W | finished (all) trials | trials per worker (min-max) | wall s | trials/s "
              "| overhead ms/trial | CPU overhead ms/trial |")
        print("|---|---|---|---|---|---|---|---|")
        for w in workers:
            for backend in backends:
                rs = [r for r in rows if r["objective"] == obj and r["workers"] == w and r["backend"] == backend]
                if not rs:
                    continue
                fin = "/".join(str(r["finished"]) for r in rs)
                tot = "/".join(str(r["total"]) for r in rs)
                bad = sum(r["crashes"] for r in rs)
                share = "/".join(f"{r['share'][0]}-{r['share'][-1]}" for r in rs if r["share"])
                print(f"| {backend}{f' ({bad} crashed)' if bad else ''} | {w} | {fin} ({tot}) | {share} "
                      f"| {_mse([r['wall'] for r in rs])} "
                      f"| {_mse([r['finished'] / r['wall'] for r in rs], '{:.1f}')} "
                      f"| {_mse([_overhead(r) for r in rs])} "
                      f"| {_mse([_cpu_overhead(r) for r in rs])} |")
        ours = [b for b in backends if b.startswith("nasforge/")]
        theirs = [b for b in backends if b.startswith("optuna/")]
        if ours and theirs:
            print("\nratio of mean overheads, nasforge / Optuna (goal <= 0.20): worker-time overhead (CPU overhead):\n")
            match = {"sqlite": ("rdb-sqlite", "journal"), "postgresql": ("rdb-postgresql",)}
            pairs = [(a, b) for a in ours for b in theirs if b.split("/")[1] in match.get(a.split("/")[1], ())]
            print("| W | " + " | ".join(f"{a.split('/')[1]} / {b.split('/')[1]}" for a, b in pairs) + " |")
            print("|---|" + "---|" * len(pairs))
            for w in workers:
                cells = []
                for a, b in pairs:
                    ra = [r for r in rows if r["objective"] == obj and r["workers"] == w and r["backend"] == a]
                    rb = [r for r in rows if r["objective"] == obj and r["workers"] == w and r["backend"] == b]
                    if not ra or not rb:
                        cells.append("-")
                        continue
                    o = statistics.fmean(map(_overhead, ra)) / statistics.fmean(map(_overhead, rb))
                    c = statistics.fmean(map(_cpu_overhead, ra)) / statistics.fmean(map(_cpu_overhead, rb))
                    cells.append(f"{o:.3f} (CPU {c:.3f})")
                print(f"| {w} | " + " | ".join(cells) + " |")


def _overhead(r: dict[str, Any]) -> float:
    return (r["wall"] * r["workers"] - r["obj_wall"]) / max(r["finished"], 1) * 1e3


def _cpu_overhead(r: dict[str, Any]) -> float:
    return (r["cpu"] - r["obj_cpu"]) / max(r["finished"], 1) * 1e3


if __name__ == "__main__":
    main()
