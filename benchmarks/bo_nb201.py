"""Model-based search on NAS-Bench-201: anytime tables, the 12-epoch comparison with TW-NAS,
batch BO at B=5, and the strategies' own overhead.

NB201 protocol: select by the validation accuracy (``valid_acc_200``), report the test accuracy of
the selected cell (``test_acc_200_full`` for CIFAR-10, ``test_acc_200`` for CIFAR-100). The
12-epoch task selects by ``valid_acc_12`` and reports ``test_acc_12`` only (never mixed with the
200-epoch numbers). Every run is an in-memory ``Study`` (the loop users run); results go to a
JSON-lines file, one line per (task, dataset, method, seed), and a re-run skips what is there.

    python benchmarks/bo_nb201.py --task anytime --seeds 30 --hot-seeds 8 --hot-budget 100
    python benchmarks/bo_nb201.py --task batch --seeds 30
    python benchmarks/bo_nb201.py --task epoch12 --seeds 20
    python benchmarks/bo_nb201.py --task overhead
    python benchmarks/bo_nb201.py --report                                  # tables from the file

Threads: BLAS is single-threaded inside the strategies (``blas_single_thread``); run with
``OMP_NUM_THREADS=1`` and ``--jobs`` processes.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # small matrices: threads only contend for the cores
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from nasforge.analysis.anytime import incumbent_curve  # noqa: E402

AT = (25, 50, 100, 200)
#: candidate set of the expensive HOT kernel (each candidate costs one POT FGW solve per observation)
HOT_CANDIDATES = {"n_random": 30, "n_incumbents": 3, "n_local": 10}
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "re": ("re", {}),
    "ls": ("ls", {}),
    "gp-hamming": ("bo", {"kernel": "hamming"}),
    "gp-wl": ("bo", {"kernel": "wl"}),
    "gp-tw": ("bo", {"kernel": "tw"}),
    "gp-tw2": ("bo", {"kernel": "tw2"}),
    "gp-hot": ("bo", {"kernel": "hot", **HOT_CANDIDATES}),
    "bananas": ("bananas", {}),
}
EPOCH12 = ["random", "re", "bananas", "gp-tw", "gp-tw2", "kdpp-tw"]
BATCH = {"kdpp-tw2": ("bo", {"kernel": "tw2", "batch_size": 5, "batch_method": "kdpp"}),
         "kb-tw2": ("bo", {"kernel": "tw2", "batch_size": 5, "batch_method": "kb"}),
         "random-batch-tw2": ("bo", {"kernel": "tw2", "batch_size": 5, "batch_method": "random"})}
EXTRA = {"kdpp-tw": ("bo", {"kernel": "tw", "batch_size": 5, "batch_method": "kdpp"})}
#: TW-NAS (ICML 2021) Table: minimum test error (%) after 200 queries, NB201 12-epoch
TWNAS = {"random": (11.62, 40.77), "re": (11.05, 38.87), "bananas": (10.94, 39.28), "gp-tw": (10.99, 39.40),
         "kdpp-tw": (10.98, 38.88)}
OVERHEAD = ["gp-hamming", "gp-wl", "gp-tw", "gp-tw2", "gp-hot", "bananas"]


def method(label: str) -> tuple[str, dict[str, Any]]:
    return {**METHODS, **BATCH, **EXTRA}[label]


def one_run(task: str, dataset: str, label: str, seed: int, budget: int) -> dict[str, Any]:
    """One search; returns its record (incumbent curves, seconds of strategy time)."""
    from nasforge.strategies import get_strategy
    from nasforge.study import Study

    bench = _bench(dataset)
    fid = 12.0 if task == "epoch12" else None
    report = "test_acc" if fid else bench.report_metric
    name, params = method(label)
    strategy = get_strategy(name, bench.space, seed=seed, fidelity=fid, **params)
    timed = _Timed(strategy)
    study = Study(f"{label}-{seed}", bench.space, "valid_acc")
    t0 = time.process_time()
    study.optimize(timed, bench, n_trials=budget)
    total = time.process_time() - t0
    trials = study.finished_trials
    sel = [t.value for t in trials]
    rep = [t.metrics[report] for t in trials]
    rec = {"task": task, "dataset": dataset, "method": label, "seed": seed, "budget": budget,
           "curve": [round(float(v), 4) for v in incumbent_curve(sel, rep)],
           "oracle_min_error": round(100.0 - max(rep), 4), "strategy_cpu_s": round(timed.seconds, 3),
           "run_cpu_s": round(total, 3), "found_best_valid": bool(max(sel) >= bench_best(dataset, fid) - 1e-9)}
    return rec


_BENCH: dict[str, Any] = {}


def _bench(dataset: str) -> Any:
    if dataset not in _BENCH:
        from nasforge.estimation import load_benchmark

        _BENCH[dataset] = load_benchmark(f"nb201:{dataset}")
    return _BENCH[dataset]


def bench_best(dataset: str, fid: float | None) -> float:
    b = _bench(dataset)
    return float(b.columns["valid_acc_12" if fid else "valid_acc_200"].max())


class _Timed:
    """Wraps a strategy and adds up the CPU seconds spent in its ask() and tell()."""

    def __init__(self, strategy: Any) -> None:
        self.s = strategy
        self.seconds = 0.0
        self.per_ask: list[tuple[int, float]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("s", "seconds", "per_ask"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.s, name, value)

    def ask(self) -> Any:
        t = time.process_time()
        out = self.s.ask()
        dt = time.process_time() - t
        self.seconds += dt
        self.per_ask.append((self.s.n_told, dt))
        return out

    def tell(self, sug: Any, result: Any) -> None:
        t = time.process_time()
        self.s.tell(sug, result)
        self.seconds += time.process_time() - t


# --- running -----------------------------------------------------------------------------------------
def plan(args: argparse.Namespace) -> list[tuple[str, str, str, int, int]]:
    seeds = range(args.seed0, args.seed0 + args.seeds)
    jobs: list[tuple[str, str, str, int, int]] = []
    tasks = ["anytime", "epoch12", "batch"] if args.task == "all" else [args.task]
    datasets = args.datasets.split(",")
    for task in tasks:
        labels = {"anytime": list(METHODS), "epoch12": EPOCH12, "batch": list(BATCH)}.get(task, [])
        for ds in datasets:
            for label in labels:
                hot = label == "gp-hot"
                for seed in list(seeds)[: args.hot_seeds if hot else args.seeds]:
                    jobs.append((task, ds, label, seed, args.hot_budget if hot else args.budget))
    # cheap methods first, HOT last: partial results are useful early
    jobs.sort(key=lambda j: (j[2] == "gp-hot", j[3], j[0], j[1], j[2]))
    return jobs


def _worker(job: tuple[str, str, str, int, int]) -> dict[str, Any]:
    return one_run(*job)


def run_all(args: argparse.Namespace, path: Path) -> None:
    done = {(r["task"], r["dataset"], r["method"], r["seed"]) for r in read(path)}
    todo = [j for j in plan(args) if j[:4] not in done]
    print(f"{len(todo)} runs to do ({len(done)} already in {path})", flush=True)
    t0 = time.perf_counter()
    with path.open("a") as fh:
        if args.jobs > 1:
            from multiprocessing import get_context

            with get_context("fork").Pool(args.jobs) as pool:
                for i, rec in enumerate(pool.imap_unordered(_worker, todo), 1):
                    fh.write(json.dumps(rec) + "\n")
                    fh.flush()
                    _progress(i, len(todo), rec, t0)
        else:
            for i, job in enumerate(todo, 1):
                rec = _worker(job)
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                _progress(i, len(todo), rec, t0)


def _progress(i: int, n: int, rec: dict[str, Any], t0: float) -> None:
    c = rec["curve"]
    print(f"[{i}/{n} {time.perf_counter() - t0:7.0f}s] {rec['task']} {rec['dataset']} {rec['method']} "
          f"seed {rec['seed']}: @100 {c[min(99, len(c) - 1)]:.2f} @200 {c[-1]:.2f} "
          f"({rec['strategy_cpu_s']:.1f} s strategy CPU)", flush=True)


def read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- overhead ----------------------------------------------------------------------------------------
def overhead(args: argparse.Namespace, path: Path) -> None:
    """Strategy CPU seconds per query around 50, 100 and 200 observations, per kernel, plus the
    cost of recomputing the observation kernel components from scratch at those sizes."""
    from nasforge.strategies import get_strategy
    from nasforge.strategies.bo import KernelCache
    from nasforge.study import Study

    bench = _bench("cifar10")
    out = []
    for label in OVERHEAD:
        name, params = method(label)
        strategy = get_strategy(name, bench.space, seed=args.seed0, **params)
        timed = _Timed(strategy)
        Study(f"overhead-{label}", bench.space, "valid_acc").optimize(timed, bench, n_trials=200)
        row: dict[str, Any] = {"method": label}
        for n in (50, 100, 200):
            window = [dt for told, dt in timed.per_ask if n - 10 <= told < n]
            row[f"ask_s@{n}"] = float(np.mean(window)) if window else float("nan")
            if name == "bo":  # from scratch: all observation components at once
                kern = strategy.kernel
                fresh = KernelCache(type(kern)(bench.space, **_kernel_kwargs(kern)))
                archs = strategy.cache.archs[:n]
                feats = [fresh.feature(a) for a in archs]
                t = time.process_time()
                kern.pairwise_sym(feats)
                row[f"scratch_obs_s@{n}"] = time.process_time() - t
        if name == "bo":
            row["gp_refits"] = strategy.gp.n_refits
            row["eig_clipped"] = strategy.gp.n_clipped
            row["jittered"] = strategy.gp.n_jitter
        print(json.dumps(row), flush=True)
        out.append(row)
    path.write_text(json.dumps(out, indent=1))


def _kernel_kwargs(kern: Any) -> dict[str, Any]:
    if kern.name in ("tw", "tw2"):
        return {"ngram": kern.ngram}
    return {}


# --- report ------------------------------------------------------------------------------------------
def _stats(vals: Iterable[float]) -> tuple[float, float, float, int]:
    v = np.asarray(list(vals), dtype=float)
    n = len(v)
    sd = float(v.std(ddof=1)) if n > 1 else float("nan")
    return float(v.mean()), sd, sd / np.sqrt(n) if n > 1 else float("nan"), n


def report(path: Path, overhead_path: Path) -> str:
    recs = read(path)
    lines: list[str] = []
    for task, title in (("anytime", "NB201, 200 epochs"), ("batch", "Batch BO, B = 5, NB201 200 epochs")):
        for ds in ("cifar10", "cifar100"):
            rows = [r for r in recs if r["task"] == task and r["dataset"] == ds]
            if not rows:
                continue
            metric = "test_acc_200_full" if ds == "cifar10" else "test_acc_200"
            lines += [f"\n**{title}, {ds}: select valid_acc_200, report {metric} (mean ± std, se, runs)**\n",
                      "| method | " + " | ".join(f"@{q}" for q in AT)
                      + " | found best valid (end) | strategy CPU s/run |",
                      "|---|" + "---|" * (len(AT) + 2)]
            order = list({**METHODS, **BATCH, **EXTRA})
            for label in sorted(dict.fromkeys(r["method"] for r in rows), key=order.index):
                rr = [r for r in rows if r["method"] == label]
                cells = []
                for q in AT:
                    if q > min(len(r["curve"]) for r in rr):
                        cells.append("-")
                        continue
                    m, sd, se, n = _stats(r["curve"][q - 1] for r in rr)
                    cells.append(f"{m:.2f} ± {sd:.2f} (se {se:.3f}, n={n})")
                found = np.mean([r["found_best_valid"] for r in rr])
                cpu = np.mean([r["strategy_cpu_s"] for r in rr])
                lines.append(f"| {label} | " + " | ".join(cells) + f" | {found:.2f} | {cpu:.1f} |")
    rows = [r for r in recs if r["task"] == "epoch12"]
    if rows:
        lines += ["\n**NB201 12 epochs, 200 queries: test error (%) = 100 - test_acc_12 (mean ± se, runs)**\n",
                  "| method | C10 ours: selected by valid_acc_12 | C10 ours: min over queried | C10 TW-NAS | "
                  "C100 ours: selected by valid_acc_12 | C100 ours: min over queried | C100 TW-NAS |",
                  "|---|---|---|---|---|---|---|"]
        for label in EPOCH12:
            cells = []
            for j, ds in enumerate(("cifar10", "cifar100")):
                rr = [r for r in rows if r["method"] == label and r["dataset"] == ds]
                if not rr:
                    cells += ["-", "-", "-"]
                    continue
                m, _, se, n = _stats(100.0 - r["curve"][-1] for r in rr)
                m2, _, se2, _ = _stats(r["oracle_min_error"] for r in rr)
                pub = TWNAS.get(label)
                cells += [f"{m:.2f} ± {se:.2f} (n={n})", f"{m2:.2f} ± {se2:.2f}", f"{pub[j]:.2f}" if pub else "-"]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if overhead_path.is_file():
        rows = json.loads(overhead_path.read_text())
        lines += ["\n**Strategy CPU seconds per query (mean of the 10 asks before n observations), NB201 CIFAR-10**\n",
                  "| method | @50 | @100 | @200 | obs components from scratch @50 / @100 / @200 (s) | ML refits | "
                  "eigen-clipped fits |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            scratch = (" / ".join(f"{r[f'scratch_obs_s@{n}']:.3f}" for n in (50, 100, 200))
                       if "scratch_obs_s@50" in r else "-")
            lines.append(f"| {r['method']} | {r['ask_s@50']:.4f} | {r['ask_s@100']:.4f} | {r['ask_s@200']:.4f} | "
                         f"{scratch} | {r.get('gp_refits', '-')} | {r.get('eig_clipped', '-')} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="all", choices=("all", "anytime", "epoch12", "batch", "overhead"))
    p.add_argument("--datasets", default="cifar10,cifar100")
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--hot-seeds", type=int, default=8, help="seeds for the expensive HOT kernel")
    p.add_argument("--hot-budget", type=int, default=100, help="queries per HOT run")
    p.add_argument("--seed0", type=int, default=0)
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--out", default="benchmarks/out")
    p.add_argument("--report", action="store_true", help="only print the tables from the results file")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path, opath = out / "bo_nb201.jsonl", out / "bo_nb201_overhead.json"
    if not args.report:
        if args.task == "overhead":
            overhead(args, opath)
        else:
            run_all(args, path)
    text = report(path, opath)
    (out / "bo_nb201.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
