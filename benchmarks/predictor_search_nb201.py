"""Predictor-guided search and CATE on NAS-Bench-201 CIFAR-10.

Every method is the ``predictor`` strategy (10 random cells, then each query: fit the predictor on
all results, score up to 100 unseen one-step mutations of the 5 best cells + 20 random unseen
cells by expected improvement, evaluate the best) with a different model / encoding:

- ``gp-cate``: a GP (Matern 5/2 on the standardised encoding) on the CATE encoding (pre-trained
  once, cached under ~/.cache/nasforge/cate);
- ``gp-adjacency``: the same GP on the adjacency encoding;
- ``gp-path``: the exact GP with the path kernel (the path encoding's inner product);
- ``gp-tw2``: the exact GP with the 2-gram tree-Wasserstein kernel;
- ``re``: regularised evolution (library defaults), no model, as the reference.

NB201 protocol: select by ``valid_acc_200``, report ``test_acc_200_full`` of the selected cell.
One JSON line per (method, seed) in benchmarks/out/predictor_search_nb201.jsonl; a re-run skips
what is there.

    nice -n 5 python benchmarks/predictor_search_nb201.py --seeds 30
    python benchmarks/predictor_search_nb201.py --report
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

OUT = Path(__file__).resolve().parent / "out" / "predictor_search_nb201.jsonl"
AT = (25, 50, 100)
BOCAND: dict[str, Any] = {"n_candidates": 0, "n_local": 24, "n_random": 100, "transform": "rank"}
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "gp-tw2": ("predictor", {"predictor": "gp", "predictor_params": {"kernel": "tw2"}}),
    "gp-path": ("predictor", {"predictor": "gp", "predictor_params": {"kernel": "path"}}),
    "gp-adjacency": ("predictor", {"predictor": "gp_encoding", "predictor_params": {"encoding": "adjacency"}}),
    "gp-cate": ("predictor", {"predictor": "gp_encoding", "predictor_params": {"encoding": "cate"}}),
    "gp-cate-linear": ("predictor", {"predictor": "gp_encoding", "predictor_params": {"encoding": "cate", "linear": True}}),
    "gp-hamming": ("predictor", {"predictor": "gp", "predictor_params": {"kernel": "hamming"}}),
    "gp-tw2-local": ("predictor", {"predictor": "gp", "predictor_params": {"kernel": "tw2"}, "n_parents": 3,
                                   "n_candidates": 150, "n_random": 0}),
    "re": ("re", {}),
    # bo's candidate set (up to 24 unseen neighbours of each of the 5 best + 100 random) and its
    # rank transform, inside the predictor strategy (the ablation of the candidate set)
    **{f"gp-{k}-bocand": ("predictor", {"predictor": "gp", "predictor_params": {"kernel": k}, **BOCAND})
       for k in ("hamming", "tw2", "wl")},
    "ens-hw-bocand": ("predictor", {"predictor": "ensemble", "predictor_params": {"members": [
        ["gp", {"kernel": "hamming"}], ["gp", {"kernel": "wl"}]]}, **BOCAND}),
    "ens-hwt-bocand": ("predictor", {"predictor": "ensemble", "predictor_params": {"members": [
        ["gp", {"kernel": "hamming"}], ["gp", {"kernel": "wl"}], ["gp", {"kernel": "tw2"}]]}, **BOCAND}),
    "gp-cate-bocand": ("predictor", {"predictor": "gp_encoding", "predictor_params": {"encoding": "cate"}, **BOCAND}),
    "bo-hamming": ("bo", {"kernel": "hamming"}),
    # the acquisition maximised over every unseen cell (no candidate generation at all)
    "gp-hamming-all": ("predictor", {"predictor": "gp", "predictor_params": {"kernel": "hamming"},
                                     "n_candidates": 0, "exhaustive": True, "transform": "rank"}),
    "gp-hamming-all-ninit5": ("predictor", {"predictor": "gp", "predictor_params": {"kernel": "hamming"},
                                            "n_candidates": 0, "exhaustive": True, "transform": "rank", "n_init": 5}),
    "gp-hamming-bocand-ninit5": ("predictor", {"predictor": "gp", "predictor_params": {"kernel": "hamming"},
                                               **BOCAND, "n_init": 5}),
    # acquisition and candidate-depth variants of gp-hamming-bocand (pilot seeds first)
    "gp-hamming-bocand-its": ("predictor", {"predictor": "gp", "predictor_params": {"kernel": "hamming"},
                                            **BOCAND, "acquisition": "its"}),
    "gp-hamming-bocand-ucb": ("predictor", {"predictor": "gp", "predictor_params": {"kernel": "hamming"},
                                            **BOCAND, "acquisition": "ucb"}),
    "gp-hamming-bocand-d2": ("predictor", {"predictor": "gp", "predictor_params": {"kernel": "hamming"},
                                           **{**BOCAND, "n_candidates": 100}, "mutation_depth": 2}),
    "ens-hw-bocand-ninit5": ("predictor", {"predictor": "ensemble", "predictor_params": {"members": [
        ["gp", {"kernel": "hamming"}], ["gp", {"kernel": "wl"}]]}, **BOCAND, "n_init": 5}),
}
#: zero-cost warm starts (Abdelfattah et al., ICLR 2021): the first ``n_init`` queries are the top
#: of N random cells ranked by proxies computed on the untrained C=16, N=5 network (scores from
#: benchmarks/proxies_nb201.py over all cells, so each run is charged its N cells' scoring seconds);
#: label -> (the method it warm-starts, proxies of the rank ensemble, N)
ZC_TABLE = Path(__file__).resolve().parent / "out" / "proxies_nb201_c10_synflow-params-flops.csv"
WARM: dict[str, tuple[str, tuple[str, ...], int]] = {
    f"zc-{tag}{n}-{base}": (base, proxies, n)
    for base in ("gp-hamming-bocand", "bo-hamming")
    for tag, proxies in (("synflow", ("synflow",)), ("flops", ("flops",)), ("sf", ("synflow", "flops")))
    for n in (100, 1000)
}
METHODS.update({label: METHODS[base] for label, (base, _, _) in WARM.items()})


def warm_start(label: str, seed: int) -> tuple[list[str], float]:
    """The warm-start cells of ``label`` for ``seed`` and the seconds their proxies cost."""
    from nasforge.estimation.proxies import PROXIES, ProxyTable, RankEnsemble, proxy_warm_start
    from nasforge.spaces import get_space

    base, proxies, n = WARM[label]
    if not ZC_TABLE.exists():
        raise SystemExit(f"{label} needs the proxy table {ZC_TABLE}: python benchmarks/proxies_nb201.py score "
                         "--proxies synflow,params,flops --all --workers 2")
    space = get_space("nb201")
    groups = ["build", *dict.fromkeys(PROXIES[x].group for x in proxies)]  # charge only what these proxies need
    table = ProxyTable(space, ZC_TABLE, groups=groups)
    n_init = METHODS[base][1].get("n_init", 10)
    ws = proxy_warm_start(space, table, n, n_init, seed=seed, ensemble=RankEnsemble(list(proxies)),
                          candidates=table.table.index)
    return ws.archs, ws.seconds


def one(label: str, seed: int, budget: int) -> dict[str, Any]:
    from nasforge.analysis.anytime import incumbent_curve
    from nasforge.estimation import load_benchmark
    from nasforge.strategies import get_strategy
    from nasforge.study import Study

    bench = load_benchmark("nb201:cifar10")
    name, params = METHODS[label]
    zc_s = None
    if label in WARM:
        initial, zc_s = warm_start(label, seed)
        params = {**params, "initial": initial}
    strat = get_strategy(name, bench.space, seed=seed, **params)
    study = Study(f"{label}-{seed}", bench.space, "valid_acc")
    t0 = time.process_time()
    study.optimize(strat, bench, n_trials=budget)
    cpu = time.process_time() - t0
    trials = sorted(study.trials, key=lambda t: t.number)
    out: dict[str, Any] = {"method": label, "seed": seed, "cpu_s": cpu}
    if zc_s is not None:
        out["proxy_s"] = zc_s
    curve = incumbent_curve([t.metrics["valid_acc"] for t in trials],
                            [bench.query(t.arch, bench.report_metric) for t in trials])
    for a in AT:
        if a <= len(curve) and a <= budget:
            out[f"test@{a}"] = float(curve[a - 1])
    return out


def load() -> list[dict[str, Any]]:
    if not OUT.exists():
        return []
    return [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()]


def report(pilot: bool = False) -> str:
    rows = load()
    lines = ["| method | " + " | ".join(f"@{a}" for a in AT) + " | runs ≥ 94.30 @50 | strategy CPU s/run "
             "| proxy s/run |", "|---|" + "---|" * len(AT) + "---|---|---|"]
    for label in METHODS:
        recs = [r for r in rows if r["method"] == label and (r["seed"] >= 1000) == pilot]
        if not recs:
            continue
        cells = []
        for a in AT:
            v = np.array([r[f"test@{a}"] for r in recs if f"test@{a}" in r])
            if not len(v):
                cells.append("-")
                continue
            cells.append(f"{v.mean():.2f} ± {v.std(ddof=1) / np.sqrt(len(v)):.2f} (n={len(v)})")
        hit = sum(r["test@50"] >= 94.30 for r in recs)
        zc = [r["proxy_s"] for r in recs if "proxy_s" in r]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {hit}/{len(recs)} | "
                     f"{np.mean([r['cpu_s'] for r in recs]):.1f} | {f'{np.mean(zc):.0f}' if zc else '-'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--first-seed", type=int, default=0, help="pilot runs used seeds 1000.. (never reported)")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--pilot", action="store_true", help="with --report: the pilot seeds (>= 1000) instead")
    args = ap.parse_args()
    if args.report:
        print(report(args.pilot))
        return
    import torch

    torch.set_num_threads(1)
    have = {(r["method"], r["seed"]) for r in load()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    for label in args.methods.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            if (label, seed) in have:
                continue
            rec = one(label, seed, args.budget)
            with OUT.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
