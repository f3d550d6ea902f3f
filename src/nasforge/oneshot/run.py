"""The supernet run protocol: one supernet (or a family of split sub-supernets) per run folder.

Both ``nasforge supernet train|rank|search`` and the supernet benchmark use this module, so one
set of settings gives the same supernet whichever way it is trained. A run folder holds

- ``run.json``: the settings (:data:`RUN_DEFAULTS`; a re-run with other values is refused);
- ``train.ckpt``: the checkpoint of the root trainer; ``root.pt``: its state at the branch point
  (``root_fraction`` of the budget), written by split runs and by runs asked to keep it;
- ``split/decisions.json`` and ``split/<node>.pt``: the split decisions and the checkpoints of
  the sub-supernets;
- ``final.pt``: the trained supernet(s) once training is complete.

Running :meth:`SupernetRun.train` again resumes where it stopped.

**Budget.** ``steps`` counts *path passes* (a forward and backward of one path on one batch): a
sampler training ``g`` paths per update (FairNAS) makes ``steps // g`` updates. Without a split the
root trainer spends the budget; with one, the root trainer (set up for the whole budget, so its
learning rate follows the whole cosine curve) stops at ``root_fraction`` of it, and the rest
fine-tunes the sub-supernets (:func:`~nasforge.oneshot.fewshot.grow_splits`), shared equally
between levels and, within a level, between its parts; they continue the cosine curve. A split
run's root is the no-split run's state at the branch point, so ``root_from`` may point a split run
at the folder of a no-split run with the same settings (trained with ``keep_root``) to reuse it.

**Seeds.** One ``seed`` fixes the supernet; the data split has its own ``data_seed`` (default 0,
so supernets of several seeds are compared on the same held-back images):

- data: ``load_dataset(..., seed=data_seed)`` (CIFAR-10: 1/6 held back);
- initial weights: :func:`~nasforge.oneshot.train.build_supernet` with ``seed``;
- the root's paths and data order: the trainer's ``seed``;
- the split batch: 128 training images, a ``torch`` permutation seeded ``1000 + seed``;
- split decisions: ``seed`` (per node, as :func:`~nasforge.oneshot.fewshot.grow_splits` does);
- each sub-supernet's trainer: ``arch_seed(seed, "<label>/<node>")``, ``label`` the split's
  name (:func:`split_label`: ``fewshot``, ``lid-1``, ``lid-2``, ``gm-1``, ``gm-2``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasforge.errors import NasforgeError, unknown
from nasforge.estimation.training import arch_seed
from nasforge.estimation.flatness import GENAS_SUPERNET_STDS, check_stds
from nasforge.oneshot.evaluate import BN_BATCH_SIZE, BN_BATCHES, SCORES, PathEvaluator, SupernetEstimator, sample_archs
from nasforge.oneshot.fewshot import SplitSupernet, grow_splits, split_steps
from nasforge.oneshot.samplers import _ALIASES, SAMPLERS, make_sampler
from nasforge.oneshot.train import SupernetTrainer, build_supernet, downsample
from nasforge.spaces.supernet import DEFAULT_SPACE, Supernet, SupernetLayout, supernet_from_config

__all__ = ["RUN_DEFAULTS", "SPLITS", "SupernetRun", "TrainResult", "RankResult", "load_run", "load_run_data",
           "split_label", "supernet_spaces", "rank_correlations"]

#: settings of a run and their defaults (``net``: the space's ``cpu_net`` when empty)
RUN_DEFAULTS: dict[str, Any] = {
    "space": DEFAULT_SPACE, "dataset": "digits", "n_train": None, "image_size": None, "data_seed": 0, "net": {},
    "sampler": "uniform", "steps": 2000, "batch_size": 64, "lr": 0.05, "weight_decay": 5e-4, "seed": 0,
    "split": "none", "levels": 1, "split_edge": None, "root_fraction": 0.5,
}
#: split choices: none, or a criterion of :mod:`nasforge.oneshot.fewshot`
SPLITS = ("none", "fewshot", "lid", "gradient")
#: held-back share of CIFAR-10 in a run
CIFAR_HELD_BACK = 1 / 6
#: images of the batch the split criteria look at
SPLIT_BATCH = 128
_MAX_SEED = 2**32 - 1


def split_label(criterion: str, levels: int) -> str:
    """The name of a split (``fewshot``, ``lid-<levels>``, ``gm-<levels>``); it seeds the
    sub-supernets' trainers, so different splits of one root train differently."""
    if criterion == "fewshot":
        return "fewshot"
    return f"{'gm' if criterion == 'gradient' else criterion}-{levels}"


