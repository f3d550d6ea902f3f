"""Does the search's own proxy task prefer the NB201 optimum over the cells a search found?

A differentiable search at CPU scale optimises a small supernet (``--C``, ``--N``) on downsampled
images (``--image-size``); NB201's numbers come from C=16, N=5 networks trained 200 epochs at
32x32. When a search ends one or two edges away from the NB201 optimum, two explanations
compete: the search misses what its proxy task prefers (a search/budget problem), or the proxy
task itself does not prefer the optimum (a fidelity problem no search at this scale can fix).

This trains every cell found by the runs in ``--runs`` (the JSON outputs of
``benchmarks/differentiable_nb201.py``) and NB201's three best cells (by CIFAR-10 validation accuracy), standalone, on the proxy
the search saw: the same network size, the same images (the search's weight half for training,
its α half for validation, the 10k test set), SGD (Nesterov, lr 0.1, cosine, weight decay 5e-4),
batch 128, crop+flip, ``--epochs`` epochs, seeds ``--seeds``. Pairing by training seed, it reports
the optimum cells' proxy validation accuracy minus the found cells' (mean ± s.e. over seeds).
Runs are independent processes (``--jobs``, one torch thread each); every finished (cell, seed)
is appended to ``--out`` (JSON lines), so a re-run resumes.

    nice -n 10 python benchmarks/search_proxy_nb201.py --runs benchmarks/out/dnb201-lambda-exact-16x120.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from differentiable_nb201 import DATA, mean_se  # the searches this script reads come from there

#: how many of NB201's best cells (by CIFAR-10 ``valid_acc``, the column a search may select by) join
N_BEST = 3

_CACHE: dict = {}


def one_training(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from nasforge.estimation.training import TrainingEstimator
    from nasforge.oneshot.differentiable.search import load_search_data
    from nasforge.spaces.nb201 import NB201Space

    key = (job["n_train"], job["image_size"])
    if key not in _CACHE:
        _CACHE[key] = load_search_data("cifar10", n_train=job["n_train"], image_size=job["image_size"],
                                       data_dir=str(DATA))
    est = TrainingEstimator(NB201Space(), _CACHE[key], max_epochs=job["epochs"], net={"C": job["C"], "N": job["N"]},
                            seed=job["seed"], batch_size=128, lr=0.1, weight_decay=5e-4, threads=1,
                            cost_unit="epochs")
    m = est.estimate(job["cell"]).metrics
    return {**job, **{k: float(m[k]) for k in ("valid_acc", "test_acc", "train_acc", "train_seconds")}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True, help="comma-separated JSON outputs of differentiable_nb201.py")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--N", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=25000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/out/search_proxy_nb201.jsonl")
    args = ap.parse_args()
    if not (DATA / "cifar10" / "train25k.npz").is_file() or not (DATA / "nb201" / "cifar10.csv").is_file():
        print(f"skipped: the reference data (CIFAR-10 images and NB201 tables) is not in {DATA}")
        return 0
    from nasforge.estimation.nb201_table import load_nb201

    bench = load_nb201("cifar10", data_dir=str(DATA))
    found: dict[str, list[str]] = {}
    for path in (p for p in args.runs.split(",") if p):
        for r in json.loads(Path(path).read_text()):
            found.setdefault(r["genotype"], []).append(f"{Path(path).stem} s{r['seed']}")
    valid = np.asarray(bench.columns["valid_acc_200"])
    best = [bench.space.format(bench.archs[i]) for i in np.argsort(-valid, kind="stable")[:N_BEST]]
    cells = best + [c for c in found if c not in best]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    setting = {"epochs": args.epochs, "image_size": args.image_size, "C": args.C, "N": args.N, "n_train": args.n_train}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.is_file() else []
    done = [d for d in done if all(d[k] == v for k, v in setting.items())]
    have = {(d["cell"], d["seed"]) for d in done}
    # seed-major order: every cell's first seed finishes before any cell's second one
    jobs = [{"cell": c, "seed": s, **setting} for s in seeds for c in cells if (c, s) not in have]
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for r in pool.map(one_training, jobs):
            done.append(r)
            with out.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"[{time.time() - t0:6.0f}s] seed {r['seed']} valid {r['valid_acc']:.2f} test {r['test_acc']:.2f} "
                  f"{r['cell']}", file=sys.stderr, flush=True)
    acc = {(d["cell"], d["seed"]): d for d in done}
    print(f"Standalone training on the search's proxy: NB201 C={args.C} N={args.N}, CIFAR-10 "
          f"{args.n_train // 2} training / {args.n_train // 2} validation images (the search's weight / α halves) "
          f"at {args.image_size}x{args.image_size}, {args.epochs} epochs, SGD lr 0.1 cosine, batch 128, "
          f"crop+flip; seeds {args.seeds} (mean ± s.e.)\n")
    print("| cell | from | proxy valid | proxy test | NB201 C10 valid | NB201 C10 test (full) |")
    print("|---|---|---|---|---|---|")
    for c in cells:
        v = [acc[(c, s)]["valid_acc"] for s in seeds if (c, s) in acc]
        t = [acc[(c, s)]["test_acc"] for s in seeds if (c, s) in acc]
        src = "NB201 best by valid" if c in best else ", ".join(found[c])
        if v:
            print(f"| `{c}` | {src} | {mean_se(v)} | {mean_se(t)} | {bench.query(c, 'valid_acc'):.2f} "
                  f"| {bench.query(c, 'test_acc_full'):.2f} |")
    others = [c for c in cells if c not in best]
    full = [s for s in seeds if all((c, s) in acc for c in cells)]
    if others and len(full) > 1:
        diff = [np.mean([acc[(c, s)]["valid_acc"] for c in best]) - np.mean([acc[(c, s)]["valid_acc"] for c in others])
                for s in full]
        beaten = [sum(np.mean([acc[(b, s)]["valid_acc"] for s in full]) > np.mean([acc[(c, s)]["valid_acc"] for s in full])
                      for b in best) for c in others]
        print(f"\nProxy validation accuracy, NB201's {N_BEST} best cells minus the {len(others)} found cells, "
              f"paired by seed over {len(full)} seeds: {mean_se(diff)} points "
              f"(NB201 C10 test: {np.mean([bench.query(c, 'test_acc_full') for c in best]):.2f} vs "
              f"{np.mean([bench.query(c, 'test_acc_full') for c in others]):.2f}); found cells below every one of "
              f"NB201's {N_BEST} best cells on the proxy: {sum(b == N_BEST for b in beaten)} of {len(others)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
