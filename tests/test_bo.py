"""Model-based search: encodings, architecture kernels, the GP, acquisitions, batch BO, BANANAS."""

import itertools

import numpy as np
import pytest

from nasforge import NasforgeError
from nasforge.estimation import Measurement
from nasforge.spaces import NB201Space
from nasforge.spaces.nbgraph import NBGraphSpace
from nasforge.strategies import get_strategy
from nasforge.strategies.bo import GaussianProcess, KernelCache, get_kernel, robust_cholesky, sample_kdpp
from nasforge.strategies.bo.acquisition import expected_improvement
from nasforge.strategies.bo.encodings import PathEncoder, encode
from nasforge.strategies.bo.kernels import ArchKernel, HOTKernel, TreeWassersteinKernel
from nasforge.study import Study

NB201 = NB201Space()
WEIGHT = {"none": 0.0, "skip_connect": 0.1, "nor_conv_1x1": 0.5, "nor_conv_3x3": 1.0, "avg_pool_3x3": 0.2}
CHEAP = ["hamming", "path", "wl", "tw", "tw2"]


def objective(arch):
    """Synthetic NB201 score, maximal for the all-conv3x3 cell."""
    return sum(WEIGHT[op] * (1 + 0.01 * i) for i, op in enumerate(arch))


def nbgraph_objective(arch):
    links, ops = arch
    return sum({"gcn": 1.0, "gin": 0.8, "sage": 0.6}.get(op, 0.1) for op in ops) + 0.3 * len(set(links))


def run(strategy, n, f=objective):
    archs = []
    for _ in range(n):
        s = strategy.ask()
        archs.append(s.arch)
        strategy.tell(s, f(s.arch))
    return archs


@pytest.fixture(scope="module")
def nbgraph():
    return NBGraphSpace()


def cell(edge=None, op=None):
    """The all-conv3x3 NB201 cell, optionally with ``op`` on edge number ``edge``."""
    ops = ["nor_conv_3x3"] * 6
    if edge is not None:
        ops[edge] = op
    return NB201.coerce(tuple(ops))


