"""The DARTS cell search space (Liu, Simonyan & Yang, ICLR 2019), as NASLib and the paper define it.

An architecture is a pair of cells, a *normal* cell and a *reduction* cell. Each cell has two
inputs (the outputs of the two previous cells, numbered 0 and 1) and four intermediate nodes
(numbered 2 to 5). Intermediate node ``i`` has exactly two incoming edges from two *different*
earlier nodes (``0 .. i-1``), each carrying one of seven operations; the cell output is the
concatenation of the four intermediate nodes. The ``none`` operation of the search supernet is
not part of a discrete architecture.

Architectures are written in the notation of the DARTS code base::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[...], reduce_concat=[2, 3, 4, 5])

with the two edges of node 2 first, then those of node 3, and so on. The order of the two edges
of one node does not matter (their results are summed), so a :class:`DartsArch` always holds them
sorted by ``(input, operation)``; that sorted form is the canonical string.

Size: a node with ``n`` possible inputs has ``C(n, 2) * 7**2`` choices, so a cell has
``(1 * 3 * 6 * 10) * 7**8 = 1,037,664,180`` and the space ``1,037,664,180**2`` (about 1.08e18)
architectures.
"""

from __future__ import annotations

import ast
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.spaces.base import SearchSpace

#: the seven operations of a discrete DARTS cell, in the DARTS code base's order
OPS: tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
_OP_INDEX = {op: i for i, op in enumerate(OPS)}
#: intermediate nodes per cell; each has two input edges
STEPS = 4
EDGES_PER_CELL = 2 * STEPS
#: the cell output: every intermediate node
CONCAT: tuple[int, ...] = tuple(range(2, 2 + STEPS))
CELLS: tuple[str, ...] = ("normal", "reduce")
#: every possible (input node, intermediate node) pair, in the order of the DARTS supernet's edges
CELL_EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for i in range(2, 2 + STEPS) for j in range(i))
_EDGE_INDEX = {e: k for k, e in enumerate(CELL_EDGES)}

Edge = tuple[str, int]  # (operation, input node)
Cell = tuple[Edge, ...]  # 8 edges: node 2's two, node 3's two, ...


def _cell_size() -> int:
    return math.prod(math.comb(node, 2) * len(OPS) ** 2 for node in range(2, 2 + STEPS))


#: number of distinct cells (edge order within a node ignored)
CELL_SIZE = _cell_size()


def _fail(cell: str, message: str) -> NasforgeError:
    return NasforgeError(f"bad DARTS {cell} cell: {message}")


def _normalise_cell(edges: Any, cell: str) -> Cell:
    """Check one cell's edge list and return it with each node's two edges sorted."""
    if isinstance(edges, (str, bytes)) or not isinstance(edges, Iterable):
        raise _fail(cell, f"expected a list of {EDGES_PER_CELL} (operation, input) pairs, got {edges!r}")
    items = list(edges)
    # also accepted: one list of two pairs per node, as some code bases write cells
    if len(items) == STEPS and all(isinstance(x, (list, tuple)) and len(x) == 2
                                   and all(isinstance(y, (list, tuple)) for y in x) for x in items):
        items = [pair for node in items for pair in node]
    if len(items) != EDGES_PER_CELL:
        raise _fail(cell, f"expected {EDGES_PER_CELL} edges (2 for each of {STEPS} nodes), found {len(items)}")
    out: list[Edge] = []
    for k, item in enumerate(items):
        node = 2 + k // 2
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise _fail(cell, f"edge {k} {item!r} is not an (operation, input) pair")
        op, src = item
        if not isinstance(op, str) or op not in _OP_INDEX:
            raise _fail(cell, f"edge {k} (into node {node}) has unknown operation {op!r}; allowed: {', '.join(OPS)}")
        if isinstance(src, bool) or not isinstance(src, (int, np.integer)) or not 0 <= int(src) < node:
            raise _fail(cell, f"edge {k} (into node {node}) has input {src!r}; allowed: 0 to {node - 1} "
                              "(the two cell inputs 0, 1 and earlier nodes)")
        out.append((op, int(src)))
    for node in range(STEPS):
        a, b = out[2 * node], out[2 * node + 1]
        if a[1] == b[1]:
            raise _fail(cell, f"node {node + 2} takes input {a[1]} twice ({a!r}, {b!r}); "
                              "its two inputs must be different nodes")
        if (a[1], a[0]) > (b[1], b[0]):
            out[2 * node], out[2 * node + 1] = b, a
    return tuple(out)


