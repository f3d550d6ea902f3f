"""Real training as an estimator: the fidelity is the number of epochs.

A trial trained to ``r`` epochs can be continued to ``R > r`` epochs from its checkpoint (model,
optimiser, data-order generator, step count): the learning-rate schedule is fixed by
``max_epochs``, so the state after ``R`` epochs is the same whether it was reached in one call
or in several. Multi-fidelity schedulers rely on this to promote without retraining.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nasforge.data import Dataset
from nasforge.errors import NasforgeError, check_float, check_int, check_seed, shorten
from nasforge.estimation.base import Estimator, Measurement
from nasforge.spaces.base import SearchSpace


#: the optimisers training accepts, and each one's learning rate when none is given
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw", "nero")
DEFAULT_LR: dict[str, float] = {"sgd": 0.1, "adamw": 1e-3, "nero": 0.01}


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


def arch_seed(seed: int, text: str) -> int:
    """A 63-bit seed derived from a base seed and an architecture string (stable across runs)."""
    h = hashlib.blake2b(f"{seed}|{text}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with zero padding ``pad`` and random horizontal flip, per sample (NCHW)."""
    b, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    oh = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    ow = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (oh[:, None] + torch.arange(h))[:, :, None]  # b, h, 1
    cols = (ow[:, None] + torch.arange(w))[:, None, :]  # b, 1, w
    out = xp.permute(0, 2, 3, 1)[torch.arange(b)[:, None, None], rows, cols]  # b, h, w, c
    out = out.permute(0, 3, 1, 2)
    flip = torch.rand(b, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out).contiguous()


@dataclass
class _State:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    gen: torch.Generator
    epochs: int
    step: int
    seconds: float


