"""Latency lookup table of the mbv3 (HardCoRe-NAS) space, measured on this CPU, and how well it predicts.

Every distinct piece of an mbv3 network (the fixed stem, each stage's first and later blocks in each
of the 12 block configurations, the fixed head: 122 entries at one input size) is timed in isolation:
PyTorch in eval mode under ``inference_mode``, one thread, batch 1, a few warm-up calls, then the
median of ``--repeats`` timed calls. The table is written as CSV (``key``, the configuration, ``ms``)
and as JSON (the same rows plus the settings and the machine). Then ``--archs`` random architectures
are built whole and timed the same way; the table's sum (``MBV3Space.latency_ms``) is compared with
the measured end-to-end latency by Spearman's rank correlation and the mean absolute percentage
error.

The default runs at 128x128 (a reduced resolution; the space's ImageNet default is 224) and takes
about a minute on one core:

    python benchmarks/mbv3_latency_lut.py --input-size 128 --archs 20 --out benchmarks/out

On a shared machine other work only slows calls down, and it comes and goes over seconds, longer
than one median. So the whole measurement (every table entry, then every network) is repeated in
``--rounds`` rounds and each item keeps the least of its per-round medians: the round in which it
was least disturbed. Table entries and whole networks are treated alike. ``--rounds 1`` gives the
plain median.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from nasforge.spaces.macro import MBV3Space


def median_ms(module: torch.nn.Module, x: torch.Tensor, warmup: int, repeats: int,
              flush: torch.Tensor | None = None, statistic: str = "median") -> float:
    """Median (or least, ``statistic="min"``) wall time (ms) of ``module(x)`` over ``repeats`` calls
    after ``warmup`` calls; with ``flush``, that buffer is rewritten before every timed call
    (untimed) to evict the caches."""
    module.eval()
    with torch.inference_mode():
        for _ in range(warmup):
            module(x)
        times = []
        for _ in range(repeats):
            if flush is not None:
                flush.add_(1.0)
            t0 = time.perf_counter()
            module(x)
            times.append((time.perf_counter() - t0) * 1e3)
    return min(times) if statistic == "min" else statistics.median(times)


def measure_round(space: MBV3Space, entries: list[dict[str, Any]], archs: list[Any], x: torch.Tensor,
                  args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """One round: the median latency of every table entry, then of every whole network."""
    torch.manual_seed(0)
    flush = torch.zeros(args.flush_mb * 2**18) if args.flush_mb > 0 else None
    table = []
    for entry in entries:
        module, shape = space.latency_module(entry)
        table.append(median_ms(module, torch.randn(shape), args.warmup, args.repeats, flush, args.statistic))
    whole = [median_ms(space.build(a), x, args.warmup, args.e2e_repeats, flush, args.statistic) for a in archs]
    return table, whole


def write_table(rows: list[dict[str, Any]], out: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"mbv3_lut_r{meta['input_size']}"
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    with csv_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    json_path.write_text(json.dumps({**meta, "entries": rows}, indent=1))
    return csv_path, json_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input-size", type=int, default=128, help="square input resolution (space default 224)")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--archs", type=int, default=20, help="random architectures timed end to end")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=15, help="timed calls per table entry and round")
    p.add_argument("--e2e-repeats", type=int, default=15, help="timed calls per whole network and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds; each item keeps its least round median")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--statistic", choices=("median", "min"), default="median",
                   help="per round: the median of the timed calls, or the least")
    p.add_argument("--flush-mb", type=int, default=0,
                   help="rewrite a buffer of this many MiB before every timed call (cold caches); 0: off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/out", help="folder for the CSV/JSON table")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    space = MBV3Space(input_size=args.input_size, num_classes=args.num_classes)
    t_start = time.perf_counter()
    meta = {
        "input_size": args.input_size, "num_classes": args.num_classes, "threads": args.threads, "batch": 1,
        "warmup": args.warmup, "repeats": args.repeats, "rounds": args.rounds, "flush_mb": args.flush_mb,
        "statistic": f"least over rounds of the {args.statistic} of repeats", "torch": torch.__version__,
        "python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
    }
    rng = np.random.default_rng(args.seed)
    archs = []
    seen = set()
    while len(archs) < args.archs:
        a = space.sample(rng)
        if a not in seen:
            seen.add(a)
            archs.append(a)
    entries = space.latency_entries()
    x = torch.randn(1, 3, args.input_size, args.input_size, generator=torch.Generator().manual_seed(args.seed))
    rounds = [measure_round(space, entries, archs, x, args) for _ in range(args.rounds)]
    table_ms = np.min([r[0] for r in rounds], axis=0)
    measured = np.min([r[1] for r in rounds], axis=0).tolist()
    rows = [{**e, "ms": round(float(ms), 5)} for e, ms in zip(entries, table_ms)]
    csv_path, json_path = write_table(rows, Path(args.out), meta)
    table = {r["key"]: r["ms"] for r in rows}
    predicted = [space.latency_ms(a, table) for a in archs]
    spread = np.max([r[1] for r in rounds], axis=0) / np.array(measured)
    fixed = [(table[space.latency_keys(a)[0]] + table[space.latency_keys(a)[-1]]) / pr for a, pr in zip(archs, predicted)]
    pred, meas = np.array(predicted), np.array(measured)
    rho = float(spearmanr(pred, meas).statistic)
    mape = float(np.mean(np.abs(pred - meas) / meas) * 100)
    bias = float(np.mean((pred - meas) / meas) * 100)
    # one global factor measured / LUT sum, fitted on the other architectures (leave one out): how much
    # of the error is a shared offset (isolated blocks run with their weights hot in cache)
    ratios = meas / pred
    loo = np.array([np.median(np.delete(ratios, i)) for i in range(len(ratios))])
    mape_scaled = float(np.mean(np.abs(pred * loo - meas) / meas) * 100)
    t_total = time.perf_counter() - t_start

    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    print(f"\n### mbv3 latency lookup table vs end-to-end latency (this CPU, {args.threads} thread, batch 1)\n")
    print(f"Command: `{command}`  ")
    print(f"torch {torch.__version__}, {platform.machine()}, input {args.input_size}x{args.input_size}, "
          f"{len(rows)} table entries and {len(archs)} networks, {args.rounds} round(s); {t_total:.0f} s  ")
    print(f"Table: `{csv_path}`, `{json_path}`\n")
    print("| # | architecture | MACs (M) | LUT sum (ms) | measured (ms) | error % |")
    print("|---|---|---|---|---|---|")
    for i, (a, pr, me) in enumerate(zip(archs, predicted, measured)):
        print(f"| {i} | `{a}` | {space.flops(a) / 1e6:.1f} | {pr:.3f} | {me:.3f} | {100 * (pr - me) / me:+.1f} |")
    print()
    print("| statistic | value |")
    print("|---|---|")
    print(f"| architectures | {len(archs)} |")
    print(f"| Spearman rho (LUT sum vs measured) | {rho:.3f} |")
    print(f"| mean absolute % error | {mape:.1f} |")
    print(f"| mean signed % error (LUT - measured) | {bias:+.1f} |")
    print(f"| mean absolute % error after one global factor (leave-one-out median ratio) | {mape_scaled:.1f} |")
    print(f"| measured latency range (ms) | {meas.min():.2f} - {meas.max():.2f} |")
    print(f"| stem + head share of the LUT sum (mean %) | {np.mean(fixed) * 100:.1f} |")
    print(f"| slowest / kept round median, whole networks (median ratio) | {np.median(spread):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
