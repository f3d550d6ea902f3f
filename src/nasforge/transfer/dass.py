"""DaSS: a meta-learned predictor of a student's accuracy *when distilled from a given teacher*,
for datasets it has not seen (after Lee, An, Kim and Hwang, "Meta-prediction model for
distillation-aware NAS on unseen datasets", ICLR 2023), at CPU scale for NB201 students.

Meta-training data are :class:`DaSSTask` objects: an image dataset, the teacher trained on it,
and the accuracies that students reached when distilled from that teacher. The predictor maps
(task, student architecture) to accuracy from four parts:

* **Dataset encoding.** ``shots`` training examples of every class go through a fixed, randomly
  initialised convolutional feature extractor (grey images repeated to three channels, resized
  to 8x8; the same extractor for every task). A learned set encoder (DeepSets, as the
  intra/inter-class encoder of MetaD2A that DaSS builds on) averages a per-example MLP within
  each class, then a second MLP of the class vectors over the classes.
* **Architecture encoding.** The space's one-hot encoding through one learned layer.
* **Teacher-aware functional embedding** (the paper's key part). The teacher's trained weights
  are *remapped* into the untrained student (:func:`remap_teacher`: every student tensor takes
  the leading slice of the matching teacher tensor; student cells take the first teacher cell of
  their stage; an operation whose edge holds no convolution in the teacher takes the nearest
  convolution of that teacher cell, a 1x1 kernel the centre of a 3x3 one and a 3x3 kernel a
  zero-padded 1x1 one, as the reference code's "copy-paste first" remapping), then the remapped
  student runs in eval mode on ``probes`` fixed Gaussian-noise inputs. The per-channel mean and
  standard deviation of its last feature map (resampled to ``channels`` channels, log-compressed)
  are the embedding. The reference code feeds the same noise maps to a small conv encoder; our maps are
  2x2, so per-channel statistics and a learned layer replace it.
* **Teacher embedding.** The same statistics of the teacher itself on the same noise.

A ``tanh`` MLP maps the concatenation to the prediction, trained by Adam on the squared error of
all meta-training records (full batch, float64, seeded). Targets are standardised within each
task by default (``normalise="task"``): the predictor then ranks students within a task (its
output is a z-score), which is what a search needs; ``normalise="global"`` predicts accuracies in
the records' units. ``use_teacher=False`` is the teacher-ignoring baseline: the same model
without the functional and teacher embeddings.

Not done: the paper's teacher-guided adaptation (a Meta-SGD inner step on the teacher's own
accuracy at test time) and its bi-level meta-training; the tasks here are too few and small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasforge.data import Dataset
from nasforge.errors import NasforgeError, check_int, check_seed, shorten
from nasforge.spaces.base import SearchSpace

__all__ = ["DaSSTask", "DaSS", "remap_teacher", "functional_stats"]

NORMALISE = ("task", "global")
PROBES = ("noise", "data")


def _is_nb201_network(net: nn.Module) -> bool:
    from nasforge.spaces.nb201_net import NB201Network

    return isinstance(net, NB201Network)


class DaSSTask:
    """One task: an image ``dataset``, the ``teacher`` trained on it, and for meta-training the
    accuracies ``accuracies`` its students ``archs`` reached when distilled from it (a target
    task for :meth:`DaSS.predict` needs no records)."""

    def __init__(self, name: str, dataset: Dataset, teacher: nn.Module, archs: Sequence[Any] = (),
                 accuracies: Sequence[float] = ()) -> None:
        if not isinstance(name, str) or not name:
            raise NasforgeError(f"bad task name {shorten(name)}: expected a non-empty string")
        if not isinstance(dataset, Dataset):
            raise NasforgeError(f"task {name!r}: bad dataset {type(dataset).__name__}: expected a nasforge Dataset")
        if dataset.kind != "image":
            raise NasforgeError(f"task {name!r}: dataset {dataset.name!r} holds vectors of shape "
                                f"{dataset.input_shape}; DaSS needs image data (NB201 students)")
        if not isinstance(teacher, nn.Module):
            raise NasforgeError(f"task {name!r}: bad teacher {type(teacher).__name__}: expected a torch.nn.Module")
        archs, acc = list(archs), np.asarray(list(accuracies), dtype=float)
        if len(archs) != len(acc):
            raise NasforgeError(f"task {name!r}: {len(archs)} architectures but {len(acc)} accuracies; "
                                "give one accuracy per architecture")
        if not np.all(np.isfinite(acc)):
            raise NasforgeError(f"task {name!r}: accuracies must be finite numbers")
        self.name, self.dataset, self.teacher = name, dataset, teacher
        self.archs, self.accuracies = archs, acc

    def __repr__(self) -> str:
        return f"DaSSTask({self.name!r}, {self.dataset.name!r}, {len(self.archs)} records)"


# --- parameter remapping ---------------------------------------------------------------------
def _copy_slice(dst: torch.Tensor, src: torch.Tensor) -> None:
    """``dst`` <- the leading slice of ``src`` (every axis; conv kernels centre-cropped or
    zero-padded to ``dst``'s size)."""
    if dst.ndim != src.ndim:
        raise NasforgeError(f"cannot remap a {tuple(src.shape)} tensor into a {tuple(dst.shape)} one")
    if dst.ndim == 0:
        dst.copy_(src)
        return
    if dst.ndim == 4:
        o, i = min(dst.shape[0], src.shape[0]), min(dst.shape[1], src.shape[1])
        kd, ks = dst.shape[2], src.shape[2]
        piece = src[:o, :i]
        if ks > kd:
            off = (ks - kd) // 2
            piece = piece[:, :, off:off + kd, off:off + kd]
        elif ks < kd:
            pad = (kd - ks) // 2
            piece = F.pad(piece, (pad, kd - ks - pad, pad, kd - ks - pad))
        dst.zero_()
        dst[:o, :i].copy_(piece)
        return
    idx = tuple(slice(0, min(a, b)) for a, b in zip(dst.shape, src.shape))
    dst[idx].copy_(src[idx])


def _copy_module(dst: nn.Module, src: nn.Module) -> None:
    s_state = src.state_dict()
    with torch.no_grad():
        for key, t in dst.state_dict(keep_vars=True).items():
            if key.endswith("num_batches_tracked") or key not in s_state:
                continue
            _copy_slice(t.data if isinstance(t, nn.Parameter) else t, s_state[key])


def _conv_of(op: nn.Module) -> nn.Conv2d | None:
    from nasforge.spaces.nb201_net import ReLUConvBN

    return op.op[1] if isinstance(op, ReLUConvBN) else None


def _remap_cell(dst: nn.Module, src: nn.Module) -> None:
    t_convs = [(k, _conv_of(op)) for k, op in enumerate(src.layers) if _conv_of(op) is not None]
    for k, op in enumerate(dst.layers):
        conv = _conv_of(op)
        if conv is None or not t_convs:
            continue  # no weights, or a teacher cell without convolutions: keep the seeded init
        ksize = conv.kernel_size[0]
        j, _ = min(t_convs, key=lambda kc: (kc[0] != k, kc[1].kernel_size[0] != ksize, abs(kc[0] - k), kc[0]))
        _copy_module(op, src.layers[j])


def remap_teacher(teacher: nn.Module, student: nn.Module) -> nn.Module:
    """Copy ``teacher``'s trained weights into ``student`` (in place; returned): both NB201
    networks (:class:`~nasforge.spaces.nb201_net.NB201Network`, any cells, widths and depths).

    Stem, reduction blocks, last BatchNorm and classifier: the leading slice of the teacher's
    tensor (and running statistics). Stage ``s``, cell ``j`` of the student: the teacher's cell
    ``min(j, N_teacher - 1)`` of stage ``s``; in it, each convolution edge takes the teacher's
    convolution on the same edge, else the nearest one of the same kernel size, else any
    (kernel centre-cropped or zero-padded); a teacher cell without convolutions leaves the
    student's own initial weights.
    """
    for who, net in (("teacher", teacher), ("student", student)):
        if not _is_nb201_network(net):
            raise NasforgeError(f"parameter remapping is defined for NB201 networks (space nb201); the {who} is a "
                                f"{type(net).__name__}")
    from nasforge.spaces.nb201_net import InferCell

    def stages(net: nn.Module) -> tuple[list[list[nn.Module]], list[nn.Module]]:
        cells: list[list[nn.Module]] = [[]]
        reductions: list[nn.Module] = []
        for m in net.cells:
            if isinstance(m, InferCell):
                cells[-1].append(m)
            else:
                reductions.append(m)
                cells.append([])
        return cells, reductions

    t_cells, t_red = stages(teacher)
    s_cells, s_red = stages(student)
    if len(t_cells) != len(s_cells) or len(t_red) != len(s_red):
        raise NasforgeError("teacher and student have different numbers of stages; cannot remap")
    with torch.no_grad():
        for name in ("stem", "lastact", "classifier"):
            _copy_module(getattr(student, name), getattr(teacher, name))
        for d, s in zip(s_red, t_red):
            _copy_module(d, s)
        for d_stage, t_stage in zip(s_cells, t_cells):
            for j, cell in enumerate(d_stage):
                _remap_cell(cell, t_stage[min(j, len(t_stage) - 1)])
    return student


def functional_stats(net: nn.Module, inputs: torch.Tensor, channels: int = 32) -> np.ndarray:
    """Per-channel mean and standard deviation of ``net``'s feature map before global pooling on
    ``inputs`` (eval mode, no gradient), each resampled to ``channels`` channels and compressed
    by ``sign(v) log(1 + |v|)`` (activations of different networks differ by orders of
    magnitude): a vector of ``2 * channels``."""
    from nasforge.estimation.distill import FeatureTap

    net.eval()
    with torch.no_grad(), FeatureTap(net) as tap:
        net(inputs)
        fmap, _ = tap.features()
    fmap = fmap.double()
    if fmap.ndim == 2:
        fmap = fmap[:, :, None]
    fmap = fmap.transpose(0, 1).reshape(fmap.shape[1], -1)  # channels x (samples * positions)
    stats = torch.stack([fmap.mean(1), fmap.std(1)])  # 2 x channels
    stats = F.adaptive_avg_pool1d(stats[None], channels)[0]
    return torch.sign(stats).mul(stats.abs().log1p()).reshape(-1).numpy()


# --- the model -------------------------------------------------------------------------------
class _Model(nn.Module):
    def __init__(self, a_dim: int, d_dim: int, f_dim: int, hidden: int, use_teacher: bool) -> None:
        super().__init__()
        self.use_teacher = use_teacher
        self.arch = nn.Sequential(nn.Linear(a_dim, hidden), nn.ReLU())
        self.phi = nn.Sequential(nn.Linear(d_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.rho = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        parts = 2
        if use_teacher:
            self.func = nn.Sequential(nn.Linear(f_dim, hidden), nn.ReLU())
            self.teach = nn.Sequential(nn.Linear(f_dim, hidden), nn.ReLU())
            parts += 2
        self.head = nn.Sequential(nn.Linear(parts * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def dataset_embedding(self, shots: torch.Tensor) -> torch.Tensor:
        """``shots``: classes x examples x features -> hidden."""
        return self.rho(self.phi(shots).mean(1)).mean(0)

    def forward(self, arch: torch.Tensor, func: torch.Tensor, task_index: torch.Tensor,
                datasets: list[torch.Tensor], teachers: torch.Tensor) -> torch.Tensor:
        d = torch.stack([self.dataset_embedding(s) for s in datasets])[task_index]
        parts = [self.arch(arch), d]
        if self.use_teacher:
            parts += [self.func(func), self.teach(teachers)[task_index]]
        return self.head(torch.cat(parts, 1)).squeeze(1)


def _feature_extractor() -> nn.Module:
    """The fixed random conv net of the dataset encoding (the same weights in every process)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(20230501)
        net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return net.double().eval()


class DaSS:
    """The distillation-aware meta-predictor (see the module notes).

    ``space``: the NB201 space (students are ``space.build(arch, **student_net)`` networks on each
    task's data). ``use_teacher=False`` gives the teacher-ignoring baseline. ``shots`` examples per
    class encode a dataset; ``probes`` inputs (``probe="noise"``: fixed Gaussian noise, as the
    paper; ``"data"``: the dataset's own ``shots`` examples) give the functional embedding of
    ``channels`` channel statistics. ``epochs`` full-batch Adam steps at ``lr`` with
    ``weight_decay``; ``seed`` fixes the initialisation, the examples drawn and the noise.

    Example::

        pred = DaSS(NB201Space(), seed=0).fit([task_a, task_b])   # DaSSTask with records
        scores = pred.predict(new_task, archs)                    # higher: better when distilled
    """

    def __init__(self, space: SearchSpace, use_teacher: bool = True, student_net: dict[str, Any] | None = None,
                 shots: int = 5, probes: int = 8, probe: str = "noise", channels: int = 32, hidden: int = 64,
                 epochs: int = 400, lr: float = 1e-3, weight_decay: float = 1e-4, normalise: str = "task",
                 seed: int = 0) -> None:
        if not isinstance(space, SearchSpace):
            raise NasforgeError(f"DaSS needs a search space, got {shorten(space)}")
        if space.name != "nb201":
            raise NasforgeError(f"DaSS remaps teacher weights into NB201 students; space {space.name!r} is not "
                                "supported (allowed: nb201)")
        if not isinstance(use_teacher, bool):
            raise NasforgeError(f"use_teacher must be True or False, got {shorten(use_teacher)}")
        if probe not in PROBES:
            raise NasforgeError(f"unknown probe {shorten(probe)}; allowed: {', '.join(PROBES)}")
        if normalise not in NORMALISE:
            raise NasforgeError(f"unknown normalise {shorten(normalise)}; allowed: {', '.join(NORMALISE)}")
        if student_net is not None and not isinstance(student_net, dict):
            raise NasforgeError(f"bad student_net {shorten(student_net)}: expected a dict such as {{'C': 8, 'N': 1}}")
        self.space, self.use_teacher, self.probe, self.normalise = space, use_teacher, probe, normalise
        self.student_net = dict(student_net if student_net is not None else {"C": 8, "N": 1})
        self.shots, self.probes = check_int(shots, "shots", 1), check_int(probes, "probes", 2)
        self.channels, self.hidden = check_int(channels, "channels", 1), check_int(hidden, "hidden", 1)
        self.epochs = check_int(epochs, "epochs", 1)
        for name, v in (("lr", lr), ("weight_decay", weight_decay)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or \
                    (name == "lr" and v == 0):
                raise NasforgeError(f"bad {name} {shorten(v)}: expected a finite number {'> 0' if name == 'lr' else '>= 0'}")
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.seed = check_seed(seed)
        self.model: _Model | None = None
        self._extractor = _feature_extractor()
        self._task_cache: dict[int, tuple[DaSSTask, torch.Tensor, np.ndarray, torch.Tensor]] = {}
        self._embed_cache: dict[tuple[int, str], np.ndarray] = {}  # (task id, arch): functional embedding

    # --- encodings --------------------------------------------------------------------------
    def _task_parts(self, task: DaSSTask) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
        """(shot features: classes x shots x 32, teacher statistics, probe inputs) of ``task``."""
        hit = self._task_cache.get(id(task))
        if hit is not None and hit[0] is task:
            return hit[1], hit[2], hit[3]
        d = task.dataset
        rng = np.random.default_rng(self.seed)
        classes = [c for c in range(d.num_classes) if np.any(d.y_train == c)]
        if len(classes) < 2:
            raise NasforgeError(f"task {task.name!r}: the training split holds fewer than 2 classes")
        picks = [rng.choice(np.flatnonzero(d.y_train == c), self.shots, replace=bool(np.sum(d.y_train == c) < self.shots))
                 for c in classes]
        x = torch.from_numpy(np.ascontiguousarray(d.x_train[np.concatenate(picks)])).double()
        if self.probe == "noise":
            probe = torch.from_numpy(rng.standard_normal((self.probes, *d.input_shape))).float()
        else:
            probe = x.float()
        img = x
        if img.shape[1] != 3:
            img = img.mean(1, keepdim=True).expand(-1, 3, -1, -1)
        img = F.interpolate(img, size=(8, 8), mode="bilinear", align_corners=False) if img.shape[-1] != 8 else img
        with torch.no_grad():
            feats = self._extractor(img).reshape(len(classes), self.shots, -1)
        task.teacher.eval()
        with torch.no_grad():
            try:
                logits = task.teacher(probe[:2])
            except (RuntimeError, TypeError, ValueError) as exc:
                raise NasforgeError(f"task {task.name!r}: the teacher cannot take the dataset's inputs "
                                    f"{tuple(d.input_shape)}: {exc}".split("\n")[0]) from None
        if logits.ndim != 2 or logits.shape[1] != d.num_classes:
            raise NasforgeError(f"task {task.name!r}: the teacher gives outputs of shape {tuple(logits.shape)}; "
                                f"dataset {d.name!r} has {d.num_classes} classes")
        t_stats = functional_stats(task.teacher, probe, self.channels)
        self._task_cache[id(task)] = (task, feats, t_stats, probe)
        return feats, t_stats, probe

    def _student(self, task: DaSSTask, arch: Any) -> nn.Module:
        from nasforge.estimation.training import arch_seed
        from nasforge.spaces.base import settings_for

        d = task.dataset
        data = {"num_classes": d.num_classes, "in_channels": d.in_channels, "input_size": d.input_size}
        kwargs = {**settings_for(self.space.build, data), **self.student_net}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(arch_seed(self.seed, self.space.format(arch)))
            try:
                return self.space.build(arch, **kwargs)
            except NasforgeError:
                raise
            except (TypeError, ValueError, RuntimeError) as exc:
                raise NasforgeError(f"cannot build a student with settings {shorten(self.student_net)} for task "
                                    f"{task.name!r}: {exc}".split("\n")[0]) from None

    def embed(self, task: DaSSTask, archs: Sequence[Any]) -> np.ndarray:
        """The functional embedding of each student of ``archs`` remapped from ``task``'s teacher
        (rows of ``2 * channels``)."""
        _, _, probe = self._task_parts(task)  # also keeps ``task`` alive, so its id stays its own
        rows = []
        for a in archs:
            key = (id(task), self.space.format(a))
            v = self._embed_cache.get(key)
            if v is None:
                student = remap_teacher(task.teacher, self._student(task, a))
                v = self._embed_cache[key] = functional_stats(student, probe, self.channels)
            rows.append(v)
        return np.stack(rows) if rows else np.zeros((0, 2 * self.channels))

    def _coerce(self, archs: Sequence[Any], where: str) -> list[Any]:
        if isinstance(archs, (str, bytes)) or not isinstance(archs, Sequence):
            raise NasforgeError(f"{where}: expected a list of architectures, got {shorten(archs)}")
        out = []
        for a in archs:
            try:
                out.append(self.space.coerce(a))
            except NasforgeError as exc:
                raise NasforgeError(f"{where}: {shorten(a)} is not an architecture of space {self.space.name!r}: "
                                    f"{exc}") from None
        return out

    def _inputs(self, tasks: Sequence[DaSSTask], archs: list[list[Any]]) -> tuple[torch.Tensor, ...]:
        a = np.stack([self.space.encode(x, "onehot") for xs in archs for x in xs]).astype(np.float64)
        f = np.concatenate([self.embed(t, xs) for t, xs in zip(tasks, archs)]) if self.use_teacher else \
            np.zeros((len(a), 2 * self.channels))
        idx = np.concatenate([np.full(len(xs), i) for i, xs in enumerate(archs)])
        parts = [self._task_parts(t) for t in tasks]
        shots = [p[0] for p in parts]
        teach = np.stack([p[1] for p in parts])
        return (torch.from_numpy(a), torch.from_numpy(f), torch.from_numpy(idx).long(), shots,
                torch.from_numpy(teach))

    # --- fit / predict ------------------------------------------------------------------------
    def fit(self, tasks: Sequence[DaSSTask]) -> DaSS:
        """Meta-train on every record of ``tasks`` (replaces any earlier fit; the embeddings of
        tasks already seen by this object are reused)."""
        if isinstance(tasks, DaSSTask):
            tasks = [tasks]
        tasks = list(tasks)
        if not tasks:
            raise NasforgeError("DaSS.fit needs at least one task with distillation records; got none")
        for t in tasks:
            if not isinstance(t, DaSSTask):
                raise NasforgeError(f"DaSS.fit takes DaSSTask objects, got {type(t).__name__}")
            if len(t.archs) < 2:
                raise NasforgeError(f"task {t.name!r} has {len(t.archs)} distillation records; each meta-training "
                                    "task needs at least 2")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise NasforgeError(f"task names must be distinct, got {names}")
        archs = [self._coerce(t.archs, f"task {t.name!r}") for t in tasks]
        y = []
        for t in tasks:
            acc = t.accuracies
            if self.normalise == "task":
                sd = acc.std()
                acc = (acc - acc.mean()) / (sd if sd > 0 else 1.0)
            y.append(acc)
        y_all = np.concatenate(y)
        self._mu = float(y_all.mean())
        sd = float(y_all.std())
        self._sd = sd if sd > 0 else 1.0
        a, f, idx, shots, teach = self._inputs(tasks, archs)
        # standardise the embeddings with the meta-training statistics
        self._f_mu, self._f_sd = f.mean(0), f.std(0).clamp_min(1e-3)
        self._t_mu = teach.mean(0)
        self._t_sd = teach.std(0).clamp_min(1e-3) if len(teach) > 1 else torch.ones_like(teach[0])
        allshots = torch.cat([s.reshape(-1, s.shape[-1]) for s in shots])
        self._d_mu, self._d_sd = allshots.mean(0), allshots.std(0).clamp_min(1e-3)
        target = torch.from_numpy((y_all - self._mu) / self._sd)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = _Model(a.shape[1], allshots.shape[1], f.shape[1], self.hidden, self.use_teacher).double()
            opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            inputs = self._standardised(a, f, idx, shots, teach)
            model.train()
            for _ in range(self.epochs):
                opt.zero_grad()
                loss = F.mse_loss(model(*inputs), target)
                if not torch.isfinite(loss):
                    raise NasforgeError("DaSS meta-training diverged (loss not finite); lower lr")
                loss.backward()
                opt.step()
        model.eval()
        self.model, self.train_loss = model, float(loss.detach())
        self.tasks_seen = names
        return self

    def _standardised(self, a, f, idx, shots, teach):  # type: ignore[no-untyped-def]
        f = (f - self._f_mu) / self._f_sd
        teach = (teach - self._t_mu) / self._t_sd
        shots = [(s - self._d_mu) / self._d_sd for s in shots]
        return a, f, idx, shots, teach

    def predict(self, task: DaSSTask, archs: Sequence[Any]) -> np.ndarray:
        """Predicted distilled accuracy of each student of ``archs`` on ``task`` (with its
        teacher): a within-task z-score for ``normalise="task"``, else the records' units."""
        if self.model is None:
            raise NasforgeError("DaSS is not fitted: call fit(tasks) first")
        if not isinstance(task, DaSSTask):
            raise NasforgeError(f"DaSS.predict takes a DaSSTask, got {type(task).__name__}")
        archs = self._coerce(archs, f"task {task.name!r}")
        if not archs:
            return np.zeros(0)
        inputs = self._standardised(*self._inputs([task], [archs]))
        with torch.no_grad():
            z = self.model(*inputs).numpy()
        return self._mu + self._sd * z

    def __repr__(self) -> str:
        return (f"DaSS(use_teacher={self.use_teacher}, student_net={self.student_net}, shots={self.shots}, "
                f"probes={self.probes}, probe={self.probe!r}, epochs={self.epochs}, normalise={self.normalise!r}, "
                f"seed={self.seed})")
