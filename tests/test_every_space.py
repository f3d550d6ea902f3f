"""Every strategy on every space, unchanged; uniform random sampling checked by chi-square.

The search tests run each registered strategy for a few trials on each space (NB201, DARTS,
NAS-Bench-101, NAS-Bench-Macro, MobileNetV3-like, NAS-Bench-Graph and a user's ChoiceSpace) with
a cheap deterministic estimator, and check completion, reproducibility by seed and hard
constraints on parameters and FLOPs. The sampling tests draw many architectures with a fixed seed
and compare the counts of every categorical choice with what the space promises; each test also
shows that a sampler favouring one operation by 10% would fail it.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy.stats import chi2, chisquare
from torch import nn

from nasforge import NasforgeError
from nasforge.estimation import Estimator, Measurement
from nasforge.estimation.constraints import ConstraintSet
from nasforge.spaces import ChoiceSpace, get_space
from nasforge.strategies import MULTI_FIDELITY, MULTI_OBJECTIVE, STRATEGIES, get_strategy
from nasforge.study import Study, TrialState


# --- a user's space -----------------------------------------------------------------------------
def make_cnn(cfg: dict[str, Any], num_classes: int = 10, in_channels: int = 3, **_: Any) -> nn.Module:
    act = {"relu": nn.ReLU, "gelu": nn.GELU}[cfg["act"]]
    layers: list[nn.Module] = []
    c = in_channels
    for _ in range(cfg["depth"]):
        layers += [nn.Conv2d(c, cfg["width"], cfg["kernel"], padding=cfg["kernel"] // 2), nn.BatchNorm2d(cfg["width"]),
                   act()]
        c = cfg["width"]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


USER_CHOICES = {"depth": [1, 2, 3, 4], "width": [4, 8, 16], "kernel": [1, 3, 5], "act": ["relu", "gelu"]}


def user_space() -> ChoiceSpace:
    return ChoiceSpace(USER_CHOICES, builder=make_cnn, name="user-cnn")


#: network settings of the cost models: small networks, as a CPU search would train
NETS: dict[str, dict[str, Any]] = {
    "nb201": {"C": 8, "N": 1, "num_classes": 10},
    "darts": {"C": 8, "layers": 5, "num_classes": 10, "input_size": 16},
    "nb101": {"stem_channels": 16, "cells_per_stack": 1, "num_classes": 10, "input_size": 16},
    "macro": {"num_classes": 10, "input_size": 32},
    "mbv3": {"num_classes": 10, "input_size": 32},
    "user": {"num_classes": 10, "in_channels": 3, "input_size": 8},
}
SPACE_NAMES = ["nb201", "darts", "nb101", "macro", "mbv3", "nbgraph", "user"]

_SPACES: dict[str, Any] = {}


def space_of(name: str) -> Any:
    if name not in _SPACES:
        if name == "nbgraph":
            pytest.importorskip("nas_bench_graph", reason="NAS-Bench-Graph (pip install nas-bench-graph) is absent")
        _SPACES[name] = user_space() if name == "user" else get_space(name)
    return _SPACES[name]


_NBGRAPH: list[Any] = []


def nbgraph_table() -> Any:
    if not _NBGRAPH:
        from nasforge.estimation import load_benchmark

        _NBGRAPH.append(load_benchmark("nbgraph:cora"))
    return _NBGRAPH[0]


def params_of(name: str) -> Callable[[Any], float]:
    """Parameters of an architecture: the space's cost model at the small settings, or (NAS-Bench-
    Graph builds no networks) the benchmark's published count."""
    space = space_of(name)
    if name == "nbgraph":
        table = nbgraph_table()
        return lambda a: float(table.estimate(a).metrics["params"])
    from nasforge.spaces.base import settings_for

    kw = settings_for(space.param_count, NETS[name])
    return lambda a: float(space.param_count(a, **kw))


