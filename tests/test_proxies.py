"""Zero-cost proxies: registry, scores, shared passes, estimator, ensembles, warm start, CLI, correlations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from nasforge.analysis.correlation import bootstrap, correlation_table, kendall_tau, rankdata, spearman, top_k_precision
from nasforge.errors import NasforgeError
from nasforge.estimation.proxies import PROXIES, SELECTIONS, resolve_proxies
from nasforge.spaces import NB201Space

SPACE = NB201Space()
NONE_CELL = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
CONV_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
TINY = {"C": 4, "N": 1}


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread is fastest, and robust on a busy CPU
    yield torch
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def estimator(torch):
    from nasforge.estimation.proxies import ProxyEstimator

    return ProxyEstimator(SPACE, "digits", "all", batch_size=16, seed=0, net=TINY)


# --- registry ---------------------------------------------------------------------------------------
def test_every_proxy_declares_a_direction_and_names_resolve():
    assert {"naswot", "knas", "synflow", "snip", "grasp", "fisher", "grad_norm", "jacov", "zen", "l2_norm",
            "epe_nas", "plain", "params", "flops"} <= set(PROXIES)
    for spec in PROXIES.values():
        assert isinstance(spec.higher_is_better, bool) and spec.group and spec.reference
    assert resolve_proxies("nwot, jacob_cov,naswot") == ["naswot", "jacov"]
    assert resolve_proxies("all") == list(PROXIES)
    assert "grasp" not in resolve_proxies("cheap") and set(SELECTIONS["cheap"]) <= set(PROXIES)
    with pytest.raises(NasforgeError, match="unknown proxy 'bogus'.*naswot"):
        resolve_proxies("naswot,bogus")


# --- scores -------------------------------------------------------------------------------------------
def test_same_seed_same_scores_and_the_estimator_interface(estimator, torch):
    from nasforge.estimation.proxies import ProxyEstimator

    a = estimator.estimate(MIXED_CELL)
    b = estimator.estimate(SPACE.parse(MIXED_CELL))
    assert set(a.metrics) == set(PROXIES) and a.metrics == b.metrics
    assert a.cost > 0 and a.fidelity is None and "gradient" in a.info["seconds"]
    assert all(estimator.higher_is_better(p) == PROXIES[p].higher_is_better for p in PROXIES)
    assert estimator.higher_is_better("params")  # as a proxy: more is predicted better
    other = ProxyEstimator(SPACE, estimator.dataset, "naswot,synflow", batch_size=16, seed=1, net=TINY)
    c = other.estimate(MIXED_CELL).metrics
    assert c["naswot"] != a.metrics["naswot"] and c["synflow"] != a.metrics["synflow"]  # other batch, weights
    with pytest.raises(NasforgeError, match="no fidelity"):
        estimator.estimate(MIXED_CELL, 12)


def test_shared_passes_give_each_proxy_its_own_value(estimator, torch):
    from nasforge.estimation.proxies import score_network

    net = estimator.build(MIXED_CELL)
    together = score_network(net, estimator.inputs, estimator.targets, "all", seed=3)
    for p in PROXIES:
        alone = score_network(net, estimator.inputs, estimator.targets, [p], seed=3)[p]
        assert alone == pytest.approx(together[p], rel=1e-6, abs=1e-12), p
    # the network itself is left untouched (weights and BatchNorm statistics)
    fresh = estimator.build(MIXED_CELL)
    for (k, v), (_, w) in zip(net.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(v, w), k


def test_sanity_of_the_scores(estimator, torch):
    from nasforge.spaces.nb201_net import nb201_param_count

    none = estimator.estimate(NONE_CELL).metrics
    conv = estimator.estimate(CONV_CELL).metrics
    mixed = estimator.estimate(MIXED_CELL).metrics
    # the all-none cell passes nothing from input to output
    assert none["synflow"] == 0.0 and conv["synflow"] > mixed["synflow"] > 0
    assert none["naswot"] == -math.inf and none["jacov"] == -math.inf and none["zen"] == -math.inf
    assert none["snip"] == 0.0 and none["grasp"] == 0.0
    # NASWOT tells architectures apart; the bigger cell has more parameters and operations
    assert math.isfinite(conv["naswot"]) and conv["naswot"] != mixed["naswot"]
    assert conv["params"] > mixed["params"] > none["params"] and conv["flops"] > mixed["flops"] > none["flops"]
    assert conv["params"] == pytest.approx(nb201_param_count(CONV_CELL, C=4, N=1, in_channels=1) / 1e6)
    sample = [SPACE.sample(np.random.default_rng(i)) for i in range(6)]
    syn = [estimator.estimate(a).metrics["synflow"] for a in sample]
    assert min(syn) >= none["synflow"]


def test_naswot_is_the_logdet_of_the_hamming_kernel(estimator, torch):
    """Recompute NASWOT's kernel the way the reference code does (two matrix products per ReLU)."""
    from nasforge.estimation.proxies import score_network

    import copy

    net = estimator.build(MIXED_CELL).train()
    ref_net = copy.deepcopy(net)  # before the hooks: a deep copy would carry them along
    K = np.zeros((16, 16))

    def hook(m, inp, out):
        c = (inp[0].reshape(16, -1) > 0).double().numpy()
        K[:] += c @ c.T + (1 - c) @ (1 - c).T

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.ReLU)]
    with torch.no_grad():
        net(estimator.inputs)
    for h in handles:
        h.remove()
    got = score_network(ref_net, estimator.inputs, estimator.targets, "naswot")["naswot"]
    assert got == pytest.approx(np.linalg.slogdet(K)[1], rel=1e-9)