@dataclass(frozen=True, repr=False)
class DartsArch:
    """A DARTS architecture: the normal and the reduction cell, each 8 ``(operation, input)`` edges.

    Constructing one checks it and sorts the two edges of each node by ``(input, operation)``, so
    two values describing the same cells are equal and hash alike. ``str()`` gives the canonical
    ``Genotype(...)`` string.
    """

    normal: Cell
    reduce: Cell

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal", _normalise_cell(self.normal, "normal"))
        object.__setattr__(self, "reduce", _normalise_cell(self.reduce, "reduce"))

    def cell(self, name: str) -> Cell:
        if name == "normal":
            return self.normal
        if name == "reduce":
            return self.reduce
        raise NasforgeError(f"unknown DARTS cell {name!r}; allowed: {', '.join(CELLS)}")

    def __str__(self) -> str:
        concat = list(CONCAT)
        return (f"Genotype(normal={list(self.normal)!r}, normal_concat={concat!r}, "
                f"reduce={list(self.reduce)!r}, reduce_concat={concat!r})")

    def __repr__(self) -> str:
        return f"DartsArch({str(self)!r})"


# --- parsing ----------------------------------------------------------------------------------
_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


def _short(text: str, limit: int = 120) -> str:
    r = repr(text)
    return r if len(r) <= limit else r[: limit - 4] + "...'"


