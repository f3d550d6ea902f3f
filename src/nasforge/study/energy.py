"""Energy-aware joint architecture x hyperparameter search in one call (EA-HAS-Bench, Dou et al.,
ICLR 2023), for the command line and for scripts.

The task: an NB201 cell times training hyperparameters (a
:class:`~nasforge.spaces.joint.JointSpace`), every configuration trained for real by a
:class:`~nasforge.estimation.energy.JointTrainingEstimator` that measures its training energy
(RAPL where readable, else declared power x CPU time, stated). A search is a
:class:`~nasforge.study.Study` whose cost is energy, so its budget is a search-energy budget; the
energy-aware versions (``weight`` < 0) optimise ``ea_score = valid_acc x (E / target)^weight``
with E the configuration's full training energy (:class:`EnergyAwareScore`); ``weight`` = 0 is
the plain method (objective ``valid_acc``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from nasforge.data import Dataset
from nasforge.errors import NasforgeError, check_float, check_int, check_seed, unknown

#: the search strategies (short names) and their registry names
STRATEGIES: dict[str, str] = {"rs": "random", "re": "re", "hb": "hyperband", "bohb": "bohb"}
#: the default hyperparameter grid (that of benchmarks/energy_search.py)
DEFAULT_HP: dict[str, list[Any]] = {"optimizer": ["sgd", "adamw"], "lr_scale": [0.3, 1.0, 3.0],
                                    "batch_size": [32, 128], "epochs": [3, 6, 12]}
#: what each hyperparameter's values must be
_KINDS = {"optimizer": "name", "lr": "positive", "lr_scale": "positive", "batch_size": "whole",
          "epochs": "whole", "weight_decay": "non-negative", "label_smoothing": "fraction"}


def _value(key: str, text: str) -> Any:
    kind = _KINDS[key]
    if kind == "name":
        from nasforge.estimation.training import DEFAULT_LR

        if text not in DEFAULT_LR:
            raise unknown(f"{key} value", text, list(DEFAULT_LR))
        return text
    if kind == "whole":
        try:
            v = int(text)
        except ValueError:
            v = 0
        if v < 1 or str(v) != text.strip().lstrip("+"):
            raise NasforgeError(f"bad {key} value {text!r}: expected whole numbers >= 1")
        return v
    try:
        f = float(text)
    except ValueError:
        f = math.nan
    low, high = {"positive": (0.0, math.inf), "non-negative": (0.0, math.inf), "fraction": (0.0, 1.0)}[kind]
    ok = math.isfinite(f) and (f > low if kind == "positive" else f >= low) and (f < high)
    if not ok:
        raise NasforgeError(f"bad {key} value {text!r}: expected {kind.replace('-', ' ')} numbers"
                            + (" below 1" if kind == "fraction" else ""))
    return f


def parse_hyperparameters(items: Sequence[str] | None) -> dict[str, list[Any]]:
    """The hyperparameter grid from ``KEY=V1,V2,...`` items (``epochs=3,6,12``); keys not given
    keep :data:`DEFAULT_HP`'s values (``KEY=`` with no values drops a default key)."""
    from nasforge.estimation.energy import TRAINING_HYPERPARAMETERS

    hp = {k: list(v) for k, v in DEFAULT_HP.items()}
    for item in items or ():
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise NasforgeError(f"bad --hp {item!r}: expected KEY=V1,V2,..., e.g. epochs=3,6,12")
        if key not in TRAINING_HYPERPARAMETERS:
            raise unknown("hyperparameter", key, TRAINING_HYPERPARAMETERS)
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not values:
            hp.pop(key, None)
            continue
        parsed = [_value(key, v) for v in values]
        if len(set(parsed)) != len(parsed):
            raise NasforgeError(f"bad --hp {item!r}: a value is repeated")
        hp[key] = parsed
    if "lr" in hp and "lr_scale" in hp:
        if not any(str(i).startswith("lr_scale=") for i in items or ()):
            hp.pop("lr_scale")  # an absolute lr given replaces the default scale
        else:
            raise NasforgeError("give either lr or lr_scale as a hyperparameter, not both")
    if not hp:
        raise NasforgeError("the hyperparameter grid is empty: give at least one --hp KEY=V1,V2")
    return hp


