"""Cost of one bilevel step of every differentiable method relative to DARTS-V1, on the same supernet.

On a shared machine the load changes from minute to minute, so the methods are timed interleaved:
``--rounds`` rounds, each running every method for ``--steps`` bilevel steps (one α update and one
weight update each) on the NB201 supernet of ``benchmarks/differentiable_nb201.py`` (C=8, N=1,
CIFAR-10 at 8x8, batch 64; digits when CIFAR-10 is absent), one process, one torch thread. Each
method's per-round time is divided by DARTS-V1's in the same round; the table gives the median
ratio over rounds and the median seconds per step. The latency methods use the FPGA table
(``fpga``, target 2.5 ms) and need the reference data folder.

    nice -n 5 python benchmarks/differentiable_cost.py --rounds 3 --steps 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from nasforge.data import load_dataset
    from nasforge.oneshot.differentiable import METHODS, DifferentiableSearch
    from nasforge.oneshot.differentiable.search import load_search_data

    have = (DATA / "cifar10" / "train25k.npz").is_file() and (DATA / "nb201" / "latency_ms.csv").is_file()
    ds = (load_search_data("cifar10", n_train=4608, image_size=8, data_dir=str(DATA)) if have
          else load_dataset("digits", seed=0))
    methods = [m for m in METHODS if have or "target" not in METHODS[m].defaults]
    params = {m: {"target": 2.5, "latency": "fpga", "data_dir": str(DATA)} for m in METHODS
              if "target" in METHODS[m].defaults}
    times: dict[str, list[float]] = {m: [] for m in methods}
    for r in range(args.rounds):
        for m in methods:
            run = DifferentiableSearch(ds, m, "nb201", net={"C": 8, "N": 1}, seed=r, epochs=1,
                                       steps_per_epoch=args.steps, batch_size=64, method_params=params.get(m))
            t0 = time.perf_counter()
            run.run()
            times[m].append((time.perf_counter() - t0) / args.steps)
    base = np.array(times["darts"])
    print("Command: `python " + " ".join(sys.argv) + "`  ")
    print(f"NB201 supernet C=8, N=1, {ds.name} {ds.x_train.shape[1:]}, batch 64, {args.rounds} interleaved rounds x "
          f"{args.steps} steps, 1 thread\n")
    print("| method | s/step (median) | × DARTS-V1 (median over rounds) |")
    print("|---|---|---|")
    for m in methods:
        t = np.array(times[m])
        print(f"| {m} | {np.median(t):.3f} | {np.median(t / base):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