def _literal(node: ast.AST, what: str) -> Any:
    """A list/tuple/str/int literal, or ``range(a, b)``; anything else is refused."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)) and not isinstance(node.value, bool):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) is int):
        return -node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, what) for e in node.elts]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and not node.keywords and 1 <= len(node.args) <= 3):
        args = [_literal(a, what) for a in node.args]
        if all(type(a) is int for a in args) and (len(args) < 3 or args[2] != 0) and len(range(*args)) <= 64:
            return list(range(*args))
    raise NasforgeError(f"malformed DARTS genotype: {what} holds {_short(ast.unparse(node), 80)}, "
                        "which is not a literal list of (operation, input) pairs or integers")


def parse_genotype(text: str) -> DartsArch:
    """Read a ``Genotype(normal=[...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=...)``
    string (fields by keyword or position; concat as a list or ``range(2, 6)``)."""
    if not isinstance(text, str):
        raise NasforgeError(f"a DARTS genotype string is expected, got {type(text).__name__}")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise NasforgeError(f"malformed DARTS genotype {_short(text)}: {exc.msg}; "
                            "expected Genotype(normal=[...], normal_concat=[2, 3, 4, 5], reduce=[...], "
                            "reduce_concat=[2, 3, 4, 5])") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
        raise NasforgeError(f"malformed DARTS genotype {_short(text)}: expected Genotype(normal=[...], "
                            "normal_concat=[...], reduce=[...], reduce_concat=[...])")
    fields: dict[str, Any] = {}
    if len(tree.args) > len(_FIELDS):
        raise NasforgeError(f"malformed DARTS genotype {_short(text)}: {len(tree.args)} positional fields; "
                            f"allowed: at most {len(_FIELDS)} ({', '.join(_FIELDS)})")
    for name, node in zip(_FIELDS, tree.args):
        fields[name] = _literal(node, name)
    for kw in tree.keywords:
        if kw.arg not in _FIELDS:
            raise NasforgeError(f"malformed DARTS genotype: unknown field {kw.arg!r}; allowed: {', '.join(_FIELDS)}")
        if kw.arg in fields:
            raise NasforgeError(f"malformed DARTS genotype: field {kw.arg!r} given twice")
        fields[kw.arg] = _literal(kw.value, kw.arg)
    missing = [f for f in ("normal", "reduce") if f not in fields]
    if missing:
        raise NasforgeError(f"malformed DARTS genotype {_short(text)}: missing field(s) {', '.join(missing)}")
    for name in ("normal_concat", "reduce_concat"):
        if name in fields and list(fields[name]) != list(CONCAT):
            raise NasforgeError(f"bad DARTS genotype: {name} is {fields[name]!r}; allowed: {list(CONCAT)!r} "
                                "(or range(2, 6)): the cell output concatenates every intermediate node")
    return DartsArch(fields["normal"], fields["reduce"])


def _relabel_min(cell: Cell) -> Cell:
    """The least cell (as a tuple) among those equal to ``cell`` up to renumbering the intermediate
    nodes, keeping every edge from an earlier node to a later one."""
    nodes = [cell[2 * i: 2 * i + 2] for i in range(STEPS)]
    best: Cell | None = None
    for perm in itertools.permutations(range(STEPS)):
        # perm[i]: the new position of old intermediate node i
        new_id = {0: 0, 1: 1, **{2 + i: 2 + p for i, p in enumerate(perm)}}
        new_nodes: list[tuple[Edge, ...]] = [()] * STEPS
        ok = True
        for i, edges in enumerate(nodes):
            pos = perm[i]
            moved = tuple(sorted(((op, new_id[src]) for op, src in edges), key=lambda e: (e[1], e[0])))
            if any(src >= 2 + pos for _op, src in moved):
                ok = False
                break
            new_nodes[pos] = moved
        if not ok:
            continue
        candidate = tuple(e for node in new_nodes for e in node)
        if best is None or [(s, o) for o, s in candidate] < [(s, o) for o, s in best]:
            best = candidate
    assert best is not None  # the identity renumbering is always valid
    return best


# --- the space --------------------------------------------------------------------------------
class DartsSpace(SearchSpace):
    """The DARTS CNN cell space: a normal and a reduction cell of 4 nodes, 7 operations.

    Architectures are :class:`DartsArch` values; the canonical string is the DARTS ``Genotype``
    notation with each node's two edges sorted by ``(input, operation)``. Published cells are in
    :data:`GENOTYPES`. :meth:`build` gives the DARTS evaluation network for CIFAR.
    """

    name = "darts"
    ops = OPS
    #: what :meth:`cells` returns, in order (diagrams title each cell with its name)
    cell_names = CELLS
    encodings = ("onehot", "compact", "adjacency")

    # --- elements ---------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> DartsArch:
        """Uniform over the space: for every node two different inputs, and an operation per edge."""
        cells = []
        for _cell in CELLS:
            edges: list[Edge] = []
            for node in range(2, 2 + STEPS):
                a, b = (int(x) for x in rng.choice(node, size=2, replace=False))
                ops = rng.integers(len(OPS), size=2)
                edges += [(OPS[int(ops[0])], a), (OPS[int(ops[1])], b)]
            cells.append(edges)
        return DartsArch(cells[0], cells[1])

    @staticmethod
    def _moves(arch: DartsArch) -> list[tuple[int, int, str, Any]]:
        """Every one-change move of ``arch``: (cell index, edge index, "op" | "input", new value).

        Each node contributes, per edge, the 6 other operations and every input that neither of its
        two edges uses: 120 moves for every architecture, in a fixed order.
        """
        moves = []
        for c, name in enumerate(CELLS):
            cell = arch.cell(name)
            for k, (op, src) in enumerate(cell):
                node = 2 + k // 2
                used = {cell[k - k % 2][1], cell[k - k % 2 + 1][1]}
                moves += [(c, k, "op", o) for o in OPS if o != op]
                moves += [(c, k, "input", j) for j in range(node) if j not in used]
        return moves

    @staticmethod
    def _apply(arch: DartsArch, move: tuple[int, int, str, Any]) -> DartsArch:
        c, k, what, value = move
        cells = [list(arch.normal), list(arch.reduce)]
        op, src = cells[c][k]
        cells[c][k] = (value, src) if what == "op" else (op, value)
        return DartsArch(tuple(cells[0]), tuple(cells[1]))

    def mutate(self, arch: Any, rng: np.random.Generator) -> DartsArch:
        """One move drawn uniformly from :meth:`neighbors`: a new operation or a new input on one edge."""
        arch = self.coerce(arch)
        moves = self._moves(arch)
        return self._apply(arch, moves[int(rng.integers(len(moves)))])

    def neighbors(self, arch: Any) -> list[DartsArch]:
        arch = self.coerce(arch)
        return [self._apply(arch, m) for m in self._moves(arch)]

    def parse(self, text: str) -> DartsArch:
        return parse_genotype(text)

    def format(self, arch: Any) -> str:
        if isinstance(arch, DartsArch):
            return str(arch)
        raise NasforgeError(f"{arch!r:.200} is not a DARTS architecture")

    def coerce(self, arch: Any) -> DartsArch:
        """A :class:`DartsArch` from itself, its string, or any object with ``normal`` and ``reduce``
        edge lists (such as the DARTS code base's ``Genotype`` named tuple)."""
        if isinstance(arch, DartsArch):
            return arch
        if isinstance(arch, str):
            return parse_genotype(arch)
        if hasattr(arch, "normal") and hasattr(arch, "reduce"):
            for name in ("normal_concat", "reduce_concat"):
                concat = getattr(arch, name, None)
                if concat is not None and list(concat) != list(CONCAT):
                    raise NasforgeError(f"bad DARTS genotype: {name} is {concat!r}; allowed: {list(CONCAT)!r}")
            return DartsArch(arch.normal, arch.reduce)
        raise NasforgeError(f"{arch!r:.200} is not a DARTS architecture (a DartsArch or a Genotype string)")

    def __contains__(self, arch: object) -> bool:
        return isinstance(arch, DartsArch)

    def __len__(self) -> int:
        """Number of distinct architectures: ``CELL_SIZE ** 2`` (edge order within a node ignored)."""
        return CELL_SIZE**2

    # --- equivalence ------------------------------------------------------------------------
    def canonical_key(self, arch: Any) -> str:
        """Key shared by architectures that differ only in the order of a node's two edges (already
        equal as values) or in the numbering of the intermediate nodes.

        Renumbering intermediate nodes (keeping every edge pointing forward) permutes the channel
        blocks of the concatenated cell output; every consumer of a cell output (the 1x1
        preprocessing of the next two cells, the auxiliary head's 1x1 convolution, the classifier
        after global pooling) is linear in those channels, so the two networks are the same up to a
        permutation of weights. The key is the canonical string of the least renumbered form.
        """
        arch = self.coerce(arch)
        return str(DartsArch(_relabel_min(arch.normal), _relabel_min(arch.reduce)))

    # --- encodings --------------------------------------------------------------------------
    def encode(self, arch: Any, kind: str = "onehot") -> np.ndarray:
        """``onehot``: for each cell and each of the 14 possible edges (input j -> node i, in the
        DARTS supernet's order) a one-hot vector of its operation, zeros if the edge is absent:
        2 x 14 x 7 = 196 values. ``compact``: per cell and edge (canonical order) the input node
        and the operation index: 2 x 8 x 2 = 32 integers. ``adjacency``: per cell, the upper
        triangle of its 11-node graph (:meth:`cells`; 55 values) and a one-hot operation for each
        of its 8 operation nodes (56): 2 x 111 = 222 values. All three are one-to-one."""
        arch = self.coerce(arch)
        if kind == "onehot":
            v = np.zeros((len(CELLS), len(CELL_EDGES), len(OPS)), dtype=np.float32)
            for c, name in enumerate(CELLS):
                for k, (op, src) in enumerate(arch.cell(name)):
                    v[c, _EDGE_INDEX[(src, 2 + k // 2)], _OP_INDEX[op]] = 1.0
            return v.ravel()
        if kind == "compact":
            return np.array([x for name in CELLS for op, src in arch.cell(name) for x in (src, _OP_INDEX[op])],
                            dtype=np.int64)
        if kind == "adjacency":
            parts = []
            for adj, labels in self.cells(arch):
                iu = np.triu_indices(adj.shape[0], 1)
                one_hot = np.zeros((EDGES_PER_CELL, len(OPS)), dtype=np.float32)
                one_hot[np.arange(EDGES_PER_CELL), [_OP_INDEX[lab] for lab in labels[2:-1]]] = 1.0
                parts += [adj[iu].astype(np.float32), one_hot.ravel()]
            return np.concatenate(parts)
        raise NasforgeError(f"unknown encoding {kind!r} for space darts; allowed: {', '.join(self.encodings)}")

    @staticmethod
    def _cell_graph(cell: Cell) -> tuple[np.ndarray, list[str]]:
        n = 2 + EDGES_PER_CELL + 1
        adj = np.zeros((n, n), dtype=np.int8)
        adj[0, 1] = 1  # the output of cell k-1 is computed from that of cell k-2
        for k, (_op, src) in enumerate(cell):
            node = 2 + k
            if src < 2:
                adj[src, node] = 1
            else:
                feeder = 2 + 2 * (src - 2)
                adj[feeder, node] = adj[feeder + 1, node] = 1
            adj[node, n - 1] = 1
        return adj, ["input", "input", *[op for op, _ in cell], "output"]

    def cells(self, arch: Any) -> list[tuple[np.ndarray, list[str]]]:
        """Each cell (normal, then reduction) as its own operations-on-nodes DAG of 11 nodes:
        0 and 1 the cell inputs (outputs of cells k-2 and k-1, both labelled ``input``, with an
        edge 0 -> 1 since cell k-1 reads cell k-2), 2-9 the 8 operations node by node (each node's
        edges in canonical order), 10 ``output`` (the concatenation, fed by all 8 operations). An
        operation reading intermediate node i is fed by node i's two operations. One-to-one."""
        arch = self.coerce(arch)
        return [self._cell_graph(arch.cell(name)) for name in CELLS]

    def graph(self, arch: Any) -> tuple[np.ndarray, list[str]]:
        """Both cells as one operations-on-nodes DAG, as they sit at the start of the network: the
        input (the stem output) feeds both inputs of a normal cell, and a reduction cell reads the
        input (cell k-2) and the normal cell's output (cell k-1).

        Nodes (18, in topological order): 0 ``input``; 1-8 the normal cell's 8 operations; 9-16 the
        reduction cell's 8 operations; 17 ``output``. Operations are listed node by node, each
        node's edges in canonical order. An operation reading intermediate node i of its cell is
        fed by node i's two operations; a normal-cell operation reading cell input 0 or 1 is fed by
        node 0; a reduction-cell operation reading input 0 by node 0, reading input 1 by all 8
        normal-cell operations (the normal cell's output concatenates them); the output node by all
        8 reduction-cell operations. Inner labels are operation names only.

        As in the network's first cell, the normal cell's two inputs are the same tensor here, so
        this view does not tell its input 0 from its input 1: architectures differing only in that
        share a graph. :meth:`cells` and every :meth:`encode` kind keep them apart.
        """
        arch = self.coerce(arch)
        n = 1 + 2 * EDGES_PER_CELL + 1
        adj = np.zeros((n, n), dtype=np.int8)
        normal_first, reduce_first = 1, 1 + EDGES_PER_CELL
        normal_ops = list(range(normal_first, normal_first + EDGES_PER_CELL))
        for first, name in ((normal_first, "normal"), (reduce_first, "reduce")):
            for k, (_op, src) in enumerate(arch.cell(name)):
                node = first + k
                if src >= 2:
                    feeder = first + 2 * (src - 2)
                    adj[feeder, node] = adj[feeder + 1, node] = 1
                elif name == "reduce" and src == 1:
                    adj[normal_ops, node] = 1
                else:
                    adj[0, node] = 1
                if name == "reduce":
                    adj[node, n - 1] = 1
        labels = ["input", *[op for op, _ in arch.normal], *[op for op, _ in arch.reduce], "output"]
        return adj, labels

    # --- networks and costs -----------------------------------------------------------------
    def build(
        self,
        arch: Any,
        C: int = 36,
        layers: int = 20,
        num_classes: int = 10,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
        stem_multiplier: int = 3,
        in_channels: int = 3,
        input_size: int = 32,
    ) -> Any:
        """The DARTS evaluation network for CIFAR; see :class:`~nasforge.spaces.darts_net.DartsNetwork`.

        ``C`` channels in the first cells (doubled at each of the two reduction cells), ``layers``
        cells, an auxiliary head at two thirds of the depth when ``auxiliary``; ``in_channels`` and
        ``input_size`` describe the (square) input images (32x32 RGB for CIFAR).
        """
        from nasforge.spaces.darts_net import DartsNetwork

        return DartsNetwork(self.coerce(arch), C=C, layers=layers, num_classes=num_classes, auxiliary=auxiliary,
                            drop_path_prob=drop_path_prob, stem_multiplier=stem_multiplier, in_channels=in_channels,
                            input_size=input_size)

    def supernet_layout(self) -> Any:
        """The supernet protocol of the space (:mod:`nasforge.spaces.darts_supernet`): 2 x 14
        possible edges x (``none`` + 7 operations), two inputs per node."""
        from nasforge.spaces.darts_supernet import LAYOUT

        return LAYOUT

    def param_count(self, arch: Any, C: int = 36, layers: int = 20, num_classes: int = 10,
                    stem_multiplier: int = 3, auxiliary: bool = False, in_channels: int = 3) -> int:
        """Parameters of :meth:`build`'s network, in closed form; the auxiliary head is left out
        unless ``auxiliary`` (papers report counts without it)."""
        from nasforge.spaces.darts_net import darts_param_count

        return darts_param_count(self.coerce(arch), C=C, layers=layers, num_classes=num_classes,
                                 stem_multiplier=stem_multiplier, auxiliary=auxiliary, in_channels=in_channels)

    def flops(self, arch: Any, C: int = 36, layers: int = 20, num_classes: int = 10,
              stem_multiplier: int = 3, input_size: int = 32, in_channels: int = 3) -> int:
        """Multiply-adds of the convolutions and the classifier for one ``input_size`` x
        ``input_size`` image (inference, no auxiliary head), counted by forward hooks on a built
        network (see :func:`~nasforge.spaces.darts_net.darts_flops`)."""
        from nasforge.spaces.darts_net import darts_flops

        return darts_flops(self.coerce(arch), C=C, layers=layers, num_classes=num_classes,
                           stem_multiplier=stem_multiplier, input_size=input_size, in_channels=in_channels)


# --- published cells --------------------------------------------------------------------------
def _g(normal: list[Edge], reduce: list[Edge]) -> DartsArch:
    return DartsArch(tuple(normal), tuple(reduce))


#: cells found by published searches on CIFAR-10, as their authors' code releases list them:
#: ``darts_v1``/``darts_v2`` (DARTS first/second order, DARTS_V1/DARTS_V2 of the DARTS code),
#: ``pc_darts`` (PC_DARTS_cifar of the PC-DARTS code), ``drnas`` (DrNAS_cifar10 of the DrNAS
#: code, the 2.46%-error cell). Parameters with C=36, 20 layers, 10 classes, no auxiliary head:
#: 3,169,414; 3,349,342 (published 3.3M); 3,634,678 (3.6M); 4,099,294 (4.1M in the DrNAS code's
#: README). The DARTS paper gives 3.3M for the first-order cell too, but the released DARTS_V1
#: cell has a skip_connect where DARTS_V2 has a dil_conv_3x3, hence 3.17M.
GENOTYPES: dict[str, DartsArch] = {
    "darts_v1": _g(
        [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
         ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
         ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
    ),
    "darts_v2": _g(
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
         ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
         ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    ),
    "pc_darts": _g(
        [("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
         ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)],
        [("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
         ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
    ),
    "drnas": _g(
        [("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2),
         ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2), ("dil_conv_5x5", 3)],
        [("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("dil_conv_5x5", 2), ("sep_conv_5x5", 1),
         ("sep_conv_5x5", 1), ("dil_conv_5x5", 3), ("skip_connect", 4), ("sep_conv_5x5", 1)],
    ),
}


__all__ = ["CELL_SIZE", "GENOTYPES", "OPS", "DartsArch", "DartsSpace", "parse_genotype"]
