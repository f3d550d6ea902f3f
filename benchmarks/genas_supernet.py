"""GeNAS on supernet weights: does the flatness of inherited weights rank NB201 cells better than
the supernet's accuracy, alone or combined with it? (issue 15)

Protocol (the CPU scale of ``benchmarks/supernet_nb201.py``, docs/benchmarks.md "Weight-sharing
supernets on NB201"):

- supernet: NB201, C=8, N=1, trained by the library's run protocol
  (:class:`nasforge.oneshot.run.SupernetRun`, what ``nasforge supernet train`` runs) with
  ``--sampler`` (default ``uniform``: SPOS, the supernet GeNAS trains) for ``--steps`` path passes
  on 10,000 CIFAR-10 images at 16x16 (2,000 more held back), one run per ``--seeds`` seed;
- scoring: the same ``--n-archs`` random cells for every seed (``sample_archs(n, 0)``), each with
  BatchNorm recalibrated on 4 x 128 training images, then on the first ``--n-eval`` held-back
  images: accuracy, loss, and GeNAS's flatness (every supernet weight perturbed by Gaussian noise
  at the reference search's levels 0.001, 0.003, 0.006, cumulatively; the loss at each level;
  ``flatness = 1 / (P + 1e-5)``), i.e. ``SupernetRun.rank(..., flatness=True)``, the code behind
  ``nasforge supernet rank --score flatness``;
- criteria: supernet accuracy, flatness, and GeNAS's combination ``acc/100 + gamma * flatness /
  0.001`` for each ``--gammas`` value (the reference code's ``acc + wlm_weight / stds[0] * wlm``);
  the negated held-back loss is shown as a reference;
- truth: NB201 CIFAR-10 ``test_acc_200`` (200 epochs, 32x32), read for reporting only; each
  criterion's "search" is its top-1 among the scored cells (selection by the supernet only).

Results are cached per seed under ``--out`` (the scores CSV grows row by row inside each run
folder and is reused), so the command resumes. ``--report`` prints the tables from what is there.

    nice -n 10 python benchmarks/genas_supernet.py --seeds 0,1,2
    python benchmarks/genas_supernet.py --report
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

#: GeNAS reports its search on the DARTS space (ImageNet transfer); printed beside ours
PAPER = ("GeNAS (IJCAI 2023), DARTS space searched on CIFAR-10, ImageNet top-1 of the found cell: by accuracy 75.3, "
         "by flatness 76.0, by accuracy + flatness 75.7, by angle 75.7, by angle + flatness 76.1 (reference release)")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--sampler", default="uniform", help="supernet sampler (default uniform = SPOS)")
    p.add_argument("--steps", type=int, default=3000, help="path passes (default 3000)")
    p.add_argument("--n-archs", type=int, default=200)
    p.add_argument("--n-train", type=int, default=12000)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--n-eval", type=int, default=1000)
    p.add_argument("--stds", default="0.001,0.003,0.006")
    p.add_argument("--gammas", default="0.25,1,4", help="weights of flatness in the combination")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="benchmarks/out/genas_supernet")
    p.add_argument("--report", action="store_true")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args()


def settings(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The run settings of ``benchmarks/supernet_nb201.py`` for one seed."""
    return {"space": "nb201", "dataset": "cifar10", "n_train": args.n_train, "image_size": args.size,
            "data_seed": 0, "net": {"C": 8, "N": 1}, "steps": args.steps, "batch_size": 64, "lr": 0.05,
            "seed": seed, "sampler": args.sampler, "split": "none"}


def run_seed(seed: int, args: argparse.Namespace, out: Path) -> None:
    import torch

    from nasforge.oneshot.run import SupernetRun

    f = out / f"seed{seed}.json"
    if f.is_file():
        return
    torch.set_num_threads(1)
    stds = [float(s) for s in args.stds.split(",")]
    run = SupernetRun(out / f"seed{seed}", data_dir=args.data_dir, **settings(seed, args))
    t0 = time.perf_counter()
    tr = run.train(progress=False, log=None if args.quiet else print, checkpoint_every=250)
    t1 = time.perf_counter()
    res = run.rank(n=args.n_archs, sample_seed=0, n_eval=args.n_eval, flatness=True, stds=stds)
    info = {"seed": seed, "archs": [str(a) for a in res.archs], "acc": res.acc.tolist(), "loss": res.loss.tolist(),
            "flatness": res.flatness.tolist(), "stds": stds, "seconds_per_cell": float(res.seconds.mean()),
            "train_seconds": tr.train_seconds, "wall_seconds": time.perf_counter() - t0,
            "rank_seconds": time.perf_counter() - t1}
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, f)
    print(f"seed {seed}: done in {info['wall_seconds']:.0f} s ({info['seconds_per_cell']:.2f} s a cell)", flush=True)


