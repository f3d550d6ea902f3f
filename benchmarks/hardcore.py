"""HardCoRe-NAS vs a soft latency penalty: 5 latency targets x seeds, on NB201 and on the mbv3 space.

Both methods run in the same bilevel loop (``nasforge.oneshot.differentiable``) with the same steps:
``hardcore`` (block-coordinate stochastic Frank-Wolfe, an LP per step, exact constrained projection
at the end) and ``latency-penalty`` (softmax α with Adam, ``lam * max(0, latency/target - 1)`` in the
α loss, argmax at the end). Per run: the largest expected latency of the attentions over every step
(HardCoRe's claim: never above the target), the latency of the final architecture (the paper's
claim: 0 final architectures above the target), and its accuracy.

- **NB201** (``--nb201``): CIFAR-10 (``../shared/data/cifar10``), the CPU-scale protocol of
  ``benchmarks/differentiable_nb201.py`` (C=8, N=1, 4,608 images at 8x8, batch 64) but shorter:
  4 epochs x 20 steps (``--nb201-epochs``, ``--nb201-steps``); latency: the FPGA column of ``nb201/latency_ms.csv`` (HW-NAS-Bench), which the per-
  operation model reproduces exactly (R^2 = 1); accuracy: the found cell's NB201 CIFAR-10 test
  accuracy (``test_acc_200_full``) and its valid accuracy. Targets 1.5 ... 3.5 ms, all below the
  uniform mixture's 3.75 ms (fastest cell 1.13 ms, slowest 8.68 ms).
- **mbv3** (``--mbv3``): the measured lookup table of ``benchmarks/mbv3_latency_lut.py`` (128x128
  inputs, 1 thread, this CPU; the default path is where that script writes it); a tiny supernet
  (width 0.125, 4 of the 12 block configurations per slot: k3e3, k3e6, k5e3se, k5e6se; every depth),
  CIFAR-10 at 16x16, 2,048 images, 3 epochs x 6 steps (``--mbv3-epochs``, ``--mbv3-steps``), batch 32; accuracy: the one-shot accuracy of
  the final architecture with the supernet's weights on 1,000 CIFAR-10 test images (a fixed random subset; batch-norm in
  batch-statistics mode). Targets: 5 evenly spaced between the fastest and the uniform mixture of
  the allowed choices.

Both: the first epoch trains only the weights (``warmup`` 1).
Runs are cached per (space, method, target, seed) under ``--work`` (a re-run skips finished runs)
and run in ``--jobs`` processes with one torch thread each.

    nice -n 5 python benchmarks/hardcore.py --nb201 --mbv3 --seeds 0,1,2 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
METHODS = ["hardcore", "latency-penalty"]
NB201_TARGETS = [1.5, 2.0, 2.5, 3.0, 3.5]
MBV3_BLOCKS = ["k3e3", "k3e6", "k5e3se", "k5e6se"]


def mbv3_allowed() -> list[list[str]]:
    from nasforge.spaces.mbv3_supernet import DEPTH_OPS, LAYOUT

    return [list(DEPTH_OPS) if e.endswith("depth") else list(MBV3_BLOCKS) for e in LAYOUT.edges]


def mbv3_targets(lut: str) -> tuple[list[float], float, float]:
    from nasforge.oneshot.differentiable import min_latency, resolve_latency
    from nasforge.spaces.mbv3_supernet import LAYOUT

    model = resolve_latency(LAYOUT, lut)
    m = LAYOUT.mask(mbv3_allowed())
    low, _ = min_latency(model, m)
    uniform = model.expected(m / m.sum(axis=1, keepdims=True))
    return [round(low + f * (uniform - low), 3) for f in (0.1, 0.3, 0.5, 0.7, 0.9)], low, uniform


def one_run(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from nasforge.oneshot.differentiable.search import DifferentiableSearch, load_search_data, lookup_nb201

    out = Path(job["work"]) / (f"{job['space']}-{job['method']}-t{job['target']}-s{job['seed']}"
                               f"-e{job['epochs']}x{job['steps']}.json")
    if out.is_file():
        return json.loads(out.read_text())
    params = {"target": job["target"], "latency": job["latency"], "warmup": job["warmup"]}
    if job["space"] == "nb201":
        params["data_dir"] = str(DATA)
        ds = load_search_data("cifar10", n_train=4608, image_size=8, data_dir=str(DATA))
        run = DifferentiableSearch(ds, job["method"], "nb201", net={"C": 8, "N": 1}, seed=job["seed"],
                                   epochs=job["epochs"], steps_per_epoch=job["steps"], batch_size=64,
                                   method_params=params)
    else:
        ds = load_search_data("cifar10", n_train=2048, image_size=16, data_dir=str(DATA))
        run = DifferentiableSearch(ds, job["method"], "mbv3", net={"width": 0.125, "allowed": mbv3_allowed()},
                                   seed=job["seed"], epochs=job["epochs"], steps_per_epoch=job["steps"],
                                   batch_size=32, method_params=params)
    res = run.run()
    m = run.method
    rec = {**job, "genotype": res.genotype, "arch_latency": m.lat.of_indices(res.indices),
           "max_step_latency": max(h["latency_max"] for h in res.history), "min_latency": m.min_latency,
           "seconds": res.seconds, "latency_per_epoch": [h["latency"] for h in res.history]}
    if job["space"] == "nb201":
        rec["nb201"] = lookup_nb201(res.genotype, data_dir=str(DATA))
    else:
        model = run.model
        model.train()  # batch statistics: the supernet's running averages belong to the mixture
        pick = np.random.default_rng(0).permutation(len(ds.x_test))[:1000]  # the test file is sorted by class
        x = torch.as_tensor(ds.x_test[pick], dtype=torch.float32)
        y = torch.as_tensor(ds.y_test[pick], dtype=torch.int64)
        correct = 0
        with torch.no_grad():
            for i in range(0, len(x), 250):
                correct += int((model(x[i:i + 250], arch=res.arch).argmax(1) == y[i:i + 250]).sum())
        rec["oneshot_acc"] = 100.0 * correct / len(x)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec))
    return rec


def mean_se(v: list[float]) -> str:
    a = np.asarray(v, dtype=float)
    if len(a) < 2:
        return f"{a.mean():.2f}"
    return f"{a.mean():.2f} ± {a.std(ddof=1) / math.sqrt(len(a)):.2f}"


def table(space: str, rows: list[dict], targets: list[float], acc_key: str) -> None:
    print(f"\n| target (ms) | method | runs | final arch above target | any step above target | "
          f"final latency (ms) | {acc_key} |")
    print("|---|---|---|---|---|---|---|")
    for t in targets:
        for meth in METHODS:
            rs = [r for r in rows if r["space"] == space and r["method"] == meth and r["target"] == t]
            if not rs:
                continue
            above = sum(r["arch_latency"] > t for r in rs)
            steps = sum(r["max_step_latency"] > t for r in rs)
            accs = [r["nb201"]["cifar10/test_acc_full"] if space == "nb201" else r["oneshot_acc"] for r in rs]
            print(f"| {t} | {meth} | {len(rs)} | {above} | {steps} | {mean_se([r['arch_latency'] for r in rs])} | "
                  f"{mean_se(accs)} |")
    for meth in METHODS:
        rs = [r for r in rows if r["space"] == space and r["method"] == meth]
        if rs:
            above = sum(r["arch_latency"] > r["target"] for r in rs)
            accs = [r["nb201"]["cifar10/test_acc_full"] if space == "nb201" else r["oneshot_acc"] for r in rs]
            print(f"| all | {meth} | {len(rs)} | {above} | {sum(r['max_step_latency'] > r['target'] for r in rs)} | "
                  f"| {mean_se(accs)} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nb201", action="store_true")
    ap.add_argument("--mbv3", action="store_true")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--nb201-epochs", type=int, default=4)
    ap.add_argument("--nb201-steps", type=int, default=20)
    ap.add_argument("--mbv3-epochs", type=int, default=3)
    ap.add_argument("--mbv3-steps", type=int, default=6)
    ap.add_argument("--lut", default=str(HERE / "out" / "mbv3_lut" / "mbv3_lut_r128.csv"))
    ap.add_argument("--work", default=str(HERE / "out" / "hardcore"))
    ap.add_argument("--reverse", action="store_true", help="run the jobs in reverse order (a second process on the "
                                                          "same --work then meets the first in the middle)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = []
    if args.nb201:
        if not (DATA / "nb201" / "latency_ms.csv").is_file() or not (DATA / "cifar10").is_dir():
            print(f"skip NB201: reference data not found under {DATA}")
        else:
            jobs += [{"space": "nb201", "method": m, "target": t, "seed": s, "latency": "fpga", "warmup": 1,
                      "epochs": args.nb201_epochs, "steps": args.nb201_steps, "work": args.work} for t in NB201_TARGETS for s in seeds for m in METHODS]
    mb_targets: list[float] = []
    if args.mbv3:
        if not Path(args.lut).is_file():
            print(f"skip mbv3: no latency table at {args.lut}; make it with "
                  "`python benchmarks/mbv3_latency_lut.py --input-size 128 --archs 20 --out benchmarks/out/mbv3_lut`")
        else:
            mb_targets, low, uniform = mbv3_targets(args.lut)
            print(f"mbv3 allowed blocks {MBV3_BLOCKS}: fastest {low:.3f} ms, uniform mixture {uniform:.3f} ms, "
                  f"targets {mb_targets}")
            jobs += [{"space": "mbv3", "method": m, "target": t, "seed": s, "latency": args.lut, "warmup": 1,
                      "epochs": args.mbv3_epochs, "steps": args.mbv3_steps, "work": args.work} for t in mb_targets for s in seeds for m in METHODS]
    if args.reverse:
        jobs = jobs[::-1]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(one_run, jobs))
    else:
        rows = [one_run(j) for j in jobs]
    print("Command: `" + " ".join(["python", *sys.argv]) + "`")
    if args.nb201:
        print("\n#### NB201 (FPGA latency, HW-NAS-Bench column; CIFAR-10 test accuracy looked up)")
        table("nb201", rows, NB201_TARGETS, "C10 test (NB201 full)")
    if mb_targets:
        print("\n#### mbv3 (measured LUT, 128x128, this CPU; one-shot accuracy at CPU scale)")
        table("mbv3", rows, mb_targets, "one-shot acc (%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