@pytest.mark.parametrize("shape", [(16, 4, 8, 8), (16, 3, 5, 7), (7, 1, 1, 1), (9, 2, 1, 3), (12, 33)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_naswot_int8_kernel_equals_the_float_kernels(torch, shape, channels_last):
    """The int8 Gram GEMM (default) counts exactly like the former float32 one and float64 numpy."""
    from nasforge.estimation.proxies.measures import _hamming_kernel

    if channels_last and len(shape) != 4:
        pytest.skip("channels-last needs 4 dimensions")
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    x[0] = -x[1]  # complementary codes: the Hamming distance is every unit
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    c = (x.reshape(shape[0], -1) > 0).double().numpy()
    ref = c @ c.T + (1 - c) @ (1 - c).T
    for method in ("int8", "float32"):
        for codes in (x, x > 0):  # pre-activations or codes
            k = _hamming_kernel(codes, method)
            assert k.dtype == torch.float64 and np.array_equal(k.numpy(), ref), method


def test_box_pooling_is_torch_average_pooling_bit_for_bit(torch):
    """The shifted-sum 3x3 mean equals F.avg_pool2d(count_include_pad=False) exactly, borders and
    tiny maps included, in both layouts; the patched pools are used only outside autograd."""
    import torch.nn.functional as F

    from nasforge.estimation.proxies.measures import _box_mean3, _fast_box_pools, _is_box_pool, _unprune

    gen = torch.Generator().manual_seed(0)
    for shape in [(128, 16, 32, 32), (7, 3, 5, 9), (2, 4, 1, 1), (3, 2, 1, 6), (4, 5, 2, 2), (5, 16, 8, 8)]:
        for scale in (1e-3, 1.0, 1e4):
            for dtype in (torch.float32, torch.float64):
                x = (torch.randn(shape, generator=gen, dtype=dtype) * scale)
                for y in (x, x.contiguous(memory_format=torch.channels_last)):
                    ref = F.avg_pool2d(y, 3, 1, 1, count_include_pad=False)
                    got = _box_mean3(y)
                    assert torch.equal(got, ref), (shape, scale, dtype)
    box = torch.nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    assert _is_box_pool(box)
    assert not _is_box_pool(torch.nn.AvgPool2d(3, stride=1, padding=1))  # padding counted
    assert not _is_box_pool(torch.nn.AvgPool2d(2, stride=2))
    net = torch.nn.Sequential(box, torch.nn.AvgPool2d(2))
    patched = _fast_box_pools(net)
    assert patched == [box]
    x = torch.randn(2, 4, 6, 6, generator=gen)
    with torch.no_grad():
        assert torch.equal(net(x), F.avg_pool2d(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), 2))
    x.requires_grad_(True)
    net(x).sum().backward()  # with autograd the module's own forward runs
    _unprune(patched)
    assert "forward" not in box.__dict__


@pytest.mark.parametrize("channels_last", [False, True])
def test_naswot_fast_path_gives_the_reference_scores(estimator, torch, channels_last):
    """int8 GEMM + pruned NB201 cells + no deep copy give exactly the former path's scores, also for
    cells with dead nodes, all-zero nodes and no path to the output."""
    from nasforge.estimation.proxies import score_network

    cells = [NONE_CELL, CONV_CELL, MIXED_CELL,
             "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|none~2|",
             "|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
             "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
             "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|"]
    cells += [SPACE.format(SPACE.sample(np.random.default_rng(i))) for i in range(8)]
    x, y = estimator.inputs, estimator.targets
    for cell in cells:
        ref = score_network(estimator.build(cell), x, y, "naswot", channels_last=channels_last,
                            naswot_method="float32", naswot_prune=False)["naswot"]
        net = estimator.build(cell)
        fast = score_network(net, x, y, "naswot", channels_last=channels_last, owned=True)["naswot"]
        assert fast == ref or (math.isinf(ref) and fast == ref), cell
        assert "forward" not in net.cells[0].__dict__  # the pruned forward is removed again
    assert estimator.estimate(NONE_CELL).metrics["naswot"] == -math.inf


def test_knas_is_the_mean_of_the_per_sample_gradient_gram_matrix(estimator, torch):
    import torch.nn.functional as F

    from nasforge.estimation.proxies import score_network
    from nasforge.estimation.proxies.measures import weight_layers

    net = estimator.build(MIXED_CELL).train()
    got = score_network(net, estimator.inputs, estimator.targets, "knas")["knas"]
    import copy

    work = copy.deepcopy(net).train()
    weights = [m.weight for m in weight_layers(work)]
    losses = F.cross_entropy(work(estimator.inputs), estimator.targets, reduction="none") / len(estimator.targets)
    rows = []
    for i in range(len(losses)):  # per-sample gradients of the batch loss, one at a time
        gs = torch.autograd.grad(losses[i], weights, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(w)).reshape(-1) for g, w in zip(gs, weights)]))
    G = torch.stack(rows).double() * len(losses)  # gradients of each sample's own loss
    gram = G @ G.T
    assert got == pytest.approx(float(gram.mean()), rel=1e-5)


