"""EVAS at CPU scale: do cells with a low trigger-NTK condition number learn backdoors more easily?
(issue 15)

Protocol (digits, full split: 1,078 training images; NB201 cells with C=8, N=1):

1. Search: regularised evolution minimising ``log_kappa_trigger`` (EVAS's score: the NTK condition
   number of an input-aware trigger generator through the untrained cell, one 16-image batch), for
   ``--trials`` scored cells; the best cell is the "found" one. The same number of cells drawn at
   random gives the ``--random`` comparison cells (the first ones drawn).
2. Each found / random cell is re-trained from scratch ``--seeds`` times with the poisoned
   training of ``nasforge audit --train`` (network and trigger generator trained together;
   ``--poison-rate`` of each batch triggered and relabelled to class 0; the trigger covers
   ``--mask-area`` of each image; ``--epochs`` epochs), and the attack success rate and clean test
   accuracy are measured.
3. Spearman's rho between kappa_trigger and the seed-mean ASR over all re-trained cells.

``--train clean`` runs EVAS's own protocol instead of step 2 (``clean_training_attack``, what
``nasforge audit --train clean`` runs): each cell is trained ``--epochs`` epochs on *clean* data
(nothing poisoned), frozen, and only then is the input-aware trigger generator fitted against it
for ``--trigger-epochs`` epochs (the trigger covering ``--mask-area`` of each image, pushing
training images of the other classes to class 0); ASR and clean accuracy on the test split.

Results are cached per run under ``benchmarks/out/evas/``.

    nice -n 5 python benchmarks/evas_nb201.py --trials 30 --random 4 --seeds 3
    nice -n 10 python benchmarks/evas_nb201.py --train clean --trials 30 --random 8 --seeds 3 --mask-area 0.1
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "out" / "evas"
NET = {"C": 8, "N": 1}


def _mean_se(v: list[float]) -> str:
    a = np.asarray(v, dtype=float)
    se = a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else math.nan
    return f"{a.mean():.2f} ± {se:.2f}"


def main() -> int:
    from nasforge.analysis.correlation import spearman
    from nasforge.data import load_digits
    from nasforge.estimation.backdoor import BackdoorEstimator, clean_training_attack, poisoned_training
    from nasforge.spaces import get_space
    from nasforge.strategies.blackbox import RegularizedEvolution
    from nasforge.study import create_study

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--random", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--poison-rate", type=float, default=0.02)
    ap.add_argument("--mask-area", type=float, default=0.03)
    ap.add_argument("--train", choices=("poisoned", "clean"), default="poisoned",
                    help="poisoned: network and trigger trained together (default); clean: EVAS's protocol")
    ap.add_argument("--trigger-epochs", type=int, default=10, help="--train clean: epochs fitting the trigger")
    args = ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    space, data = get_space("nb201"), load_digits(seed=0)
    est = BackdoorEstimator(space, data, batch_size=16, repeats=1, seed=0, net=NET)
    print(f"data: {data}; torch threads {torch.get_num_threads()}")

    def kappa(arch) -> float:
        f = OUT / f"kappa-{space.format(arch)}.json"
        if f.is_file():
            return json.loads(f.read_text())["kappa_trigger"]
        k = est.estimate(arch).metrics["kappa_trigger"]
        f.write_text(json.dumps({"kappa_trigger": k}))
        return k

    class Cached(BackdoorEstimator):
        def estimate(self, arch, fidelity=None):  # type: ignore[override]
            from nasforge.estimation.base import Measurement

            k = kappa(space.coerce(arch))
            return Measurement({"log_kappa_trigger": math.log(k) if k > 0 else -math.inf, "kappa_trigger": k},
                               0.0, None, {})

    t0 = time.perf_counter()
    study = create_study("evas", space, metric="log_kappa_trigger", maximize=False)
    study.optimize(RegularizedEvolution(space, population_size=10, sample_size=3, seed=0),
                   Cached(space, data, batch_size=16, repeats=1, seed=0, net=NET), n_trials=args.trials)
    found = space.parse(study.best_trial.arch)
    print(f"RE over {args.trials} cells by kappa_trigger ({time.perf_counter() - t0:.0f} s): {space.format(found)} "
          f"kappa {kappa(found):.4g}")
    rng = np.random.default_rng(1)
    randoms = []
    while len(randoms) < args.random:
        a = space.sample(rng)
        if a not in randoms and a != found:
            randoms.append(a)
    ks = [kappa(a) for a in randoms]
    print(f"random cells' kappa_trigger: {', '.join(f'{k:.4g}' for k in ks)}")

    def attack(arch, seed: int) -> dict:
        if args.train == "clean":
            tag = f"clean-e{args.epochs}-t{args.trigger_epochs}-m{args.mask_area:g}-s{seed}"
        else:
            tag = f"e{args.epochs}-p{args.poison_rate:g}-m{args.mask_area:g}-s{seed}"
        f = OUT / f"asr-{tag}-{space.format(arch)}.json"
        if f.is_file():
            return json.loads(f.read_text())
        model = BackdoorEstimator(space, data, batch_size=16, repeats=1, seed=seed, net=NET).build(arch, 0)
        if args.train == "clean":
            r = clean_training_attack(model, data, epochs=args.epochs, trigger_epochs=args.trigger_epochs,
                                      mask_budget=args.mask_area, seed=seed)
        else:
            r = poisoned_training(model, data, epochs=args.epochs, poison_rate=args.poison_rate,
                                  mask_budget=args.mask_area, seed=seed)
        f.write_text(json.dumps(r))
        return r

    rows = []
    for label, a in [("found (lowest kappa)", found)] + [(f"random {i}", a) for i, a in enumerate(randoms)]:
        rs = [attack(a, s) for s in range(args.seeds)]
        asr, acc = [r["asr"] for r in rs], [r["clean_acc"] for r in rs]
        rows.append((label, a, kappa(a), asr, acc))
        print(f"  {label}: kappa {kappa(a):.4g}  ASR {_mean_se(asr)}  clean {_mean_se(acc)}  {space.format(a)}",
              flush=True)
    if args.train == "clean":
        print(f"\nclean training (EVAS): {args.epochs} epochs on clean data, then the trigger fitted "
              f"{args.trigger_epochs} epochs against the frozen network, trigger on {100 * args.mask_area:g}% of each "
              f"image, {args.seeds} seeds (mean ± s.e. over seeds)")
    else:
        print(f"\npoisoned training: {args.epochs} epochs, {100 * args.poison_rate:g}% poisoned, trigger on "
              f"{100 * args.mask_area:g}% of each image, {args.seeds} seeds (mean ± s.e. over seeds)")
    print("| cell | kappa_trigger | ASR (%) | clean acc (%) |")
    print("|---|---|---|---|")
    for label, a, k, asr, acc in rows:
        print(f"| {label} | {k:.4g} | {_mean_se(asr)} | {_mean_se(acc)} |")
    rand_asr = [float(np.mean(r[3])) for r in rows[1:]]
    rand_acc = [float(np.mean(r[4])) for r in rows[1:]]
    print(f"random cells, mean of their seed-means: ASR {_mean_se(rand_asr)}, clean acc {_mean_se(rand_acc)}")
    beat = [float(np.mean([f > x for x in rand_asr])) for f in rows[0][3]]
    print(f"found cell's ASR above the random cells' seed-mean ASR: {100 * float(np.mean(beat)):.0f}% of "
          f"(seed, random cell) pairs; found-cell ASR per seed: {', '.join(f'{v:.2f}' for v in rows[0][3])}")
    print(f"Spearman(kappa_trigger, ASR) over {len(rows)} cells: "
          f"{spearman([r[2] for r in rows], [float(np.mean(r[3])) for r in rows]):.3f} (EVAS: negative)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
