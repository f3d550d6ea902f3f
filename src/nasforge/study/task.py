"""What a study runs against, from its settings: the space, the estimator and the objective.

A search is described by plain settings (a benchmark or a dataset, the strategy and its
parameters, the metric...), stored with its study under ``config["search"]``. The functions here
are what every face (the command line, a web page, a script) needs to work with them: merging
newly given settings with a stored study's (:func:`merge_settings`), building the task
(:func:`build_task`, :func:`open_task`) and the strategy's keyword settings
(:func:`strategy_settings`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasforge.errors import NasforgeError

#: training settings a search on a dataset stores (and their defaults)
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 10, "C": 8, "N": 1, "optimizer": "sgd", "lr": None, "batch_size": 64, "weight_decay": 5e-4,
    "label_smoothing": 0.0, "n_train": None,
}
#: the dataset a search trains on when it names neither a benchmark nor a dataset
DEFAULT_DATASET = "digits"
#: the settings that define a search (stored with its study; a resumed study must not change them)
SEARCH_KEYS: tuple[str, ...] = (
    "benchmark", "dataset", "space", "strategy", "seed", "metric", "direction", "fidelity", "params", "constraints",
    *TRAINING_DEFAULTS,
)
#: settings every search has, whatever was given
SEARCH_DEFAULTS: dict[str, Any] = {"strategy": "re", "seed": 0, "params": {}}


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


def merge_settings(given: Mapping[str, Any], stored: Mapping[str, Any], name: str | None) -> dict[str, Any]:
    """The settings of a search: ``given`` (``None`` or absent: not given) merged with ``stored``,
    the stored settings of study ``name`` (empty for a new study).

    A given setting that differs from the stored one is an error (a study resumes only with the
    settings it was created with); settings not given keep their stored value, or their default.
    A new study that names neither a benchmark nor a dataset trains on :data:`DEFAULT_DATASET`;
    one that trains gets the missing :data:`TRAINING_DEFAULTS` and the ``nb201`` space.
    """
    unknown = sorted(set(given) - set(SEARCH_KEYS))
    if unknown:
        raise NasforgeError(f"unknown search setting(s) {', '.join(unknown)}; allowed: {', '.join(SEARCH_KEYS)}")
    given = {k: given.get(k) for k in SEARCH_KEYS}
    if given["benchmark"] is not None and given["dataset"] is not None:
        raise NasforgeError("give either a benchmark (a table) or a dataset (real training), not both")
    settings: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in SEARCH_DEFAULTS.items()}
    if not stored and given["benchmark"] is None and given["dataset"] is None:
        given["dataset"] = DEFAULT_DATASET
    for key in SEARCH_KEYS:
        if given[key] is not None:
            if key in stored and stored[key] != given[key]:
                raise NasforgeError(
                    f"study {name!r} was created with {key}={stored[key]!r}; it cannot resume with "
                    f"{key}={given[key]!r} (omit the option to use the stored value, or pick a new --study)"
                )
            settings[key] = given[key]
        elif key in stored:
            settings[key] = stored[key]
    for key, other in (("benchmark", "dataset"), ("dataset", "benchmark")):
        if given[key] is not None and stored.get(other) is not None:  # a table study cannot start training
            raise NasforgeError(
                f"study {name!r} was created with {other}={stored[other]!r}; it cannot resume with "
                f"{key}={given[key]!r} (omit the option to use the stored value, or pick a new --study)"
            )
    if settings.get("dataset") and not settings.get("benchmark"):
        for k, v in TRAINING_DEFAULTS.items():
            settings.setdefault(k, v)
        settings.setdefault("space", "nb201")
    return {k: v for k, v in settings.items() if v is not None or k in ("metric", "direction", "fidelity")}


def strategy_settings(settings: Mapping[str, Any], task: Task) -> dict[str, Any]:
    """The strategy's keyword settings (``settings["params"]``); a multi-fidelity scheduler without
    rungs gets them from the estimator: a table's fidelities, or 1 to the most epochs of training."""
    from nasforge.strategies import ALIASES, MULTI_FIDELITY

    params = dict(settings.get("params") or {})
    strategy = settings.get("strategy", SEARCH_DEFAULTS["strategy"])
    name = ALIASES.get(strategy, strategy)
    if name in MULTI_FIDELITY and not {"rungs", "min_fidelity", "max_fidelity"} & set(params):
        fids = task.estimator.fidelities
        if not fids or len(fids) < 2:
            raise NasforgeError(f"strategy {name!r} needs an estimator with several fidelities; {task.label} has none")
        if task.table is not None:
            params["rungs"] = list(fids)
        else:
            params.update(min_fidelity=1, max_fidelity=fids[-1])
    return params


