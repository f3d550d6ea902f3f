"""Path (and data) samplers for single-path supernet training.

A sampler decides, for every training step, which path(s) of the supernet are trained and, at
every epoch boundary, in which order (and how often) the training examples are visited:

- :class:`UniformSampler` (SPOS, Guo et al., ECCV 2020): one path per step, every architecture
  the supernet holds equally likely (every allowed operation of every edge equally likely where
  every combination is an architecture, as in NB201).
- :class:`FairSampler` (FairNAS strict fairness, Chu et al., ICCV 2021): a step trains a group
  of ``m`` paths (``m`` = the number of operations of an edge, 5 in NB201) on the same batch; for
  every edge the group uses a random permutation of its operations, so each operation of each edge
  is trained exactly once per step. Gradients of the ``m`` paths are summed and applied in one
  update. Where an edge's ``none`` is structural (DARTS: each node keeps two inputs), the
  permutations cover the operations and the space draws which edges of each path are on, so each
  operation of an edge is trained at most once per step (exactly once on edges every path uses).
- :class:`PADASampler` (PA&DA, Lu et al., CVPR 2023): importance sampling that lowers the
  variance of the supernet gradient.

  *Path importance*: each edge samples operation ``k`` with probability
  ``(1 - lam) / m + lam * g[e, k] / sum_j g[e, j]``, where ``g[e, k]`` is the running mean
  (exponential, ``momentum``) of the gradient norm of operation ``k``'s weights on edge ``e``,
  measured whenever it is on the trained path. Parameter-free operations (NB201: ``none``,
  ``skip_connect``, ``avg_pool_3x3``) have no weights, hence ``g = 0``: as in the paper's code,
  they keep only the uniform share. ``g`` is per edge here (the authors pool the edges).
  Structural choices (DARTS ``none``) keep their uniform probability: importance re-weights the
  operations, not which inputs a node takes.

  *Data importance*: example ``i`` is drawn with probability
  ``(1 - lam) / n + lam * s[i] / sum_j s[j]`` where ``s[i] = ||softmax(z_i) - onehot(y_i)||_2``
  (the norm of the loss gradient with respect to the logits) from the last time it was trained;
  an epoch then visits ``n`` examples drawn with replacement (the paper's scheme). Examples not
  yet seen count with the mean score.

  Both distributions are refreshed at every epoch boundary; ``lam`` ramps linearly from 0 to
  ``max_mix`` over training (the paper: ``epoch / epochs``). ``path=False`` or ``data=False``
  switches either half off.

Samplers work on any space through its supernet layout (:mod:`nasforge.spaces.supernet`): they
shape per-edge operation probabilities, and the layout draws an architecture from them
(independent per-edge draws conditioned on validity). A sampler made without a supernet assumes
the default space's layout and adopts the trained supernet's layout and allowed operations when
the trainer binds it (:meth:`PathSampler.bind`). Samplers hold no random generator: the trainer
passes its own (so a checkpoint saves one state). Every sampler respects a supernet's ``allowed``
operations (sub-supernets of few-shot splits).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from nasforge.errors import NasforgeError, unknown
from nasforge.spaces.supernet import Supernet, SupernetLayout, default_layout

__all__ = ["PathSampler", "UniformSampler", "FairSampler", "PADASampler", "SAMPLERS", "make_sampler"]


class PathSampler:
    """Base class: uniform over the architectures the supernet holds, natural data order.

    ``allowed``: the operations it may draw (a supernet, whose layout and mask it takes; a mask;
    per-edge operation names; ``None`` for everything). ``layout``: the space's supernet layout
    (default: the supernet's, else the default space's).

    The trainer calls, in this order: :meth:`bind` (the supernet it trains), :meth:`begin` once
    (sizes of the run), :meth:`epoch_order` at every epoch boundary, :meth:`sample_group` for
    every step, then per trained path :meth:`observe_batch` (after the forward) and
    :meth:`observe_gradients` (after the backward, before the update).
    """

    name = "base"
    #: number of paths trained (and gradients accumulated) per optimiser update
    group_size = 1

    def __init__(self, allowed: Any = None, layout: SupernetLayout | None = None) -> None:
        if isinstance(allowed, Supernet):
            layout = layout if layout is not None else allowed.layout
            allowed = allowed.allowed
        self.layout: SupernetLayout = layout if layout is not None else default_layout()
        #: whether the allowed operations were given (else the trained supernet's are adopted)
        self.restricted = allowed is not None
        self.allowed = self.layout.mask(allowed)
        self.n_examples = 0

    # --- life cycle -------------------------------------------------------------------------
    def bind(self, model: Supernet) -> None:
        """Take the layout and allowed operations of ``model`` when this sampler was made without
        a restriction; otherwise check that ``model`` holds everything the sampler may draw."""
        same = model.layout.name == self.layout.name and model.allowed.shape == self.allowed.shape
        if not self.restricted and not (same and np.array_equal(model.allowed, self.allowed)):
            self._reset(model.layout, model.allowed)
        elif not same:
            raise NasforgeError(f"the sampler was restricted for a {self.layout.name} supernet, not a "
                                f"{model.layout.name} one")
        if (self.allowed & ~model.allowed).any():
            raise NasforgeError("the sampler may draw operations the supernet does not allow")

    def _reset(self, layout: SupernetLayout, allowed: np.ndarray) -> None:
        """Adopt another layout or mask (before training)."""
        self.layout, self.allowed = layout, np.array(allowed, dtype=bool)

    def begin(self, n_examples: int) -> None:
        """Called once before training (and again after a resume) with the training-set size."""
        self.n_examples = int(n_examples)

    def epoch_order(self, progress: float, gen: torch.Generator) -> Tensor:
        """Indices of the examples the next epoch visits, in order (default: a permutation)."""
        return torch.randperm(self.n_examples, generator=gen)

    def sample_group(self, rng: np.random.Generator) -> list[tuple[int, ...]]:
        """The path(s) to train this step, as tuples of per-edge operation indices."""
        return [self.layout.draw(self.probabilities(), rng)]

    def observe_batch(self, indices: Tensor, logits: Tensor, targets: Tensor) -> None:
        """Sees the logits of the batch just trained (no gradient)."""

    def observe_gradients(self, model: Supernet, path: tuple[int, ...]) -> None:
        """Sees the gradients of the path just back-propagated (before the update)."""

    # --- distributions ----------------------------------------------------------------------
    def probabilities(self) -> np.ndarray:
        """Per-edge operation probabilities, shape (edges, operations); rows sum to 1."""
        return self.layout.uniform(self.allowed)

    # --- persistence ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "layout": self.layout.name, "allowed": torch.from_numpy(self.allowed.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise NasforgeError(f"checkpoint was written by sampler {state.get('name')!r}, not {self.name!r}")
        if state.get("layout", self.layout.name) != self.layout.name:
            raise NasforgeError(f"checkpoint was written for a {state['layout']} supernet, not a {self.layout.name} one")
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
    NB201 space). An edge with fewer allowed operations repeats a fresh random permutation of them
    to fill the group. Structural choices (DARTS ``none``) are not permuted: the space draws which
    edges each path switches on (uniformly), and a switched-on edge takes its permuted operation.
    """

    name = "fairnas"

    def _free(self) -> np.ndarray:
        return self.allowed & ~self.layout.structural

    @property
    def group_size(self) -> int:  # type: ignore[override]
        return max(1, int(self._free().sum(axis=1).max()))

    def sample_group(self, rng: np.random.Generator) -> list[tuple[int, ...]]:
        m = self.group_size
        free = self._free()
        columns = []
        for e in range(self.layout.n_edges):
            ops = np.flatnonzero(free[e])
            if len(ops) == 0:  # only structural choices allowed (an edge switched off)
                ops = np.flatnonzero(self.allowed[e])
            seq: list[int] = []
            while len(seq) < m:
                seq.extend(int(v) for v in rng.permutation(ops))
            columns.append(seq[:m])
        paths = [tuple(columns[e][j] for e in range(self.layout.n_edges)) for j in range(m)]
        if self.layout.independent:
            return paths
        structural = self.layout.structural & self.allowed
        uniform = self.layout.uniform(self.allowed)
        out = []
        for path in paths:
            p = np.where(structural, uniform, 0.0)
            for e, k in enumerate(path):
                if not structural[e, k]:
                    p[e, k] = 1.0 - p[e].sum()
            out.append(self.layout.draw(p, rng))
        return out