class TrainingEstimator(Estimator):
    """Train ``space.build(arch)`` on ``dataset`` for ``fidelity`` epochs and measure it.

    Metrics: ``valid_acc`` / ``valid_loss`` (the validation split: what search selects by),
    ``test_acc`` / ``test_loss`` (reported only), ``train_loss``, ``train_acc``, ``params``,
    ``epochs``, ``train_seconds``. Optimisers: ``"sgd"`` (Nesterov momentum 0.9, lr 0.1),
    ``"adamw"`` (lr 1e-3) or ``"nero"`` (:class:`~nasforge.estimation.nero.Nero`, lr 0.01, no
    weight decay: its balanced neurons have a fixed norm), each with a cosine learning-rate
    schedule over ``max_epochs``, per step.

    Knowledge distillation: with a ``teacher`` (any ``nn.Module`` mapping the dataset's inputs to
    logits, e.g. another estimator's ``trained_model(arch)``; it runs in eval mode and is never
    updated) the loss is ``(1 - kd_weight) * CE + kd_weight * T^2 KL(teacher/T || student/T)`` at
    temperature ``kd_temperature``; ``distiller="diswot"`` adds ``diswot_weight`` times DisWOT's
    semantic and relation distances between teacher and student
    (:func:`~nasforge.estimation.distill.diswot_distances`) on each batch.

    ``flatness=True`` adds GeNAS's ``flatness`` of the trained minimum on the validation split
    (:func:`~nasforge.estimation.flatness.genas_flatness`, noise seeded from the architecture).
    ``augment``: ``"auto"`` takes the dataset's suggestion (crop+flip for CIFAR), or
    ``"crop_flip"``/``None``. A NaN/inf loss raises :class:`TrainingDiverged` (the study
    marks the trial failed and goes on).

    Threads: ``threads`` sets ``torch.set_num_threads`` once at construction (default:
    :func:`free_cores`, the cores this process may use that other processes leave idle). More
    threads than free cores is the one thing to avoid: on a shared machine the intra-op threads
    wait for each other at every operation: on 2 cores already shared with other work, 20 trials
    of the default search took 322 s with 2 threads against 32 s with the 1 thread chosen here
    (docs/benchmarks.md, issue 19).

    Settings are checked at construction, and one network is built there (the first
    architecture of ``space.sample`` with a fixed generator), so a space that cannot build a
    network for this dataset, or network settings it refuses (``net={"C": 0}``), are one error
    before any search starts rather than a failure in every trial.

    Checkpoints of partially trained architectures are kept in memory (the ``keep`` most recent)
    and, with ``checkpoint_dir``, on disk, so a resumed study also continues them.
    ``cost_unit`` chooses what a measurement's cost counts: ``"seconds"`` of training or
    ``"epochs"`` trained by this call.
    """

    def __init__(
        self,
        space: SearchSpace,
        dataset: Dataset,
        max_epochs: int = 10,
        optimizer: str = "sgd",
        lr: float | None = None,
        weight_decay: float = 5e-4,
        batch_size: int = 64,
        label_smoothing: float = 0.0,
        augment: str | None = "auto",
        net: dict[str, Any] | None = None,
        seed: int = 0,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        keep: int = 32,
        threads: int | None = None,
        eval_batch_size: int = 1024,
        cost_unit: str = "seconds",
        teacher: torch.nn.Module | None = None,
        kd_temperature: float = 4.0,
        kd_weight: float = 0.9,
        distiller: str = "kd",
        diswot_weight: float = 1.0,
        flatness: bool = False,
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise NasforgeError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
        if teacher is not None and not isinstance(teacher, torch.nn.Module):
            raise NasforgeError(f"bad teacher {type(teacher).__name__}: expected a torch.nn.Module or None")
        if distiller not in ("kd", "diswot"):
            raise NasforgeError(f"unknown distiller {distiller!r}; allowed: kd, diswot")
        from nasforge.estimation.distill import check_distill_settings

        kd_temperature, kd_weight, diswot_weight = check_distill_settings(kd_temperature, kd_weight, diswot_weight)
        if augment == "auto":
            augment = dataset.augment
        if augment not in (None, "crop_flip"):
            raise NasforgeError(f"unknown augmentation {augment!r}; allowed: auto, crop_flip, None")
        if augment == "crop_flip" and dataset.kind != "image":
            raise NasforgeError(f"augmentation crop_flip needs image data; dataset {dataset.name!r} holds vectors")
        if cost_unit not in ("seconds", "epochs"):
            raise NasforgeError(f"unknown cost_unit {cost_unit!r}; allowed: seconds, epochs")
        max_epochs, batch_size, keep = (check_int(v, n, 1) for n, v in (
            ("max_epochs", max_epochs), ("batch_size", batch_size), ("keep", keep)))
        eval_batch_size = check_int(eval_batch_size, "eval_batch_size", 1)
        label_smoothing = check_float(label_smoothing, "label_smoothing", 0, 1, high_open=True)
        weight_decay = check_float(weight_decay, "weight_decay", 0)
        if lr is not None:
            lr = check_float(lr, "lr (learning rate)", 0, low_open=True)
        seed = check_seed(seed)
        if net is not None and not isinstance(net, dict):
            raise NasforgeError(f"bad net {shorten(net)}: expected a dict of network settings, e.g. {{'C': 8, 'N': 1}}")
        if threads is not None:
            threads = check_int(threads, "threads", 1)
        self.space, self.dataset = space, dataset
        self.max_epochs = int(max_epochs)
        self.fidelities = tuple(float(e) for e in range(1, self.max_epochs + 1))
        self.optimizer = optimizer
        self.lr = lr if lr is not None else DEFAULT_LR[optimizer]
        self.teacher, self.distiller, self.flatness = teacher, distiller, bool(flatness)
        self.kd_temperature, self.kd_weight, self.diswot_weight = kd_temperature, kd_weight, diswot_weight
        if teacher is not None:
            teacher.eval()
        self.weight_decay, self.batch_size, self.label_smoothing = weight_decay, int(batch_size), label_smoothing
        self.augment = augment
        self.net = dict(net or {})
        self.seed = seed
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.keep = keep
        self.eval_batch_size = eval_batch_size
        self.cost_unit = cost_unit
        if threads is not None or not getattr(TrainingEstimator, "_threads_set", False):
            torch.set_num_threads(int(threads or free_cores()))
            TrainingEstimator._threads_set = True
        self._states: OrderedDict[str, _State] = OrderedDict()
        d = dataset
        self._x = {"train": torch.from_numpy(d.x_train), "valid": torch.from_numpy(d.x_val),
                   "test": torch.from_numpy(d.x_test)}
        self._y = {"train": torch.from_numpy(d.y_train), "valid": torch.from_numpy(d.y_val),
                   "test": torch.from_numpy(d.y_test)}
        self._steps_per_epoch = max(1, math.ceil(len(d.y_train) / self.batch_size))
        self._probe()

    def _probe(self) -> None:
        """Build one network now: a space or network settings that cannot work with this dataset
        are one clear error here, not a failed trial each."""
        probe = self.space.sample(np.random.default_rng(0))
        try:
            model = self.build(probe)
            with torch.no_grad():
                model.eval()
                model(self._x["train"][:2])
        except NasforgeError:
            raise
        except NotImplementedError as exc:
            raise NasforgeError(f"space {self.space.name!r} cannot be trained here: {exc}".split("\n")[0]) from None
        except (TypeError, ValueError, RuntimeError, MemoryError) as exc:
            raise NasforgeError(
                f"space {self.space.name!r} cannot build a network for dataset {self.dataset.name!r} "
                f"{tuple(self.dataset.input_shape)} with settings {shorten(self.net, 120)}: "
                f"{type(exc).__name__}: {exc}".split("\n")[0]) from None

    # --- network ----------------------------------------------------------------------------
    def build(self, arch: Any) -> torch.nn.Module:
        """The untrained network for ``arch`` on this dataset (same weights every call)."""
        d = self.dataset
        if d.kind != "image":
            raise NasforgeError(
                f"space {self.space.name!r} builds image networks; dataset {d.name!r} holds vectors of shape "
                f"{d.input_shape} (use an image dataset: digits, cifar10, an image .npz or folder)"
            )
        from nasforge.spaces.base import settings_for

        data = {"num_classes": d.num_classes, "in_channels": d.in_channels, "input_size": d.input_size}
        kwargs = {**settings_for(self.space.build, data), **self.net}  # the data settings its builder takes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(arch_seed(self.seed, self.space.format(arch)))
            return self.space.build(arch, **kwargs)

    def _new_state(self, arch: Any) -> _State:
        model = self.build(arch)
        decay = [p for n, p in model.named_parameters() if p.ndim > 1]
        no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        if self.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=self.lr, momentum=0.9, nesterov=True)
        elif self.optimizer == "nero":
            from nasforge.estimation.nero import Nero

            opt = Nero(model.parameters(), lr=self.lr)
        else:
            opt = torch.optim.AdamW(groups, lr=self.lr)
        gen = torch.Generator().manual_seed(arch_seed(self.seed + 1, self.space.format(arch)))
        return _State(model, opt, gen, 0, 0, 0.0)

    def _ckpt_path(self, text: str) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        return self.checkpoint_dir / f"{hashlib.sha1(text.encode()).hexdigest()[:16]}.pt"

    def _load_state(self, arch: Any, text: str) -> _State:
        st = self._states.get(text)
        if st is not None:
            self._states.move_to_end(text)
            return st
        st = self._new_state(arch)
        path = self._ckpt_path(text)
        if path is not None and path.is_file():
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob.get("arch") == text:
                st.model.load_state_dict(blob["model"])
                st.optimizer.load_state_dict(blob["optimizer"])
                st.gen.set_state(blob["gen"])
                st.epochs, st.step, st.seconds = int(blob["epochs"]), int(blob["step"]), float(blob["seconds"])
        return st

    def _save_state(self, text: str, st: _State) -> None:
        self._states[text] = st
        self._states.move_to_end(text)
        while len(self._states) > self.keep:
            self._states.popitem(last=False)
        path = self._ckpt_path(text)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save({"arch": text, "model": st.model.state_dict(), "optimizer": st.optimizer.state_dict(),
                        "gen": st.gen.get_state(), "epochs": st.epochs, "step": st.step, "seconds": st.seconds}, tmp)
            os.replace(tmp, path)

    def trained_model(self, arch: Any, epochs: int | None = None) -> torch.nn.Module:
        """The network of ``arch`` trained to ``epochs`` (from its checkpoint where possible)."""
        self.estimate(arch, epochs)
        return self._states[self.space.format(self.space.coerce(arch))].model

    # --- the loop ---------------------------------------------------------------------------
    def _train_epoch(self, st: _State) -> tuple[float, float]:
        model, opt, gen = st.model, st.optimizer, st.gen
        x_all, y_all = self._x["train"], self._y["train"]
        n, bs = len(y_all), self.batch_size
        total = self.max_epochs * self._steps_per_epoch
        perm = torch.randperm(n, generator=gen)
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.int64)
        base_lrs = [self.lr for _ in opt.param_groups]
        for i in range(0, n, bs):
            idx = perm[i: i + bs]
            x, y = x_all[idx], y_all[idx]
            if self.augment == "crop_flip":
                x = crop_flip(x, gen)
            lr_scale = 0.5 * (1.0 + math.cos(math.pi * st.step / total))
            for g, base in zip(opt.param_groups, base_lrs):
                g["lr"] = base * lr_scale
            if self.teacher is None:
                out = model(x)
                loss = F.cross_entropy(out, y, label_smoothing=self.label_smoothing)
            else:
                out, loss = self._distill_loss(model, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            st.step += 1
            with torch.no_grad():
                loss_sum += loss.detach() * len(y)
                correct += (out.argmax(1) == y).sum()
        train_loss = float(loss_sum) / n
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training loss is {train_loss} after epoch {st.epochs + 1}")
        return train_loss, 100.0 * float(correct) / n

    def _distill_loss(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """(student logits, loss) of one batch under knowledge distillation."""
        from nasforge.estimation.distill import diswot_distances, kd_loss, run_tapped

        assert self.teacher is not None
        self.teacher.eval()
        with torch.no_grad():
            t_out = run_tapped(self.teacher, x) if self.distiller == "diswot" else (self.teacher(x),)
        s_out = run_tapped(model, x) if self.distiller == "diswot" else (model(x),)
        ce = F.cross_entropy(s_out[0], y, label_smoothing=self.label_smoothing)
        loss = (1.0 - self.kd_weight) * ce + self.kd_weight * kd_loss(s_out[0], t_out[0], self.kd_temperature)
        if self.distiller == "diswot" and self.diswot_weight > 0:
            sem, rel = diswot_distances(t_out, s_out, y)  # type: ignore[arg-type]
            loss = loss + self.diswot_weight * (sem + rel)
        return s_out[0], loss

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, split: str) -> tuple[float, float]:
        """(accuracy %, mean loss) of ``model`` on ``split`` (``valid`` or ``test``)."""
        model.eval()
        x_all, y_all = self._x[split], self._y[split]
        loss_sum, correct = 0.0, 0
        for i in range(0, len(y_all), self.eval_batch_size):
            x, y = x_all[i: i + self.eval_batch_size], y_all[i: i + self.eval_batch_size]
            out = model(x)
            loss_sum += float(F.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
        n = max(1, len(y_all))
        return 100.0 * correct / n, loss_sum / n

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        arch = self.space.coerce(arch)
        epochs = self.max_epochs if fidelity is None else int(round(float(fidelity)))
        if not 1 <= epochs <= self.max_epochs or (fidelity is not None and float(fidelity) != epochs):
            raise NasforgeError(f"fidelity {fidelity!r} is not a whole number of epochs in 1..{self.max_epochs}")
        text = self.space.format(arch)
        st = self._load_state(arch, text)
        if st.epochs > epochs:  # asked for less than was trained: retrain deterministically
            st = self._new_state(arch)
        t0 = time.perf_counter()
        done_before = st.epochs
        train_loss = train_acc = math.nan
        while st.epochs < epochs:
            train_loss, train_acc = self._train_epoch(st)
            st.epochs += 1
        seconds = time.perf_counter() - t0
        st.seconds += seconds
        va, vl = self.evaluate(st.model, "valid")
        ta, tl = self.evaluate(st.model, "test")
        self._save_state(text, st)
        metrics = {"valid_acc": va, "valid_loss": vl, "test_acc": ta, "test_loss": tl,
                   "params": float(count_params(st.model)), "epochs": float(st.epochs),
                   "train_seconds": st.seconds}
        if not math.isnan(train_loss):
            metrics.update(train_loss=train_loss, train_acc=train_acc)
        if self.flatness:
            from nasforge.estimation.flatness import genas_flatness

            metrics["flatness"], _ = genas_flatness(st.model, self._x["valid"], self._y["valid"],
                                                    seed=arch_seed(self.seed + 2, text),
                                                    batch_size=self.eval_batch_size)
        cost = seconds if self.cost_unit == "seconds" else float(st.epochs - done_before)
        return Measurement(metrics, cost, float(epochs), {"epochs_trained": st.epochs - done_before})

    @property
    def metric_names(self) -> list[str]:
        names = ["valid_acc", "valid_loss", "test_acc", "test_loss", "train_loss", "train_acc", "params",
                 "epochs", "train_seconds"]
        return names + (["flatness"] if self.flatness else [])

    def __repr__(self) -> str:
        return (f"TrainingEstimator({self.space.name}, {self.dataset.name}, max_epochs={self.max_epochs}, "
                f"optimizer={self.optimizer}, lr={self.lr}, batch_size={self.batch_size}, net={self.net})")


def free_cores(sample: float = 0.2) -> int:
    """The cores this process may use that other processes leave idle, at least 1.

    Usable cores: the CPU affinity, capped by a cgroup CPU quota where there is one. Busy cores:
    the larger of the 1-minute load average and the busy fraction of the CPUs over ``sample``
    seconds now (from ``/proc/stat``; the load average lags a neighbour that just started),
    scaled to the usable cores when the machine has more cores than this process may use.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        usable = max(1, min(usable, math.ceil(quota)))
    total = os.cpu_count() or usable
    busy = 0.0
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        pass
    if sample > 0:
        now = _busy_cpus(sample)
        if now is not None:
            busy = max(busy, now)
    if total > usable:
        busy *= usable / total
    free = max(1, min(usable, int(usable - busy + 0.5)))
    LAST_CORES.update(usable=usable, busy=round(busy, 2), free=free)
    return free


#: what the last :func:`free_cores` call found: usable cores, busy cores, free cores
LAST_CORES: dict[str, float] = {}


def _cpu_times() -> tuple[float, float] | None:
    try:
        with open("/proc/stat") as fh:
            fields = [float(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields[:8]), idle


def _busy_cpus(seconds: float) -> float | None:
    """CPUs busy (of every CPU of the machine) over the next ``seconds``, from /proc/stat."""
    a = _cpu_times()
    if a is None:
        return None
    time.sleep(seconds)
    b = _cpu_times()
    if b is None or b[0] <= a[0]:
        return None
    frac = 1.0 - (b[1] - a[1]) / (b[0] - a[0])
    return max(0.0, frac) * (os.cpu_count() or 1)


def _cgroup_cpus() -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` quota, or None when unlimited or unknown."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return float(quota) / float(period)
    except (ValueError, ZeroDivisionError):
        return None


def set_seed_everywhere(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators (for scripts; estimators do not need it)."""
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
