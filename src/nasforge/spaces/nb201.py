"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020): 6 edges x 5 operations = 15,625 cells."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError, NotAnArchitecture, shorten
from nasforge.spaces.base import DeviceTable, SearchSpace

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: edges in the order of the official string: (from node, to node)
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
N_EDGES = len(EDGES)
_OP_INDEX = {op: i for i, op in enumerate(OPS)}

#: the 14 device columns of ``nb201/latency_ms.csv`` (HELP release; HW-NAS-Bench for the edge ones)
LATENCY_DEVICES = ("1080ti_1", "1080ti_32", "1080ti_256", "2080ti_1", "2080ti_32", "2080ti_256", "gold_6240",
                   "silver_4114", "eyeriss", "fpga", "pixel3", "raspi4", "samsung_s7", "essential_ph_1")
#: Raspberry Pi 5 runtimes of ``nb201/pi5_cifar100_latency_energy.csv`` (CIFAR-100 network)
PI5_RUNTIMES = ("pi5_onnx", "pi5_litert")
#: the network the published costs and device tables describe: C=16, N=5 on 32x32 RGB, 10 classes
DEFAULT_NET = {"C": 16, "N": 5, "num_classes": 10, "in_channels": 3, "input_size": 32}
#: the device tables of the reference data folder (both measured on the C=16, N=5, 32x32 network)
DEVICE_TABLES = {
    "latency": DeviceTable("latency", "nb201/latency_ms.csv", unit="latency_ms",
                           net={"C": 16, "N": 5, "input_size": 32},
                           description="14 devices' latency (HELP / HW-NAS-Bench)", devices=LATENCY_DEVICES),
    "pi5": DeviceTable("pi5", "nb201/pi5_cifar100_latency_energy.csv", net={"C": 16, "N": 5, "input_size": 32},
                       description="Raspberry Pi 5 latency and energy, onnxruntime and LiteRT (CIFAR-100 network)",
                       devices=PI5_RUNTIMES),
}


class NB201Arch(tuple):
    """An NB201 cell: the operation names of the 6 edges, in the official edge order."""

    __slots__ = ()

    def __str__(self) -> str:
        o = self
        return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"

    def __repr__(self) -> str:
        return f"NB201Arch('{self}')"


# every architecture object is made once and shared: construction and hashing stay cheap
_ALL: tuple[NB201Arch, ...] = tuple(NB201Arch(ops) for ops in itertools.product(OPS, repeat=N_EDGES))
_BY_OPS: dict[tuple[str, ...], NB201Arch] = {tuple(a): a for a in _ALL}
_BY_STR: dict[str, NB201Arch] = {str(a): a for a in _ALL}


def _index_of(arch: NB201Arch) -> int:
    """Position of ``arch`` in base-5 order (first edge most significant)."""
    i = 0
    for op in arch:
        i = i * 5 + _OP_INDEX[op]
    return i


def parse_nb201(text: str) -> NB201Arch:
    """Parse the official string, e.g. ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|``."""
    if not isinstance(text, str):
        raise NasforgeError(f"an NB201 architecture string is expected, got {type(text).__name__}")
    found = _BY_STR.get(text.strip())
    if found is not None:
        return found
    s = text.strip()
    nodes = s.split("+")
    if len(nodes) != 3:
        raise NasforgeError(
            f"malformed NB201 string {text!r}: expected 3 node groups separated by '+', found {len(nodes)}"
        )
    ops: list[str] = []
    pos = 0
    for node, group in enumerate(nodes, start=1):
        if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
            raise NasforgeError(
                f"malformed NB201 string {text!r}: node {node} group {group!r} at character {pos} "
                "must start and end with '|'"
            )
        items = group[1:-1].split("|")
        if len(items) != node:
            raise NasforgeError(
                f"malformed NB201 string {text!r}: node {node} (at character {pos}) needs {node} "
                f"input edge(s), found {len(items)}"
            )
        for j, item in enumerate(items):
            op, sep, src = item.partition("~")
            where = f"node {node}, edge {j + 1} ({item!r}, at character {pos})"
            if not sep:
                raise NasforgeError(f"malformed NB201 string {text!r}: {where} lacks '~<input node>'")
            if op not in _OP_INDEX:
                raise NasforgeError(
                    f"malformed NB201 string {text!r}: {where}: unknown operation {op!r}; "
                    f"allowed: {', '.join(OPS)}"
                )
            if src != str(j):
                raise NasforgeError(
                    f"malformed NB201 string {text!r}: {where}: input node must be {j}, found {src!r}"
                )
            ops.append(op)
        pos += len(group) + 1
    return _BY_OPS[tuple(ops)]


