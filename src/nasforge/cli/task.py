"""Turn stored search settings into (space, estimator, objective): shared by search and export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasforge.errors import NasforgeError

#: training settings a search on a dataset stores (and their defaults)
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 10, "C": 8, "N": 1, "optimizer": "sgd", "lr": None, "batch_size": 64, "weight_decay": 5e-4,
    "label_smoothing": 0.0, "n_train": None,
}


@dataclass
class Task:
    """What a study runs against: the space, the estimator and the objective."""

    space: Any
    estimator: Any
    metric: str
    report: str | None
    maximize: bool
    label: str  # e.g. "nb201:cifar10" or "digits"
    description: str
    table: Any = None  # the TabularBenchmark when the estimator is one


def build_task(settings: dict[str, Any], data_dir: str | None, workdir: Path | None) -> Task:
    """The task of a search from its settings (benchmark or dataset, metric, direction...)."""
    if settings.get("benchmark"):
        from nasforge.estimation import load_benchmark

        bench = load_benchmark(settings["benchmark"], data_dir=data_dir)
        metric = settings.get("metric") or bench.default_metric
        fid = settings.get("fidelity")
        if fid is not None:
            bench._fidelity(fid)  # validates it
        available = bench.metrics_at(fid)
        if metric not in available:
            raise NasforgeError(f"unknown metric {metric!r} for {bench.name} at fidelity {fid or 'full'}; "
                                f"available: {', '.join(available)}")
        maximize = _direction(settings, bench.higher_is_better(metric))
        return Task(bench.space, bench, metric, bench.report_metric, maximize, bench.name,
                    f"benchmark {bench.name} ({len(bench):,} architectures)", bench)

    from nasforge.data import load_dataset
    from nasforge.estimation.training import TrainingEstimator
    from nasforge.spaces import get_space

    dataset = settings.get("dataset") or "digits"
    tr = {k: settings.get(k, v) for k, v in TRAINING_DEFAULTS.items()}
    extra = {"n_train": tr["n_train"]} if tr["n_train"] is not None and dataset == "cifar10" else {}
    data = load_dataset(dataset, seed=int(settings.get("seed") or 0), data_dir=data_dir, **extra)
    space = get_space(settings.get("space") or "nb201")
    est = TrainingEstimator(
        space, data, max_epochs=int(tr["epochs"]), optimizer=tr["optimizer"], lr=tr["lr"],
        weight_decay=float(tr["weight_decay"]), batch_size=int(tr["batch_size"]),
        label_smoothing=float(tr["label_smoothing"]), net={"C": int(tr["C"]), "N": int(tr["N"])},
        seed=int(settings.get("seed") or 0), checkpoint_dir=(workdir / "checkpoints") if workdir else None,
    )
    metric = settings.get("metric") or "valid_acc"
    if metric not in est.metric_names:
        raise NasforgeError(f"unknown metric {metric!r} for training; available: {', '.join(est.metric_names)}")
    maximize = _direction(settings, est.higher_is_better(metric))
    desc = (f"training on {data!r}: {space.name} networks with C={tr['C']}, N={tr['N']}, up to {tr['epochs']} "
            f"epochs ({tr['optimizer']}, batch {tr['batch_size']})")
    return Task(space, est, metric, "test_acc", maximize, dataset, desc)


def _direction(settings: dict[str, Any], default: bool) -> bool:
    d = settings.get("direction")
    return default if d is None else d == "max"
