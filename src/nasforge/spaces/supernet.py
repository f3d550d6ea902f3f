"""The supernet protocol: what a space provides so that one-shot NAS can search it.

A space that supports weight sharing answers :meth:`SearchSpace.supernet_layout` (and with it
:meth:`SearchSpace.supernet`). The protocol has two halves.

**The layout** (:class:`SupernetLayout`, plain NumPy): the space seen as *decision points*
("edges": the edges of a cell, the layers of a macro network) that each choose one of a few
*candidate operations*. An architecture is then a tuple of per-edge operation indices, and sets
of architectures are *masks* of shape (edges, width) where ``width`` is the largest number of
candidates of an edge. The layout

- translates architectures to indices and back (:meth:`~SupernetLayout.indices`,
  :meth:`~SupernetLayout.arch`; :meth:`~SupernetLayout.coerce_indices` takes either);
- says which index tuples are architectures (:meth:`~SupernetLayout.valid`): in NB201 and the
  macro space every combination is one; in DARTS each node keeps exactly two inputs, so the
  ``none`` choice of an edge is *structural* (:attr:`~SupernetLayout.structural`);
- normalises, prunes and counts masks (:meth:`~SupernetLayout.mask`,
  :meth:`~SupernetLayout.count`, :meth:`~SupernetLayout.iter_indices`): an allowed mask keeps only
  choices that occur in some architecture it holds;
- draws architectures: :meth:`~SupernetLayout.draw` takes per-edge probabilities ``p`` (edges x
  width) and returns a draw of independent per-edge choices *conditioned on being an
  architecture* (for NB201 and the macro space simply independent draws; for DARTS the two inputs
  of each node are drawn from the exact conditional distribution). Uniform ``p`` over a mask gives
  every architecture of the mask the same probability. Samplers (uniform, FairNAS, PA&DA) only
  shape ``p``; validity stays with the space.

**The network** (:class:`Supernet`, a ``torch.nn.Module``) holds every candidate's weights:

- ``model(x, arch)``: one path (an architecture, its string, or its index tuple); operations off
  the path are not run;
- ``model(x, weights=w)``: the weighted mixture; ``w`` has shape (edges, width), one row of
  operation weights per edge shared by every cell, or (``n_cells``, edges, width), one copy per
  cell (per-layer architecture parameters). Each edge outputs ``sum_k w[e, k] * op_k(input)``;
  a one-hot ``w`` of an architecture computes exactly its path. Differentiable search plugs
  ``softmax(alpha)`` (or a Gumbel or Dirichlet sample) in here;
- ``allowed`` (a mask of the layout) with :meth:`~Supernet.restrict`, :meth:`~Supernet.contains`,
  :meth:`~Supernet.size`, :meth:`~Supernet.iter_archs` and :meth:`~Supernet.supernet_for`: few-shot
  splitting restricts copies of a supernet;
- the weights of each candidate (:meth:`~Supernet.op_parameters`), the blocks whose outputs make
  a layer-wise profile (:meth:`~Supernet.blocks`, for NAS-LID), and, where the space's ``build``
  network has the same modules, :meth:`~Supernet.extract`: a stand-alone network with copies of
  the inherited weights that computes exactly what the path computes.

Implementations: :mod:`~nasforge.spaces.nb201_supernet`, :mod:`~nasforge.spaces.darts_supernet`,
:mod:`~nasforge.spaces.macro_supernet`.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, ABCMeta, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn

from nasforge.errors import NasforgeError

__all__ = ["SupernetLayout", "Supernet", "DEFAULT_SPACE", "default_layout", "supernet_from_config"]

#: the space helpers fall back to when handed no supernet (the first one nasforge had)
DEFAULT_SPACE = "nb201"


def _is_index(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


class SupernetLayout(ABC):
    """The decision points of a space's supernet and the maths of choosing on them.

    ``edges``: one name per decision point; ``ops``: per edge, the names of its candidate
    operations (their positions are the operation indices); ``structural``: per edge, the names
    of choices that switch the edge off and are tied to the others by validity (DARTS ``none``).
    ``cpu_net``: small network settings for CPU-scale supernet runs (the run protocol's
    defaults); ``net_keys``: the settings a run may choose. This base class treats every
    combination of choices as an architecture; layouts with constraints override :meth:`valid`,
    :meth:`prune`, :meth:`count`, :meth:`iter_indices`, :meth:`draw` and :meth:`set_choice`. Subclasses implement :meth:`indices`, :meth:`arch` and
    :meth:`build`.
    """

    #: small network settings for CPU-scale runs (keywords of :meth:`build`)
    cpu_net: ClassVar[dict[str, Any]] = {}
    #: the network settings a user chooses (keywords of :meth:`build` besides those the data
    #: fixes: ``num_classes``, ``in_channels``, ``input_size``)
    net_keys: ClassVar[tuple[str, ...]] = ()
    #: what the space calls its architectures in messages ("cells" for a cell space)
    noun: ClassVar[str] = "architectures"

    def __init__(self, space: Any, edges: Sequence[str], ops: Sequence[Sequence[str]],
                 structural: Sequence[Sequence[str]] | None = None) -> None:
        self.space = space
        self.name: str = space.name
        self.edges: tuple[str, ...] = tuple(edges)
        self.ops: tuple[tuple[str, ...], ...] = tuple(tuple(o) for o in ops)
        if len(self.ops) != len(self.edges) or any(not o for o in self.ops):
            raise NasforgeError("a supernet layout needs a non-empty list of operations for every edge")
        self.n_edges = len(self.edges)
        self.n_ops = max(len(o) for o in self.ops)
        self.candidates = np.zeros((self.n_edges, self.n_ops), dtype=bool)
        for e, o in enumerate(self.ops):
            self.candidates[e, : len(o)] = True
        self.structural = np.zeros_like(self.candidates)
        for e, names in enumerate(structural or [()] * self.n_edges):
            for name in names:
                self.structural[e, self.ops[e].index(name)] = True
        #: every combination of allowed choices is an architecture
        self.independent = not self.structural.any()

    # --- architectures <-> indices -------------------------------------------------------------
    @abstractmethod
    def indices(self, arch: Any) -> tuple[int, ...]:
        """The per-edge operation indices of an architecture of the space."""

    @abstractmethod
    def arch(self, idx: Sequence[int]) -> Any:
        """The architecture of a valid index tuple."""

    def valid(self, idx: Sequence[int]) -> bool:
        """Whether an in-range index tuple is an architecture (always, in this base class)."""
        return True

    def why_invalid(self, idx: Sequence[int]) -> str:
        """Why :meth:`valid` refuses ``idx`` (one phrase)."""
        return "not an architecture"

    def coerce_indices(self, arch: Any) -> tuple[int, ...]:
        """Indices of an architecture, its string, or a tuple of per-edge operation indices."""
        if isinstance(arch, (tuple, list, np.ndarray)) and len(arch) == self.n_edges and all(_is_index(v) for v in arch):
            idx = tuple(int(v) for v in arch)
            bad = [e for e, k in enumerate(idx) if not 0 <= k < len(self.ops[e])]
            if bad:
                raise NasforgeError(f"operation indices must lie in 0..{self.n_ops - 1} (edge {bad[0]}: "
                                    f"0..{len(self.ops[bad[0]]) - 1}), got {idx}")
            if not self.valid(idx):
                raise NasforgeError(f"indices {idx} are not an architecture of space {self.name!r}: "
                                    f"{self.why_invalid(idx)}")
            return idx
        return self.indices(self.space.coerce(arch))

    def op_index(self, edge: int, op: Any) -> int:
        """The index of operation ``op`` (a name or an index) on ``edge``."""
        ops = self.ops[edge]
        if isinstance(op, str) and op in ops:
            return ops.index(op)
        if _is_index(op) and 0 <= int(op) < len(ops):
            return int(op)
        raise NasforgeError(f"unknown operation {op!r} on edge {edge}; allowed: {', '.join(ops)}")

    def describe(self, idx: Sequence[int]) -> list[str]:
        """``edge name: op name`` for every edge of an index tuple."""
        return [f"{self.edges[e]}: {self.ops[e][k]}" for e, k in enumerate(idx)]

    # --- masks --------------------------------------------------------------------------------
    def mask(self, allowed: Any = None) -> np.ndarray:
        """``allowed`` as a pruned (edges, width) boolean mask: ``None`` (the whole space), a
        boolean array or tensor, or per edge a list of operation names or indices. Raises a
        :class:`NasforgeError` when an edge is left without operations or the mask holds no
        architecture."""
        shape = (self.n_edges, self.n_ops)
        if allowed is None:
            m = self.candidates.copy()
        elif isinstance(allowed, (np.ndarray, Tensor)):
            m = np.array(allowed, dtype=bool)
            if m.shape != shape:
                raise NasforgeError(f"an allowed-operation mask must have shape {shape}, got {m.shape}")
            if (m & ~self.candidates).any():
                e = int(np.flatnonzero((m & ~self.candidates).any(axis=1))[0])
                raise NasforgeError(f"the mask allows an operation index edge {e} does not have "
                                    f"(it has {len(self.ops[e])})")
        else:
            if isinstance(allowed, str):
                raise NasforgeError(f"allowed operations must be one list per edge, got {allowed!r}")
            rows = list(allowed)
            if len(rows) != self.n_edges:
                raise NasforgeError(f"allowed operations must be given for {self.n_edges} edges, got {len(rows)}")
            m = np.zeros(shape, dtype=bool)
            for e, ops in enumerate(rows):
                if isinstance(ops, str):
                    ops = [ops]
                for op in ops:
                    m[e, self.op_index(e, op)] = True
        if not m.any(axis=1).all():
            empty = [e for e in range(self.n_edges) if not m[e].any()]
            raise NasforgeError(f"edge(s) {empty} would have no allowed operation")
        m = self.prune(m)
        if not m.any(axis=1).all():
            raise NasforgeError(f"the allowed operations hold no architecture of space {self.name!r}")
        return m

    def prune(self, m: np.ndarray) -> np.ndarray:
        """``m`` without the choices that occur in no architecture it holds (nothing to remove
        when every combination is an architecture)."""
        return m & self.candidates

    def count(self, m: np.ndarray) -> int:
        """Number of architectures a mask holds."""
        return int(math.prod(int(v) for v in np.asarray(m, dtype=bool).sum(axis=1)))

    def iter_indices(self, m: np.ndarray) -> Iterator[tuple[int, ...]]:
        """Every index tuple the mask holds, in lexicographic order (first edge slowest)."""
        rows = [np.flatnonzero(r).tolist() for r in np.asarray(m, dtype=bool)]
        for idx in itertools.product(*rows):
            if self.independent or self.valid(idx):
                yield tuple(idx)

    def uniform(self, m: np.ndarray) -> np.ndarray:
        """Per-edge probabilities uniform over the allowed choices (rows sum to 1)."""
        return m / m.sum(axis=1, keepdims=True)

    # --- drawing ------------------------------------------------------------------------------
    def draw(self, p: np.ndarray, rng: np.random.Generator) -> tuple[int, ...]:
        """Independent per-edge choices from ``p`` (rows sum to 1), conditioned on the result
        being an architecture; here every combination is one. One uniform number per edge,
        inverted through the row's cumulative distribution."""
        u = rng.random(self.n_edges)
        cum = np.cumsum(p, axis=1)
        cum[:, -1] = 1.0  # guard against rounding
        out = []
        for e in range(self.n_edges):
            k = int(np.searchsorted(cum[e], u[e], side="right"))
            if p[e, k] <= 0:  # rounding put u past the last positive entry
                k = int(np.flatnonzero(p[e] > 0)[-1])
            out.append(k)
        return tuple(out)

    def random_config(self, m: np.ndarray, rng: np.random.Generator) -> tuple[int, ...]:
        """A random architecture of ``m``, uniformly (an allowed choice per edge, independently)."""
        return tuple(int(rng.choice(np.flatnonzero(m[e]))) for e in range(self.n_edges))

    def set_choice(self, idx: Sequence[int], edge: int, k: int, m: np.ndarray,
                   rng: np.random.Generator) -> tuple[int, ...]:
        """``idx`` with operation ``k`` on ``edge``, other edges changed as little as validity
        requires (choices drawn from ``rng`` within ``m``); here: only ``edge`` changes."""
        out = list(idx)
        out[edge] = int(k)
        return tuple(out)

    # --- latency --------------------------------------------------------------------------------
    def latency_model(self, table: Any) -> Any:
        """The space's latency as per-choice costs (:class:`~nasforge.spaces.latency_model.AdditiveLatency`)
        from ``table``. Here: a mapping of architectures (or their strings) to milliseconds, fitted
        by least squares with one cost per (edge, operation); only where every combination of
        choices is an architecture. Spaces with a lookup table of their own pieces override this."""
        from nasforge.spaces.latency_model import fit_additive

        if not isinstance(table, Mapping):
            raise NasforgeError(f"space {self.name!r} builds its latency model from a mapping of architectures to "
                                f"milliseconds, got {type(table).__name__}")
        if not self.independent:
            raise NasforgeError(f"space {self.name!r} has no additive latency model (its choices are tied together)")
        rows = [(self.coerce_indices(a), float(v)) for a, v in table.items()]
        if not rows:
            raise NasforgeError(f"the latency table for space {self.name!r} is empty")
        idx = np.array([r[0] for r in rows], dtype=np.int64)
        return fit_additive(idx, np.array([r[1] for r in rows]), [len(o) for o in self.ops],
                            source=f"{self.name} per-operation fit of {len(rows)} architectures")

    # --- networks -----------------------------------------------------------------------------
    @abstractmethod
    def build(self, allowed: Any = None, **net: Any) -> Supernet:
        """The supernet module with network settings ``net``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.n_edges} edges x {self.n_ops} ops)"


def default_layout() -> SupernetLayout:
    """The layout of :data:`DEFAULT_SPACE` (what samplers assume when given no supernet)."""
    from nasforge.spaces import get_space

    return get_space(DEFAULT_SPACE).supernet_layout()


class Supernet(nn.Module, metaclass=ABCMeta):
    """Base class of the weight-sharing supernets (see the module docstring).

    Subclasses set :attr:`layout`, build their modules in ``__init__`` (after calling this
    constructor with ``allowed``) and implement :meth:`forward_path`, :meth:`forward_weights`,
    :meth:`candidate_modules`, :meth:`blocks` and :meth:`net_config`; :meth:`path_state_dict` and
    :meth:`extract` where the space's network matches.

    ``forward(x, arch=None, weights=None)``: a path when ``arch`` is given, the mixture when
    ``weights`` is, otherwise the path fixed with :meth:`set_arch` (so the supernet can be handed
    to code that calls ``model(x)``).
    """

    layout: ClassVar[SupernetLayout]
    #: number of cells that may take their own copy of the mixture weights
    n_cells: int = 1

    def __init__(self, allowed: Any = None) -> None:
        super().__init__()
        self.allowed: np.ndarray = self.layout.mask(allowed)
        self._fixed: tuple[int, ...] | None = None

    # --- to implement -------------------------------------------------------------------------
    @abstractmethod
    def forward_path(self, x: Tensor, idx: tuple[int, ...]) -> Tensor:
        """The output of the path with per-edge operation indices ``idx`` (already checked)."""

    @abstractmethod
    def forward_weights(self, x: Tensor, weights: Tensor) -> Tensor:
        """The weighted mixture; ``weights`` has shape (n_cells, edges, width) (already checked)."""

    @abstractmethod
    def candidate_modules(self, edge: int, k: int) -> list[nn.Module]:
        """The modules of operation ``k`` on ``edge``, one per cell that has the edge."""

    @abstractmethod
    def blocks(self) -> list[nn.Module]:
        """The blocks whose outputs make a layer-wise feature profile (every one takes part in
        every forward pass and returns one tensor)."""

    @abstractmethod
    def net_config(self) -> dict[str, Any]:
        """The network settings (constructor keywords other than ``allowed``)."""

    def path_state_dict(self, arch: Any) -> dict[str, Tensor]:
        """The state dict of the space's stand-alone network for ``arch`` (its own keys)."""
        raise NasforgeError(f"the {self.layout.name} supernet cannot hand its weights to a stand-alone network")

    def extract(self, arch: Any) -> nn.Module:
        """The space's stand-alone network for ``arch`` holding copies of the inherited weights."""
        raise NasforgeError(f"the {self.layout.name} supernet cannot extract a stand-alone network")

    # --- configuration ------------------------------------------------------------------------
    @property
    def space(self) -> Any:
        return self.layout.space

    @property
    def config(self) -> dict[str, Any]:
        """Everything that rebuilds the module (:func:`supernet_from_config`): the space, the
        network settings and the allowed operations as per-edge name lists."""
        return {"space": self.layout.name, **self.net_config(), "allowed": self.allowed_ops()}

    def allowed_ops(self) -> list[list[str]]:
        """Per edge, the names of the allowed operations."""
        return [[self.layout.ops[e][k] for k in np.flatnonzero(self.allowed[e])] for e in range(self.layout.n_edges)]

    def restrict(self, allowed: Any) -> Supernet:
        """Restrict the allowed operations in place (to a subset of the current ones)."""
        m = self.layout.mask(allowed)
        if (m & ~self.allowed).any():
            asked = [[self.layout.ops[e][k] for k in np.flatnonzero(r)] for e, r in enumerate(m)]
            raise NasforgeError(f"a restriction can only remove operations: {self.allowed_ops()} does not contain {asked}")
        self.allowed = m
        return self

    def indices(self, arch: Any) -> tuple[int, ...]:
        """Per-edge operation indices of an architecture, its string, or an index tuple."""
        return self.layout.coerce_indices(arch)

    def to_arch(self, idx: Sequence[int]) -> Any:
        """The architecture of an index tuple."""
        return self.layout.arch(self.layout.coerce_indices(tuple(idx)))

    def contains(self, arch: Any) -> bool:
        """Whether every operation of ``arch`` is allowed here."""
        idx = self.indices(arch)
        return bool(all(self.allowed[e, k] for e, k in enumerate(idx)))

    def size(self) -> int:
        """Number of architectures this (possibly restricted) supernet holds."""
        return self.layout.count(self.allowed)

    def iter_archs(self) -> Iterator[Any]:
        """Every architecture this supernet holds (lexicographic order of the indices)."""
        for idx in self.layout.iter_indices(self.allowed):
            yield self.layout.arch(idx)

    def supernet_for(self, arch: Any) -> Supernet:
        """The supernet that scores ``arch``: this one (an error if it does not hold ``arch``).
        :class:`~nasforge.oneshot.fewshot.SplitSupernet` has the same method, so estimators take
        either."""
        if not self.contains(arch):
            shown = self.space.format(self.layout.arch(self.indices(arch)))
            raise NasforgeError(f"architecture {shown} is outside this supernet "
                                f"(allowed operations per edge: {self.allowed_ops()})")
        return self

    def set_arch(self, arch: Any | None) -> Supernet:
        """Fix the path that ``forward(x)`` runs when no ``arch``/``weights`` is passed."""
        self._fixed = None if arch is None else self.indices(arch)
        return self

    # --- forward ------------------------------------------------------------------------------
    def check_weights(self, weights: Tensor) -> Tensor:
        """``weights`` as (n_cells, edges, width); a (edges, width) tensor is shared by all cells."""
        e, k = self.layout.n_edges, self.layout.n_ops
        shape = tuple(weights.shape)
        if shape == (e, k):
            return weights.unsqueeze(0).expand(self.n_cells, e, k)
        if shape == (self.n_cells, e, k):
            return weights
        raise NasforgeError(f"mixture weights must have shape ({e}, {k}) (edges x operations) or "
                            f"({self.n_cells}, {e}, {k}) (one copy per cell), got {shape}")

    def forward(self, x: Tensor, arch: Any = None, weights: Tensor | None = None) -> Tensor:
        if arch is not None and weights is not None:
            raise NasforgeError("pass either arch (one path) or weights (the mixture), not both")
        if weights is not None:
            return self.forward_weights(x, self.check_weights(weights))
        idx = self.indices(arch) if arch is not None else self._fixed
        if idx is None:
            raise NasforgeError("no path: pass arch=..., weights=..., or fix one with set_arch()")
        return self.forward_path(x, idx)

    # --- weights ------------------------------------------------------------------------------
    def op_parameters(self, edge: int, op: int | str) -> list[nn.Parameter]:
        """The weights of operation ``op`` (name or index) on ``edge``, in every cell (empty for
        parameter-free operations)."""
        k = self.layout.op_index(edge, op)
        return [p for m in self.candidate_modules(edge, k) for p in m.parameters()]

    def edge_parameters(self, edge: int) -> list[nn.Parameter]:
        """The weights of every candidate operation on ``edge`` (all cells)."""
        return [p for k in range(len(self.layout.ops[edge])) for p in self.op_parameters(edge, k)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Weights that every path uses (stem, fixed blocks, head)."""
        cand = {id(p) for e in range(self.layout.n_edges) for p in self.edge_parameters(e)}
        return [p for p in self.parameters() if id(p) not in cand]

    def extra_repr(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.net_config().items())
        full = self.layout.count(self.layout.mask(None))
        restricted = "" if np.array_equal(self.allowed, self.layout.mask(None)) else f", {self.size()} of {full} archs"
        return settings + restricted


def supernet_from_config(config: Mapping[str, Any]) -> Supernet:
    """Rebuild a supernet from its :attr:`Supernet.config` (weights not included); a config
    without ``space`` is one of :data:`DEFAULT_SPACE`, as written before spaces owned supernets."""
    from nasforge.spaces import get_space

    cfg = dict(config)
    space = cfg.pop("space", DEFAULT_SPACE)
    return get_space(space).supernet(**cfg)