class Synthetic(Estimator):
    """A deterministic objective with structure: a fixed random linear function of the space's
    one-hot encoding, plus a per-architecture term (from a hash of its string) that fades with the
    fidelity (1, 3 or 9); ``params`` from :func:`params_of`."""

    fidelities = (1.0, 3.0, 9.0)

    def __init__(self, name: str) -> None:
        self.space = space_of(name)
        self.params = params_of(name)
        self.w: np.ndarray | None = None

    @property
    def metric_names(self) -> list[str]:
        return ["score", "params"]

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        e = np.asarray(self.space.encode(arch, "onehot"), dtype=float).ravel()
        if self.w is None:
            self.w = np.random.default_rng(7).normal(size=len(e))
        f = 9.0 if fidelity is None else float(fidelity)
        wiggle = zlib.crc32(self.space.format(arch).encode()) / 2**32
        return Measurement({"score": float(self.w @ e) + wiggle / f, "params": self.params(arch)}, cost=f)


#: settings that let a 10-trial run reach each strategy's model or evolution step
FAST: dict[str, dict[str, Any]] = {
    "re": {"population_size": 4, "sample_size": 2},
    "ls": {"n_init": 3},
    "bo": {"n_init": 4, "n_random": 15, "n_local": 6, "n_incumbents": 2},
    "bananas": {"n_init": 4, "k": 2, "n_candidates": 15, "ensemble": 2, "epochs": 20, "hidden": [16, 16]},
    "nsga2": {"population_size": 4},
    "mo-re": {"population_size": 4, "sample_size": 2},
    "chebyshev": {"population_size": 4, "sample_size": 2},
    **{k: {"rungs": [1, 3, 9]} for k in MULTI_FIDELITY},
}
N_TRIALS = 10


def run(space_name: str, strategy: str, seed: int = 0, n_trials: int = N_TRIALS, constraints: Any = None,
        **extra: Any) -> Study:
    space = space_of(space_name)
    multi = strategy in MULTI_OBJECTIVE
    study = Study(f"{space_name}-{strategy}-{seed}", space, ["score", "params"] if multi else "score",
                  [True, False] if multi else True, constraints=constraints)
    st = get_strategy(strategy, space, seed=seed, **{**FAST.get(strategy, {}), **extra})
    study.optimize(st, Synthetic(space_name), n_trials=n_trials)
    return study


def trajectory(study: Study) -> list[tuple[str, float | None]]:
    return [(t.arch, t.fidelity) for t in study.trials]


@pytest.mark.parametrize("space_name", SPACE_NAMES)
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_runs_on_every_space(space_name, strategy):
    a = run(space_name, strategy)
    assert len(a.trials) == N_TRIALS
    bad = [(t.arch, t.error) for t in a.trials if t.state is not TrialState.COMPLETE]
    assert not bad, bad
    if strategy not in MULTI_FIDELITY:  # schedulers ask for one architecture again at a higher rung
        assert len({t.arch for t in a.trials}) == N_TRIALS
    else:
        assert {t.fidelity for t in a.trials} <= {1.0, 3.0, 9.0}
    space = space_of(space_name)
    assert all(space.format(space.parse(t.arch)) == t.arch for t in a.trials)
    # the same seed gives the same trajectory; another seed another one
    assert trajectory(run(space_name, strategy)) == trajectory(a)
    assert trajectory(run(space_name, strategy, seed=1)) != trajectory(a)


def _bound(space_name: str, measure: Callable[[Any], float], n: int = 24) -> float:
    """The median of ``measure`` over ``n`` random architectures (a private generator)."""
    rng = np.random.default_rng(11)
    space = space_of(space_name)
    return float(np.median([measure(space.sample(rng)) for _ in range(n)]))


@pytest.mark.parametrize("space_name", SPACE_NAMES)
def test_params_constraints_hold_on_every_space(space_name):
    space = space_of(space_name)
    params = params_of(space_name)
    bound = _bound(space_name, params)
    if space_name == "nbgraph":  # the table holds the counts (NAS-Bench-Graph builds no networks)
        cs = ConstraintSet([f"params <= {bound!r}"]).bind(space, nbgraph_table())
    else:
        cs = ConstraintSet([f"params <= {bound!r}"]).bind(space, build=NETS[space_name])
    for strategy in STRATEGIES:
        study = run(space_name, strategy, n_trials=8, constraints=cs)
        done = [t for t in study.trials if t.state is TrialState.COMPLETE]
        assert len(done) == 8, strategy
        assert all(t.metrics["params"] <= bound and t.info.get("feasible", True) for t in done), strategy
    # the constraint binds: unconstrained random search goes over the bound within as many trials
    free = run(space_name, "random", n_trials=16)
    assert max(t.metrics["params"] for t in free.trials) > bound


