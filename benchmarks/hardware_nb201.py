"""Hardware-aware NAS on NB201: cost counts, constrained search, multi-objective search, latency predictors.

    nice python benchmarks/hardware_nb201.py --seeds 20 --out benchmarks/out

Sections (each stored in OUT/hardware_nb201.json as it finishes; a re-run skips finished ones
unless --force):

* ``costs``: parameters and FLOPs of the NB201 network (C=16, N=5, CIFAR-10, 32x32) for all
  15,625 cells in closed form, checked against the published range and the issue's reference
  cells, and against the hook counter / parameter count of built networks (one network per
  (#conv3x3, #conv1x1, #pool) class, which determines both counts, plus random cells).
* ``constrained``: latency budgets at the 25/50/75th percentile of three devices; random
  search, regularised evolution, local search and GP-BO with the budget as a hard constraint, 100
  queries, select by valid_acc (200 epochs), report test_acc_full; gap to the true constrained
  optimum; number of infeasible trials reported as best (must be 0).
* ``multiobjective``: NSGA-II, MO-RE, random Chebyshev scalarisation and random search, 300
  queries; hypervolume fraction of the true front at 100 and 300 queries; accuracy vs latency
  (CIFAR-10 valid_acc vs pixel3) and accuracy vs energy (CIFAR-100 valid_acc vs Pi 5 onnx).
* ``predictors``: latency on an unseen device from 20 measured cells (leave-one-device-out;
  sources exclude the target's GPU family), Spearman rho / RMSE on the other 15,605 cells, and
  the same on this machine (PyTorch, batch 1, 1 thread) as an unseen device (section ``local``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.analysis.pareto import hypervolume, normalize, pareto_mask
from nasforge.estimation import load_benchmark
from nasforge.estimation.constraints import ConstraintSet
from nasforge.estimation.hardware import (LATENCY_DEVICES, count_flops_all, count_params, load_hardware_table,
                                          measure_latency, nb201_flops)
from nasforge.estimation.latency_predictors import (AdditiveLatencyModel, LearnedLatencyPredictor,
                                                    NearestDeviceBaseline, TransferLatencyPredictor,
                                                    evaluate_predictor)
from nasforge.spaces.nb201_net import nb201_param_count
from nasforge.strategies import get_strategy
from nasforge.study import Study

R1 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_1x1~2|"
R2 = "|none~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|none~2|"


def mean_se(v: Any) -> dict[str, float]:
    v = np.asarray(v, dtype=float)
    return {"mean": float(v.mean()), "se": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan"),
            "n": int(len(v))}


# --- costs -----------------------------------------------------------------------------------------
def section_costs(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    bench = load_benchmark("nb201:cifar10")
    space = bench.space
    archs = list(space)
    params = np.array([nb201_param_count(a) for a in archs])
    flops = {c: np.array([nb201_flops(a, convention=c) for a in archs]) for c in ("nb201", "nb201+pool", "full")}
    out: dict[str, Any] = {
        "n_cells": len(archs),
        "params_range_M": [params.min() / 1e6, params.max() / 1e6],
        "flops_range_M": {c: [v.min() / 1e6, v.max() / 1e6] for c, v in flops.items()},
        "published": {"params_range_M": [0.073306, 1.531546], "flops_range_M": [7.78305, 220.11969]},
        "issue_refs": {R1: {"params_M": 0.428346, "mflops": 62.502592}, R2: {"mflops": 14.886592}},
        "ours_on_refs": {a: {"params_M": nb201_param_count(a) / 1e6,
                             **{f"mflops[{c}]": nb201_flops(a, convention=c) / 1e6 for c in flops}} for a in (R1, R2)},
    }
    # one built network per class of (e3, e1, ep) counts (they determine params and FLOPs), plus random cells
    classes: dict[tuple[int, int, int], Any] = {}
    for a in archs:
        classes.setdefault((a.count("nor_conv_3x3"), a.count("nor_conv_1x1"), a.count("avg_pool_3x3")), a)
    rng = np.random.default_rng(0)
    extra = [archs[i] for i in rng.choice(len(archs), args.counter_archs, replace=False)]
    check = list(classes.values()) + extra
    if args.all_cells:
        check = archs
    mism = {"params": 0, "nb201": 0, "nb201+pool": 0, "full": 0}
    t0 = time.perf_counter()
    for a in check:
        net = space.build(a)
        mism["params"] += count_params(net) != nb201_param_count(a)
        counted = count_flops_all(net, (3, 32, 32))
        for c in ("nb201", "nb201+pool", "full"):
            mism[c] += counted[c].total != nb201_flops(a, convention=c)
    out["counter_check"] = {"built_networks": len(check), "op_count_classes": len(classes),
                            "mismatches": mism, "seconds": time.perf_counter() - t0}
    return out


# --- constrained search ------------------------------------------------------------------------------
def section_constrained(args: argparse.Namespace) -> dict[str, Any]:
    bench = load_benchmark("nb201:cifar10+latency")
    valid, test = bench.values("valid_acc"), bench.values("test_acc_full")
    res: dict[str, Any] = {}
    for device in args.devices.split(","):
        metric = f"latency_ms[{device}]"
        lat = bench.values(metric)
        for pct in (25, 50, 75):
            budget = float(np.percentile(lat, pct))
            cons = ConstraintSet([f"{metric} <= {budget!r}"]).bind(bench.space, bench)
            feas = lat <= budget
            oracle = float(test[feas].max())  # best test accuracy among feasible cells
            sel = int(np.flatnonzero(feas)[np.argmax(valid[feas])])  # the valid-best feasible cell
            key = f"{device}@p{pct}"
            row: dict[str, Any] = {"budget_ms": budget, "feasible_cells": int(feas.sum()),
                                   "optimum_test": oracle, "valid_best_test": float(test[sel])}
            for strat in args.constrained_strategies.split(","):
                found, infeasible_best, infeasible_trials = [], 0, 0
                for seed in range(args.seeds):
                    study = Study(f"{strat}-{seed}", bench.space, "valid_acc", constraints=cons)
                    study.optimize(get_strategy(strat, bench.space, seed=seed), bench, n_trials=100)
                    best = study.best_trial
                    infeasible_best += not cons(best.arch)
                    infeasible_trials += sum(not t.info["feasible"] for t in study.trials)
                    found.append(best.metrics["test_acc_full"])
                found = np.array(found)
                row[strat] = {"test": mean_se(found), "gap_to_optimum": mean_se(oracle - found),
                              "gap_to_valid_best": mean_se(float(test[sel]) - found),
                              "infeasible_best": infeasible_best, "infeasible_trials": infeasible_trials}
            res[key] = row
            print(f"  constrained {key}: budget {budget:.3f} ms, optimum {oracle:.2f}, "
                  + ", ".join(f"{s} {row[s]['test']['mean']:.2f}" for s in args.constrained_strategies.split(",")),
                  flush=True)
    return res


# --- multi-objective ---------------------------------------------------------------------------------
TASKS = {
    "acc-vs-latency": ("nb201:cifar10+latency", ["valid_acc", "latency_ms[pixel3]"]),
    "acc-vs-energy": ("nb201:cifar100+pi5", ["valid_acc", "energy_mj[pi5_onnx]"]),
}


def section_multiobjective(args: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {}
    dirs = [True, False]
    at = (100, 300)
    for task, (spec, metrics) in TASKS.items():
        bench = load_benchmark(spec)
        Y = np.column_stack([bench.values(m) for m in metrics])
        front = Y[pareto_mask(Y, dirs)]
        bounds = {"table": (Y.min(axis=0), Y.max(axis=0)), "front": (front.min(axis=0), front.max(axis=0))}
        true_hv = {k: hypervolume(normalize(front, lo, hi, dirs), [1.1, 1.1]) for k, (lo, hi) in bounds.items()}
        row: dict[str, Any] = {"front_size": int(len(front)), "true_hv": true_hv}
        for strat in ("nsga2", "mo-re", "chebyshev", "mo-random"):
            fr: dict[str, list[float]] = {f"{k}@{q}": [] for k in bounds for q in at}
            t0 = time.perf_counter()
            for seed in range(args.seeds):
                study = Study(f"{strat}-{seed}", bench.space, metrics, maximize=dirs)
                study.optimize(get_strategy(strat, bench.space, seed=seed), bench, n_trials=max(at))
                P = np.array([[t.metrics[m] for m in metrics] for t in study.trials])
                for q in at:
                    for k, (lo, hi) in bounds.items():
                        hv = hypervolume(normalize(P[:q], lo, hi, dirs), [1.1, 1.1])
                        fr[f"{k}@{q}"].append(hv / true_hv[k])
            row[strat] = {k: mean_se(v) for k, v in fr.items()}
            row[strat]["seconds"] = time.perf_counter() - t0
            print(f"  {task} {strat}: " + ", ".join(f"{k} {row[strat][k]['mean']:.4f}" for k in fr), flush=True)
        res[task] = row
    return res


# --- latency predictors ------------------------------------------------------------------------------
def _family(d: str) -> str:
    return d.split("_")[0] if d.startswith(("1080ti", "2080ti")) else d


def _methods(space: Any, archs: list[Any], sources: dict[str, np.ndarray]) -> dict[str, Any]:
    return {"additive (per-op lookup)": lambda: AdditiveLatencyModel(space),
            "learned (GBRT)": lambda: LearnedLatencyPredictor(space, seed=0),
            "nearest source device": lambda: NearestDeviceBaseline(space, archs, sources),
            "transfer (ours)": lambda: TransferLatencyPredictor(space, archs, sources)}


def section_predictors(args: argparse.Namespace) -> dict[str, Any]:
    table = load_hardware_table("latency")
    pi5 = load_hardware_table("pi5")
    archs, space = table.archs, table.space
    targets = {d: table.columns[f"latency_ms[{d}]"] for d in LATENCY_DEVICES}
    prow = np.array([pi5.row(a) for a in archs])
    for r in ("pi5_onnx", "pi5_litert"):
        targets[r] = pi5.columns[f"latency_ms[{r}]"][prow]
    res: dict[str, Any] = {"n_samples": args.samples, "seeds": args.seeds}
    for target, y in targets.items():
        sources = {d: table.columns[f"latency_ms[{d}]"] for d in LATENCY_DEVICES
                   if _family(d) != _family(target) and d != target}
        methods = _methods(space, archs, sources)
        scores: dict[str, dict[str, list[float]]] = {m: {"spearman": [], "rmse": []} for m in methods}
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            idx = rng.choice(len(archs), args.samples, replace=False)
            rest = np.setdiff1d(np.arange(len(archs)), idx)
            tr, te = [archs[i] for i in idx], [archs[i] for i in rest]
            for m, make in methods.items():
                r = evaluate_predictor(y[rest], make().fit(tr, y[idx]).predict(te))
                scores[m]["spearman"].append(r["spearman"])
                scores[m]["rmse"].append(r["rmse"])
        res[target] = {m: {k: mean_se(v) for k, v in s.items()} for m, s in scores.items()}
        res[target]["mean_latency_ms"] = float(np.mean(y))
        print(f"  predictor {target}: " + ", ".join(f"{m} {res[target][m]['spearman']['mean']:.3f}" for m in methods),
              flush=True)
    return res


def section_local(args: argparse.Namespace) -> dict[str, Any]:
    """This machine as an unseen device: time ``--local-archs`` cells twice, predict from 20."""
    table = load_hardware_table("latency")
    archs, space = table.archs, table.space
    res: dict[str, Any] = {"n_samples": args.samples, "seeds": args.seeds}
    import os

    import torch
    from scipy.stats import spearmanr

    torch.set_num_threads(1)
    rng = np.random.default_rng(123)
    pick = rng.choice(len(archs), args.local_archs, replace=False)
    sub = [archs[i] for i in pick]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    passes: dict[str, list[np.ndarray]] = {"median": [], "min": []}
    for rep in range(2):  # two passes in opposite orders: their agreement is the noise ceiling
        order = range(len(sub)) if rep == 0 else reversed(range(len(sub)))
        lat = {k: np.zeros(len(sub)) for k in passes}
        for i in order:
            m = measure_latency(space.build(sub[i]), (3, 32, 32), batch_size=1, threads=1, warmup=5, repeats=15)
            lat["median"][i], lat["min"][i] = m.median_ms, m.min_ms
        for k in passes:
            passes[k].append(lat[k])
    seconds = time.perf_counter() - t0
    load_after = os.getloadavg()
    sources = {d: table.columns[f"latency_ms[{d}]"] for d in LATENCY_DEVICES}
    methods = _methods(space, archs, sources)
    for stat, (a, b) in passes.items():
        local = (a + b) / 2
        scores = {m: {"spearman": [], "rmse": []} for m in methods}
        for seed in range(args.seeds):
            r2 = np.random.default_rng(seed)
            idx = r2.choice(len(sub), args.samples, replace=False)
            rest = np.setdiff1d(np.arange(len(sub)), idx)
            for m, make in methods.items():
                r = evaluate_predictor(local[rest], make().fit([sub[i] for i in idx], local[idx]).predict(
                    [sub[i] for i in rest]))
                scores[m]["spearman"].append(r["spearman"])
                scores[m]["rmse"].append(r["rmse"])
        key = f"this-machine [{stat}]"
        res[key] = {m: {k: mean_se(v) for k, v in s.items()} for m, s in scores.items()}
        res[key].update({
            "mean_latency_ms": float(local.mean()), "archs": int(len(local)), "measure_seconds": seconds,
            "repeat_spearman": float(spearmanr(a, b)[0]),
            "loadavg_before": list(load_before), "loadavg_after": list(load_after),
            "setting": f"torch, batch 1, 1 thread, 5 warm-up + 15 runs, {stat}; two passes averaged; "
                       "C=16, N=5, 3x32x32", "cpu": platform.processor() or platform.machine()})
        print(f"  predictor {key} (repeat rho {res[key]['repeat_spearman']:.3f}): " + ", ".join(
            f"{m} {res[key][m]['spearman']['mean']:.3f}" for m in methods), flush=True)
    return res


def _pm(d: dict[str, float], digits: int = 2, scale: float = 1.0) -> str:
    return f"{scale * d['mean']:.{digits}f} ± {scale * d['se']:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """The result tables as Markdown (means ± standard error over seeds)."""
    lines: list[str] = []
    if "constrained" in results:
        r = results["constrained"]
        strats = r["_args"]["constrained_strategies"].split(",") if "constrained_strategies" in r["_args"] else [
            "random", "re", "ls"]
        lines += ["| device @ budget | budget (ms) | feasible cells | optimum | valid-best cell | "
                  + " | ".join(f"{s}: test (gap)" for s in strats) + " | infeasible best |",
                  "|---|---|---|---|---|" + "---|" * len(strats) + "---|"]
        for key, row in r.items():
            if key.startswith("_"):
                continue
            cells = [f"{_pm(row[s]['test'])} ({_pm(row[s]['gap_to_optimum'])})" for s in strats]
            bad = sum(row[s]["infeasible_best"] for s in strats)
            lines.append(f"| {key} | {row['budget_ms']:.2f} | {row['feasible_cells']:,} | {row['optimum_test']:.2f} | "
                         f"{row['valid_best_test']:.2f} | " + " | ".join(cells) + f" | {bad} |")
        lines.append("")
    if "multiobjective" in results:
        r = results["multiobjective"]
        for task, row in r.items():
            if task.startswith("_"):
                continue
            lines += [f"**{task}** (true front: {row['front_size']} cells)", "",
                      "| strategy | HV @100 (table range) | HV @300 (table range) | HV @100 (front range) | "
                      "HV @300 (front range) |", "|---|---|---|---|---|"]
            for s in ("nsga2", "mo-re", "chebyshev", "mo-random"):
                lines.append(f"| {s} | " + " | ".join(_pm(row[s][k], 4) for k in
                                                        ("table@100", "table@300", "front@100", "front@300")) + " |")
            lines.append("")
    for sec in ("predictors", "local"):
        if sec not in results:
            continue
        r = results[sec]
        methods = ["additive (per-op lookup)", "learned (GBRT)", "nearest source device", "transfer (ours)"]
        lines += ["| unseen device | mean latency (ms) | " + " | ".join(f"{m}: rho" for m in methods)
                  + " | transfer RMSE (ms) |", "|---|---|" + "---|" * len(methods) + "---|"] if sec == "predictors" or "predictors" not in results else []
        for dev, row in r.items():
            if dev.startswith("_") or not isinstance(row, dict):
                continue
            label = dev + (f" (repeat rho {row['repeat_spearman']:.3f})" if "repeat_spearman" in row else "")
            lines.append(f"| {label} | {row['mean_latency_ms']:.2f} | "
                         + " | ".join(_pm(row[m]["spearman"], 3) for m in methods)
                         + f" | {_pm(row['transfer (ours)']['rmse'], 2)} |")
        if not (sec == "predictors" and "local" in results):
            lines.append("")
    return "\n".join(lines)


SECTIONS = {"costs": section_costs, "constrained": section_constrained, "multiobjective": section_multiobjective,
            "predictors": section_predictors, "local": section_local}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--out", default="benchmarks/out")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--devices", default="pixel3,raspi4,gold_6240", help="devices of the constrained search")
    p.add_argument("--constrained-strategies", default="random,re,ls,bo",
                   help="strategies of the constrained search (bo: acquisition maximised over feasible cells)")
    p.add_argument("--samples", type=int, default=20, help="measured cells of the unseen device")
    p.add_argument("--counter-archs", type=int, default=300, help="random cells built and counted besides one per class")
    p.add_argument("--all-cells", action="store_true", help="build and count all 15,625 networks (slow)")
    p.add_argument("--local-archs", type=int, default=200, help="cells timed on this machine (0: skip)")
    p.add_argument("--force", action="store_true", help="recompute finished sections")
    p.add_argument("--markdown", action="store_true", help="print the stored results as Markdown tables and stop")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "hardware_nb201.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if args.markdown:
        print(markdown(results))
        return
    for name in args.sections.split(","):
        if name in results and not args.force:
            print(f"{name}: done (in {path})")
            continue
        print(f"{name} ...", flush=True)
        t0 = time.perf_counter()
        results[name] = SECTIONS[name](args)
        results[name]["_seconds"] = time.perf_counter() - t0
        results[name]["_args"] = vars(args)
        path.write_text(json.dumps(results, indent=1, default=float))
        print(f"{name}: {results[name]['_seconds']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
