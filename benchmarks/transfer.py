"""Transfer across tasks (issue 14): TNAS and AutoTransfer-prior search vs the same budget from scratch.

Targets and banks:

* NB201: search CIFAR-100 with a bank of one finished CIFAR-10 study, and the other way round.
* NAS-Bench-Graph, leave one dataset out: search each of the 8 datasets of the ``full`` space
  with a bank of finished studies on the 7 others (``proteins`` has its own, smaller space, so
  no other task shares it; it is left out).

Each bank study is a finished random-search study of ``--source-trials`` table queries (seed 0).
Methods at 50 queries (incumbents read at 10/25/50): random search, regularised evolution and
GP-BO from scratch; TNAS (meta-trained deep-kernel GP, ``--meta-seeds`` meta-models, search seed
s uses meta-model s mod meta-seeds); AutoTransfer-prior RE and random search (8 anchors
evaluated first, counted in the budget). Selection by the validation metric, reported: the test
metric of the best-validation architecture (NB201: test_acc_full on CIFAR-10, test_acc on
CIFAR-100; NAS-Bench-Graph: test_perf x 100). Per-seed results are cached under
``--out`` (resumable).

    nice -n 5 python benchmarks/transfer.py --seeds 30
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

AT = (10, 25, 50)
METHODS = ("random", "re", "bo", "tnas", "prior-re", "prior-random")
NBGRAPH_LOO = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv")
PAPER = {"nb201:cifar10": "94.37 (TNAS paper, test, 100 queries)", "nb201:cifar100": "73.51 (TNAS paper)"}


def source_study(spec: str, n: int, data_dir: str | None):
    from nasforge.estimation import load_benchmark
    from nasforge.strategies import get_strategy
    from nasforge.study import create_study

    bench = load_benchmark(spec, data_dir=data_dir)
    st = create_study(f"bank-{spec}", bench.space, bench.default_metric, config={"search": {"benchmark": spec}})
    st.optimize(get_strategy("random", bench.space, seed=0), bench, n_trials=n, progress=False)
    return st


def run_one(method: str, seed: int, bench, tasks, metas) -> dict:
    from nasforge.strategies import get_strategy
    from nasforge.study import create_study
    from nasforge.transfer import TNAS, PriorSearch

    space, metric = bench.space, bench.default_metric
    if method in ("random", "re", "bo"):
        strat = get_strategy(method, space, seed=seed)
    elif method == "tnas":
        strat = TNAS(space, metas[seed % len(metas)], seed=seed)
    else:
        strat = PriorSearch(space, tasks, base=method.split("-")[1], seed=seed)
    st = create_study("target", space, metric)
    t0 = time.process_time()
    st.optimize(strat, bench, n_trials=max(AT), progress=False)
    cpu = time.process_time() - t0
    trials = st.trials
    out = {"cpu_s": cpu}
    for q in AT:
        best = max(trials[:q], key=lambda t: t.value)
        out[str(q)] = {"valid": best.value, "test": bench.query(best.arch, bench.report_metric)}
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--targets", default="nb201:cifar100,nb201:cifar10," + ",".join(f"nbgraph:{d}" for d in NBGRAPH_LOO))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--source-trials", type=int, default=500)
    p.add_argument("--meta-seeds", type=int, default=3)
    p.add_argument("--meta-steps", type=int, default=600)
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--out", default="benchmarks/out/transfer")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    from nasforge.estimation import load_benchmark
    from nasforge.transfer import MetaSurrogate, TaskBank

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets = args.targets.split(",")
    methods = args.methods.split(",")
    sources: dict[str, object] = {}
    for target in targets:
        family = target.split(":")[0]
        if family == "nb201":
            others = ["nb201:cifar10" if target == "nb201:cifar100" else "nb201:cifar100"]
        else:
            others = [f"nbgraph:{d}" for d in NBGRAPH_LOO if f"nbgraph:{d}" != target]
        bank = TaskBank()
        for s in others:
            if s not in sources:
                sources[s] = source_study(s, args.source_trials, args.data_dir)
            bank.add_study(sources[s])
        bench = load_benchmark(target, data_dir=args.data_dir)
        tasks = bank.compatible(bench.space, bench.default_metric, exclude=[target])
        metas: list = []
        t0 = time.process_time()
        if "tnas" in methods:
            metas = [MetaSurrogate(bench.space, tasks, meta_steps=args.meta_steps, seed=m).fit()
                     for m in range(args.meta_seeds)]
        meta_cpu = time.process_time() - t0
        scale = 100.0 if bench.report_metric == "test_perf" else 1.0
        res: dict[str, list[dict]] = {}
        for method in methods:
            rows = []
            for seed in range(args.seeds):
                f = out / f"{target.replace(':', '_')}__{method}__{seed}__s{args.source_trials}.json"
                if f.exists():
                    rows.append(json.loads(f.read_text()))
                    continue
                r = run_one(method, seed, bench, tasks, metas)
                f.write_text(json.dumps(r))
                rows.append(r)
            res[method] = rows
        _, opt = bench.optimum(bench.report_metric)
        print(f"\n### {target} (bank: {', '.join(t.label for t in tasks)}; {args.source_trials} trials each; "
              f"meta-training {meta_cpu:.1f} s CPU for {len(metas)} model(s))")
        print(f"reported: {bench.report_metric} of the best-{bench.default_metric} architecture, "
              f"mean ± s.e. over {args.seeds} seeds; table optimum {scale * opt:.2f}"
              + (f"; paper: {PAPER[target]}" if target in PAPER else ""))
        print("| method | " + " | ".join(f"@{q}" for q in AT) + " | CPU s/run |")
        print("|---|" + "---|" * (len(AT) + 1))
        for method, rows in res.items():
            cells = []
            for q in AT:
                v = scale * np.array([r[str(q)]["test"] for r in rows])
                se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0
                cells.append(f"{v.mean():.2f} ± {se:.2f}")
            cpu = np.mean([r["cpu_s"] for r in rows])
            print(f"| {method} | " + " | ".join(cells) + f" | {cpu:.2f} |")
        print(f"selection metric {bench.default_metric} of the same architectures (what the search sees; optimum "
              f"{scale * bench.optimum(bench.default_metric)[1]:.2f}):")
        print("| method | " + " | ".join(f"@{q}" for q in AT) + " |")
        print("|---|" + "---|" * len(AT))
        for method, rows in res.items():
            vals = [scale * np.array([r[str(q)]["valid"] for r in rows]) for q in AT]
            print(f"| {method} | " + " | ".join(
                f"{v.mean():.2f} ± {(v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0):.2f}" for v in vals) + " |")
        if "bo" in res:
            for what in ("test", "valid"):
                mean = {(m, q): scale * np.mean([r[str(q)][what] for r in rows]) for m, rows in res.items() for q in AT}
                goal = mean[("bo", 50)]
                hits = [m for m in methods if m not in ("random", "re", "bo") and mean[(m, 25)] >= goal]
                print(f"goal on {what} (transfer @25 >= scratch BO @50 = {goal:.2f}): {', '.join(hits) or 'none'}")


if __name__ == "__main__":
    main()