FLOP_STRATEGIES = ["random", "re", "ls", "bo", "bananas", "asha", "nsga2"]


@pytest.mark.parametrize("space_name", [s for s in SPACE_NAMES if s != "nbgraph"])
def test_flops_constraints_hold_on_every_space_that_builds_networks(space_name):
    from nasforge.spaces.base import settings_for

    space = space_of(space_name)
    kw = settings_for(space.flops, NETS[space_name])
    flops: dict[Any, float] = {}

    def count(a: Any) -> float:
        if a not in flops:
            flops[a] = float(space.flops(a, **kw))
        return flops[a]

    bound = _bound(space_name, count, n=16)
    cs = ConstraintSet([f"flops <= {bound!r}"]).bind(space, build=NETS[space_name])
    # DARTS and NB101 count FLOPs by building the network (tens of ms each), and GP-BO filters
    # every neighbour of its incumbents (120 for DARTS) through the constraint at each step: the
    # model-based ones are checked with parameters (above) on those two spaces
    heavy = ("bo", "bananas") if space_name in ("darts", "nb101") else ()
    for strategy in (s for s in FLOP_STRATEGIES if s not in heavy):
        study = run(space_name, strategy, n_trials=6, constraints=cs)
        assert all(t.state is TrialState.COMPLETE for t in study.trials)
        assert all(count(space.parse(t.arch)) <= bound for t in study.trials), strategy
    free = run(space_name, "random", n_trials=16)
    assert max(count(space.parse(t.arch)) for t in free.trials) > bound


def test_flops_on_a_space_without_networks_is_a_clear_error():
    space = space_of("nbgraph")
    with pytest.raises(NasforgeError, match="nbgraph.*no FLOP count"):
        ConstraintSet(["flops <= 1M"]).bind(space).feasible(space.sample(np.random.default_rng(0)))


def test_measured_latency_constraints_hold_on_a_user_space():
    space = space_of("user")
    cs = ConstraintSet(["latency_ms[local-torch] <= 1e9"]).bind(space, build=NETS["user"],
                                                                 latency={"warmup": 1, "repeats": 3})
    rng = np.random.default_rng(3)
    archs = [space.sample(rng) for _ in range(8)]
    bound = float(np.median([cs.values(a)["latency_ms[local-torch]"] for a in archs]))
    tight = ConstraintSet([f"latency_ms[local-torch] <= {bound!r}"]).bind(space, build=NETS["user"],
                                                                         latency={"warmup": 1, "repeats": 3})
    for strategy in ("random", "re", "bo"):
        study = run("user", strategy, n_trials=6, constraints=tight)
        assert all(t.state is TrialState.COMPLETE for t in study.trials)
        assert all(tight.values(t.arch)["latency_ms[local-torch]"] <= bound for t in study.trials)
    with pytest.raises(NasforgeError, match="unknown latency measurement setting 'reps'"):
        ConstraintSet(["latency_ms[local-torch] <= 1"]).bind(space, latency={"reps": 3})


def test_too_tight_a_constraint_on_a_huge_space_says_so():
    space = space_of("darts")
    cs = ConstraintSet(["params <= 1"]).bind(space, build=NETS["darts"])
    with pytest.raises(NasforgeError, match="no new feasible architecture of space 'darts'.*too tight"):
        get_strategy("random", space, seed=0, feasible=cs).ask()


