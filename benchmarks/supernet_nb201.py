"""How well do weight-sharing supernets rank NB201 cells? SPOS, FairNAS, PA&DA, few-shot, NAS-LID, GM.

CPU-scale protocol (docs/benchmarks.md):

- data: the shared CIFAR-10 (``train25k.npz``), a stratified 12,000 images split into 10,000
  training and 2,000 held-back images (``val_fraction=1/6``), average-pooled to 16x16 (``--size``);
- supernet: NB201, C=8, N=1; SGD (Nesterov 0.9, lr 0.05 cosine, wd 5e-4), batch 64, crop+flip;
- budget: ``--steps`` *path passes* (one forward/backward of one path on one batch) for every
  method: SPOS and PA&DA make one update per pass, FairNAS one update per group of 5 passes;
  split methods reuse SPOS's state at half the budget as their root (it is the same run up to
  there) and fine-tune their sub-supernets with the other half, shared equally between levels
  and, within a level, between its sub-supernets (few-shot: 5 x T/10; 2-way 1 level: 2 x T/4;
  2-way 2 levels: 2 x T/8 then 4 x T/16);
- scoring: ``--n-archs`` random cells (one fixed sample, ``--sample-seed``, the same for every
  method and seed), each with BatchNorm recalibrated on 4 x 128 training images, then accuracy on
  the first ``--n-eval`` held-back images;
- truth: NB201 ``test_acc_200`` and ``valid_acc_200`` (CIFAR-10, 200 epochs, 32x32);
- ``--seeds`` independent supernet trainings; mean +- standard error over seeds.

Results are written incrementally under ``--out`` (one JSON per seed and method); running the
command again resumes (trainers resume from their checkpoints). ``--report`` prints the tables
from what is there. ``--memory`` measures the peak memory of the two split criteria.

Command used for docs/benchmarks.md::

    nice -n 10 python benchmarks/supernet_nb201.py --seeds 0,1,2 --steps 3000
    python benchmarks/supernet_nb201.py --memory
    python benchmarks/supernet_nb201.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("spos", "fairnas", "pada-path", "pada-data", "pada", "fewshot", "lid-1", "lid-2", "gm-1", "gm-2")
LABELS = {"spos": "SPOS (uniform)", "fairnas": "FairNAS", "pada-path": "PA&DA path only",
          "pada-data": "PA&DA data only", "pada": "PA&DA (path + data)", "fewshot": "few-shot, 5 sub-supernets (edge 0)",
          "lid-1": "NAS-LID, 2 sub-supernets (1 level)", "lid-2": "NAS-LID, 4 sub-supernets (2 levels)",
          "gm-1": "gradient matching, 2 sub-supernets", "gm-2": "gradient matching, 4 sub-supernets (2 levels)"}
SPLITS = {"fewshot": ("fewshot", 1, [5]), "lid-1": ("lid", 1, [2]), "lid-2": ("lid", 2, [2, 4]),
          "gm-1": ("gradient", 1, [2]), "gm-2": ("gradient", 2, [2, 4])}
REFERENCE = {"spos": "0.485 (few-shot NAS release, one-shot, full scale)",
             "fewshot": "0.551 (few-shot NAS release, 5 sub-supernets)", "pada": "~0.71 (PA&DA paper)"}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--steps", type=int, default=3000, help="path passes per method (default 3000)")
    p.add_argument("--n-archs", type=int, default=200)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=12000, help="CIFAR-10 images loaded (5/6 train, 1/6 held back)")
    p.add_argument("--size", type=int, default=16, help="image side (average pooling from 32)")
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--n-eval", type=int, default=1000, help="held-back images per architecture")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="benchmarks/out/supernet_nb201")
    p.add_argument("--report", action="store_true", help="only print the tables from saved results")
    p.add_argument("--memory", action="store_true", help="measure peak memory of the LID and gradient criteria")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--memory-scale", default="bench", help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true")
    return p.parse_args()


# --- data and settings ------------------------------------------------------------------------
def load_data(args: argparse.Namespace) -> Any:
    from nasforge.data import load_dataset
    from nasforge.oneshot import downsample

    ds = load_dataset("cifar10", n_train=args.n_train, val_fraction=1 / 6, data_dir=args.data_dir)
    return downsample(ds, args.size)


def protocol(args: argparse.Namespace) -> dict[str, Any]:
    return {"steps": args.steps, "n_archs": args.n_archs, "sample_seed": args.sample_seed, "n_train": args.n_train,
            "size": args.size, "C": args.C, "N": args.N, "batch_size": args.batch_size, "lr": args.lr,
            "n_eval": args.n_eval, "bn": "4x128"}


def check_protocol(out: Path, args: argparse.Namespace) -> None:
    f = out / "protocol.json"
    mine = protocol(args)
    if f.is_file():
        theirs = json.loads(f.read_text())
        if theirs != mine:
            diff = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
            sys.exit(f"{out} holds results of another protocol {diff}; use another --out")
    else:
        out.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(mine, indent=1))


# --- one method, one seed ------------------------------------------------------------------------
def trainer_for(model: Any, sampler: str, ds: Any, steps: int, args: argparse.Namespace, seed: int,
                ckpt: Path | None, schedule: tuple[float, float] = (0.0, 1.0), allowed: Any = None) -> Any:
    from nasforge.oneshot import SupernetTrainer, make_sampler

    return SupernetTrainer(model, make_sampler(sampler, allowed=allowed), ds.x_train, ds.y_train, steps=steps,
                           batch_size=args.batch_size, lr=args.lr, seed=seed, schedule=schedule, checkpoint=ckpt,
                           checkpoint_every=250)


def score_all(supernets: Any, ds: Any, archs: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    from nasforge.oneshot import PathEvaluator

    ev = PathEvaluator(supernets, ds, n_eval=args.n_eval)
    acc, loss, secs = [], [], []
    for a in archs:
        r = ev.score(a)
        acc.append(r["acc"])
        loss.append(r["loss"])
        secs.append(r["seconds"])
    return {"acc": acc, "loss": loss, "eval_seconds": float(np.mean(secs))}


def run_method(method: str, seed: int, ds: Any, archs: list[Any], args: argparse.Namespace, out: Path) -> None:
    import torch

    from nasforge.estimation.training import arch_seed
    from nasforge.oneshot import build_supernet
    from nasforge.oneshot.fewshot import grow_splits, split_steps

    res_file = out / f"seed{seed}" / f"{method}.json"
    if res_file.is_file():
        return
    work = out / f"seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    T = args.steps
    t0 = time.perf_counter()
    info: dict[str, Any] = {"method": method, "seed": seed}
    if method in SPLITS:
        root_file = work / "root.pt"
        if not root_file.is_file():
            run_method("spos", seed, ds, archs, args, out)  # writes the root on its way
        model = build_supernet(ds, C=args.C, N=args.N, seed=seed)
        root = trainer_for(model, "uniform", ds, T, args, seed, None)
        root.load(root_file)
        criterion, levels, parts = SPLITS[method]
        steps = split_steps(T - root.step, parts)
        g = torch.Generator().manual_seed(1000 + seed)
        pick = torch.randperm(len(ds.y_train), generator=g)[:128]
        xs, ys = torch.from_numpy(ds.x_train[pick.numpy()]), torch.from_numpy(ds.y_train[pick.numpy()])
        passes = {"n": 0}

        def make(child: Any, n: int, sched: tuple[float, float], node: str) -> Any:
            passes["n"] += n
            return trainer_for(child, "uniform", ds, n, args, arch_seed(seed, f"{method}/{node}"),
                               work / method / f"{node}.pt", schedule=sched, allowed=child.allowed)

        t_split = time.perf_counter()
        split, decisions = grow_splits(root.model, make, xs, ys, criterion=criterion, levels=levels, steps=steps,
                                       schedule_start=root.progress(), root_optimizer=root.optimizer.state_dict(),
                                       edge=0 if criterion == "fewshot" else None, seed=seed, workdir=work / method,
                                       log=None if args.quiet else print)
        info.update(decisions=decisions, parts=split.describe(), steps_per_part=steps,
                    path_passes=root.step + passes["n"], split_and_finetune_seconds=time.perf_counter() - t_split)
        supernets: Any = split
    else:
        model = build_supernet(ds, C=args.C, N=args.N, seed=seed)
        sampler = "uniform" if method == "spos" else method
        group = 5 if method == "fairnas" else 1
        tr = trainer_for(model, sampler, ds, T // group, args, seed, work / f"{method}.pt")
        if method == "spos" and not (work / "root.pt").is_file():
            tr.train(until=T // 2, progress=not args.quiet, desc=f"seed {seed} spos (to root)")
            tr.save(work / "root.pt")
        r = tr.train(progress=not args.quiet, desc=f"seed {seed} {method}")
        info.update(path_passes=tr.step * group, train_seconds=r["seconds"],
                    seconds_per_pass=r["seconds"] / (tr.step * group), final_loss=r["loss"])
        if method.startswith("pada"):
            info["op_prob_final"] = np.round(tr.sampler.probabilities(), 4).tolist()
        supernets = model
    scores = score_all(supernets, ds, archs, args)
    info.update(scores, archs=[str(a) for a in archs], wall_seconds=time.perf_counter() - t0)
    tmp = res_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, res_file)
    print(f"seed {seed} {method}: done in {info['wall_seconds']:.0f} s", flush=True)


# --- report ---------------------------------------------------------------------------------------
def report(args: argparse.Namespace, out: Path) -> None:
    from nasforge.analysis.correlation import kendall_tau, spearman, top_k_precision
    from nasforge.estimation import load_benchmark

    bench = load_benchmark("nb201:cifar10", data_dir=args.data_dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    truth_cache: dict[str, dict[str, np.ndarray]] = {}
    for method in [m for m in args.methods.split(",") if m]:
        per: dict[str, list[float]] = {}
        for seed in seeds:
            f = out / f"seed{seed}" / f"{method}.json"
            if not f.is_file():
                continue
            r = json.loads(f.read_text())
            key = "|".join(r["archs"][:3]) + str(len(r["archs"]))
            if key not in truth_cache:
                truth_cache[key] = {m: np.array([bench.query(a, m) for a in r["archs"]])
                                    for m in ("test_acc_200", "valid_acc_200")}
            truth = truth_cache[key]
            acc, loss = np.array(r["acc"]), np.array(r["loss"])
            score = acc - 1e-6 * loss  # accuracy, ties broken by the lower loss
            for m, t in truth.items():
                short = "test" if m.startswith("test") else "valid"
                per.setdefault(f"tau_{short}", []).append(kendall_tau(acc, t))
                per.setdefault(f"rho_{short}", []).append(spearman(acc, t))
                per.setdefault(f"tauloss_{short}", []).append(kendall_tau(-loss, t))
            t = truth["test_acc_200"]
            per.setdefault("top10", []).append(top_k_precision(acc, t, 0.1))
            per.setdefault("pick", []).append(float(t[int(np.argmax(score))]))
            per.setdefault("oracle", []).append(float(t.max()))
            per.setdefault("sec_pass", []).append(r.get("seconds_per_pass", np.nan))
            per.setdefault("sec_eval", []).append(r["eval_seconds"])
            per.setdefault("passes", []).append(r["path_passes"])
            per.setdefault("mean_acc", []).append(float(acc.mean()))
            if "parts" in r:
                part = _parts_of(r["parts"], r["archs"])
                taus, weights, means = [], [], []
                for j in sorted(set(part)):
                    sel = part == j
                    if sel.sum() >= 10:
                        taus.append(kendall_tau(acc[sel], t[sel]))
                        weights.append(sel.sum())
                    means.append((acc[sel].mean(), t[sel].mean()))
                per.setdefault("within", []).append(float(np.average(taus, weights=weights)))
                mu = np.array(means)
                per.setdefault("offset", []).append(spearman(mu[:, 0], mu[:, 1]) if len(mu) > 2 else float("nan"))
            upper = t >= np.median(t)
            per.setdefault("tau_upper", []).append(kendall_tau(acc[upper], t[upper]))
        if per:
            rows.append((method, per))
    if not rows:
        print(f"no results under {out}")
        return

    def ms(v: list[float], fmt: str = "{:.3f}") -> str:
        a = np.array([x for x in v if x is not None and not np.isnan(x)], dtype=float)
        if len(a) == 0:
            return "-"
        if len(a) == 1:
            return fmt.format(a[0])
        return (fmt + " ± " + fmt).format(a.mean(), a.std(ddof=1) / np.sqrt(len(a)))

    n_archs = args.n_archs
    print(f"\nNB201 CIFAR-10, {n_archs} random cells (sample seed {args.sample_seed}); mean ± s.e. over seeds; "
          f"budget {args.steps} path passes per method\n")
    print("| method | seeds | Kendall τ (test_acc_200) | Spearman ρ (test) | Kendall τ (valid_acc_200) | "
          "Spearman ρ (valid) | top-10% precision | top-1 pick test_acc_200 | reference τ (paper) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method, per in rows:
        print(f"| {LABELS.get(method, method)} | {len(per['pick'])} | {ms(per['tau_test'])} | {ms(per['rho_test'])} | "
              f"{ms(per['tau_valid'])} | {ms(per['rho_valid'])} | {ms(per['top10'], '{:.2f}')} | "
              f"{ms(per['pick'], '{:.2f}')} | {REFERENCE.get(method, '')} |")
    oracle = rows[0][1]["oracle"][0]
    print(f"\nbest test_acc_200 among the {n_archs} cells: {oracle:.2f}")
    from nasforge.spaces.nb201_net import nb201_param_count

    t_all = next(iter(truth_cache.values()))
    first = json.loads(next(f for s in seeds for f in (out / f"seed{s}").glob("*.json")).read_text())["archs"]
    params = np.array([nb201_param_count(a) for a in first], dtype=float)
    tt = t_all["test_acc_200"]
    up = tt >= np.median(tt)
    print(f"trivial baseline, parameter count: Kendall τ {kendall_tau(params, tt):.3f}, Spearman ρ "
          f"{spearman(params, tt):.3f}, τ within the better half {kendall_tau(params[up], tt[up]):.3f}, "
          f"top-1 pick {tt[int(np.argmax(params))]:.2f}")
    print("\n| method | Kendall τ by held-back loss (test_acc_200) | τ within the better half | mean supernet accuracy (%) "
          "| path passes | s per path pass (training) | s per architecture (BN recal. + scoring) |")
    print("|---|---|---|---|---|---|---|")
    for method, per in rows:
        print(f"| {LABELS.get(method, method)} | {ms(per['tauloss_test'])} | {ms(per['tau_upper'])} | "
              f"{ms(per['mean_acc'], '{:.1f}')} | "
              f"{int(np.mean(per['passes']))} | {ms(per['sec_pass'], '{:.4f}')} | {ms(per['sec_eval'], '{:.3f}')} |")
    base = dict(rows).get("spos")
    if base is not None:
        print("\nΔτ (test) vs SPOS, paired by seed:")
        for method, per in rows:
            if method == "spos":
                continue
            d = [a - b for a, b in zip(per["tau_test"], base["tau_test"])]
            print(f"  {LABELS.get(method, method)}: {ms(d)}")
    split_rows = [(m, per) for m, per in rows if m in SPLITS and per.get("within")]
    if split_rows:
        print("\nsplit methods: Kendall τ (test_acc_200) inside each sub-supernet (mean over parts, weighted by the "
              "number of sampled cells) vs over all cells; 'part offset' = Spearman ρ between a part's mean supernet "
              "accuracy and its mean true accuracy")
        print("| method | τ within parts | τ overall | part offset ρ |")
        print("|---|---|---|---|")
        for method, per in split_rows:
            print(f"| {LABELS.get(method, method)} | {ms(per['within'])} | {ms(per['tau_test'])} | "
                  f"{ms(per['offset'])} |")
    mem = out / "memory.json"
    if mem.is_file():
        print("\npeak memory of one split decision on one edge (MiB above the baseline RSS):")
        for scale, d in json.loads(mem.read_text()).items():
            print(f"  {scale}: " + ", ".join(f"{k} {v['peak_mib']:.1f} MiB ({v['seconds']:.1f} s)" for k, v in d.items()))


def _parts_of(parts: list[str], archs: list[str]) -> np.ndarray:
    """Which part (index) holds each architecture, from the parts' descriptions."""
    import re

    from nasforge.oneshot.supernet import arch_indices
    from nasforge.spaces.nb201 import OPS

    rules = []
    for text in parts:
        rule = {}
        for e, ops in re.findall(r"edge (\d): ([a-z0-9_|]+)", text):
            rule[int(e)] = {OPS.index(o) for o in ops.split("|")}
        rules.append(rule)
    out = np.empty(len(archs), dtype=int)
    for i, a in enumerate(archs):
        idx = arch_indices(a)
        out[i] = next(j for j, rule in enumerate(rules) if all(idx[e] in ops for e, ops in rule.items()))
    return out


