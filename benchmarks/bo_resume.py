"""Resume cost of a GP-BO study (issue 20, item 7): seconds from opening a stored N-trial study to
its first new trial, replaying the stored log with the recorded GP hyperparameters (the default)
and by re-fitting at every replayed step (``replay_ask`` switched off: what resuming cost before),
and a check that the resumed run continues exactly as an uninterrupted one.

    python benchmarks/bo_resume.py --trials 500 --more 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from nasforge.estimation import load_benchmark
from nasforge.estimation.tabular import find_data_dir
from nasforge.strategies import get_strategy
from nasforge.study import create_study, load_study


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--more", type=int, default=20, help="new trials after the resume (compared)")
    ap.add_argument("--kernel", default="tw2")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data = find_data_dir()
    if data is None or not (data / "nb201" / "cifar10.csv").is_file():
        print("skipped: the reference data folder (../shared/data) with nb201/cifar10.csv is absent")
        return 0
    bench = load_benchmark("nb201:cifar10", data_dir=data)
    space = bench.space
    kw = {"kernel": args.kernel}
    tmp = tempfile.mkdtemp(prefix="bo-resume-")
    url = f"sqlite:///{os.path.join(tmp, 'bo.db')}"

    def strategy():
        return get_strategy("bo", space, seed=args.seed, **kw)

    t0 = time.perf_counter()
    ref = create_study("ref", space, "valid_acc", storage=url)
    ref.optimize(strategy(), bench, n_trials=args.trials + args.more)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = create_study("run", space, "valid_acc", storage=url)
    first.optimize(strategy(), bench, n_trials=args.trials)
    t_first = time.perf_counter() - t0
    print(f"bo ({args.kernel}) on nb201:cifar10, seed {args.seed}: {args.trials + args.more} trials uninterrupted in "
          f"{t_ref:.1f} s; {args.trials} trials in {t_first:.1f} s, then resumed:")
    first.storage.close()
    ref.storage.close()
    rows = []
    for i, mode in enumerate(("recorded hyperparameters (default)", "re-fitting every step (before)")):
        copy = os.path.join(tmp, f"copy{i}.db")  # asking writes a trial: each mode resumes its own copy
        shutil.copy(os.path.join(tmp, "bo.db"), copy)
        st = load_study("run", f"sqlite:///{copy}")
        s = strategy()
        if mode.startswith("re-fitting"):
            s.replay_ask = None  # the study then replays through ask(): the model is fitted at every step
        c0, t0 = time.process_time(), time.perf_counter()
        trial = st.ask(s)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append((mode, wall, cpu, trial.arch, s.gp.params.copy(), s.gp.n_refits))
        print(f"  {mode}: first new trial after {wall:.2f} s wall ({cpu:.2f} s CPU), {s.gp.n_refits} GP refit(s)")
        st.storage.close()
    a, b = rows
    same = a[3] == b[3] and np.array_equal(a[4], b[4])
    print(f"  same next architecture and bit-identical GP hyperparameters both ways: {same}")
    # continue the default way to the end and compare with the uninterrupted run
    shutil.copy(os.path.join(tmp, "bo.db"), os.path.join(tmp, "copy2.db"))
    st = load_study("run", f"sqlite:///{os.path.join(tmp, 'copy2.db')}")
    st.optimize(strategy(), bench, n_trials=args.trials + args.more)
    got = [t.arch for t in st.trials]
    ref_trials = load_study("ref", url).trials
    want = [t.arch for t in ref_trials]
    identical = got == want and [t.value for t in st.trials] == [t.value for t in ref_trials]
    print(f"  resumed run identical to the uninterrupted one over {len(want)} trials: {identical}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if same and identical else 1


if __name__ == "__main__":
    sys.exit(main())
