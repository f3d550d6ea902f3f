"""Training energy: measuring it, training joint architecture x hyperparameter configurations
with it, and scoring accuracy against it (EA-HAS-Bench, Dou et al., ICLR 2023).

* :class:`EnergyMeter` reads Intel RAPL package counters (``/sys/class/powercap/intel-rapl:N``)
  where they are readable, and otherwise estimates energy as a declared power per busy core times
  the process's CPU time. Every reading says which method produced it. RAPL counts the whole
  package, so on a shared machine it includes the neighbours' work; the CPU-time estimate counts
  this process only but is only as good as the declared power.
* :class:`JointTrainingEstimator` trains a :class:`~nasforge.spaces.joint.JointSpace`
  configuration (a cell and its training hyperparameters) epoch by epoch, recording the
  validation/test learning curve and the energy of every epoch. A measurement's cost is the
  energy this call spent (joules), so ``Study.optimize(max_cost=...)`` is an energy budget.
* :class:`EnergyAwareScore` adds ``ea_score = metric * (energy / target) ** weight`` (MnasNet's
  soft-constraint form, our reading of EA-HAS-Bench's energy-aware objective) to any estimator's
  measurements, so every strategy can search for accuracy at low training energy unchanged.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.data import Dataset
from nasforge.errors import NasforgeError, check_float, check_int, shorten
from nasforge.estimation.base import Estimator, Measurement

#: power methods an :class:`EnergyMeter` accepts
POWER_METHODS = ("auto", "rapl", "cpu_time")
#: hyperparameters a :class:`JointTrainingEstimator` understands
TRAINING_HYPERPARAMETERS = ("optimizer", "lr", "lr_scale", "batch_size", "epochs", "weight_decay", "label_smoothing")


@dataclass
class EnergyReading:
    """Energy spent between :meth:`EnergyMeter.start` and :meth:`EnergyMeter.stop`."""

    joules: float
    seconds: float
    cpu_seconds: float
    method: str


class EnergyMeter:
    """Measures energy: RAPL package counters where readable, else ``watts_per_core`` x CPU time.

    ``method``: ``"auto"`` (RAPL if readable, else CPU time), ``"rapl"`` (an error when not
    readable) or ``"cpu_time"``. ``rapl_root`` is the powercap folder (a test can point it at a
    fake one). ``describe()`` states the method for reports.
    """

    def __init__(self, method: str = "auto", watts_per_core: float = 10.0,
                 rapl_root: str | os.PathLike[str] = "/sys/class/powercap") -> None:
        if method not in POWER_METHODS:
            raise NasforgeError(f"unknown power method {method!r}; allowed: {', '.join(POWER_METHODS)}")
        self.watts_per_core = check_float(watts_per_core, "watts_per_core", 0, low_open=True)
        self._domains = _rapl_domains(Path(rapl_root))
        if method == "rapl" and not self._domains:
            raise NasforgeError(f"RAPL energy counters are not readable under {rapl_root} (no intel-rapl:N/energy_uj "
                                "we may read); use method='cpu_time' (declared power x CPU time)")
        self.method = "rapl" if (method == "rapl" or (method == "auto" and self._domains)) else "cpu_time"

    def describe(self) -> str:
        if self.method == "rapl":
            return f"RAPL package energy ({len(self._domains)} package counter(s), whole-package, includes other processes)"
        return f"declared {self.watts_per_core:g} W per busy core x process CPU time (no readable RAPL counters)"

    def start(self) -> tuple[float, float, list[int]]:
        return time.perf_counter(), time.process_time(), [_read_uj(p) for p, _ in self._domains] if self.method == "rapl" else []

    def stop(self, token: tuple[float, float, list[int]]) -> EnergyReading:
        wall0, cpu0, uj0 = token
        seconds = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        if self.method == "rapl":
            total = 0
            for (path, wrap), before in zip(self._domains, uj0):
                after = _read_uj(path)
                total += after - before if after >= before else after + wrap - before  # the counter wrapped
            joules = total / 1e6
        else:
            joules = cpu * self.watts_per_core
        return EnergyReading(joules, seconds, cpu, self.method)


def _rapl_domains(root: Path) -> list[tuple[Path, int]]:
    """Readable top-level RAPL package counters (``intel-rapl:N``, not their sub-domains ``:N:M``)."""
    out = []
    try:
        entries = sorted(root.glob("intel-rapl:*"))
    except OSError:
        return []
    for d in entries:
        if d.name.count(":") != 1:
            continue
        try:
            _read_uj(d / "energy_uj")
            wrap = int((d / "max_energy_range_uj").read_text().strip()) if (d / "max_energy_range_uj").exists() else 2**32
        except (OSError, ValueError):
            continue
        out.append((d / "energy_uj", wrap))
    return out


def _read_uj(path: Path) -> int:
    return int(Path(path).read_text().strip())


class JointTrainingEstimator(Estimator):
    """Train a joint configuration (architecture x hyperparameters) and measure its energy.

    The hyperparameters a :class:`~nasforge.spaces.joint.JointSpace` may hold:
    ``optimizer`` (sgd, adamw, nero), ``lr`` (absolute) or ``lr_scale`` (times the optimiser's
    default learning rate), ``batch_size``, ``epochs`` (the length of the cosine schedule: the
    configuration's full training), ``weight_decay``, ``label_smoothing``; those the space does not
    hold take this estimator's values. The fidelity is the number of epochs (1 up to the largest
    ``epochs`` of the space); a configuration asked for more epochs than its own ``epochs`` is
    trained to its own, and its measurement counts as one at the fidelity asked (a study compares
    it with the others there; ``metrics["epochs"]`` says what was trained). Training continues from checkpoints, so asking for 3 epochs and later 9
    trains 9 epochs in all and costs the energy of 9.

    Metrics: those of :class:`~nasforge.estimation.training.TrainingEstimator` plus
    ``train_energy_j`` (energy to train this network to the epochs reached), ``full_train_energy_j``
    (its energy per epoch so far times its configured ``epochs``: the cost of its full training),
    ``energy_j`` (what this call spent) and ``config_epochs``. ``info`` holds the learning curves
    (``valid_curve``, ``test_curve``, per epoch), ``epoch_energy_j`` and ``energy_method``.
    ``cost_unit``: ``"energy"`` (joules, default), ``"seconds"`` or ``"epochs"``. ``threads``
    (default 1, so CPU-time energy is one core's) is passed to the trainers.
    """

    def __init__(self, space: Any, dataset: Dataset, net: dict[str, Any] | None = None, seed: int = 0,
                 max_epochs: int = 10, optimizer: str = "sgd", batch_size: int = 64, weight_decay: float = 5e-4,
                 power: str = "auto", watts_per_core: float = 10.0, cost_unit: str = "energy",
                 threads: int | None = 1, keep: int = 8, eval_batch_size: int = 1024) -> None:
        from nasforge.spaces.joint import JointSpace

        if not isinstance(space, JointSpace):
            raise NasforgeError(f"JointTrainingEstimator needs a JointSpace (architecture x hyperparameters), got "
                                f"{shorten(space)}")
        unknown = [k for k in space.hp_space.keys if k not in TRAINING_HYPERPARAMETERS]
        if unknown:
            raise NasforgeError(f"hyperparameter {unknown[0]!r} has no meaning for training; allowed: "
                                f"{', '.join(TRAINING_HYPERPARAMETERS)}")
        if "lr" in space.hp_space.keys and "lr_scale" in space.hp_space.keys:
            raise NasforgeError("give either lr or lr_scale as a hyperparameter, not both")
        if cost_unit not in ("energy", "seconds", "epochs"):
            raise NasforgeError(f"unknown cost_unit {cost_unit!r}; allowed: energy, seconds, epochs")
        self.space, self.dataset, self.net, self.seed = space, dataset, dict(net or {}), seed
        self.max_epochs = check_int(max_epochs, "max_epochs", 1)
        self.optimizer, self.batch_size, self.weight_decay = optimizer, batch_size, weight_decay
        self.meter = EnergyMeter(power, watts_per_core)
        self.cost_unit, self.threads, self.keep, self.eval_batch_size = cost_unit, threads, keep, eval_batch_size
        if "epochs" in space.hp_space.keys:
            ep = space.hp_space.values[space.hp_space.keys.index("epochs")]
            if not all(isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in ep):
                raise NasforgeError(f"hyperparameter epochs must hold whole numbers >= 1, got {list(ep)!r}")
            top = max(ep)
        else:
            top = self.max_epochs
        self.fidelities = tuple(float(e) for e in range(1, top + 1))
        self._inner: dict[str, Any] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._trainer(space.sample(np.random.default_rng(0)))  # settings checked once, here

    def _settings(self, cfg: Any) -> dict[str, Any]:
        from nasforge.estimation.training import DEFAULT_LR

        hp = self.space.hyperparameters(cfg)
        opt = hp.get("optimizer", self.optimizer)
        if opt not in DEFAULT_LR:
            raise NasforgeError(f"unknown optimizer {opt!r}; allowed: {', '.join(DEFAULT_LR)}")
        lr = hp["lr"] if "lr" in hp else DEFAULT_LR[opt] * float(hp.get("lr_scale", 1.0))
        return {"optimizer": opt, "lr": float(lr), "batch_size": int(hp.get("batch_size", self.batch_size)),
                "max_epochs": int(hp.get("epochs", self.max_epochs)),
                "weight_decay": float(hp.get("weight_decay", self.weight_decay)),
                "label_smoothing": float(hp.get("label_smoothing", 0.0))}

    def _trainer(self, cfg: Any) -> Any:
        from nasforge.estimation.training import TrainingEstimator

        key = self.space.hp_space.format(cfg.hp)
        est = self._inner.get(key)
        if est is None:
            est = TrainingEstimator(self.space.space, self.dataset, net=self.net, seed=self.seed, keep=self.keep,
                                    threads=self.threads, eval_batch_size=self.eval_batch_size, cost_unit="seconds",
                                    **self._settings(cfg))
            self._inner[key] = est
        return est

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        cfg = self.space.coerce(arch)
        top = int(self.fidelities[-1])
        if fidelity is not None and (float(fidelity) != int(float(fidelity)) or not 1 <= float(fidelity) <= top):
            raise NasforgeError(f"fidelity {fidelity!r} is not a whole number of epochs in 1..{top}")
        trainer = self._trainer(cfg)
        own = trainer.max_epochs
        target = own if fidelity is None else min(int(float(fidelity)), own)
        text = self.space.format(cfg)
        rec = self._records.setdefault(text, {"valid_curve": [], "test_curve": [], "epoch_energy_j": [],
                                              "epoch_seconds": [], "config_epochs": own})
        spent, seconds = 0.0, 0.0
        m: Measurement | None = None
        if target <= len(rec["valid_curve"]):  # fewer epochs than recorded: retrain deterministically
            token = self.meter.start()
            m = trainer.estimate(cfg.arch, target)
            r = self.meter.stop(token)
            spent, seconds = r.joules, r.seconds
        while len(rec["valid_curve"]) < target:
            token = self.meter.start()
            m = trainer.estimate(cfg.arch, len(rec["valid_curve"]) + 1)
            r = self.meter.stop(token)
            spent += r.joules
            seconds += r.seconds
            rec["valid_curve"].append(m.metrics["valid_acc"])
            rec["test_curve"].append(m.metrics["test_acc"])
            rec["epoch_energy_j"].append(r.joules)
            rec["epoch_seconds"].append(r.seconds)
        assert m is not None
        per_epoch = rec["epoch_energy_j"]
        metrics = dict(m.metrics)
        metrics.update(train_energy_j=float(sum(per_epoch[:target])),
                       full_train_energy_j=float(sum(per_epoch) / len(per_epoch) * own),
                       energy_j=spent, config_epochs=float(own))
        cost = {"energy": spent, "seconds": seconds, "epochs": float(m.info.get("epochs_trained", 0))}[self.cost_unit]
        info = {"valid_curve": list(rec["valid_curve"][:target]), "test_curve": list(rec["test_curve"][:target]),
                "epoch_energy_j": list(per_epoch[:target]), "energy_method": self.meter.method}
        # the fidelity asked for: a configuration trained in full to its own epochs (fewer than the
        # fidelity) is a result at that fidelity, comparable with the others there
        return Measurement(metrics, cost, None if fidelity is None else float(fidelity), info)

    def records(self) -> list[dict[str, Any]]:
        """Every configuration trained so far: its string, learning curves and per-epoch energy."""
        return [{"config": text, **{k: (list(v) if isinstance(v, list) else v) for k, v in rec.items()},
                 "energy_method": self.meter.method} for text, rec in self._records.items()]

    @property
    def metric_names(self) -> list[str]:
        return ["valid_acc", "valid_loss", "test_acc", "test_loss", "train_loss", "train_acc", "params", "epochs",
                "train_seconds", "train_energy_j", "full_train_energy_j", "energy_j", "config_epochs"]

    def higher_is_better(self, metric: str) -> bool:
        return super().higher_is_better(metric) and metric != "config_epochs"


class EnergyAwareScore(Estimator):
    """Any estimator's measurements plus ``ea_score = metric * (energy / target) ** weight``.

    ``weight`` < 0 rewards low energy (MnasNet's soft constraint with ``target`` the energy at
    which the score equals the metric); ``energy`` names the energy metric (default the full
    training energy of the configuration, so low-fidelity results of a multi-fidelity search are
    scored by what the configuration would cost to train in full). Fidelities, cost and the other
    metrics pass through unchanged.
    """

    def __init__(self, estimator: Estimator, target: float, weight: float = -0.07, metric: str = "valid_acc",
                 energy: str = "full_train_energy_j", name: str = "ea_score") -> None:
        if not isinstance(estimator, Estimator):
            raise NasforgeError(f"EnergyAwareScore wraps an estimator, got {shorten(estimator)}")
        self.estimator = estimator
        self.target = check_float(target, "target (energy, J)", 0, low_open=True)
        self.weight = check_float(weight, "weight")
        self.metric, self.energy, self.name = metric, energy, name
        self.fidelities = estimator.fidelities

    def score(self, value: float, energy: float) -> float:
        return float(value) * (max(float(energy), 1e-12) / self.target) ** self.weight

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        m = self.estimator.estimate(arch, fidelity)
        for key in (self.metric, self.energy):
            if key not in m.metrics:
                raise NasforgeError(f"EnergyAwareScore needs metric {key!r}; the estimator gives "
                                    f"{', '.join(sorted(m.metrics))}")
        metrics = dict(m.metrics)
        metrics[self.name] = self.score(m.metrics[self.metric], m.metrics[self.energy])
        return Measurement(metrics, m.cost, m.fidelity, m.info)

    @property
    def metric_names(self) -> list[str]:
        return list(self.estimator.metric_names) + [self.name]

    def higher_is_better(self, metric: str) -> bool:
        return True if metric == self.name else self.estimator.higher_is_better(metric)


def search_energy(study: Any) -> float:
    """The energy a study's finished trials spent: the sum of their costs (joules when the
    estimator's cost unit is energy)."""
    return float(sum(t.cost or 0.0 for t in study.trials if t.state.finished))


__all__ = ["EnergyMeter", "EnergyReading", "JointTrainingEstimator", "EnergyAwareScore", "search_energy",
           "POWER_METHODS", "TRAINING_HYPERPARAMETERS"]
