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

from nasforge.errors import NasforgeError, check_float, check_int, check_seed, check_work_dir, shorten, unknown

#: training settings a search on a dataset stores (and their defaults)
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 10, "C": 8, "N": 1, "optimizer": "sgd", "lr": None, "batch_size": 64, "weight_decay": 5e-4,
    "label_smoothing": 0.0, "n_train": None,
}
#: the dataset a search trains on when it names neither a benchmark nor a dataset
DEFAULT_DATASET = "digits"
#: the embedded default task (a new search that names neither a benchmark nor a dataset): the
#: digits with 200 training images (the other 1,597 split evenly between validation and test),
#: at the training defaults (10 epochs, C=8, N=1). On the full split the good cells all reach
#: 98-99 % and the top of a search is ties within seed noise; with 200 training images the
#: accuracies of 40 random cells that learn spread 2.7x wider (sd) than the seed-to-seed noise of
#: one cell, and a 40-trial search stays about a minute on idle cores (docs/benchmarks.md, issue 19).
DEFAULT_TASK: dict[str, Any] = {"dataset": DEFAULT_DATASET, "n_train": 200}
#: the optimizers training accepts
OPTIMIZERS = ("sgd", "adamw", "nero")
#: the settings that define a search (stored with its study; a resumed study must not change them)
SEARCH_KEYS: tuple[str, ...] = (
    "benchmark", "dataset", "space", "strategy", "seed", "metric", "direction", "fidelity", "params", "constraints",
    "warm_start", *TRAINING_DEFAULTS,
)
#: strategies that take a warm start (their ``initial`` setting)
WARM_STARTABLE: tuple[str, ...] = ("re", "bo", "predictor")
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
    #: a predicate a strategy must satisfy beyond the search's constraints: for a table that holds
    #: only part of its space, "the table holds it" (so no trial fails "not in benchmark")
    feasible: Any = None

    @property
    def metric_names(self) -> list[str]:
        """The metrics a measurement of this task carries (what ``--report`` may name)."""
        if self.table is not None:
            return list(self.table.metrics_at(None))
        return list(self.estimator.metric_names)

    def check_metric(self, metric: str, what: str = "metric") -> str:
        """``metric`` if measurements carry it, else a NasforgeError listing those they carry."""
        names = self.metric_names
        if metric not in names:
            raise NasforgeError(f"unknown {what} {shorten(metric)} for {self.label}; available: {', '.join(names)}")
        return metric

    def strategy_feasible(self, constraints: Any = None) -> Any:
        """The ``feasible`` predicate of the search's strategy: ``constraints`` (a bound
        ConstraintSet, or None) and :attr:`feasible`, both when there are both."""
        if self.feasible is None:
            return constraints if constraints else None
        if not constraints:
            return self.feasible
        inner, held = constraints, self.feasible
        return lambda arch: bool(held(arch)) and bool(inner(arch))


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
        for key, value in DEFAULT_TASK.items():  # the embedded default task; given settings win
            if given[key] is None:
                given[key] = value
    if given["params"] is not None and stored.get("warm_start") and "initial" in (stored.get("params") or {}):
        # the warm start's architectures were derived when the study began: they are not a given setting
        given["params"] = {**given["params"], "initial": stored["params"]["initial"]}
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
    if settings.get("benchmark"):  # a table fixes the space and trains nothing
        ignored = [k for k in ("space", *TRAINING_DEFAULTS) if given.get(k) is not None]
        if ignored:
            raise NasforgeError(f"setting(s) {', '.join(ignored)} are for searches that train (a dataset); a table "
                                f"search ({settings['benchmark']}) has its own space and trains nothing")
    if settings.get("dataset") and not settings.get("benchmark"):
        for k, v in TRAINING_DEFAULTS.items():
            settings.setdefault(k, v)
        settings.setdefault("space", "nb201")
    out = {k: v for k, v in settings.items() if v is not None or k in ("metric", "direction", "fidelity")}
    return check_settings(out)


