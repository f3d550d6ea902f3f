"""Architecture encodings computed from a space's generic graph view, or the space's own encoding.

The graph encodings read architectures only through ``space.graph(arch) -> (adjacency, labels)``
(operations on nodes, node 0 the input, the last node the output), so the GP kernels and
BANANAS share one description of an architecture and work on any space that provides that view
(NB201, DARTS, NAS-Bench-101, NAS-Bench-Graph, ...). The ``onehot`` encoding reads
``space.encode(arch, "onehot")`` instead and needs no graph view: it is the generic fallback for
spaces whose graph view is a chain of layers (NAS-Bench-Macro, MobileNetV3-like, a
:class:`~nasforge.spaces.ChoiceSpace`) or that have none (:func:`graph_view` tells which).

Nodes labelled with a zero operation (``none``/``zero``) output nothing: :func:`arch_graph`
removes their edges and keeps only the nodes that lie on some input-to-output path (the
"pruned" graph NAS predictors use). The adjacency encoding reads the raw graph; the path
encodings and the graph kernels read the pruned one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.spaces.base import SearchSpace

#: operation labels that output zero: their node carries no information flow
ZERO_OPS: frozenset[str] = frozenset({"none", "zero"})
ENCODINGS: tuple[str, ...] = ("adjacency", "path", "trunc_path", "onehot", "cate")
#: the widest dense path encoding :meth:`PathEncoder.encode` writes out (the sparse form has no limit)
MAX_DENSE_PATH_COLUMNS = 10**7


@dataclass(frozen=True, slots=True)
class ArchGraph:
    """An architecture's ops-on-nodes DAG, raw and pruned.

    ``adj``/``labels``: the space's graph view as given. ``pruned``: the adjacency without the
    edges of zero-operation nodes and of nodes that lie on no input-to-output path; ``succ`` and
    ``pred`` list each node's successors and predecessors in it. ``active``: the nodes on some
    input-to-output path (input and output always count as active).
    """

    adj: np.ndarray
    labels: tuple[str, ...]
    pruned: np.ndarray
    active: np.ndarray
    succ: tuple[tuple[int, ...], ...]
    pred: tuple[tuple[int, ...], ...]

    @property
    def n(self) -> int:
        return len(self.labels)


def _reach(succ: list[list[int]], start: int) -> list[bool]:
    seen = [False] * len(succ)
    seen[start] = True
    todo = [start]
    while todo:
        u = todo.pop()
        for v in succ[u]:
            if not seen[v]:
                seen[v] = True
                todo.append(v)
    return seen


def prune(adj: np.ndarray, labels: Sequence[str], zero_ops: Iterable[str] = ZERO_OPS) -> tuple[np.ndarray, np.ndarray]:
    """(pruned adjacency, active-node mask) of a DAG with operations on nodes.

    Zero-operation nodes lose their edges; then every node that is not both reachable from the
    input (node 0) and able to reach the output (last node) loses its edges too.
    """
    a = np.asarray(adj)
    n = a.shape[0] if a.ndim == 2 else -1
    if a.shape != (n, n) or len(labels) != n:
        raise NasforgeError(f"graph view must be an (n, n) adjacency with n labels; got {a.shape} and {len(labels)}")
    zero = set(zero_ops)
    dead = {i for i, lab in enumerate(labels) if lab in zero and 0 < i < n - 1}
    rows = a.tolist()
    succ = [[v for v in range(n) if rows[u][v] and v not in dead] if u not in dead else [] for u in range(n)]
    pred: list[list[int]] = [[] for _ in range(n)]
    for u in range(n):
        for v in succ[u]:
            pred[v].append(u)
    fwd, bwd = _reach(succ, 0), _reach(pred, n - 1)
    active = np.array([f and b for f, b in zip(fwd, bwd)], dtype=bool)
    active[0] = active[n - 1] = True
    out = np.zeros((n, n), dtype=np.int8)
    for u in range(n):
        if active[u]:
            for v in succ[u]:
                if active[v]:
                    out[u, v] = 1
    return out, active


class GraphCache:
    """``space.graph`` plus pruning, computed once per architecture and kept (architectures are
    hashable values; a space holds at most a few tens of thousands)."""

    def __init__(self, space: SearchSpace, zero_ops: Iterable[str] = ZERO_OPS) -> None:
        self.space = space
        self.zero_ops = frozenset(zero_ops)
        self._cache: dict[Hashable, ArchGraph] = {}

    def __call__(self, arch: Any) -> ArchGraph:
        g = self._cache.get(arch)
        if g is None:
            adj, labels = self.space.graph(arch)
            adj = np.asarray(adj)
            pruned, active = prune(adj, labels, self.zero_ops)
            rows = pruned.tolist()
            n = len(rows)
            succ = tuple(tuple(v for v in range(n) if rows[u][v]) for u in range(n))
            pred = tuple(tuple(u for u in range(n) if rows[u][v]) for v in range(n))
            g = self._cache[arch] = ArchGraph(adj, tuple(labels), pruned, active, succ, pred)
        return g


def op_vocabulary(space: SearchSpace, zero_ops: Iterable[str] = ZERO_OPS) -> tuple[str, ...]:
    """The operation labels a space's graph view can carry on its inner nodes (``space.ops``)."""
    ops = getattr(space, "ops", None)
    if not ops:
        raise NasforgeError(
            f"space {space.name!r} has no 'ops' attribute listing its operations; graph encodings and "
            "kernels need it (a tuple of the operation labels used in space.graph)"
        )
    return tuple(ops)


