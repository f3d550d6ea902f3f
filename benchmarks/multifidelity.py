"""Multi-fidelity schedulers vs full-budget search, at equal total training epochs.

Part A, real training: NB201 cells (C=4, N=1) on scikit-learn digits; rungs 1/3/9 epochs (eta=3);
every method gets the same total budget of epochs; >= 10 seeds. Reported per method: the
validation accuracy of the architecture it selects (best at the highest fidelity it reached),
that architecture's validation and test accuracy after the full 9 epochs (trained afterwards if
needed, outside the budget, for comparability), the number of architectures tried, and the
training seconds spent.

Part B, NB201 table (CIFAR-10): ASHA and PASHA with the 12- and 200-epoch fidelities vs RE and
random search at equal simulated cost, a 12-epoch query charged 12/200 of a full one. The
incumbent is chosen among 200-epoch results only (valid_acc_200) and reported by
test_acc_200_full.

    python benchmarks/multifidelity.py --seeds 10 --epoch-budget 150 --table-seeds 100 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from nasforge.data import load_dataset
from nasforge.estimation import load_benchmark
from nasforge.estimation.training import TrainingEstimator
from nasforge.spaces import NB201Space
from nasforge.strategies import get_strategy
from nasforge.study import Study, TrialState

METHODS_A = {
    "random (full 9 epochs)": ("random", {"fidelity": 9}),
    "successive halving": ("sh", {"rungs": [1, 3, 9], "eta": 3}),
    "hyperband": ("hyperband", {"rungs": [1, 3, 9], "eta": 3}),
    "asha": ("asha", {"rungs": [1, 3, 9], "eta": 3}),
    "pasha": ("pasha", {"rungs": [1, 3, 9], "eta": 3}),
}


def part_a(seeds: int, budget: int, out: Path) -> dict:
    space = NB201Space()
    data = load_dataset("digits", seed=0)
    rows: dict[str, list[dict]] = {m: [] for m in METHODS_A}
    path = out / "mf_training.jsonl"
    done = set()
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            rows[r["method"]].append(r)
            done.add((r["method"], r["seed"]))
    for seed in range(seeds):
        for label, (name, kw) in METHODS_A.items():
            if (label, seed) in done:
                continue
            est = TrainingEstimator(space, data, max_epochs=9, net={"C": 4, "N": 1}, seed=seed, cost_unit="epochs",
                                    threads=torch.get_num_threads())
            strat = get_strategy(name, space, seed=seed, **kw)
            st = Study(f"{label}-{seed}", space, "valid_acc")
            t0 = time.perf_counter()
            st.optimize(strat, est, max_cost=budget)
            wall = time.perf_counter() - t0
            best = st.best_trial
            full = est.estimate(best.arch, 9)  # continue the selected one to 9 epochs (outside the budget)
            r = {"method": label, "seed": seed, "selected_fidelity": best.fidelity, "selected_valid": best.value,
                 "valid_9": full.metrics["valid_acc"], "test_9": full.metrics["test_acc"],
                 "n_archs": len({t.arch for t in st.trials}), "n_trials": len(st.trials),
                 "epochs": sum(t.cost for t in st.trials), "seconds": wall,
                 "max_rung": getattr(strat, "max_rung", None)}
            rows[label].append(r)
            with path.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"{label:24s} seed {seed}: valid@9 {r['valid_9']:.2f} test@9 {r['test_9']:.2f} "
                  f"archs {r['n_archs']} epochs {r['epochs']:.0f} {wall:.1f}s", flush=True)
    return rows


def part_b(seeds: int, out: Path) -> dict:
    bench = load_benchmark("nb201:cifar10")
    space = bench.space
    methods = {
        "random (200 ep.)": ("random", {}),
        "re (200 ep.)": ("re", {}),
        "asha (12/200, eta 3)": ("asha", {"rungs": [12, 200], "eta": 3}),
        "pasha (12/200, eta 3)": ("pasha", {"rungs": [12, 200], "eta": 3}),
        "asha+re (12/200, eta 3)": ("asha", {"rungs": [12, 200], "eta": 3, "base": "re"}),
    }
    checkpoints = [25, 50, 100, 200]  # budgets in full (200-epoch) evaluations
    res: dict[str, dict[int, list[float]]] = {m: {c: [] for c in checkpoints} for m in methods}
    for label, (name, kw) in methods.items():
        for seed in range(seeds):
            st = Study(label, space, "valid_acc")
            st.optimize(get_strategy(name, space, seed=seed, **kw), bench, max_cost=200 * max(checkpoints))
            spent, best_v, best_t = 0.0, -np.inf, np.nan
            ci = 0
            for t in st.trials:
                spent += t.cost
                while ci < len(checkpoints) and spent > 200 * checkpoints[ci]:
                    res[label][checkpoints[ci]].append(best_t)
                    ci += 1
                if t.state is TrialState.COMPLETE and t.fidelity == 200 and t.value > best_v:
                    best_v, best_t = t.value, t.metrics["test_acc_full"]
            while ci < len(checkpoints):
                res[label][checkpoints[ci]].append(best_t)
                ci += 1
    return {"checkpoints": checkpoints, "results": res}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--epoch-budget", type=int, default=150)
    p.add_argument("--table-seeds", type=int, default=100)
    p.add_argument("--out", default="benchmarks/out")
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: tiny networks gain nothing from more, and it avoids oversubscription)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    b = part_b(args.table_seeds, out)
    print(f"\nPart B: NB201 CIFAR-10 table, test_acc_200_full of the incumbent (chosen by valid_acc_200), "
          f"{args.table_seeds} seeds; budget in full 200-epoch evaluations (a 12-epoch query costs 0.06)")
    print("| method | " + " | ".join(f"budget {c}" for c in b["checkpoints"]) + " |")
    print("|---|" + "---|" * len(b["checkpoints"]))
    for m, per in b["results"].items():
        cells = []
        for c in b["checkpoints"]:
            v = np.array(per[c], dtype=float)
            v = v[~np.isnan(v)]
            cells.append(f"{v.mean():.2f} ± {v.std(ddof=1) / np.sqrt(len(v)):.2f} (n={len(v)})")
        print(f"| {m} | " + " | ".join(cells) + " |")

    if args.skip_training:
        return
    rows = part_a(args.seeds, args.epoch_budget, out)
    print(f"\nPart A: digits, NB201 C=4 N=1, budget {args.epoch_budget} epochs per run, rungs 1/3/9, "
          f"{args.seeds} seeds (mean ± s.e.)")
    print("| method | selected: valid acc @9 ep. | test acc @9 ep. | architectures tried | epochs used | seconds |")
    print("|---|---|---|---|---|---|")
    for m, rs in rows.items():
        if not rs:
            continue
        def f(key: str) -> str:
            v = np.array([r[key] for r in rs], dtype=float)
            return f"{v.mean():.2f} ± {v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0:.2f}"
        print(f"| {m} | {f('valid_9')} | {f('test_9')} | {f('n_archs')} | {f('epochs')} | {f('seconds')} |")


if __name__ == "__main__":
    main()
