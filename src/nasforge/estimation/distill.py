"""Knowledge distillation and DisWOT (Dong, Li and Wei, "DisWOT: Student Architecture Search for
Distillation WithOut Training", CVPR 2023).

* :func:`kd_loss` — Hinton et al.'s distillation term, ``T^2 KL(softmax(t/T) || softmax(s/T))``.
* :func:`diswot_distances` — DisWOT's two teacher–student dissimilarities on one batch:

  ``semantic``: the classifier's gradient ``dL/dW`` (classes x channels: the Grad-CAM channel
  weights of every class) of each network gives a class-by-class similarity matrix ``G = g g^T``
  whose rows are L2-normalised; the distance is ``||G_t - G_s||^2 / K^2`` for ``K`` classes. The
  gradient of a final ``nn.Linear`` under the mean cross-entropy is ``(softmax(z) - onehot(y))^T h
  / B`` for its input ``h``, computed in closed form here (so the distance is differentiable and
  needs no backward pass; equal to autograd's, tested). The reference code compares per-class
  channel-by-channel matrices, which ties the teacher to the student's width; class-by-class
  matrices compare networks of any width, which a search over students needs.

  ``relation``: the features before global pooling (flattened per sample) give a sample-by-sample
  Gram matrix whose rows are L2-normalised; the distance is ``||R_t - R_s||^2 / B^2`` (as in the
  reference code, the similarity-preserving distillation matrix).

  The score is ``-(semantic + relation)``: higher means a student more like its teacher.
* :func:`diswot_score`, :class:`DisWOTEstimator` — the score of an untrained student (PyTorch's
  default initialisation seeded from the architecture, BatchNorm in train mode as for the other
  zero-cost proxies) against a fixed teacher, as a training-free estimator any strategy searches.

Features are read with hooks, so any ``nn.Module`` whose last ``nn.Linear`` is the classifier
works: the classifier's input is ``h``; the input of the last adaptive average pooling module is
the map before pooling (``h`` itself where there is none).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.data import Dataset, load_dataset
from nasforge.errors import NasforgeError, check_float
from nasforge.estimation.base import Estimator, Measurement
from nasforge.spaces.base import SearchSpace

__all__ = ["kd_loss", "FeatureTap", "diswot_distances", "diswot_score", "classifier_gradient", "DisWOTEstimator"]

_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool1d)


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 4.0) -> Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, averaged over the batch."""
    t = float(temperature)
    log_p = F.log_softmax(student_logits / t, dim=1)
    q = F.softmax(teacher_logits.detach() / t, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean") * (t * t)


class FeatureTap:
    """Forward hooks that keep, for the last forward of ``net``, the classifier's input ``h``
    (``pooled``) and the map before global pooling (``map``). Use as a context manager."""

    def __init__(self, net: nn.Module) -> None:
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise NasforgeError(f"{type(net).__name__} has no nn.Linear classifier; DisWOT reads the last one")
        self.classifier = linears[-1]
        pools = [m for m in net.modules() if isinstance(m, _POOLS)]
        self.pooled: Tensor | None = None
        self.map: Tensor | None = None
        self._handles = [self.classifier.register_forward_hook(self._on_classifier)]
        if pools:
            self._handles.append(pools[-1].register_forward_hook(self._on_pool))

    def _on_classifier(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        self.pooled = inputs[0]

    def _on_pool(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        self.map = inputs[0]

    def features(self) -> tuple[Tensor, Tensor]:
        """(map before pooling, classifier input) of the last forward."""
        if self.pooled is None:
            raise NasforgeError("no forward pass has gone through the classifier yet")
        return (self.map if self.map is not None else self.pooled), self.pooled

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def classifier_gradient(logits: Tensor, pooled: Tensor, targets: Tensor) -> Tensor:
    """``dL/dW`` of a final linear layer for the mean cross-entropy ``L``: ``(p - y)^T h / B``."""
    p = F.softmax(logits, dim=1)
    p = p - F.one_hot(targets, p.shape[1]).to(p.dtype)
    return p.t() @ pooled.reshape(len(pooled), -1) / len(pooled)


def _normalised_gram(f: Tensor) -> Tensor:
    f = f.reshape(f.shape[0], -1)
    return F.normalize(f @ f.t(), dim=1)


def diswot_distances(teacher: tuple[Tensor, Tensor, Tensor], student: tuple[Tensor, Tensor, Tensor],
                     targets: Tensor) -> tuple[Tensor, Tensor]:
    """(semantic, relation) distances from each network's ``(logits, map before pooling, pooled)``."""
    t_logits, t_map, t_pooled = teacher
    s_logits, s_map, s_pooled = student
    if t_logits.shape[1] != s_logits.shape[1]:
        raise NasforgeError(f"teacher has {t_logits.shape[1]} classes, student {s_logits.shape[1]}; they must agree")
    g_t = _normalised_gram(classifier_gradient(t_logits, t_pooled, targets))
    g_s = _normalised_gram(classifier_gradient(s_logits, s_pooled, targets))
    k = g_t.shape[0]
    semantic = (g_t - g_s).square().sum() / (k * k)
    r_t, r_s = _normalised_gram(t_map), _normalised_gram(s_map)
    b = r_t.shape[0]
    relation = (r_t - r_s).square().sum() / (b * b)
    return semantic, relation


def run_tapped(net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(logits, map before pooling, pooled features)`` of one forward of ``net``."""
    with FeatureTap(net) as tap:
        logits = net(x)
        fmap, pooled = tap.features()
    return logits, fmap, pooled


def diswot_score(teacher: nn.Module | tuple[Tensor, Tensor, Tensor], student: nn.Module, inputs: Tensor,
                 targets: Tensor) -> dict[str, float]:
    """DisWOT's score of ``student`` against ``teacher`` on one batch: ``diswot`` (higher: more
    alike), ``diswot_semantic`` and ``diswot_relation`` (each distance, negated).

    The teacher runs as it is (call ``teacher.eval()`` for a trained one); ``teacher`` may also be
    its ``(logits, map, pooled)`` on this batch, from :func:`run_tapped`. The student runs in
    train mode (batch statistics), under ``torch.no_grad``.
    """
    with torch.no_grad():
        t = run_tapped(teacher, inputs) if isinstance(teacher, nn.Module) else teacher
        was_training = student.training
        student.train()
        try:
            s = run_tapped(student, inputs)
        finally:
            student.train(was_training)
        sem, rel = diswot_distances(t, s, targets)
    sem_f, rel_f = float(sem), float(rel)
    return {"diswot": -(sem_f + rel_f), "diswot_semantic": -sem_f, "diswot_relation": -rel_f}


class DisWOTEstimator(Estimator):
    """The DisWOT score of each untrained student ``space.build(arch)`` against ``teacher``.

    ``teacher`` is any ``nn.Module`` mapping the dataset's inputs to logits with a final
    ``nn.Linear`` (a trained nasforge network: ``TrainingEstimator.trained_model(arch)``); it runs
    in eval mode. The batch is ``batch_size`` examples of the training split drawn with ``seed``;
    a student's weights come from a seed derived from ``seed`` and its architecture string, so a
    score does not depend on the order students are scored in. Metrics: ``diswot`` (maximise),
    ``diswot_semantic``, ``diswot_relation``; the cost is the seconds of building and scoring.
    """

    fidelities = None

    def __init__(self, space: SearchSpace, dataset: Dataset | str, teacher: nn.Module, batch_size: int = 64,
                 seed: int = 0, net: dict[str, Any] | None = None) -> None:
        if not isinstance(teacher, nn.Module):
            raise NasforgeError(f"bad teacher {type(teacher).__name__}: expected a torch.nn.Module")
        self.space, self.teacher = space, teacher
        self.dataset = load_dataset(dataset) if isinstance(dataset, str) else dataset
        d = self.dataset
        if isinstance(batch_size, bool) or not 2 <= int(batch_size) <= len(d.y_train):
            raise NasforgeError(f"bad batch_size {batch_size!r}: expected 2..{len(d.y_train)} "
                                f"(the training examples of {d.name!r})")
        self.batch_size, self.seed, self.net = int(batch_size), int(seed), dict(net or {})
        idx = np.sort(np.random.default_rng(self.seed).choice(len(d.y_train), self.batch_size, replace=False))
        self.inputs = torch.from_numpy(np.ascontiguousarray(d.x_train[idx])).float()
        self.targets = torch.from_numpy(np.asarray(d.y_train[idx])).long()
        teacher.eval()
        with torch.no_grad():
            self._teacher_out = run_tapped(teacher, self.inputs)
        if self._teacher_out[0].shape[1] != d.num_classes:
            raise NasforgeError(f"teacher gives {self._teacher_out[0].shape[1]} logits; dataset {d.name!r} has "
                                f"{d.num_classes} classes")

    @property
    def metric_names(self) -> list[str]:
        return ["diswot", "diswot_semantic", "diswot_relation"]

    def higher_is_better(self, metric: str) -> bool:
        return True

    def build(self, arch: Any) -> nn.Module:
        """The untrained student of ``arch`` (the same weights every call)."""
        from nasforge.estimation.proxies.base import arch_seed
        from nasforge.spaces.base import settings_for

        d = self.dataset
        data = {"num_classes": d.num_classes, "in_channels": d.in_channels, "input_size": d.input_size}
        kwargs = {**settings_for(self.space.build, data), **self.net}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(arch_seed(self.seed, self.space.format(arch)))
            return self.space.build(arch, **kwargs)

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        if fidelity is not None:
            raise NasforgeError(f"DisWOT is training-free and has no fidelity; got fidelity={fidelity!r}")
        arch = self.space.coerce(arch)
        t0 = time.perf_counter()
        scores = diswot_score(self._teacher_out, self.build(arch), self.inputs, self.targets)
        return Measurement(scores, time.perf_counter() - t0, None, {})

    def __repr__(self) -> str:
        return (f"DisWOTEstimator({self.space.name}, {self.dataset.name}, teacher={type(self.teacher).__name__}, "
                f"batch_size={self.batch_size}, seed={self.seed}, net={self.net})")


def check_distill_settings(temperature: Any, weight: Any, diswot_weight: Any) -> tuple[float, float, float]:
    """Validated (temperature > 0, weight in [0, 1], diswot_weight >= 0)."""
    return (check_float(temperature, "kd_temperature", 0, low_open=True),
            check_float(weight, "kd_weight", 0, 1),
            check_float(diswot_weight, "diswot_weight", 0))
