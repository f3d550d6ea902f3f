"""Energy-aware joint architecture x hyperparameter search on the digits (EA-HAS-Bench at CPU scale).

    nice -n 10 python benchmarks/energy_search.py [--runs 120] [--seeds 10] [--real-seeds 3]

The joint space: an NB201 cell (C=8, N=1) x optimizer {sgd, adamw} x lr_scale {0.3, 1, 3} x
batch size {32, 128} x epochs {3, 6, 12} (562,500 configurations), trained on the main job's
default task (digits, 200 training images, the other 1,597 split evenly between validation and
test), one torch thread. Every run records its validation/test learning curve and the energy of
every epoch (RAPL where readable, else 10 W per busy core x CPU time; the method is printed).

1. ``runs``: random configurations trained in full (seed 0 draws them); cached in
   benchmarks/out/energy18/runs.jsonl, so a killed run continues.
2. ``surrogate``: the Bézier learning-curve surrogate against the mean curve of the runs of the
   same length, on 3 random 80/20 splits: curve RMSE, R² of the final validation accuracy,
   Kendall tau of final accuracy and of full training energy.
3. ``search``: RS, RE, Hyperband and their energy-aware versions (objective ``ea_score`` =
   valid_acc x (E / 10 J)^w, E the configuration's full training energy, w = -0.07 and -0.3) on
   the surrogate fitted on all runs, each with an energy budget; mean ± s.e. over ``--seeds`` seeds.
4. ``real``: RS, RE, HB, EA-RE, EA-HB (w = ``--real-weight``) with real training under a real
   energy budget, ``--real-seeds`` seeds (each search cached in benchmarks/out/energy18/real2_*.json).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

from nasforge.data import load_digits  # noqa: E402
from nasforge.estimation.bezier import BezierCurveSurrogate, SurrogateBenchmark  # noqa: E402
from nasforge.estimation.energy import EnergyAwareScore, JointTrainingEstimator, search_energy  # noqa: E402
from nasforge.spaces.joint import JointSpace  # noqa: E402
from nasforge.spaces.nb201 import NB201Space  # noqa: E402
from nasforge.strategies import get_strategy  # noqa: E402
from nasforge.study import create_study  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "energy18"
HP = {"optimizer": ["sgd", "adamw"], "lr_scale": [0.3, 1.0, 3.0], "batch_size": [32, 128], "epochs": [3, 6, 12]}
TARGET_J = 10.0
METHODS = ("rs", "re", "hb", "ea-rs", "ea-re", "ea-hb")
#: the energy exponents of the energy-aware score: MnasNet's -0.07 and a stronger -0.3
WEIGHTS = (-0.07, -0.3)
REAL_METHODS = ("rs", "re", "hb", "ea-re", "ea-hb")


def task() -> tuple[JointSpace, JointTrainingEstimator]:
    rest = (1797 - 200) / 1797 / 2
    data = load_digits(seed=0, val_fraction=rest, test_fraction=rest)
    space = JointSpace(NB201Space(), HP)
    return space, JointTrainingEstimator(space, data, net={"C": 8, "N": 1}, threads=1)


def collect(space: JointSpace, est: JointTrainingEstimator, n: int) -> list[dict]:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "runs.jsonl"
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done[r["config"]] = r
    rng = np.random.default_rng(0)
    configs = [space.format(space.sample(rng)) for _ in range(n)]
    t0 = time.process_time()
    with path.open("a") as fh:
        for i, text in enumerate(configs):
            if text in done:
                continue
            m = est.estimate(text)
            rec = {"config": text, "valid_curve": m.info["valid_curve"], "test_curve": m.info["test_curve"],
                   "epoch_energy_j": m.info["epoch_energy_j"], "method": m.info["energy_method"],
                   "params": m.metrics["params"]}
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            done[text] = rec
            if i % 20 == 0:
                print(f"  run {i}/{n}: {text} -> {m.metrics['valid_acc']:.1f} % {m.metrics['train_energy_j']:.1f} J",
                      flush=True)
    print(f"runs: {n} configurations ({time.process_time() - t0:.0f} s CPU this call); energy: {est.meter.describe()}")
    return [done[t] for t in configs]


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def se(xs: list[float]) -> str:
    x = np.asarray(xs, dtype=float)
    return f"{x.mean():.3f} ± {x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else 0.0:.3f}"


def fit(space: JointSpace, runs: list[dict], seed: int) -> BezierCurveSurrogate:
    x = np.array([space.encode(r["config"]) for r in runs])
    return BezierCurveSurrogate(seed=seed).fit(x, [r["valid_curve"] for r in runs], [r["test_curve"] for r in runs],
                                               [np.mean(r["epoch_energy_j"]) for r in runs])


def surrogate_eval(space: JointSpace, runs: list[dict]) -> None:
    rows: dict[str, dict[str, list[float]]] = {"bezier": {}, "mean-curve": {}}
    for split in range(3):
        rng = np.random.default_rng(100 + split)
        idx = rng.permutation(len(runs))
        n_te = len(runs) // 5
        te, tr = [runs[i] for i in idx[:n_te]], [runs[i] for i in idx[n_te:]]
        sur = fit(space, tr, split)
        x_te = np.array([space.encode(r["config"]) for r in te])
        lens = [len(r["valid_curve"]) for r in te]
        pred = [v for v, _ in sur.predict_curves(x_te, lens)]
        e_pred = sur.predict_epoch_energy(x_te) * np.array(lens)
        by_len: dict[int, list] = {}
        for r in tr:
            by_len.setdefault(len(r["valid_curve"]), []).append(r["valid_curve"])
        base = [np.mean(by_len[n], axis=0) for n in lens]
        e_base = np.array([np.mean([np.mean(r["epoch_energy_j"]) for r in tr]) * n for n in lens])
        true_final = np.array([r["valid_curve"][-1] for r in te])
        true_e = np.array([sum(r["epoch_energy_j"]) for r in te])
        for name, p, e in (("bezier", pred, e_pred), ("mean-curve", base, e_base)):
            err = np.concatenate([np.asarray(q) - np.asarray(r["valid_curve"]) for q, r in zip(p, te)])
            final = np.array([q[-1] for q in p])
            d = rows[name]
            d.setdefault("curve RMSE (pp)", []).append(float(np.sqrt(np.mean(err ** 2))))
            d.setdefault("final acc R2", []).append(float(1 - np.sum((final - true_final) ** 2)
                                                           / np.sum((true_final - true_final.mean()) ** 2)))
            d.setdefault("final acc tau", []).append(kendall(final, true_final) if np.ptp(final) > 0 else 0.0)
            d.setdefault("energy tau", []).append(kendall(e, true_e))
            d.setdefault("energy MAPE %", []).append(float(np.mean(np.abs(e - true_e) / true_e) * 100))
    print("\nsurrogate on held-out runs (3 random 80/20 splits, mean ± s.e.):")
    for name, d in rows.items():
        print(f"  {name:11s} " + "  ".join(f"{k} {se(v)}" for k, v in d.items()))


def strategy(method: str, space: JointSpace, seed: int):
    base = method.replace("ea-", "")
    metric = "ea_score" if method.startswith("ea-") else "valid_acc"
    if base == "rs":
        return get_strategy("random", space, seed=seed, metric=metric)
    if base == "re":
        return get_strategy("re", space, seed=seed, metric=metric, population_size=10, sample_size=3)
    return get_strategy("hyperband", space, seed=seed, metric=metric, rungs=[1.0, 4.0, 12.0], eta=3)


def run_search(method: str, space: JointSpace, est, seed: int, budget: float, weight: float) -> dict:
    metric = "ea_score" if method.startswith("ea-") else "valid_acc"
    wrapped = EnergyAwareScore(est, target=TARGET_J, weight=weight)
    st = create_study(f"{method}-{seed}", space, metric)
    st.optimize(strategy(method, space, seed), wrapped, max_cost=budget)
    best = st.best_trial
    # the accuracy-energy front of the configurations it trained in full
    full = [t for t in st.trials if t.metrics and t.metrics.get("epochs") == t.metrics.get("config_epochs")]
    pts = np.array([(t.metrics["valid_acc"], t.metrics["full_train_energy_j"]) for t in full])
    return {"test_acc": best.metrics["test_acc"], "valid_acc": best.metrics["valid_acc"],
            "best_energy_j": best.metrics["full_train_energy_j"], "search_energy_j": search_energy(st),
            "trials": len(st.trials), "hv": hypervolume(pts), "config": space.format(space.coerce(best.arch))}


def hypervolume(pts: np.ndarray, e_ref: float = 40.0) -> float:
    """Area dominated by (accuracy up, energy down) points, reference (0 %, e_ref J), in %·J / 100."""
    if len(pts) == 0:
        return 0.0
    pts = pts[np.argsort(pts[:, 1])]
    area, best_acc = 0.0, 0.0
    edges = list(pts[:, 1]) + [e_ref]
    for (acc, e), nxt in zip(pts, edges[1:]):
        best_acc = max(best_acc, acc)
        if e < e_ref:
            area += best_acc * (min(nxt, e_ref) - e)
    return area / 100.0


def report(title: str, res: dict[str, list[dict]]) -> None:
    print(f"\n{title}")
    print("  method  test acc of chosen (%)  its full training energy (J)  search energy (J)  trials  front HV")
    for m, rs in res.items():
        print(f"  {m:6s}  {se([r['test_acc'] for r in rs]):>20s}  {se([r['best_energy_j'] for r in rs]):>26s}  "
              f"{se([r['search_energy_j'] for r in rs]):>16s}  {se([r['trials'] for r in rs]):>8s}  "
              f"{se([r['hv'] for r in rs])}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=120)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--real-seeds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=300.0, help="search energy budget on the surrogate (J)")
    ap.add_argument("--real-budget", type=float, default=150.0, help="search energy budget with real training (J)")
    ap.add_argument("--real-weight", type=float, default=-0.3, help="energy exponent of the real energy-aware runs")
    ap.add_argument("--only", default="runs,surrogate,search,real")
    args = ap.parse_args()
    parts = args.only.split(",")
    space, est = task()
    runs = collect(space, est, args.runs)
    finals = np.array([r["valid_curve"][-1] for r in runs])
    energies = np.array([sum(r["epoch_energy_j"]) for r in runs])
    print(f"  final valid acc {finals.min():.1f}..{finals.max():.1f} % (median {np.median(finals):.1f}); full training "
          f"energy {energies.min():.1f}..{energies.max():.1f} J (median {np.median(energies):.1f})")
    if "surrogate" in parts:
        surrogate_eval(space, runs)
    if "search" in parts:
        bench = SurrogateBenchmark(space, fit(space, runs, 0))
        res: dict[str, list[dict]] = {}
        for m in METHODS:
            for w in (WEIGHTS if m.startswith("ea-") else WEIGHTS[:1]):
                for s in range(args.seeds):
                    bench.reset()
                    label = m if not m.startswith("ea-") else f"{m} w={w:g}"
                    res.setdefault(label, []).append(run_search(m, space, bench, s, args.budget, w))
        report(f"search on the Bézier surrogate, energy budget {args.budget:g} J, {args.seeds} seeds (mean ± s.e.; "
               f"accuracies are the surrogate's):", res)
    if "real" in parts:
        res = {}
        w = args.real_weight
        for m in REAL_METHODS:
            for s in range(args.real_seeds):
                path = OUT / f"real2_{m}_{s}_{args.real_budget:g}_{w:g}.json"
                if path.exists():
                    r = json.loads(path.read_text())
                else:
                    _, fresh = task()  # a fresh estimator: no run reused across searches
                    t0 = time.process_time()
                    r = run_search(m, space, fresh, s, args.real_budget, w)
                    r["cpu_s"] = time.process_time() - t0
                    path.write_text(json.dumps(r))
                    print(f"  real {m} seed {s}: {r}", flush=True)
                res.setdefault(m if not m.startswith("ea-") else f"{m} w={w:g}", []).append(r)
        report(f"search with real training, energy budget {args.real_budget:g} J, {args.real_seeds} seeds "
               f"(mean ± s.e.):", res)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