def test_bn_handling_and_data_independence(estimator, torch):
    from nasforge.estimation.proxies import score_network

    net = estimator.build(MIXED_CELL)
    x, y = estimator.inputs, estimator.targets
    # synflow, l2_norm, params, flops ignore the data; synflow bypasses BatchNorm entirely
    a = score_network(net, x, y, "synflow,l2_norm,params,flops")
    b = score_network(net, torch.randn_like(x) * 5, torch.zeros_like(y), "synflow,l2_norm,params,flops")
    assert a == b
    bn = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bn:
        m.running_var.fill_(9.0)  # BN in eval mode would divide by 3: synflow must not notice
    assert score_network(net, x, y, "synflow")["synflow"] == a["synflow"]
    # zen: the paper's BN term (batch variance) differs from reading running statistics
    z_batch = score_network(net, x, y, "zen", seed=0)["zen"]
    z_run = score_network(net, x, y, "zen", seed=0, zen_bn="running")["zen"]
    assert math.isfinite(z_batch) and z_batch != pytest.approx(z_run)
    assert score_network(net, x, y, "zen", seed=0)["zen"] == z_batch  # seeded Gaussian draws


def test_proxies_work_on_vector_networks_and_refuse_bad_pairs(torch):
    from nasforge.data import from_arrays
    from nasforge.estimation.proxies import ProxyEstimator, score_network

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(40, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 40, generator=g), torch.arange(24) % 10
    scores = score_network(mlp, x, y, "all")
    assert set(scores) == set(PROXIES) and all(math.isfinite(v) for v in scores.values())
    vectors = from_arrays(np.random.default_rng(0).normal(size=(200, 40)).astype(np.float32),
                          np.arange(200) % 10, name="vec")
    with pytest.raises(NasforgeError, match="builds convolutional networks for images.*vectors"):
        ProxyEstimator(SPACE, vectors, "naswot")
    with pytest.raises(NasforgeError, match="batch_size 5000 exceeds"):
        ProxyEstimator(SPACE, "digits", "naswot", batch_size=5000, net=TINY)
    with pytest.raises(NasforgeError, match="naswot needs ReLU"):
        score_network(torch.nn.Linear(40, 10), x, y, "naswot")


