"""Real training with several workers: wall-clock of the same search with 1 and with W workers.

Each run is the command a user types, `nasforge search --dataset cifar10 ...`, into a fresh SQLite
file: random search (so both runs train exactly the same architectures), NB201 cells, real
CIFAR-10 images. With W workers the study runs a process pool of W processes with
cores // W PyTorch threads each, so the cores are never oversubscribed; one worker trains in this
process with every core.

    python benchmarks/parallel_training.py --workers 1,2 --budget 8
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa


def run(workers: int, args: argparse.Namespace, folder: Path) -> tuple[float, list[str]]:
    url = f"sqlite:///{folder / f'w{workers}.db'}"
    cmd = [sys.executable, "-m", "nasforge", "search", "--dataset", "cifar10", "--n-train", str(args.n_train),
           "--C", str(args.C), "--N", str(args.N), "--epochs", str(args.epochs), "--strategy", "random",
           "--budget", str(args.budget), "--seed", str(args.seed), "--storage", url, "--quiet",
           "--workdir", str(folder / f"runs{workers}"), "--study", "train"]
    if workers > 1:
        cmd += ["--workers", str(workers), "--executor", "process"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    eng = sa.create_engine(url)
    with eng.connect() as c:
        archs = [r[0] for r in c.execute(sa.text(
            "select arch from nasforge_trials where state='complete' order by arch"))]
    eng.dispose()
    return seconds, archs


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workers", default="1,2")
    p.add_argument("--budget", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--n-train", type=int, default=2500)
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    print(f"{os.cpu_count()} cores; CIFAR-10 ({args.n_train} training images), NB201 C={args.C} N={args.N}, "
          f"{args.epochs} epochs, random search, {args.budget} trials, seed {args.seed}")
    print("\n| workers | wall-clock (s) | speed-up vs 1 | same architectures as 1 worker |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        base: tuple[float, list[str]] | None = None
        for w in counts:
            seconds, archs = run(w, args, Path(tmp))
            if base is None:
                base = (seconds, archs)
            print(f"| {w} | {seconds:.1f} | {base[0] / seconds:.2f}x | {'yes' if archs == base[1] else 'NO'} |",
                  flush=True)


if __name__ == "__main__":
    main()
