"""Nero against SGD and AdamW with no learning-rate tuning (issue 15).

Each optimiser trains the same random NB201 cells with its default learning rate (SGD 0.1 with
Nesterov momentum, AdamW 1e-3, Nero 0.01 — the values the papers recommend, never tuned here) and
the same cosine schedule, on two tasks:

* ``digits``: the embedded default task of ``nasforge search`` (digits, 200 training images,
  C=8, N=1, 10 epochs);
* ``cifar10``: real CIFAR-10 at CPU scale (2,000 training images of which 200 validate, C=8,
  N=1, 10 epochs, crop+flip), tested on the 10,000 test images.

For each training seed the test accuracy is averaged over the cells; the table gives the mean ±
standard error of that average over seeds, and how often each optimiser is best per (cell, seed).
Results are cached per run under ``benchmarks/out/nero/`` so a killed run continues.

    nice -n 5 python benchmarks/nero_optim.py --task digits --cells 8 --seeds 3
    nice -n 5 python benchmarks/nero_optim.py --task cifar10 --cells 3 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

OPTS = ("sgd", "adamw", "nero")
OUT = Path(__file__).resolve().parent / "out" / "nero"


def _settings(task: str, opt: str, epochs: int) -> dict:
    if task == "digits":
        return {"optimizer": opt, "epochs": epochs}
    return {"dataset": "cifar10", "n_train": 2000, "optimizer": opt, "epochs": epochs}


def main() -> int:
    from nasforge.study.task import build_task, merge_settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=("digits", "cifar10"), default="digits")
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)

    results: dict[tuple[str, int, int], dict] = {}
    cells = None
    for opt in OPTS:
        for seed in range(args.seeds):
            settings = dict(merge_settings(_settings(args.task, opt, args.epochs), {}, None))
            settings["seed"] = seed
            task = build_task(settings, args.data_dir, None)
            torch.set_num_threads(1)  # the estimator picks the free cores; benchmarks use one
            if cells is None:
                rng = np.random.default_rng(0)
                cells = []
                while len(cells) < args.cells:
                    a = task.space.sample(rng)
                    if a not in cells:
                        cells.append(a)
                print(f"task: {task.description}; torch threads {torch.get_num_threads()}")
            est = task.estimator
            for i, a in enumerate(cells):
                f = OUT / f"{args.task}-e{args.epochs}-{opt}-s{seed}-{task.space.format(a)}.json"
                if f.is_file():
                    r = json.loads(f.read_text())
                else:
                    t0 = time.perf_counter()
                    m = est.estimate(a).metrics
                    r = {"test_acc": m["test_acc"], "valid_acc": m["valid_acc"], "train_loss": m.get("train_loss"),
                         "seconds": time.perf_counter() - t0}
                    f.write_text(json.dumps(r))
                results[(opt, seed, i)] = r
                print(f"  {opt:5s} seed {seed} cell {i}: test {r['test_acc']:.2f}  train loss "
                      f"{r['train_loss']:.3f}  ({r['seconds']:.1f} s)", flush=True)

    assert cells is not None
    print(f"\n{args.task}: test accuracy (%) averaged over {len(cells)} cells, mean ± s.e. over {args.seeds} seeds")
    print("| optimiser (default lr) | test acc | best of 3 (cell, seed) | mean train loss |")
    print("|---|---|---|---|")
    wins = {o: 0 for o in OPTS}
    for seed in range(args.seeds):
        for i in range(len(cells)):
            accs = {o: results[(o, seed, i)]["test_acc"] for o in OPTS}
            wins[max(accs, key=accs.get)] += 1
    lr = {"sgd": "0.1", "adamw": "1e-3", "nero": "0.01"}
    for o in OPTS:
        per_seed = [np.mean([results[(o, s, i)]["test_acc"] for i in range(len(cells))]) for s in range(args.seeds)]
        mean = float(np.mean(per_seed))
        se = float(np.std(per_seed, ddof=1)) / math.sqrt(len(per_seed)) if len(per_seed) > 1 else math.nan
        tl = float(np.mean([results[(o, s, i)]["train_loss"] for s in range(args.seeds) for i in range(len(cells))]))
        print(f"| {o} ({lr[o]}) | {mean:.2f} ± {se:.2f} | {wins[o]}/{args.seeds * len(cells)} | {tl:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