# --- ensembles and warm start ------------------------------------------------------------------------
def test_rank_ensemble_means_ranks_and_learns_weights():
    from nasforge.estimation.proxies import RankEnsemble

    table = {"naswot": [1.0, 2.0, 3.0, 4.0], "synflow": [40.0, 30.0, 20.0, 10.0]}
    ens = RankEnsemble(["naswot", "synflow"])
    assert ens.score(table) == pytest.approx([(0.25 + 1.0) / 2, (0.5 + 0.75) / 2, (0.75 + 0.5) / 2, (1.0 + 0.25) / 2])
    # a lower-is-better member is flipped by its direction
    flipped = RankEnsemble(["naswot", "x"], directions={"x": False})
    assert flipped.score({"naswot": [1.0, 2.0, 3.0, 4.0], "x": [4.0, 3.0, 2.0, 1.0]}) == pytest.approx([0.25, 0.5, 0.75, 1.0])
    rng = np.random.default_rng(0)
    target = rng.normal(size=200)
    noisy = {"naswot": target + rng.normal(scale=0.1, size=200), "synflow": rng.normal(size=200)}
    learned = RankEnsemble(["naswot", "synflow"]).fit(noisy, target)
    assert learned.weights["naswot"] > 0.9 and sum(learned.weights.values()) == pytest.approx(1.0)
    with pytest.raises(NasforgeError, match="weights for proxies not in the ensemble"):
        RankEnsemble(["naswot"], weights={"zen": 1.0})


def test_ensemble_estimator_and_warm_start_on_stored_scores(tmp_path):
    import pandas as pd

    from nasforge.estimation.proxies import EnsembleEstimator, ProxyTable, RankEnsemble, proxy_warm_start

    archs = list(SPACE)[:50]
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"arch": [str(a) for a in archs], "naswot": rng.normal(size=50),
                       "synflow": rng.normal(size=50), "seconds": np.full(50, 0.5)}).set_index("arch")
    table = ProxyTable(SPACE, df)
    ens = RankEnsemble("naswot,synflow")
    est = EnsembleEstimator(table, ens, df)
    best = int(np.argmax(ens.score(df)))
    m = est.estimate(archs[best])
    assert m.cost == 0.5 and set(m.metrics) == {"ensemble", "naswot", "synflow"}
    assert m.metrics["ensemble"] == pytest.approx(float(np.max(ens.score(df))) - 0.5 / 50)
    warm = proxy_warm_start(SPACE, table, n_samples=20, n_top=5, seed=3, ensemble=ens, candidates=archs)
    assert len(warm.archs) == 5 and warm.seconds == pytest.approx(20 * 0.5)
    scores = dict(zip(warm.sampled, warm.scores))
    assert [scores[a] for a in warm.archs] == sorted(scores.values(), reverse=True)[:5]
    assert proxy_warm_start(SPACE, table, 20, 5, seed=3, ensemble=ens, candidates=archs).archs == warm.archs