# --- model-based strategies: generic kernels and encodings --------------------------------------------
@pytest.mark.parametrize("space_name, kernel, encoding", [
    ("nb201", "tw2", "path"), ("darts", "tw2", "path"), ("nb101", "tw2", "path"), ("nbgraph", "tw2", "path"),
    ("macro", "onehot", "onehot"), ("mbv3", "onehot", "onehot"), ("user", "onehot", "onehot"),
])
def test_model_based_defaults_follow_the_graph_view(space_name, kernel, encoding):
    space = space_of(space_name)
    bo = get_strategy("bo", space)
    assert bo.kernel.name == kernel and bo.config()["kernel"] == kernel
    bananas = get_strategy("bananas", space)
    assert bananas.config()["encoding"] == encoding
    # rebuilt from its stored settings, a strategy is the same strategy
    assert get_strategy("bo", space, **{k: v for k, v in bo.config().items() if k != "name"}).config() == bo.config()


@pytest.mark.parametrize("space_name", ["macro", "mbv3", "user"])
def test_path_encodings_are_refused_on_chains_of_layers(space_name):
    space = space_of(space_name)
    for kwargs in ({"kernel": "path"},):
        with pytest.raises(NasforgeError, match=f"graph view of space '{space.name}' is a chain.*onehot"):
            get_strategy("bo", space, **kwargs)
    for encoding in ("path", "trunc_path"):
        with pytest.raises(NasforgeError, match="is a chain.*onehot"):
            get_strategy("bananas", space, encoding=encoding)
    # the graph kernels that do not count paths still apply to a chain
    for kernel in ("hamming", "wl", "tw", "tw2", "hot", "onehot"):
        assert get_strategy("bo", space, kernel=kernel).kernel.name == kernel


def test_a_space_without_graph_view_gets_the_generic_kernel():
    class NoGraph(ChoiceSpace):
        def graph(self, arch):
            raise NotImplementedError("no graph view")

    space = NoGraph({"a": [0, 1, 2], "b": ["x", "y"], "c": [1, 2, 3, 4]}, name="nograph")
    bo = get_strategy("bo", space, seed=0, n_init=3, n_random=10, n_local=4)
    assert bo.kernel.name == "onehot"
    bananas = get_strategy("bananas", space, seed=0, n_init=3, k=2, n_candidates=8, ensemble=1, epochs=10)
    assert bananas.config()["encoding"] == "onehot"

    class Score(Estimator):
        metric_names = ["score"]

        def estimate(self, arch, fidelity=None):
            return Measurement({"score": float(arch[0] + arch[2] + (arch[1] == "y"))})

    for strategy in (bo, bananas):
        study = Study(f"nograph-{strategy.name}", space, "score")
        study.optimize(strategy, Score(), n_trials=10)
        assert all(t.state is TrialState.COMPLETE for t in study.trials)
    for kernel in ("tw2", "wl", "hamming", "hot", "path"):
        with pytest.raises(NasforgeError, match=f"kernel '{kernel}' reads the graph view.*'nograph' has none.*onehot"):
            get_strategy("bo", space, kernel=kernel)
    with pytest.raises(NasforgeError, match="encoding 'adjacency' reads the graph view.*onehot"):
        get_strategy("bananas", space, encoding="adjacency")


def test_onehot_kernel_is_the_hamming_distance_of_choices():
    from nasforge.strategies.bo.kernels import get_kernel

    space = space_of("user")
    k = get_kernel("onehot", space)
    a = space.parse("depth=1,width=4,kernel=1,act=relu")
    b = space.parse("depth=2,width=4,kernel=1,act=relu")
    c = space.parse("depth=2,width=8,kernel=5,act=gelu")
    D = k.pairwise([k.features(x) for x in (a, b, c)], [k.features(x) for x in (a, b, c)])[0]
    assert D.tolist() == [[0, 2, 8], [2, 0, 6], [8, 6, 0]]  # twice the number of choices that differ


