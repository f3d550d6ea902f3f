"""Study-loop speed: in-memory simulation rate, and per-trial SQLite overhead vs Optuna.

Both libraries run random search over the NB201 cell (6 categorical choices of 5 operations)
with the same trivial objective (a sum of op scores, no table I/O), 1,000 trials, each into a
fresh SQLite file on the same disk. Optuna uses its default RDB storage (with SQLAlchemy).

    python benchmarks/study_overhead.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from nasforge.estimation import Estimator, Measurement
from nasforge.spaces import NB201Space
from nasforge.spaces.nb201 import OPS
from nasforge.strategies import get_strategy
from nasforge.study import Study

SCORE = {op: i for i, op in enumerate(OPS)}


class Trivial(Estimator):
    metric_names = ["acc"]

    def estimate(self, arch, fidelity=None):
        return Measurement({"acc": float(sum(SCORE[o] for o in arch))})


def nasforge_run(n: int, url: str | None) -> float:
    space = NB201Space()
    study = Study("bench", space, "acc", storage=url)
    t0 = time.perf_counter()
    study.optimize(get_strategy("random", space, seed=0, allow_duplicates=True), Trivial(), n_trials=n)
    return time.perf_counter() - t0


def optuna_run(n: int, url: str) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="bench", storage=url, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial: "optuna.Trial") -> float:
        return float(sum(SCORE[trial.suggest_categorical(f"e{i}", list(OPS))] for i in range(6)))

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--memory-trials", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    mem = [args.memory_trials / nasforge_run(args.memory_trials, None) for _ in range(args.repeats)]
    print(f"in-memory random search (trivial objective, duplicates allowed): "
          f"median {statistics.median(mem):,.0f} trials/s over {args.repeats} runs of {args.memory_trials:,}")

    from nasforge.estimation import load_benchmark
    from nasforge.estimation.tabular import find_data_dir

    if find_data_dir() is not None:
        bench = load_benchmark("nb201:cifar10")
        space = bench.space
        rates = []
        for r in range(args.repeats):
            st = Study("t", space, "valid_acc")
            t0 = time.perf_counter()
            st.optimize(get_strategy("random", space, seed=r), bench, n_trials=10_000)
            rates.append(10_000 / (time.perf_counter() - t0))
        print(f"in-memory random search on the NB201 CIFAR-10 table (no duplicates, 10,000 of 15,625 cells): "
              f"median {statistics.median(rates):,.0f} trials/s")

    ours, theirs = [], []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as d:
            ours.append(nasforge_run(args.trials, f"sqlite:///{Path(d) / 'n.db'}") / args.trials * 1e3)
        with tempfile.TemporaryDirectory() as d:
            theirs.append(optuna_run(args.trials, f"sqlite:///{Path(d) / 'o.db'}") / args.trials * 1e3)
    import optuna

    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"SQLite, {args.trials} trials, median of {args.repeats}: nasforge {a:.3f} ms/trial, "
          f"optuna {optuna.__version__} {b:.3f} ms/trial; ratio {a / b:.3f} (nasforge/optuna)")


if __name__ == "__main__":
    main()
