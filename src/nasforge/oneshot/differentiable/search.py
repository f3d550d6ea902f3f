"""The bilevel search loop shared by every differentiable method.

Each step takes a training batch and a validation batch (the dataset's ``train`` and ``val``
splits), first updates α on the validation batch with the method's gradient (Adam; DARTS defaults
lr 3e-4, betas (0.5, 0.999), weight decay 1e-3), then the weights on the training batch (SGD with
momentum 0.9, weight decay 3e-4, gradient clipping at 5; the learning rate follows a cosine curve
per epoch from ``lr`` 0.025 to ``lr_min`` 0.001), as in the DARTS code. An epoch is one pass over
the training split in a random order (the validation batches come from their own random order).

**Seeds.** The supernet's initial weights depend on ``seed`` (as for one-shot training); α, the
data order, augmentation and every random draw of a method (Gumbel, Dirichlet) come from torch's
random stream seeded with ``seed`` inside a forked RNG, so a run never touches the caller's
stream and the same seed gives the same trajectory.

**Checkpoints.** With ``checkpoint`` set, the whole state (weights, α, both optimisers, the method's
state, the random stream, the log) is written at the end of every epoch; :meth:`DifferentiableSearch.run`
resumes from it, and the resumed trajectory is the uninterrupted one. A run whose α turns NaN
stops with an error and keeps the last checkpoint.

**Log.** Per epoch: losses and accuracies, the derived genotype, the per-edge operation weights,
the skip-connection count and the method's own numbers (τ, λ, the Λ-DARTS layer-gradient
correlation, the DrNAS regulariser).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasforge.data import Dataset
from nasforge.errors import NasforgeError
from nasforge.estimation.training import arch_seed, crop_flip
from nasforge.oneshot.differentiable.core import skip_count
from nasforge.oneshot.differentiable.methods import METHODS, Method, StepContext, make_method
from nasforge.oneshot.train import build_supernet

__all__ = ["SEARCH_DEFAULTS", "DifferentiableSearch", "SearchResult", "search"]

#: settings of a search and their defaults
SEARCH_DEFAULTS: dict[str, Any] = {
    "epochs": 10, "batch_size": 64, "lr": 0.025, "lr_min": 0.001, "momentum": 0.9, "weight_decay": 3e-4,
    "grad_clip": 5.0, "arch_lr": 3e-4, "arch_beta1": 0.5, "arch_beta2": 0.999, "arch_weight_decay": 1e-3,
    "seed": 0, "steps_per_epoch": None, "warmup_epochs": 0,
}


@dataclass
class SearchResult:
    """What a search found: the genotype (``arch``, its string ``genotype`` and per-edge indices),
    the final per-edge operation weights and the per-epoch ``history``."""

    method: str
    arch: Any
    genotype: str
    indices: tuple[int, ...]
    probs: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def skip_count(self) -> int:
        return int(self.history[-1]["skip_count"]) if self.history else 0


def _check_settings(st: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(st) - set(SEARCH_DEFAULTS))
    if unknown:
        raise NasforgeError(f"unknown search setting {unknown[0]!r}; allowed: {', '.join(SEARCH_DEFAULTS)}")
    out = {**SEARCH_DEFAULTS, **{k: v for k, v in st.items() if v is not None}}
    for key in ("epochs", "batch_size", "seed", "warmup_epochs"):
        v = out[key]
        lo = 0 if key in ("seed", "warmup_epochs") else 1
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise NasforgeError(f"{key} must be a whole number >= {lo}, got {v!r}")
    if out["warmup_epochs"] >= out["epochs"]:
        raise NasforgeError(f"warmup_epochs ({out['warmup_epochs']}) must be smaller than epochs ({out['epochs']}): "
                            "α is only updated after the warm-up")
    if out["steps_per_epoch"] is not None:
        v = out["steps_per_epoch"]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise NasforgeError(f"steps_per_epoch must be a whole number >= 1, got {v!r}")
    for key in ("lr", "lr_min", "momentum", "weight_decay", "grad_clip", "arch_lr", "arch_beta1", "arch_beta2",
                "arch_weight_decay"):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise NasforgeError(f"{key} must be a finite number >= 0, got {v!r}")
    for key in ("arch_beta1", "arch_beta2"):
        if out[key] >= 1:
            raise NasforgeError(f"{key} must lie in [0, 1), got {out[key]!r}")
    return out


class DifferentiableSearch:
    """One differentiable search of ``method`` on the supernet of ``space`` sized for ``dataset``.

    ``net``: network settings of the supernet (defaults: the layout's CPU-scale ones);
    ``method_params``: the method's settings (see :mod:`~nasforge.oneshot.differentiable.methods`);
    other keywords: :data:`SEARCH_DEFAULTS`. ``checkpoint``: a file to resume from and save to.
    ``warmup_epochs``: the first epochs train the weights only, α frozen (DrNAS's reference search
    on NB201 warms up 10 of every 50 epochs; PC-DARTS 15 of 50); the learning-rate schedule still
    spans all ``epochs``.
    """

    def __init__(self, dataset: Dataset, method: str = "darts", space: Any = "nb201", *,
                 net: Mapping[str, Any] | None = None, method_params: Mapping[str, Any] | None = None,
                 checkpoint: str | os.PathLike[str] | None = None, **settings: Any) -> None:
        if method not in METHODS:
            raise NasforgeError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
        if dataset.kind != "image" or len(dataset.x_val) == 0:
            raise NasforgeError(f"a differentiable search needs images with a validation split; dataset "
                                f"{dataset.name!r} has kind {dataset.kind!r} and {len(dataset.x_val)} validation items")
        self.settings = _check_settings(settings)
        self.dataset = dataset
        self.method_name = method
        self.method_params = dict(method_params or {})
        seed = int(self.settings["seed"])
        self.model = build_supernet(dataset, space, seed=seed, **dict(net or {}))
        self.layout = self.model.layout
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(arch_seed(seed, f"dsearch-{method}"))
            self.method: Method = make_method(method, self.model, **self.method_params)
            self._rng_state = torch.get_rng_state()
        s = self.settings
        self.w_opt = torch.optim.SGD(self.model.parameters(), lr=s["lr"], momentum=s["momentum"],
                                     weight_decay=s["weight_decay"])
        self.a_opt = torch.optim.Adam(self.method.arch_parameters(), lr=s["arch_lr"],
                                      betas=(s["arch_beta1"], s["arch_beta2"]), weight_decay=s["arch_weight_decay"])
        self.xt = torch.as_tensor(dataset.x_train, dtype=torch.float32)
        self.yt = torch.as_tensor(dataset.y_train, dtype=torch.int64)
        self.xv = torch.as_tensor(dataset.x_val, dtype=torch.float32)
        self.yv = torch.as_tensor(dataset.y_val, dtype=torch.int64)
        self.augment = dataset.augment == "crop_flip"
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        if self.checkpoint is not None and self.checkpoint.is_file():
            self._load(self.checkpoint)

    # --- schedule -----------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        n = self.settings["steps_per_epoch"]
        return int(n) if n else max(1, math.ceil(len(self.xt) / self.settings["batch_size"]))

    def lr_at(self, epoch: int) -> float:
        s = self.settings
        return s["lr_min"] + 0.5 * (s["lr"] - s["lr_min"]) * (1 + math.cos(math.pi * epoch / s["epochs"]))

    def _identity(self) -> dict[str, Any]:
        return {"method": self.method_name, "method_params": self.method_params, "settings": self.settings,
                "net": self.model.config, "dataset": self.dataset.name, "n_train": len(self.xt),
                "n_val": len(self.xv)}

    # --- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"identity": self._identity(), "epoch": self.epoch, "model": self.model.state_dict(),
                "method": self.method.state_dict(), "w_opt": self.w_opt.state_dict(),
                "a_opt": self.a_opt.state_dict(), "rng": self._rng_state, "history": self.history}

    def save(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    def _load(self, path: Path) -> None:
        try:
            state = torch.load(path, weights_only=False)
        except Exception as exc:  # a truncated or foreign file
            raise NasforgeError(f"cannot read checkpoint {path}: {exc}") from None
        mine = self._identity()
        theirs = state.get("identity", {})
        for key, value in mine.items():
            before = theirs.get(key)
            if before != value:
                name = key
                if isinstance(before, dict) and isinstance(value, dict):
                    sub = next(k for k in sorted(set(before) | set(value), key=str) if before.get(k) != value.get(k))
                    name, before, value = f"{key}.{sub}", before.get(sub), value.get(sub)
                raise NasforgeError(f"checkpoint {path} belongs to another search ({name} was {before!r}, now "
                                    f"{value!r}); use another run folder or the same settings")
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self._rng_state = state["rng"]
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])

    # --- the loop -----------------------------------------------------------------------------
    def _batch(self, x: torch.Tensor, y: torch.Tensor, order: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.settings["batch_size"]
        n = len(order)
        start = (i * b) % n
        idx = order[start:start + b]
        xb, yb = x[idx], y[idx]
        if self.augment:
            xb = crop_flip(xb, torch.default_generator, pad=max(1, xb.shape[-1] // 8))
        return xb, yb

    def current(self) -> tuple[tuple[int, ...], np.ndarray]:
        """The genotype's per-edge indices and operation weights now."""
        return self.method.discretize(), self.method.probs()

    def run(self, until_epoch: int | None = None, progress: bool = False,
            log: Callable[[str], None] | None = None) -> SearchResult:
        """Search up to ``until_epoch`` (default: all epochs), resuming where it stopped."""
        s = self.settings
        end = s["epochs"] if until_epoch is None else min(int(until_epoch), s["epochs"])
        t0 = time.perf_counter()
        bar = None
        if progress and end > self.epoch:
            from tqdm.auto import tqdm

            bar = tqdm(total=(end - self.epoch) * self.steps_per_epoch, desc=self.method_name, unit="step",
                       dynamic_ncols=True)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(self._rng_state)
                while self.epoch < end:
                    self._epoch(bar, log)
                    self._rng_state = torch.get_rng_state()
                    self.epoch += 1
                    if self.checkpoint is not None:
                        self.save(self.checkpoint)
        finally:
            if bar is not None:
                bar.close()
        idx, probs = self.current()
        arch = self.layout.arch(idx)
        return SearchResult(self.method_name, arch, self.layout.space.format(arch), idx, probs,
                            list(self.history), time.perf_counter() - t0)

    def _epoch(self, bar: Any, log: Callable[[str], None] | None) -> None:
        s, m = self.settings, self.method
        epoch = self.epoch
        m.begin_epoch(epoch, s["epochs"])
        lr = self.lr_at(epoch)
        for group in self.w_opt.param_groups:
            group["lr"] = lr
        ctx = StepContext(lr=lr, momentum=s["momentum"], weight_decay=s["weight_decay"], optimizer=self.w_opt,
                          epoch=epoch, epochs=s["epochs"])
        order_t = torch.randperm(len(self.xt))
        order_v = torch.randperm(len(self.xv))
        self.model.train()
        t0 = time.perf_counter()
        tl = vl = 0.0
        correct = seen = 0
        steps = self.steps_per_epoch
        warmup = epoch < s["warmup_epochs"] or m.arch_frozen(epoch)  # weights only: α stays where it is
        for i in range(steps):
            xb, yb = self._batch(self.xt, self.yt, order_t, i)
            xv, yv = self._batch(self.xv, self.yv, order_v, i)
            if not warmup:
                self.a_opt.zero_grad(set_to_none=True)
                vl += m.arch_backward(xb, yb, xv, yv, ctx)
                for p in m.arch_parameters():
                    if p.grad is None or not bool(torch.isfinite(p.grad).all()):
                        self._fail(epoch, i, "the architecture gradient is NaN or infinite")
                m.arch_step(self.a_opt)
                if not all(bool(torch.isfinite(p).all()) for p in m.arch_parameters()):
                    self._fail(epoch, i, "the architecture parameters became NaN or infinite")
            self.w_opt.zero_grad(set_to_none=True)
            loss, logits = m.weight_backward(xb, yb, ctx)
            if not math.isfinite(loss):
                self._fail(epoch, i, f"the training loss is {loss}")
            if s["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), s["grad_clip"])
            self.w_opt.step()
            tl += loss
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(yb)
            if bar is not None:
                bar.update(1)
        idx, probs = self.current()
        names = [self.layout.ops[e][k] for e, k in enumerate(idx)]
        arch = self.layout.arch(idx)
        rec: dict[str, Any] = {
            "epoch": epoch + 1, "lr": lr, "train_loss": tl / steps, "train_acc": correct / max(seen, 1),
            "val_loss": None if warmup else vl / steps, "warmup": warmup,
            "genotype": self.layout.space.format(arch), "indices": list(idx),
            "ops": names, "skip_count": skip_count(self.layout, idx), "probs": probs.round(5).tolist(),
            "seconds": time.perf_counter() - t0, **m.epoch_log(),
        }
        self.history.append(rec)
        if log is not None:
            extra = "".join(f" {k}={rec[k]:.4g}" for k in ("tau", "lambda", "layer_corr", "reg") if k in rec)
            log(f"epoch {epoch + 1}/{s['epochs']} train loss {rec['train_loss']:.3f} acc {rec['train_acc']:.3f} "
                f"val loss {'-' if warmup else format(rec['val_loss'], '.3f')} skips {rec['skip_count']}{extra} "
                f"{rec['genotype']}")

    def _fail(self, epoch: int, step: int, why: str) -> None:
        kept = f"; the checkpoint of epoch {self.epoch} is kept at {self.checkpoint}" if (
            self.checkpoint is not None and self.checkpoint.is_file()) else ""
        raise NasforgeError(f"{self.method_name} search failed at epoch {epoch + 1} step {step + 1}: {why}{kept}")


def search(dataset: Dataset, method: str = "darts", space: Any = "nb201", *,
           net: Mapping[str, Any] | None = None, method_params: Mapping[str, Any] | None = None,
           checkpoint: str | os.PathLike[str] | None = None, progress: bool = False,
           log: Callable[[str], None] | None = None, **settings: Any) -> SearchResult:
    """Run (or resume) a differentiable search and return what it found (see
    :class:`DifferentiableSearch`)."""
    return DifferentiableSearch(dataset, method, space, net=net, method_params=method_params,
                                checkpoint=checkpoint, **settings).run(progress=progress, log=log)


#: share of the images that update α (the DARTS split: half the training set)
SEARCH_VAL_FRACTION = 0.5


def load_search_data(name: str, *, n_train: int | None = None, image_size: int | None = None, data_seed: int = 0,
                     data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """The images of a search: ``name`` as for :func:`~nasforge.data.load_dataset`; CIFAR-10 is split
    half for the weights, half for α (``n_train`` images in all, stratified), as in DARTS; images
    average-pooled to ``image_size`` when given."""
    from nasforge.data import load_dataset
    from nasforge.oneshot.train import downsample

    kwargs: dict[str, Any] = {}
    if name == "cifar10":
        kwargs["val_fraction"] = SEARCH_VAL_FRACTION
        if n_train:
            kwargs["n_train"] = int(n_train)
    elif n_train:
        raise NasforgeError(f"n_train applies to cifar10 only, got n_train={n_train} for dataset {name!r}")
    ds = load_dataset(name, seed=int(data_seed), data_dir=data_dir, **kwargs)
    if ds.kind != "image":
        raise NasforgeError(f"a differentiable search needs images; dataset {name!r} holds vectors")
    if image_size:
        ds = downsample(ds, int(image_size))
    return ds


def lookup_nb201(genotype: str, datasets: tuple[str, ...] = ("cifar10", "cifar100"),
                 data_dir: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """The NB201 table metrics of a found cell: ``<dataset>/<column>`` for every accuracy column
    (select by ``valid_*``; ``test_*`` is for reporting)."""
    from nasforge.estimation.nb201_table import load_nb201

    out: dict[str, float] = {}
    for name in datasets:
        bench = load_nb201(name, data_dir=data_dir)
        row = bench.estimate(genotype).metrics
        for key, value in row.items():
            if "acc" in key:
                out[f"{name}/{key}"] = float(value)
    return out
