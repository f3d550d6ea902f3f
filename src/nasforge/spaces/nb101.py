"""The NAS-Bench-101 cell space (Ying et al., ICML 2019): DAGs of up to 7 nodes and 9 edges.

A cell is an upper-triangular 0/1 adjacency matrix on ``n <= 7`` vertices together with one
operation per vertex: vertex 0 is ``input``, the last vertex ``output`` and each interior vertex
one of ``conv3x3-bn-relu``, ``conv1x1-bn-relu`` or ``maxpool3x3``. ``matrix[i][j] == 1`` is an
edge from vertex ``i`` to vertex ``j`` (so ``i < j``: the order of the vertices is a topological
order and no cycle can be written).

Validity follows the benchmark's own ``ModelSpec`` and ``NASBench._check_spec``:

- the matrix is square, of side 2..7, upper-triangular (zero on and below the diagonal), and
  there is one operation per vertex;
- the graph is *pruned*: every vertex that is not on some input -> output path (not reachable
  from the input, or not reaching the output) is deleted with its edges, keeping the order of
  the others; a cell whose input does not reach its output is invalid;
- the pruned graph has at most 9 edges (edges into or out of deleted vertices do not count).

One deliberate difference: an unknown operation name is an error at any vertex, also at a
vertex that pruning would delete (the benchmark only checks the vertices it keeps).

A full enumeration with these rules and :func:`graph_hash` (all full DAGs of 2..7 vertices with
at most 9 edges, every labelling) gives 1 + 6 + 84 + 2,441 + 62,010 + 359,082 = 423,624 hash
classes, the benchmark's published count.

An architecture (:class:`NB101Arch`) is always the pruned cell. Two cells that differ only by
a relabelling of the interior vertices compute the same network; they are different values
but share :meth:`NB101Space.canonical_key`, the benchmark's graph hash (the key of its table).
There are 423,624 such classes (the number of cells the benchmark trained).

Text form (``format``/``parse``): one line of JSON with the pruned matrix and all vertex
operations, input and output included, e.g.::

    {"matrix":[[0,1,1],[0,0,1],[0,0,0]],"ops":["input","conv3x3-bn-relu","output"]}

``parse`` accepts any JSON spelling of that object (whitespace, key order) and unpruned
matrices; it prunes them, so ``format(parse(s))`` is the canonical string of the cell.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.spaces.base import SearchSpace

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"
#: interior operations in the benchmark's order (``config['available_ops']``); the position of
#: an operation is its label in the graph hash
OPS: tuple[str, ...] = (CONV3X3, CONV1X1, MAXPOOL3X3)
_OP_INDEX = {op: i for i, op in enumerate(OPS)}
MAX_VERTICES = 7
MAX_EDGES = 9
#: number of distinct cells (graph-hash classes) of the space, as published with the benchmark
NUM_UNIQUE_CELLS = 423_624
#: upper-triangle slots of a 7-vertex matrix, row by row: (from vertex, to vertex)
EDGE_SLOTS: tuple[tuple[int, int], ...] = tuple(
    (i, j) for i in range(MAX_VERTICES) for j in range(i + 1, MAX_VERTICES)
)
#: length of the path encoding: one slot per sequence of 0..5 interior operations
N_PATHS = sum(len(OPS) ** k for k in range(MAX_VERTICES - 1))


@dataclass(frozen=True)
class NB101Arch:
    """A pruned NAS-Bench-101 cell: ``matrix`` (rows of 0/1 ints) and ``ops`` (one per vertex).

    Immutable and hashable; equality is exact (same vertex order). Build values through
    :class:`NB101Space` (``parse``, ``coerce``) or :func:`make_arch`, which validate and prune.
    """

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    @property
    def num_vertices(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self.matrix))

    def __str__(self) -> str:
        return json.dumps({"matrix": [list(r) for r in self.matrix], "ops": list(self.ops)},
                          separators=(",", ":"))

    def __repr__(self) -> str:
        return f"NB101Arch('{self}')"


# --- validation and pruning ------------------------------------------------------------------
def _as_matrix(matrix: Any, what: str) -> list[list[int]]:
    """``matrix`` as a square list of 0/1 int rows; a NasforgeError naming the bad part otherwise."""
    if isinstance(matrix, np.ndarray):
        matrix = matrix.tolist()
    if isinstance(matrix, (str, bytes)) or not isinstance(matrix, Sequence):
        raise NasforgeError(f"{what}: matrix must be a list of rows of 0/1, got {matrix!r}")
    n = len(matrix)
    if not 2 <= n <= MAX_VERTICES:
        raise NasforgeError(
            f"{what}: matrix has {n} rows; allowed: 2 to {MAX_VERTICES} vertices (input, up to "
            f"{MAX_VERTICES - 2} operations, output)"
        )
    rows: list[list[int]] = []
    for i, row in enumerate(matrix):
        if isinstance(row, np.ndarray):
            row = row.tolist()
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or len(row) != n:
            raise NasforgeError(f"{what}: matrix row {i} must hold {n} entries (a square matrix), got {row!r}")
        out = []
        for j, v in enumerate(row):
            # ints 0/1 (booleans count as 0/1, as numpy adjacency matrices often hold them)
            if not isinstance(v, (int, np.integer, np.bool_)) or v not in (0, 1):
                raise NasforgeError(f"{what}: matrix[{i}][{j}] is {v!r}; allowed: 0 or 1")
            out.append(int(v))
        rows.append(out)
    for i in range(n):
        for j in range(i + 1):
            if rows[i][j]:
                kind = "a self-loop" if i == j else "a backward edge (cycles are not allowed)"
                raise NasforgeError(
                    f"{what}: matrix[{i}][{j}] = 1 is {kind}; the matrix must be upper-triangular "
                    "(edges i -> j only for i < j)"
                )
    return rows


def _as_ops(ops: Any, n: int, what: str) -> list[str]:
    if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence):
        raise NasforgeError(f"{what}: ops must be a list of {n} operation names, got {ops!r}")
    ops = list(ops)
    if len(ops) != n:
        raise NasforgeError(f"{what}: {len(ops)} ops for a {n}x{n} matrix; one op per vertex is required")
    if ops[0] != INPUT:
        raise NasforgeError(f"{what}: ops[0] is {ops[0]!r}; the first vertex must be {INPUT!r}")
    if ops[-1] != OUTPUT:
        raise NasforgeError(f"{what}: ops[{n - 1}] is {ops[-1]!r}; the last vertex must be {OUTPUT!r}")
    for i in range(1, n - 1):
        if not isinstance(ops[i], str) or ops[i] not in _OP_INDEX:
            raise NasforgeError(f"{what}: unknown operation {ops[i]!r} at vertex {i}; allowed: {', '.join(OPS)}")
    return ops


def prune(matrix: list[list[int]], ops: list[str]) -> tuple[list[list[int]], list[str]] | None:
    """Delete the vertices not on an input -> output path, as the benchmark's ``ModelSpec``.

    ``matrix`` must be upper-triangular. Returns the pruned (matrix, ops), or ``None`` when the
    input does not reach the output.
    """
    n = len(ops)
    from_input = {0}
    for j in range(1, n):  # vertices in topological order: one forward sweep suffices
        if any(matrix[i][j] for i in from_input if i < j):
            from_input.add(j)
    to_output = {n - 1}
    for i in range(n - 2, -1, -1):
        if any(matrix[i][j] for j in to_output if j > i):
            to_output.add(i)
    keep = sorted(from_input & to_output)
    if 0 not in keep or n - 1 not in keep:
        return None
    return [[matrix[i][j] for j in keep] for i in keep], [ops[i] for i in keep]


def make_arch(matrix: Any, ops: Any, what: str = "invalid NAS-Bench-101 cell") -> NB101Arch:
    """The pruned, validated cell of ``(matrix, ops)``; a NasforgeError saying what is wrong."""
    rows = _as_matrix(matrix, what)
    names = _as_ops(ops, len(rows), what)
    pruned = prune(rows, names)
    if pruned is None:
        raise NasforgeError(f"{what}: the input vertex does not reach the output vertex (disconnected cell)")
    rows, names = pruned
    edges = sum(map(sum, rows))
    if edges > MAX_EDGES:
        raise NasforgeError(
            f"{what}: {edges} edges after pruning; allowed: at most {MAX_EDGES}"
        )
    return NB101Arch(tuple(tuple(r) for r in rows), tuple(names))


# --- the benchmark's graph hash -------------------------------------------------------------
def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def graph_hash(matrix: Sequence[Sequence[int]], labels: Sequence[int]) -> str:
    """The isomorphism-invariant MD5 fingerprint the benchmark keys its table by.

    Weisfeiler-Lehman style refinement: each vertex starts from the MD5 of the text
    ``"(out-degree, in-degree, label)"``; then, as many rounds as there are vertices, a vertex's
    new value is the MD5 of its predecessors' values (sorted, concatenated), ``"|"``, its
    successors' values (likewise), ``"|"`` and its own value. The fingerprint is the MD5 of the
    sorted final values written as a Python list of strings (``"['…', '…']"``). Labels: -1 for
    the input, -2 for the output, the operation's position in :data:`OPS` otherwise.
    """
    n = len(labels)
    preds = [[w for w in range(n) if matrix[w][v]] for v in range(n)]
    succs = [[w for w in range(n) if matrix[v][w]] for v in range(n)]
    values = [_md5(f"({len(succs[v])}, {len(preds[v])}, {labels[v]})") for v in range(n)]
    for _ in range(n):
        values = [
            _md5("".join(sorted(values[w] for w in preds[v])) + "|"
                 + "".join(sorted(values[w] for w in succs[v])) + "|" + values[v])
            for v in range(n)
        ]
    return _md5("[" + ", ".join(f"'{h}'" for h in sorted(values)) + "]")


@lru_cache(maxsize=65536)
def _arch_hash(arch: NB101Arch) -> str:
    labels = [-1] + [_OP_INDEX[op] for op in arch.ops[1:-1]] + [-2]
    return graph_hash(arch.matrix, labels)


# --- the space -------------------------------------------------------------------------------
class NB101Space(SearchSpace):
    """The NAS-Bench-101 cells: pruned DAGs of up to 7 vertices and 9 edges, 3 operations.

    Architectures are :class:`NB101Arch` values (always pruned); their canonical string is
    the one-line JSON ``{"matrix":[[...]],"ops":[...]}``. ``canonical_key`` is the benchmark's
    graph hash: isomorphic cells share it, and it is the key of the benchmark's table.

    The space holds 423,624 hash classes (:data:`NUM_UNIQUE_CELLS`, published with the
    benchmark); it is not enumerated here (``len()`` and ``iter()`` raise ``TypeError``, as for
    any space that is not enumerable), see :meth:`num_unique_cells`.

    Local moves (:meth:`neighbors`, :meth:`mutate`): flip one edge of the pruned matrix, change
    the operation of one interior vertex, or insert one new vertex (any operation) on a new path
    ``u -> new -> v`` between two existing vertices. Single edge flips can only shrink a pruned
    cell (an edge to a new vertex leaves it dangling, and it is pruned), so the insertion move
    is what lets local search and evolution reach larger cells.
    """

    name = "nb101"
    ops = OPS
    encodings = ("adjacency", "onehot", "path")

    def __init__(self) -> None:
        pass

    def __repr__(self) -> str:
        return "NB101Space()"

    # --- elements ---------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> NB101Arch:
        """A random valid cell, drawn as the benchmark's own random sampler: a uniform random
        7x7 upper-triangular 0/1 matrix and uniform interior operations, redrawn until the pruned
        cell is valid (connected, at most 9 edges); the pruned cell is returned."""
        n = MAX_VERTICES
        while True:
            bits = rng.integers(0, 2, size=len(EDGE_SLOTS))
            matrix = [[0] * n for _ in range(n)]
            for (i, j), b in zip(EDGE_SLOTS, bits):
                matrix[i][j] = int(b)
            ops = [INPUT, *(OPS[int(k)] for k in rng.integers(0, len(OPS), size=n - 2)), OUTPUT]
            pruned = prune(matrix, ops)
            if pruned is None:
                continue
            rows, names = pruned
            if sum(map(sum, rows)) <= MAX_EDGES:
                return NB101Arch(tuple(tuple(r) for r in rows), tuple(names))

    def mutate(self, arch: Any, rng: np.random.Generator) -> NB101Arch:
        """One of :meth:`neighbors` drawn uniformly: a valid cell with another graph hash."""
        nbrs = self.neighbors(arch)
        if not nbrs:  # pragma: no cover - every cell can at least change or insert a vertex
            raise NasforgeError(f"cell {self.format(arch)} has no valid neighbour")
        return nbrs[int(rng.integers(len(nbrs)))]

    def neighbors(self, arch: Any) -> list[NB101Arch]:
        """Every valid cell one local change away, with a graph hash other than ``arch``'s and
        than the earlier neighbours' (first occurrence kept). Order: edge flips (upper-triangle
        slots row by row), then operation changes (vertex by vertex, operations in :data:`OPS`
        order), then vertex insertions (pairs ``u < v`` row by row, operations in order; the new
        vertex is placed just before ``v``)."""
        arch = self.coerce(arch)
        rows = [list(r) for r in arch.matrix]
        ops = list(arch.ops)
        n = len(ops)
        seen = {_arch_hash(arch)}
        out: list[NB101Arch] = []

        def add(matrix: list[list[int]], names: list[str]) -> None:
            pruned = prune(matrix, names)
            if pruned is None:
                return
            m, o = pruned
            if sum(map(sum, m)) > MAX_EDGES:
                return
            cand = NB101Arch(tuple(tuple(r) for r in m), tuple(o))
            key = _arch_hash(cand)
            if key not in seen:
                seen.add(key)
                out.append(cand)

        for i in range(n):
            for j in range(i + 1, n):
                m = [r[:] for r in rows]
                m[i][j] = 1 - m[i][j]
                add(m, ops)
        for v in range(1, n - 1):
            for op in OPS:
                if op != ops[v]:
                    add(rows, ops[:v] + [op] + ops[v + 1 :])
        if n < MAX_VERTICES:
            for u in range(n):
                for v in range(u + 1, n):
                    # the new vertex takes index v; old vertices v.. move up by one
                    old = list(range(v)) + [None] + list(range(v, n))
                    m = [[0] * (n + 1) for _ in range(n + 1)]
                    for a, oa in enumerate(old):
                        for b, ob in enumerate(old):
                            if oa is not None and ob is not None:
                                m[a][b] = rows[oa][ob]
                    m[u][v] = 1
                    m[v][v + 1] = 1
                    for op in OPS:
                        add(m, ops[:v] + [op] + ops[v:])
        return out

    def parse(self, text: str) -> NB101Arch:
        """Read ``{"matrix": [[...]], "ops": [...]}`` (JSON); the cell is validated and pruned."""
        if not isinstance(text, str):
            raise NasforgeError(f"a NAS-Bench-101 cell string is expected, got {type(text).__name__}")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise NasforgeError(
                f"malformed NAS-Bench-101 string {text!r}: not JSON ({err.msg} at character {err.pos}); "
                'expected {"matrix": [[0/1, ...], ...], "ops": ["input", ..., "output"]}'
            ) from None
        return self._from_data(data, f"invalid NAS-Bench-101 string {text!r}")

    def _from_data(self, data: Any, what: str) -> NB101Arch:
        if not isinstance(data, dict) or set(data) != {"matrix", "ops"}:
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise NasforgeError(f"{what}: expected an object with exactly the keys 'matrix' and 'ops', got {keys}")
        return make_arch(data["matrix"], data["ops"], what)

    def format(self, arch: Any) -> str:
        """The canonical string: one-line JSON of the pruned matrix and the ops."""
        return str(self.coerce(arch))

    def coerce(self, arch: Any) -> NB101Arch:
        """An :class:`NB101Arch`, its string, a ``{"matrix", "ops"}`` dict or a ``(matrix, ops)``
        pair -> the validated, pruned cell."""
        if isinstance(arch, NB101Arch):
            if self._is_canonical(arch):
                return arch
            return make_arch(arch.matrix, arch.ops, f"invalid NAS-Bench-101 cell {arch!r}")
        if isinstance(arch, str):
            return self.parse(arch)
        if isinstance(arch, dict):
            return self._from_data(arch, f"invalid NAS-Bench-101 cell {arch!r}")
        if isinstance(arch, (tuple, list)) and len(arch) == 2:
            return make_arch(arch[0], arch[1], f"invalid NAS-Bench-101 cell {arch!r}")
        raise NasforgeError(
            f"{arch!r} is not a NAS-Bench-101 cell: expected an NB101Arch, its JSON string, a "
            "{'matrix', 'ops'} dict or a (matrix, ops) pair"
        )

    @staticmethod
    def _is_canonical(arch: NB101Arch) -> bool:
        try:
            return make_arch(arch.matrix, arch.ops) == arch
        except (NasforgeError, TypeError):
            return False

    def __contains__(self, arch: object) -> bool:
        """Whether ``arch`` is a valid, pruned :class:`NB101Arch`."""
        return isinstance(arch, NB101Arch) and self._is_canonical(arch)

    def num_unique_cells(self) -> int:
        """423,624: the distinct cells (graph-hash classes) of the space, as published with
        the benchmark (Ying et al. 2019, and the README of google-research/nasbench)."""
        return NUM_UNIQUE_CELLS

    # --- equivalence ------------------------------------------------------------------------
    def hash(self, arch: Any) -> str:
        """The benchmark's graph hash (32 hex digits), as its ``ModelSpec.hash_spec``."""
        return _arch_hash(self.coerce(arch))

    def canonical_key(self, arch: Any) -> Hashable:
        """The benchmark's graph hash: equal for isomorphic cells; the key of its table."""
        return self.hash(arch)

    # --- encodings --------------------------------------------------------------------------
    def encode(self, arch: Any, kind: str = "onehot") -> np.ndarray:
        """Fixed-length vectors; a pruned cell of ``n < 7`` vertices is first padded to 7 by
        inserting empty vertices before the output (so the output is always vertex 6).

        ``adjacency`` (36): the 21 upper-triangle entries of the padded matrix (row by row),
        then for each of the 5 interior slots the one-hot of its operation (3; all zero for a
        padding slot). ``onehot`` (41): the same 21 edge bits, then for each interior slot a
        one-hot over (the 3 operations, empty). ``path`` (364): one bit per input -> output path
        of the cell, indexed by its sequence of operations (0 to 5 of them); isomorphic cells
        get the same vector.
        """
        arch = self.coerce(arch)
        if kind in ("adjacency", "onehot"):
            adj, labels = self._padded(arch)
            edges = np.array([adj[i, j] for i, j in EDGE_SLOTS], dtype=np.float32)
            width = len(OPS) + (kind == "onehot")
            node_ops = np.zeros((MAX_VERTICES - 2, width), dtype=np.float32)
            for k, lab in enumerate(labels[1:-1]):
                if lab is None:
                    if kind == "onehot":
                        node_ops[k, len(OPS)] = 1.0
                else:
                    node_ops[k, _OP_INDEX[lab]] = 1.0
            return np.concatenate([edges, node_ops.ravel()])
        if kind == "path":
            v = np.zeros(N_PATHS, dtype=np.float32)
            for path in self._paths(arch):
                # paths of length k follow all shorter ones; among them, base-3 order of the ops
                idx = sum(len(OPS) ** k for k in range(len(path)))
                rank = 0
                for op in path:
                    rank = rank * len(OPS) + _OP_INDEX[op]
                v[idx + rank] = 1.0
            return v
        raise NasforgeError(f"unknown encoding {kind!r} for space nb101; allowed: {', '.join(self.encodings)}")

    @staticmethod
    def _padded(arch: NB101Arch) -> tuple[np.ndarray, list[str | None]]:
        n = arch.num_vertices
        pos = list(range(n - 1)) + [MAX_VERTICES - 1]  # old vertex -> padded vertex
        adj = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int8)
        for i in range(n):
            for j in range(n):
                if arch.matrix[i][j]:
                    adj[pos[i], pos[j]] = 1
        labels: list[str | None] = [None] * MAX_VERTICES
        for i in range(n):
            labels[pos[i]] = arch.ops[i]
        return adj, labels

    @staticmethod
    def _paths(arch: NB101Arch) -> list[tuple[str, ...]]:
        """Every input -> output path as its sequence of interior operations."""
        n = arch.num_vertices
        found: list[tuple[str, ...]] = []

        def walk(v: int, ops: tuple[str, ...]) -> None:
            for w in range(v + 1, n):
                if arch.matrix[v][w]:
                    if w == n - 1:
                        found.append(ops)
                    else:
                        walk(w, ops + (arch.ops[w],))

        walk(0, ())
        return found

    def graph(self, arch: Any) -> tuple[np.ndarray, list[str]]:
        """The pruned cell: (its adjacency matrix as int8, its vertex operations)."""
        arch = self.coerce(arch)
        return np.array(arch.matrix, dtype=np.int8), list(arch.ops)

    # --- networks ---------------------------------------------------------------------------
    def build(
        self,
        arch: Any,
        stem_channels: int = 128,
        num_stacks: int = 3,
        cells_per_stack: int = 3,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
    ) -> Any:
        """The benchmark's network for ``arch`` (see :class:`~nasforge.spaces.nb101_net.NB101Network`);
        the defaults are the benchmark's (128 stem channels, 3 stacks of 3 cells, 10 classes).

        ``input_size`` (side of the square input) is accepted like every image space's ``build``
        (the estimators pass it); the network ends in global average pooling and its
        downsampling rounds odd sides up, so it takes any side and the value only has to be
        a positive integer."""
        from nasforge.spaces.nb101_net import NB101Network

        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
            raise NasforgeError(f"input_size must be a positive integer, got {input_size!r}")

        return NB101Network(
            self.coerce(arch), stem_channels=stem_channels, num_stacks=num_stacks,
            cells_per_stack=cells_per_stack, num_classes=num_classes, in_channels=in_channels,
        )


__all__ = [
    "CONV1X1",
    "CONV3X3",
    "INPUT",
    "MAXPOOL3X3",
    "MAX_EDGES",
    "MAX_VERTICES",
    "NUM_UNIQUE_CELLS",
    "OPS",
    "OUTPUT",
    "NB101Arch",
    "NB101Space",
    "graph_hash",
    "make_arch",
    "prune",
]
