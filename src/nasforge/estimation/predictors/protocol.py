"""NASLib's predictor-evaluation protocol (White et al., NeurIPS 2021) on a tabular benchmark.

For each seed: a random test set of ``n_test`` architectures, and disjoint random training sets
of each size in ``train_sizes`` (nested: the size-20 set starts with the size-10 set); the
predictor is fitted on the training set's ``metric`` and scored on the test set by Kendall τ,
Spearman ρ and the precision of its top 10 % (the share of the truly best 10 % it puts there).
Selection metric only: the protocol reads the validation column, never the test one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nasforge.analysis.correlation import kendall_tau, spearman, top_k_precision
from nasforge.errors import NasforgeError
from nasforge.estimation.tabular import TabularBenchmark

DEFAULT_SIZES = (10, 20, 50, 100, 200, 500)


def split(n_archs: int, train_sizes: Sequence[int], n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(test rows, training rows in draw order) for one seed: disjoint, seeded."""
    need = n_test + max(train_sizes)
    if need > n_archs:
        raise NasforgeError(f"the protocol needs {need} architectures ({n_test} test + {max(train_sizes)} train); "
                            f"the table holds {n_archs}")
    perm = np.random.default_rng(seed).permutation(n_archs)
    return perm[:n_test], perm[n_test:need]


def evaluate(make: Callable[[int], Any], bench: TabularBenchmark, metric: str = "valid_acc",
             fidelity: float | None = None, train_sizes: Sequence[int] = DEFAULT_SIZES, n_test: int = 1000,
             seeds: Sequence[int] = range(20), done: Callable[[dict[str, Any]], None] | None = None,
             skip: Callable[[int, int], bool] | None = None) -> list[dict[str, Any]]:
    """Fit ``make(seed)`` (a fresh predictor) at every training size for every seed; one record
    per (seed, size): ``kendall``, ``spearman``, ``top10``, ``fit_s``, ``predict_s``. ``done`` is
    called with each record as it is made, ``skip(seed, size)`` leaves a cell out (resuming)."""
    sizes = sorted({int(s) for s in train_sizes})
    if not sizes or sizes[0] < 2:
        raise NasforgeError(f"training sizes must be integers >= 2, got {list(train_sizes)!r}")
    if n_test < 2:
        raise NasforgeError(f"the test set needs at least 2 architectures, got {n_test!r}")
    y = np.asarray(bench.values(metric, fidelity), dtype=float)
    ok = np.flatnonzero(np.isfinite(y))
    archs = [bench.archs[i] for i in ok]
    y = y[ok]
    out = []
    for seed in seeds:
        test, train = split(len(archs), sizes, n_test, int(seed))
        test_archs = [archs[i] for i in test]
        for size in sizes:
            if skip is not None and skip(int(seed), size):
                continue
            rows = train[:size]
            pred = make(int(seed))
            t0 = time.process_time()
            pred.fit([archs[i] for i in rows], y[rows])
            t1 = time.process_time()
            p = np.asarray(pred.predict(test_archs), dtype=float)
            t2 = time.process_time()
            truth = y[test]
            rec = {"seed": int(seed), "train_size": size, "kendall": kendall_tau(p, truth),
                   "spearman": spearman(p, truth), "top10": top_k_precision(p, truth, 0.1),
                   "fit_s": t1 - t0, "predict_s": t2 - t1}
            out.append(rec)
            if done is not None:
                done(rec)
    return out