# --- memory ------------------------------------------------------------------------------------
SCALES = {"bench": {"C": 8, "N": 1, "size": 16, "batch": 128}, "full": {"C": 16, "N": 5, "size": 32, "batch": 128}}


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(args: argparse.Namespace) -> None:
    """Measure one criterion in this (fresh) process: peak RSS above the RSS just before it."""
    import torch

    from nasforge.oneshot import NB201Supernet
    from nasforge.oneshot.fewshot import choose_split

    torch.set_num_threads(args.threads)
    sc = SCALES[args.memory_scale]
    torch.manual_seed(0)
    model = NB201Supernet(C=sc["C"], N=sc["N"], input_size=sc["size"])
    x = torch.randn(sc["batch"], 3, sc["size"], sc["size"])
    y = torch.randint(0, 10, (sc["batch"],))
    crit = args.memory_child
    choose_split(model, x[:8], y[:8], crit, edge=0, n_paths=1, k=5)  # warm-up: allocator, kernels
    import gc

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark (VmHWM)
    base = _rss_kib("VmRSS")
    t0 = time.perf_counter()
    choose_split(model, x, y, crit, edge=0, n_paths=4, k=20)
    secs = time.perf_counter() - t0
    peak = _rss_kib("VmHWM")
    print(json.dumps({"peak_mib": (peak - base) / 1024.0, "seconds": secs}))


