"""The NAS-Bench-201 supernet: every operation on every edge, weights shared by all 15,625 cells.

The macro skeleton (stem, three stages of ``N`` cells, two residual reductions, head) is the one
of :class:`~nasforge.spaces.nb201_net.NB201Network`, built from the same modules, so one sampled
path computes exactly what the standalone network computes with the same weights
(:meth:`NB201Supernet.extract` copies them over; a test checks the outputs agree).

Layout (:data:`LAYOUT`): the 6 cell edges in the official order, each choosing one of the 5
operations of :data:`~nasforge.spaces.nb201.OPS`; every combination is a cell. The forward pass
runs either

- **one path**: ``model(x, arch)`` with an architecture (an :class:`NB201Arch`, its string, or
  6 operation indices); the operations of the other 4 candidates on each edge are not touched;
- **a weighted mixture**: ``model(x, weights=w)`` with ``w`` of shape ``(6, 5)`` (edge x
  operation) or ``(3N, 6, 5)`` (one copy per search cell): each edge outputs
  ``sum_k w[e, k] * op_k(input)``; ``none`` contributes nothing (no computation, no gradient).

**Partial channels** (``partial=k`` > 1, PC-DARTS, Xu et al., ICLR 2020; used by DrNAS's NB201
search with k = 4): on every edge only the first ``C/k`` channels of the input go through the
operations (built ``C/k`` wide); the other channels bypass them, the two parts are concatenated
and the channels shuffled in ``k`` groups. Such a supernet has no stand-alone network to hand its
weights to (its operations are narrower than the cell's); it serves differentiable search.

Layer names: ``stem``, ``cells.<i>.edges.<e>.<k>`` (operation ``k`` of edge ``e``; a reduction
block keeps the official ``conv_a``/``conv_b``/``downsample``), ``lastact``, ``classifier``.
Replacing ``edges.<e>.<k>.`` with ``layers.<e>.`` gives the official NB201 key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.spaces.nb201 import EDGES, OPS, NB201Arch, NB201Space, check_network_config
from nasforge.spaces.nb201_net import NB201Network, _make_op, build_backbone
from nasforge.spaces.supernet import Supernet, SupernetLayout

__all__ = ["NB201Layout", "NB201Supernet", "SearchCell", "LAYOUT", "arch_indices", "indices_arch", "N_EDGES",
           "N_OPS", "PARAM_OPS"]

N_EDGES = len(EDGES)
N_OPS = len(OPS)
_NONE = OPS.index("none")
#: indices of the operations that hold weights (the two convolutions)
PARAM_OPS: tuple[int, ...] = tuple(i for i, op in enumerate(OPS) if op.startswith("nor_conv"))
_OP_INDEX = {op: i for i, op in enumerate(OPS)}


class NB201Layout(SupernetLayout):
    """NB201 as decision points: 6 edges (``0->1``, ``0->2``, ``1->2``, ``0->3``, ``1->3``,
    ``2->3``), 5 operations each, every combination a cell."""

    cpu_net = {"C": 8, "N": 1}
    net_keys = ("C", "N", "partial")
    noun = "cells"

    def __init__(self) -> None:
        super().__init__(NB201Space(), [f"{s}->{d}" for s, d in EDGES], [OPS] * N_EDGES)

    def indices(self, arch: Any) -> tuple[int, ...]:
        return tuple(_OP_INDEX[op] for op in self.space.coerce(arch))

    def arch(self, idx: Sequence[int]) -> NB201Arch:
        return self.space.coerce(tuple(OPS[int(k)] for k in idx))

    def build(self, allowed: Any = None, **net: Any) -> NB201Supernet:
        return NB201Supernet(allowed=allowed, **net)


#: the NB201 supernet layout (one shared instance)
LAYOUT = NB201Layout()


def arch_indices(arch: Any) -> tuple[int, ...]:
    """The 6 operation indices (into ``OPS``) of an architecture, its string, or 6 indices."""
    return LAYOUT.coerce_indices(arch)


def indices_arch(idx: Sequence[int]) -> NB201Arch:
    """The architecture of 6 operation indices."""
    return LAYOUT.arch(LAYOUT.coerce_indices(tuple(idx)))


class SearchCell(nn.Module):
    """An NB201 cell holding all 5 operations on each of its 6 edges.

    ``forward_path`` follows :class:`~nasforge.spaces.nb201_net.InferCell` step by step (``none``
    edges skipped, a node without any input is the zero tensor), so the numbers are identical.
    """

    def __init__(self, C: int, partial: int = 1) -> None:
        super().__init__()
        self.partial = int(partial)
        width = C // self.partial
        self.edges = nn.ModuleList([nn.ModuleList([_make_op(op, width) for op in OPS]) for _ in EDGES])

    def _edge(self, e: int, x: Tensor, ops: Sequence[tuple[int, Tensor | None]]) -> Tensor | None:
        """Edge ``e`` on input ``x``: the sum of ``w * op_k(x)`` over ``ops`` (``w`` None: 1);
        with partial channels only the first ``C/k`` channels go through the operations and the
        rest bypass them (concatenated, then shuffled in ``k`` groups). None when nothing is
        computed and nothing bypasses."""
        k = self.partial
        inp = x if k == 1 else x[:, : x.shape[1] // k]
        total: Tensor | None = None
        for op, w in ops:
            y = self.edges[e][op](inp)
            term = y if w is None else w * y
            total = term if total is None else total + term
        if k == 1:
            return total
        if total is None:
            total = torch.zeros_like(inp)
        out = torch.cat([total, x[:, x.shape[1] // k:]], dim=1)
        b, c, h, w_ = out.shape
        return out.view(b, k, c // k, h, w_).transpose(1, 2).reshape(b, c, h, w_)

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
            if k == _NONE and self.partial == 1:
                continue
            inp = nodes[src]
            if inp is None:
                inp = torch.zeros_like(x)
            y = self._edge(e, inp, [] if k == _NONE else [(k, None)])
            assert y is not None
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
                # none contributes w * 0: nothing to compute, no gradient to w
                term = self._edge(e, nodes[src], [(k, weights[e, k]) for k in range(N_OPS) if k != _NONE])
                if term is not None:
                    total = term if total is None else total + term
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[3]


class NB201Supernet(Supernet):
    """The weight-sharing NB201 supernet (see the module docstring).

    ``C`` channels in the first stage (doubled at each reduction), ``N`` search cells per stage;
    ``num_classes``, ``in_channels`` and ``input_size`` as for
    :class:`~nasforge.spaces.nb201_net.NB201Network`. ``allowed`` restricts the operations per
    edge (a (6, 5) boolean mask or 6 lists of operation names); ``None`` allows all.
    """

    layout = LAYOUT

    def __init__(
        self,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
        allowed: Any = None,
        partial: int = 1,
    ) -> None:
        check_network_config(C, N, num_classes, in_channels, input_size)
        if isinstance(partial, bool) or not isinstance(partial, int) or partial < 1 or C % partial:
            raise NasforgeError(f"partial (channels through the operations: C/partial) must be a whole number >= 1 "
                                f"that divides C={C}, got {partial!r}")
        super().__init__(allowed)
        self.C, self.N, self.num_classes = C, N, num_classes
        self.in_channels, self.input_size, self.partial = in_channels, input_size, partial
        build_backbone(self, C, N, num_classes, in_channels, lambda c: SearchCell(c, partial))
        self.n_cells = len(self.search_cells())

    def net_config(self) -> dict[str, Any]:
        cfg = {"C": self.C, "N": self.N, "num_classes": self.num_classes, "in_channels": self.in_channels,
               "input_size": self.input_size}
        return cfg if self.partial == 1 else {**cfg, "partial": self.partial}

    def _whole(self) -> None:
        if self.partial != 1:
            raise NasforgeError(f"a partial-channel supernet (partial={self.partial}) has no stand-alone network: "
                                "its operations are narrower than the cell")

    # --- forward ----------------------------------------------------------------------------
    def forward_path(self, x: Tensor, idx: tuple[int, ...]) -> Tensor:
        out = self.stem(x)
        for cell in self.cells:
            out = cell(out, idx) if isinstance(cell, SearchCell) else cell(out)
        out = self.global_pooling(self.lastact(out))
        return self.classifier(torch.flatten(out, 1))

    def forward_weights(self, x: Tensor, weights: Tensor) -> Tensor:
        out = self.stem(x)
        c = 0
        for cell in self.cells:
            if isinstance(cell, SearchCell):
                out = cell(out, weights=weights[c])
                c += 1
            else:
                out = cell(out)
        out = self.global_pooling(self.lastact(out))
        return self.classifier(torch.flatten(out, 1))

    # --- weights ------------------------------------------------------------------------------
    def search_cells(self) -> list[SearchCell]:
        return [c for c in self.cells if isinstance(c, SearchCell)]

    def candidate_modules(self, edge: int, k: int) -> list[nn.Module]:
        return [cell.edges[edge][k] for cell in self.search_cells()]

    def blocks(self) -> list[nn.Module]:
        """Every cell and reduction block."""
        return list(self.cells)

    def path_state_dict(self, arch: Any) -> dict[str, Tensor]:
        """The state dict of the standalone :class:`NB201Network` for ``arch`` (official keys)."""
        self._whole()
        ops = self.indices(arch)
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
        self._whole()
        net = NB201Network(self.to_arch(self.indices(arch)), C=self.C, N=self.N, num_classes=self.num_classes,
                           in_channels=self.in_channels, input_size=self.input_size)
        net.load_state_dict({k: v.clone() for k, v in self.path_state_dict(arch).items()}, strict=True)
        net.train(self.training)
        return net