def _expr_key(arch: NB201Arch, full: bool) -> str:
    """The function a cell computes, as a normalised expression string.

    Node values are sums of terms; a term is an operation applied to an input node's value.
    Always: a sum is order-free (terms sorted), ``skip_connect`` passes its input unchanged, an
    operation whose input node is identically zero gives zero, and edges that cannot reach the
    output are ignored (only the output node's expression is kept).

    ``full=False`` is NB201's own convention (its ``to_unique_str`` with zeros considered): a zero
    term stays in a sum (``x + 0`` differs from ``x``) and a skipped sum stays one term. This gives
    the published 6,466 classes; as there, a node counts as zero only when its single term is
    zero (a node fed by two ``none`` edges is not propagated as zero). ``full=True`` applies the algebra completely (zero terms vanish,
    skipped sums are flattened): 4,930 classes, each a set of cells that compute exactly the same
    function for shared weights.
    """
    if not full:
        # NB201's own string convention, kept verbatim so the classes are exactly NB201's:
        # input "0", zero "#", an operation "(<input>)@<op>", sums "+"-joined after sorting
        nodes = ["0"]
        k = 0
        for node in range(1, 4):
            terms = []
            for src in range(node):
                op, v = arch[k], nodes[src]
                k += 1
                if op == "none" or v == "#":
                    terms.append("#")
                elif op == "skip_connect":
                    terms.append(v)
                else:
                    terms.append(f"({v})@{op}")
            nodes.append("+".join(sorted(terms)))
        return nodes[3]
    values: list[str] = ["x"]  # node 0; "0" stands for the constant zero
    k = 0
    for node in range(1, 4):
        terms: list[str] = []
        for src in range(node):
            op = arch[k]
            k += 1
            v = values[src]
            if op == "none" or v == "0":
                continue
            if op == "skip_connect":
                terms.extend(v[1:-1].split("+") if v.startswith("[") else [v])
            else:
                terms.append(f"{op}({v})")
        if not terms:
            values.append("0")
        else:
            values.append("[" + "+".join(sorted(terms)) + "]" if len(terms) > 1 else terms[0])
    return values[3]


