"""The CATE encoding against the adjacency and path encodings inside four search strategies, on
NAS-Bench-201 CIFAR-10 and CIFAR-100.

Each strategy reads the encoding through the library's own interfaces (no strategy is changed):

- ``dngo-ENC``: DNGO-style BO, the ``predictor`` strategy with the ``dngo`` predictor (MLP 3 x 50
  tanh, 200 epochs of Adam, Bayesian linear regression on its last layer) on encoding ENC,
  expected improvement over the strategy's default candidates (100 mutations of the 5 best + 20
  random cells), ``k=5`` cells per fit (to bound the CPU cost);
- ``bananas-ENC``: the ``bananas`` strategy (defaults: 5 MLPs 3 x 32, independent Thompson
  sampling over 100 mutations of the 10 best, 10 cells per retrain) with ``encoding=ENC``;
- ``re-ENC`` / ``ls-ENC``: regularised evolution (population 20, tournament 10) and local search
  (10 random starts) on :class:`nasforge.strategies.encoded.EncodedNeighbourhood`: a cell's
  neighbours are the 24 cells nearest to it in ENC (NB201's own neighbourhood has 24 cells), a
  mutation is a uniform draw among them.

ENC: ``adjacency`` (for RE/LS this is exactly NB201's one-edge neighbourhood), ``path``, ``cate``
(pre-trained once with the library defaults, cached under ~/.cache/nasforge/cate).

NB201 protocol: select by ``valid_acc_200``, report ``test_acc_200_full`` (CIFAR-10) or
``test_acc_200`` (CIFAR-100) of the selected cell at 25 / 50 / 100 queries. One JSON line per
(dataset, method, seed) in benchmarks/out/cate_strategies_nb201.jsonl; seeds are the outer loop
(every method gets seed s before any gets s + 1) and a re-run skips what is there.

    nice -n 10 python benchmarks/cate_strategies_nb201.py --datasets cifar10,cifar100 --seeds 30
    python benchmarks/cate_strategies_nb201.py --report
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "cate_strategies_nb201.jsonl"
AT = (25, 50, 100)
ENCS = ("adjacency", "path", "cate")
FAMILIES = ("dngo", "bananas", "re", "ls")
METHODS = [f"{f}-{e}" for f in FAMILIES for e in ENCS]
_SPACES: dict[str, Any] = {}


def strategy(label: str, bench: Any, seed: int) -> Any:
    from nasforge.strategies import get_strategy
    from nasforge.strategies.encoded import EncodedNeighbourhood

    family, enc = label.split("-", 1)
    if family == "dngo":
        return get_strategy("predictor", bench.space, seed=seed, predictor="dngo",
                            predictor_params={"encoding": enc, "epochs": 200}, k=5)
    if family == "bananas":
        return get_strategy("bananas", bench.space, seed=seed, encoding=enc)
    if enc not in _SPACES:
        _SPACES[enc] = EncodedNeighbourhood(bench.space, enc)
    return get_strategy(family, _SPACES[enc], seed=seed)


def one(dataset: str, label: str, seed: int, budget: int) -> dict[str, Any]:
    from nasforge.analysis.anytime import incumbent_curve
    from nasforge.estimation import load_benchmark
    from nasforge.study import Study

    bench = load_benchmark(f"nb201:{dataset}")
    strat = strategy(label, bench, seed)
    study = Study(f"{label}-{seed}", bench.space, "valid_acc")
    t0 = time.process_time()
    study.optimize(strat, bench, n_trials=budget)
    cpu = time.process_time() - t0
    out: dict[str, Any] = {"dataset": dataset, "method": label, "seed": seed, "cpu_s": cpu}
    trials = sorted(study.trials, key=lambda t: t.number)
    curve = incumbent_curve([t.metrics["valid_acc"] for t in trials],
                            [bench.query(t.arch, bench.report_metric) for t in trials])
    for a in AT:
        if a <= len(curve):
            out[f"test@{a}"] = float(curve[a - 1])
    return out


def load() -> list[dict[str, Any]]:
    if not OUT.exists():
        return []
    return [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()]


def report() -> str:
    rows = load()
    out = []
    for dataset in ("cifar10", "cifar100"):
        recs_d = [r for r in rows if r["dataset"] == dataset and r["seed"] < 1000]
        if not recs_d:
            continue
        out += [f"**nb201:{dataset}**", "",
                "| strategy | encoding | " + " | ".join(f"@{a}" for a in AT) + " | strategy CPU s/run |",
                "|---|---|" + "---|" * len(AT) + "---|"]
        for label in METHODS:
            recs = [r for r in recs_d if r["method"] == label]
            if not recs:
                continue
            cells = []
            for a in AT:
                v = np.array([r[f"test@{a}"] for r in recs if f"test@{a}" in r])
                cells.append(f"{v.mean():.2f} ± {v.std(ddof=1) / np.sqrt(len(v)):.2f} (n={len(v)})" if len(v) > 1
                             else "-")
            family, enc = label.split("-", 1)
            out.append(f"| {family} | {enc} | " + " | ".join(cells) + f" | {np.mean([r['cpu_s'] for r in recs]):.1f} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="cifar10,cifar100")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        print(report())
        return
    import torch

    torch.set_num_threads(1)
    import nasforge.strategies  # noqa: F401 - registers the dngo predictor

    have = {(r["dataset"], r["method"], r["seed"]) for r in load()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for dataset in args.datasets.split(","):
            for label in args.methods.split(","):
                if label not in METHODS:
                    raise SystemExit(f"unknown method {label!r}; allowed: {', '.join(METHODS)}")
                if (dataset, label, seed) in have:
                    continue
                rec = one(dataset, label, seed, args.budget)
                with OUT.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
