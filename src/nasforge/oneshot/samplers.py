"""Path (and data) samplers for single-path supernet training.

A sampler decides, for every training step, which path(s) of the supernet are trained and, at
every epoch boundary, in which order (and how often) the training examples are visited:

- :class:`UniformSampler` (SPOS, Guo et al., ECCV 2020): one path per step, every allowed
  operation of every edge equally likely.
- :class:`FairSampler` (FairNAS strict fairness, Chu et al., ICCV 2021): a step trains a group
  of ``m`` paths (``m`` = 5, the number of operations) on the same batch; for every edge the
  group uses a random permutation of its operations, so each operation of each edge is trained
  exactly once per step. Gradients of the ``m`` paths are summed and applied in one update.
- :class:`PADASampler` (PA&DA, Lu et al., CVPR 2023): importance sampling that lowers the
  variance of the supernet gradient.

  *Path importance*: each edge samples operation ``k`` with probability
  ``(1 - lam) / m + lam * g[e, k] / sum_j g[e, j]``, where ``g[e, k]`` is the running mean
  (exponential, ``momentum``) of the gradient norm of operation ``k``'s weights on edge ``e``,
  measured whenever it is on the trained path. Parameter-free operations (``none``,
  ``skip_connect``, ``avg_pool_3x3``) have no weights, hence ``g = 0``: as in the paper's code,
  they keep only the uniform share. ``g`` is per edge here (the authors pool the edges).

  *Data importance*: example ``i`` is drawn with probability
  ``(1 - lam) / n + lam * s[i] / sum_j s[j]`` where ``s[i] = ||softmax(z_i) - onehot(y_i)||_2``
  (the norm of the loss gradient with respect to the logits) from the last time it was trained;
  an epoch then visits ``n`` examples drawn with replacement (the paper's scheme). Examples not
  yet seen count with the mean score.

  Both distributions are refreshed at every epoch boundary; ``lam`` ramps linearly from 0 to
  ``max_mix`` over training (the paper: ``epoch / epochs``). ``path=False`` or ``data=False``
  switches either half off.

Samplers hold no random generator: the trainer passes its own (so a checkpoint saves one
state). Every sampler respects a supernet's ``allowed`` operations (sub-supernets of few-shot
splits).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from nasforge.errors import NasforgeError, unknown
from nasforge.oneshot.supernet import N_EDGES, N_OPS, PARAM_OPS, NB201Supernet, _allowed_mask

__all__ = ["PathSampler", "UniformSampler", "FairSampler", "PADASampler", "SAMPLERS", "make_sampler"]


class PathSampler:
    """Base class: uniform over the allowed operations, natural data order.

    The trainer calls, in this order: :meth:`begin` once (sizes of the run),
    :meth:`epoch_order` at every epoch boundary, :meth:`sample_group` for every step, then per
    trained path :meth:`observe_batch` (after the forward) and :meth:`observe_gradients` (after
    the backward, before the update).
    """

    name = "base"
    #: number of paths trained (and gradients accumulated) per optimiser update
    group_size = 1

    def __init__(self, allowed: Any = None) -> None:
        self.allowed = _allowed_mask(allowed)
        self.n_examples = 0

    # --- life cycle -------------------------------------------------------------------------
    def begin(self, n_examples: int) -> None:
        """Called once before training (and again after a resume) with the training-set size."""
        self.n_examples = int(n_examples)

    def epoch_order(self, progress: float, gen: torch.Generator) -> Tensor:
        """Indices of the examples the next epoch visits, in order (default: a permutation)."""
        return torch.randperm(self.n_examples, generator=gen)

    def sample_group(self, rng: np.random.Generator) -> list[tuple[int, ...]]:
        """The path(s) to train this step, as tuples of 6 operation indices."""
        return [self._draw(self.probabilities(), rng)]

    def observe_batch(self, indices: Tensor, logits: Tensor, targets: Tensor) -> None:
        """Sees the logits of the batch just trained (no gradient)."""

    def observe_gradients(self, model: NB201Supernet, path: tuple[int, ...]) -> None:
        """Sees the gradients of the path just back-propagated (before the update)."""

    # --- distributions ----------------------------------------------------------------------
    def probabilities(self) -> np.ndarray:
        """Per-edge operation probabilities, shape (6, 5); rows sum to 1."""
        return self.allowed / self.allowed.sum(axis=1, keepdims=True)

    @staticmethod
    def _draw(p: np.ndarray, rng: np.random.Generator) -> tuple[int, ...]:
        u = rng.random(N_EDGES)
        cum = np.cumsum(p, axis=1)
        cum[:, -1] = 1.0  # guard against rounding
        return tuple(int(np.searchsorted(cum[e], u[e], side="right")) for e in range(N_EDGES))

    # --- persistence ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "allowed": torch.from_numpy(self.allowed.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise NasforgeError(f"checkpoint was written by sampler {state.get('name')!r}, not {self.name!r}")
        self.allowed = np.asarray(state["allowed"], dtype=bool)

    def settings(self) -> dict[str, Any]:
        """Constructor settings (for run configurations)."""
        return {}

    def __repr__(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.settings().items())
        return f"{type(self).__name__}({extra})"


class UniformSampler(PathSampler):
    """SPOS: one uniformly random path per step."""

    name = "uniform"


class FairSampler(PathSampler):
    """FairNAS strict fairness: every allowed operation of every edge once per step.

    A group has ``max over edges of the number of allowed operations`` paths (5 in the full
    space). An edge with fewer allowed operations repeats a fresh random permutation of them to
    fill the group.
    """

    name = "fairnas"

    @property
    def group_size(self) -> int:  # type: ignore[override]
        return int(self.allowed.sum(axis=1).max())

    def sample_group(self, rng: np.random.Generator) -> list[tuple[int, ...]]:
        m = self.group_size
        columns = []
        for e in range(N_EDGES):
            ops = np.flatnonzero(self.allowed[e])
            seq: list[int] = []
            while len(seq) < m:
                seq.extend(int(v) for v in rng.permutation(ops))
            columns.append(seq[:m])
        return [tuple(columns[e][j] for e in range(N_EDGES)) for j in range(m)]


class PADASampler(PathSampler):
    """PA&DA: path importance and/or data importance (see the module docstring).

    ``path``/``data`` switch the halves; ``max_mix`` is the final weight of the importance
    distribution (ramped linearly from 0 with training progress); ``momentum`` is the
    exponential-average factor of the operation gradient norms.
    """

    name = "pada"

    def __init__(self, allowed: Any = None, path: bool = True, data: bool = True, max_mix: float = 1.0,
                 momentum: float = 0.9) -> None:
        super().__init__(allowed)
        if not (path or data):
            raise NasforgeError("PA&DA needs path=True, data=True or both (with neither it is uniform sampling)")
        if not 0.0 <= max_mix <= 1.0:
            raise NasforgeError(f"max_mix must be in [0, 1], got {max_mix}")
        if not 0.0 <= momentum < 1.0:
            raise NasforgeError(f"momentum must be in [0, 1), got {momentum}")
        self.path, self.data = bool(path), bool(data)
        self.max_mix, self.momentum = float(max_mix), float(momentum)
        self.mix = 0.0  # current lam
        self.grad_norm = np.zeros((N_EDGES, N_OPS))  # running gradient norms g[e, k]
        self.grad_seen = np.zeros((N_EDGES, N_OPS), dtype=bool)
        self.op_prob = super().probabilities()
        self.scores = np.zeros(0)  # per-example s[i]
        self.seen = np.zeros(0, dtype=bool)

    def settings(self) -> dict[str, Any]:
        return {"path": self.path, "data": self.data, "max_mix": self.max_mix, "momentum": self.momentum}

    def begin(self, n_examples: int) -> None:
        if len(self.scores) not in (0, n_examples):
            raise NasforgeError(f"sampler state holds {len(self.scores)} example scores, the data {n_examples}")
        super().begin(n_examples)
        if len(self.scores) == 0:
            self.scores = np.zeros(n_examples)
            self.seen = np.zeros(n_examples, dtype=bool)

    # --- path importance --------------------------------------------------------------------
    def probabilities(self) -> np.ndarray:
        return self.op_prob

    def path_importance(self) -> np.ndarray:
        """The normalised running gradient norms per edge, shape (6, 5) (uniform where none)."""
        g = np.where(self.allowed, self.grad_norm, 0.0)
        tot = g.sum(axis=1, keepdims=True)
        uniform = self.allowed / self.allowed.sum(axis=1, keepdims=True)
        return np.where(tot > 0, g / np.where(tot > 0, tot, 1.0), uniform)

    def observe_gradients(self, model: NB201Supernet, path: tuple[int, ...]) -> None:
        if not self.path:
            return
        for e, k in enumerate(path):
            if k not in PARAM_OPS:
                continue
            sq = [p.grad.detach().pow(2).sum() for p in model.op_parameters(e, k) if p.grad is not None]
            if not sq:
                continue
            norm = float(torch.stack(sq).sum().sqrt())
            if self.grad_seen[e, k]:
                self.grad_norm[e, k] = self.momentum * self.grad_norm[e, k] + (1.0 - self.momentum) * norm
            else:
                self.grad_norm[e, k], self.grad_seen[e, k] = norm, True

    # --- data importance --------------------------------------------------------------------
    @staticmethod
    def example_scores(logits: Tensor, targets: Tensor) -> Tensor:
        """``||softmax(z) - onehot(y)||_2`` per example: the norm of d(cross-entropy)/d(logits)."""
        p = torch.softmax(logits.detach().float(), dim=1)
        p[torch.arange(len(targets)), targets] -= 1.0
        return p.norm(dim=1)

    def observe_batch(self, indices: Tensor, logits: Tensor, targets: Tensor) -> None:
        if not self.data:
            return
        idx = indices.numpy()
        self.scores[idx] = self.example_scores(logits, targets).numpy()
        self.seen[idx] = True

    def data_probabilities(self) -> np.ndarray:
        """The per-example sampling probabilities of the next epoch (sum to 1)."""
        n = self.n_examples
        uniform = np.full(n, 1.0 / n)
        if not self.data or not self.seen.any():
            return uniform
        s = np.where(self.seen, self.scores, self.scores[self.seen].mean())
        tot = s.sum()
        imp = s / tot if tot > 0 else uniform
        p = (1.0 - self.mix) * uniform + self.mix * imp
        return p / p.sum()

    # --- epoch boundary ---------------------------------------------------------------------
    def epoch_order(self, progress: float, gen: torch.Generator) -> Tensor:
        self.mix = self.max_mix * min(max(float(progress), 0.0), 1.0)
        if self.path:
            uniform = self.allowed / self.allowed.sum(axis=1, keepdims=True)
            p = (1.0 - self.mix) * uniform + self.mix * self.path_importance()
            self.op_prob = p / p.sum(axis=1, keepdims=True)
        if not self.data or self.mix == 0.0:
            return torch.randperm(self.n_examples, generator=gen)
        p = torch.from_numpy(self.data_probabilities())
        return torch.multinomial(p, self.n_examples, replacement=True, generator=gen)

    # --- persistence ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        st = super().state_dict()
        st.update(mix=self.mix, grad_norm=torch.from_numpy(self.grad_norm.copy()),
                  grad_seen=torch.from_numpy(self.grad_seen.copy()), op_prob=torch.from_numpy(self.op_prob.copy()),
                  scores=torch.from_numpy(self.scores.copy()), seen=torch.from_numpy(self.seen.copy()))
        return st

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.mix = float(state["mix"])
        self.grad_norm = np.asarray(state["grad_norm"], dtype=float).copy()
        self.grad_seen = np.asarray(state["grad_seen"], dtype=bool).copy()
        self.op_prob = np.asarray(state["op_prob"], dtype=float).copy()
        self.scores = np.asarray(state["scores"], dtype=float).copy()
        self.seen = np.asarray(state["seen"], dtype=bool).copy()


#: registry: name -> (class, fixed settings)
SAMPLERS: dict[str, tuple[type[PathSampler], dict[str, Any]]] = {
    "uniform": (UniformSampler, {}),
    "fairnas": (FairSampler, {}),
    "pada": (PADASampler, {"path": True, "data": True}),
    "pada-path": (PADASampler, {"path": True, "data": False}),
    "pada-data": (PADASampler, {"path": False, "data": True}),
}
_ALIASES = {"spos": "uniform", "fair": "fairnas", "pa&da": "pada"}


def make_sampler(name: str, allowed: Any = None, **settings: Any) -> PathSampler:
    """A sampler by name: ``uniform`` (alias ``spos``), ``fairnas``, ``pada``, ``pada-path``,
    ``pada-data``; ``settings`` go to the constructor (e.g. ``max_mix`` for PA&DA)."""
    key = _ALIASES.get(name, name)
    if key not in SAMPLERS:
        raise unknown("sampler", name, sorted(SAMPLERS))
    cls, fixed = SAMPLERS[key]
    clash = set(fixed) & set(settings)
    if clash:
        raise NasforgeError(f"sampler {key!r} fixes {', '.join(sorted(clash))}; use another sampler name instead")
    try:
        s = cls(allowed, **fixed, **settings)
    except TypeError as exc:
        raise NasforgeError(f"bad settings for sampler {key!r}: {exc}") from None
    s.name = key
    return s
