"""Does the embedded default task tell architectures apart? (issue 19)

Trains ``--cells`` random NB201 cells (one seed) on the task ``nasforge search`` runs when it is
given neither a benchmark nor a dataset, and measures the spread of their validation accuracy;
then re-trains the first ``--noise-cells`` of them with ``--seeds - 1`` further training seeds
(same data split) for the seed-to-seed noise of one cell. The default task shows a search at
work when the spread across cells is clearly larger than that noise.

    nice python benchmarks/default_task_spread.py                       # the embedded default
    nice python benchmarks/default_task_spread.py --n-train 0 --cells 20  # the full digits split

One thread (``torch.set_num_threads(1)``), as in every benchmark here.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch


def _stats(values: list[float]) -> tuple[float, float, float]:
    """Mean, standard deviation (n - 1) and standard error."""
    a = np.asarray(values, dtype=float)
    sd = float(a.std(ddof=1)) if len(a) > 1 else math.nan
    return float(a.mean()), sd, sd / math.sqrt(len(a))


def main() -> int:
    from nasforge.estimation.training import TrainingEstimator
    from nasforge.study.task import TRAINING_DEFAULTS, build_task, merge_settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=40, help="random cells for the spread (default 40)")
    ap.add_argument("--noise-cells", type=int, default=8, help="cells re-trained for the noise (default 8)")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds per noise cell (default 3)")
    ap.add_argument("--n-train", type=int, default=None,
                    help="training images (default: the embedded default's; 0: the full digits split)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--C", type=int, default=None)
    ap.add_argument("--N", type=int, default=None)
    ap.add_argument("--sample-seed", type=int, default=0, help="seed of the random cells")
    args = ap.parse_args()
    torch.set_num_threads(1)

    given = {"epochs": args.epochs, "C": args.C, "N": args.N}
    settings = merge_settings({k: v for k, v in given.items() if v is not None}, {}, None)
    if args.n_train is not None:
        settings = dict(settings)
        if args.n_train == 0:
            settings.pop("n_train", None)
        else:
            settings["n_train"] = args.n_train
    task = build_task(settings, None, None)
    est = task.estimator
    print(f"task: {task.description}")
    print("settings: " + ", ".join(f"{k}={settings.get(k)}" for k in ("dataset", *TRAINING_DEFAULTS)))
    rng = np.random.default_rng(args.sample_seed)
    cells, seen = [], set()
    while len(cells) < args.cells:
        a = task.space.sample(rng)
        if a not in seen:
            seen.add(a)
            cells.append(a)

    t0 = time.perf_counter()
    acc = []
    for i, a in enumerate(cells):
        acc.append(est.estimate(a).metrics["valid_acc"])
        print(f"  cell {i:2d}: valid_acc {acc[-1]:.2f}  {task.space.format(a)}", flush=True)
    per_trial = (time.perf_counter() - t0) / len(cells)
    mean, sd, se = _stats(acc)
    s = np.sort(acc)[::-1]
    q75, q25 = np.percentile(acc, [75, 25])
    n_val = len(est.dataset.y_val)
    print(f"\nspread over {len(cells)} random cells (training seed {est.seed}): mean {mean:.2f} ± {se:.2f} (s.e.), "
          f"sd {sd:.2f}, IQR {q75 - q25:.2f}, min {s[-1]:.2f}, max {s[0]:.2f}; top 5: "
          + ", ".join(f"{v:.2f}" for v in s[:5]) + f"; {len(set(np.round(s, 6)))} distinct values "
          f"(validation set {n_val} images: one image = {100 / n_val:.2f} points)")

    per_cell_sd, rows = [], []
    for a, first in zip(cells[:args.noise_cells], acc):
        vals = [first]
        for seed in range(1, args.seeds):
            other = TrainingEstimator(task.space, est.dataset, max_epochs=est.max_epochs, optimizer=est.optimizer,
                                      lr=est.lr, weight_decay=est.weight_decay, batch_size=est.batch_size,
                                      label_smoothing=est.label_smoothing, net=est.net, seed=est.seed + seed,
                                      threads=1)
            vals.append(other.estimate(a).metrics["valid_acc"])
        per_cell_sd.append(float(np.std(vals, ddof=1)))
        rows.append(vals)
        print(f"  noise: {', '.join(f'{v:.2f}' for v in vals)}  {task.space.format(a)}", flush=True)
    pooled = math.sqrt(float(np.mean(np.square(per_cell_sd))))
    # the spread of the cell means among the noise cells, against their noise
    means = [float(np.mean(r)) for r in rows]
    print(f"\nseed-to-seed noise ({args.noise_cells} cells x {args.seeds} training seeds): pooled sd {pooled:.2f}; "
          f"per-cell sd {np.mean(per_cell_sd):.2f} ± {np.std(per_cell_sd, ddof=1) / math.sqrt(len(per_cell_sd)):.2f} "
          f"(mean ± s.e.); sd of the {len(means)} cell means {np.std(means, ddof=1):.2f}")
    print(f"spread / noise: sd across cells {sd:.2f} / pooled seed sd {pooled:.2f} = {sd / pooled:.1f}x")
    chance = 100.0 / est.dataset.num_classes
    learn = [v for v in acc if v > 2 * chance]  # cells with an input-to-output path that learn
    lm, lsd, lse = _stats(learn)
    lq75, lq25 = np.percentile(learn, [75, 25])
    print(f"the {len(learn)} cells that learn (valid_acc > {2 * chance:.0f}; the other {len(acc) - len(learn)} have no "
          f"path from input to output): mean {lm:.2f} ± {lse:.2f}, sd {lsd:.2f}, IQR {lq75 - lq25:.2f}, range "
          f"{min(learn):.2f}..{max(learn):.2f}; sd / noise = {lsd / pooled:.1f}x")
    pairs = [(a, b) for i, a in enumerate(learn) for b in learn[i + 1:]]
    apart = sum(abs(a - b) > 2 * math.sqrt(2) * pooled for a, b in pairs)
    print(f"pairs of learning cells more than 2 noise sd of a difference apart (|a - b| > {2 * math.sqrt(2) * pooled:.2f})"
          f": {apart} of {len(pairs)} ({100 * apart / max(1, len(pairs)):.0f}%)")
    top = s[0] - s[4] if len(s) >= 5 else math.nan
    print(f"best minus 5th best: {top:.2f} points ({top / pooled:.1f} noise sd)")
    print(f"training: {per_trial:.2f} s per cell on 1 thread -> a 40-trial search about {40 * per_trial / 60:.1f} min "
          "(this machine, shared; see the load below)")
    try:
        print(f"load average during the run: {', '.join(f'{v:.2f}' for v in __import__('os').getloadavg())}")
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