def test_tree_wasserstein_on_many_operations_matches_the_dense_product():
    """A tree of 3,660 leaves (mbv3's 60 labels, 2-grams) embeds sparsely; same numbers as dense."""
    from nasforge.strategies.bo.kernels import TreeWassersteinKernel

    space = space_of("mbv3")
    k = TreeWassersteinKernel(space, ngram=2)
    tree = k.tree
    assert tree.A is None and len(tree.leaves) == 60 + 60**2
    rng = np.random.default_rng(0)
    for _ in range(3):
        a = space.sample(rng)
        ops = k.features(a)[0]
        # dense reference: edge weight x mass below the edge, summed over leaves
        g = k.graphs(a)
        labels = [g.labels[v] for v in range(1, g.n - 1)]
        hist = Counter(labels) + Counter(zip(labels, labels[1:]))
        total = sum(hist.values())
        ref = np.zeros(tree.dim)
        for leaf, m in hist.items():
            v = tree.leaf_node[leaf]
            while v > 0:
                ref[v - 1] += tree.weight[v] * m / total
                v = tree.parent[v]
        assert np.allclose(ops, ref)


# --- uniform random sampling ------------------------------------------------------------------------
ALPHA = 1e-3


def chi2_pvalue(counts: dict[Any, int], probs: dict[Any, float]) -> tuple[float, float, int]:
    """(statistic, p-value, degrees of freedom) of observed ``counts`` against category
    probabilities ``probs``; categories expected fewer than 5 times are pooled into one."""
    n = sum(counts.values())
    keys = sorted(probs, key=lambda k: -probs[k])
    obs, exp = [], []
    small_o, small_e = 0.0, 0.0
    for k in keys:
        e = probs[k] * n
        if e < 5:
            small_o, small_e = small_o + counts.get(k, 0), small_e + e
        else:
            obs.append(counts.get(k, 0))
            exp.append(e)
    if small_e > 0:
        obs.append(small_o)
        exp.append(small_e)
    assert set(counts) <= set(probs), f"outcomes the space does not promise: {set(counts) - set(probs)}"
    if len(obs) < 2:
        return 0.0, 1.0, 0
    stat, p = chisquare(obs, exp)
    return float(stat), float(p), len(obs) - 1


def uniformity(obs: dict[Any, list[Any]], probs: dict[Any, dict[Any, float]]) -> tuple[float, float]:
    """(smallest per-position p-value times the number of positions (Bonferroni), p-value of the
    statistics summed over positions) for categorical observations per position."""
    tests = [chi2_pvalue(Counter(obs[pos]), probs[pos]) for pos in obs]
    worst = min(p for _, p, _ in tests) * len(tests)
    stat = sum(s for s, _, _ in tests)
    df = sum(d for _, _, d in tests)
    return worst, float(chi2.sf(stat, df)) if df else 1.0


def favour_first(obs: dict[Any, list[Any]], probs: dict[Any, dict[Any, float]],
                 rng: np.random.Generator) -> dict[Any, list[Any]]:
    """The observations of a sampler that favours, at every position, its first outcome by 10%:
    each draw is replaced by that outcome with the probability that makes it 1.1 times as likely."""
    out = {}
    for pos, values in obs.items():
        first = next(iter(probs[pos]))
        p = probs[pos][first]
        eps = 0.1 * p / (1 - p)
        swap = rng.random(len(values)) < eps
        out[pos] = [first if s else v for v, s in zip(values, swap)]
    return out


def check_uniform(obs: dict[Any, list[Any]], probs: dict[Any, dict[Any, float]], power: bool = True) -> None:
    """The observations pass; with ``power``, those of a sampler favouring one outcome by 10% fail."""
    worst, pooled = uniformity(obs, probs)
    assert worst > ALPHA and pooled > ALPHA, (worst, pooled)
    if power:
        worst_b, pooled_b = uniformity(favour_first(obs, probs, np.random.default_rng(99)), probs)
        assert min(worst_b, pooled_b) < ALPHA, (worst_b, pooled_b)


def uniform_over(values: Any) -> dict[Any, float]:
    values = list(values)
    return {v: 1.0 / len(values) for v in values}


def draws(space: Any, n: int, seed: int = 2024) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_nb201_samples_every_edge_op_uniformly():
    space = space_of("nb201")
    archs = draws(space, 20000)
    edges = len(archs[0])
    obs = {e: [a[e] for a in archs] for e in range(edges)}
    check_uniform(obs, {e: uniform_over(space.ops) for e in range(edges)})


