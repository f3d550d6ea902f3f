"""Architecture kernels for Gaussian-process BO, defined through the space's graph view
(``hamming``, ``path``, ``wl``, ``tw``, ``tw2``, ``hot``) or its own encoding (``onehot``, the
generic kernel: every space has ``encode``). ``auto`` (the strategies' default) is ``tw2`` on a
space whose graph view has branching cells and ``onehot`` otherwise (see :func:`default_kernel`).
A graph kernel on a space without a graph view, or the path kernel on a space whose graph view
is a chain of layers, is a one-line error naming ``onehot``.

A kernel splits into a hyperparameter-free part and a cheap combination:

* ``pairwise(fa, fb)`` returns *components* of shape ``(k, len(fa), len(fb))``: distances
  (Hamming, path, tree-Wasserstein, hierarchical OT) or normalised similarities
  (Weisfeiler-Lehman). These are the expensive part and are cached by :class:`KernelCache`,
  which updates them incrementally as observations arrive.
* ``gram(C, theta, scales)`` turns components into a unit-diagonal covariance matrix with the
  hyperparameters ``theta`` (log lengthscales, or WL level weights); the GP multiplies it by its
  variance sigma^2. Distance kernels are ``exp(-sum_i d_i / l_i)``.

Positive semi-definiteness. One-hot, Hamming, path and tree-Wasserstein distances are L1 distances
between embeddings (a tree-Wasserstein distance is the weighted L1 distance between subtree
masses), hence negative definite, so ``exp(-sum_i d_i / l_i)`` is PSD for every lengthscale
(Schoenberg); a sum of normalised WL dot products is PSD too. The hierarchical OT distance is a
fused Gromov-Wasserstein value, which is not negative definite: its kernel can be indefinite.
The GP handles that (see :func:`nasforge.strategies.bo.gp.robust_cholesky`): it adds growing
jitter and, when that is not enough, projects the training covariance onto the PSD cone by
clipping negative eigenvalues; the number of clips is recorded (``GaussianProcess.n_clipped``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist

from nasforge.errors import NasforgeError, unknown
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.bo.encodings import (
    ZERO_OPS,
    AdjacencyEncoder,
    ArchGraph,
    GraphCache,
    PathEncoder,
    SpaceEncoder,
    graph_view,
    layers,
    op_vocabulary,
    require_graph_view,
)

KERNELS: tuple[str, ...] = ("hamming", "path", "wl", "tw", "tw2", "hot", "onehot")
#: what ``kernel="auto"`` may resolve to
AUTO = "auto"


def default_op_groups(ops: Iterable[str]) -> dict[str, str]:
    """Group operations by family from their names: ``*conv*`` and ``*pool*`` share a group,
    every other operation is its own group (NB201: two convolutions, one pooling, skip, none;
    NAS-Bench-Graph: every GNN operation alone)."""
    out = {}
    for op in ops:
        low = op.lower()
        out[op] = "conv" if "conv" in low else "pool" if "pool" in low else op
    return out


# --- the base class -------------------------------------------------------------------------------
class ArchKernel(ABC):
    """A kernel between architectures of one space (see the module docstring)."""

    name: str = ""
    #: one name per component returned by :meth:`pairwise`
    components: tuple[str, ...] = ()
    #: components are similarities in [0, 1] (True) or distances >= 0 (False)
    similarity: bool = False
    #: whether ``gram`` is PSD for every hyperparameter value
    psd: bool = True
    #: pairwise components cost little (vectorised); expensive kernels avoid candidate x candidate blocks
    cheap: bool = True
    #: reads the space's graph view (checked at construction: a clear error where there is none)
    needs_graph: bool = True
    #: counts input-to-output paths (meaningless on a chain of layers: refused there)
    needs_paths: bool = False

    def __init__(self, space: SearchSpace, zero_ops: Iterable[str] = ZERO_OPS,
                 graphs: GraphCache | None = None) -> None:
        self.space = space
        self.zero_ops = frozenset(zero_ops)
        self.graphs = graphs if graphs is not None else GraphCache(space, self.zero_ops)
        if self.needs_graph:
            require_graph_view(space, f"kernel {self.name!r}", paths=self.needs_paths)

    @property
    def k(self) -> int:
        return len(self.components)

    @abstractmethod
    def features(self, arch: Any) -> Any:
        """Per-architecture data the components are computed from (cached by the caller)."""

    @abstractmethod
    def pairwise(self, fa: Sequence[Any], fb: Sequence[Any]) -> np.ndarray:
        """Components between two lists of features: shape ``(k, len(fa), len(fb))``."""

    def pairwise_sym(self, fa: Sequence[Any]) -> np.ndarray:
        """Components among one list of features (symmetric, self terms exact)."""
        c = self.pairwise(fa, fa)
        c = 0.5 * (c + c.transpose(0, 2, 1))
        idx = np.arange(len(fa))
        c[:, idx, idx] = self.self_component()[:, None]
        return c

    def self_component(self) -> np.ndarray:
        """Components of an architecture with itself: 0 for distances, 1 for similarities."""
        return np.full(self.k, 1.0 if self.similarity else 0.0)

    # --- hyperparameters -------------------------------------------------------------------------
    def theta0(self) -> np.ndarray:
        return np.zeros(self.k)

    def theta_bounds(self) -> list[tuple[float, float]]:
        return [(float(np.log(0.05)), float(np.log(20.0)))] * self.k

    def scales(self, C: np.ndarray) -> np.ndarray:
        """Typical size of each distance component among the observations (lengthscales are
        relative to it, so one default and one set of bounds fit every space)."""
        if self.similarity:
            return np.ones(self.k)
        out = np.ones(self.k)
        for i in range(self.k):
            vals = C[i][np.triu_indices(C.shape[1], 1)]
            vals = vals[vals > 0]
            if len(vals):
                out[i] = float(vals.mean())
        return out

    def gram(self, C: np.ndarray, theta: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Unit-diagonal covariance from components: ``exp(-sum_i C_i / (s_i exp(theta_i)))``."""
        inv = 1.0 / (scales * np.exp(theta))
        return np.exp(-np.tensordot(inv, C, axes=1))

    def gram_grads(self, C: np.ndarray, theta: np.ndarray, scales: np.ndarray, K: np.ndarray) -> list[np.ndarray]:
        """d gram / d theta_i for each i."""
        inv = 1.0 / (scales * np.exp(theta))
        return [K * (C[i] * inv[i]) for i in range(self.k)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(space={self.space.name!r})"


# --- the space's own encoding -----------------------------------------------------------------------
class OneHotKernel(ArchKernel):
    """Laplace kernel on the space's own encoding: ``exp(-||e_x - e_y||_1 / l)`` with ``e`` =
    ``space.encode(arch, encoding)`` (one-hot by default; for independent categorical choices
    the L1 distance is twice the number of choices that differ). Needs no graph view, so it works
    on every space: the generic kernel. PSD (L1 distance)."""

    name = "onehot"
    components = ("onehot",)
    needs_graph = False

    def __init__(self, space: SearchSpace, encoding: str = "onehot", **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self._enc = SpaceEncoder(space, encoding)
        self.encoding = encoding

    def features(self, arch: Any) -> np.ndarray:
        return self._enc.encode(arch)

    def pairwise(self, fa: Sequence[Any], fb: Sequence[Any]) -> np.ndarray:
        if not len(fa) or not len(fb):
            return np.zeros((1, len(fa), len(fb)))
        widths = {len(f) for f in (*fa, *fb)}
        if len(widths) > 1:
            raise NasforgeError(f"space {self.space.name!r}: encode(arch, {self.encoding!r}) must have one length for "
                                f"every architecture; got lengths {sorted(widths)}")
        return cdist(np.stack(fa), np.stack(fb), "cityblock")[None]


# --- Hamming / adjacency ---------------------------------------------------------------------------
class HammingKernel(ArchKernel):
    """Hamming kernel on the adjacency (one-hot) encoding: ``exp(-d_ops/l_1 - d_adj/l_2)``, with
    ``d_ops`` the number of inner nodes whose operation differs and ``d_adj`` the number of
    differing adjacency entries. PSD: a product of per-coordinate categorical kernels."""

    name = "hamming"
    components = ("ops", "adjacency")

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self.ops = op_vocabulary(space)
        self._enc = AdjacencyEncoder(space, graphs=self.graphs)

    def features(self, arch: Any) -> tuple[np.ndarray, np.ndarray]:
        g = self.graphs(arch)
        n = g.n
        vec = self._enc.encode(arch)
        m = n * (n - 1) // 2
        adj = vec[:m]
        labels = vec[m:].reshape(n - 2, len(self.ops)).argmax(axis=1).astype(float)
        return labels, adj

    def pairwise(self, fa: Sequence[Any], fb: Sequence[Any]) -> np.ndarray:
        def stack(fs: Sequence[Any], j: int, width: int) -> np.ndarray:
            out = np.full((len(fs), width), -1.0)
            for i, f in enumerate(fs):
                out[i, : len(f[j])] = f[j]
            return out

        out = np.zeros((2, len(fa), len(fb)))
        if not len(fa) or not len(fb):
            return out
        for j in range(2):
            width = max(len(f[j]) for f in (*fa, *fb))
            out[j] = cdist(stack(fa, j, width), stack(fb, j, width), "hamming") * width
        return out


# --- path encoding ---------------------------------------------------------------------------------
class PathKernel(ArchKernel):
    """Laplace kernel on the path encoding (the BANANAS encoding): ``exp(-||p_x - p_y||_1 / l)``.
    PSD (L1 distance). ``max_length`` gives the truncated path encoding."""

    name = "path"
    components = ("paths",)
    needs_paths = True

    def __init__(self, space: SearchSpace, max_length: int | None = None, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self._enc = PathEncoder(space, max_length=max_length, zero_ops=self.zero_ops, graphs=self.graphs)

    def features(self, arch: Any) -> dict[int, float]:
        return self._enc.sparse(arch)

    def pairwise(self, fa: Sequence[Any], fb: Sequence[Any]) -> np.ndarray:
        cols = sorted(set().union(*fa, *fb)) if (len(fa) or len(fb)) else []
        pos = {c: i for i, c in enumerate(cols)}

        def dense(fs: Sequence[dict[int, float]]) -> np.ndarray:
            m = np.zeros((len(fs), max(1, len(cols))))
            for i, f in enumerate(fs):
                for c, x in f.items():
                    m[i, pos[c]] = x
            return m

        if not len(fa) or not len(fb):
            return np.zeros((1, len(fa), len(fb)))
        return cdist(dense(fa), dense(fb), "cityblock")[None]


# --- Weisfeiler-Lehman ------------------------------------------------------------------------------
class WLKernel(ArchKernel):
    """Weisfeiler-Lehman subtree kernel (the GP-WL baseline of Ru et al., ICLR 2021) on the pruned
    graph: node labels are refined ``h`` times from each node's label and the sorted labels of its
    predecessors and successors; component ``i`` is the normalised dot product of the label
    histograms of round ``i``. The covariance is a convex combination of the rounds with weights
    ``softmax(theta)`` learnt by marginal likelihood. PSD."""

    name = "wl"
    similarity = True

    def __init__(self, space: SearchSpace, h: int = 2, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if h < 0:
            raise NasforgeError(f"WL kernel needs h >= 0 refinement rounds, got {h}")
        self.h = h
        self.components = tuple(f"wl{i}" for i in range(h + 1))
        self._ids: dict[Hashable, int] = {}

    def _id(self, key: Hashable) -> int:
        i = self._ids.get(key)
        if i is None:
            i = self._ids[key] = len(self._ids)
        return i

    def features(self, arch: Any) -> list[tuple[np.ndarray, np.ndarray, float]]:
        g: ArchGraph = self.graphs(arch)
        nodes = [v for v in range(g.n) if g.active[v]]
        cur = {v: self._id((0, g.labels[v])) for v in nodes}
        hists = [Counter(cur.values())]
        for r in range(1, self.h + 1):
            new = {}
            for v in nodes:
                ins = tuple(sorted(cur[u] for u in g.pred[v]))
                outs = tuple(sorted(cur[w] for w in g.succ[v]))
                new[v] = self._id((r, cur[v], ins, outs))
            cur = new
            hists.append(Counter(cur.values()))
        out = []
        for hist in hists:
            keys = np.fromiter(sorted(hist), dtype=np.int64)
            vals = np.array([hist[k] for k in keys], dtype=float)
            out.append((keys, vals, float(np.sqrt(vals @ vals))))
        return out

    def pairwise(self, fa: Sequence[Any], fb: Sequence[Any]) -> np.ndarray:
        from scipy.sparse import csr_matrix

        out = np.zeros((self.k, len(fa), len(fb)))
        if not len(fa) or not len(fb):
            return out
        width = len(self._ids)

        def sparse(fs: Sequence[Any], level: int) -> tuple[Any, np.ndarray]:
            ind = [f[level][0] for f in fs]
            data = [f[level][1] for f in fs]
            ptr = np.concatenate([[0], np.cumsum([len(i) for i in ind])])
            m = csr_matrix((np.concatenate(data), np.concatenate(ind), ptr), shape=(len(fs), width))
            return m, np.array([f[level][2] for f in fs])

        for lv in range(self.k):
            A, na = sparse(fa, lv)
            B, nb = sparse(fb, lv)
            dots = (A @ B.T).toarray()
            out[lv] = dots / np.maximum(na[:, None] * nb[None, :], 1e-12)
        return out

    def theta_bounds(self) -> list[tuple[float, float]]:
        return [(-4.0, 4.0)] * self.k

    def gram(self, C: np.ndarray, theta: np.ndarray, scales: np.ndarray) -> np.ndarray:
        w = np.exp(theta - theta.max())
        w /= w.sum()
        return np.tensordot(w, C, axes=1)

    def gram_grads(self, C: np.ndarray, theta: np.ndarray, scales: np.ndarray, K: np.ndarray) -> list[np.ndarray]:
        w = np.exp(theta - theta.max())
        w /= w.sum()
        return [w[j] * (C[j] - K) for j in range(self.k)]


# --- tree-Wasserstein (TW-NAS) ----------------------------------------------------------------------
class _Tree:
    """A weighted tree over histogram bins (leaves); ``embed(h)`` maps a histogram to the vector
    of (edge weight x mass below the edge), so that TW(h1, h2) = ||embed(h1) - embed(h2)||_1."""

    def __init__(self) -> None:
        self.parent: list[int] = [-1]  # node 0: the root
        self.weight: list[float] = [0.0]
        self.leaf_node: dict[Hashable, int] = {}

    def add(self, parent: int, weight: float) -> int:
        self.parent.append(parent)
        self.weight.append(weight)
        return len(self.parent) - 1

    #: trees with at most this many leaves embed by one dense (nodes x leaves) product, as always
    #: (NB201, DARTS, NAS-Bench-101, NAS-Bench-Graph); bigger ones (e.g. 60 labels: 3,660 2-gram
    #: leaves) walk up from the few leaves with mass and keep no dense matrix
    DENSE_LEAVES = 512

    def finish(self, leaves: Sequence[Hashable]) -> None:
        self.leaves = list(leaves)
        self.col = {leaf: j for j, leaf in enumerate(self.leaves)}
        self.dim = len(self.parent) - 1  # one coordinate per edge (node minus the root)
        weight = np.asarray(self.weight)
        # per leaf: the rows (node - 1) of the edges above it, and their weights
        self._up: list[tuple[np.ndarray, np.ndarray]] = []
        for leaf in self.leaves:
            path = []
            v = self.leaf_node[leaf]
            while v > 0:
                path.append(v)
                v = self.parent[v]
            nodes = np.asarray(path[::-1], dtype=np.int64)
            self._up.append((nodes - 1, weight[nodes]))
        self.A: np.ndarray | None = None
        if len(self.leaves) <= self.DENSE_LEAVES:
            S = np.zeros((self.dim, len(self.leaves)))  # node (minus root) x leaf: leaf below node?
            for j, (rows, _w) in enumerate(self._up):
                S[rows, j] = 1.0
            self.A = weight[1:, None] * S

    def embed(self, hist: dict[Hashable, float]) -> np.ndarray:
        if self.A is not None:
            h = np.zeros(len(self.leaves))
            for leaf, m in hist.items():
                h[self.col[leaf]] += m
            return self.A @ h
        out = np.zeros(self.dim)
        for leaf, m in hist.items():
            rows, w = self._up[self.col[leaf]]
            out[rows] += w * m
        return out


class TreeWassersteinKernel(ArchKernel):
    """Tree-Wasserstein kernel of TW-NAS (Nguyen et al., ICML 2021):
    ``k = sigma^2 exp(-d_ops/l_ops - d_in/l_in - d_out/l_out)``.

    * ``d_ops``: tree-Wasserstein distance between the normalised histograms of operation
      n-grams (1-grams: the operations of the active nodes; 2-grams: the (op, op) pairs of the
      edges between them) on a tree: root -> n-gram order -> operation family (see
      :func:`default_op_groups`; weight ``1 - alpha``) -> n-gram (weight ``alpha``); a family with
      one member hangs its leaf directly with weight 1. ``ngram=2`` puts 1- and 2-grams in one
      histogram and one tree, as TW-NAS's 2-gram variant.
    * ``d_in``/``d_out``: 1-D Wasserstein distances (a chain tree) between the normalised
      distributions of in-/out-degree over layers (a node's layer is its shortest-path depth
      from the input in the pruned graph), computed as the L1 distance of the cumulative sums.

    All three are L1 distances of embeddings, so the kernel is PSD for all lengthscales.
    """

    name = "tw"
    components = ("ops", "in_degree", "out_degree")

    def __init__(self, space: SearchSpace, ngram: int = 1, alpha: float = 0.1,
                 op_groups: dict[str, str] | None = None, **kwargs: Any) -> None:
        if ngram not in (1, 2):
            raise NasforgeError(f"tree-Wasserstein kernel supports ngram=1 or 2, got {ngram!r}")
        if not 0.0 < alpha < 1.0:
            raise NasforgeError(f"tree-Wasserstein alpha must lie in (0, 1), got {alpha!r}")
        if ngram == 2:
            self.name = "tw2"
        super().__init__(space, **kwargs)
        self.ngram = ngram
        self.alpha = alpha
        self.ops = tuple(o for o in op_vocabulary(space) if o not in self.zero_ops)
        groups = default_op_groups(self.ops)
        if op_groups:
            bad = sorted(set(op_groups) - set(self.ops))
            if bad:
                raise NasforgeError(f"op_groups names unknown operations {bad}; allowed: {', '.join(self.ops)}")
            groups.update(op_groups)
        self.op_groups = groups
        self.tree = self._build_tree()

    def _build_tree(self) -> _Tree:
        t = _Tree()
        leaves: list[Hashable] = []
        orders: list[list[tuple[Hashable, Hashable]]] = [[(op, self.op_groups[op]) for op in self.ops]]
        if self.ngram == 2:
            orders.append([((a, b), (self.op_groups[a], self.op_groups[b])) for a in self.ops for b in self.ops])
        for members in orders:
            top = t.add(0, 1.0)
            by_group: dict[Hashable, list[Hashable]] = {}
            for leaf, grp in members:
                by_group.setdefault(grp, []).append(leaf)
            for grp, group_leaves in by_group.items():
                if len(group_leaves) == 1:
                    t.leaf_node[group_leaves[0]] = t.add(top, 1.0)
                else:
                    mid = t.add(top, 1.0 - self.alpha)
                    for leaf in group_leaves:
                        t.leaf_node[leaf] = t.add(mid, self.alpha)
                leaves.extend(group_leaves)
        t.finish(leaves)
        return t

    def features(self, arch: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = self.graphs(arch)
        n = g.n
        inner = [v for v in range(1, n - 1) if g.active[v] and g.labels[v] not in self.zero_ops]
        hist: dict[Hashable, float] = {}
        for v in inner:
            hist[g.labels[v]] = hist.get(g.labels[v], 0.0) + 1.0
        if self.ngram == 2:
            inner_set = set(inner)
            for u in inner:
                for v in g.succ[u]:
                    if v in inner_set:
                        key = (g.labels[u], g.labels[v])
                        hist[key] = hist.get(key, 0.0) + 1.0
        total = sum(hist.values())
        ops = self.tree.embed({k: v / total for k, v in hist.items()}) if total else np.zeros(self.tree.dim)
        depth = layers(g).tolist()
        cdfs = []
        for nbrs in (g.pred, g.succ):  # in-degree, out-degree
            mass = [0.0] * n
            for v in range(n):
                if depth[v] >= 0:
                    mass[depth[v]] += len(nbrs[v])
            s = sum(mass)
            arr = np.array(mass) / s if s else np.full(n, 1.0 / n)
            cdfs.append(np.cumsum(arr)[:-1])
        return ops, cdfs[0], cdfs[1]

    def pairwise(self, fa: Sequence[Any], fb: Sequence[Any]) -> np.ndarray:
        out = np.zeros((3, len(fa), len(fb)))
        if not len(fa) or not len(fb):
            return out
        for j in range(3):
            width = max(len(f[j]) for f in (*fa, *fb))
            # a cumulative distribution shorter than the widest is complete: pad with ones
            pad = 0.0 if j == 0 else 1.0
            A = np.full((len(fa), width), pad)
            B = np.full((len(fb), width), pad)
            for i, f in enumerate(fa):
                A[i, : len(f[j])] = f[j]
            for i, f in enumerate(fb):
                B[i, : len(f[j])] = f[j]
            out[j] = cdist(A, B, "cityblock")
        return out


# --- hierarchical OT (HOTNAS) -----------------------------------------------------------------------
class HOTKernel(ArchKernel):
    """Hierarchical optimal-transport kernel of HOTNAS (Yang et al., CVPR 2023): ``exp(-d/l)``.

    Cell level: a fused Gromov-Wasserstein distance (POT) between the nodes of two cells, with
    uniform node masses. The linear cost between nodes is an operation cost (0 for the same
    operation, ``family_cost`` within a family, 1 otherwise); the structure term compares the
    cells' information-flow costs: ``F[i, j]`` is the length of the shortest directed path
    between nodes ``i`` and ``j`` of the pruned graph (either direction; ``n`` when information
    cannot flow between them), divided by ``n``. ``structure_weight`` is FGW's ``alpha``.

    Network level: a network is a sequence of cells (``space.cells(arch)`` when the space defines
    it, else the single cell of ``space.graph``); the distance between two networks is the exact
    OT cost between their cells (uniform masses) with ground cost cell distance +
    ``position_weight`` x |relative position difference|. For single-cell spaces (NB201,
    NAS-Bench-Graph) it reduces to the cell-level distance.

    Not PSD in general (FGW is not negative definite); see the module docstring.
    """

    name = "hot"
    components = ("hot",)
    psd = False
    cheap = False

    def __init__(self, space: SearchSpace, structure_weight: float = 0.5, position_weight: float = 1.0,
                 family_cost: float = 0.5, op_groups: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if not 0.0 <= structure_weight <= 1.0:
            raise NasforgeError(f"HOT structure_weight must lie in [0, 1], got {structure_weight!r}")
        if position_weight < 0 or not 0.0 <= family_cost <= 1.0:
            raise NasforgeError(
                f"HOT needs position_weight >= 0 and 0 <= family_cost <= 1; got {position_weight!r}, {family_cost!r}"
            )
        self.structure_weight = structure_weight
        self.position_weight = position_weight
        self.family_cost = family_cost
        ops = op_vocabulary(space)
        groups = default_op_groups(ops)
        groups.update(op_groups or {})
        labels = ["input", *ops, "output"]
        groups.setdefault("input", "input")
        groups.setdefault("output", "output")
        self._label_id = {lab: i for i, lab in enumerate(labels)}
        n = len(labels)
        cost = np.ones((n, n))
        for i, a in enumerate(labels):
            for j, b in enumerate(labels):
                if a == b:
                    cost[i, j] = 0.0
                elif groups.get(a) == groups.get(b):
                    cost[i, j] = family_cost
        self._op_cost = cost
        self.n_fgw = 0  # number of cell-level FGW problems solved

    def _cell(self, adj: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        from nasforge.strategies.bo.encodings import prune

        pruned, _ = prune(adj, labels, self.zero_ops)
        n = len(labels)
        from scipy.sparse.csgraph import shortest_path

        d = shortest_path(pruned.astype(float), directed=True, unweighted=True)
        d = np.minimum(d, d.T)
        d[~np.isfinite(d)] = n
        try:
            ids = np.array([self._label_id[lab] for lab in labels])
        except KeyError as exc:
            raise NasforgeError(
                f"space {self.space.name!r}: graph label {exc.args[0]!r} is not one of its ops"
            ) from None
        return ids, d / n

    def features(self, arch: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        cells = getattr(self.space, "cells", None)
        if callable(cells):
            return [self._cell(np.asarray(a), lab) for a, lab in cells(arch)]
        g = self.graphs(arch)
        return [self._cell(g.adj, g.labels)]

    def cell_distance(self, ca: tuple[np.ndarray, np.ndarray], cb: tuple[np.ndarray, np.ndarray]) -> float:
        """Fused Gromov-Wasserstein distance between two cells (POT, exact conditional gradient)."""
        import ot

        ia, Fa = ca
        ib, Fb = cb
        if len(ia) == len(ib) and np.array_equal(ia, ib) and np.array_equal(Fa, Fb):
            return 0.0
        # the solver (a local method) is not exactly symmetric: fix the argument order
        if (len(ia), ia.tobytes(), Fa.tobytes()) > (len(ib), ib.tobytes(), Fb.tobytes()):
            ia, Fa, ib, Fb = ib, Fb, ia, Fa
        p = np.full(len(ia), 1.0 / len(ia))
        q = np.full(len(ib), 1.0 / len(ib))
        M = self._op_cost[np.ix_(ia, ib)]
        self.n_fgw += 1
        val = ot.gromov.fused_gromov_wasserstein2(M, Fa, Fb, p, q, loss_fun="square_loss",
                                                  alpha=self.structure_weight)
        return max(0.0, float(val))

    def distance(self, fa: list[tuple[np.ndarray, np.ndarray]], fb: list[tuple[np.ndarray, np.ndarray]]) -> float:
        """Network-level distance between two architectures' cell lists."""
        if len(fa) == 1 and len(fb) == 1:
            return self.cell_distance(fa[0], fb[0])
        import ot

        D = np.array([[self.cell_distance(a, b) for b in fb] for a in fa])
        pa = np.linspace(0.0, 1.0, len(fa)) if len(fa) > 1 else np.zeros(1)
        pb = np.linspace(0.0, 1.0, len(fb)) if len(fb) > 1 else np.zeros(1)
        M = D + self.position_weight * np.abs(pa[:, None] - pb[None, :])
        return max(0.0, float(ot.emd2(np.full(len(fa), 1.0 / len(fa)), np.full(len(fb), 1.0 / len(fb)), M)))

    def pairwise(self, fa: Sequence[Any], fb: Sequence[Any]) -> np.ndarray:
        out = np.zeros((1, len(fa), len(fb)))
        for i, a in enumerate(fa):
            for j, b in enumerate(fb):
                out[0, i, j] = 0.0 if a is b else self.distance(a, b)
        return out

    def pairwise_sym(self, fa: Sequence[Any]) -> np.ndarray:
        out = np.zeros((1, len(fa), len(fa)))
        for i in range(len(fa)):
            for j in range(i + 1, len(fa)):
                out[0, i, j] = out[0, j, i] = self.distance(fa[i], fa[j])
        return out


def default_kernel(space: SearchSpace) -> str:
    """The kernel ``kernel="auto"`` stands for: ``tw2`` (TW-NAS's 2-gram tree-Wasserstein) on a
    space whose graph view has branching cells (NB201, DARTS, NAS-Bench-101, NAS-Bench-Graph),
    ``onehot`` on the others (a chain of layers, or no graph view)."""
    return "tw2" if graph_view(space) == "dag" else "onehot"


def get_kernel(name: str, space: SearchSpace, **params: Any) -> ArchKernel:
    """A kernel by name: ``hamming``, ``path``, ``wl``, ``tw`` (1-gram), ``tw2`` (2-gram), ``hot``,
    ``onehot``, or ``auto`` (:func:`default_kernel`)."""
    if name == AUTO:
        name = default_kernel(space)
    try:
        if name == "onehot":
            return OneHotKernel(space, **params)
        if name == "hamming":
            return HammingKernel(space, **params)
        if name == "path":
            return PathKernel(space, **params)
        if name == "wl":
            return WLKernel(space, **params)
        if name == "tw":
            return TreeWassersteinKernel(space, ngram=1, **params)
        if name == "tw2":
            return TreeWassersteinKernel(space, ngram=2, **params)
        if name == "hot":
            return HOTKernel(space, **params)
    except TypeError as exc:
        raise NasforgeError(f"bad settings for kernel {name!r}: {exc}") from None
    raise unknown("kernel", name, KERNELS)


# --- incremental cache ------------------------------------------------------------------------------
class KernelCache:
    """Kernel components among the observations, grown incrementally, plus candidate rows.

    ``add(arch)`` appends an observation: only its components against the earlier observations
    are computed (reusing the row computed when it was a candidate, so usually only the new
    columns); distances between earlier observations are never recomputed. ``cross(cands)``
    returns candidate x observation components; a candidate's row is kept until the next call, so
    a candidate proposed again only costs its components against the observations added since.
    ``features``: a per-architecture memo of kernel features to use (and fill), e.g. one shared by
    the caches of successive fits; by default the cache keeps its own.
    """

    def __init__(self, kernel: ArchKernel, features: dict[Hashable, Any] | None = None) -> None:
        self.kernel = kernel
        self.archs: list[Any] = []
        self._feat: dict[Hashable, Any] = {} if features is None else features
        self._C = np.zeros((kernel.k, 0, 0))
        self._n = 0
        self._rows: dict[Hashable, np.ndarray] = {}
        #: pair evaluations performed (for overhead reports)
        self.n_pairs = 0

    def feature(self, arch: Any) -> Any:
        f = self._feat.get(arch)
        if f is None:
            f = self._feat[arch] = self.kernel.features(arch)
        return f

    @property
    def C(self) -> np.ndarray:
        """Components among the observations, shape ``(k, n, n)`` (a view)."""
        return self._C[:, : self._n, : self._n]

    def __len__(self) -> int:
        return self._n

    def _extend_rows(self, archs: Sequence[Any], rows: list[np.ndarray]) -> list[np.ndarray]:
        """Bring each row (components vs observations[:len(row)]) up to all observations."""
        n = self._n
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(rows):
            if r.shape[1] < n:
                groups.setdefault(r.shape[1], []).append(i)
        for start, idx in groups.items():
            fa = [self.feature(archs[i]) for i in idx]
            fb = [self.feature(a) for a in self.archs[start:n]]
            block = self.kernel.pairwise(fa, fb)
            self.n_pairs += len(fa) * len(fb)
            for j, i in enumerate(idx):
                rows[i] = np.concatenate([rows[i], block[:, j, :]], axis=1)
        return rows

    def add(self, arch: Any) -> None:
        """Append one observation."""
        row = self._rows.pop(arch, None)
        if row is None:
            row = np.zeros((self.kernel.k, 0))
        row = self._extend_rows([arch], [row])[0]
        n = self._n
        if n + 1 > self._C.shape[1]:
            cap = max(16, 2 * self._C.shape[1])
            big = np.zeros((self.kernel.k, cap, cap))
            big[:, :n, :n] = self._C[:, :n, :n]
            self._C = big
        self._C[:, n, :n] = row
        self._C[:, :n, n] = row
        self._C[:, n, n] = self.kernel.self_component()
        self.archs.append(arch)
        self._n = n + 1

    def cross(self, cands: Sequence[Any], keep: bool = True) -> np.ndarray:
        """Components between ``cands`` and all observations: ``(k, len(cands), n)``.

        With ``keep`` the rows are remembered for the next call (and rows of architectures not
        in ``cands`` are dropped, which keeps the cache as small as one candidate set)."""
        empty = np.zeros((self.kernel.k, 0))
        rows = [self._rows.get(a, empty) for a in cands]
        rows = self._extend_rows(cands, rows)
        if keep:
            self._rows = dict(zip(cands, rows))
        if not rows:
            return np.zeros((self.kernel.k, 0, self._n))
        return np.stack(rows, axis=1)

    def among(self, cands: Sequence[Any]) -> np.ndarray:
        """Components among ``cands``: ``(k, m, m)``."""
        m = len(cands)
        self.n_pairs += m * (m - 1) // 2
        return self.kernel.pairwise_sym([self.feature(a) for a in cands])