class NB201Space(SearchSpace):
    """The 15,625 NAS-Bench-201 cells.

    Architectures are :class:`NB201Arch` values (tuples of 6 operation names, official edge
    order); their canonical string is the official NB201 string.
    """

    name = "nb201"
    ops = OPS
    edges = EDGES
    encodings = ("onehot", "index", "adjacency")

    def __init__(self) -> None:
        self._canon: dict[bool, dict[NB201Arch, str]] = {}

    # --- elements ---------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> NB201Arch:
        return _ALL[int(rng.integers(len(_ALL)))]

    def mutate(self, arch: NB201Arch, rng: np.random.Generator) -> NB201Arch:
        arch = self.coerce(arch)
        edge = int(rng.integers(N_EDGES))
        current = _OP_INDEX[arch[edge]]
        new = (current + 1 + int(rng.integers(len(OPS) - 1))) % len(OPS)
        ops = list(arch)
        ops[edge] = OPS[new]
        return _BY_OPS[tuple(ops)]

    def neighbors(self, arch: NB201Arch) -> list[NB201Arch]:
        arch = self.coerce(arch)
        out = []
        for edge in range(N_EDGES):
            for op in OPS:
                if op != arch[edge]:
                    ops = list(arch)
                    ops[edge] = op
                    out.append(_BY_OPS[tuple(ops)])
        return out

    def parse(self, text: str) -> NB201Arch:
        return parse_nb201(text)

    def format(self, arch: Any) -> str:
        if isinstance(arch, NB201Arch):
            return str(arch)
        if isinstance(arch, (tuple, list)) and tuple(arch) in _BY_OPS:
            return str(_BY_OPS[tuple(arch)])
        raise NasforgeError(f"{arch!r} is not an NB201 architecture")

    def coerce(self, arch: Any) -> NB201Arch:
        return _coerce(arch)

    def __contains__(self, arch: object) -> bool:
        return isinstance(arch, (tuple, list)) and tuple(arch) in _BY_OPS

    def __iter__(self) -> Iterator[NB201Arch]:
        return iter(_ALL)

    def __len__(self) -> int:
        return len(_ALL)

    def index(self, arch: Any) -> int:
        """Position in base-5 enumeration order (not the official NB201 benchmark index)."""
        return _index_of(self.coerce(arch))

    # --- equivalence ------------------------------------------------------------------------
    def canonical_key(self, arch: Any) -> str:
        """Key shared by isomorphic cells: NB201's convention, 6,466 classes over 15,625 cells.

        Treated as equal: the terms of a sum in any order; ``skip_connect`` as the identity; an
        operation fed by an identically-zero node as zero; edges that cannot reach the output.
        Not merged (as in NB201): a ``none`` edge beside other inputs (``x + 0`` vs ``x``).
        See :meth:`functional_key` for the complete algebra.
        """
        return self._key(arch, full=False)

    def functional_key(self, arch: Any) -> str:
        """Key shared by cells computing the same function (4,930 classes): zero terms vanish."""
        return self._key(arch, full=True)

    def _key(self, arch: Any, full: bool) -> str:
        arch = self.coerce(arch)
        table = self._canon.get(full)
        if table is None:
            table = self._canon[full] = {a: _expr_key(a, full) for a in _ALL}
        return table[arch]

    # --- encodings --------------------------------------------------------------------------
    def encode(self, arch: Any, kind: str = "onehot") -> np.ndarray:
        arch = self.coerce(arch)
        if kind == "onehot":
            v = np.zeros(N_EDGES * len(OPS), dtype=np.float32)
            for e, op in enumerate(arch):
                v[e * len(OPS) + _OP_INDEX[op]] = 1.0
            return v
        if kind == "index":
            return np.array([_OP_INDEX[op] for op in arch], dtype=np.int64)
        if kind == "adjacency":
            adj, labels = self.graph(arch)
            n = adj.shape[0]
            iu = np.triu_indices(n, 1)
            node_ops = np.zeros((n - 2, len(OPS)), dtype=np.float32)
            for i, lab in enumerate(labels[1:-1]):
                node_ops[i, _OP_INDEX[lab]] = 1.0
            return np.concatenate([adj[iu].astype(np.float32), node_ops.ravel()])
        raise NasforgeError(f"unknown encoding {kind!r} for space nb201; allowed: {', '.join(self.encodings)}")

    def graph(self, arch: Any) -> tuple[np.ndarray, list[str]]:
        """Ops-on-nodes DAG: node 0 input, nodes 1..6 the 6 edge operations, node 7 output."""
        arch = self.coerce(arch)
        n = N_EDGES + 2
        adj = np.zeros((n, n), dtype=np.int8)
        for k, (src, dst) in enumerate(EDGES):
            node = k + 1
            if src == 0:
                adj[0, node] = 1
            else:  # fed by every operation that ends at node `src`
                for k2, (_s2, d2) in enumerate(EDGES):
                    if d2 == src:
                        adj[k2 + 1, node] = 1
            if dst == 3:
                adj[node, n - 1] = 1
        return adj, ["input", *arch, "output"]

    # --- networks ---------------------------------------------------------------------------
    def build(
        self,
        arch: Any,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
    ) -> Any:
        """The official NB201 network: stem, 3 stages of ``N`` cells, residual reductions, head.

        ``C`` channels in the first stage (doubled at each reduction); ``input_size`` is the side
        of the (square) input image, recorded on the module for FLOP counting.
        """
        from nasforge.spaces.nb201_net import NB201Network

        return NB201Network(
            self.coerce(arch), C=C, N=N, num_classes=num_classes, in_channels=in_channels, input_size=input_size
        )

    def supernet_layout(self) -> Any:
        """The supernet protocol of the space (:mod:`nasforge.spaces.nb201_supernet`): 6 edges x
        5 operations, every combination a cell."""
        from nasforge.spaces.nb201_supernet import LAYOUT

        return LAYOUT

    # --- cost models --------------------------------------------------------------------------
    def default_net(self) -> dict[str, Any]:
        """C=16, N=5, 10 classes, 32x32 RGB: the network of the published NB201 costs."""
        return dict(DEFAULT_NET)

    def param_count(self, arch: Any, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3,
                    input_size: int = 32) -> int:
        """Parameters of :meth:`build`'s network in closed form
        (:func:`~nasforge.spaces.nb201_net.nb201_param_count`; ``input_size`` does not matter)."""
        from nasforge.spaces.nb201_net import nb201_param_count

        return nb201_param_count(arch, C=C, N=N, num_classes=num_classes, in_channels=in_channels)

    def flops(self, arch: Any, convention: str = "nb201", C: int = 16, N: int = 5, num_classes: int = 10,
              in_channels: int = 3, input_size: int = 32) -> int:
        """Multiply-adds of :meth:`build`'s network on one input, in closed form (:func:`nb201_flops`)."""
        return nb201_flops(arch, C=C, N=N, num_classes=num_classes, in_channels=in_channels,
                           input_size=input_size, convention=convention)

    def device_tables(self) -> dict[str, DeviceTable]:
        """``latency`` (14 devices, HELP / HW-NAS-Bench) and ``pi5`` (Raspberry Pi 5 latency and
        energy), both of the C=16, N=5, 32x32 network."""
        return dict(DEVICE_TABLES)