def test_darts_samples_ops_and_input_pairs_uniformly():
    """Per cell and edge an operation uniform over 7; per node two different inputs, the pair
    uniform over the C(i, 2) pairs of earlier nodes."""
    from nasforge.spaces.darts import CELLS, OPS, STEPS

    space = space_of("darts")
    archs = draws(space, 5000)
    obs: dict[Any, list[Any]] = {}
    probs: dict[Any, dict[Any, float]] = {}
    for cell in CELLS:
        for k in range(2 * STEPS):
            obs[(cell, "op", k)] = [a.cell(cell)[k][0] for a in archs]
            probs[(cell, "op", k)] = uniform_over(OPS)
    check_uniform(obs, probs)
    obs, probs = {}, {}
    for cell in CELLS:
        for node in range(3, 2 + STEPS):  # node 2 has a single possible pair (0, 1)
            k = 2 * (node - 2)
            obs[(cell, node)] = [(a.cell(cell)[k][1], a.cell(cell)[k + 1][1]) for a in archs]
            probs[(cell, node)] = uniform_over(itertools.combinations(range(node), 2))
    check_uniform(obs, probs)
    assert all(a.cell(c)[0][1] == 0 and a.cell(c)[1][1] == 1 for a in archs[:50] for c in CELLS)


def _nb101_exact() -> dict[tuple[int, int], float]:
    """The distribution of (vertices, edges) of the pruned cell that NB101's sampler promises:
    a uniform 7x7 upper-triangular matrix, kept when its pruned cell is valid (the input reaches
    the output, at most 9 edges). Exact, over all 2**21 matrices."""
    from nasforge.spaces.nb101 import EDGE_SLOTS, MAX_EDGES, MAX_VERTICES

    m = np.arange(2 ** len(EDGE_SLOTS), dtype=np.int64)
    A = {(i, j): ((m >> k) & 1).astype(bool) for k, (i, j) in enumerate(EDGE_SLOTS)}
    n = MAX_VERTICES
    fwd = [np.ones(len(m), bool)] + [np.zeros(len(m), bool) for _ in range(n - 1)]
    for j in range(1, n):
        for i in range(j):
            fwd[j] |= fwd[i] & A[i, j]
    bwd = [np.zeros(len(m), bool) for _ in range(n - 1)] + [np.ones(len(m), bool)]
    for i in range(n - 2, -1, -1):
        for j in range(i + 1, n):
            bwd[i] |= bwd[j] & A[i, j]
    keep = [f & b for f, b in zip(fwd, bwd)]
    vertices = sum(k.astype(np.int64) for k in keep)
    edges = sum((A[i, j] & keep[i] & keep[j]).astype(np.int64) for i, j in EDGE_SLOTS)
    ok = fwd[n - 1] & (edges <= MAX_EDGES)
    pairs = Counter(zip(vertices[ok].tolist(), edges[ok].tolist()))
    total = int(ok.sum())
    return {k: c / total for k, c in pairs.items()}


def test_nb101_samples_as_the_benchmark_sampler_promises():
    """NB101's sampler is uniform over valid (matrix, operations) draws, not over cells up to
    isomorphism and not per vertex slot: small pruned cells come from many matrices. What it does
    promise, and what is tested: the pruned (vertices, edges) shape follows the exact distribution
    over all 2**21 matrices, and every interior operation is uniform over the 3 (operations are
    drawn independently of the matrix, so pruning keeps them uniform)."""
    from nasforge.spaces.nb101 import OPS

    space = space_of("nb101")
    archs = draws(space, 8000)
    shape = {"shape": [(len(a.ops), sum(map(sum, a.matrix))) for a in archs]}
    exact = _nb101_exact()
    assert abs(sum(exact.values()) - 1) < 1e-12
    worst, _ = uniformity(shape, {"shape": exact})
    assert worst > ALPHA
    ops = {"interior op": [op for a in archs for op in a.ops[1:-1]]}
    check_uniform(ops, {"interior op": uniform_over(OPS)})
    # and the per-cell view is not uniform: the 1-vertex-interior shapes are far more frequent
    # than a uniform draw over the 423,624 cells would make them
    assert exact[(3, 2)] > 1e-3 and exact[(3, 2)] * 423_624 > 100