def _ms(v: list[float], fmt: str = "{:.3f}") -> str:
    a = np.asarray(v, dtype=float)
    if len(a) < 2:
        return fmt.format(a.mean())
    return f"{fmt.format(a.mean())} ± {fmt.format(a.std(ddof=1) / math.sqrt(len(a)))}"


def report(args: argparse.Namespace, out: Path) -> None:
    from nasforge.analysis.correlation import kendall_tau, spearman, top_k_precision
    from nasforge.estimation import load_benchmark

    runs = [json.loads(f.read_text()) for f in sorted(out.glob("seed*.json"))]
    if not runs:
        print(f"no results under {out}")
        return
    bench = load_benchmark("nb201:cifar10", data_dir=args.data_dir)
    space = bench.space
    gammas = [float(g) for g in args.gammas.split(",")]
    crit: dict[str, Any] = {"supernet accuracy": lambda r: np.array(r["acc"]),
                            "GeNAS flatness": lambda r: np.array(r["flatness"])}
    for g in gammas:
        crit[f"accuracy + flatness (γ = {g:g})"] = (
            lambda r, g=g: np.array(r["acc"]) / 100 + g * np.array(r["flatness"]) / r["stds"][0])
    crit["*negated held-back loss (reference)*"] = lambda r: -np.array(r["loss"])
    truth = {}
    for r in runs:
        key = tuple(r["archs"])
        if key not in truth:
            truth[key] = (np.array([bench.query(space.parse(a), "test_acc_200") for a in r["archs"]]),
                          np.array([bench.query(space.parse(a), "valid_acc_200") for a in r["archs"]]))
    seeds = [r["seed"] for r in runs]
    print(f"{len(runs)} supernet seed(s) {seeds}; {len(runs[0]['archs'])} cells; sampler {args.sampler}; "
          f"noise levels {runs[0]['stds']}; mean ± s.e. over seeds\n")
    print("| criterion | Kendall τ (test_acc_200) | Spearman ρ (test_acc_200) | Kendall τ (valid_acc_200) | "
          "top-10 % precision | test_acc_200 of its top-1 pick |")
    print("|---|---|---|---|---|---|")
    for name, fn in crit.items():
        taus, rhos, vtaus, tops, picks = [], [], [], [], []
        for r in runs:
            t, v = truth[tuple(r["archs"])]
            s = fn(r)
            taus.append(kendall_tau(s, t))
            rhos.append(spearman(s, t))
            vtaus.append(kendall_tau(s, v))
            tops.append(top_k_precision(s, t, 0.1))
            picks.append(float(t[int(np.argmax(s))]))
        print(f"| {name} | {_ms(taus)} | {_ms(rhos)} | {_ms(vtaus)} | {_ms(tops, '{:.2f}')} | "
              f"{_ms(picks, '{:.2f}')} |")
    t0 = truth[tuple(runs[0]["archs"])][0]
    print(f"\nbest of the sample: {t0.max():.2f}; sample mean {t0.mean():.2f}")
    rho_fl = [spearman(np.array(r["flatness"]), -np.array(r["loss"])) for r in runs]
    rho_fa = [spearman(np.array(r["flatness"]), np.array(r["acc"])) for r in runs]
    print(f"Spearman ρ between flatness and the negated held-back loss: {_ms(rho_fl)}; "
          f"between flatness and supernet accuracy: {_ms(rho_fa)}")
    share = []
    for r in runs:
        fl = np.array(r["flatness"])
        share.append(float(np.mean(np.array(r["acc"]) / 100 / (np.array(r["acc"]) / 100 + fl / r["stds"][0]))))
    print(f"share of accuracy in the γ = 1 combination (mean over cells): {_ms(share, '{:.2f}')}")
    print(f"seconds per cell (BN recalibration, accuracy and flatness): "
          f"{_ms([r['seconds_per_cell'] for r in runs], '{:.2f}')}; "
          f"training {_ms([r['train_seconds'] for r in runs], '{:.0f}')} s per supernet")
    print(f"\npaper: {PAPER}")


def main() -> None:
    args = parse()
    out = Path(args.out)
    if not args.report:
        out.mkdir(parents=True, exist_ok=True)
        proto = {k: getattr(args, k) for k in ("sampler", "steps", "n_archs", "n_train", "size", "n_eval", "stds")}
        pf = out / "protocol.json"
        if pf.is_file() and json.loads(pf.read_text()) != proto:
            raise SystemExit(f"{out} holds results of another protocol ({pf}); use another --out")
        pf.write_text(json.dumps(proto, indent=1))
        for s in [int(x) for x in args.seeds.split(",")]:
            run_seed(s, args, out)
    report(args, out)


if __name__ == "__main__":
    main()
