"""Growing data (issue 14): AdaXpert-style adaptation vs searching every snapshot from scratch.

scikit-learn's digits (1,078 training / 360 validation / 359 test images), NB201 cells at C=8,
N=1, trained for ``--epochs`` epochs (SGD, the training estimator's defaults), 4 nested
snapshots in two scenarios:

* ``volume``: 150, 300, 600, 1000 training images of all 10 classes;
* ``classes``: 240, 480, 720, 1000 training images of the first 4, 6, 8, 10 classes.

Snapshot 0 is searched by regularised evolution (``--budget`` trainings, population 4). Then, for
each later snapshot: ``scratch`` searches it again the same way; ``adaxpert`` retrains the
previous architecture and, when the difference extent reaches ``--threshold``, evaluates the
adjuster's candidates; ``keep`` only retrains the snapshot-0 architecture. Reported per
snapshot: test accuracy of the architecture chosen by validation accuracy (mean ± s.e. over
seeds), trainings and CPU seconds. Results are cached per (scenario, seed) under ``--out``.

    nice -n 5 python benchmarks/adaxpert.py --seeds 3
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

SCENARIOS = {"volume": ([150, 300, 600, 1000], None), "classes": ([240, 480, 720, 1000], [4, 6, 8, 10])}


def run(scenario: str, seed: int, args: argparse.Namespace) -> dict:
    from nasforge.data import load_digits
    from nasforge.estimation.training import TrainingEstimator
    from nasforge.spaces.nb201 import NB201Space
    from nasforge.strategies import get_strategy
    from nasforge.study import create_study
    from nasforge.transfer.adaxpert import adaxpert, data_shift, growing_snapshots

    space = NB201Space()
    sizes, classes = SCENARIOS[scenario]
    snaps = growing_snapshots(load_digits(seed=0), sizes, classes, seed=seed)

    def estimators() -> list:  # one set per method: no method reuses another's trained networks
        return [TrainingEstimator(space, s, max_epochs=args.epochs, net={"C": 8, "N": 1}, seed=seed, threads=1)
                for s in snaps]

    ests, keep_ests, ada_ests = estimators(), estimators(), estimators()

    def search(k: int) -> dict:
        t0 = time.process_time()
        st = create_study(f"s{k}", space, "valid_acc")
        st.optimize(get_strategy("re", space, seed=seed + 1000 * k, population_size=4, sample_size=2), ests[k],
                    n_trials=args.budget, progress=False)
        b = st.best_trial
        return {"arch": b.arch, "valid": b.metrics["valid_acc"], "test": b.metrics["test_acc"],
                "evaluations": args.budget, "cpu_s": time.process_time() - t0}

    first = search(0)
    out: dict = {"first": first, "scratch": [], "keep": [], "adaxpert": []}
    for k in range(1, len(snaps)):
        out["scratch"].append(search(k))
        t0 = time.process_time()
        m = keep_ests[k].estimate(space.parse(first["arch"])).metrics
        out["keep"].append({"arch": first["arch"], "valid": m["valid_acc"], "test": m["test_acc"], "evaluations": 1,
                            "cpu_s": time.process_time() - t0})
    shifts = [data_shift(a, b) for a, b in zip(snaps, snaps[1:])]
    cpu: list[float] = []

    def evaluate(arch, k):
        t0 = time.process_time()
        m = ada_ests[k].estimate(arch).metrics
        cpu.append(time.process_time() - t0)
        return m

    recs = adaxpert(space, len(snaps), evaluate, space.parse(first["arch"]), shifts, threshold=args.threshold,
                    max_candidates=args.candidates, seed=seed)
    used = 0
    for r in recs:
        n = r["evaluations"]
        out["adaxpert"].append({"arch": r["arch"], "valid": r["metrics"]["valid_acc"], "test": r["metrics"]["test_acc"],
                                "evaluations": n, "cpu_s": sum(cpu[used:used + n]), "adapted": r["adapted"],
                                "changed": r["changed"], "extent": r["extent"]})
        used += n
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--scenarios", default="volume,classes")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--budget", type=int, default=6, help="trainings of a search from scratch (per snapshot)")
    p.add_argument("--threshold", type=float, default=0.2)
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--out", default="benchmarks/out/adaxpert")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for scenario in args.scenarios.split(","):
        rows = []
        for seed in range(args.seeds):
            f = out / f"{scenario}__{seed}__e{args.epochs}_b{args.budget}_t{args.threshold}_c{args.candidates}.json"
            if not f.exists():
                f.write_text(json.dumps(run(scenario, seed, args)))
            rows.append(json.loads(f.read_text()))
        sizes, classes = SCENARIOS[scenario]
        first = np.array([r["first"]["test"] for r in rows])
        print(f"\n### {scenario}: snapshots {sizes} training images" + (f" of {classes} classes" if classes else "")
              + f"; {args.seeds} seeds, {args.epochs} epochs; snapshot 0 searched with {args.budget} trainings "
              f"(test {first.mean():.2f} ± {first.std(ddof=1) / math.sqrt(len(first)) if len(first) > 1 else 0:.2f})")
        print("| snapshot | extent | scratch test | adaxpert test | keep test | trainings scratch / adaxpert / keep | "
              "CPU s scratch / adaxpert / keep | adaxpert changed the cell |")
        print("|---|---|---|---|---|---|---|---|")
        tot = {m: [0.0, 0.0] for m in ("scratch", "adaxpert", "keep")}
        for k in range(len(sizes) - 1):
            cells = []
            for m in ("scratch", "adaxpert", "keep"):
                v = np.array([r[m][k]["test"] for r in rows])
                se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0
                cells.append(f"{v.mean():.2f} ± {se:.2f}")
                tot[m][0] += np.mean([r[m][k]["evaluations"] for r in rows])
                tot[m][1] += np.mean([r[m][k]["cpu_s"] for r in rows])
            ext = np.mean([r["adaxpert"][k]["extent"] for r in rows])
            ev = " / ".join(f"{np.mean([r[m][k]['evaluations'] for r in rows]):.1f}" for m in tot)
            cs = " / ".join(f"{np.mean([r[m][k]['cpu_s'] for r in rows]):.0f}" for m in tot)
            changed = sum(r["adaxpert"][k]["changed"] for r in rows)
            print(f"| {k + 1} | {ext:.2f} | " + " | ".join(cells) + f" | {ev} | {cs} | {changed}/{len(rows)} |")
        print("totals over snapshots 1-3: " + "; ".join(f"{m} {t[0]:.1f} trainings, {t[1]:.0f} s" for m, t in tot.items()))


if __name__ == "__main__":
    main()