def test_macro_samples_every_layer_uniformly():
    from nasforge.spaces.macro import LAYERS, OPS

    space = space_of("macro")
    archs = draws(space, 20000)
    obs = {layer: [a[layer] for a in archs] for layer in range(LAYERS)}
    check_uniform(obs, {layer: uniform_over(range(len(OPS))) for layer in range(LAYERS)})


@pytest.mark.parametrize("sampling", ["per_choice", "uniform"])
def test_mbv3_samples_depths_and_blocks_as_promised(sampling):
    """``per_choice``: each stage's depth uniform over 2, 3, 4; ``uniform``: every architecture
    equally likely, so depth d has probability 12**d / (12**2 + 12**3 + 12**4). Either way every
    block's configuration is uniform over the 12."""
    from nasforge.spaces.macro import BLOCK_CHOICES, DEPTHS, MBV3_STAGES, MBV3Space

    space = MBV3Space(input_size=32, num_classes=10, sampling=sampling)
    archs = draws(space, 4000)
    w = {d: (1.0 if sampling == "per_choice" else 12.0**d) for d in DEPTHS}
    depth_probs = {d: w[d] / sum(w.values()) for d in DEPTHS}
    stages = range(len(MBV3_STAGES))
    # (a 10% bias of a depth of probability 0.6% is beyond 4,000 draws: no power check there)
    check_uniform({s: [len(a[s]) for a in archs] for s in stages}, {s: depth_probs for s in stages},
                  power=sampling == "per_choice")
    blocks = {s: [b for a in archs for b in a[s]] for s in stages}
    check_uniform(blocks, {s: uniform_over(BLOCK_CHOICES) for s in stages})


def test_nbgraph_samples_its_table_uniformly():
    """NAS-Bench-Graph's sampler is uniform over the benchmark's 26,206 architectures, so its
    per-node operations follow the table's mix (not uniform over the 9 operations); both are
    tested against the exact distribution from enumerating the space."""
    space = space_of("nbgraph")
    every = list(space)
    position = {a: i for i, a in enumerate(every)}
    archs = draws(space, 20000)
    bins = 64
    edges = np.linspace(0, len(every), bins + 1).astype(int)
    bin_of = np.searchsorted(edges, [position[a] for a in archs], side="right") - 1
    probs = {b: (edges[b + 1] - edges[b]) / len(every) for b in range(bins)}
    worst, _ = uniformity({"index": bin_of.tolist()}, {"index": probs})
    assert worst > ALPHA
    exact = {i: Counter(a.ops[i] for a in every) for i in range(4)}
    op_probs = {i: {op: c / len(every) for op, c in exact[i].most_common()} for i in range(4)}
    check_uniform({i: [a.ops[i] for a in archs] for i in range(4)}, op_probs)


def test_a_user_space_samples_every_choice_uniformly():
    space = space_of("user")
    archs = draws(space, 20000)
    obs = {k: [a[i] for a in archs] for i, k in enumerate(space.keys)}
    check_uniform(obs, {k: uniform_over(space.values[i]) for i, k in enumerate(space.keys)})


def test_the_uniformity_check_can_fail():
    """A sampler biased at one position only, towards one operation by 10%, fails the per-position
    test at these sample sizes (NB201, 20,000 draws)."""
    space = space_of("nb201")
    archs = draws(space, 20000)
    obs = {e: [a[e] for a in archs] for e in range(len(archs[0]))}
    probs = {e: uniform_over(space.ops) for e in obs}
    biased = dict(obs)
    biased[3] = favour_first({3: obs[3]}, {3: probs[3]}, np.random.default_rng(5))[3]
    worst, _ = uniformity(biased, probs)
    assert worst < ALPHA
    assert math.isclose(sum(probs[0].values()), 1.0)
