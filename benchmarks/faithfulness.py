"""Does short real training rank NB201 cells as the benchmark does?

Trains a few NB201 cells of very different published quality on the shared real CIFAR-10
(25k training images; 10% held out for validation; the 10k test set) for a short fixed budget
with crop+flip augmentation, and prints their accuracies beside NB201's 200-epoch ones.

    python benchmarks/faithfulness.py --C 8 --N 1 --epochs 2 --seeds 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from nasforge.data import load_dataset
from nasforge.estimation import load_benchmark
from nasforge.estimation.training import TrainingEstimator

CELLS = {
    "best (NB201 optimum)": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    "resnet-like": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
    "1x1 only": "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|",
    "all avg_pool (poor)": "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--out", default="benchmarks/out")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = load_benchmark("nb201:cifar10")
    data = load_dataset("cifar10", seed=0)
    results: dict[str, list[dict]] = {}
    for seed in range(args.seeds):
        est = TrainingEstimator(table.space, data, max_epochs=args.epochs, net={"C": args.C, "N": args.N},
                                seed=seed, batch_size=128, lr=0.1, threads=args.threads)
        for label, text in CELLS.items():
            m = est.estimate(text)
            results.setdefault(label, []).append(m.metrics)
            print(f"seed {seed} {label:22s} valid {m.metrics['valid_acc']:.2f} test {m.metrics['test_acc']:.2f} "
                  f"({m.metrics['train_seconds']:.0f} s)", flush=True)
    print(f"\nCIFAR-10 (22,500 train / 2,500 valid / 10,000 test), NB201 C={args.C} N={args.N}, {args.epochs} epochs, "
          f"SGD lr 0.1 cosine, batch 128, crop+flip; {args.seeds} seeds (mean ± s.e.)")
    print("| cell | ours: valid acc | ours: test acc | NB201 valid_acc_200 | NB201 test_acc_200_full | seconds |")
    print("|---|---|---|---|---|---|")
    ours, theirs = [], []
    for label, text in CELLS.items():
        rs = results[label]
        v = np.array([r["valid_acc"] for r in rs])
        t = np.array([r["test_acc"] for r in rs])
        s = np.array([r["train_seconds"] for r in rs])
        se = (lambda a: a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else 0.0)
        nb_v = table.query(text, "valid_acc_200")
        nb_t = table.query(text, "test_acc_200_full")
        ours.append(v.mean())
        theirs.append(nb_v)
        print(f"| {label} | {v.mean():.2f} ± {se(v):.2f} | {t.mean():.2f} ± {se(t):.2f} | {nb_v:.2f} | {nb_t:.2f} | "
              f"{s.mean():.0f} |")
    tau = kendalltau(ours, theirs).statistic
    print(f"Kendall tau between our validation accuracy and NB201's over the {len(CELLS)} cells: {tau:.2f}")
    (out / "faithfulness.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
