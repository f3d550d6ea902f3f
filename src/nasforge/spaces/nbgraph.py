"""The NAS-Bench-Graph space (Qin et al., NeurIPS 2022): GNN macro cells of 4 computing nodes.

A cell has an input node (the pre-processed node features), 4 computing nodes and an output
node. Computing node ``i`` (1..4) applies one graph operation to the output of one earlier node,
``links[i - 1]`` (0 is the input, ``k`` is computing node ``k``); every computing node that no
other node reads (a leaf) feeds the output. The paper restricts the wiring to 9 link patterns
(``LINK_PATTERNS``) and draws the operations from 9 choices (5 for ogbn-proteins).

Many (links, ops) pairs compute the same function (leaves in another order, ``skip`` nodes that
can be moved). The benchmark stores one entry per class, keyed by the package's
``Arch(links, ops).valid_hash()``; this space holds exactly one representative per class, the
pair that the package's normal form leaves unchanged (its ``check_isomorph``). Every
architecture you hand the space, in any of the 24 possible wirings, is mapped onto its
representative, so the space and the benchmark agree one to one.

The canonical string of an architecture is ``<links>|<ops>``: the 4 link indices joined by ``-``
and the 4 operation names joined by ``,``, in node order, e.g. ``0-1-2-3|gcn,gin,fc,cheb`` (a
chain: gcn, then gin on its output, fc on that, cheb last).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.spaces.base import SearchSpace

#: the 9 link patterns of the paper, in the package's order (``link_list``)
LINK_PATTERNS: tuple[tuple[int, int, int, int], ...] = (
    (0, 0, 0, 0),
    (0, 0, 0, 1),
    (0, 0, 1, 1),
    (0, 0, 1, 2),
    (0, 0, 1, 3),
    (0, 1, 1, 1),
    (0, 1, 1, 2),
    (0, 1, 2, 2),
    (0, 1, 2, 3),
)
#: the 9 operations (package ``gnn_list``); their order fixes the digits of the benchmark key
OPS_FULL: tuple[str, ...] = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")
#: the 5 operations benchmarked on ogbn-proteins (package ``gnn_list_proteins``)
OPS_PROTEINS: tuple[str, ...] = ("gcn", "sage", "arma", "fc", "skip")
OP_SETS: dict[str, tuple[str, ...]] = {"full": OPS_FULL, "proteins": OPS_PROTEINS}
N_NODES = 4
_LINK_INDEX = {lk: i for i, lk in enumerate(LINK_PATTERNS)}


class NBGraphArch(tuple):
    """A NAS-Bench-Graph cell: ``(links, ops)``, a tuple of 4 ints and a tuple of 4 op names.

    ``links[i]`` is the node computing node ``i + 1`` reads (0 = the input); ``ops[i]`` is its
    operation. ``str()`` gives the canonical string ``0-1-2-3|gcn,gin,fc,cheb``. The value
    compares and hashes like the plain pair ``(links, ops)``. Construct architectures through
    :class:`NBGraphSpace` (``parse``/``coerce``), which also maps them onto the representative
    the benchmark stores.
    """

    __slots__ = ()

    def __new__(cls, links: Any, ops: Any) -> NBGraphArch:
        return super().__new__(cls, (tuple(int(v) for v in links), tuple(str(o) for o in ops)))

    def __getnewargs__(self) -> tuple[tuple[int, ...], tuple[str, ...]]:  # pickling, copying
        return self[0], self[1]

    @property
    def links(self) -> tuple[int, ...]:
        return self[0]

    @property
    def ops(self) -> tuple[str, ...]:
        return self[1]

    def __str__(self) -> str:
        return "-".join(map(str, self[0])) + "|" + ",".join(self[1])

    def __repr__(self) -> str:
        return f"NBGraphArch('{self}')"


# --- the canonical representatives, built once on first use ----------------------------------
class _Tables:
    """Representatives of one op set, in benchmark-key order, with lookups."""

    __slots__ = ("archs", "position", "keys")

    def __init__(self, archs: tuple[NBGraphArch, ...], keys: list[int]) -> None:
        self.archs = archs
        self.keys = keys
        self.position = {a: i for i, a in enumerate(archs)}


_TABLES: dict[str, _Tables] = {}
_KEY: dict[NBGraphArch, int] = {}  # representative -> benchmark key (all 26,206)
_BY_KEY: dict[int, NBGraphArch] = {}  # benchmark key -> representative


def _package_arch(links: Any, ops: Any) -> Any:
    from nas_bench_graph.architecture import Arch

    return Arch(list(links), list(ops))


def _full_tables() -> _Tables:
    tables = _TABLES.get("full")
    if tables is not None:
        return tables
    from nas_bench_graph import architecture as pkg

    # the constants above must be the package's: they define the benchmark keys
    if tuple(map(tuple, pkg.link_list)) != LINK_PATTERNS or tuple(pkg.gnn_list) != OPS_FULL:
        raise NasforgeError("the installed nas_bench_graph defines other link patterns or operations than nasforge expects")
    archs: list[NBGraphArch] = []
    keys: list[int] = []
    # link pattern major, then ops in base-9 order: this is increasing benchmark-key order
    for links in LINK_PATTERNS:
        for ops in itertools.product(OPS_FULL, repeat=N_NODES):
            if all(o == "skip" for o in ops):
                continue
            a = pkg.Arch(list(links), list(ops))
            if a.check_isomorph():  # the pair is its own normal form (a is left unchanged)
                arch = NBGraphArch(links, ops)
                archs.append(arch)
                keys.append(a.hash_arch())
    _KEY.update(zip(archs, keys))
    _BY_KEY.update(zip(keys, archs))
    tables = _TABLES["full"] = _Tables(tuple(archs), keys)
    return tables


def _tables(op_set: str) -> _Tables:
    tables = _TABLES.get(op_set)
    if tables is None:
        full = _full_tables()
        if op_set == "full":
            return full
        allowed = set(OP_SETS[op_set])
        # the normal form only permutes operations, so a subset's representatives are the
        # full representatives whose operations all lie in the subset
        pairs = [(a, k) for a, k in zip(full.archs, full.keys) if allowed.issuperset(a.ops)]
        tables = _TABLES[op_set] = _Tables(tuple(a for a, _ in pairs), [k for _, k in pairs])
    return tables


def _representative(links: tuple[int, ...], ops: tuple[str, ...]) -> NBGraphArch:
    """The stored representative of a validated (links, ops) pair."""
    full = _full_tables()
    hit = full.position.get((links, ops))
    if hit is not None:
        return full.archs[hit]
    return _BY_KEY[_package_arch(links, ops).valid_hash()]


# --- the space -----------------------------------------------------------------------------------
class NBGraphSpace(SearchSpace):
    """The NAS-Bench-Graph architectures: one representative per benchmark entry.

    ``ops="full"``: the 9 operations, 26,206 architectures (the keys of every ``.bench`` file
    but proteins). ``ops="proteins"``: the 5 operations of ogbn-proteins (gcn, sage, arma, fc,
    skip), 2,021 architectures, exactly the keys of ``proteins.bench``. (The package's own search
    script ``runnni.py`` uses another 5-op list, gcn, arma, cheb, fc, skip; the stored proteins
    table matches ``gnn_list_proteins`` instead, as used here.)

    Count: 9 link patterns x 9^4 op tuples = 59,049 pairs, less the 9 all-``skip`` ones; the
    normal form merges equivalent pairs into 26,206 classes (2,021 for the 5 proteins ops).

    Architectures are :class:`NBGraphArch` values, iterated in increasing benchmark-key order
    (link pattern, then operations in the package's op order).
    """

    name = "nbgraph"
    encodings = ("onehot", "adjacency")
    links = LINK_PATTERNS

    def __init__(self, ops: str = "full") -> None:
        if not isinstance(ops, str) or ops not in OP_SETS:
            raise NasforgeError(
                f"unknown NAS-Bench-Graph op set {ops!r}; allowed: full ({', '.join(OPS_FULL)}), "
                f"proteins ({', '.join(OPS_PROTEINS)})"
            )
        self.op_set = ops
        self.ops: tuple[str, ...] = OP_SETS[ops]
        self._op_index = {op: i for i, op in enumerate(self.ops)}

    def __repr__(self) -> str:
        return f"NBGraphSpace(ops={self.op_set!r})"

    @property
    def _t(self) -> _Tables:
        return _tables(self.op_set)

    # --- validation ---------------------------------------------------------------------------
    def _check(self, links: Any, ops: Any, what: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """Validated (links, ops) as plain tuples; a NasforgeError naming the bad part otherwise."""
        if isinstance(links, (str, bytes)) or not hasattr(links, "__len__") or len(links) != N_NODES:
            raise NasforgeError(f"{what}: links must be {N_NODES} integers (e.g. (0, 1, 2, 3)), got {links!r}")
        if isinstance(ops, (str, bytes)) or not hasattr(ops, "__len__") or len(ops) != N_NODES:
            raise NasforgeError(f"{what}: ops must be {N_NODES} operation names, got {ops!r}")
        lk: list[int] = []
        for i, v in enumerate(links):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise NasforgeError(f"{what}: link of node {i + 1} must be an integer, got {v!r}")
            if not 0 <= int(v) <= i:
                raise NasforgeError(
                    f"{what}: node {i + 1} reads from {int(v)}, but may only read from 0..{i} "
                    "(0 is the input, k is computing node k)"
                )
            lk.append(int(v))
        for i, op in enumerate(ops):
            if not isinstance(op, str) or op not in self._op_index:
                raise NasforgeError(
                    f"{what}: unknown operation {op!r} at node {i + 1} for the {self.op_set} op set; "
                    f"allowed: {', '.join(self.ops)}"
                )
        if all(op == "skip" for op in ops):
            raise NasforgeError(f"{what}: all four operations are 'skip'; the benchmark has no such cell")
        return tuple(lk), tuple(str(op) for op in ops)

    # --- elements -----------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> NBGraphArch:
        archs = self._t.archs
        return archs[int(rng.integers(len(archs)))]

    def mutate(self, arch: Any, rng: np.random.Generator) -> NBGraphArch:
        """One random local change: with probability 1/5 each, a new operation at one of the 4
        nodes (uniform over the other operations) or a new link pattern (uniform over the other
        8); the result is mapped to its representative. A change that leads back to ``arch`` or
        to an all-``skip`` cell is drawn again, so the result is always one of ``neighbors(arch)``.
        """
        arch = self.coerce(arch)
        links, ops = arch
        n_ops = len(self.ops)
        for _ in range(100):
            k = int(rng.integers(N_NODES + 1))
            if k < N_NODES:
                new = (self._op_index[ops[k]] + 1 + int(rng.integers(n_ops - 1))) % n_ops
                new_ops = ops[:k] + (self.ops[new],) + ops[k + 1 :]
                if all(o == "skip" for o in new_ops):
                    continue
                cand = _representative(links, new_ops)
            else:
                li = _LINK_INDEX[links]
                new_li = (li + 1 + int(rng.integers(len(LINK_PATTERNS) - 1))) % len(LINK_PATTERNS)
                cand = _representative(LINK_PATTERNS[new_li], ops)
            if cand != arch:
                return cand
        nbrs = self.neighbors(arch)  # practically unreachable: an op change always differs
        return nbrs[int(rng.integers(len(nbrs)))]

    def neighbors(self, arch: Any) -> list[NBGraphArch]:
        """Every one-operation change (node by node, ops in space order), then every other link
        pattern (in ``LINK_PATTERNS`` order); mapped to representatives, first occurrence kept,
        ``arch`` itself and all-``skip`` cells left out."""
        arch = self.coerce(arch)
        links, ops = arch
        seen: set[NBGraphArch] = {arch}
        out: list[NBGraphArch] = []

        def add(cand: NBGraphArch) -> None:
            if cand not in seen:
                seen.add(cand)
                out.append(cand)

        for k in range(N_NODES):
            for op in self.ops:
                if op != ops[k]:
                    new_ops = ops[:k] + (op,) + ops[k + 1 :]
                    if not all(o == "skip" for o in new_ops):
                        add(_representative(links, new_ops))
        for lk in LINK_PATTERNS:
            if lk != links:
                add(_representative(lk, ops))
        return out

    def parse(self, text: str) -> NBGraphArch:
        """Read ``<links>|<ops>``, e.g. ``0-1-2-3|gcn,gin,fc,cheb``; any of the 24 wirings is
        accepted and mapped to its representative, so ``format(parse(s))`` may differ from ``s``
        for a non-canonical ``s`` (``parse(format(a)) == a`` always)."""
        if not isinstance(text, str):
            raise NasforgeError(f"a NAS-Bench-Graph architecture string is expected, got {type(text).__name__}")
        bad = f"malformed NAS-Bench-Graph string {text!r}"
        s = text.strip()
        start = len(text) - len(text.lstrip())
        if s.count("|") != 1:
            raise NasforgeError(
                f"{bad}: expected '<links>|<ops>' with exactly one '|' (e.g. 0-1-2-3|gcn,gin,fc,cheb), "
                f"found {s.count('|')}"
            )
        left, right = s.split("|")
        link_tokens = left.split("-")
        if len(link_tokens) != N_NODES:
            raise NasforgeError(
                f"{bad}: the link part {left!r} (at character {start}) has {len(link_tokens)} entries "
                f"separated by '-', expected {N_NODES} (e.g. 0-1-2-3)"
            )
        links: list[int] = []
        pos = start
        for i, tok in enumerate(link_tokens):
            t = tok.strip()
            if not t.isdigit() or not t.isascii():
                raise NasforgeError(
                    f"{bad}: link {i + 1} {tok!r} (at character {pos}) is not a non-negative integer"
                )
            v = int(t)
            if v > i:
                raise NasforgeError(
                    f"{bad}: link {i + 1} (at character {pos}) makes node {i + 1} read from {v}, but it "
                    f"may only read from 0..{i} (0 is the input, k is computing node k)"
                )
            links.append(v)
            pos += len(tok) + 1
        op_tokens = right.split(",")
        pos = start + len(left) + 1
        if len(op_tokens) != N_NODES:
            raise NasforgeError(
                f"{bad}: the op part {right!r} (at character {pos}) has {len(op_tokens)} entries "
                f"separated by ',', expected {N_NODES}; allowed ops: {', '.join(self.ops)}"
            )
        ops: list[str] = []
        for i, tok in enumerate(op_tokens):
            t = tok.strip()
            if t not in self._op_index:
                raise NasforgeError(
                    f"{bad}: op {i + 1} {tok!r} (at character {pos}) is not an operation of the "
                    f"{self.op_set} op set; allowed: {', '.join(self.ops)}"
                )
            ops.append(t)
            pos += len(tok) + 1
        if all(o == "skip" for o in ops):
            raise NasforgeError(f"{bad}: all four operations are 'skip'; the benchmark has no such cell")
        return _representative(tuple(links), tuple(ops))

    def format(self, arch: Any) -> str:
        """The canonical string of ``arch``'s representative, e.g. ``0-1-2-3|gcn,gin,fc,cheb``."""
        return str(self.coerce(arch))

    def coerce(self, arch: Any) -> NBGraphArch:
        """An :class:`NBGraphArch`, its string, or a ``(links, ops)`` pair -> the representative."""
        if isinstance(arch, str):
            return self.parse(arch)
        t = self._t
        try:
            hit = t.position.get(arch)
        except TypeError:  # unhashable, e.g. lists inside
            hit = None
        if hit is not None:
            return t.archs[hit]
        if not isinstance(arch, (tuple, list)) or len(arch) != 2:
            raise NasforgeError(
                f"{arch!r} is not a NAS-Bench-Graph architecture: expected an NBGraphArch, a string "
                "such as '0-1-2-3|gcn,gin,fc,cheb' or a (links, ops) pair"
            )
        links, ops = self._check(arch[0], arch[1], f"invalid NAS-Bench-Graph architecture {arch!r}")
        return _representative(links, ops)

    def __contains__(self, arch: object) -> bool:
        """Whether ``arch`` is one of this space's representatives (not merely equivalent to one)."""
        try:
            return arch in self._t.position
        except TypeError:
            return False

    def __iter__(self) -> Iterator[NBGraphArch]:
        return iter(self._t.archs)

    def __len__(self) -> int:
        return len(self._t.archs)

    def index(self, arch: Any) -> int:
        """Position of ``arch``'s representative in iteration order."""
        return self._t.position[self.coerce(arch)]

    # --- equivalence --------------------------------------------------------------------------
    def canonical_key(self, arch: Any) -> int:
        """The benchmark key: the package's ``Arch(links, ops).valid_hash()``."""
        return _KEY[self.coerce(arch)]

    # --- encodings ----------------------------------------------------------------------------
    def encode(self, arch: Any, kind: str = "onehot") -> np.ndarray:
        """``onehot``: link pattern one-hot (9) then each node's op one-hot (4 x n_ops).
        ``adjacency``: upper triangle of :meth:`graph`'s 6x6 adjacency (15) then the node ops
        one-hot (4 x n_ops)."""
        arch = self.coerce(arch)
        links, ops = arch
        n_ops = len(self.ops)
        node_ops = np.zeros(N_NODES * n_ops, dtype=np.float32)
        for i, op in enumerate(ops):
            node_ops[i * n_ops + self._op_index[op]] = 1.0
        if kind == "onehot":
            lk = np.zeros(len(LINK_PATTERNS), dtype=np.float32)
            lk[_LINK_INDEX[links]] = 1.0
            return np.concatenate([lk, node_ops])
        if kind == "adjacency":
            adj, _ = self.graph(arch)
            iu = np.triu_indices(adj.shape[0], 1)
            return np.concatenate([adj[iu].astype(np.float32), node_ops])
        raise NasforgeError(f"unknown encoding {kind!r} for space nbgraph; allowed: {', '.join(self.encodings)}")

    def graph(self, arch: Any) -> tuple[np.ndarray, list[str]]:
        """Ops-on-nodes DAG: node 0 input, nodes 1..4 the computing nodes (labelled by their op),
        node 5 output. Node ``i`` has an edge from ``links[i - 1]``; every computing node no
        other node reads (a leaf) has an edge to the output."""
        links, ops = self.coerce(arch)
        n = N_NODES + 2
        adj = np.zeros((n, n), dtype=np.int8)
        for i, src in enumerate(links):
            adj[src, i + 1] = 1
        for node in range(1, N_NODES + 1):
            if not adj[node, 1 : N_NODES + 1].any():
                adj[node, n - 1] = 1
        return adj, ["input", *ops, "output"]

    # --- networks -----------------------------------------------------------------------------
    def build(self, arch: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "building NAS-Bench-Graph GNNs is not implemented yet; use "
            "nasforge.estimation.load_nbgraph(dataset) for the benchmark's measured results"
        )
