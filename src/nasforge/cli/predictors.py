"""``nasforge predictors``: NASLib's predictor-evaluation protocol on a benchmark table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nasforge.cli.options import parse_key_values, positive_int
from nasforge.errors import NasforgeError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("predictors", help="rank correlation of performance predictors vs training-set size",
                       description="NASLib's protocol: for each seed, a random test set of --test-size cells and "
                                   "random training sets of each --train-sizes (nested, disjoint from the test "
                                   "set); each predictor is fitted on the training cells' validation metric and "
                                   "scored by Kendall tau, Spearman rho and top-10%% precision on the test set.")
    p.add_argument("--benchmark", default="nb201:cifar10", help="table to evaluate on (default nb201:cifar10)")
    p.add_argument("--predictors", default="gp,xgb,rf",
                   help="comma-separated predictor names (default gp,xgb,rf); `nasforge predictors --list` lists them")
    p.add_argument("--list", action="store_true", help="list the predictors and exit")
    p.add_argument("--train-sizes", default="10,20,50,100,200,500",
                   help="comma-separated training-set sizes (default 10,20,50,100,200,500)")
    p.add_argument("--test-size", type=positive_int, default=1000, help="test cells per seed (default 1000)")
    p.add_argument("--seeds", type=positive_int, default=3, help="number of seeds (default 3)")
    p.add_argument("--metric", default=None, help="target metric (default: the benchmark's validation metric)")
    p.add_argument("--param", action="append", metavar="PREDICTOR.KEY=VALUE",
                   help="predictor setting, e.g. gp.kernel=wl or xgb.n_estimators=200")
    p.add_argument("--out", default=None, help="also write one JSON line per (predictor, seed, size) here")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the graph predictors (default 1)")
    p.add_argument("--data-dir", default=None, help="reference data folder (default: $NASFORGE_DATA or ../shared/data)")
    p.set_defaults(func=cmd_predictors)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise NasforgeError(f"bad --train-sizes {text!r}: expected whole numbers >= 2, e.g. 10,20,50") from None
    if not sizes or min(sizes) < 2:
        raise NasforgeError(f"bad --train-sizes {text!r}: expected whole numbers >= 2, e.g. 10,20,50")
    return sorted(set(sizes))


def cmd_predictors(args: argparse.Namespace) -> int:
    import numpy as np

    import nasforge.strategies  # noqa: F401 - registers the gp and bananas predictors
    from nasforge.estimation import load_benchmark
    from nasforge.estimation.predictors import PREDICTORS, get_predictor
    from nasforge.estimation.predictors.protocol import evaluate

    if args.list:
        for name in sorted(PREDICTORS):
            print(name)
        return 0
    names = [n.strip() for n in args.predictors.split(",") if n.strip()]
    for n in names:
        if n not in PREDICTORS:
            raise NasforgeError(f"unknown predictor {n!r}; allowed: {', '.join(sorted(PREDICTORS))}")
    settings: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in parse_key_values(args.param, "--param", "gp.kernel=wl").items():
        name, dot, sub = key.partition(".")
        if not dot or name not in settings:
            raise NasforgeError(f"bad --param {key!r}: expected PREDICTOR.KEY=VALUE for one of {', '.join(names)}")
        settings[name][sub] = value
    if args.threads < 1:
        raise NasforgeError(f"--threads must be >= 1, got {args.threads}")
    sizes = _sizes(args.train_sizes)
    bench = load_benchmark(args.benchmark, data_dir=args.data_dir)
    metric = args.metric or bench.default_metric or "valid_acc"
    if any(n in ("gin", "gcn") or settings[n].get("encoding") == "cate" for n in names):
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else None
    print(f"{bench.name}: Kendall tau of each predictor vs {metric} on {args.test_size} test cells, "
          f"{args.seeds} seed(s) (mean ± s.e.)")
    header = "| predictor | " + " | ".join(f"n={s}" for s in sizes) + " |"
    print(header)
    print("|---|" + "---|" * len(sizes))
    for name in names:
        extra = {"benchmark": bench} if name == "lce" else {}

        def make(seed: int, name: str = name, extra: dict[str, Any] = extra) -> Any:
            return get_predictor(name, bench.space, seed=seed, **settings[name], **extra)

        def done(rec: dict[str, Any], name: str = name) -> None:
            if out is not None:
                with out.open("a") as f:
                    f.write(json.dumps({"predictor": name, "benchmark": bench.name, "metric": metric, **rec}) + "\n")

        recs = evaluate(make, bench, metric, None, sizes, args.test_size, range(args.seeds), done=done)
        cells = []
        for s in sizes:
            v = np.array([r["kendall"] for r in recs if r["train_size"] == s])
            se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
            cells.append(f"{v.mean():.3f} ± {se:.3f}" if len(v) > 1 else f"{v.mean():.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    if out is not None:
        print(f"records: {out.resolve()}")
    return 0