def sample(space, n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        a = space.sample(rng)
        if a not in out:
            out.append(a)
    return out


# --- encodings ---------------------------------------------------------------------------------
def test_path_encoding_counts_paths_and_cuts_zero_edges():
    enc = PathEncoder(NB201)
    conv = cell()
    v = enc.encode(conv)
    n_ops = len(enc.ops)  # the non-zero operations
    c3 = enc.ops.index("nor_conv_3x3")
    # paths of length 1 (0->3), 2 (0->1->3, 0->2->3), 3 (0->1->2->3), all through conv3x3 nodes
    assert v[1 + c3] == 1
    assert v[1 + n_ops + c3 * n_ops + c3] == 2
    assert v[1 + n_ops + n_ops**2 + (c3 * n_ops + c3) * n_ops + c3] == 1
    assert v.sum() == 4
    # a none edge removes every path through it
    cut = cell(3, "none")  # edge 0->3
    assert enc.encode(cut).sum() == 3 and enc.encode(cut)[1 + c3] == 0
    # truncation keeps only the short paths; adjacency is fixed-length
    assert encode(NB201, conv, "trunc_path", truncate=1).sum() == 1
    assert len(encode(NB201, conv, "adjacency")) == len(encode(NB201, cut, "adjacency"))
    with pytest.raises(NasforgeError, match="unknown encoding"):
        encode(NB201, conv, "bogus")


# --- kernels -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CHEAP)
@pytest.mark.parametrize("space_name", ["nb201", "nbgraph"])
def test_cheap_kernels_are_psd_with_unit_diagonal(name, space_name, nbgraph):
    space = NB201 if space_name == "nb201" else nbgraph
    archs = sample(space, 40)
    k = get_kernel(name, space)
    cache = KernelCache(k)
    for a in archs:
        cache.add(a)
    C = cache.C
    assert C.shape == (k.k, 40, 40)
    np.testing.assert_allclose(C, C.transpose(0, 2, 1), atol=1e-12)
    scales = k.scales(C)
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = rng.uniform(*zip(*k.theta_bounds()))
        K = k.gram(C, np.asarray(theta), scales)
        np.testing.assert_allclose(np.diag(K), 1.0, atol=1e-12)
        assert np.linalg.eigvalsh(K).min() > -1e-8
    # the incremental cache equals components computed from scratch
    fresh = k.pairwise_sym([cache.feature(a) for a in archs])
    np.testing.assert_allclose(C, fresh, atol=1e-10)


def test_tree_wasserstein_on_hand_computed_cells():
    k = get_kernel("tw", NB201)
    base, same_family, other = cell(), cell(0, "nor_conv_1x1"), cell(0, "avg_pool_3x3")
    f = [k.features(a) for a in (base, same_family, other)]
    d = k.pairwise(f[:1], f[1:])[:, 0]
    # 1-gram: moving 1/6 of the mass between leaves of one family costs 2 * alpha / 6; to another
    # family alpha/6 + (1 - alpha)/6 + 1/6 (a singleton family hangs at weight 1)
    assert d[0, 0] == pytest.approx(2 * k.alpha / 6)
    assert d[0, 1] == pytest.approx(2 / 6)
    assert np.all(d[1:] == 0)  # same wiring and degrees
    with pytest.raises(NasforgeError, match="ngram=1 or 2"):
        TreeWassersteinKernel(NB201, ngram=3)
    with pytest.raises(NasforgeError, match="unknown kernel"):
        get_kernel("rbf", NB201)


def test_hot_kernel_distances_and_hierarchy():
    k = get_kernel("hot", NB201)
    archs = sample(NB201, 8, seed=3)
    f = [k.features(a) for a in archs]
    D = k.pairwise_sym(f)[0]
    assert np.allclose(D, D.T) and np.all(np.diag(D) == 0) and np.all(D[~np.eye(8, dtype=bool)] > 0)
    # single-cell spaces: the network level reduces to the cell level
    assert k.distance(f[0], f[1]) == pytest.approx(k.cell_distance(f[0][0], f[1][0]))

    class TwoCells(NB201Space):  # a macro space whose networks are two NB201 cells
        def cells(self, arch):
            return [self.graph(arch[0]), self.graph(arch[1])]

    h = HOTKernel(TwoCells(), position_weight=1.0)
    a, b = archs[0], archs[1]
    ab, ba, aa = h.features((a, b)), h.features((b, a)), h.features((a, a))
    # swapping the cells costs the cheaper of keeping positions (cell distances) or moving cells
    dab = k.cell_distance(f[0][0], f[1][0])
    assert h.distance(ab, ba) == pytest.approx(min(dab, 1.0))
    assert h.distance(ab, ab) == pytest.approx(0.0, abs=1e-12)
    assert h.distance(ab, aa) == pytest.approx(dab / 2)


def test_indefinite_matrices_are_handled():
    K = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])  # not PSD
    assert np.linalg.eigvalsh(K).min() < 0
    L, added, clipped = robust_cholesky(K)
    assert clipped and added > 0
    assert np.linalg.eigvalsh(L @ L.T).min() > 0
    L, added, clipped = robust_cholesky(np.eye(3))
    assert added == 0 and not clipped


# --- the GP ------------------------------------------------------------------------------------
class LineKernel(ArchKernel):
    """Laplace kernel on real numbers, to test the GP on a toy function."""

    name = "line"
    components = ("abs",)

    def __init__(self):
        pass

    def features(self, x):
        return float(x)

    def pairwise(self, fa, fb):
        return np.abs(np.subtract.outer(np.asarray(fa, float), np.asarray(fb, float)))[None]