class PADASampler(PathSampler):
    """PA&DA: path importance and/or data importance (see the module docstring).

    ``path``/``data`` switch the halves; ``max_mix`` is the final weight of the importance
    distribution (ramped linearly from 0 with training progress); ``momentum`` is the
    exponential-average factor of the operation gradient norms.
    """

    name = "pada"

    def __init__(self, allowed: Any = None, path: bool = True, data: bool = True, max_mix: float = 1.0,
                 momentum: float = 0.9, layout: SupernetLayout | None = None) -> None:
        super().__init__(allowed, layout)
        if not (path or data):
            raise NasforgeError("PA&DA needs path=True, data=True or both (with neither it is uniform sampling)")
        if not 0.0 <= max_mix <= 1.0:
            raise NasforgeError(f"max_mix must be in [0, 1], got {max_mix}")
        if not 0.0 <= momentum < 1.0:
            raise NasforgeError(f"momentum must be in [0, 1), got {momentum}")
        self.path, self.data = bool(path), bool(data)
        self.max_mix, self.momentum = float(max_mix), float(momentum)
        self.mix = 0.0  # current lam
        self._reset_paths()
        self.scores = np.zeros(0)  # per-example s[i]
        self.seen = np.zeros(0, dtype=bool)

    def _reset_paths(self) -> None:
        self.grad_norm = np.zeros(self.allowed.shape)  # running gradient norms g[e, k]
        self.grad_seen = np.zeros(self.allowed.shape, dtype=bool)
        self.op_prob = self.layout.uniform(self.allowed)

    def _reset(self, layout: SupernetLayout, allowed: np.ndarray) -> None:
        super()._reset(layout, allowed)
        self._reset_paths()

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
        """The normalised running gradient norms per edge, shape (edges, operations) (uniform
        where none was measured); structural choices get none."""
        g = np.where(self.allowed & ~self.layout.structural, self.grad_norm, 0.0)
        tot = g.sum(axis=1, keepdims=True)
        uniform = self.allowed / self.allowed.sum(axis=1, keepdims=True)
        return np.where(tot > 0, g / np.where(tot > 0, tot, 1.0), uniform)

    def observe_gradients(self, model: Supernet, path: tuple[int, ...]) -> None:
        if not self.path:
            return
        for e, k in enumerate(path):
            if self.layout.structural[e, k]:
                continue
            sq = [p.grad.detach().pow(2).sum() for p in model.op_parameters(e, k) if p.grad is not None]
            if not sq:  # a parameter-free operation (or one that got no gradient)
                continue
            norm = float(torch.stack(sq).sum().sqrt())
            if self.grad_seen[e, k]:
                self.grad_norm[e, k] = self.momentum * self.grad_norm[e, k] + (1.0 - self.momentum) * norm
            else:
                self.grad_norm[e, k], self.grad_seen[e, k] = norm, True

    def _keep_structural(self, p: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """``p`` with every structural choice at its uniform probability and the operations
        sharing the rest in proportion to ``p``."""
        st = self.layout.structural & self.allowed
        share = np.where(st, uniform, 0.0).sum(axis=1, keepdims=True)
        rest = np.where(st, 0.0, p)
        tot = rest.sum(axis=1, keepdims=True)
        scaled = rest / np.where(tot > 0, tot, 1.0) * (1.0 - share)
        return np.where(st, uniform, np.where(tot > 0, scaled, uniform))

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
            uniform = self.layout.uniform(self.allowed)
            p = (1.0 - self.mix) * uniform + self.mix * self.path_importance()
            if not self.layout.independent:
                p = self._keep_structural(p, uniform)
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
    ``pada-data``; ``allowed`` as for :class:`PathSampler` (pass the supernet to take its layout
    and mask); ``settings`` go to the constructor (e.g. ``max_mix`` for PA&DA)."""
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
