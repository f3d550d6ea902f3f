"""``nasforge supernet train|rank|search``: weight-sharing supernets from the command line.

A thin face over :mod:`nasforge.oneshot.run`: a *run folder* holds one supernet (its settings,
checkpoints and, once training is complete, ``final.pt``). Running the same ``train`` command
again resumes where it stopped; ``rank`` and ``search`` read the finished run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from nasforge.cli.options import finite_float, parse_key_values, parse_top_k, positive_int
from nasforge.errors import NasforgeError

SPLIT_CHOICES = ("none", "fewshot", "lid", "gradient")
SCORE_CHOICES = ("acc", "flatness", "acc+flatness")


def _stds(text: str) -> list[float]:
    from nasforge.estimation.flatness import check_stds

    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise NasforgeError(f"bad --stds {text!r}: expected comma-separated numbers, e.g. 0.001,0.003,0.006") from None
    try:
        return check_stds(values)
    except NasforgeError:
        raise NasforgeError(f"bad --stds {text!r}: expected positive, strictly increasing standard deviations") from None


def _flat_weight(v: float) -> float:
    if not v >= 0:
        raise NasforgeError(f"bad --flat-weight {v!r}: expected a number >= 0")
    return float(v)


def add_parser(sub: Any) -> None:
    """Add ``supernet`` with its ``train``, ``rank`` and ``search`` sub-commands."""
    sp = sub.add_parser("supernet", help="train weight-sharing supernets; rank or search with inherited weights",
                        description="One-shot NAS on a space's supernet (nb201, darts, macro): train a supernet "
                                    "(SPOS, FairNAS, PA&DA samplers; few-shot, NAS-LID or gradient-matching splits), "
                                    "rank architectures against a benchmark table, or search with a strategy using "
                                    "inherited weights.")
    ssub = sp.add_subparsers(dest="supernet_command", metavar="{train,rank,search}", parser_class=type(sp))
    ssub.required = True

    def run_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--run", required=True, help="run folder (settings, checkpoints, final supernet)")
        p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: best on a shared CPU)")
        p.add_argument("--data-dir", default=None, help="reference data folder (default: $NASFORGE_DATA or ../shared/data)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    t = ssub.add_parser("train", help="train (or resume) a supernet",
                        description="Train a supernet for a fixed budget of path passes (one forward/backward of "
                                    "one path on one batch). Re-run the same command to resume.")
    run_arg(t)
    t.add_argument("--space", default=None,
                   help="space of the supernet: nb201, darts or macro (default nb201); each has small default "
                        "network settings for a CPU (nb201 C=8 N=1, darts C=4 layers=5, macro stem 8 head 64)")
    t.add_argument("--dataset", default=None, help="digits, cifar10, a .npz file or an image folder (default digits)")
    t.add_argument("--n-train", dest="n_train", type=int, default=None,
                   help="cifar10: images to load (5/6 train, 1/6 held back for ranking)")
    t.add_argument("--image-size", dest="image_size", type=int, default=None,
                   help="average-pool images to this side (e.g. 16 for CIFAR-10 on a CPU)")
    t.add_argument("--data-seed", dest="data_seed", type=int, default=None,
                   help="seed of the train/held-back split (default 0, whatever --seed)")
    t.add_argument("--C", type=int, default=None, help="nb201, darts: channels of the first stage")
    t.add_argument("--N", type=int, default=None, help="nb201: cells per stage")
    t.add_argument("--layers", type=int, default=None, help="darts: cells")
    t.add_argument("--net", action="append", metavar="KEY=VALUE",
                   help="another network setting of the space's supernet, e.g. stem_channels=16 (macro)")
    t.add_argument("--sampler", default=None, help="uniform (SPOS), fairnas, pada, pada-path, pada-data (default uniform)")
    t.add_argument("--steps", type=int, default=None, help="budget in path passes, splits included (default 2000)")
    t.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="default 64")
    t.add_argument("--lr", type=finite_float, default=None, help="peak learning rate, cosine schedule (default 0.05)")
    t.add_argument("--weight-decay", dest="weight_decay", type=finite_float, default=None, help="default 5e-4")
    t.add_argument("--seed", type=int, default=None, help="initial weights, paths, data order, splits (default 0)")
    t.add_argument("--split", default=None, choices=SPLIT_CHOICES,
                   help="few-shot splitting after the root supernet: fewshot (one sub-supernet per op of one edge), "
                        "lid (NAS-LID), gradient (gradient matching); default none")
    t.add_argument("--levels", type=int, default=None, help="lid/gradient: 2-way split levels, 1 or 2 (default 1)")
    t.add_argument("--split-edge", dest="split_edge", type=int, default=None,
                   help="edge to split (an index of the space's supernet edges); default: fewshot the first edge, "
                        "lid/gradient choose")
    t.add_argument("--root-fraction", dest="root_fraction", type=finite_float, default=None,
                   help="share of the budget spent on the root supernet before splitting (default 0.5)")
    t.add_argument("--checkpoint-every", dest="checkpoint_every", type=int, default=200,
                   help="steps between checkpoints (default 200)")
    t.set_defaults(func=cmd_train)

    r = ssub.add_parser("rank", help="score random architectures with inherited weights; correlate with a benchmark",
                        description="Score a fixed random sample of architectures (BatchNorm recalibrated per "
                                    "architecture, accuracy on held-back images). Rows are appended to --out as they "
                                    "are computed. With --benchmark, print Kendall tau, Spearman rho, top-k precision "
                                    "and the top-1 pick. --score flatness or acc+flatness also measures GeNAS's "
                                    "flatness of the inherited weights (weights perturbed by Gaussian noise, held-back "
                                    "loss read at each level) and ranks by all three criteria.")
    run_arg(r)
    r.add_argument("--n", type=int, default=200, help="random architectures to score (default 200)")
    r.add_argument("--sample-seed", dest="sample_seed", type=int, default=0, help="seed of the sample (default 0)")
    r.add_argument("--benchmark", default=None, help="table to correlate with, e.g. nb201:cifar10")
    r.add_argument("--metrics", default="test_acc_200,valid_acc_200",
                   help="benchmark columns to correlate with (default test_acc_200,valid_acc_200)")
    r.add_argument("--top-k", dest="top_k", default="10%", help="top-k precision cut(s): counts or percentages")
    eval_args(r)
    r.add_argument("--out", default=None, help="scores CSV (default RUN/rank-n<N>-seed<S>.csv, -flat.csv with flatness)")
    r.set_defaults(func=cmd_rank)

    s = ssub.add_parser("search", help="search architectures with a strategy, scored by the supernet",
                        description="Run a search strategy whose estimator is the trained supernet (inherited "
                                    "weights, BatchNorm recalibrated per architecture), maximising the path's "
                                    "held-back accuracy, GeNAS's flatness or their combination (--score). The study "
                                    "persists in --storage.")
    run_arg(s)
    s.add_argument("--strategy", default="re", help="random, re, ls, bo, ... (default re)")
    s.add_argument("--budget", type=positive_int, default=100, help="architectures to evaluate (default 100)")
    s.add_argument("--seed", type=int, default=0, help="seed of the strategy (default 0)")
    s.add_argument("--param", action="append", metavar="KEY=VALUE", help="strategy setting, e.g. population_size=20")
    s.add_argument("--benchmark", default=None, help="report the pick's true metrics from this table")
    s.add_argument("--storage", default=":memory:", help="database URL or :memory: (default :memory:)")
    s.add_argument("--study", default=None, help="study name (default supernet-<run>-<strategy>-seed<seed>)")
    eval_args(s)
    s.set_defaults(func=cmd_search)


def eval_args(p: argparse.ArgumentParser) -> None:
    from nasforge.oneshot.evaluate import BN_BATCH_SIZE, BN_BATCHES

    p.add_argument("--bn-batches", dest="bn_batches", type=int, default=BN_BATCHES,
                   help=f"training batches for BatchNorm recalibration (default {BN_BATCHES})")
    p.add_argument("--bn-batch-size", dest="bn_batch_size", type=int, default=BN_BATCH_SIZE,
                   help=f"their size (default {BN_BATCH_SIZE})")
    p.add_argument("--n-eval", dest="n_eval", type=int, default=None, help="held-back images per architecture "
                                                                           "(default all)")
    p.add_argument("--score", default="acc", choices=SCORE_CHOICES,
                   help="acc: held-back accuracy (default); flatness: GeNAS's flatness of the inherited weights; "
                        "acc+flatness: acc/100 + FLAT_WEIGHT * flatness / first noise level (GeNAS's combination)")
    p.add_argument("--stds", default="0.001,0.003,0.006",
                   help="noise levels of the flatness, increasing standard deviations (default 0.001,0.003,0.006)")
    p.add_argument("--flat-weight", dest="flat_weight", type=finite_float, default=1.0,
                   help="weight of flatness in acc+flatness (GeNAS's gamma; default 1)")


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def _net_settings(items: list[str] | None) -> dict[str, Any]:
    return parse_key_values(items, "--net", "stem_channels=16")


def cmd_train(args: argparse.Namespace) -> int:
    from nasforge.oneshot.run import RUN_DEFAULTS, SupernetRun

    _threads(args.threads)
    net = {**_net_settings(args.net), "C": args.C, "N": args.N, "layers": args.layers}
    given = {k: getattr(args, k) for k in RUN_DEFAULTS if k != "net"}
    run = SupernetRun(args.run, data_dir=args.data_dir, net={k: v for k, v in net.items() if v is not None}, **given)
    t0 = time.perf_counter()
    result = run.train(progress=not args.quiet, log=print, checkpoint_every=args.checkpoint_every)
    if not result.complete_before:
        print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    from nasforge.oneshot.run import SupernetRun, rank_correlations

    _threads(args.threads)
    top_k = parse_top_k(args.top_k)
    run = SupernetRun.open(args.run, data_dir=args.data_dir)
    bench = None
    metrics: list[str] = []
    if args.benchmark is not None:
        from nasforge.estimation import load_benchmark

        bench = load_benchmark(args.benchmark, data_dir=args.data_dir)
        if bench.space.name != run.layout.name:
            raise NasforgeError(f"benchmark {bench.name} is on space {bench.space.name!r}; the supernet is on "
                                f"{run.layout.name!r}")
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        for m in metrics:
            bench.column(m)  # validates
    stds, weight = _stds(args.stds), _flat_weight(args.flat_weight)
    flat = args.score != "acc"
    res = run.rank(n=args.n, sample_seed=args.sample_seed, bn_batches=args.bn_batches,
                   bn_batch_size=args.bn_batch_size, n_eval=args.n_eval, out=args.out, progress=not args.quiet,
                   flatness=flat, stds=stds)
    noun = run.layout.noun
    print(f"{res.out}: {res.scored_before} of {len(res.archs)} {noun} already scored; BN recalibration on "
          f"{args.bn_batches} x {args.bn_batch_size} training images, accuracy on {res.n_eval} held-back images")
    print(f"mean cost {res.seconds.mean():.3f} s per {noun[:-1]}; supernet accuracy {res.acc.mean():.2f}% "
          f"(min {res.acc.min():.2f}, max {res.acc.max():.2f})")
    best = res.best()
    print(f"top-1 by the supernet: {run.space.format(res.archs[best])} ({res.acc[best]:.2f}%)")
    scores = list(SCORE_CHOICES) if flat else ["acc"]
    if flat:
        assert res.flatness is not None
        print(f"flatness at noise levels {','.join(f'{s:g}' for s in stds)}: mean {res.flatness.mean():.4g} "
              f"(min {res.flatness.min():.4g}, max {res.flatness.max():.4g})")
        for sc in scores[1:]:
            b = res.best(sc, weight)
            print(f"top-1 by {sc}: {run.space.format(res.archs[b])} ({res.acc[b]:.2f}%, flatness "
                  f"{res.flatness[b]:.4g})")
    if bench is not None:
        rows = [r for sc in scores for r in rank_correlations(res, bench, metrics, top_k, score=sc, flat_weight=weight)]
        what = "supernet accuracy" if not flat else f"supernet scores (acc+flatness with weight {weight:g})"
        print(f"\n{bench.name}: {what} vs table, {len(res.archs)} {noun}")
        head = (["score"] if flat else []) + ["metric", "Kendall tau", "Spearman rho"] + [
            f"top-{k * 100:g}%" if k < 1 else f"top-{int(k)}" for k in top_k] + ["top-1 pick", "best of sample"]
        table = [([r["score"]] if flat else []) + [r["metric"], f"{r['tau']:.3f}", f"{r['rho']:.3f}"]
                 + [f"{p:.2f}" for p in r["top_k"]] + [f"{r['pick']:.2f}", f"{r['best']:.2f}"] for r in rows]
        widths = [max(len(str(r[i])) for r in [head] + table) for i in range(len(head))]
        for r in [head] + table:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from nasforge.cli.main import _parse_params
    from nasforge.oneshot.run import SupernetRun
    from nasforge.strategies import get_strategy
    from nasforge.study import Study, get_storage

    _threads(args.threads)
    run = SupernetRun.open(args.run, data_dir=args.data_dir)
    est = run.estimator(bn_batches=args.bn_batches, bn_batch_size=args.bn_batch_size, n_eval=args.n_eval,
                        score=args.score, stds=_stds(args.stds), flat_weight=_flat_weight(args.flat_weight))
    space = run.space
    strategy = get_strategy(args.strategy, space, seed=args.seed, **_parse_params(args.param))
    by = "" if args.score == "acc" else f"-{args.score.replace('+', '-')}"
    name = args.study or f"supernet-{Path(args.run).name}-{args.strategy}{by}-seed{args.seed}"
    config: dict[str, Any] = {"run": str(Path(args.run).resolve()), "strategy": args.strategy, "seed": args.seed}
    if args.score != "acc":
        config.update(score=args.score, stds=list(est.evaluator.stds), flat_weight=est.flat_weight)
    study = Study(name, space, est.objective, maximize=True, storage=get_storage(args.storage),
                  config={"supernet": config})
    print(f"study {name!r}: {strategy!r} on {est!r}")
    t0 = time.perf_counter()
    study.optimize(strategy, est, n_trials=args.budget, progress=not args.quiet)
    best = study.best_trial
    print(f"{len(study.finished_trials)} trial(s), {time.perf_counter() - t0:.1f} s")
    if best is None:
        print("no complete trial")
        return 1
    unit = "%" if est.objective == "valid_acc" else ""
    print(f"best by supernet {est.objective}: {space.format(space.coerce(best.arch))} ({best.value:.4g}{unit})")
    from nasforge.cli.notes import where_written

    print(where_written(name, args.storage))
    if args.benchmark is not None:
        from nasforge.estimation import load_benchmark

        bench = load_benchmark(args.benchmark, data_dir=args.data_dir)
        if bench.space.name != space.name:
            raise NasforgeError(f"benchmark {bench.name} is on space {bench.space.name!r}; the supernet is on "
                                f"{space.name!r}")
        for m in dict.fromkeys([bench.default_metric, bench.report_metric, "test_acc_200"]):
            if m is None:
                continue
            try:
                value = bench.query(best.arch, m)
            except NasforgeError:
                continue
            _, opt = bench.optimum(m, maximize=True)
            print(f"  {bench.name} {m} = {value:.2f} (table optimum {opt:.2f}; "
                  f"{bench.fraction_better(m, value):.2f}% of the {run.layout.noun} are better)")
    return 0
