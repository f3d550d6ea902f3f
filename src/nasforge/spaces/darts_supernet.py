"""The DARTS search supernet (Liu, Simonyan & Yang, ICLR 2019): every operation on every possible edge.

Layout (:data:`LAYOUT`): 28 decision points, the 14 possible edges ``j -> i`` (input ``j`` into
intermediate node ``i``, in the DARTS supernet's order) of the normal cell, then those of the
reduction cell; each chooses among ``none`` and the 7 operations of
:data:`~nasforge.spaces.darts.OPS` (index 0 is ``none``, index ``k`` the ``k-1``-th operation). A
genotype chooses ``none`` on the edges it does not use. Not every index tuple is a genotype: each
node keeps exactly two inputs, so ``none`` is *structural* and the layout draws the two inputs of
a node from the conditional distribution (:meth:`DartsLayout.draw`); a restricted mask is pruned
to the choices some genotype of it uses (``none`` is never allowed on the two edges of node 2,
which every genotype uses).

The module follows the DARTS search network (``model_search.Network``): a 3x3 convolution stem to
``stem_multiplier * C`` channels, ``layers`` cells with reductions at ``layers // 3`` and
``2 * layers // 3``, each cell preprocessing its two inputs and summing, for node ``i``, the edges
from all earlier nodes; global pooling and a linear classifier. Its operations are those of the
evaluation network (:mod:`~nasforge.spaces.darts_net`), so with the default ``affine=True`` a path
is exactly :class:`~nasforge.spaces.darts_net.DartsNetwork` (no auxiliary head, no drop-path) with
the same weights and :meth:`DartsSupernet.extract` hands them over. ``affine=False`` gives the
DARTS search code's operations instead (BatchNorm without scale and shift, pooling followed by a
BatchNorm); such a supernet cannot extract.

Forward: ``model(x, arch)`` runs only the genotype's 8 operations per cell; ``model(x, weights=w)``
with ``w`` of shape (28, 8) is the DARTS mixed operation on every edge (``none`` contributes
nothing), with ``w`` of shape (``layers``, 28, 8) each cell reads its own copy (rows of its type).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.spaces.darts import CELL_EDGES, CELLS, CONCAT, OPS, STEPS, DartsArch, DartsSpace
from nasforge.spaces.darts_net import (DartsNetwork, FactorizedReduce, ReLUConvBN, _check_config, _reduction_layers,
                                       make_op)
from nasforge.spaces.supernet import Supernet, SupernetLayout

__all__ = ["DartsLayout", "DartsSupernet", "DartsSearchCell", "LAYOUT", "SUPERNET_OPS"]

#: the candidates of every supernet edge: ``none`` (index 0), then the 7 operations
SUPERNET_OPS: tuple[str, ...] = ("none", *OPS)
_CELL_E = len(CELL_EDGES)
_EDGE_INDEX = {e: k for k, e in enumerate(CELL_EDGES)}


class DartsLayout(SupernetLayout):
    """DARTS as decision points (see the module docstring): 2 x 14 edges x 8 choices, two
    non-``none`` inputs per node."""

    cpu_net = {"C": 4, "layers": 5}
    net_keys = ("C", "layers", "stem_multiplier", "affine")

    def __init__(self) -> None:
        names = [f"{cell} {j}->{i}" for cell in CELLS for j, i in CELL_EDGES]
        n = len(names)
        super().__init__(DartsSpace(), names, [SUPERNET_OPS] * n, structural=[("none",)] * n)
        #: per cell and intermediate node: (cell index, node, its incoming supernet edges by input)
        self.groups: list[tuple[int, int, list[int]]] = [
            (c, i, [c * _CELL_E + _EDGE_INDEX[(j, i)] for j in range(i)])
            for c in range(len(CELLS)) for i in range(2, 2 + STEPS)]

    # --- architectures <-> indices -------------------------------------------------------------
    def indices(self, arch: Any) -> tuple[int, ...]:
        arch = self.space.coerce(arch)
        idx = [0] * self.n_edges
        for c, name in enumerate(CELLS):
            for k, (op, src) in enumerate(arch.cell(name)):
                idx[c * _CELL_E + _EDGE_INDEX[(src, 2 + k // 2)]] = OPS.index(op) + 1
        return tuple(idx)

    def _inputs(self, idx: Sequence[int]) -> list[int]:
        return [sum(1 for e in edges if idx[e] != 0) for _c, _i, edges in self.groups]

    def valid(self, idx: Sequence[int]) -> bool:
        return all(n == 2 for n in self._inputs(idx))

    def why_invalid(self, idx: Sequence[int]) -> str:
        for (c, i, _edges), n in zip(self.groups, self._inputs(idx)):
            if n != 2:
                return f"node {i} of the {CELLS[c]} cell has {n} input(s) other than none; every node takes exactly 2"
        return "not an architecture"

    def arch(self, idx: Sequence[int]) -> DartsArch:
        if not self.valid(idx):
            raise NasforgeError(f"indices {tuple(idx)} are not a DARTS genotype: {self.why_invalid(idx)}")
        cells: list[list[tuple[str, int]]] = [[], []]
        for c, _i, edges in self.groups:
            cells[c] += [(OPS[idx[e] - 1], j) for j, e in enumerate(edges) if idx[e] != 0]
        return DartsArch(tuple(cells[0]), tuple(cells[1]))

    # --- masks ---------------------------------------------------------------------------------
    @staticmethod
    def _pairs(m: np.ndarray, edges: list[int]) -> list[tuple[int, int]]:
        """The input pairs (positions in ``edges``) a node may take under ``m``: both edges allow
        an operation, every other edge allows ``none``."""
        ops = [bool(m[e, 1:].any()) for e in edges]
        off = [bool(m[e, 0]) for e in edges]
        return [(a, b) for a, b in itertools.combinations(range(len(edges)), 2)
                if ops[a] and ops[b] and all(off[x] for x in range(len(edges)) if x not in (a, b))]

    def prune(self, m: np.ndarray) -> np.ndarray:
        m = m & self.candidates
        out = np.zeros_like(m)
        for _c, _i, edges in self.groups:
            pairs = self._pairs(m, edges)
            for pos, e in enumerate(edges):
                if any(pos in p for p in pairs):
                    out[e, 1:] = m[e, 1:]
                if m[e, 0] and any(pos not in p for p in pairs):
                    out[e, 0] = True
        return out

    def count(self, m: np.ndarray) -> int:
        m = np.asarray(m, dtype=bool)
        total = 1
        for _c, _i, edges in self.groups:
            n = [int(m[e, 1:].sum()) for e in edges]
            total *= sum(n[a] * n[b] for a, b in self._pairs(m, edges))
        return total

    def iter_indices(self, m: np.ndarray) -> Iterator[tuple[int, ...]]:
        """Every genotype of the mask as indices: node by node (normal cell first), each node's
        input pairs in order and their operations in index order; the last node varies fastest."""
        m = np.asarray(m, dtype=bool)
        options = []
        for _c, _i, edges in self.groups:
            node = []
            for a, b in self._pairs(m, edges):
                for ka in np.flatnonzero(m[edges[a], 1:]) + 1:
                    for kb in np.flatnonzero(m[edges[b], 1:]) + 1:
                        node.append(((edges[a], int(ka)), (edges[b], int(kb))))
            options.append(node)
        for choice in itertools.product(*options):
            idx = [0] * self.n_edges
            for pair in choice:
                for e, k in pair:
                    idx[e] = k
            yield tuple(idx)

    # --- drawing -------------------------------------------------------------------------------
    def draw(self, p: np.ndarray, rng: np.random.Generator) -> tuple[int, ...]:
        """Independent per-edge choices from ``p`` conditioned on every node having two inputs.

        For node ``i`` with incoming edges ``E_i``, the pair ``{a, b}`` is drawn with probability
        proportional to ``s_a s_b prod_{e in E_i - {a, b}} p[e, none]`` (``s_e``: the edge's total
        probability of an operation), then each of the two edges' operation from its row without
        ``none``. With ``p`` uniform over a mask, every genotype of the mask is equally likely.
        """
        idx = [0] * self.n_edges
        for c, i, edges in self.groups:
            s = [float(p[e, 1:].sum()) for e in edges]
            z = [float(p[e, 0]) for e in edges]
            pairs = list(itertools.combinations(range(len(edges)), 2))
            w = np.array([s[a] * s[b] * float(np.prod([z[x] for x in range(len(edges)) if x not in (a, b)]))
                          for a, b in pairs])
            tot = w.sum()
            if not tot > 0:
                raise NasforgeError(f"the operation probabilities give node {i} of the {CELLS[c]} cell no pair of inputs")
            j = min(int(np.searchsorted(np.cumsum(w) / tot, rng.random(), side="right")), len(pairs) - 1)
            while w[j] <= 0:  # rounding past the last positive weight
                j -= 1
            for pos in pairs[j]:
                e = edges[pos]
                q = p[e, 1:] / s[pos]
                k = min(int(np.searchsorted(np.cumsum(q), rng.random(), side="right")), len(q) - 1)
                while q[k] <= 0:
                    k -= 1
                idx[e] = k + 1
        return tuple(idx)

    def random_config(self, m: np.ndarray, rng: np.random.Generator) -> tuple[int, ...]:
        return self.draw(self.uniform(m), rng)

    def set_choice(self, idx: Sequence[int], edge: int, k: int, m: np.ndarray,
                   rng: np.random.Generator) -> tuple[int, ...]:
        """``idx`` with choice ``k`` on ``edge``; when that switches the edge on or off, one other
        input of the same node is switched off or on (drawn from ``rng`` within ``m``), so only
        that node changes."""
        out = list(idx)
        was, out[edge] = out[edge], int(k)
        if (was == 0) == (k == 0):
            return tuple(out)
        edges = next(g for _c, _i, g in self.groups if edge in g)
        if k != 0:  # three inputs now: switch one of the other two off
            cand = [e for e in edges if e != edge and out[e] != 0 and m[e, 0]]
            if not cand:
                raise NasforgeError(f"cannot switch {self.edges[edge]} on within the allowed operations")
            out[cand[int(rng.integers(len(cand)))]] = 0
        else:  # one input left: switch another edge on
            cand = [e for e in edges if e != edge and out[e] == 0 and m[e, 1:].any()]
            if not cand:
                raise NasforgeError(f"cannot switch {self.edges[edge]} off within the allowed operations")
            e = cand[int(rng.integers(len(cand)))]
            out[e] = int(rng.choice(np.flatnonzero(m[e, 1:]))) + 1
        return tuple(out)

    def build(self, allowed: Any = None, **net: Any) -> DartsSupernet:
        return DartsSupernet(allowed=allowed, **net)


#: the DARTS supernet layout (one shared instance)
LAYOUT = DartsLayout()


class _Zero(nn.Module):
    """The ``none`` candidate: zeros of the edge's output shape (never run by the supernet,
    which skips ``none``; kept so that candidate ``k`` sits at index ``k``)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class DartsSearchCell(nn.Module):
    """A DARTS cell with every candidate on each of its 14 possible edges (``edges.<e>.<k>``)."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, affine: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0: nn.Module = (FactorizedReduce(c_pp, c, affine) if reduction_prev
                                       else ReLUConvBN(c_pp, c, 1, 1, 0, affine))
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine)
        edges = []
        for j, _i in CELL_EDGES:
            stride = 2 if reduction and j < 2 else 1
            cands: list[nn.Module] = [_Zero(stride)]
            for op in OPS:
                m = make_op(op, c, stride, affine)
                if not affine and "pool" in op:  # the DARTS search code normalises pooled outputs
                    m = nn.Sequential(m, nn.BatchNorm2d(c, affine=False))
                cands.append(m)
            edges.append(nn.ModuleList(cands))
        self.edges = nn.ModuleList(edges)
        self.multiplier = len(CONCAT)

    def forward(self, s0: Tensor, s1: Tensor, sel: Sequence[int] | None = None,
                weights: Tensor | None = None) -> Tensor:
        """One path (``sel``: the cell's 14 choices) or the mixture (``weights``: (14, 8))."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(2, 2 + STEPS):
            total: Tensor | None = None
            for j in range(i):
                e = _EDGE_INDEX[(j, i)]
                if weights is None:
                    assert sel is not None
                    if sel[e] == 0:
                        continue
                    h = self.edges[e][sel[e]](states[j])
                    total = h if total is None else total + h
                else:
                    for k in range(1, len(SUPERNET_OPS)):  # none adds w * 0: skipped
                        h = weights[e, k] * self.edges[e][k](states[j])
                        total = h if total is None else total + h
            if total is None:
                raise NasforgeError(f"node {i} has no input")
            states.append(total)
        return torch.cat(states[2:], dim=1)


class DartsSupernet(Supernet):
    """The DARTS search supernet (see the module docstring).

    ``C`` channels in the first cells (doubled at each reduction), ``layers`` cells (8 in the DARTS
    search), ``stem_multiplier``, ``num_classes``, ``in_channels`` and ``input_size`` as for
    :class:`~nasforge.spaces.darts_net.DartsNetwork`; ``affine`` chooses the evaluation network's
    operations (True, extractable) or the DARTS search code's (False). ``allowed``: a (28, 8)
    mask or 28 lists of operation names.
    """

    layout = LAYOUT

    def __init__(self, C: int = 16, layers: int = 8, num_classes: int = 10, stem_multiplier: int = 3,
                 in_channels: int = 3, input_size: int = 32, affine: bool = True, allowed: Any = None) -> None:
        _check_config(C, layers, num_classes, stem_multiplier, in_channels, input_size)
        if not isinstance(affine, bool):
            raise NasforgeError(f"affine must be true or false, got {affine!r}")
        super().__init__(allowed)
        self.C, self.layers, self.num_classes = C, layers, num_classes
        self.stem_multiplier, self.in_channels, self.input_size = stem_multiplier, in_channels, input_size
        self.affine = affine
        c_cur = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_cur, 3, padding=1, bias=False), nn.BatchNorm2d(c_cur))
        c_pp, c_p, c_cur = c_cur, c_cur, C
        reductions = _reduction_layers(layers)
        cells: list[DartsSearchCell] = []
        reduction_prev = False
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c_cur *= 2
            cell = DartsSearchCell(c_pp, c_p, c_cur, reduction, reduction_prev, affine)
            cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_cur
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        self.n_cells = layers

    def net_config(self) -> dict[str, Any]:
        return {"C": self.C, "layers": self.layers, "num_classes": self.num_classes,
                "stem_multiplier": self.stem_multiplier, "in_channels": self.in_channels,
                "input_size": self.input_size, "affine": self.affine}

    # --- forward ------------------------------------------------------------------------------
    def _head(self, s1: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))

    def forward_path(self, x: Tensor, idx: tuple[int, ...]) -> Tensor:
        s0 = s1 = self.stem(x)
        normal, reduce = idx[:_CELL_E], idx[_CELL_E:]
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, sel=reduce if cell.reduction else normal)
        return self._head(s1)

    def forward_weights(self, x: Tensor, weights: Tensor) -> Tensor:
        s0 = s1 = self.stem(x)
        for c, cell in enumerate(self.cells):
            w = weights[c, _CELL_E:] if cell.reduction else weights[c, :_CELL_E]
            s0, s1 = s1, cell(s0, s1, weights=w)
        return self._head(s1)

    # --- weights ------------------------------------------------------------------------------
    def candidate_modules(self, edge: int, k: int) -> list[nn.Module]:
        reduction, e = divmod(edge, _CELL_E)
        return [cell.edges[e][k] for cell in self.cells if cell.reduction == bool(reduction)]

    def blocks(self) -> list[nn.Module]:
        """Every cell."""
        return list(self.cells)

    def path_state_dict(self, arch: Any) -> dict[str, Tensor]:
        """The state dict of :class:`~nasforge.spaces.darts_net.DartsNetwork` for ``arch`` (no
        auxiliary head): edge ``j -> i`` of a cell becomes the genotype edge at the same place."""
        if not self.affine:
            raise NasforgeError("a supernet with affine=False (the DARTS search operations) has no stand-alone "
                                "network to hand its weights to; build it with affine=True")
        idx = self.indices(arch)
        genotype = self.layout.arch(idx)
        position = []  # per cell type: supernet edge -> index in the genotype's edge list
        for name in CELLS:
            where = {(src, 2 + k // 2): k for k, (_op, src) in enumerate(genotype.cell(name))}
            position.append({e: where.get(pair) for e, pair in enumerate(CELL_EDGES)})
        out: dict[str, Tensor] = {}
        for key, value in self.state_dict().items():
            parts = key.split(".")
            if len(parts) > 4 and parts[0] == "cells" and parts[2] == "edges":
                cell = self.cells[int(parts[1])]
                e, k = int(parts[3]), int(parts[4])
                c = 1 if cell.reduction else 0
                if k != idx[c * _CELL_E + e]:
                    continue
                key = ".".join(["cells", parts[1], "_ops", str(position[c][e])] + parts[5:])
            out[key] = value
        return out

    def extract(self, arch: Any) -> DartsNetwork:
        """A stand-alone :class:`~nasforge.spaces.darts_net.DartsNetwork` for ``arch`` (no auxiliary
        head, no drop-path) holding copies of the inherited weights."""
        sd = self.path_state_dict(arch)
        net = DartsNetwork(self.to_arch(self.indices(arch)), C=self.C, layers=self.layers,
                           num_classes=self.num_classes, stem_multiplier=self.stem_multiplier,
                           in_channels=self.in_channels, input_size=self.input_size)
        net.load_state_dict({k: v.clone() for k, v in sd.items()}, strict=True)
        net.train(self.training)
        return net
