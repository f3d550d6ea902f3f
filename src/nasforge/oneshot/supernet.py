"""The NAS-Bench-201 supernet: every operation on every edge, weights shared by all 15,625 cells.

The macro skeleton (stem, three stages of ``N`` cells, two residual reductions, head) is the one
of :class:`~nasforge.spaces.nb201_net.NB201Network`, built from the same modules, so one sampled
path computes exactly what the standalone network computes with the same weights
(:meth:`NB201Supernet.extract` copies them over; a test checks the outputs agree).

The forward pass runs either

- **one path**: ``model(x, arch)`` with an architecture (an :class:`NB201Arch`, its string, or
  6 operation indices); the operations of the other 4 candidates on each edge are not touched.
  This is what single-path training (SPOS, FairNAS, PA&DA) and inherited-weight evaluation use;
- **a weighted mixture**: ``model(x, weights=w)`` with ``w`` of shape ``(6, 5)`` (edge x
  operation in :data:`~nasforge.spaces.nb201.OPS` order): each edge outputs
  ``sum_k w[e, k] * op_k(input)``. Differentiable search (DARTS and its repairs) passes
  ``softmax(alpha)`` here; a one-hot ``w`` gives the path forward.

Layer names: ``stem``, ``cells.<i>.edges.<e>.<k>`` (operation ``k`` of edge ``e``; a reduction
block keeps the official ``conv_a``/``conv_b``/``downsample``), ``lastact``, ``classifier``.
Replacing ``edges.<e>.<k>.`` with ``layers.<e>.`` gives the official NB201 key.

A supernet may be *restricted* (``allowed``): per edge, the operations its architectures may use.
Few-shot splitting (:mod:`nasforge.oneshot.fewshot`) makes sub-supernets that way; samplers then
draw only allowed operations, and :meth:`NB201Supernet.contains` tells whether a cell belongs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.spaces.nb201 import EDGES, OPS, NB201Arch, NB201Space, check_network_config
from nasforge.spaces.nb201_net import NB201Network, _make_op, build_backbone

__all__ = ["NB201Supernet", "SearchCell", "arch_indices", "indices_arch", "N_EDGES", "N_OPS", "PARAM_OPS"]

N_EDGES = len(EDGES)
N_OPS = len(OPS)
_NONE = OPS.index("none")
#: indices of the operations that hold weights (the two convolutions)
PARAM_OPS: tuple[int, ...] = tuple(i for i, op in enumerate(OPS) if op.startswith("nor_conv"))
_SPACE = NB201Space()


def arch_indices(arch: Any) -> tuple[int, ...]:
    """The 6 operation indices (into ``OPS``) of an architecture, its string, or 6 indices."""
    if isinstance(arch, (tuple, list, np.ndarray)) and len(arch) == N_EDGES and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in arch
    ):
        idx = tuple(int(v) for v in arch)
        if any(not 0 <= v < N_OPS for v in idx):
            raise NasforgeError(f"operation indices must lie in 0..{N_OPS - 1}, got {idx}")
        return idx
    return tuple(OPS.index(op) for op in _SPACE.coerce(arch))


def indices_arch(idx: Sequence[int]) -> NB201Arch:
    """The architecture of 6 operation indices."""
    return _SPACE.coerce(tuple(OPS[int(i)] for i in idx))


def _allowed_mask(allowed: Any) -> np.ndarray:
    """``allowed`` as a (6, 5) boolean array: None (everything), a mask, or per-edge op names."""
    if allowed is None:
        return np.ones((N_EDGES, N_OPS), dtype=bool)
    if isinstance(allowed, np.ndarray) or isinstance(allowed, Tensor):
        m = np.asarray(allowed, dtype=bool)
        if m.shape != (N_EDGES, N_OPS):
            raise NasforgeError(f"an allowed-operation mask must have shape (6, 5), got {m.shape}")
    else:
        rows = list(allowed)
        if len(rows) != N_EDGES:
            raise NasforgeError(f"allowed operations must be given for 6 edges, got {len(rows)}")
        m = np.zeros((N_EDGES, N_OPS), dtype=bool)
        for e, ops in enumerate(rows):
            for op in ops:
                k = OPS.index(op) if isinstance(op, str) and op in OPS else op
                if not isinstance(k, (int, np.integer)) or not 0 <= int(k) < N_OPS:
                    raise NasforgeError(f"unknown operation {op!r} on edge {e}; allowed: {', '.join(OPS)}")
                m[e, int(k)] = True
    if not m.any(axis=1).all():
        empty = [e for e in range(N_EDGES) if not m[e].any()]
        raise NasforgeError(f"edge(s) {empty} would have no allowed operation")
    return m


class SearchCell(nn.Module):
    """An NB201 cell holding all 5 operations on each of its 6 edges.

    ``forward_path`` follows :class:`~nasforge.spaces.nb201_net.InferCell` step by step (``none``
    edges skipped, a node without any input is the zero tensor), so the numbers are identical.
    """

    def __init__(self, C: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList([nn.ModuleList([_make_op(op, C) for op in OPS]) for _ in EDGES])

    def forward(self, x: Tensor, ops: Sequence[int] | None = None, weights: Tensor | None = None) -> Tensor:
        """One path (``ops``: 6 operation indices) or the mixture (``weights``: (6, 5))."""
        if weights is not None:
            return self.forward_mixture(x, weights)
        if ops is None:
            raise NasforgeError("a search cell needs ops (one path) or weights (the mixture)")
        return self.forward_path(x, ops)

    def forward_path(self, x: Tensor, ops: Sequence[int]) -> Tensor:
        nodes: list[Tensor | None] = [x, None, None, None]
        for e, (src, dst) in enumerate(EDGES):
            k = ops[e]
            if k == _NONE:
                continue
            inp = nodes[src]
            if inp is None:
                inp = torch.zeros_like(x)
            y = self.edges[e][k](inp)
            acc = nodes[dst]
            nodes[dst] = y if acc is None else acc + y
        out = nodes[3]
        return torch.zeros_like(x) if out is None else out

    def forward_mixture(self, x: Tensor, weights: Tensor) -> Tensor:
        nodes: list[Tensor] = [x]
        for dst in range(1, 4):
            total: Tensor | None = None
            for e, (src, d) in enumerate(EDGES):
                if d != dst:
                    continue
                for k in range(N_OPS):
                    if k == _NONE:  # contributes w * 0: nothing to compute, no gradient to w
                        continue
                    term = weights[e, k] * self.edges[e][k](nodes[src])
                    total = term if total is None else total + term
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[3]


class NB201Supernet(nn.Module):
    """The weight-sharing NB201 supernet (see the module docstring).

    ``C`` channels in the first stage (doubled at each reduction), ``N`` search cells per stage;
    ``num_classes``, ``in_channels`` and ``input_size`` as for
    :class:`~nasforge.spaces.nb201_net.NB201Network`. ``allowed`` restricts the operations per
    edge (a (6, 5) boolean mask or 6 lists of operation names); ``None`` allows all.

    ``forward(x, arch=None, weights=None)``: a path when ``arch`` is given, the mixture when
    ``weights`` is, otherwise the path fixed with :meth:`set_arch` (so the supernet can be
    handed to code that calls ``model(x)``).
    """

    def __init__(
        self,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
        allowed: Any = None,
    ) -> None:
        super().__init__()
        check_network_config(C, N, num_classes, in_channels, input_size)
        self.C, self.N, self.num_classes = C, N, num_classes
        self.in_channels, self.input_size = in_channels, input_size
        build_backbone(self, C, N, num_classes, in_channels, SearchCell)
        self.allowed = _allowed_mask(allowed)
        self._fixed: tuple[int, ...] | None = None

    # --- configuration ------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """Constructor settings (``allowed`` as 6 lists of operation names): rebuilds the module."""
        return {"C": self.C, "N": self.N, "num_classes": self.num_classes, "in_channels": self.in_channels,
                "input_size": self.input_size, "allowed": self.allowed_ops()}

    def allowed_ops(self) -> list[list[str]]:
        """Per edge, the names of the allowed operations."""
        return [[OPS[k] for k in range(N_OPS) if self.allowed[e, k]] for e in range(N_EDGES)]

    def restrict(self, allowed: Any) -> NB201Supernet:
        """Restrict the allowed operations in place (must be a subset of the current ones)."""
        m = _allowed_mask(allowed)
        if (m & ~self.allowed).any():
            asked = [[OPS[k] for k in np.flatnonzero(r)] for r in m]
            raise NasforgeError(f"a restriction can only remove operations: {self.allowed_ops()} does not contain {asked}")
        self.allowed = m
        return self

    def contains(self, arch: Any) -> bool:
        """Whether every operation of ``arch`` is allowed here."""
        idx = arch_indices(arch)
        return bool(all(self.allowed[e, k] for e, k in enumerate(idx)))

    def size(self) -> int:
        """Number of cells this (possibly restricted) supernet holds."""
        return int(np.prod(self.allowed.sum(axis=1)))

    def iter_archs(self) -> Iterator[NB201Arch]:
        """Every cell this supernet holds."""
        for a in _SPACE:
            if self.contains(a):
                yield a

    def supernet_for(self, arch: Any) -> NB201Supernet:
        """The supernet that scores ``arch``: this one (an error if it does not hold ``arch``).

        :class:`~nasforge.oneshot.fewshot.SplitSupernet` has the same method, so estimators take
        either.
        """
        if not self.contains(arch):
            raise NasforgeError(f"architecture {indices_arch(arch_indices(arch))} is outside this supernet "
                                f"(allowed operations per edge: {self.allowed_ops()})")
        return self

    def set_arch(self, arch: Any | None) -> NB201Supernet:
        """Fix the path that ``forward(x)`` runs when no ``arch``/``weights`` is passed."""
        self._fixed = None if arch is None else arch_indices(arch)
        return self

    # --- forward ----------------------------------------------------------------------------
    def forward(self, x: Tensor, arch: Any = None, weights: Tensor | None = None) -> Tensor:
        if arch is not None and weights is not None:
            raise NasforgeError("pass either arch (one path) or weights (the mixture), not both")
        out = self.stem(x)
        if weights is not None:
            if tuple(weights.shape) != (N_EDGES, N_OPS):
                raise NasforgeError(f"mixture weights must have shape (6, 5), got {tuple(weights.shape)}")
            for cell in self.cells:
                out = cell(out, weights=weights) if isinstance(cell, SearchCell) else cell(out)
        else:
            ops = arch_indices(arch) if arch is not None else self._fixed
            if ops is None:
                raise NasforgeError("no path: pass arch=..., weights=..., or fix one with set_arch()")
            for cell in self.cells:
                out = cell(out, ops) if isinstance(cell, SearchCell) else cell(out)
        out = self.global_pooling(self.lastact(out))
        return self.classifier(torch.flatten(out, 1))

    # --- weights ------------------------------------------------------------------------------
    def search_cells(self) -> list[SearchCell]:
        return [c for c in self.cells if isinstance(c, SearchCell)]

    def op_parameters(self, edge: int, op: int | str) -> list[nn.Parameter]:
        """The weights of operation ``op`` on ``edge``, in every search cell (empty for
        parameter-free operations)."""
        k = OPS.index(op) if isinstance(op, str) else int(op)
        return [p for cell in self.search_cells() for p in cell.edges[edge][k].parameters()]

    def edge_parameters(self, edge: int) -> list[nn.Parameter]:
        """The weights of every candidate operation on ``edge`` (all search cells)."""
        return [p for k in range(N_OPS) for p in self.op_parameters(edge, k)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Weights that every path uses: stem, reductions, head."""
        cand = {id(p) for e in range(N_EDGES) for p in self.edge_parameters(e)}
        return [p for p in self.parameters() if id(p) not in cand]

    def path_state_dict(self, arch: Any) -> dict[str, Tensor]:
        """The state dict of the standalone :class:`NB201Network` for ``arch`` (official keys)."""
        ops = arch_indices(arch)
        out: dict[str, Tensor] = {}
        for key, value in self.state_dict().items():
            parts = key.split(".")
            if len(parts) > 4 and parts[0] == "cells" and parts[2] == "edges":
                e, k = int(parts[3]), int(parts[4])
                if k != ops[e]:
                    continue
                key = ".".join(["cells", parts[1], "layers", parts[3]] + parts[5:])
            out[key] = value
        return out

    def extract(self, arch: Any) -> NB201Network:
        """A standalone :class:`NB201Network` for ``arch`` holding copies of the inherited weights."""
        net = NB201Network(indices_arch(arch_indices(arch)), C=self.C, N=self.N, num_classes=self.num_classes,
                           in_channels=self.in_channels, input_size=self.input_size)
        missing, unexpected = net.load_state_dict({k: v.clone() for k, v in self.path_state_dict(arch).items()},
                                                  strict=True)
        assert not missing and not unexpected
        net.train(self.training)
        return net

    def extra_repr(self) -> str:
        restricted = "" if self.allowed.all() else f", {self.size()} of 15625 cells"
        return f"C={self.C}, N={self.N}, num_classes={self.num_classes}{restricted}"