def check_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a search with every value checked (types and ranges; names of spaces,
    strategies and benchmarks are checked where they are looked up). Whole numbers given as
    floats (``epochs=10.0``) become ints. A bad value is a one-line NasforgeError naming it."""
    out = dict(settings)
    for key in ("benchmark", "dataset", "space", "strategy", "metric"):
        v = out.get(key)
        if v is not None and (not isinstance(v, str) or not v.strip() or "\x00" in v):
            raise NasforgeError(f"bad {key} {shorten(v)}: expected a non-empty name")
    if out.get("seed") is not None:
        out["seed"] = check_seed(out["seed"])
    if out.get("direction") is not None and out["direction"] not in ("max", "min"):
        raise unknown("direction", out["direction"], ("max", "min"))
    if out.get("fidelity") is not None:
        out["fidelity"] = check_float(out["fidelity"], "fidelity", 0, low_open=True)
    if out.get("params") is not None and not isinstance(out["params"], Mapping):
        raise NasforgeError(f"bad params {shorten(out['params'])}: expected a dict of strategy settings")
    cons = out.get("constraints")
    if cons is not None and (isinstance(cons, str) or not all(isinstance(c, str) for c in cons)):
        raise NasforgeError(f"bad constraints {shorten(cons)}: expected a list of expressions")
    if out.get("warm_start") is not None:
        parse_warm_start(out["warm_start"])
    for key, low in (("epochs", 1), ("C", 1), ("N", 1), ("batch_size", 1), ("n_train", 1)):
        if out.get(key) is not None:
            out[key] = check_int(out[key], key, low)
    if out.get("optimizer") is not None and out["optimizer"] not in OPTIMIZERS:
        raise unknown("optimizer", out["optimizer"], OPTIMIZERS)
    if out.get("lr") is not None:
        out["lr"] = check_float(out["lr"], "lr (learning rate)", 0, low_open=True)
    if out.get("weight_decay") is not None:
        out["weight_decay"] = check_float(out["weight_decay"], "weight_decay", 0)
    if out.get("label_smoothing") is not None:
        out["label_smoothing"] = check_float(out["label_smoothing"], "label_smoothing", 0, 1, high_open=True)
    return out


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


def parse_warm_start(spec: Any) -> tuple[list[str], int]:
    """The proxies and the sample size of a warm-start setting ``PROXIES:N`` (e.g. ``synflow:1000``,
    ``synflow,flops:500``)."""
    from nasforge.estimation.proxies import resolve_proxies

    text = spec if isinstance(spec, str) else ""
    names, _, n = text.rpartition(":")
    if not names or not n.strip().isdigit() or int(n) < 1:
        raise NasforgeError(f"bad warm start {shorten(spec)}: expected PROXIES:N, e.g. synflow:1000 (the top of N "
                            "random architectures ranked by the proxies)")
    return resolve_proxies(names), int(n)


def zero_cost_warm_start(settings: Mapping[str, Any], task: Task, n_top: int,
                         data_dir: str | os.PathLike[str] | None = None) -> Any:
    """The warm start of a search (``settings["warm_start"]``, ``PROXIES:N``): the ``n_top`` best
    of N distinct random architectures of the task's space ranked by zero-cost proxies of their
    untrained networks (Abdelfattah et al., ICLR 2021; NASWOT's AREA), drawn with the search's
    seed. Networks are built as the search evaluates them: with the training settings on a
    dataset; on an NB201 table, the benchmark's own network (C=16, N=5) for its classes, scored on
    CIFAR-10 images. Returns the :class:`~nasforge.estimation.proxies.WarmStart` (its ``seconds``
    is the scoring time)."""
    from nasforge.estimation.proxies import ProxyEstimator, RankEnsemble, proxy_warm_start
    from nasforge.strategies import ALIASES

    proxies, n = parse_warm_start(settings.get("warm_start"))
    name = settings.get("strategy", SEARCH_DEFAULTS["strategy"])
    name = ALIASES.get(name, name)
    if name not in WARM_STARTABLE:
        raise NasforgeError(f"strategy {name!r} takes no warm start; strategies that do: {', '.join(WARM_STARTABLE)}")
    seed = int(settings.get("seed") or 0)
    if task.table is None:
        est = task.estimator
        data, net = est.dataset, dict(est.net)
    elif task.space.name == "nb201":
        from nasforge.data import load_dataset

        data = load_dataset("cifar10", data_dir=data_dir, seed=seed)
        net = {"num_classes": 100 if "cifar100" in task.label else 10}
    else:
        raise NasforgeError(f"a zero-cost warm start builds the space's networks; the table {task.label} has none to "
                            "build (use it with --dataset, or an NB201 table)")
    batch = min(128, len(data.y_train))
    est = ProxyEstimator(task.space, data, proxies, batch_size=batch, seed=seed, net=net)
    size = task.space.finite_size()
    if size is not None and n > size:
        raise NasforgeError(f"warm start sample N={n} exceeds the {size:,} architectures of space {task.space.name!r}")
    candidates = None
    if task.feasible is not None:  # a table holding part of its space: sample among what it holds
        candidates = [a for a in task.space if task.feasible(a)]
    return proxy_warm_start(task.space, est, n, min(n_top, n), seed=seed, ensemble=RankEnsemble(proxies),
                            candidates=candidates)


def build_task(settings: Mapping[str, Any], data_dir: str | os.PathLike[str] | None,
               workdir: str | os.PathLike[str] | None) -> Task:
    """The task of a search from its settings (benchmark or dataset, metric, direction...).

    ``workdir``: the study's own folder; training checkpoints go to ``workdir/checkpoints``.
    """
    settings = check_settings(settings)
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
        held, desc = None, f"benchmark {bench.name} ({len(bench):,} architectures)"
        try:
            size = len(bench.space)
        except TypeError:  # an infinite space: nothing to compare with
            size = None
        if size is not None and len(bench) < size:
            held = bench.__contains__
            desc = (f"benchmark {bench.name} ({len(bench):,} of the {size:,} architectures of space "
                    f"{bench.space.name!r}; the search proposes only those)")
        return Task(bench.space, bench, metric, bench.report_metric, maximize, bench.name, desc, bench, held)

    from nasforge.data import load_dataset
    from nasforge.estimation.training import TrainingEstimator
    from nasforge.spaces import get_space

    dataset = settings.get("dataset") or DEFAULT_DATASET
    tr = {k: settings.get(k, v) for k, v in TRAINING_DEFAULTS.items()}
    data = load_dataset(dataset, seed=int(settings.get("seed") or 0), data_dir=data_dir,
                        **_subset(dataset, tr["n_train"]))
    space = get_space(settings.get("space") or "nb201")
    if workdir is not None:  # checkpoints and the best network go there: it must be writable
        check_work_dir(workdir, "work folder")
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


#: datasets that keep a subset of their training images with ``n_train``
_SUBSETS = ("cifar10", "digits")


def _subset(dataset: str, n_train: int | None) -> dict[str, Any]:
    """Loader keywords for ``n_train`` training images: CIFAR-10 takes ``n_train``; the digits
    (1,797 images) keep ``n_train`` for training and split the rest evenly between validation
    and test."""
    if n_train is None:
        return {}
    if dataset == "cifar10":
        return {"n_train": n_train}
    if dataset == "digits":
        total = 1797
        if not 20 <= n_train <= total - 200:
            raise NasforgeError(f"bad n_train {n_train}: the digits have {total} images; expected 20..{total - 200} "
                                "(the rest is split between validation and test)")
        rest = (total - n_train) / total / 2.0
        return {"val_fraction": rest, "test_fraction": rest}
    raise NasforgeError(f"n_train (a training subset) is for {' and '.join(_SUBSETS)}, not dataset {shorten(dataset)}")


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


def study_dir(workdir: str | os.PathLike[str], name: str) -> Path:
    """The folder of study ``name`` under ``workdir`` (checkpoints, the best network). The name
    must be one folder name: no path separator, not ``.`` or ``..``, at most 255 bytes."""
    if not isinstance(name, str) or not name:
        raise NasforgeError(f"bad study name {shorten(name)}: expected a non-empty name")
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    bad = sorted(c for c in seps if c in name)
    if bad or name in (".", "..") or "\x00" in name or len(name.encode("utf-8", "surrogatepass")) > 255:
        why = (f"it contains {' and '.join(map(repr, bad))}" if bad else
               "it is too long for a folder name (255 bytes)" if len(name.encode("utf-8", "surrogatepass")) > 255
               else "it is not a folder name")
        raise NasforgeError(f"bad study name {shorten(name)}: {why}; the study's files go to WORKDIR/<name>, so the "
                            "name must be one folder name (no '/', '\\', '.' or '..')")
    return Path(workdir) / name


__all__ = ["Task", "TRAINING_DEFAULTS", "DEFAULT_DATASET", "DEFAULT_TASK", "SEARCH_KEYS", "SEARCH_DEFAULTS",
           "merge_settings", "check_settings", "strategy_settings", "build_task", "open_task", "study_dir"]
