"""DaSS (Lee et al., ICLR 2023) at CPU scale: does a meta-learned, teacher-aware predictor rank
distilled students on an unseen task better than the same predictor without the teacher?

Protocol:

1. Five image tasks, each with its own NB201 teacher (the NB201 CIFAR-10 optimum cell, C=16, N=2,
   trained ``--teacher-epochs`` epochs on the task):
   ``digits`` (200 training images, 10 classes), ``digits-rot90`` (the same split turned by random
   angles up to 90 degrees), and three CIFAR-10 class subsets reduced to 8x8 RGB
   (``cifar8-vehicles`` 4 classes, ``cifar8-animals`` 6 classes, ``cifar8-all`` 10 classes; 600
   training, 1,000 validation and 2,000 test images each).
2. ``--students`` random NB201 cells per task (the same cells on every task, drawn with seed 0),
   each a C=8, N=1 student distilled from that task's teacher for ``--epochs`` epochs (SGD, KD at
   T=4 with weight 0.9, training seed 0). Every result is cached under ``benchmarks/out/dass/``.
3. Leave one task out: DaSS (:class:`nasforge.transfer.dass.DaSS`) is meta-trained on the
   validation accuracies of the other four tasks' students and ranks the held-out task's
   students, which it has never seen trained; Spearman's rho and Kendall's tau with their test
   accuracies. The same for the predictor without the teacher (no functional embedding, no
   teacher embedding), ``--seeds`` predictor seeds each.

    nice -n 10 python benchmarks/dass.py --students 40 --seeds 3
    nice -n 10 python benchmarks/dass.py --train-only      # only the KD trainings (resumable)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "out" / "dass"
TEACHER_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TEACHER_NET = {"C": 16, "N": 2}
STUDENT_NET = {"C": 8, "N": 1}
TASKS = ("digits", "digits-rot90", "cifar8-vehicles", "cifar8-animals", "cifar8-all")
CIFAR_SUBSETS = {"cifar8-vehicles": (0, 1, 8, 9), "cifar8-animals": (2, 3, 4, 5, 6, 7), "cifar8-all": tuple(range(10))}

#: the paper's setting, for the table's header (its correlation numbers were not retrievable here)
PAPER = ("paper: ResNet teacher and students, meta-trained on Tiny-ImageNet subsets, meta-tested on CUB, "
         "Stanford Cars, DTD and Quickdraw at 64x64; correlation numbers not retrieved")


def _cifar_subset(name: str, seed: int = 0, n_train: int = 600, n_val: int = 1000, n_test: int = 2000):
    from nasforge.data import from_arrays
    from nasforge.estimation.tabular import find_data_dir

    root = find_data_dir()
    if root is None or not (root / "cifar10" / "train25k.npz").is_file():
        raise SystemExit("CIFAR-10 npz files not found (set NASFORGE_DATA)")
    classes = CIFAR_SUBSETS[name]
    with np.load(root / "cifar10" / "train25k.npz") as f:
        x, y = f["x"], f["y"]
    with np.load(root / "cifar10" / "test10k.npz") as f:
        xt, yt = f["x"], f["y"]
    rng = np.random.default_rng(seed)

    def pick(xs, ys, n):
        idx = np.flatnonzero(np.isin(ys, classes))
        idx = np.sort(rng.choice(idx, n, replace=False))
        lab = np.searchsorted(np.asarray(classes), ys[idx])
        small = xs[idx].astype(np.float32).reshape(len(idx), 8, 4, 8, 4, 3).mean(axis=(2, 4))  # 32x32 -> 8x8
        return small, lab

    xa, ya = pick(x, y, n_train + n_val)
    xb, yb = pick(xt, yt, n_test)
    return from_arrays(xa, ya, xb, yb, name=name, seed=seed, val_fraction=n_val / (n_train + n_val),
                       num_classes=len(classes))


def load_task(name: str):
    from nasforge.data import load_digits
    from nasforge.data.rotated import load_rotated_digits

    if name == "digits":
        rest = (1797 - 200) / 1797 / 2
        return load_digits(seed=0, val_fraction=rest, test_fraction=rest)
    if name == "digits-rot90":
        return load_rotated_digits(seed=0, max_degrees=90, n_train=200)
    return _cifar_subset(name)


def students(space, n: int) -> list:
    rng = np.random.default_rng(0)
    out: list = []
    while len(out) < n:
        a = space.sample(rng)
        if a not in out:
            out.append(a)
    return out


def teacher_for(space, name: str, data, epochs: int):
    from nasforge.estimation.training import TrainingEstimator

    est = TrainingEstimator(space, data, max_epochs=epochs, net=TEACHER_NET, seed=0, threads=1)
    arch = space.parse(TEACHER_CELL)
    f = OUT / f"teacher-{name}-e{epochs}.pt"
    meta = OUT / f"teacher-{name}-e{epochs}.json"
    net = est.build(arch)
    if f.is_file() and meta.is_file():
        net.load_state_dict(torch.load(f, weights_only=True))
        acc = json.loads(meta.read_text())
    else:
        t0 = time.perf_counter()
        net = est.trained_model(arch)
        net.eval()
        acc = {"valid_acc": est.evaluate(net, "valid")[0], "test_acc": est.evaluate(net, "test")[0],
               "seconds": time.perf_counter() - t0}
        torch.save(net.state_dict(), f)
        meta.write_text(json.dumps(acc))
    net.eval()
    return net, acc


def distilled(space, name: str, data, teacher, arch, epochs: int) -> dict:
    from nasforge.estimation.training import TrainingEstimator

    f = OUT / f"kd-{name}-e{epochs}-s0-{space.format(arch)}.json"
    if f.is_file():
        return json.loads(f.read_text())
    t0 = time.perf_counter()
    m = TrainingEstimator(space, data, max_epochs=epochs, net=STUDENT_NET, seed=0, threads=1,
                          teacher=teacher, kd_temperature=4.0, kd_weight=0.9).estimate(arch).metrics
    r = {"valid_acc": m["valid_acc"], "test_acc": m["test_acc"], "seconds": time.perf_counter() - t0}
    f.write_text(json.dumps(r))
    return r


def _mean_se(v) -> str:
    a = np.asarray(v, dtype=float)
    se = a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else math.nan
    return f"{a.mean():.3f} ± {se:.3f}"


def main() -> int:
    from nasforge.spaces.nb201 import NB201Space

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--teacher-epochs", type=int, default=30)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--train-only", action="store_true", help="only run (or finish) the KD trainings")
    ap.add_argument("--data-probe", action="store_true", help="also DaSS with the dataset's examples as probes")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    space = NB201Space()
    names = [t for t in args.tasks.split(",") if t]
    cells = students(space, args.students)
    t_start = time.perf_counter()

    data, teachers, t_acc, recs = {}, {}, {}, {}
    # round-robin over tasks, so a partial run has students on every task
    for name in names:
        data[name] = load_task(name)
        teachers[name], t_acc[name] = teacher_for(space, name, data[name], args.teacher_epochs)
        print(f"{name}: {data[name]}; teacher test acc {t_acc[name]['test_acc']:.2f}", flush=True)
        recs[name] = []
    for i, a in enumerate(cells):
        for name in names:
            recs[name].append(distilled(space, name, data[name], teachers[name], a, args.epochs))
        if i % 5 == 4:
            print(f"  {i + 1} students on every task ({time.perf_counter() - t_start:.0f} s)", flush=True)
    secs = [r["seconds"] for n in names for r in recs[n]]
    print(f"KD trainings: {len(secs)}, mean {np.mean(secs):.1f} s each (as first run)")
    if args.train_only:
        return 0
    return evaluate(space, names, cells, data, teachers, t_acc, recs, args)


def evaluate(space, names, cells, data, teachers, t_acc, recs, args) -> int:
    from nasforge.analysis.correlation import kendall_tau, spearman
    from nasforge.spaces.nb201_net import nb201_param_count
    from nasforge.transfer.dass import DaSS, DaSSTask

    n = len(cells)
    val = {k: np.array([r["valid_acc"] for r in recs[k]]) for k in names}
    test = {k: np.array([r["test_acc"] for r in recs[k]]) for k in names}
    tasks = {k: DaSSTask(k, data[k], teachers[k], cells, val[k]) for k in names}
    variants = {"DaSS (teacher-aware)": {"use_teacher": True},
                "same model, no teacher": {"use_teacher": False}}
    if args.data_probe:
        variants["DaSS, probe = the data's examples"] = {"use_teacher": True, "probe": "data"}
    res_file = OUT / f"loto-n{n}-e{args.epochs}.json"
    res = json.loads(res_file.read_text()) if res_file.is_file() else {}
    print(f"\nLeave one task out: {n} KD-trained students per task (1 training seed); predictors meta-trained on "
          f"the other {len(names) - 1} tasks' validation accuracies, scored against the held-out test accuracies")
    print(PAPER)
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {v: {} for v in variants}
    targets = {k: DaSSTask(k, data[k], teachers[k]) for k in names}  # no records: nothing to leak
    predictors = {(v, seed): DaSS(space, seed=seed, **kw) for v, kw in variants.items() for seed in range(args.seeds)}
    for held in names:
        train = [tasks[k] for k in names if k != held]
        target = targets[held]
        for v in variants:
            for seed in range(args.seeds):
                key = f"{held}|{v}|{seed}"
                if key not in res:
                    t0 = time.perf_counter()
                    p = predictors[v, seed].fit(train).predict(target, cells)
                    res[key] = {"spearman": spearman(p, test[held]), "kendall": kendall_tau(p, test[held]),
                                "seconds": time.perf_counter() - t0}
                    res_file.write_text(json.dumps(res, indent=1))
                    print(f"  {key}: rho {res[key]['spearman']:.3f} ({res[key]['seconds']:.0f} s)", flush=True)
                rows[v].setdefault(held, []).append((res[key]["spearman"], res[key]["kendall"]))

    # references that need no meta-learning
    params = [nb201_param_count(a, **STUDENT_NET, num_classes=10, in_channels=3) for a in cells]
    from nasforge.estimation.distill import DisWOTEstimator

    diswot = {}
    for k in names:
        est = DisWOTEstimator(space, data[k], teachers[k], batch_size=64, seed=0, net=STUDENT_NET)
        diswot[k] = [est.estimate(a).metrics["diswot"] for a in cells]
    ref = {"DisWOT score (training-free)": diswot,
           "parameters of the student": {k: params for k in names},
           "mean rank on the other tasks (no model)": {
               k: np.mean([np.argsort(np.argsort(val[o])) for o in names if o != k], axis=0) for k in names},
           "(ceiling) its own validation accuracy": val}
    print("\n| held-out task | teacher test acc | KD student test acc (mean, min-max) | "
          + " | ".join(f"{v}: Spearman / Kendall" for v in variants) + " | "
          + " | ".join(ref) + " |")
    print("|---|---|---|" + "---|" * (len(variants) + len(ref)))
    for held in names:
        cells_txt = [f"{_mean_se([r[0] for r in rows[v][held]])} / {_mean_se([r[1] for r in rows[v][held]])}"
                     for v in variants]
        ref_txt = [f"{spearman(ref[r][held], test[held]):.3f}" for r in ref]
        t = test[held]
        print(f"| {held} | {t_acc[held]['test_acc']:.1f} | {t.mean():.1f} ({t.min():.1f}-{t.max():.1f}) | "
              + " | ".join(cells_txt) + " | " + " | ".join(ref_txt) + " |")
    allv = {v: [np.mean([r[0] for r in rows[v][h]]) for h in names] for v in variants}
    print("| mean over tasks (Spearman) | | | " + " | ".join(f"{np.mean(allv[v]):.3f}" for v in variants) + " | "
          + " | ".join(f"{np.mean([spearman(ref[r][h], test[h]) for h in names]):.3f}" for r in ref) + " |")
    d = [np.mean([r[0] for r in rows["DaSS (teacher-aware)"][h]]) - np.mean([r[0] for r in rows["same model, no teacher"][h]])
         for h in names]
    print(f"\nDaSS - no-teacher Spearman, per held-out task (seed means): {', '.join(f'{x:+.3f}' for x in d)}; "
          f"mean {_mean_se(d)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
