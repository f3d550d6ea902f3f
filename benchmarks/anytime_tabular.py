"""Anytime tables of random search, regularised evolution and local search on tabular benchmarks.

NB201 protocol: select by valid_acc_200 (cifar10-valid / cifar100 valid half), report
test_acc_200_full (CIFAR-10) or test_acc_200 (CIFAR-100). NAS-Bench-Graph: select by
valid_perf, report test_perf.

    python benchmarks/anytime_tabular.py --seeds 100 --out benchmarks/out
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from nasforge.analysis import anytime_table, plot_anytime
from nasforge.estimation import load_benchmark
from nasforge.study.compare import compare_strategies

STRATEGIES = {"random": ("random", {}), "re": ("re", {}), "ls": ("ls", {})}
AT = [25, 50, 100, 200, 300]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--benchmarks", default="nb201:cifar10,nb201:cifar100,nbgraph:cora,nbgraph:arxiv")
    p.add_argument("--out", default="benchmarks/out")
    p.add_argument("--reference-repeats", type=int, default=2000,
                   help="random-search repeats for the sanity check against NB201's 2,000-repeat reference")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for spec in args.benchmarks.split(","):
        bench = load_benchmark(spec)
        t0 = time.perf_counter()
        curves = compare_strategies(bench.space, bench, STRATEGIES, range(args.seeds), max(AT),
                                    bench.default_metric, bench.report_metric)
        seconds = time.perf_counter() - t0
        table = anytime_table(curves, AT)
        _, opt = bench.optimum(bench.column(bench.report_metric))
        tag = spec.replace(":", "_")
        plot_anytime(curves, str(out / f"anytime_{tag}.png"), ylabel=bench.report_metric,
                     title=f"{spec}, {args.seeds} seeds", optimum=opt)
        print(f"\n{spec}: select {bench.default_metric}, report {bench.report_metric}; "
              f"{args.seeds} seeds; optimum {opt:.4f}; {seconds:.1f} s")
        scale = 100.0 if bench.report_metric == "test_perf" else 1.0  # NB-Graph stores fractions
        print("| strategy | " + " | ".join(f"@{q}" for q in AT) + " |")
        print("|---|" + "---|" * len(AT))
        for m in STRATEGIES:
            cells = [f"{scale * table.loc[(m, q), 'mean']:.2f} ± {scale * table.loc[(m, q), 'std']:.2f} "
                     f"(se {scale * table.loc[(m, q), 'se']:.3f})" for q in AT]
            print(f"| {m} | " + " | ".join(cells) + " |")
        results[spec] = {"optimum": opt, "seconds": seconds,
                         "table": {f"{m}@{q}": dict(r) for (m, q), r in table.iterrows()}}
    if "nb201:cifar10" in args.benchmarks.split(",") and args.reference_repeats:
        bench = load_benchmark("nb201:cifar10")
        curves = compare_strategies(bench.space, bench, {"random": ("random", {})}, range(args.reference_repeats),
                                    300, "valid_acc", "test_acc_full")
        table = anytime_table(curves, [100, 300])
        print(f"\nsanity check, random search on nb201:cifar10 over {args.reference_repeats} repeats "
              "(reference: 93.78 ± 0.29 @100, 93.96 ± 0.23 @300):")
        for q in (100, 300):
            r = table.loc[("random", q)]
            print(f"  @{q}: {r['mean']:.3f} ± {r['std']:.3f} (se {r['se']:.4f})")
    (out / "anytime_tabular.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
