"""Differentiable NAS on NB201 at CPU scale: DARTS-V1/V2, GDAS, DrNAS, Λ-DARTS, iDARTS, transfer-DARTS.

Every method searches the NB201 supernet on real CIFAR-10 images (``../shared/data/cifar10``:
``--n-train`` images of the 25k training set, half for the weights and half for α, average-pooled
to ``--image-size``) with the same budget: ``--epochs`` epochs of ``--steps`` bilevel steps (one
α update and one weight update each), batch 64, the DARTS optimiser defaults. The final genotype
of each run is looked up in the NB201 tables: ``valid`` columns are what a search may look at,
``test`` columns are reported only (NB201 protocol: CIFAR-10 ``test_acc_full``, 200 epochs on 50k
images). Printed beside the papers' full-scale NB201 CIFAR-10 test accuracies. Also: the skip
connection count of the derived cell per epoch (the DARTS collapse), seconds per step relative to
DARTS-V1.

Runs are independent processes (``--jobs``), one torch thread each, checkpointed in ``--work``
(a re-run resumes). Results: ``--out`` (JSON) and a Markdown table on stdout.

    nice -n 10 python benchmarks/differentiable_nb201.py --seeds 0,1,2 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
METHODS = ["darts", "darts2", "gdas", "drnas", "lambda-darts", "idarts", "transfer-darts"]
LABELS = {"darts": "DARTS-V1", "darts2": "DARTS-V2", "gdas": "GDAS", "drnas": "DrNAS", "lambda-darts": "Λ-DARTS",
          "idarts": "iDARTS", "transfer-darts": "transfer-DARTS"}
#: the papers' NB201 CIFAR-10 test accuracy (full scale: C=16, N=5, 32x32, 50 epochs of search)
PAPER = {"darts": "54.30", "darts2": "54.30", "gdas": "93.51", "drnas": "94.36", "lambda-darts": "94.36",
         "idarts": "≈93.6", "transfer-darts": "not retrieved"}


def one_run(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from nasforge.oneshot.differentiable.search import DifferentiableSearch, load_search_data, lookup_nb201

    ds = load_search_data("cifar10", n_train=job["n_train"], image_size=job["image_size"], data_dir=str(DATA))
    ck = Path(job["work"]) / f"{job['method']}-s{job['seed']}.ckpt"
    net = {"C": job["C"], "N": job["N"], **({"partial": job["partial"]} if job.get("partial", 1) > 1 else {})}
    run = DifferentiableSearch(ds, job["method"], "nb201", net=net, seed=job["seed"],
                               method_params=job.get("params"),
                               epochs=job["epochs"], steps_per_epoch=job["steps"], batch_size=64, checkpoint=ck,
                               warmup_epochs=job.get("warmup", 0), **job.get("settings", {}))
    init = DifferentiableSearch(ds, job["method"], "nb201", net=net, seed=job["seed"],
                                epochs=job["epochs"], steps_per_epoch=job["steps"], batch_size=64)
    init_geno = init.layout.space.format(init.layout.arch(init.current()[0]))  # α at initialisation: no search
    res = run.run()
    look = lookup_nb201(res.genotype, data_dir=str(DATA))
    secs = [h["seconds"] / job["steps"] for h in res.history if not h.get("warmup")]
    return {**job, "genotype": res.genotype, "skips": [h["skip_count"] for h in res.history],
            "sec_per_step": float(np.median(secs)), "nb201": look, "init_genotype": init_geno,
            "init_nb201": lookup_nb201(init_geno, data_dir=str(DATA)),
            "layer_corr": [h.get("layer_corr") for h in res.history]}


def mean_se(v: list[float]) -> str:
    a = np.asarray(v, dtype=float)
    if len(a) < 2:
        return f"{a.mean():.2f}"
    return f"{a.mean():.2f} ± {a.std(ddof=1) / math.sqrt(len(a)):.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=36, help="bilevel steps per epoch")
    ap.add_argument("--warmup", type=int, default=0,
                    help="first epochs train the weights only (α frozen); DrNAS's NB201 search warms up 10 of 50")
    ap.add_argument("--params", default=None,
                    help='method settings as JSON, e.g. \'{"drnas": {"reg": "l2", "keep": 3}}\' (default: the library\'s)')
    ap.add_argument("--settings", default=None,
                    help='JSON of search settings for every method, e.g. {"arch_lr": 0.003} (others: the defaults)')
    ap.add_argument("--n-train", type=int, default=4608, help="CIFAR-10 images (half weights, half α)")
    ap.add_argument("--image-size", type=int, default=8)
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=1)
    ap.add_argument("--partial", type=int, default=1,
                    help="partial channels: C/k channels through the operations (DrNAS's NB201 search: k = 4)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", default="/tmp/nasforge-differentiable-nb201")
    ap.add_argument("--out", default="/tmp/nasforge-differentiable-nb201.json")
    args = ap.parse_args()
    if not (DATA / "cifar10" / "train25k.npz").is_file() or not (DATA / "nb201" / "cifar10.csv").is_file():
        print(f"skipped: the reference data (CIFAR-10 images and NB201 tables) is not in {DATA}")
        return 0
    os.makedirs(args.work, exist_ok=True)
    methods = [m for m in args.methods.split(",") if m]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    mparams = json.loads(args.params) if args.params else {}
    settings = json.loads(args.settings) if args.settings else {}
    # the costly methods first, so the two workers finish together
    cost = {"idarts": 5, "transfer-darts": 4, "darts2": 3, "lambda-darts": 1.2, "drnas": 1.1, "darts": 1, "gdas": 0.5}
    jobs = [{"method": m, "seed": s, "epochs": args.epochs, "steps": args.steps, "n_train": args.n_train,
             "image_size": args.image_size, "C": args.C, "N": args.N, "work": args.work,
             **({"partial": args.partial} if args.partial > 1 else {}),
             **({"warmup": args.warmup} if args.warmup else {}),
             **({"params": mparams[m]} if m in mparams else {}),
             **({"settings": settings} if settings else {})}
            for m in sorted(methods, key=lambda m: -cost.get(m, 1)) for s in seeds]
    t0 = time.time()
    results = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for r in pool.map(one_run, jobs):
            results.append(r)
            print(f"[{time.time() - t0:7.0f}s] {r['method']} seed {r['seed']}: skips {r['skips']} "
                  f"C10 test {r['nb201']['cifar10/test_acc_full']:.2f} {r['genotype']}", file=sys.stderr, flush=True)
            Path(args.out).write_text(json.dumps(results, indent=1))
    base = np.median([r["sec_per_step"] for r in results if r["method"] == "darts"]) if "darts" in methods else None
    print(f"NB201 supernet C={args.C} N={args.N}{f' (partial channels 1/{args.partial})' if args.partial > 1 else ''}, "
          f"CIFAR-10 {args.n_train} images ({args.n_train // 2} weights / "
          f"{args.n_train // 2} α) at {args.image_size}x{args.image_size}, {args.epochs} epochs x {args.steps} steps"
          f"{f' (the first {args.warmup} epochs weights only)' if args.warmup else ''}, "
          f"batch 64, seeds {args.seeds}\n")
    if mparams:
        print(f"method settings (others: the library defaults): {json.dumps(mparams)}\n")
    if settings:
        print(f"search settings (others: the defaults): {json.dumps(settings)}\n")
    print("| method | skips (epoch 1 → last) | C10 valid | C10 test (NB201 full) | C100 test | paper C10 test "
          "| s/step (× DARTS-V1) |")
    print("|---|---|---|---|---|---|---|")
    for m in methods:
        rs = [r for r in results if r["method"] == m]
        if not rs:
            continue
        s1 = np.mean([r["skips"][r.get("warmup", 0)] for r in rs])
        sl = np.mean([r["skips"][-1] for r in rs])
        sps = float(np.median([r["sec_per_step"] for r in rs]))
        rel = f" ({sps / base:.1f}×)" if base else ""
        print(f"| {LABELS.get(m, m)} | {s1:.1f} → {sl:.1f} | {mean_se([r['nb201']['cifar10/valid_acc'] for r in rs])} "
              f"| {mean_se([r['nb201']['cifar10/test_acc_full'] for r in rs])} "
              f"| {mean_se([r['nb201']['cifar100/test_acc'] for r in rs])} | {PAPER.get(m, '')} | {sps:.2f}{rel} |")
    inits = {(r["seed"], r["method"]): r["init_nb201"] for r in results}
    print(f"| α at initialisation (no search; {len(inits)} draws) | | "
          f"{mean_se([v['cifar10/valid_acc'] for v in inits.values()])} "
          f"| {mean_se([v['cifar10/test_acc_full'] for v in inits.values()])} "
          f"| {mean_se([v['cifar100/test_acc'] for v in inits.values()])} | | |")
    print("\ngenotypes:")
    for r in results:
        print(f"  {r['method']} seed {r['seed']}: {r['genotype']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