def test_regularized_evolution_starts_from_the_given_population(nb201_c10):
    from nasforge.strategies import RegularizedEvolution, get_strategy
    from nasforge.study import Study

    initial = [str(a) for a in list(SPACE)[100:105]] + [str(list(SPACE)[100])]  # a duplicate is dropped
    re = RegularizedEvolution(SPACE, population_size=8, sample_size=3, initial=initial, seed=2)
    assert re.config()["initial"] == initial[:5]
    asked = [re.ask() for _ in range(5)]
    assert [str(s.arch) for s in asked] == initial[:5] and asked[0].info["phase"] == "initial"
    assert "initial" not in RegularizedEvolution(SPACE).config()  # old configs are unchanged
    # a study resumes with the warm start (replay asks the same architectures)
    study = Study("warm", SPACE, "valid_acc")
    study.optimize(get_strategy("re", SPACE, population_size=8, sample_size=3, initial=initial, seed=2), nb201_c10,
                   n_trials=12)
    study.optimize(get_strategy("re", SPACE, population_size=8, sample_size=3, initial=initial, seed=2), nb201_c10,
                   n_trials=20)
    assert [t.arch for t in study.trials[:5]] == initial[:5] and len(study.finished_trials) == 20
    with pytest.raises(NasforgeError, match="different strategy"):
        study.optimize(get_strategy("re", SPACE, population_size=8, sample_size=3, seed=2), nb201_c10, n_trials=21)
    with pytest.raises(NasforgeError, match="malformed|not an NB201"):
        RegularizedEvolution(SPACE, initial=["|bogus|"])


@pytest.mark.parametrize("name,params", [("bo", {"kernel": "hamming"}),
                                         ("predictor", {"predictor": "gp", "predictor_params": {"kernel": "hamming"}})])
def test_model_guided_search_starts_from_the_warm_start(nb201_c10, name, params):
    from nasforge.strategies import get_strategy
    from nasforge.study import Study

    initial = [str(a) for a in list(SPACE)[200:203]]
    strat = get_strategy(name, SPACE, seed=4, initial=initial + initial[:1], n_init=5, **params)
    assert strat.config()["initial"] == initial
    assert "initial" not in get_strategy(name, SPACE, **params).config()  # old configs are unchanged
    study = Study("warm", SPACE, "valid_acc")
    study.optimize(strat, nb201_c10, n_trials=9)
    phases = [t.info.get("phase") for t in study.trials]
    assert [t.arch for t in study.trials[:3]] == initial and phases[:3] == ["initial"] * 3
    assert phases[3:5] == ["init", "init"] and phases[5] not in ("init", "initial")  # random fill up to n_init
    again = Study("warm", SPACE, "valid_acc")  # interrupted after 6 trials, resumed by replay
    again.optimize(get_strategy(name, SPACE, seed=4, initial=initial, n_init=5, **params), nb201_c10, n_trials=6)
    again.optimize(get_strategy(name, SPACE, seed=4, initial=initial, n_init=5, **params), nb201_c10, n_trials=9)
    assert [t.arch for t in again.trials] == [t.arch for t in study.trials]
    # a warm start longer than n_init is evaluated whole before the model takes over
    long = get_strategy(name, SPACE, seed=4, initial=[str(a) for a in list(SPACE)[300:308]], n_init=2, **params)
    study = Study("long", SPACE, "valid_acc")
    study.optimize(long, nb201_c10, n_trials=10)
    assert [t.info.get("phase") for t in study.trials[:8]] == ["initial"] * 8


def test_cli_search_warm_start_is_the_proxy_ranked_top_and_resumes(tmp_path, capsys, data_dir, torch):
    from nasforge.cli.main import main
    from nasforge.data import load_dataset
    from nasforge.estimation.proxies import ProxyEstimator, RankEnsemble, proxy_warm_start
    from nasforge.study import get_storage, load_study

    db = f"sqlite:///{tmp_path}/w.db"
    argv = ["search", "--benchmark", "nb201:cifar10", "--strategy", "bo", "--kernel", "hamming", "--param", "n_init=4",
            "--warm-start", "synflow:12", "--seed", "3", "--study", "w", "--storage", db, "--data-dir", str(data_dir)]
    assert main(argv + ["--budget", "6"]) == 0
    assert "warm start (synflow:12): the top 4 of 12 random architectures" in capsys.readouterr().out
    study = load_study("w", get_storage(db))
    # the same ranking computed directly: the benchmark's network (C=16, N=5) on CIFAR-10, the search's seed
    est = ProxyEstimator(SPACE, load_dataset("cifar10", data_dir=data_dir, seed=3), "synflow", seed=3)
    want = proxy_warm_start(SPACE, est, 12, 4, seed=3, ensemble=RankEnsemble(["synflow"])).archs
    assert study.config["search"]["params"]["initial"] == want
    assert [t.arch for t in sorted(study.trials, key=lambda t: t.number)[:4]] == want
    assert main(argv + ["--budget", "8"]) == 0  # resumes with the stored warm start; nothing is re-ranked
    out = capsys.readouterr().out
    assert "resuming: 6 trial(s) already done" in out and "warm start (" not in out
    assert len(load_study("w", get_storage(db)).finished_trials) == 8
    assert main(["search", "--study", "w", "--storage", db, "--warm-start", "synflow:20", "--budget", "9"]) == 2
    assert "created with warm_start='synflow:12'" in capsys.readouterr().err