def test_gp_posterior_on_a_toy_function():
    k = LineKernel()
    x = np.linspace(0, 6, 25)
    y = np.sin(x)
    cache = KernelCache(k)
    for v in x:
        cache.add(v)
    gp = GaussianProcess(k).fit(cache.C, y)
    # analytic gradient of the marginal likelihood
    from scipy.optimize import approx_fprime

    yn = (y - y.mean()) / y.std()
    p = gp.params + 0.05
    num = approx_fprime(p, lambda q: gp.neg_log_marginal_likelihood(q, cache.C, yn)[0], 1e-6)
    np.testing.assert_allclose(gp.neg_log_marginal_likelihood(p, cache.C, yn)[1], num, rtol=1e-3, atol=1e-4)
    # interpolation between the data and uncertainty far away (normalised units)
    xt = np.array([1.1, 3.3, 40.0])
    mu, var = gp.predict(cache.cross(xt))
    pred = mu * y.std() + y.mean()
    assert np.abs(pred[:2] - np.sin(xt[:2])).max() < 0.1
    assert var[2] > 20 * var[0] and var[2] == pytest.approx(gp.variance, rel=1e-3)
    mu2, cov = gp.posterior(cache.cross(xt), cache.among(xt))
    np.testing.assert_allclose(mu2, mu)
    np.testing.assert_allclose(np.diag(cov), var, rtol=1e-6, atol=1e-9)
    # expected improvement: positive, larger where the mean or the uncertainty is larger
    ei = expected_improvement(np.array([0.0, 1.0, 0.0]), np.array([1.0, 1.0, 4.0]), best=0.5)
    assert ei[1] > ei[0] and ei[2] > ei[0] > 0


# --- the strategies ------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [{"kernel": "tw"}, {"kernel": "wl", "acquisition": "ucb"},
                                    {"kernel": "hamming", "acquisition": "ts"}])
def test_bo_is_deterministic_has_no_duplicates_and_finds_the_optimum(params):
    a = run(get_strategy("bo", NB201, seed=4, n_random=30, **params), 40)
    b = run(get_strategy("bo", NB201, seed=4, n_random=30, **params), 40)
    c = run(get_strategy("bo", NB201, seed=5, n_random=30, **params), 40)
    assert a == b and a != c
    assert len(set(a)) == len(a)
    assert max(map(objective, a)) > max(map(objective, sample(NB201, 40, seed=4)))


def test_bo_and_bananas_on_nas_bench_graph(nbgraph):
    best = max(nbgraph_objective(a) for a in nbgraph)
    for name, params in (("bo", {"kernel": "wl"}), ("bo", {"kernel": "tw2", "batch_size": 3}),
                         ("bo", {"kernel": "hot", "n_random": 10, "n_local": 6, "n_incumbents": 2}),
                         ("bananas", {"k": 5, "epochs": 60})):
        s = get_strategy(name, nbgraph, seed=0, n_init=8, **params)
        archs = run(s, 30, nbgraph_objective)
        assert len(set(archs)) == 30 and all(a in nbgraph for a in archs)
        assert max(map(nbgraph_objective, archs)) >= best - 1.5, (name, params)


@pytest.mark.parametrize("method", ["kdpp", "kb", "random"])
def test_batch_returns_b_distinct_archs_chosen_at_once(method):
    s = get_strategy("bo", NB201, seed=2, kernel="tw", batch_size=4, batch_method=method, n_init=6, n_random=30)
    run(s, 6)
    batch = [s.ask() for _ in range(4)]  # nothing told in between: one batch, chosen at once
    assert len({b.arch for b in batch}) == 4
    assert len({b.info["step"] for b in batch}) == 1 and batch[0].info["batch"] == method
    for b in batch:
        s.tell(b, objective(b.arch))
    nxt = s.ask()
    assert nxt.info["step"] == batch[0].info["step"] + 1 and nxt.arch not in {b.arch for b in batch}
    # with evaluations pending, a refill only fills the free slots
    s2 = get_strategy("bo", NB201, seed=2, kernel="tw", batch_size=4, batch_method=method, n_init=6, n_random=30)
    run(s2, 6)
    first = [s2.ask() for _ in range(4)]
    s2.tell(first[0], objective(first[0].arch))
    s2.tell(first[1], objective(first[1].arch))
    refill = [s2.ask() for _ in range(2)]
    assert refill[0].info["step"] == refill[1].info["step"] == first[0].info["step"] + 1
    assert s2.ask().info["step"] == first[0].info["step"] + 2  # four pending: a new step of one


