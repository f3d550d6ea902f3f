"""DisWOT against KD-trained NB201 students, and GeNAS flatness against accuracy (issue 15).

Protocol (CPU scale, the embedded default task: digits, 200 training images, 800 validation,
798 test):

1. Teacher: the NB201 CIFAR-10 optimum cell in a larger network (C=16, N=2) trained 30 epochs.
2. ``--students`` random NB201 cells (C=8, N=1), each trained 10 epochs with each of
   ``--seeds`` training seeds twice: plainly (with GeNAS flatness measured on the validation
   split after training) and with knowledge distillation from the teacher (T=4, weight 0.9).
3. Training-free scores of the same untrained students on one 64-image batch: DisWOT against the
   trained teacher and against the same teacher untrained, NASWOT, synflow, snip, parameters.
4. Spearman's rho of each score with the seed-mean KD test accuracy and with the plain one;
   flatness against the plain test accuracy.
5. Search: regularised evolution over the whole space by DisWOT (and by NASWOT), ``--search-trials``
   scored cells each; the found cells are KD-trained and compared with the random students.
6. DisWOT as a distiller: the first ``--distiller-students`` students KD-trained with DisWOT's
   distances added to the loss, against KD alone, paired by student and seed.
7. GeNAS-style selection among the random students: the cell of highest flatness against the
   cell of highest validation accuracy (test accuracy reported).

Every training result is cached under ``benchmarks/out/diswot/`` so a killed run continues.

    nice -n 5 python benchmarks/diswot_nb201.py --students 50 --seeds 2
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "out" / "diswot"
TEACHER_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
STUDENT_NET = {"C": 8, "N": 1}


def _mean_se(v: list[float]) -> str:
    a = np.asarray(v, dtype=float)
    se = a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else math.nan
    return f"{a.mean():.2f} ± {se:.2f}"


def main() -> int:
    from nasforge.analysis.correlation import spearman
    from nasforge.estimation.distill import DisWOTEstimator
    from nasforge.estimation.proxies import ProxyEstimator
    from nasforge.estimation.training import TrainingEstimator
    from nasforge.strategies.blackbox import RegularizedEvolution
    from nasforge.study import create_study
    from nasforge.study.task import build_task, merge_settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--teacher-epochs", type=int, default=30)
    ap.add_argument("--search-trials", type=int, default=300)
    ap.add_argument("--distiller-students", type=int, default=12)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    task = build_task(merge_settings({}, {}, None), None, None)
    torch.set_num_threads(1)
    space, data = task.space, task.estimator.dataset
    print(f"data: {data}; torch threads {torch.get_num_threads()}")

    # 1. the teacher
    t_est = TrainingEstimator(space, data, max_epochs=args.teacher_epochs, net={"C": 16, "N": 2}, seed=0, threads=1)
    t_file = OUT / f"teacher-e{args.teacher_epochs}.pt"
    t_arch = space.parse(TEACHER_CELL)
    teacher = t_est.build(t_arch)
    if t_file.is_file():
        teacher.load_state_dict(torch.load(t_file, weights_only=True))
    else:
        t0 = time.perf_counter()
        teacher = t_est.trained_model(t_arch)
        torch.save(teacher.state_dict(), t_file)
        print(f"teacher trained in {time.perf_counter() - t0:.0f} s")
    teacher.eval()
    t_acc, _ = t_est.evaluate(teacher, "test")
    print(f"teacher {TEACHER_CELL} C=16 N=2: test acc {t_acc:.2f}")

    rng = np.random.default_rng(0)
    students: list = []
    while len(students) < args.students:
        a = space.sample(rng)
        if a not in students:
            students.append(a)

    def trained(kind: str, arch, seed: int) -> dict:
        f = OUT / f"{kind}-e{args.epochs}-s{seed}-{space.format(arch)}.json"
        if f.is_file():
            return json.loads(f.read_text())
        kw: dict = {"max_epochs": args.epochs, "net": STUDENT_NET, "seed": seed, "threads": 1}
        if kind == "plain":
            kw["flatness"] = True
        elif kind in ("kd", "diswot"):
            kw.update(teacher=teacher, distiller=kind)
        m = TrainingEstimator(space, data, **kw).estimate(arch).metrics
        r = {k: m[k] for k in ("test_acc", "valid_acc", "flatness") if k in m}
        f.write_text(json.dumps(r))
        return r

    # 2. students, plain and distilled
    t0 = time.perf_counter()
    acc = {"kd": [], "plain": []}
    val_plain, flat = [], []
    for i, a in enumerate(students):
        for kind in ("plain", "kd"):
            rs = [trained(kind, a, s) for s in range(args.seeds)]
            acc[kind].append(float(np.mean([r["test_acc"] for r in rs])))
            if kind == "plain":
                val_plain.append(float(np.mean([r["valid_acc"] for r in rs])))
                flat.append(float(np.mean([r["flatness"] for r in rs])))
        print(f"  student {i:2d}: plain {acc['plain'][-1]:.2f}  kd {acc['kd'][-1]:.2f}  {space.format(a)}", flush=True)
    print(f"students trained in {time.perf_counter() - t0:.0f} s")

    # 3. training-free scores
    dis = DisWOTEstimator(space, data, teacher, batch_size=64, seed=0, net=STUDENT_NET)
    dis0 = DisWOTEstimator(space, data, t_est.build(t_arch), batch_size=64, seed=0, net=STUDENT_NET)
    prox = ProxyEstimator(space, data, proxies="naswot,synflow,snip,params", batch_size=64, seed=0, net=STUDENT_NET)
    scores: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    for a in students:
        m = dis.estimate(a).metrics
        for k in ("diswot", "diswot_semantic", "diswot_relation"):
            scores.setdefault(k, []).append(m[k])
        scores.setdefault("diswot (untrained teacher)", []).append(dis0.estimate(a).metrics["diswot"])
        for k, v in prox.estimate(a).metrics.items():
            scores.setdefault(k, []).append(v)
    print(f"scores of {len(students)} students in {time.perf_counter() - t0:.1f} s")

    print(f"\nSpearman rho with the seed-mean test accuracy of {len(students)} students ({args.seeds} seeds each)")
    print("| score | vs KD-trained acc | vs plainly trained acc |")
    print("|---|---|---|")
    for k, v in scores.items():
        print(f"| {k} | {spearman(v, acc['kd']):.3f} | {spearman(v, acc['plain']):.3f} |")
    print(f"| (plain acc itself) | {spearman(acc['plain'], acc['kd']):.3f} | 1 |")
    print(f"\nKD - plain test accuracy, mean ± s.e. over students: "
          f"{_mean_se([k - p for k, p in zip(acc['kd'], acc['plain'])])}")
    print(f"GeNAS flatness vs plain test acc: Spearman {spearman(flat, acc['plain']):.3f}; "
          f"validation acc vs plain test acc: {spearman(val_plain, acc['plain']):.3f}")
    i_flat, i_val = int(np.argmax(flat)), int(np.argmax(val_plain))
    print(f"selection among the {len(students)}: highest flatness -> test {acc['plain'][i_flat]:.2f} "
          f"({space.format(students[i_flat])}); highest valid acc -> test {acc['plain'][i_val]:.2f} "
          f"({space.format(students[i_val])}); mean {np.mean(acc['plain']):.2f}, best {max(acc['plain']):.2f}")

    # 5. search by DisWOT and by NASWOT
    naswot_est = ProxyEstimator(space, data, proxies="naswot", batch_size=64, seed=0, net=STUDENT_NET)
    found = {}
    for name, est, metric in (("diswot", dis, "diswot"), ("naswot", naswot_est, "naswot")):
        t0 = time.perf_counter()
        study = create_study(f"re-{name}", space, metric=metric, maximize=True)
        study.optimize(RegularizedEvolution(space, population_size=20, sample_size=5, seed=0), est,
                       n_trials=args.search_trials)
        best = space.parse(study.best_trial.arch)
        found[name] = best
        rs = [trained("kd", best, s)["test_acc"] for s in range(args.seeds)]
        seeds = ", ".join(f"{v:.2f}" for v in rs)
        print(f"RE by {name} ({args.search_trials} trials, {time.perf_counter() - t0:.0f} s): {space.format(best)} "
              f"-> KD test acc {np.mean(rs):.2f} (seeds: {seeds})")
    print(f"random students, KD test acc: mean {_mean_se(acc['kd'])}, best {max(acc['kd']):.2f}")

    # 6. DisWOT as a distiller
    diffs = []
    for a in students[: args.distiller_students]:
        for s in range(args.seeds):
            d = trained("diswot", a, s)["test_acc"] - trained("kd", a, s)["test_acc"]
            diffs.append(d)
    print(f"KD + DisWOT distances - KD alone, test acc: {_mean_se(diffs)} over {len(diffs)} (student, seed) pairs "
          f"({args.distiller_students} students)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