# --- command line -----------------------------------------------------------------------------------
def test_cli_scores_resumably_and_correlates(tmp_path, capsys, data_dir, torch):
    from nasforge.cli.main import main

    out = tmp_path / "p.csv"
    base = ["proxies", "--proxies", "naswot,synflow,params", "--C", "4", "--N", "1", "--batch-size", "16",
            "--out", str(out), "--quiet"]
    assert main(base + ["--n", "6"]) == 0
    assert "0 of 6" in capsys.readouterr().out
    lines = out.read_text().splitlines()
    assert lines[0].startswith("arch,naswot,synflow,params,seconds") and len(lines) == 7
    # a row cut short by a kill is dropped; the rerun scores only what is missing
    with open(out, "a") as f:
        f.write("|nor_conv_3x3~0|+|none~0|")
    code = main(base + ["--n", "9", "--benchmark", "nb201:cifar10", "--data-dir", str(data_dir),
                        "--ensemble", "naswot,synflow", "--plot-dir", str(tmp_path / "plots"), "--top-k", "10%,3"])
    text = capsys.readouterr().out
    assert code == 0 and "6 of 9 architecture(s) already scored" in text and "3 new architecture(s)" in text
    assert "spearman" in text and "kendall" in text and "top3" in text and "ensemble" in text
    assert len(out.read_text().splitlines()) == 10
    assert (tmp_path / "plots" / "naswot_vs_valid_acc.png").stat().st_size > 0
    # other settings never mix into the same file
    assert main(base + ["--n", "6", "--seed", "1"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main(["proxies", "--proxies", "nonsense", "--quiet"]) == 2


# --- correlations -----------------------------------------------------------------------------------
def test_correlations_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, size=300).astype(float)  # many ties
    y = x + rng.normal(size=300)
    y[:20] = np.round(y[:20])
    x[5] = -np.inf
    assert rankdata(x) == pytest.approx(scipy.stats.rankdata(x))
    assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y)[0], abs=1e-12)
    assert kendall_tau(x, y) == pytest.approx(scipy.stats.kendalltau(x, y)[0], abs=1e-12)
    assert kendall_tau(x, y, block=7) == pytest.approx(kendall_tau(x, y))
    xn = x.copy()
    xn[10] = np.nan  # NaN pairs are dropped
    keep = ~np.isnan(xn)
    assert spearman(xn, y) == pytest.approx(scipy.stats.spearmanr(xn[keep], y[keep])[0])
    assert top_k_precision([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 3, 4, 5, 6, 7, 8, 2, 1], 0.2) == 0.0
    assert top_k_precision([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 2, 3, 4, 5, 6, 7, 8, 10, 9], 2) == 1.0
    bs = bootstrap(spearman, x, y, n_boot=200, seed=1)
    assert bs["low"] < bs["value"] < bs["high"] and 0 < bs["se"] < 0.1
    t = correlation_table({"a": x, "neg": -x}, y, {"neg": False}, top_k=(0.1,), n_boot=50)
    assert t.loc["a", "spearman"] == pytest.approx(t.loc["neg", "spearman"]) and "spearman_se" in t.columns