def supernet_spaces() -> list[str]:
    """Registry names of the spaces that offer a supernet."""
    import importlib

    from nasforge.spaces import SPACES
    from nasforge.spaces.base import SearchSpace

    out = []
    for name, where in SPACES.items():
        module, _, cls = where.partition(":")
        try:
            klass = getattr(importlib.import_module(module), cls)
        except ImportError:  # pragma: no cover - a space whose optional dependency is missing
            continue
        if klass.supernet_layout is not SearchSpace.supernet_layout:
            out.append(name)
    return out


# --- settings ---------------------------------------------------------------------------------
def _option(key: str) -> str:
    return "--" + key.replace("_", "-")


def _upgrade(stored: dict[str, Any]) -> dict[str, Any]:
    """A ``run.json`` written before runs had a space: its ``C``/``N`` are network settings, and
    its data split followed the run's seed."""
    st = dict(stored)
    if "net" not in st:
        st["net"] = {k: st.pop(k) for k in ("C", "N") if k in st}
    st.setdefault("space", DEFAULT_SPACE)
    st.setdefault("data_seed", st.get("seed", 0))
    return st


def resolve_settings(stored: Mapping[str, Any] | None, given: Mapping[str, Any], run: Any = "") -> dict[str, Any]:
    """Settings of a run: ``given`` (``None`` values: not given) over the ``stored`` ones over
    :data:`RUN_DEFAULTS`; a given value that differs from a stored one is an error."""
    unknown_keys = sorted(set(given) - set(RUN_DEFAULTS))
    if unknown_keys:
        raise unknown("run setting", unknown_keys[0], sorted(RUN_DEFAULTS))
    old = _upgrade(dict(stored)) if stored else {}

    def clash(key: str, before: Any, now: Any) -> NasforgeError:
        return NasforgeError(f"run {run} was created with {_option(key)} {before}; it cannot resume with {now} "
                             "(omit the option, or choose another --run)")

    out: dict[str, Any] = {}
    for key, default in RUN_DEFAULTS.items():
        if key == "net":
            continue
        value = given.get(key)
        if value is not None and key in old and old[key] != value:
            raise clash(key, old[key], value)
        out[key] = value if value is not None else old.get(key, default)
    net_given = given.get("net") or {}
    if not isinstance(net_given, Mapping):
        raise NasforgeError(f"net settings must be a mapping of names to values, got {net_given!r}")
    net_old = old.get("net", {})
    for key, value in net_given.items():
        if value is not None and key in net_old and net_old[key] != value:
            raise clash(key, net_old[key], value)
    out["net"] = {**net_old, **{k: v for k, v in net_given.items() if v is not None}}
    return out