def nb201_flops(arch: Any, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3,
                input_size: int = 32, convention: str = "nb201") -> int:
    """FLOPs (MACs) of the NB201 network for ``arch`` in closed form; equals counting with hooks
    (:func:`nasforge.spaces.counting.count_flops`) on the built network.

    With ``e3``/``e1``/``ep`` cells edges ``nor_conv_3x3``/``nor_conv_1x1``/``avg_pool_3x3`` and
    stage widths ``c = C, 2C, 4C`` at sides ``s = input_size, /2, /4`` (``N`` cells each), the cell
    part is ``N * sum_c,s (9 e3 + e1) c^2 s^2`` (+ ``9 ep c s^2`` with pooling, + ``3 (e3 + e1) c s^2``
    for BatchNorm and ReLU in ``"full"``); ``none`` and ``skip_connect`` cost nothing. For C=16,
    N=5 on CIFAR-10 (32x32) the official count is ``7,783,050 + 35,389,440 e3 + 3,932,160 e1``,
    the published range 7.78305 to 220.11969 MFLOPs.
    """
    from nasforge.spaces.counting import check_convention

    check_convention(convention)
    check_network_config(C, N, num_classes, in_channels, input_size)
    arch = _coerce(arch)
    pools = convention in ("nb201+pool", "full")
    full = convention == "full"
    e3, e1, ep = arch.count("nor_conv_3x3"), arch.count("nor_conv_1x1"), arch.count("avg_pool_3x3")
    total = 0
    h = input_size
    total += 9 * in_channels * C * h * h + (2 * C * h * h if full else 0)  # stem conv (+ BN)
    c = C
    for stage in range(3):
        if stage:  # residual reduction c -> 2c, side h -> h/2
            o = h // 2
            total += 9 * c * 2 * c * o * o + 9 * (2 * c) ** 2 * o * o + c * 2 * c * o * o  # conv_a, conv_b, 1x1
            if pools:
                total += 4 * c * o * o  # 2x2 average pooling on the shortcut
            if full:
                total += c * h * h + 2 * 2 * c * o * o + 2 * c * o * o + 2 * 2 * c * o * o  # ReLU, BN, ReLU, BN
            c, h = 2 * c, o
        elems = c * h * h
        cell = (9 * e3 + e1) * c * elems
        if pools:
            cell += 9 * ep * elems
        if full:
            cell += 3 * (e3 + e1) * elems
        total += N * cell
    total += c * num_classes + (0 if convention == "macs" else num_classes)  # classifier (+ its bias)
    if full:
        total += 3 * c * h * h + c * h * h  # lastact BN (2) + ReLU (1), global pooling input
    return int(total)


def _coerce(arch: Any) -> NB201Arch:
    if isinstance(arch, NB201Arch):
        return arch
    if isinstance(arch, str):
        return parse_nb201(arch)
    if isinstance(arch, (tuple, list)):
        try:
            found = _BY_OPS.get(tuple(arch))
        except TypeError:  # unhashable items: not op names
            found = None
        if found is not None:
            return found
    raise NotAnArchitecture(f"{shorten(arch)} is not an NB201 architecture (6 op names from {', '.join(OPS)})")


def check_network_config(C: int, N: int, num_classes: int, in_channels: int, input_size: int) -> None:
    """Raise a clear error unless the NB201 network settings are valid (positive integers, input
    side divisible by 4 for the two stride-2 reductions)."""
    for name, v in (("C", C), ("N", N), ("num_classes", num_classes), ("in_channels", in_channels),
                    ("input_size", input_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise NasforgeError(f"{name} must be a positive integer, got {v!r}")
    if input_size % 4:
        raise NasforgeError(f"input_size must be divisible by 4 (two stride-2 reductions), got {input_size}")