def test_kdpp_sampler_matches_the_exact_distribution():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 3))
    L = X @ X.T + 0.1 * np.eye(5)
    subsets = list(itertools.combinations(range(5), 2))
    probs = np.array([np.linalg.det(L[np.ix_(s, s)]) for s in subsets])
    probs /= probs.sum()
    counts = dict.fromkeys(subsets, 0)
    draws = 4000
    for _ in range(draws):
        counts[tuple(sorted(sample_kdpp(L, 2, rng)))] += 1
    freq = np.array([counts[s] / draws for s in subsets])
    assert np.abs(freq - probs).max() < 0.03
    assert sorted(sample_kdpp(np.diag([1.0, 0, 0, 2.0]), 2, rng)) == [0, 3]  # rank 2: forced


def test_resume_by_replay_through_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'bo.db'}"

    class Bench:
        fidelities = None
        metric_names = ["score"]

        def estimate(self, arch, fidelity=None):
            return Measurement({"score": objective(arch)}, 1.0)

    cfg = {"kernel": "tw2", "batch_size": 3, "batch_method": "kb", "n_random": 30, "refit_every": 3}
    ref = Study("ref", NB201, "score")
    ref.optimize(get_strategy("bo", NB201, seed=9, **cfg), Bench(), n_trials=35)
    Study("run", NB201, "score", storage=url).optimize(get_strategy("bo", NB201, seed=9, **cfg), Bench(), n_trials=20)
    resumed = Study("run", NB201, "score", storage=url)
    resumed.optimize(get_strategy("bo", NB201, seed=9, **cfg), Bench(), n_trials=35)
    assert [t.arch for t in resumed.trials] == [t.arch for t in ref.trials]
    with pytest.raises(NasforgeError, match="different strategy"):
        Study("run", NB201, "score", storage=url).optimize(
            get_strategy("bo", NB201, seed=9, **{**cfg, "kernel": "wl"}), Bench(), n_trials=36)


def test_bananas_runs_and_is_seeded():
    a = run(get_strategy("bananas", NB201, seed=1, n_init=10, k=5, epochs=50), 30)
    b = run(get_strategy("bananas", NB201, seed=1, n_init=10, k=5, epochs=50), 30)
    assert a == b and len(set(a)) == 30
    assert max(map(objective, a[10:])) > max(map(objective, a[:10]))
    s = get_strategy("bananas", NB201, seed=1, encoding="adjacency", n_init=5, k=3, epochs=30)
    assert len(set(run(s, 12))) == 12
    with pytest.raises(NasforgeError, match="unknown encoding"):
        get_strategy("bananas", NB201, encoding="bogus")  # "onehot" is the space's own encoding now


def test_failures_are_kept_out_of_the_model():
    s = get_strategy("bo", NB201, seed=0, n_init=4, n_random=20)
    archs = []
    for i in range(12):
        sug = s.ask()
        archs.append(sug.arch)
        s.tell(sug, None if i % 3 == 0 else objective(sug.arch))
    assert len(s.cache) == 8 and len(set(archs)) == 12
    assert s.best_score == max(objective(a) for i, a in enumerate(archs) if i % 3)


@pytest.mark.parametrize("bad, message", [
    ({"kernel": "rbf"}, "unknown kernel"),
    ({"acquisition": "pi"}, "unknown acquisition"),
    ({"batch_method": "qei"}, "unknown batch_method"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"transform": "log"}, "unknown transform"),
    ({"n_random": 0, "n_local": 0}, "needs candidates"),
])
def test_bad_settings_are_clear_errors(bad, message):
    with pytest.raises(NasforgeError, match=message):
        get_strategy("bo", NB201, **bad)


def test_cli_search_with_kernel(capsys):
    from nasforge.cli.main import main

    code = main(["search", "--benchmark", "nbgraph:cora", "--strategy", "bo", "--kernel", "tw", "--param",
                 "n_random=20", "--storage", ":memory:", "--budget", "14", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "14 new trial(s)" in out and "kernel='tw'" in out
    code = main(["search", "--benchmark", "nbgraph:cora", "--strategy", "bo", "--kernel", "tw", "--param",
                 'kernel="wl"', "--storage", ":memory:", "--budget", "2", "--quiet"])
    assert code == 2 and "conflicts" in capsys.readouterr().err
