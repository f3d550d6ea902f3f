"""Single-path supernet training: a fixed number of steps, resumable checkpoints.

The trainer works on any space's supernet (:class:`~nasforge.spaces.supernet.Supernet`): it only
runs ``model(x, path)`` on the paths the sampler draws.

One *step* is one optimiser update. It trains the path(s) the sampler chooses on one minibatch:
one path for SPOS and PA&DA, a group of one path per operation for FairNAS (gradients summed,
one update), so the
compute of a step is ``sampler.group_size`` forward/backward passes. Benchmarks that compare
samplers at equal compute count *path passes* (``steps * group_size``).

Loop (as :class:`~nasforge.estimation.training.TrainingEstimator`): SGD with Nesterov momentum,
weight decay on weights only (not on BatchNorm/bias), gradient-norm clipping, ``crop_flip``
augmentation for images, cross-entropy. Weights a step does not use get no gradient (``None``),
so neither weight decay nor stale momentum moves them.

Learning rate: a cosine over *progress*, ``lr * (1 + cos(pi * f)) / 2``; the trainer's steps
cover ``f`` in ``schedule = (start, end)`` (default the whole curve, ``(0, 1)``). Few-shot
sub-supernets continue the curve of their parent: the parent covers ``(0, 0.5)``, its children
``(0.5, 1)``.

Checkpoints (``checkpoint=path``): every ``checkpoint_every`` steps and at the end, the model,
the optimiser, the sampler's state, the path generator (NumPy), the data generator (PyTorch),
the current epoch's example order and position, and the step count are written atomically; a
new trainer with the same settings continues from there exactly as the uninterrupted run would.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nasforge.data import Dataset
from nasforge.errors import NasforgeError
from nasforge.estimation.training import TrainingDiverged, arch_seed, crop_flip
from nasforge.oneshot.samplers import PathSampler
from nasforge.spaces.supernet import DEFAULT_SPACE, Supernet

__all__ = ["SupernetTrainer", "downsample", "build_supernet"]


def downsample(dataset: Dataset, size: int) -> Dataset:
    """A copy of an image dataset with every image average-pooled to ``size`` x ``size``.

    ``size`` must divide the current side (32 -> 16 or 8 for CIFAR-10). Used by the CPU-scale
    protocol to cut the cost of a step by about 4x at 16 x 16.
    """
    if dataset.kind != "image":
        raise NasforgeError(f"downsample needs image data; dataset {dataset.name!r} holds vectors")
    side = dataset.input_size
    if size == side:
        return dataset
    if size < 4 or size > side or side % size:
        raise NasforgeError(f"image size {size} must divide the dataset's side {side} (and be >= 4)")
    f = side // size

    def pool(x: np.ndarray) -> np.ndarray:
        return F.avg_pool2d(torch.from_numpy(x), f).numpy() if len(x) else x[:, :, :size, :size]

    return replace(dataset, name=f"{dataset.name}@{size}", x_train=pool(dataset.x_train), x_val=pool(dataset.x_val),
                   x_test=pool(dataset.x_test))


def build_supernet(dataset: Dataset, space: Any = None, *, seed: int = 0, allowed: Any = None,
                   **net: Any) -> Supernet:
    """An untrained supernet of ``space`` (a space or its registry name; default the default
    space) sized for ``dataset``; its initial weights depend only on ``seed``.

    ``net``: network settings of the space's supernet; unset ones take the layout's small CPU-scale
    settings (``cpu_net``), the data's classes, channels and image side."""
    from nasforge.spaces import get_space

    if space is None:
        space = DEFAULT_SPACE
    sp = get_space(space) if isinstance(space, str) else space
    layout = sp.supernet_layout()
    if dataset.kind != "image":
        raise NasforgeError(f"the {sp.name} supernet needs image data; dataset {dataset.name!r} holds vectors")
    settings = {**layout.cpu_net, "num_classes": dataset.num_classes, "in_channels": dataset.in_channels,
                "input_size": dataset.input_size, **net}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(arch_seed(seed, f"{sp.name}-supernet"))
        try:
            return layout.build(allowed=allowed, **settings)
        except TypeError as exc:
            raise NasforgeError(f"bad network settings for the {sp.name} supernet: {exc}") from None


