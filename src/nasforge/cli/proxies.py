"""``nasforge proxies``: score a sample (or all) of a space with zero-cost proxies, resumably,
and, with a benchmark table, report how well each proxy ranks the architectures."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from nasforge.cli.options import parse_top_k
from nasforge.errors import NasforgeError, check_int, check_output_file, check_seed

DEFAULT_PROXIES = "cheap"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("proxies", help="score architectures with zero-cost proxies; correlate with a benchmark",
                       description="Score a random sample (or all) of a space with zero-cost proxies on one "
                                   "minibatch of a dataset. Rows are appended to --out as they are computed; "
                                   "running the same command again skips what is done. With --benchmark, print "
                                   "Spearman rho, Kendall tau and top-k precision of every proxy.")
    p.add_argument("--space", default="nb201", help="search space (default nb201)")
    p.add_argument("--dataset", default="digits",
                   help="digits, cifar10, mnist1d, a .npz file or an image folder (default digits)")
    p.add_argument("--proxies", default=DEFAULT_PROXIES,
                   help="comma-separated proxies, or all / cheap (default cheap: all but zen and grasp)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--n", type=int, default=100, help="random architectures to score (default 100)")
    g.add_argument("--all", action="store_true", help="score every architecture of the space")
    p.add_argument("--seed", type=int, default=0, help="seed of the batch and of the networks' weights (default 0)")
    p.add_argument("--sample-seed", type=int, default=None, help="seed of the architecture sample (default --seed)")
    p.add_argument("--batch-size", type=int, default=128, help="minibatch size (default 128, as NASWOT)")
    p.add_argument("--C", type=int, default=None, help="NB201: channels of the first stage (default 16)")
    p.add_argument("--N", type=int, default=None, help="NB201: cells per stage (default 5)")
    p.add_argument("--out", default=None, help="results CSV (default proxies-<space>-<dataset>-seed<seed>.csv)")
    p.add_argument("--benchmark", default=None, help="table to correlate with, e.g. nb201:cifar10")
    p.add_argument("--metrics", default=None,
                   help="benchmark metrics to correlate with (default: its validation and test metrics)")
    p.add_argument("--top-k", default="10%", help="top-k precision cut(s): counts or percentages (default 10%%)")
    p.add_argument("--ensemble", default=None,
                   help="also report the mean-rank ensemble of these proxies (comma-separated)")
    p.add_argument("--plot-dir", default=None, help="write one score-vs-metric scatter PNG per proxy here")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: best on a shared CPU)")
    p.add_argument("--channels-last", action="store_true", help="channels-last convolutions (faster on many CPUs)")
    p.add_argument("--data-dir", default=None, help="reference data folder (default: $NASFORGE_DATA or ../shared/data)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_proxies)



def cmd_proxies(args: argparse.Namespace) -> int:
    from nasforge.estimation.proxies import ProxyEstimator, ProxyResults, resolve_proxies, sample_archs, score_archs
    from nasforge.estimation.proxies.base import GROUPS, PROXIES
    from nasforge.spaces import get_space

    space = get_space(args.space)
    proxies = resolve_proxies(args.proxies)
    top_k = parse_top_k(args.top_k)
    net = {k: v for k, v in (("C", args.C), ("N", args.N)) if v is not None}
    check_int(args.threads, "--threads", 1)
    check_int(args.batch_size, "--batch-size", 1)
    check_seed(args.seed, "--seed")
    if args.sample_seed is not None:
        check_seed(args.sample_seed, "--sample-seed")
    if not args.all:
        check_int(args.n, "--n", 1)
    for key, value in net.items():
        check_int(value, f"--{key}", 1)
    if args.out is not None:
        check_output_file(args.out, "--out")
    est = ProxyEstimator(space, args.dataset, proxies, batch_size=args.batch_size, seed=args.seed, net=net,
                         data_dir=args.data_dir, channels_last=args.channels_last, threads=args.threads)
    sample_seed = args.seed if args.sample_seed is None else args.sample_seed
    archs = sample_archs(space, None if args.all else args.n, seed=sample_seed)
    label = Path(args.dataset).stem if ("/" in args.dataset or args.dataset.endswith(".npz")) else args.dataset
    out = Path(args.out or f"proxies-{space.name}-{label}-seed{args.seed}.csv")
    groups = ["build"] + [g for g in GROUPS if any(PROXIES[p].group == g for p in proxies)]
    if "gradient" in groups and "forward" in groups:
        groups.remove("forward")  # NASWOT then shares the gradient group's forward
    results = ProxyResults(out, proxies, {**est.settings(), "sample_seed": sample_seed}, groups=groups)
    done_before = sum(space.format(a) in results.done for a in archs)
    print(f"{est!r}")
    print(f"{out}: {done_before} of {len(archs)} architecture(s) already scored")
    t0 = time.perf_counter()
    n_new = score_archs(est, archs, results, progress=not args.quiet)
    if n_new:
        print(f"{n_new} new architecture(s) in {time.perf_counter() - t0:.1f} s")
    rows = [results.done[space.format(a)] for a in archs]
    secs = [r["seconds"] for r in rows]
    print(f"mean cost {sum(secs) / len(secs):.3f} s per architecture ({len(rows)} architectures, "
          f"{args.threads} thread(s))")
    if args.benchmark is not None:
        _report(args, space, archs, rows, proxies, top_k)
    print(f"\nscores: {out.resolve()} (one row per architecture; the same command again reuses them)")
    return 0


def _report(args: argparse.Namespace, space: Any, archs: list[Any], rows: list[dict[str, float]],
            proxies: list[str], top_k: list[float]) -> None:
    import numpy as np

    from nasforge.analysis.correlation import correlation_table, plot_score_vs_metric
    from nasforge.estimation import load_benchmark
    from nasforge.estimation.proxies import PROXIES, RankEnsemble

    bench = load_benchmark(args.benchmark, data_dir=args.data_dir)
    if bench.space.name != space.name:
        raise NasforgeError(f"benchmark {bench.name} is on space {bench.space.name!r}, the scores on {space.name!r}")
    metrics = ([m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics
               else [m for m in (bench.default_metric, bench.report_metric) if m])
    available = bench.metrics_at(None)
    for m in metrics:
        if m not in available:
            raise NasforgeError(f"unknown metric {m!r} for {bench.name}; available: {', '.join(available)}")
    scores: dict[str, np.ndarray] = {p: np.array([r[p] for r in rows]) for p in proxies}
    if args.ensemble:
        ens = RankEnsemble(args.ensemble)
        missing = [p for p in ens.proxies if p not in scores]
        if missing:
            raise NasforgeError(f"--ensemble members {', '.join(missing)} were not scored; add them to --proxies")
        scores["ensemble"] = ens.score(scores)
    directions = {p: PROXIES[p].higher_is_better if p in PROXIES else True for p in scores}
    for m in metrics:
        target = np.array([bench.query(a, m) for a in archs])
        table = correlation_table(scores, target, directions, top_k=top_k)
        print(f"\n{bench.name}: {m} vs proxy scores, {len(archs)} architectures "
              "(proxies oriented by their declared direction)")
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
        if args.plot_dir and m == metrics[0]:
            d = Path(args.plot_dir)
            d.mkdir(parents=True, exist_ok=True)
            for p, v in scores.items():
                plot_score_vs_metric(v, target, str(d / f"{p}_vs_{m}.png"), xlabel=p, ylabel=m,
                                     title=f"{bench.name}")
            print(f"scatter plots written to {d}/")

