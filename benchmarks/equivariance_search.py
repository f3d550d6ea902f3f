"""Equivariance-aware search on rotated digits (Maile et al., ICLR 2023, at CPU scale).

    nice -n 10 python benchmarks/equivariance_search.py [--seeds 3]
    nice -n 10 python benchmarks/equivariance_search.py --variant d4 [--seeds 3]

Data: scikit-learn's digits (8x8), each image turned by its own angle drawn from [-90°, 90°]
(fixed angles; the seed splits 60/20/20). Networks: 4 layers of 32 planes (a lifting layer and
three group convolutions, 2x2 max-pooling after the second), group per layer in {C4, C2, C1}
(81 networks), invariant head. Every network is trained the same way (SGD+Nesterov lr 0.05,
cosine, batch 32, no weight decay, 20 epochs, one torch thread) and selected by validation
accuracy; test accuracy is reported. Per seed:

* fixed: all C4 (fully equivariant), all C2, all C1 (plain CNN);
* RE: regularised evolution over the group per layer, 12 trained networks;
* EquiNAS_E: relaxation morphisms from the all-C4 network (population 2, 4 generations);
* EquiNAS_D: [G]-mixed layers, first-order differentiable search (10 epochs);
  the networks EquiNAS_E and EquiNAS_D choose are retrained from scratch like the others.

``--variant d4``: the same digits, each first mirrored left-right with probability 1/2, then
turned; groups per layer {D4, C4, D2, C2, D1, C1} (1,296 networks, D4 plane layout: every
network pools over 8 planes per channel), 48 planes (6 D4 channels; 32 would leave the invariant
head only 4 features); fixed networks all D4, C4, D2, C2 and C1; EquiNAS_E starts from all D4
(a child relaxes one layer to a maximal subgroup: D4 -> C4 or D2, ...), EquiNAS_D mixes all six
groups in every layer.

Per-seed results are cached in benchmarks/out/equi18/seed_<s>.json (d4: equi18_d4/).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

from nasforge.data.rotated import load_rotated_digits  # noqa: E402
from nasforge.estimation.training import TrainingEstimator  # noqa: E402
from nasforge.oneshot.equinas import accuracy, mixed_search, relaxation_search  # noqa: E402
from nasforge.spaces.equivariant import DIHEDRAL_GROUPS, ROTATION_GROUPS, equivariant_space  # noqa: E402
from nasforge.strategies import get_strategy  # noqa: E402
from nasforge.study import create_study  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "equi18"
VARIANTS = {
    "c4": {"flip": False, "groups": ROTATION_GROUPS, "planes": 32, "out": OUT,
           "fixed": (("all C4", "C4"), ("all C2", "C2"), ("all C1 (plain)", "C1"))},
    "d4": {"flip": True, "groups": DIHEDRAL_GROUPS, "planes": 48, "out": OUT.with_name("equi18_d4"),
           "fixed": (("all D4", "D4"), ("all C4", "C4"), ("all D2", "D2"), ("all C2", "C2"),
                     ("all C1 (plain)", "C1"))},
}


def arch(groups) -> str:
    return ",".join(f"layer{i}={g}" for i, g in enumerate(groups))


def one_seed(seed: int, trials: int, variant: str = "c4") -> dict:
    v = VARIANTS[variant]
    data = load_rotated_digits(seed=seed, max_degrees=90.0, flip=v["flip"])
    space = equivariant_space(4, v["groups"])
    planes = v["planes"]
    est = TrainingEstimator(space, data, max_epochs=20, optimizer="sgd", lr=0.05, batch_size=32, weight_decay=0.0,
                            net={"planes": planes}, seed=seed, threads=1)
    res: dict = {}
    t0 = time.process_time()

    def measure(groups) -> dict:
        m = est.estimate(arch(groups))
        return {"groups": list(groups), "valid_acc": m.metrics["valid_acc"], "test_acc": m.metrics["test_acc"],
                "params": m.metrics["params"]}

    for name, g in v["fixed"]:
        res[name] = measure([g] * 4)
    st = create_study(f"re-{seed}", space, "valid_acc")
    st.optimize(get_strategy("re", space, seed=seed, population_size=6, sample_size=3), est, n_trials=trials)
    best = space.coerce(st.best_trial.arch)
    res["RE (12 trained)"] = measure(list(best))
    t1 = time.process_time()
    e = relaxation_search(data, layers=4, planes=planes, seed=seed, groups=v["groups"])
    x_te, y_te = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    res["EquiNAS_E"] = {**measure(e["groups"]), "inherited_test_acc": accuracy(e["network"], x_te, y_te),
                        "search_cpu_s": time.process_time() - t1, "history": e["history"]}
    t2 = time.process_time()
    d = mixed_search(data, layers=4, planes=planes, seed=seed, groups=v["groups"])
    res["EquiNAS_D"] = {**measure(d["groups"]), "alphas": d["alphas"], "search_cpu_s": time.process_time() - t2}
    res["cpu_s"] = time.process_time() - t0
    return res


def se(xs) -> str:
    x = np.asarray(xs, dtype=float)
    return f"{x.mean():.2f} ± {x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else 0.0:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="c4")
    args = ap.parse_args()
    out = VARIANTS[args.variant]["out"]
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for s in range(args.seeds):
        path = out / f"seed_{s}.json"
        if path.exists():
            r = json.loads(path.read_text())
        else:
            r = one_seed(s, args.trials, args.variant)
            path.write_text(json.dumps(r))
        print(f"seed {s}: " + "; ".join(f"{k} {'/'.join(v['groups'])} {v['test_acc']:.1f}"
                                        for k, v in r.items() if isinstance(v, dict)), flush=True)
        runs.append(r)
    task = "rotated and flipped digits (±90°, mirrored with p = 1/2)" if args.variant == "d4" else "rotated digits (±90°)"
    print(f"\n{task}, test accuracy of the selected network, {args.seeds} seeds (mean ± s.e.):")
    print("  method            test acc (%)   valid acc (%)  params      groups chosen")
    for k in runs[0]:
        if not isinstance(runs[0][k], dict):
            continue
        rows = [r[k] for r in runs]
        chosen = sorted({"/".join(r["groups"]) for r in rows})
        print(f"  {k:16s}  {se([r['test_acc'] for r in rows]):>12s}  {se([r['valid_acc'] for r in rows]):>12s}  "
              f"{np.mean([r['params'] for r in rows]):8.0f}    {', '.join(chosen)}")
    e = [r["EquiNAS_E"] for r in runs]
    print(f"  EquiNAS_E with its inherited weights (no retraining): test {se([r['inherited_test_acc'] for r in e])}; "
          f"search {np.mean([r['search_cpu_s'] for r in e]):.0f} s CPU; "
          f"EquiNAS_D search {np.mean([r['EquiNAS_D']['search_cpu_s'] for r in runs]):.0f} s CPU")
    print(f"  CPU per seed: {np.mean([r['cpu_s'] for r in runs]):.0f} s")


if __name__ == "__main__":
    main()