def graph_view(space: SearchSpace, n_probe: int = 16) -> str:
    """What the space's graph view looks like: ``"dag"`` (cells with branching: some node of
    some architecture has several inputs or outputs), ``"chain"`` (every architecture is one
    input-to-output path, e.g. a sequence of layers), or ``"none"`` (``space.graph`` is not
    implemented, or the space lists no ``ops``).

    Decided on ``n_probe`` architectures drawn with a private generator (seed 0): the caller's
    random stream is untouched, so the answer is the same every time.
    """
    if not getattr(space, "ops", None):
        return "none"
    rng = np.random.default_rng(0)
    for _ in range(n_probe):
        try:
            adj, labels = space.graph(space.sample(rng))
        except NotImplementedError:
            return "none"
        a = np.asarray(adj) != 0
        if a.ndim == 2 and a.shape[0] == a.shape[1] and (a.sum(axis=0).max(initial=0) > 1
                                                         or a.sum(axis=1).max(initial=0) > 1):
            return "dag"
    return "chain"


def require_graph_view(space: SearchSpace, what: str, paths: bool = False) -> None:
    """Raise a one-line ``NasforgeError`` when ``what`` (a kernel or an encoding that reads the
    graph view) cannot work on ``space``: the space has no graph view, or ``paths`` is asked
    (input-to-output path counts) and the view is a chain (one path per architecture: the
    encoding would tell architectures apart without relating any two of them)."""
    kind = graph_view(space)
    if kind == "none":
        why = ("it lists no 'ops' (the operation labels of its graph view)" if not getattr(space, "ops", None)
               else "its graph() is not implemented")
        raise NasforgeError(f"{what} reads the graph view of the space, and space {space.name!r} has none ({why}); "
                            "use the 'onehot' kernel/encoding, which reads space.encode()")
    if paths and kind == "chain":
        raise NasforgeError(f"{what} counts input-to-output paths of a cell, but the graph view of space "
                            f"{space.name!r} is a chain of layers (one path per architecture); use 'onehot' "
                            "(the space's own encoding), 'adjacency' or a graph kernel (hamming, wl, tw, tw2, hot)")


def layers(g: ArchGraph) -> np.ndarray:
    """Shortest-path depth of every node from the input in the pruned graph (-1: inactive)."""
    depth = [-1] * g.n
    depth[0] = 0
    todo = deque([0])
    while todo:
        u = todo.popleft()
        for v in g.succ[u]:
            if depth[v] < 0:
                depth[v] = depth[u] + 1
                todo.append(v)
    return np.array(depth, dtype=np.int64)


def paths(g: ArchGraph) -> list[tuple[str, ...]]:
    """Every input-to-output path of the pruned graph, as the tuple of its inner node labels
    (empty tuple: a direct input-output edge)."""
    last = g.n - 1
    out: list[tuple[str, ...]] = []
    stack: list[tuple[int, tuple[str, ...]]] = [(0, ())]
    while stack:
        u, labs = stack.pop()
        for v in g.succ[u]:
            if v == last:
                out.append(labs)
            else:
                stack.append((v, labs + (g.labels[v],)))
    out.sort()
    return out