def memory(args: argparse.Namespace, out: Path) -> None:
    res: dict[str, Any] = {}
    f = out / "memory.json"
    if f.is_file():
        res = json.loads(f.read_text())
    for scale in SCALES:
        for crit in ("lid", "gradient"):
            if crit in res.get(scale, {}):
                continue
            runs = []
            for _ in range(2):
                cmd = [sys.executable, __file__, "--memory-child", crit, "--memory-scale", scale,
                       "--threads", str(args.threads)]
                outp = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
                runs.append(json.loads(outp))
            best = min(runs, key=lambda r: r["peak_mib"])
            res.setdefault(scale, {})[crit] = best
            print(scale, crit, best, flush=True)
            out.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(res, indent=1))


def main() -> None:
    args = parse()
    if args.memory_child:
        memory_child(args)
        return
    out = Path(args.out)
    if args.memory:
        memory(args, out)
        report(args, out)
        return
    if args.report:
        report(args, out)
        return
    import torch

    torch.set_num_threads(args.threads)
    check_protocol(out, args)
    from nasforge.oneshot import sample_archs

    ds = load_data(args)
    archs = sample_archs(args.n_archs, args.sample_seed)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for method in [m for m in args.methods.split(",") if m]:
            if method not in METHODS:
                sys.exit(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
            run_method(method, seed, ds, archs, args, out)
    report(args, out)


if __name__ == "__main__":
    main()