def build_task(settings: Mapping[str, Any], data_dir: str | os.PathLike[str] | None,
               workdir: str | os.PathLike[str] | None) -> Task:
    """The task of a search from its settings (benchmark or dataset, metric, direction...).

    ``workdir``: the study's own folder; training checkpoints go to ``workdir/checkpoints``.
    """
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

    dataset = settings.get("dataset") or DEFAULT_DATASET
    tr = {k: settings.get(k, v) for k, v in TRAINING_DEFAULTS.items()}
    extra = {"n_train": tr["n_train"]} if tr["n_train"] is not None and dataset == "cifar10" else {}
    data = load_dataset(dataset, seed=int(settings.get("seed") or 0), data_dir=data_dir, **extra)
    space = get_space(settings.get("space") or "nb201")
    est = TrainingEstimator(
        space, data, max_epochs=int(tr["epochs"]), optimizer=tr["optimizer"], lr=tr["lr"],
        weight_decay=float(tr["weight_decay"]), batch_size=int(tr["batch_size"]),
        label_smoothing=float(tr["label_smoothing"]), net={"C": int(tr["C"]), "N": int(tr["N"])},
        seed=int(settings.get("seed") or 0),
        checkpoint_dir=(Path(workdir) / "checkpoints") if workdir is not None else None,
    )
    metric = settings.get("metric") or "valid_acc"
    if metric not in est.metric_names:
        raise NasforgeError(f"unknown metric {metric!r} for training; available: {', '.join(est.metric_names)}")
    maximize = _direction(settings, est.higher_is_better(metric))
    desc = (f"training on {data!r}: {space.name} networks with C={tr['C']}, N={tr['N']}, up to {tr['epochs']} "
            f"epochs ({tr['optimizer']}, batch {tr['batch_size']})")
    return Task(space, est, metric, "test_acc", maximize, dataset, desc)


def open_task(study_config: Any, data_dir: str | os.PathLike[str] | None = None,
              workdir: str | os.PathLike[str] | None = None) -> Task:
    """The task a stored study ran against, from its configuration (a study's ``config`` dict, or
    the study itself): its search settings (``config["search"]``), with the objective the study
    stored where the settings name none. ``workdir`` as for :func:`build_task`."""
    config = getattr(study_config, "config", study_config)
    name = getattr(study_config, "name", None)
    if not isinstance(config, Mapping):
        raise NasforgeError(f"expected a study or its configuration (a dict), got {type(study_config).__name__}")
    settings = dict(config.get("search") or {})
    if not settings.get("benchmark") and not settings.get("dataset"):
        which = f"study {name!r}" if name else "the study"
        raise NasforgeError(f"{which} stores no search settings (a benchmark or a dataset) to rebuild its task from")
    metric, maximize = config.get("metric"), config.get("maximize")
    if settings.get("metric") is None and isinstance(metric, str):
        settings["metric"] = metric
        if settings.get("direction") is None and isinstance(maximize, bool):
            settings["direction"] = "max" if maximize else "min"
    return build_task(settings, data_dir, workdir)


def _direction(settings: Mapping[str, Any], default: bool) -> bool:
    d = settings.get("direction")
    return default if d is None else d == "max"


__all__ = ["Task", "TRAINING_DEFAULTS", "DEFAULT_DATASET", "SEARCH_KEYS", "SEARCH_DEFAULTS", "merge_settings",
           "strategy_settings", "build_task", "open_task"]