# --- encoders -------------------------------------------------------------------------------------
class PathEncoder:
    """Path encoding (White et al., BANANAS): one count per possible input-to-output path, a
    path being the sequence of operations along it.

    The index of a path of length ``l`` over ``V`` non-zero operations is an offset for its
    length plus its operations read as a base-``V`` number, so the encoding does not depend on
    which architectures were seen. ``max_length`` truncates (the *truncated path encoding*):
    only paths of at most that many operations are kept (the most frequent ones: a random cell
    holds many more short paths than long ones). The full length is ``n_nodes - 2``.
    """

    def __init__(self, space: SearchSpace, max_length: int | None = None, zero_ops: Iterable[str] = ZERO_OPS,
                 graphs: GraphCache | None = None) -> None:
        self.space = space
        self.zero_ops = frozenset(zero_ops)
        self.ops = tuple(o for o in op_vocabulary(space) if o not in self.zero_ops)
        self._op_index = {o: i for i, o in enumerate(self.ops)}
        self.graphs = graphs if graphs is not None else GraphCache(space, self.zero_ops)
        if max_length is not None and max_length < 1:
            raise NasforgeError(f"max_length must be >= 1 (or None for full paths), got {max_length}")
        self.max_length = max_length
        self._sparse: dict[Hashable, dict[int, float]] = {}

    def _offset(self, length: int) -> int:
        v = len(self.ops)
        return sum(v**k for k in range(length))  # the empty path (length 0) has index 0

    def length_limit(self, arch: Any) -> int:
        n = self.graphs(arch).n
        full = max(0, n - 2)
        return full if self.max_length is None else min(full, self.max_length)

    def dim(self, arch: Any) -> int:
        """Length of the dense encoding for ``arch``'s graph size."""
        return self._offset(self.length_limit(arch) + 1)

    def sparse(self, arch: Any) -> dict[int, float]:
        """{column: count} of ``arch``'s paths."""
        hit = self._sparse.get(arch)
        if hit is not None:
            return hit
        g = self.graphs(arch)
        limit = self.length_limit(arch)
        v = len(self.ops)
        out: dict[int, float] = {}
        for p in paths(g):
            if len(p) > limit:
                continue
            idx = 0
            for lab in p:
                try:
                    idx = idx * v + self._op_index[lab]
                except KeyError:
                    raise NasforgeError(
                        f"space {self.space.name!r}: graph label {lab!r} is not one of its ops ({', '.join(self.ops)})"
                    ) from None
            col = self._offset(len(p)) + idx
            out[col] = out.get(col, 0.0) + 1.0
        self._sparse[arch] = out
        return out

    def encode(self, arch: Any) -> np.ndarray:
        """The dense encoding of one architecture (refused when it would be wider than
        :data:`MAX_DENSE_PATH_COLUMNS`: use :meth:`sparse` or ``matrix(..., compact=True)``)."""
        dim = self.dim(arch)
        if dim > MAX_DENSE_PATH_COLUMNS:
            raise NasforgeError(f"the dense path encoding of space {self.space.name!r} has {dim:.3g} columns (more than "
                                f"{MAX_DENSE_PATH_COLUMNS:.0e}); use its sparse form, matrix(archs, compact=True), or "
                                "the truncated path encoding")
        vec = np.zeros(dim)
        for c, x in self.sparse(arch).items():
            vec[c] = x
        return vec

    def matrix(self, archs: Sequence[Any], compact: bool = False) -> np.ndarray:
        """Dense encodings of ``archs`` as rows; ``compact=True`` keeps only the columns that are
        non-zero for at least one of them (what a model fitted and queried on exactly these
        architectures can use), in increasing column order."""
        rows = [self.sparse(a) for a in archs]
        if compact:
            cols = sorted(set().union(*rows)) if rows else []
            pos = {c: i for i, c in enumerate(cols)}
            out = np.zeros((len(rows), len(cols)))
            for i, r in enumerate(rows):
                for c, x in r.items():
                    out[i, pos[c]] = x
            return out
        width = max((self.dim(a) for a in archs), default=0)
        if width > MAX_DENSE_PATH_COLUMNS:
            raise NasforgeError(f"the dense path encoding of space {self.space.name!r} has {width:.3g} columns; "
                                "use matrix(archs, compact=True)")
        out = np.zeros((len(rows), width))
        for i, r in enumerate(rows):
            for c, x in r.items():
                out[i, c] = x
        return out