def test_ensembles_results_and_correlations_need_no_torch():
    import subprocess
    import sys

    code = ("import sys; import nasforge.analysis.correlation, nasforge.strategies, nasforge.estimation; "
            "from nasforge.estimation.proxies import RankEnsemble, EnsembleEstimator, ProxyTable, read_results, "
            "proxy_warm_start, PROXIES; assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- DARTS and NB101 networks -------------------------------------------------------------------------
@pytest.mark.parametrize("name, net", [("nb101", {"stem_channels": 8, "cells_per_stack": 1}),
                                       ("darts", {"C": 4, "layers": 3})])
def test_proxies_and_training_build_darts_and_nb101_networks(torch, name, net):
    """Both estimators pass ``in_channels``/``input_size`` to ``build``: NB101's build used to refuse
    ``input_size`` (TypeError for every NB101 proxy or training run); vectors are refused up front."""
    import dataclasses

    from nasforge.data import from_arrays, load_digits
    from nasforge.estimation.proxies import ProxyEstimator
    from nasforge.estimation.training import TrainingEstimator
    from nasforge.spaces import get_space

    space = get_space(name)
    arch = space.sample(np.random.default_rng(3))
    est = ProxyEstimator(space, "digits", "all", batch_size=16, seed=0, net=net)
    scores = est.estimate(arch).metrics
    assert set(scores) == set(PROXIES)
    assert all(not math.isnan(v) for v in scores.values())
    assert est.estimate(arch).metrics == scores  # same seed, same network, same scores
    digits = load_digits()
    small = dataclasses.replace(digits, x_train=digits.x_train[:64], y_train=digits.y_train[:64],
                                x_test=digits.x_test[:32], y_test=digits.y_test[:32])
    trained = TrainingEstimator(space, small, max_epochs=1, batch_size=32, net=net, threads=1).estimate(arch)
    assert 0.0 <= trained.metrics["valid_acc"] <= 100.0 and trained.metrics["params"] > 0
    vectors = from_arrays(np.random.default_rng(0).normal(size=(200, 40)).astype(np.float32),
                          np.arange(200) % 10, name="vec")
    with pytest.raises(NasforgeError, match=f"space '{name}' builds convolutional networks for images.*vectors"):
        ProxyEstimator(space, vectors, "naswot", net=net)
    with pytest.raises(NasforgeError, match="input_size must be a positive integer"):
        get_space("nb101").build(get_space("nb101").sample(np.random.default_rng(0)), input_size=0)


def test_zen_reads_nb101_features_before_global_pooling(torch):
    """The Zen-score compares feature maps before global average pooling; the NB101 network pooled
    functionally, so zen read the pooled vector instead (a different, weaker quantity)."""
    from nasforge.estimation.proxies.measures import _feature_module
    from nasforge.spaces import get_space

    space = get_space("nb101")
    net = space.build(space.sample(np.random.default_rng(0)), stem_channels=8, cells_per_stack=1)
    where, kind = _feature_module(net)
    assert kind == "pre-GAP" and where is net.global_pooling
    seen = []
    handle = where.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    net(torch.randn(2, 3, 16, 16))
    handle.remove()
    assert seen == [torch.Size([2, 32, 4, 4])]  # 3 stacks: 8 -> 16 -> 32 channels, 16 -> 8 -> 4 pixels


def test_sample_archs_draws_from_darts_and_distinct_nb101_cells():
    """DARTS has a finite size (about 1e18) but is not enumerable: the sampler used to try to list it
    (TypeError). NB101 draws are distinct up to isomorphism (the benchmark's hash)."""
    from nasforge.estimation.proxies import sample_archs
    from nasforge.spaces import get_space

    darts = get_space("darts")
    archs = sample_archs(darts, 6, seed=1)
    assert len(set(archs)) == 6 and all(a in darts for a in archs)
    assert sample_archs(darts, 3, seed=1) == archs[:3] and sample_archs(darts, 6, seed=2) != archs
    with pytest.raises(NasforgeError, match="'darts' is not enumerable here"):
        sample_archs(darts, None)
    nb101 = get_space("nb101")
    cells = sample_archs(nb101, 300, seed=0)
    assert len({nb101.canonical_key(a) for a in cells}) == 300
    assert sample_archs(nb101, 50, seed=0) == cells[:50]
    assert sample_archs(SPACE, 40, seed=0)[:10] == sample_archs(SPACE, 10, seed=0)  # NB201: nested permutation