def _whole(st: Mapping[str, Any], key: str, low: int, high: int | None = None, none_ok: bool = False) -> None:
    v = st[key]
    if v is None and none_ok:
        return
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low or (high is not None and v > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise NasforgeError(f"bad {_option(key)} {v!r}: expected a whole number {span}")


def _layout_of(space: Any) -> SupernetLayout:
    from nasforge.spaces import SPACES, get_space

    if not isinstance(space, str) or space not in SPACES:
        raise unknown("supernet space", space, supernet_spaces())
    try:
        return get_space(space).supernet_layout()
    except NasforgeError:
        raise NasforgeError(f"space {space!r} has no weight-sharing supernet; spaces with one: "
                            f"{', '.join(supernet_spaces())}") from None


def validate_settings(st: dict[str, Any]) -> SupernetLayout:
    """Check every setting of a run (one-line :class:`NasforgeError` naming the bad value) and
    fill the network settings from the space's ``cpu_net``; returns the space's layout."""
    layout = _layout_of(st["space"])
    if not isinstance(st["dataset"], str) or not st["dataset"]:
        raise NasforgeError(f"bad --dataset {st['dataset']!r}: expected digits, mnist1d, cifar10, a .npz file or an "
                            "image folder")
    _whole(st, "n_train", 1, none_ok=True)
    if st["n_train"] is not None and st["dataset"] != "cifar10":
        raise NasforgeError(f"--n-train applies to cifar10 only, not dataset {st['dataset']!r}")
    v = st["image_size"]
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 4):
        raise NasforgeError(f"bad --image-size {v!r}: expected a whole number >= 4 that divides the images' side "
                            "(e.g. 16 for 32x32 images)")
    for key in ("seed", "data_seed"):
        _whole(st, key, 0, _MAX_SEED)
    for key in ("steps", "batch_size"):
        _whole(st, key, 1)
    for key, low, open_low in (("lr", 0.0, True), ("weight_decay", 0.0, False)):
        x = st[key]
        ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and (
            x > low if open_low else x >= low)
        if not ok:
            raise NasforgeError(f"bad {_option(key)} {x!r}: expected a finite number {'>' if open_low else '>='} {low:g}")
    if _ALIASES.get(st["sampler"], st["sampler"]) not in SAMPLERS:
        raise unknown("sampler", st["sampler"], sorted(SAMPLERS))
    if st["split"] not in SPLITS:
        raise unknown("split", st["split"], SPLITS)
    if st["levels"] not in (1, 2) or isinstance(st["levels"], bool):
        raise NasforgeError(f"bad --levels {st['levels']!r}: expected 1 or 2")
    if st["split"] == "fewshot" and st["levels"] != 1:
        raise NasforgeError("--split fewshot uses one level (one sub-supernet per operation)")
    rf = st["root_fraction"]
    if st["split"] != "none" and not (isinstance(rf, (int, float)) and not isinstance(rf, bool) and 0.0 < rf < 1.0):
        raise NasforgeError(f"bad --root-fraction {rf!r}: expected a number in (0, 1)")
    _whole(st, "split_edge", 0, layout.n_edges - 1, none_ok=True)
    fixed = {"num_classes", "in_channels", "input_size"}
    for key in st["net"]:
        if key in fixed:
            raise NasforgeError(f"network setting {key!r} is fixed by the data (classes, channels, image size)")
        if key not in layout.net_keys:
            raise unknown(f"network setting of the {layout.name} supernet", key, layout.net_keys)
    st["net"] = {**layout.cpu_net, **st["net"]}
    return layout


# --- data ---------------------------------------------------------------------------------------
_DATA: dict[tuple[Any, ...], Any] = {}


def load_run_data(settings: Mapping[str, Any], data_dir: str | os.PathLike[str] | None = None) -> Any:
    """The dataset of a run's settings (images, downsampled to ``image_size``); cached per process."""
    from nasforge.data import load_dataset

    key = (settings["dataset"], settings.get("n_train"), settings.get("image_size"), settings["data_seed"],
           str(data_dir))
    if key in _DATA:
        return _DATA[key]
    name = settings["dataset"]
    kwargs: dict[str, Any] = {}
    if name == "cifar10":
        kwargs["val_fraction"] = CIFAR_HELD_BACK
        if settings.get("n_train"):
            kwargs["n_train"] = int(settings["n_train"])
    ds = load_dataset(name, seed=int(settings["data_seed"]), data_dir=data_dir, **kwargs)
    if ds.kind != "image":
        raise NasforgeError(f"a supernet needs images; dataset {name!r} holds vectors")
    if settings.get("image_size"):
        size = int(settings["image_size"])
        side = ds.input_size
        if size > side or side % size:
            raise NasforgeError(f"bad --image-size {size}: it must divide the images' side {side} (and be >= 4)")
        ds = downsample(ds, size)
    _DATA[key] = ds
    return ds