class SpaceEncoder:
    """The space's own fixed-length encoding (``space.encode(arch, kind)``, one-hot by default):
    no graph view needed, so it works on every space."""

    def __init__(self, space: SearchSpace, kind: str = "onehot") -> None:
        allowed = tuple(getattr(space, "encodings", ()) or ())
        if allowed and kind not in allowed:
            raise NasforgeError(f"space {space.name!r} has no {kind!r} encoding; allowed: {', '.join(allowed)}")
        self.space = space
        self.kind = kind
        self._cache: dict[Hashable, np.ndarray] = {}

    def encode(self, arch: Any) -> np.ndarray:
        v = self._cache.get(arch)
        if v is None:
            v = self._cache[arch] = np.asarray(self.space.encode(arch, self.kind), dtype=float).ravel()
        return v

    def matrix(self, archs: Sequence[Any]) -> np.ndarray:
        rows = [self.encode(a) for a in archs]
        widths = {len(r) for r in rows}
        if len(widths) > 1:
            raise NasforgeError(f"space {self.space.name!r}: encode(arch, {self.kind!r}) must have one length for every "
                                f"architecture; got lengths {sorted(widths)}")
        return np.stack(rows) if rows else np.zeros((0, 0))


class AdjacencyEncoder:
    """Adjacency encoding: the upper triangle of the raw adjacency matrix, then a one-hot of
    every inner node's operation (over ``space.ops``)."""

    def __init__(self, space: SearchSpace, graphs: GraphCache | None = None) -> None:
        self.space = space
        self.ops = op_vocabulary(space)
        self._op_index = {o: i for i, o in enumerate(self.ops)}
        self.graphs = graphs if graphs is not None else GraphCache(space)

    def encode(self, arch: Any) -> np.ndarray:
        g = self.graphs(arch)
        n = g.n
        iu = np.triu_indices(n, 1)
        onehot = np.zeros((n - 2, len(self.ops)))
        for i, lab in enumerate(g.labels[1:-1]):
            if lab not in self._op_index:
                raise NasforgeError(
                    f"space {self.space.name!r}: graph label {lab!r} is not one of its ops ({', '.join(self.ops)})"
                )
            onehot[i, self._op_index[lab]] = 1.0
        return np.concatenate([(g.adj[iu] != 0).astype(float), onehot.ravel()])

    def matrix(self, archs: Sequence[Any]) -> np.ndarray:
        rows = [self.encode(a) for a in archs]
        width = max((len(r) for r in rows), default=0)
        out = np.zeros((len(rows), width))
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out


def encoder(space: SearchSpace, kind: str, truncate: int = 2, graphs: GraphCache | None = None,
            cate_params: dict[str, Any] | None = None) -> Any:
    """An encoder by name: ``adjacency``, ``path`` or ``trunc_path`` (paths of at most ``truncate``
    operations) from the graph view, ``onehot`` (the space's own encoding), or ``cate`` (the
    learnt CATE encoding, :mod:`nasforge.estimation.predictors.cate`, pre-trained with
    ``cate_params`` on first use and cached; this one imports torch). Encoders have
    ``encode(arch)`` and ``matrix(archs)``. A graph encoding on a space without a graph view, or a
    path encoding on a space whose graph view is a chain, is a one-line error naming ``onehot``."""
    if cate_params is not None and not isinstance(cate_params, dict):
        raise NasforgeError(f"cate_params must be a dict of CATE settings, got {cate_params!r}")
    if kind == "onehot":
        return SpaceEncoder(space)
    if kind == "cate":
        require_graph_view(space, "encoding 'cate'", paths=False)
        from nasforge.estimation.predictors.cate import cate_encoder

        return cate_encoder(space, **(cate_params or {}))
    if kind not in ENCODINGS:
        raise NasforgeError(f"unknown encoding {kind!r}; allowed: {', '.join(ENCODINGS)}")
    require_graph_view(space, f"encoding {kind!r}", paths=kind != "adjacency")
    if kind == "adjacency":
        return AdjacencyEncoder(space, graphs=graphs)
    if kind == "path":
        return PathEncoder(space, graphs=graphs)
    return PathEncoder(space, max_length=truncate, graphs=graphs)


def default_encoding(space: SearchSpace) -> str:
    """The encoding a model-based strategy uses when none is chosen: ``path`` (BANANAS's) on a
    space whose graph view has branching cells, ``onehot`` (the space's own) otherwise."""
    return "path" if graph_view(space) == "dag" else "onehot"


def encode(space: SearchSpace, arch: Any, kind: str = "path", truncate: int = 2) -> np.ndarray:
    """One architecture's ``adjacency``, ``path``, ``trunc_path``, ``onehot`` or ``cate`` encoding."""
    return encoder(space, kind, truncate).encode(arch)
