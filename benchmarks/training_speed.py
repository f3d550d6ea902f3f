"""Training throughput of TrainingEstimator vs a minimal hand-written PyTorch loop.

Same network (NB201 cell, built by the same space with the same seed), same data (CIFAR-10
from the reference folder, or digits with --dataset digits), same batch size, optimiser and
threads; no augmentation in either (the estimator's crop+flip is measured separately). Each
side trains the same number of epochs; the two are interleaved and repeated. On a shared machine
the best (highest) images/second of each side is the robust statistic (interference only ever
slows a run down), so the ratio of the best runs is reported, with the medians beside it.

    python benchmarks/training_speed.py --dataset cifar10 --n-train 5000 --C 16 --N 2 --epochs 1 --repeats 7
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

from nasforge.data import load_dataset
from nasforge.estimation.training import TrainingEstimator
from nasforge.spaces import NB201Space

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def hand_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, bs: int, lr: float) -> float:
    """The minimal loop: shuffle, slice, forward, loss, backward, step; cosine LR per step."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    total = epochs * math.ceil(len(y) / bs)
    step = 0
    gen = torch.Generator().manual_seed(0)
    model.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), bs):
            idx = perm[i: i + bs]
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--N", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    kw = {"n_train": args.n_train} if args.dataset == "cifar10" else {}
    data = load_dataset(args.dataset, **kw)
    space = NB201Space()
    arch = space.parse(ARCH)
    n = len(data.y_train)
    ours, theirs, ours_aug = [], [], []
    for r in range(args.repeats):
        est = TrainingEstimator(space, data, max_epochs=args.epochs, net={"C": args.C, "N": args.N},
                                batch_size=args.batch_size, augment=None, seed=r, threads=args.threads)
        m = est.estimate(arch)
        ours.append(n * args.epochs / m.metrics["train_seconds"])
        model = est.build(arch)
        x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
        theirs.append(n * args.epochs / hand_loop(model, x, y, args.epochs, args.batch_size, 0.1))
        if data.augment == "crop_flip":
            est = TrainingEstimator(space, data, max_epochs=args.epochs, net={"C": args.C, "N": args.N},
                                    batch_size=args.batch_size, augment="crop_flip", seed=r, threads=args.threads)
            ours_aug.append(n * args.epochs / est.estimate(arch).metrics["train_seconds"])
    a, b = max(ours), max(theirs)
    am, bm = statistics.median(ours), statistics.median(theirs)
    print(f"{args.dataset} ({n} training images), NB201 C={args.C} N={args.N}, batch {args.batch_size}, "
          f"{args.threads} threads, {args.epochs} epoch(s), {args.repeats} repeats")
    print(f"  nasforge TrainingEstimator: best {a:.1f} images/s (runs: {', '.join(f'{v:.1f}' for v in ours)})")
    print(f"  minimal hand-written loop:  best {b:.1f} images/s (runs: {', '.join(f'{v:.1f}' for v in theirs)})")
    print(f"  ratio of best runs: {a / b:.3f} (ratio of medians: {am / bm:.3f})")
    if ours_aug:
        print(f"  with crop+flip augmentation: best {max(ours_aug):.1f} images/s")


if __name__ == "__main__":
    main()