# --- the folder ---------------------------------------------------------------------------------
def _prepare_folder(path: Path) -> Path:
    """Create the run folder and check that files can be written in it."""
    if path.exists() and not path.is_dir():
        raise NasforgeError(f"run folder {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise NasforgeError(f"run folder {path} is not writable ({exc.strerror or type(exc).__name__})") from None
    return path


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _read_settings(folder: Path) -> dict[str, Any] | None:
    f = folder / "run.json"
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise NasforgeError(f"cannot read {f}: {exc}") from None


#: settings that make two runs' roots the same (everything but the split)
_ROOT_KEYS = ("space", "dataset", "n_train", "image_size", "data_seed", "net", "sampler", "steps", "batch_size", "lr",
              "weight_decay", "seed", "root_fraction")


@dataclass
class TrainResult:
    """What :meth:`SupernetRun.train` did: the trained ``supernets``, the root ``trainer``
    (``None`` when the run was already complete), path passes, seconds and split details."""

    supernets: Any
    trainer: SupernetTrainer | None = None
    path_passes: int = 0
    train_seconds: float = 0.0
    loss: float = math.nan
    split_seconds: float = 0.0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    steps_per_part: list[int] = field(default_factory=list)
    complete_before: bool = False


@dataclass
class RankResult:
    """Scores of :meth:`SupernetRun.rank`: architectures, accuracy (%), loss, seconds each, and
    with flatness GeNAS's flatness of the inherited weights (``None`` when not measured)."""

    archs: list[Any]
    acc: np.ndarray
    loss: np.ndarray
    seconds: np.ndarray
    scored_before: int
    out: Path
    n_eval: int
    space: str = ""
    flatness: np.ndarray | None = None
    stds: tuple[float, ...] = GENAS_SUPERNET_STDS

    def scores(self, score: str = "acc", flat_weight: float = 1.0) -> np.ndarray:
        """The per-architecture values of ``score`` (see :data:`~nasforge.oneshot.evaluate.SCORES`):
        accuracy (%), flatness, or GeNAS's ``acc / 100 + flat_weight * flatness / stds[0]``."""
        if score not in SCORES:
            raise unknown("supernet score", score, SCORES)
        if score == "acc":
            return self.acc
        if self.flatness is None:
            raise NasforgeError(f"score {score!r} needs flatness; rank with flatness=True (--score {score})")
        if score == "flatness":
            return self.flatness
        return self.acc / 100.0 + float(flat_weight) * self.flatness / self.stds[0]

    def best(self, score: str = "acc", flat_weight: float = 1.0) -> int:
        """Index of the top-1 pick by ``score`` (accuracy: ties to the lower loss)."""
        if score == "acc":
            return int(np.argmax(self.acc - 1e-6 * self.loss))
        return int(np.argmax(self.scores(score, flat_weight)))


class SupernetRun:
    """One run folder (see the module docstring).

    ``settings``: keys of :data:`RUN_DEFAULTS` (``None`` means not given); a folder that already
    holds a run keeps its settings, and a given value that differs is an error. ``data_dir``: the
    reference data folder (CIFAR-10). Everything is validated here, before any work.
    """

    def __init__(self, folder: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None,
                 **settings: Any) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise NasforgeError(f"run folder {self.folder} is a file, not a folder")
        self.data_dir = data_dir
        self.settings = resolve_settings(_read_settings(self.folder), settings, self.folder)
        self.layout = validate_settings(self.settings)

    @classmethod
    def open(cls, folder: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None) -> SupernetRun:
        """The run stored in ``folder`` (an error if there is none)."""
        if _read_settings(Path(folder)) is None:
            raise NasforgeError(f"no supernet run in {folder} (train one with `nasforge supernet train --run {folder}`)")
        return cls(folder, data_dir)

    @property
    def space(self) -> Any:
        return self.layout.space

    @property
    def finished(self) -> bool:
        return (self.folder / "final.pt").is_file()

    def dataset(self) -> Any:
        return load_run_data(self.settings, self.data_dir)

    def build(self) -> Supernet:
        """The untrained supernet of the run (weights from ``seed``)."""
        st = self.settings
        return build_supernet(self.dataset(), st["space"], seed=int(st["seed"]), **st["net"])

    # --- training -------------------------------------------------------------------------------
    def train(self, progress: bool = False, log: Callable[[str], None] | None = print, checkpoint_every: int = 200,
              root_from: str | os.PathLike[str] | None = None, keep_root: bool = False) -> TrainResult:
        """Train (or resume) the run; returns what was done. ``log`` receives progress lines.

        ``keep_root`` writes ``root.pt`` at the branch point of a run without split too (so split
        runs can start from it: ``root_from``, a folder of a run with the same settings but the
        split)."""
        say = log if log is not None else (lambda _line: None)
        st = self.settings
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise NasforgeError(f"bad --checkpoint-every {checkpoint_every!r}: expected a whole number >= 1")
        folder = _prepare_folder(self.folder)
        _write_json(folder / "run.json", st)
        if self.finished:
            say(f"{folder}: training is complete (final.pt); rank or search with it")
            return TrainResult(self.load(), complete_before=True)
        source = self._root_source(root_from)
        ds = self.dataset()
        model = self.build()
        sampler = make_sampler(st["sampler"], allowed=model)
        group = sampler.group_size
        total, seed = int(st["steps"]), int(st["seed"])
        split = st["split"] != "none"
        rf = st["root_fraction"]
        if keep_root and not split and not (isinstance(rf, (int, float)) and not isinstance(rf, bool) and 0.0 < rf < 1.0):
            raise NasforgeError(f"bad --root-fraction {rf!r}: expected a number in (0, 1)")
        # the branch point: where a split run's root stops (and where keep_root saves root.pt)
        branch = int(round(total * float(rf)))
        root_passes = branch if split else total
        if root_passes < group:
            raise NasforgeError(f"a budget of {total} path passes is too small for sampler {sampler.name!r} "
                                f"({group} paths per update)")
        common = dict(batch_size=int(st["batch_size"]), lr=float(st["lr"]), weight_decay=float(st["weight_decay"]),
                      checkpoint_every=checkpoint_every)
        trainer = SupernetTrainer(model, sampler, ds.x_train, ds.y_train, steps=total // group, seed=seed,
                                  checkpoint=folder / "train.ckpt", **common)
        n_params = sum(p.numel() for p in model.parameters())
        net = ", ".join(f"{k}={v}" for k, v in st["net"].items())
        say(f"{ds!r}; {st['space']} supernet {net} ({n_params:,} weights, {model.size():,} architectures)")
        say(f"sampler {sampler!r}: {trainer.steps} steps x {group} path(s) = {trainer.steps * group} path passes"
            + (f", the root stopping at {root_passes // group * group}; then {st['split']} split "
               f"({st['levels']} level(s)) with the rest" if split else ""))
        root_steps = branch // group
        root_file = folder / "root.pt"
        if split or keep_root:
            if root_file.is_file() or source is not None:
                if split:  # a run without split resumes from its own checkpoint below
                    where = root_file if root_file.is_file() else source
                    trainer.load(where)
                    say(f"root supernet from {where} (step {trainer.step})")
            else:
                if (folder / "train.ckpt").is_file():
                    say(f"resuming from {folder / 'train.ckpt'}")
                trainer.train(until=root_steps, progress=progress, desc="root")
                if trainer.step != root_steps:
                    raise NasforgeError(f"{folder / 'train.ckpt'} is past the branch point (step {trainer.step} > "
                                        f"{root_steps}) and root.pt is missing; remove train.ckpt to train again")
                trainer.save(root_file)
        elif (folder / "train.ckpt").is_file():
            say(f"resuming from {folder / 'train.ckpt'}")
        result = TrainResult(model, trainer)
        if not split:
            r = trainer.train(progress=progress, desc="supernet")
            result.path_passes = trainer.step * group
            result.train_seconds, result.loss = r["seconds"], r["loss"]
            say(f"supernet: {trainer.step} steps, loss {r['loss']:.3f}, {r['seconds']:.1f} s of training")
            final: dict[str, Any] = {"kind": "supernet", "config": model.config, "state": model.state_dict()}
        else:
            result.train_seconds, result.loss = trainer.seconds, trainer.last_loss
            fam = self._grow(trainer, group, say, result, progress, common)
            result.supernets = fam
            final = {"kind": "split", "supernets": fam.state_dict(), "decisions": json.dumps(result.decisions)}
        final["settings"] = json.dumps(st)
        tmp = folder / "final.pt.tmp"
        torch.save(final, tmp)
        os.replace(tmp, folder / "final.pt")
        say(f"supernet saved to {folder / 'final.pt'}")
        return result

    def _root_source(self, root_from: str | os.PathLike[str] | None) -> Path | None:
        if root_from is None:
            return None
        if self.settings["split"] == "none":
            raise NasforgeError("root_from applies to split runs (a run without split trains its own root)")
        other = Path(root_from)
        theirs = _read_settings(other)
        if theirs is None or not (other / "root.pt").is_file():
            raise NasforgeError(f"run {other} has no root.pt to start from (train it with keep_root, or a split)")
        theirs = _upgrade(theirs)
        diff = [k for k in _ROOT_KEYS if theirs.get(k) != self.settings.get(k)]
        if diff:
            k = diff[0]
            raise NasforgeError(f"run {other} has {_option(k)} {theirs.get(k)!r}, this run {self.settings.get(k)!r}: "
                                "its root is not this run's root")
        return other / "root.pt"

    def _grow(self, trainer: SupernetTrainer, group: int, say: Callable[[str], None], result: TrainResult,
              progress: bool, common: dict[str, Any]) -> SplitSupernet:
        st, folder = self.settings, self.folder
        model, ds = trainer.model, self.dataset()
        seed, levels, criterion = int(st["seed"]), int(st["levels"]), st["split"]
        edge = st["split_edge"]
        if criterion == "fewshot" and edge is None:
            edge = int(np.flatnonzero(model.allowed.sum(axis=1) >= 2)[0])
        parts = [int(model.allowed[edge].sum())] if criterion == "fewshot" else [2, 4][:levels]
        per_part = split_steps(int(st["steps"]) - trainer.step * group, parts)
        g = torch.Generator().manual_seed(1000 + seed)
        pick = torch.randperm(len(ds.y_train), generator=g)[: min(SPLIT_BATCH, len(ds.y_train))].numpy()
        xs, ys = torch.from_numpy(ds.x_train[pick]), torch.from_numpy(ds.y_train[pick])
        label = split_label(criterion, levels)
        passes = [trainer.step * group]

        def make(child: Supernet, n: int, sched: tuple[float, float], node: str) -> SupernetTrainer:
            s = make_sampler(st["sampler"], allowed=child)
            steps = max(1, n // s.group_size)
            passes[0] += steps * s.group_size
            return SupernetTrainer(child, s, ds.x_train, ds.y_train, steps=steps, seed=arch_seed(seed, f"{label}/{node}"),
                                   schedule=sched, checkpoint=folder / "split" / f"{node}.pt", **common)

        t0 = time.perf_counter()
        fam, decisions = grow_splits(model, make, xs, ys, criterion=criterion, levels=levels, steps=per_part,
                                     schedule_start=trainer.progress(), root_optimizer=trainer.optimizer.state_dict(),
                                     edge=edge, seed=seed, workdir=folder / "split", log=say, progress=progress)
        result.split_seconds = time.perf_counter() - t0
        result.decisions, result.parts, result.steps_per_part = decisions, fam.describe(), per_part
        result.path_passes = passes[0]
        for line in result.parts:
            say(f"  {line}")
        return fam

    # --- using a trained run --------------------------------------------------------------------
    def load(self) -> Any:
        """The trained supernet (or split supernet) of the run."""
        return load_run(self.folder)[0]

    def evaluator(self, bn_batches: int = BN_BATCHES, bn_batch_size: int = BN_BATCH_SIZE,
                  n_eval: int | None = None, split: str = "valid") -> PathEvaluator:
        """Inherited-weight scoring with the run's data (held-back images)."""
        return PathEvaluator(self.load(), self.dataset(), bn_batches=bn_batches, bn_batch_size=bn_batch_size,
                             n_eval=n_eval, split=split)

    def estimator(self, bn_batches: int = BN_BATCHES, bn_batch_size: int = BN_BATCH_SIZE,
                  n_eval: int | None = None, score: str = "acc", stds: Sequence[float] = GENAS_SUPERNET_STDS,
                  flat_weight: float = 1.0) -> SupernetEstimator:
        """The trained run as an estimator for any strategy on the run's space (``score``: what
        its :attr:`~nasforge.oneshot.evaluate.SupernetEstimator.objective` is; see there)."""
        return SupernetEstimator(self.load(), self.dataset(), bn_batches=bn_batches, bn_batch_size=bn_batch_size,
                                 n_eval=n_eval, score=score, stds=stds, flat_weight=flat_weight)

    def rank(self, n: int = 200, sample_seed: int = 0, bn_batches: int = BN_BATCHES,
             bn_batch_size: int = BN_BATCH_SIZE, n_eval: int | None = None, out: str | os.PathLike[str] | None = None,
             progress: bool = False, flatness: bool = False,
             stds: Sequence[float] = GENAS_SUPERNET_STDS) -> RankResult:
        """Score ``n`` random architectures (``sample_archs(n, sample_seed)`` over the run's space)
        with inherited weights. Rows are appended to the CSV ``out`` (default
        ``<run>/rank-n<n>-seed<sample_seed>.csv``, ``...-flat.csv`` with flatness) as they are
        computed; rows already there with the same evaluation settings are reused. ``flatness``:
        also GeNAS's flatness at noise levels ``stds`` (:class:`~nasforge.oneshot.evaluate.PathEvaluator`)."""
        for name, v in (("--n", n), ("--bn-batches", bn_batches), ("--bn-batch-size", bn_batch_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise NasforgeError(f"bad {name} {v!r}: expected a whole number >= 1")
        stds = tuple(check_stds(stds))
        supernets = self.load()
        ev = PathEvaluator(supernets, self.dataset(), bn_batches=bn_batches, bn_batch_size=bn_batch_size,
                           n_eval=n_eval, flatness=flatness, stds=stds)
        archs = sample_archs(n, sample_seed, within=supernets)
        fmt = self.space.format
        suffix = "-flat" if flatness else ""
        path = Path(out) if out is not None else self.folder / f"rank-n{n}-seed{sample_seed}{suffix}.csv"
        header = ["arch", "acc", "loss", "seconds", "bn_batches", "bn_batch_size", "n_eval"]
        key = {"bn_batches": str(bn_batches), "bn_batch_size": str(bn_batch_size), "n_eval": str(len(ev.y))}
        if flatness:
            header += ["flatness", "flat_losses", "stds"]
            key["stds"] = " ".join(f"{s:g}" for s in stds)
        done: dict[str, dict[str, str]] = {}
        if path.is_file():
            with path.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    if all(row.get(k) == v for k, v in key.items()):
                        done[row["arch"]] = row
        todo = [a for a in archs if fmt(a) not in done]
        before = len(archs) - len(todo)
        if todo:
            new_file = not path.is_file()
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(archs), initial=before, desc="rank", unit="arch", dynamic_ncols=True)
            try:
                with path.open("a", newline="") as fh:
                    w = csv.DictWriter(fh, fieldnames=header)
                    if new_file:
                        w.writeheader()
                    for a in todo:
                        r = ev.score(a)
                        row = {"arch": fmt(a), "acc": f"{r['acc']:.4f}", "loss": f"{r['loss']:.6f}",
                               "seconds": f"{r['seconds']:.4f}", **key}
                        if flatness:
                            row["flatness"] = f"{r['flatness']:.8g}"
                            row["flat_losses"] = " ".join(f"{v:.6f}" for v in r["flat_losses"])
                        w.writerow(row)
                        fh.flush()
                        done[fmt(a)] = row
                        if bar is not None:
                            bar.update(1)
            except OSError as exc:
                raise NasforgeError(f"cannot write scores to {path}: {exc.strerror or exc}") from None
            finally:
                if bar is not None:
                    bar.close()
        rows = [done[fmt(a)] for a in archs]
        flat = np.array([float(r["flatness"]) for r in rows]) if flatness else None
        return RankResult(archs, np.array([float(r["acc"]) for r in rows]), np.array([float(r["loss"]) for r in rows]),
                          np.array([float(r["seconds"]) for r in rows]), before, path, len(ev.y), self.layout.name,
                          flat, stds)


def rank_correlations(result: RankResult, bench: Any, metrics: Sequence[str],
                      top_k: Sequence[float] = (0.1,), score: str = "acc",
                      flat_weight: float = 1.0) -> list[dict[str, Any]]:
    """Per benchmark metric: Kendall tau and Spearman rho of the supernet's ``score`` (accuracy by
    default; ``"flatness"`` or ``"acc+flatness"`` when the result has flatness, see
    :meth:`RankResult.scores`) against the table, top-k precisions (``k`` a count, or a fraction
    below 1), the table's value of the top-1 pick by that score and the best value in the sample."""
    from nasforge.analysis.correlation import kendall_tau, spearman, top_k_precision

    if bench.space.name != result.space:
        raise NasforgeError(f"benchmark {bench.name} is on space {bench.space.name!r}; the supernet is on {result.space!r}")
    s = result.scores(score, flat_weight)
    best = result.best(score, flat_weight)
    rows = []
    for m in metrics:
        t = np.array([bench.query(a, m) for a in result.archs])
        rows.append({"metric": m, "score": score, "tau": kendall_tau(s, t), "rho": spearman(s, t),
                     "top_k": [top_k_precision(s, t, k) for k in top_k], "pick": float(t[best]),
                     "best": float(t.max())})
    return rows


def load_run(run: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """The trained supernet (or split supernet) of a run folder, and the run's settings."""
    f = Path(run) / "final.pt"
    if not f.is_file():
        hint = " (training has not finished: run `nasforge supernet train` with it)" if Path(run).is_dir() else ""
        raise NasforgeError(f"no trained supernet in {run}{hint}")
    try:
        blob = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt file
        raise NasforgeError(f"cannot read {f}: {exc}".splitlines()[0]) from None
    settings = _upgrade(json.loads(blob["settings"]))
    if blob["kind"] == "split":
        return SplitSupernet.from_state_dict(blob["supernets"]), settings
    net = supernet_from_config(blob["config"])
    net.load_state_dict(blob["state"])
    return net, settings
