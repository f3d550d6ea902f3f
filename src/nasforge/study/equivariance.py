"""Equivariance-aware search in one call (Maile et al., ICLR 2023): the task, the methods and
their comparison with networks of one group throughout, for the command line and for scripts.

* ``re`` / ``rs``: regularised evolution / random search over the symmetry group of each layer,
  every candidate trained from scratch; a :class:`~nasforge.study.Study` (stored where
  ``storage`` says, so ``nasforge show`` lists it and the same call resumes it).
* ``equinas-e``: evolution by equivariance relaxation morphisms
  (:func:`nasforge.oneshot.equinas.relaxation_search`);
* ``equinas-d``: differentiable search over [G]-mixed layers
  (:func:`nasforge.oneshot.equinas.mixed_search`).

The networks EquiNAS_E and EquiNAS_D choose are retrained from scratch under the same protocol
as every other network (``retrain=True``), so all methods are compared by the same numbers:
validation accuracy (what selects) and test accuracy (reported only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from nasforge.data import Dataset
from nasforge.errors import NasforgeError, check_float, check_int, check_seed, unknown
from nasforge.spaces.equivariant import ROTATION_GROUPS, base_of, check_base, parse_groups

#: the search methods
METHODS: tuple[str, ...] = ("re", "rs", "equinas-e", "equinas-d")
#: the tasks: scikit-learn's digits turned by random angles, and also mirrored with probability 1/2
DATASETS: tuple[str, ...] = ("rotated-digits", "rotated-flipped-digits")


def load_equivariance_data(name: str, seed: int = 0, max_degrees: float = 90.0, size: int = 8,
                           n_train: int | None = None) -> Dataset:
    """A task by name (:data:`DATASETS`); ``seed`` splits the data (the angles are fixed)."""
    from nasforge.data.rotated import load_rotated_digits

    if name not in DATASETS:
        raise unknown("dataset", name, DATASETS)
    return load_rotated_digits(seed=check_seed(seed), max_degrees=max_degrees, n_train=n_train, size=size,
                               flip=name == "rotated-flipped-digits")


def check_settings(method: str, groups: Sequence[str] | str = ROTATION_GROUPS, layers: int = 4, planes: int = 32,
                   epochs: int = 20, lr: float = 0.05, batch_size: int = 32, trials: int = 12,
                   population: int = 2, generations: int = 4, search_epochs: int = 10,
                   seed: int = 0) -> dict[str, Any]:
    """The settings of :func:`run_equivariance_search`, checked (each bad value named) and in
    canonical form (groups largest first)."""
    if method not in METHODS:
        raise unknown("method", method, METHODS)
    groups = parse_groups(groups)
    if method == "equinas-e":
        from nasforge.spaces.equivariant import is_subgroup

        if not all(is_subgroup(g, groups[0]) for g in groups):
            raise NasforgeError(f"equinas-e starts from the largest group and relaxes it: the groups "
                                f"{','.join(groups)} have no largest member (add D4)")
    size = check_base(base_of(groups), groups)
    planes = check_int(planes, "planes", size)
    if planes % size:
        raise NasforgeError(f"bad planes {planes}: must be a multiple of {size} (the order of {base_of(groups)}, "
                            f"the plane layout of groups {','.join(groups)})")
    return {"method": method, "groups": list(groups), "layers": check_int(layers, "layers", 1), "planes": planes,
            "epochs": check_int(epochs, "epochs", 1), "lr": check_float(lr, "lr", 0, low_open=True),
            "batch_size": check_int(batch_size, "batch_size", 1), "trials": check_int(trials, "trials", 1),
            "population": check_int(population, "population", 1),
            "generations": check_int(generations, "generations", 0),
            "search_epochs": check_int(search_epochs, "search_epochs", 1), "seed": check_seed(seed)}


def _arch(groups: Sequence[str]) -> str:
    return ",".join(f"layer{i}={g}" for i, g in enumerate(groups))


def run_equivariance_search(data: Dataset, method: str, groups: Sequence[str] | str = ROTATION_GROUPS,
                            layers: int = 4, planes: int = 32, epochs: int = 20, lr: float = 0.05,
                            batch_size: int = 32, trials: int = 12, population: int = 2, generations: int = 4,
                            search_epochs: int = 10, seed: int = 0, retrain: bool = True, compare: bool = False,
                            storage: Any = None, study_name: str | None = None, progress: bool = False,
                            log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Search the group of each layer of a ``layers``-layer group CNN on ``data``.

    Every network is trained alike: SGD + Nesterov, cosine from ``lr``, ``batch_size``, ``epochs``
    epochs, no weight decay, seeded by ``seed``. ``re``/``rs`` train ``trials`` networks in a study
    ``study_name`` (default ``equi-<method>-<seed>``) in ``storage`` (None: in memory); EquiNAS_E
    runs ``generations`` generations of ``population`` members (4 warm-up epochs, 2 per
    generation); EquiNAS_D trains the mixture ``search_epochs`` epochs. ``compare`` also trains the
    network of each group throughout. ``log`` gets progress lines.

    Returns ``{"settings", "chosen": {"groups", "valid_acc", "test_acc", "params", ...},
    "uniform": {group: {...}} (with ``compare``), "search": {...}}``.
    """
    s = check_settings(method, groups, layers, planes, epochs, lr, batch_size, trials, population, generations,
                       search_epochs, seed)
    say = log or (lambda _line: None)
    from nasforge.estimation.training import TrainingEstimator
    from nasforge.spaces.equivariant import equivariant_space

    space = equivariant_space(s["layers"], s["groups"])
    est = TrainingEstimator(space, data, max_epochs=s["epochs"], optimizer="sgd", lr=s["lr"],
                            batch_size=s["batch_size"], weight_decay=0.0, net={"planes": s["planes"]}, seed=s["seed"],
                            threads=1)

    def measure(groups: Sequence[str]) -> dict[str, Any]:
        m = est.estimate(_arch(groups))
        return {"groups": list(groups), "valid_acc": m.metrics["valid_acc"], "test_acc": m.metrics["test_acc"],
                "params": int(m.metrics["params"])}

    out: dict[str, Any] = {"settings": {**s, "dataset": data.name}, "search": {}}
    t0 = time.process_time()
    if s["method"] in ("re", "rs"):
        from nasforge.strategies import get_strategy
        from nasforge.study import create_study

        name = study_name or f"equi-{s['method']}-{s['seed']}"
        settings = {**s, "dataset": data.name}
        study = create_study(name, space, "valid_acc", storage=storage, config={"equivariance": settings},
                             load_if_exists=True)
        stored = study.config.get("equivariance")
        diff = [k for k in settings if k != "trials" and stored is not None and stored.get(k) != settings[k]]
        if diff:  # the trial budget may grow; every other setting is the study's
            raise NasforgeError(f"study {name!r} was made with other settings ({', '.join(diff)}: "
                                f"{', '.join(f'{k}={stored.get(k)!r}' for k in diff)}); give the same ones to resume "
                                f"it, or another --study name")
        if s["method"] == "re":
            strategy = get_strategy("re", space, seed=s["seed"], population_size=max(2, s["trials"] // 2),
                                    sample_size=max(2, min(3, s["trials"] // 4)))
        else:
            strategy = get_strategy("random", space, seed=s["seed"])
        done = len(study.finished_trials)
        if done:
            say(f"resuming study {name!r} after {done} finished trial(s)")
        study.optimize(strategy, est, n_trials=s["trials"], progress=progress)
        best = study.best_trial
        if best is None:
            raise NasforgeError(f"no trial of study {name!r} finished; see `nasforge show {name}`")
        chosen = [space.config_of(space.coerce(best.arch))[f"layer{i}"] for i in range(s["layers"])]
        out["chosen"] = {"groups": chosen, "valid_acc": best.metrics["valid_acc"],
                         "test_acc": best.metrics["test_acc"], "params": int(best.metrics["params"])}
        out["search"] = {"study": name, "trials": len(study.finished_trials)}
    else:
        from nasforge.oneshot.equinas import mixed_search, relaxation_search

        if s["method"] == "equinas-e":
            def on_generation(entry: dict[str, Any]) -> None:
                groups_, score = entry["members"][0]
                say(f"generation {entry['generation']}: best {'/'.join(groups_)} valid {score:.2f} % "
                    f"({entry.get('evaluated', 1)} evaluated)")

            res = relaxation_search(data, layers=s["layers"], planes=s["planes"], population=s["population"],
                                    generations=s["generations"], lr=s["lr"], batch_size=s["batch_size"],
                                    seed=s["seed"], groups=s["groups"], callback=on_generation)
            out["search"] = {"valid_acc_inherited": res["valid_acc"], "history": res["history"]}
        else:
            def on_epoch(entry: dict[str, Any]) -> None:
                say(f"epoch {entry['epoch']}: argmax groups {'/'.join(entry['groups'])} "
                    f"(mixture valid {entry['valid_acc']:.2f} %)")

            res = mixed_search(data, layers=s["layers"], planes=s["planes"], epochs=s["search_epochs"], lr=s["lr"],
                               batch_size=s["batch_size"], seed=s["seed"], groups=s["groups"], callback=on_epoch)
            out["search"] = {"alphas": res["alphas"]}
        out["search"]["cpu_seconds"] = time.process_time() - t0
        out["chosen"] = measure(res["groups"]) if retrain else {"groups": list(res["groups"])}
    if compare:
        out["uniform"] = {}
        for g in s["groups"]:
            out["uniform"][g] = measure([g] * s["layers"])
            r = out["uniform"][g]
            say(f"all {g}: valid {r['valid_acc']:.2f} %, test {r['test_acc']:.2f} %, {r['params']:,} params")
    out["cpu_seconds"] = time.process_time() - t0
    return out


__all__ = ["METHODS", "DATASETS", "load_equivariance_data", "check_settings", "run_equivariance_search"]