def load_energy_data(dataset: str = "digits", n_train: int | None = 200, seed: int = 0,
                     data_dir: str | None = None) -> Dataset:
    """The task's data: the digits with ``n_train`` training images and the rest split evenly
    between validation and test (the default task of the command line and the benchmark), or any
    dataset :func:`nasforge.data.load_dataset` knows at its own split (``n_train`` None)."""
    from nasforge.data import load_dataset, load_digits

    seed = check_seed(seed)
    if dataset == "digits" and n_train is not None:
        n_train = check_int(n_train, "n_train", 20, 1597)
        rest = (1797 - n_train) / 1797 / 2
        return load_digits(seed=seed, val_fraction=rest, test_fraction=rest)
    if n_train is not None:
        raise NasforgeError(f"--n-train applies to the digits only, not to dataset {dataset!r}")
    return load_dataset(dataset, seed=seed, data_dir=data_dir)


def energy_task(data: Dataset, hp: Mapping[str, Sequence[Any]] | None = None, C: int = 8, N: int = 1,
                seed: int = 0, power: str = "auto", watts_per_core: float = 10.0) -> tuple[Any, Any]:
    """``(space, estimator)``: NB201 (C channels, N cells per stage) x ``hp``, trained on
    ``data`` with one torch thread, measuring energy by ``power`` (auto, rapl, cpu_time)."""
    from nasforge.estimation.energy import JointTrainingEstimator
    from nasforge.spaces.joint import JointSpace
    from nasforge.spaces.nb201 import NB201Space

    space = JointSpace(NB201Space(), dict(DEFAULT_HP if hp is None else hp))
    est = JointTrainingEstimator(space, data, net={"C": check_int(C, "C", 1), "N": check_int(N, "N", 1)},
                                 seed=check_seed(seed), threads=1, power=power, watts_per_core=watts_per_core)
    return space, est


def default_rungs(estimator: Any) -> list[float]:
    """Hyperband/BOHB rungs for a joint estimator: epochs 1, 4 and the grid's largest."""
    top = float(estimator.fidelities[-1])
    rungs = sorted({1.0, min(4.0, top), top})
    if len(rungs) < 2:
        raise NasforgeError(f"hb and bohb need at least two rungs of epochs; the grid's largest epochs is {top:g}")
    return rungs


def energy_strategy(name: str, space: Any, seed: int = 0, metric: str = "valid_acc",
                    rungs: Sequence[float] | None = None) -> Any:
    """A strategy by short name (:data:`STRATEGIES`): RE with population 10 and sample 3 (as the
    benchmark); Hyperband and BOHB with ``rungs`` (epochs; required for them), eta 3."""
    from nasforge.strategies import get_strategy

    if name not in STRATEGIES:
        raise unknown("strategy", name, list(STRATEGIES))
    if name == "rs":
        return get_strategy("random", space, seed=seed, metric=metric)
    if name == "re":
        return get_strategy("re", space, seed=seed, metric=metric, population_size=10, sample_size=3)
    if rungs is None:
        raise NasforgeError(f"strategy {name} needs rungs (epochs at which it compares configurations)")
    return get_strategy(STRATEGIES[name], space, seed=seed, metric=metric, rungs=list(rungs), eta=3)


def front_of(trials: Sequence[Any]) -> list[dict[str, Any]]:
    """The accuracy-energy front of the configurations trained in full: the trials, trained to
    their own epochs, that no other such trial beats in both validation accuracy and full
    training energy; sorted by energy."""
    from nasforge.analysis.pareto import pareto_mask

    full = [t for t in trials if t.metrics and "config_epochs" in t.metrics
            and t.metrics.get("epochs") == t.metrics.get("config_epochs")]
    if not full:
        return []
    pts = [(t.metrics["valid_acc"], t.metrics["full_train_energy_j"]) for t in full]
    mask = pareto_mask(pts, maximize=[True, False])
    out = [{"config": t.arch, "valid_acc": t.metrics["valid_acc"], "test_acc": t.metrics["test_acc"],
            "full_train_energy_j": t.metrics["full_train_energy_j"]} for t, m in zip(full, mask) if m]
    return sorted(out, key=lambda r: r["full_train_energy_j"])


