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

Every supernet is trained by the library's run protocol (:class:`nasforge.oneshot.run.SupernetRun`,
the code behind ``nasforge supernet train``), one run folder per seed and method
(``--out/seed<S>/<method>/``), so the command line with the same settings and seed trains the same
supernet. The split methods start from the SPOS run's root (``root_from``; SPOS keeps its state at
the branch point).

Results are written incrementally under ``--out`` (one JSON per seed and method); running the
command again resumes (trainers resume from their checkpoints). ``--report`` prints the tables
from what is there. ``--memory`` measures the peak memory of the two split criteria. ``--quick``
is a smoke run of a few minutes (2 seeds, 300 passes, 20 cells, 6 methods; see ``QUICK``).

Command used for docs/benchmarks.md::

    nice -n 10 python benchmarks/supernet_nb201.py --seeds 0,1,2 --steps 3000
    python benchmarks/supernet_nb201.py --memory
    python benchmarks/supernet_nb201.py --report

Smoke run (the check that refactorings leave the numbers unchanged)::

    python benchmarks/supernet_nb201.py --quick --report-after
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
#: settings of --quick
QUICK = {"seeds": "0,1", "steps": 300, "n_archs": 20, "n_eval": 200, "n_train": 1200,
         "methods": "spos,fairnas,pada,fewshot,lid-1,gm-2", "out": "benchmarks/out/supernet_nb201_quick"}
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
    p.add_argument("--quick", action="store_true", help="smoke run with other defaults: " + ", ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    p.add_argument("--report-after", action="store_true", help="with --quick: print the tables at the end")
    args = p.parse_args()
    if args.quick:  # the quick settings become the defaults; options given still win
        p.set_defaults(**QUICK)
        args = p.parse_args()
    return args


# --- settings ---------------------------------------------------------------------------------
def protocol(args: argparse.Namespace) -> dict[str, Any]:
    return {"steps": args.steps, "n_archs": args.n_archs, "sample_seed": args.sample_seed, "n_train": args.n_train,
            "size": args.size, "C": args.C, "N": args.N, "batch_size": args.batch_size, "lr": args.lr,
            "n_eval": args.n_eval, "bn": "4x128", "runs": "library run folders"}


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


def run_settings(method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The library run settings of one method and seed (what ``nasforge supernet train`` takes)."""
    st: dict[str, Any] = {"space": "nb201", "dataset": "cifar10", "n_train": args.n_train, "image_size": args.size,
                          "data_seed": 0, "net": {"C": args.C, "N": args.N}, "steps": args.steps,
                          "batch_size": args.batch_size, "lr": args.lr, "seed": seed}
    if method in SPLITS:
        criterion, levels, _parts = SPLITS[method]
        st.update(sampler="uniform", split=criterion, levels=levels)
    else:
        st.update(sampler="uniform" if method == "spos" else method, split="none")
    return st


# --- one method, one seed ------------------------------------------------------------------------
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


def run_method(method: str, seed: int, archs: list[Any], args: argparse.Namespace, out: Path) -> None:
    from nasforge.oneshot.run import SupernetRun

    res_file = out / f"seed{seed}" / f"{method}.json"
    if res_file.is_file():
        return
    work = out / f"seed{seed}"
    log = None if args.quiet else print
    run = SupernetRun(work / method, data_dir=args.data_dir, **run_settings(method, seed, args))
    t0 = time.perf_counter()
    info: dict[str, Any] = {"method": method, "seed": seed}
    if method in SPLITS:
        spos = work / "spos"
        if not (spos / "root.pt").is_file():  # the SPOS run keeps its state at the branch point
            SupernetRun(spos, data_dir=args.data_dir, **run_settings("spos", seed, args)).train(
                progress=not args.quiet, log=log, checkpoint_every=250, keep_root=True)
        r = run.train(progress=not args.quiet, log=log, checkpoint_every=250, root_from=spos)
        info.update(decisions=r.decisions, parts=r.parts, steps_per_part=r.steps_per_part, path_passes=r.path_passes,
                    split_and_finetune_seconds=r.split_seconds)
    else:
        r = run.train(progress=not args.quiet, log=log, checkpoint_every=250, keep_root=method == "spos")
        info.update(path_passes=r.path_passes, train_seconds=r.train_seconds, final_loss=r.loss,
                    seconds_per_pass=r.train_seconds / r.path_passes if r.path_passes else float("nan"))
        if method.startswith("pada") and r.trainer is not None:
            info["op_prob_final"] = np.round(r.trainer.sampler.probabilities(), 4).tolist()
    scores = score_all(r.supernets, run.dataset(), archs, args)
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
                if weights:  # parts with at least 10 sampled cells
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

    from nasforge.spaces.nb201 import OPS
    from nasforge.spaces.nb201_supernet import arch_indices

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

    from nasforge.oneshot.fewshot import choose_split
    from nasforge.spaces import get_space

    torch.set_num_threads(args.threads)
    sc = SCALES[args.memory_scale]
    torch.manual_seed(0)
    model = get_space("nb201").supernet(C=sc["C"], N=sc["N"], input_size=sc["size"])
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

    archs = sample_archs(args.n_archs, args.sample_seed)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for method in [m for m in args.methods.split(",") if m]:
            if method not in METHODS:
                sys.exit(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
            run_method(method, seed, archs, args, out)
    if not args.quick or args.report_after:
        report(args, out)


if __name__ == "__main__":
    main()
