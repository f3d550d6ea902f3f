"""Performance predictors on NAS-Bench-201 CIFAR-10: NASLib's protocol (White et al., NeurIPS 2021).

Kendall τ (and Spearman ρ, top-10 % precision) between each predictor's predictions and
``valid_acc_200`` (cifar10-valid, 200 epochs) on 1,000 random test cells, after training on 10,
20, 50, 100, 200 and 500 other cells; seeds 0..19 (fewer for the slow predictors, see SEEDS).
The learning-curve predictor (``lce``) also reads every cell's 12-epoch validation accuracy
(NB201's separate 12-epoch schedule), which the others never see. One JSON line per
(predictor, seed, size) in benchmarks/out/predictors_nb201.jsonl; a re-run skips what is there.

    nice -n 5 python benchmarks/predictors_nb201.py                   # all predictors
    python benchmarks/predictors_nb201.py --predictors gp,xgb --seeds 3
    python benchmarks/predictors_nb201.py --report                    # the markdown table
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "predictors_nb201.jsonl"
SIZES = (10, 20, 50, 100, 200, 500)
#: predictor -> (registry name, settings, seeds): the slow ones (an MLP ensemble or a graph
#: network trained from scratch per fit) run fewer seeds to fit the CPU budget
SETUPS: dict[str, tuple[str, dict[str, Any], int]] = {
    "gp (tw2 kernel)": ("gp", {"kernel": "tw2"}, 20),
    "gp (wl kernel)": ("gp", {"kernel": "wl"}, 20),
    "gp (onehot, Matern)": ("gp_encoding", {"encoding": "onehot"}, 20),
    "gp (CATE encoding, Matern)": ("gp_encoding", {"encoding": "cate"}, 20),
    "gp (CATE encoding, Matern + linear)": ("gp_encoding", {"encoding": "cate", "linear": True}, 10),
    "gp (onehot, Matern + linear)": ("gp_encoding", {"encoding": "onehot", "linear": True}, 10),
    "xgb": ("xgb", {}, 20),
    "rf": ("rf", {}, 20),
    "quantile gbt": ("quantile_gbt", {}, 20),
    "seminas (xgb)": ("seminas", {"base": "xgb"}, 12),
    "lce (12-epoch valid + onehot)": ("lce", {}, 20),
    "gcn": ("gcn", {}, 5),
    "bananas": ("bananas", {}, 3),
    "gin": ("gin", {}, 5),
}
#: NASLib, "How powerful are performance predictors in NAS?" (NeurIPS 2021), NB201 CIFAR-10:
#: Kendall τ read off the paper's Figure (train-size curves); None where we could not read it
NASLIB: dict[str, dict[int, float]] = {}


def load() -> list[dict[str, Any]]:
    if not OUT.exists():
        return []
    return [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()]


def run(labels: list[str], seeds: int | None) -> None:
    import torch

    torch.set_num_threads(1)
    import nasforge.strategies  # noqa: F401 - registers the gp and bananas predictors
    from nasforge.estimation import load_benchmark
    from nasforge.estimation.predictors import get_predictor
    from nasforge.estimation.predictors.protocol import evaluate

    bench = load_benchmark("nb201:cifar10")
    have = {(r["predictor"], r["seed"], r["train_size"]) for r in load()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    for label in labels:
        name, settings, n_seeds = SETUPS[label]
        n = n_seeds if seeds is None else min(seeds, n_seeds)
        extra = {"benchmark": bench} if name == "lce" else {}

        def make(seed: int, name: str = name, settings: dict[str, Any] = settings, extra: dict = extra) -> Any:
            return get_predictor(name, bench.space, seed=seed, **settings, **extra)

        def done(rec: dict[str, Any], label: str = label) -> None:
            rec = {"predictor": label, **rec}
            with OUT.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            print(f"{label:32s} seed {rec['seed']:2d} n={rec['train_size']:4d} tau={rec['kendall']:.3f} "
                  f"fit {rec['fit_s']:.1f}s", flush=True)

        evaluate(make, bench, "valid_acc", 200, SIZES, 1000, range(n), done=done,
                 skip=lambda s, k, label=label: (label, s, k) in have)


def lowfi_reference(seeds: int = 20) -> dict[int, tuple[float, float]]:
    """Kendall τ of the 12-epoch validation accuracy itself vs the 200-epoch one, on the same
    test sets (no training; the training size does not matter): the bar ``lce`` must clear."""
    from nasforge.analysis.correlation import kendall_tau
    from nasforge.estimation import load_benchmark
    from nasforge.estimation.predictors.protocol import split

    bench = load_benchmark("nb201:cifar10")
    y = np.asarray(bench.values("valid_acc", 200))
    lo = np.asarray(bench.values("valid_acc", 12))
    taus = [kendall_tau(lo[t], y[t]) for t in (split(len(y), SIZES, 1000, s)[0] for s in range(seeds))]
    return {0: (float(np.mean(taus)), float(np.std(taus, ddof=1) / np.sqrt(len(taus))))}


def report() -> str:
    rows = load()
    lines = ["| predictor | seeds | " + " | ".join(f"n={s}" for s in SIZES) + " | fit s (n=500) |",
             "|---|---|" + "---|" * len(SIZES) + "---|"]
    for label in SETUPS:
        recs = [r for r in rows if r["predictor"] == label]
        if not recs:
            continue
        cells, seeds = [], set()
        for s in SIZES:
            allv = [r["kendall"] for r in recs if r["train_size"] == s]
            seeds |= {r["seed"] for r in recs if r["train_size"] == s}
            v = [x for x in allv if x == x]  # NaN: the predictor returned one constant (no ranking)
            flat = f" ({len(allv) - len(v)} const.)" if len(v) < len(allv) else ""
            cells.append((f"{np.mean(v):.3f} ± {np.std(v, ddof=1) / np.sqrt(len(v)):.3f}" if len(v) > 1 else
                          (f"{v[0]:.3f}" if v else "-")) + flat)
        fit = [r["fit_s"] + r["predict_s"] for r in recs if r["train_size"] == 500]
        lines.append(f"| {label} | {len(seeds)} | " + " | ".join(cells) + f" | {np.mean(fit):.1f} |" if fit else
                     f"| {label} | {len(seeds)} | " + " | ".join(cells) + " | - |")
    m, se = lowfi_reference()[0]
    lines.append("| 12-epoch valid acc. alone (no model) | 20 | " + " | ".join(f"{m:.3f} ± {se:.3f}" for _ in SIZES)
                 + " | 0 |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--predictors", default=None, help="comma-separated labels or registry names (default all)")
    ap.add_argument("--seeds", type=int, default=None, help="at most this many seeds per predictor")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        print(report())
        return
    labels = list(SETUPS)
    if args.predictors:
        want = args.predictors.split(";") if ";" in args.predictors else args.predictors.split(",")
        labels = [k for k in SETUPS if k in want or SETUPS[k][0] in want]
    run(labels, args.seeds)


if __name__ == "__main__":
    main()