def run_energy_search(space: Any, estimator: Any, strategy: str, budget_j: float, weight: float = -0.07,
                      target_j: float = 10.0, seed: int = 0, storage: Any = None, study_name: str | None = None,
                      rungs: Sequence[float] | None = None, ref_energy_j: float = 40.0, progress: bool = False,
                      settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run (or resume) an energy-aware search until its trials have spent ``budget_j`` of
    training energy (the cost of every evaluation, joules).

    ``weight`` < 0 searches ``ea_score`` (energy-aware), 0 plain ``valid_acc``. The study
    ``study_name`` (default ``energy-<strategy>-w<weight>-<seed>``) is stored in ``storage`` with
    ``settings`` (a resumed study must be given the same); Hyperband and BOHB compare at ``rungs``
(default: epochs 1, 4 and the grid's largest). Returns ``{"study", "best": {config,
    valid_acc, test_acc, full_train_energy_j, ea_score}, "search_energy_j", "trials", "front",
    "hypervolume"}``: the front of the configurations trained in full and the area it dominates
    up to (0 %, ``ref_energy_j``) J, in %·J / 100 (as in docs/benchmarks.md).
    """
    from nasforge.analysis.pareto import hypervolume
    from nasforge.estimation.energy import EnergyAwareScore, search_energy
    from nasforge.study import create_study

    if strategy not in STRATEGIES:
        raise unknown("strategy", strategy, list(STRATEGIES))
    budget_j = check_float(budget_j, "budget (J)", 0, low_open=True)
    weight = check_float(weight, "energy weight", -5.0, 0.0)
    target_j = check_float(target_j, "target energy (J)", 0, low_open=True)
    ref_energy_j = check_float(ref_energy_j, "reference energy (J)", 0, low_open=True)
    metric = "ea_score" if weight < 0 else "valid_acc"
    if strategy in ("hb", "bohb") and rungs is None:
        rungs = default_rungs(estimator)
    name = study_name or f"energy-{strategy}-w{weight:g}-{seed}"
    stored_settings = {"strategy": strategy, "weight": weight, "target_j": target_j, "seed": seed,
                       "rungs": None if rungs is None else [float(r) for r in rungs], **dict(settings or {})}
    study = create_study(name, space, metric, storage=storage, config={"energy": stored_settings},
                         load_if_exists=True)
    stored = study.config.get("energy")
    if stored is not None and stored != stored_settings:
        diff = [k for k in stored_settings if stored.get(k) != stored_settings[k]]
        raise NasforgeError(f"study {name!r} was made with other settings ({', '.join(f'{k}={stored.get(k)!r}' for k in diff)}); "
                            f"give the same ones to resume it, or another --study name")
    wrapped = EnergyAwareScore(estimator, target=target_j, weight=weight)
    study.optimize(energy_strategy(strategy, space, seed, metric, rungs), wrapped, max_cost=budget_j,
                   progress=progress)
    best = study.best_trial
    if best is None:
        raise NasforgeError(f"no trial of study {name!r} finished; see `nasforge show {name}`")
    front = front_of(study.trials)
    hv = hypervolume([(r["valid_acc"], r["full_train_energy_j"]) for r in front], [0.0, ref_energy_j],
                     maximize=[True, False]) / 100.0 if front else 0.0
    m = best.metrics
    return {"study": name, "metric": metric,
            "best": {"config": best.arch, "valid_acc": m["valid_acc"], "test_acc": m["test_acc"],
                     "full_train_energy_j": m["full_train_energy_j"], "epochs": m.get("epochs"),
                     "config_epochs": m.get("config_epochs"), "ea_score": m.get("ea_score")},
            "search_energy_j": search_energy(study), "trials": len(study.finished_trials), "front": front,
            "hypervolume": hv, "energy_method": getattr(getattr(estimator, "meter", None), "describe", lambda: "")()}


__all__ = ["STRATEGIES", "DEFAULT_HP", "parse_hyperparameters", "load_energy_data", "energy_task", "default_rungs",
           "energy_strategy",
           "front_of", "run_energy_search"]