class SupernetTrainer:
    """Trains ``model`` for ``steps`` optimiser updates with the paths ``sampler`` chooses.

    ``x``/``y``: training images (NCHW float) and labels, as tensors or arrays. ``augment``:
    ``"crop_flip"`` (padding ``pad``, default ``side // 8``) or ``None``. ``seed`` fixes the path
    and data generators. See the module docstring for the schedule and checkpoints; with a
    ``checkpoint`` file present, :meth:`train` resumes from it.
    """

    def __init__(
        self,
        model: Supernet,
        sampler: PathSampler,
        x: Any,
        y: Any,
        steps: int,
        batch_size: int = 64,
        lr: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        grad_clip: float | None = 5.0,
        augment: str | None = "crop_flip",
        pad: int | None = None,
        seed: int = 0,
        schedule: tuple[float, float] = (0.0, 1.0),
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 200,
    ) -> None:
        self.x = torch.as_tensor(x, dtype=torch.float32)
        self.y = torch.as_tensor(y, dtype=torch.int64)
        if self.x.ndim != 4 or len(self.x) != len(self.y):
            raise NasforgeError(f"training data must be images (N, C, H, W) with one label each; "
                                f"got x {tuple(self.x.shape)}, y {tuple(self.y.shape)}")
        for name, v in (("steps", steps), ("batch_size", batch_size), ("checkpoint_every", checkpoint_every)):
            if isinstance(v, bool) or int(v) != v or int(v) < 1:
                raise NasforgeError(f"{name} must be a positive whole number, got {v!r}")
        if batch_size > len(self.y):
            raise NasforgeError(f"batch_size {batch_size} exceeds the {len(self.y)} training examples")
        if augment not in (None, "crop_flip"):
            raise NasforgeError(f"unknown augmentation {augment!r}; allowed: crop_flip, None")
        a, b = (float(v) for v in schedule)
        if not 0.0 <= a < b <= 1.0:
            raise NasforgeError(f"schedule must be (start, end) with 0 <= start < end <= 1, got {schedule}")
        if lr <= 0:
            raise NasforgeError(f"lr must be positive, got {lr}")
        sampler.bind(model)  # the sampler adopts the supernet's layout, or checks its restriction
        self.model, self.sampler = model, sampler
        self.steps, self.batch_size = int(steps), int(batch_size)
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.grad_clip = grad_clip
        self.augment = augment
        self.pad = int(pad) if pad is not None else max(1, self.x.shape[-1] // 8)
        self.seed, self.schedule = int(seed), (a, b)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = int(checkpoint_every)
        decay = [p for p in model.parameters() if p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.ndim <= 1]
        self.optimizer = torch.optim.SGD(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr, momentum=self.momentum, nesterov=self.momentum > 0)
        self.rng = np.random.default_rng(arch_seed(self.seed, "supernet-paths"))
        self.gen = torch.Generator().manual_seed(arch_seed(self.seed, "supernet-data"))
        self.step = 0
        self.epoch = 0
        self.seconds = 0.0
        self.order: Tensor | None = None
        self.pos = 0
        self.last_loss = math.nan
        self.sampler.begin(len(self.y))

    # --- schedule -----------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        return len(self.y) // self.batch_size

    def progress(self, step: int | None = None) -> float:
        """Position on the learning-rate curve (0..1) at ``step`` (default: now)."""
        a, b = self.schedule
        return a + (b - a) * (self.step if step is None else step) / self.steps

    def lr_at(self, step: int) -> float:
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * self.progress(step)))

    # --- the loop -----------------------------------------------------------------------------
    def _next_batch(self) -> Tensor:
        if self.order is None or self.pos + self.batch_size > len(self.order):
            self.order = self.sampler.epoch_order(self.progress(), self.gen)
            self.pos = 0
            if self.step > 0:
                self.epoch += 1
        idx = self.order[self.pos: self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def train_step(self) -> float:
        """One optimiser update; returns the mean loss over the step's paths."""
        model, opt = self.model, self.optimizer
        model.train()
        idx = self._next_batch()
        x, y = self.x[idx], self.y[idx]
        if self.augment == "crop_flip":
            x = crop_flip(x, self.gen, pad=self.pad)
        paths = self.sampler.sample_group(self.rng)
        lr = self.lr_at(self.step)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for path in paths:
            out = model(x, path)
            loss = F.cross_entropy(out, y)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"supernet loss is {float(loss)} at step {self.step + 1} (path {path})")
            loss.backward()  # FairNAS: gradients of the group's paths add up
            self.sampler.observe_batch(idx, out.detach(), y)
            self.sampler.observe_gradients(model, path)
            total += loss.item()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
        opt.step()
        self.step += 1
        self.last_loss = total / len(paths)
        return self.last_loss

    def train(self, until: int | None = None, progress: bool = False, desc: str = "supernet",
              callback: Callable[[SupernetTrainer], None] | None = None) -> dict[str, float]:
        """Train until step ``until`` (default: ``steps``), resuming from the checkpoint file if one
        exists. Returns ``step``, ``loss`` (mean of the last 50 steps), ``seconds`` (training time
        over all sessions) and ``seconds_per_step`` (this session)."""
        until = self.steps if until is None else int(until)
        if not 0 <= until <= self.steps:
            raise NasforgeError(f"until must lie in 0..{self.steps}, got {until}")
        if self.step == 0 and self.checkpoint is not None and self.checkpoint.is_file():
            self.load(self.checkpoint)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=until, initial=min(self.step, until), desc=desc, unit="step", dynamic_ncols=True)
        recent: list[float] = []
        start_step, t_session = self.step, 0.0
        try:
            while self.step < until:
                t0 = time.perf_counter()
                loss = self.train_step()
                dt = time.perf_counter() - t0
                t_session += dt
                self.seconds += dt
                recent = (recent + [loss])[-50:]
                if callback is not None:
                    callback(self)
                if self.checkpoint is not None and (self.step % self.checkpoint_every == 0 or self.step == self.steps):
                    self.save(self.checkpoint)
                if bar is not None:
                    bar.update(1)
                    if self.step % 10 == 0:
                        bar.set_postfix_str(f"loss {np.mean(recent):.3f} lr {self.lr_at(self.step):.4f}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        done = self.step - start_step
        return {"step": float(self.step), "loss": float(np.mean(recent)) if recent else self.last_loss,
                "seconds": self.seconds, "seconds_per_step": t_session / done if done else math.nan}

    # --- persistence --------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """What must match for a checkpoint to be continued."""
        return {"steps": self.steps, "batch_size": self.batch_size, "lr": self.lr, "momentum": self.momentum,
                "weight_decay": self.weight_decay, "grad_clip": self.grad_clip, "augment": self.augment,
                "pad": self.pad, "seed": self.seed, "schedule": list(self.schedule), "n_train": len(self.y),
                "sampler": self.sampler.name, "sampler_settings": self.sampler.settings(),
                "supernet": self.model.config}

    def state_dict(self) -> dict[str, Any]:
        return {"settings": self.settings(), "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "sampler": self.sampler.state_dict(), "rng": _rng_state(self.rng), "gen": self.gen.get_state(),
                "order": self.order, "pos": self.pos, "step": self.step, "epoch": self.epoch, "seconds": self.seconds,
                "last_loss": self.last_loss}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine, theirs = self.settings(), dict(state["settings"])
        if isinstance(theirs.get("supernet"), dict) and "space" not in theirs["supernet"]:
            theirs["supernet"] = {"space": DEFAULT_SPACE, **theirs["supernet"]}  # written before spaces owned supernets
        diff = [k for k in mine if _norm(mine[k]) != _norm(theirs.get(k))]
        if diff:
            k = diff[0]
            raise NasforgeError(f"checkpoint was written with {k}={theirs.get(k)!r}, this run has {k}={mine[k]!r}; "
                                "use the same settings to resume (or another checkpoint path)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        self.sampler.begin(len(self.y))
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = _rng_unstate(state["rng"])
        self.gen.set_state(state["gen"])
        self.order, self.pos = state["order"], int(state["pos"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.seconds, self.last_loss = float(state["seconds"]), float(state["last_loss"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the full training state atomically (``torch.load(..., weights_only=True)`` reads it)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, p)

    def load(self, path: str | os.PathLike[str]) -> None:
        try:
            state = torch.load(Path(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - truncated/corrupt file
            raise NasforgeError(f"cannot read checkpoint {path}: {exc}".splitlines()[0]) from None
        self.load_state_dict(state)

    def __repr__(self) -> str:
        return (f"SupernetTrainer({self.sampler!r}, steps={self.steps}, batch_size={self.batch_size}, lr={self.lr}, "
                f"schedule={self.schedule}, step={self.step})")


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A NumPy generator state with its 128-bit integers as strings (safe for weights_only)."""
    st = rng.bit_generator.state
    return {"bit_generator": st["bit_generator"], "state": str(st["state"]["state"]), "inc": str(st["state"]["inc"]),
            "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}


def _rng_unstate(d: dict[str, Any]) -> dict[str, Any]:
    return {"bit_generator": d["bit_generator"], "state": {"state": int(d["state"]), "inc": int(d["inc"])},
            "has_uint32": int(d["has_uint32"]), "uinteger": int(d["uinteger"])}


def _norm(v: Any) -> Any:
    """Settings compared after a JSON-like round trip (tuples as lists)."""
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v
