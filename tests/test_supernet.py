"""Weight-sharing supernets: shared weights, samplers, training, evaluation, splits, CLI."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nasforge import NasforgeError  # noqa: E402
from nasforge.data import load_digits  # noqa: E402
from nasforge.oneshot import (FairSampler, NB201Supernet, PADASampler, PathEvaluator, SplitSupernet,  # noqa: E402
                              SupernetEstimator, SupernetTrainer, UniformSampler, build_supernet, downsample,
                              make_sampler, recalibrate_bn, sample_archs, split_supernet)
from nasforge.oneshot.fewshot import (best_cut, choose_split, cosine_matrix, grow_splits, lid_mle,  # noqa: E402
                                      split_steps)
from nasforge.oneshot.supernet import arch_indices  # noqa: E402
from nasforge.spaces import NB201Space  # noqa: E402
from nasforge.spaces.nb201 import OPS  # noqa: E402

SPARSE = "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def tiny(seed: int = 0, **kw) -> NB201Supernet:
    torch.manual_seed(seed)
    net = NB201Supernet(C=4, N=1, in_channels=1, input_size=8, **kw)
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return net


def onehot(arch) -> torch.Tensor:
    w = torch.zeros(6, 5)
    for e, k in enumerate(arch_indices(arch)):
        w[e, k] = 1.0
    return w


# --- the supernet ------------------------------------------------------------------------------
def test_path_equals_standalone_network_with_the_same_weights():
    net = tiny().eval()
    x = torch.randn(6, 1, 8, 8)
    rng = np.random.default_rng(0)
    archs = [NB201Space().sample(rng) for _ in range(25)] + [SPARSE, ALL_NONE]
    for a in archs:
        standalone = net.extract(a).eval()
        # the copied keys are the official ones and the module is the package's NB201Network
        assert set(standalone.state_dict()) == set(net.path_state_dict(a))
        assert torch.equal(standalone(x), net(x, a)), a
    # training mode (batch statistics) agrees too
    net.train()
    a = archs[0]
    standalone = net.extract(a).train()
    assert torch.allclose(standalone(x), net(x, a), atol=1e-6)


def test_distinct_paths_share_weights():
    net = tiny().eval()
    a, b = NB201Space().coerce(SPARSE), NB201Space().coerce(("skip_connect",) * 6)
    x = torch.randn(2, 1, 8, 8)
    before = net(x, a)
    with torch.no_grad():  # changing a weight that only `a` uses changes `a` only
        net.op_parameters(5, "nor_conv_1x1")[0].add_(1.0)
    assert not torch.equal(net(x, a), before)
    with torch.no_grad():  # the stem is shared: every path sees it
        out_b = net(x, b)
        net.stem[0].weight.mul_(2.0)
    assert not torch.equal(net(x, b), out_b)


def test_mixture_with_onehot_weights_equals_the_path():
    net = tiny().eval()
    x = torch.randn(4, 1, 8, 8)
    rng = np.random.default_rng(1)
    for _ in range(10):
        a = NB201Space().sample(rng)
        assert torch.allclose(net(x, weights=onehot(a)), net(x, a), atol=1e-6)
    assert torch.allclose(net(x, weights=onehot(SPARSE)), net(x, SPARSE), atol=1e-6)
    # a soft mixture is differentiable in the weights (DARTS): every non-`none` op gets a gradient
    alpha = torch.zeros(6, 5, requires_grad=True)
    net(x, weights=torch.softmax(alpha, dim=1)).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0


def test_supernet_forward_errors_and_fixed_path():
    net = tiny().eval()
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(NasforgeError, match="no path"):
        net(x)
    with pytest.raises(NasforgeError, match="either"):
        net(x, SPARSE, weights=onehot(SPARSE))
    with pytest.raises(NasforgeError, match=r"\(6, 5\)"):
        net(x, weights=torch.zeros(5, 5))
    net.set_arch(SPARSE)
    assert torch.equal(net(x), net(x, SPARSE))
    with pytest.raises(NasforgeError, match="input_size"):
        NB201Supernet(C=4, N=1, input_size=10)


def test_partial_channel_cells_pass_the_rest_of_the_channels_by():
    from nasforge.spaces.nb201_supernet import SearchCell

    torch.manual_seed(0)
    cell = SearchCell(8, partial=4).eval()
    assert all(next(op.parameters()).shape[0] == 2 for e in cell.edges for op in e if list(op.parameters()))
    x = torch.randn(3, 8, 5, 5)
    # the all-`none` path: each edge passes its input's last 6 channels by (the first 2 go through
    # the operations: none, i.e. zeros), shuffled in 4 groups; every node sums its edges
    def bypass(t):
        return torch.cat([torch.zeros(3, 2, 5, 5), t[:, 2:]], 1).view(3, 4, 2, 5, 5).transpose(1, 2).reshape(3, 8, 5, 5)

    n1 = bypass(x)
    n2 = bypass(x) + bypass(n1)
    assert torch.allclose(cell(x, arch_indices(ALL_NONE)), bypass(x) + bypass(n1) + bypass(n2), atol=1e-6)
    # the mixture with one-hot weights is the path; α gets a gradient through the narrow operations
    net = tiny(partial=2).eval()
    xi = torch.randn(4, 1, 8, 8)
    rng = np.random.default_rng(2)
    for _ in range(5):
        a = NB201Space().sample(rng)
        assert torch.allclose(net(xi, weights=onehot(a)), net(xi, a), atol=1e-6)
    alpha = torch.zeros(6, 5, requires_grad=True)
    net(xi, weights=torch.softmax(alpha, dim=1)).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0
    assert net.config["partial"] == 2 and "partial" not in tiny().config
    with pytest.raises(NasforgeError, match="no stand-alone network"):
        net.extract(SPARSE)
    with pytest.raises(NasforgeError, match=r"divides C=4, got 3"):
        tiny(partial=3)


# --- samplers ------------------------------------------------------------------------------------
def test_uniform_sampler_is_seeded_and_respects_restrictions():
    allowed = [["nor_conv_3x3"], OPS, OPS, ["none", "skip_connect"], OPS, OPS]
    s = UniformSampler(allowed)
    a = [s.sample_group(np.random.default_rng(3))[0] for _ in range(3)]
    b = [s.sample_group(np.random.default_rng(3))[0] for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(0)
    paths = [s.sample_group(rng)[0] for _ in range(400)]
    assert all(p[0] == OPS.index("nor_conv_3x3") and p[3] in (0, 1) for p in paths)
    counts = np.bincount([p[1] for p in paths], minlength=5)
    assert counts.min() > 50  # every op of a free edge is drawn


def test_fairnas_uses_every_op_of_every_edge_once_per_group():
    s = FairSampler()
    rng = np.random.default_rng(0)
    assert s.group_size == 5
    for _ in range(20):
        group = s.sample_group(rng)
        assert len(group) == 5
        for e in range(6):
            assert sorted(p[e] for p in group) == [0, 1, 2, 3, 4]
    # a restricted edge repeats its operations to fill the group
    r = FairSampler([["nor_conv_1x1", "nor_conv_3x3"], OPS, OPS, OPS, OPS, OPS])
    group = r.sample_group(rng)
    assert len(group) == 5 and {p[0] for p in group} == {2, 3}
    assert sorted(p[1] for p in group) == [0, 1, 2, 3, 4]


def test_fairnas_step_accumulates_the_group_into_one_update(digits):
    x, y = torch.from_numpy(digits.x_train[:32]), torch.from_numpy(digits.y_train[:32])
    net = tiny()
    tr = SupernetTrainer(net, FairSampler(), x, y, steps=3, batch_size=32, augment=None, grad_clip=None)
    calls = []
    orig = net.forward
    net.forward = lambda inp, arch=None, weights=None: (calls.append(arch), orig(inp, arch, weights))[1]
    steps_before = tr.optimizer.state_dict()["state"]
    tr.train_step()
    net.forward = orig
    assert len(calls) == 5 and tr.step == 1 and not steps_before
    # every candidate conv of the edges into the output node got a gradient in that one step
    # (on edges 0-2 a conv gets none when its path's later edges are `none`: it cannot reach the loss)
    for e in (3, 4, 5):
        for op in ("nor_conv_1x1", "nor_conv_3x3"):
            assert all(p.grad is not None for p in net.op_parameters(e, op))


def test_pada_path_probabilities_sum_to_one_and_follow_gradient_norms():
    net = tiny()
    s = PADASampler(data=False, momentum=0.0)
    s.begin(10)
    assert np.allclose(s.probabilities().sum(axis=1), 1.0)
    # fake gradients: on every edge, the 3x3 conv gets 10x the gradient of the 1x1 conv
    for p in net.parameters():
        p.grad = None
    for e in range(6):
        for p in net.op_parameters(e, "nor_conv_3x3"):
            p.grad = torch.full_like(p, 1.0)
        for p in net.op_parameters(e, "nor_conv_1x1"):
            p.grad = torch.full_like(p, 0.1)
    s.observe_gradients(net, (3,) * 6)
    s.observe_gradients(net, (2,) * 6)
    g = torch.Generator().manual_seed(0)
    s.epoch_order(0.0, g)  # progress 0: still uniform
    assert np.allclose(s.probabilities(), 0.2)
    s.epoch_order(0.5, g)
    p = s.probabilities()
    assert np.allclose(p.sum(axis=1), 1.0)
    c3, c1, skip = OPS.index("nor_conv_3x3"), OPS.index("nor_conv_1x1"), OPS.index("skip_connect")
    assert (p[:, c3] > p[:, c1]).all() and (p[:, c1] > p[:, skip]).all()
    assert np.allclose(p[:, skip], 0.5 * 0.2)  # parameter-free ops keep only the uniform share
    s.epoch_order(1.0, g)
    assert s.probabilities()[0, c3] > p[0, c3]  # the mixing weight ramps up
    # sampled paths follow the distribution
    rng = np.random.default_rng(0)
    draws = np.array([s.sample_group(rng)[0] for _ in range(2000)])
    assert (draws == c3).mean() > 0.6


def test_pada_data_probabilities():
    s = PADASampler(path=False)
    s.begin(4)
    logits = torch.tensor([[10.0, 0.0], [0.0, 10.0], [0.0, 0.0], [5.0, 0.0]])
    y = torch.tensor([0, 0, 0, 0])
    scores = PADASampler.example_scores(logits, y)
    expected = (torch.softmax(logits, 1) - torch.nn.functional.one_hot(y, 2)).norm(dim=1)
    assert torch.allclose(scores, expected)
    assert scores[1] > scores[2] > scores[3] > scores[0]  # wrong > unsure > right
    s.observe_batch(torch.arange(4), logits, y)
    g = torch.Generator().manual_seed(0)
    s.epoch_order(0.0, g)
    assert np.allclose(s.data_probabilities(), 0.25)  # no mixing yet
    order = s.epoch_order(1.0, g)
    p = s.data_probabilities()
    assert np.isclose(p.sum(), 1.0) and np.allclose(p, scores.numpy() / scores.sum().item())
    assert len(order) == 4
    many = torch.multinomial(torch.from_numpy(p), 4000, replacement=True, generator=g)
    freq = np.bincount(many.numpy(), minlength=4) / 4000
    assert freq[1] > freq[2] > freq[3] > freq[0]


def test_make_sampler_names_and_errors():
    assert isinstance(make_sampler("spos"), UniformSampler)
    s = make_sampler("pada-data")
    assert isinstance(s, PADASampler) and s.data and not s.path
    with pytest.raises(NasforgeError, match="allowed: fairnas"):
        make_sampler("greedy")
    with pytest.raises(NasforgeError, match="fixes"):
        make_sampler("pada-path", data=True)


# --- training and evaluation ---------------------------------------------------------------------
def _trainer(digits, sampler, ckpt=None, steps=12):
    x, y = digits.x_train[:96], digits.y_train[:96]  # 3 steps per epoch: epochs turn over
    net = build_supernet(digits, C=4, N=1, seed=0)
    return SupernetTrainer(net, sampler, x, y, steps=steps, batch_size=32, lr=0.05, seed=1, checkpoint=ckpt,
                           checkpoint_every=100)


@pytest.mark.parametrize("sampler", ["uniform", "pada", "fairnas"])
def test_checkpoint_resume_gives_identical_continuation(digits, tmp_path, sampler):
    steps, cut = (6, 4) if sampler == "fairnas" else (12, 5)  # 3 steps per epoch: resume mid-epoch
    straight = _trainer(digits, make_sampler(sampler), steps=steps)
    straight.train()
    first = _trainer(digits, make_sampler(sampler), ckpt=tmp_path / "a.pt", steps=steps)
    first.train(until=cut)
    first.save(tmp_path / "a.pt")
    resumed = _trainer(digits, make_sampler(sampler), ckpt=tmp_path / "a.pt", steps=steps)
    resumed.train()  # loads the checkpoint from the file, then continues
    assert resumed.step == straight.step == steps
    for (k, v), (k2, v2) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    if sampler == "pada":
        assert np.array_equal(straight.sampler.probabilities(), resumed.sampler.probabilities())
    # a checkpoint from other settings is refused
    other = SupernetTrainer(build_supernet(digits, C=4, N=1), make_sampler(sampler), digits.x_train[:96],
                            digits.y_train[:96], steps=steps, batch_size=32, lr=0.1, seed=1)
    with pytest.raises(NasforgeError, match="lr"):
        other.load(tmp_path / "a.pt")


def test_training_lowers_the_loss_and_schedule(digits):
    tr = _trainer(digits, make_sampler("uniform"), steps=30)
    assert tr.lr_at(0) == pytest.approx(0.05) and tr.lr_at(30) == pytest.approx(0.0, abs=1e-12)
    first = tr.train_step()
    r = tr.train()
    assert r["loss"] < first
    half = SupernetTrainer(tr.model, make_sampler("uniform"), digits.x_train, digits.y_train, steps=10,
                           schedule=(0.5, 1.0))
    assert half.lr_at(0) == pytest.approx(0.05 * 0.5)


def test_bn_recalibration_changes_running_stats(digits):
    net = build_supernet(digits, C=4, N=1)
    x = torch.from_numpy(digits.x_train[:64])
    before = net.stem[1].running_mean.clone()
    batches = [x[:32], x[32:]]
    recalibrate_bn(net, SPARSE, batches)
    assert not net.training
    assert not torch.equal(net.stem[1].running_mean, before)
    # an exact average over all calibration images (momentum=None), not an exponential one
    with torch.no_grad():
        feats = net.stem[0](x)
    assert torch.allclose(net.stem[1].running_mean, feats.mean(dim=(0, 2, 3)), atol=1e-5)
    assert net.stem[1].momentum == 0.1  # restored
    # the same calibration gives the same statistics: scores are deterministic
    ev = PathEvaluator(net, digits, bn_batches=2, bn_batch_size=32)
    assert ev.score(SPARSE)["acc"] == ev.score(SPARSE)["acc"]


def test_supernet_estimator_runs_a_study(digits):
    from nasforge.strategies import RandomSearch
    from nasforge.study import Study

    net = build_supernet(digits, C=4, N=1)
    est = SupernetEstimator(net, digits, bn_batches=1, bn_batch_size=32, n_eval=100)
    m = est.estimate(SPARSE)
    assert set(m.metrics) == {"valid_acc", "valid_loss"} and m.cost > 0 and m.fidelity is None
    with pytest.raises(NasforgeError, match="single fidelity"):
        est.estimate(SPARSE, 12)
    space = NB201Space()
    study = Study("sn", space, "valid_acc", storage=":memory:")
    study.optimize(RandomSearch(space, seed=0), est, n_trials=4)
    assert len(study.finished_trials) == 4 and study.best_trial is not None


def test_downsample_and_sample_archs(digits):
    d4 = downsample(digits, 4)
    assert d4.input_shape == (1, 4, 4)
    assert np.allclose(d4.x_train[0, 0, 0, 0], digits.x_train[0, 0, :2, :2].mean(), atol=1e-6)
    with pytest.raises(NasforgeError, match="divide"):
        downsample(digits, 3)
    a = sample_archs(50, seed=3)
    assert a == sample_archs(50, seed=3) and len(set(a)) == 50


# --- splits ------------------------------------------------------------------------------------
def test_fewshot_split_transfers_weights_and_restricts_the_space():
    net = tiny()
    parts = split_supernet(net, 0, [[op] for op in OPS])
    assert len(parts) == 5
    for op, child in zip(OPS, parts):
        for (k, v), (k2, v2) in zip(net.state_dict().items(), child.state_dict().items()):
            assert k == k2 and torch.equal(v, v2)
        assert child.size() == 5 ** 5
        other = next(o for o in OPS if o != op)
        assert child.contains((op,) + ("skip_connect",) * 5)
        assert not child.contains((other,) + ("skip_connect",) * 5)
        with pytest.raises(NasforgeError, match="outside"):
            child.supernet_for((other,) + ("none",) * 5)
    # weights are copies: training one part leaves the others alone
    with torch.no_grad():
        parts[0].stem[0].weight.add_(1.0)
    assert not torch.equal(parts[0].stem[0].weight, parts[1].stem[0].weight)
    fam = SplitSupernet(parts)
    for a in sample_archs(30, seed=0):
        assert fam.supernet_for(a) is parts[OPS.index(a[0])]
    with pytest.raises(NasforgeError, match="partition"):
        SplitSupernet(parts[:4])
    with pytest.raises(NasforgeError, match="partition"):
        split_supernet(net, 0, [["none", "skip_connect"], ["skip_connect", "nor_conv_1x1"]])


def test_lid_estimator_on_data_of_known_dimension():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(10, 2, generator=g))[0]  # a 2-D plane in 10-D
    plane = torch.rand(1000, 2, generator=g) @ basis.T
    assert lid_mle(plane, k=20).mean().item() == pytest.approx(2.0, abs=0.3)
    cube = torch.rand(1000, 6, generator=g)
    assert lid_mle(cube, k=20).mean().item() == pytest.approx(6.0, abs=1.2)
    assert lid_mle(plane, k=20).mean() < lid_mle(cube, k=20).mean()
    with pytest.raises(NasforgeError, match="k >= 2"):
        lid_mle(torch.randn(2, 5))


def test_best_cut_and_cosine():
    sim = np.array([[1.0, 0.9, 0.1, 0.1], [0.9, 1.0, 0.1, 0.2], [0.1, 0.1, 1.0, 0.8], [0.1, 0.2, 0.8, 1.0]])
    groups, score = best_cut(sim)
    assert sorted(map(sorted, groups)) == [[0, 1], [2, 3]] and score == pytest.approx(0.125)
    assert np.allclose(cosine_matrix([np.array([1.0, 0]), np.array([0, 2.0]), np.array([3.0, 0])]),
                       [[1, 0, 1], [0, 1, 0], [1, 0, 1]])
    assert split_steps(100, [2, 4]) == [25, 12]


@pytest.mark.parametrize("criterion", ["lid", "gradient"])
def test_choose_split_gives_a_balanced_partition_of_one_edge(digits, criterion):
    net = build_supernet(digits, C=4, N=1)
    x, y = torch.from_numpy(digits.x_train[:32]), torch.from_numpy(digits.y_train[:32])
    state = {k: v.clone() for k, v in net.state_dict().items()}
    d = choose_split(net, x, y, criterion, n_paths=1, k=8)
    assert 0 <= d.edge < 6 and sorted(len(g) for g in d.groups) == [2, 3]
    assert sorted(op for g in d.groups for op in g) == sorted(OPS)
    assert set(d.edge_scores) == set(range(6)) and d.score == min(d.edge_scores.values())
    for k, v in net.state_dict().items():  # BatchNorm buffers untouched
        assert torch.equal(v, state[k]), k
    assert all(p.grad is None for p in net.parameters())


def test_grow_splits_trains_every_part_and_resumes(digits, tmp_path):
    x, y = digits.x_train[:64], digits.y_train[:64]
    root = build_supernet(digits, C=4, N=1)
    made = []

    def make(child, steps, sched, node):
        made.append((node, steps, sched))
        return SupernetTrainer(child, make_sampler("uniform", allowed=child.allowed), x, y, steps=steps,
                               batch_size=32, schedule=sched, checkpoint=tmp_path / f"{node}.pt")

    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    fam, dec = grow_splits(root, make, xs, ys, criterion="lid", levels=2, steps=[2, 1], n_paths=1, k=8,
                           workdir=tmp_path)
    assert len(fam) == 4 and sum(p.size() for p in fam) == 15625
    assert [m[0] for m in made] == ["0.0", "0.1", "0.0.0", "0.0.1", "0.1.0", "0.1.1"]
    assert made[0][2] == (0.5, 0.75) and made[2][2] == (0.75, 1.0)
    assert json.loads((tmp_path / "decisions.json").read_text()).keys() == {"0", "0.0", "0.1"}
    # the same call again reuses decisions and finished checkpoints
    made.clear()
    fam2, dec2 = grow_splits(build_supernet(digits, C=4, N=1), make, xs, ys, criterion="lid", levels=2,
                             steps=[2, 1], n_paths=1, k=8, workdir=tmp_path)
    assert [d["groups"] for d in dec2] == [d["groups"] for d in dec]
    for a, b in zip(fam, fam2):
        assert np.array_equal(a.allowed, b.allowed)
        assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))
    tmp_path = tmp_path / "fewshot"
    fs, _ = grow_splits(build_supernet(digits, C=4, N=1), make, xs, ys, criterion="fewshot", levels=1, steps=[1],
                        edge=3)
    assert len(fs) == 5 and all(p.allowed[3].sum() == 1 for p in fs)


# --- command line ------------------------------------------------------------------------------------
def test_cli_train_rank_search(tmp_path, capsys, nb201_c10, data_dir):
    from nasforge.cli.main import main

    run = str(tmp_path / "run")
    common = ["--run", run, "--quiet", "--data-dir", str(data_dir)]
    assert main(["supernet", "train", *common, "--C", "4", "--steps", "20", "--split", "fewshot"]) == 0
    out = capsys.readouterr().out
    assert "fewshot" in out and "part 4" in out
    assert main(["supernet", "train", *common]) == 0  # finished: nothing to do
    assert "complete" in capsys.readouterr().out
    assert main(["supernet", "train", *common, "--C", "8"]) == 2  # conflicting setting: one-line error
    assert "--C 4" in capsys.readouterr().err
    assert main(["supernet", "rank", *common, "--n", "12", "--benchmark", "nb201:cifar10", "--n-eval", "60"]) == 0
    out = capsys.readouterr().out
    assert "Kendall tau" in out and "test_acc_200" in out and "valid_acc_200" in out
    assert main(["supernet", "rank", *common, "--n", "12", "--n-eval", "60"]) == 0
    assert "12 of 12 cells already scored" in capsys.readouterr().out
    assert main(["supernet", "search", *common, "--budget", "5", "--strategy", "random",
                 "--benchmark", "nb201:cifar10"]) == 0
    assert "best by supernet valid_acc" in capsys.readouterr().out
    assert main(["supernet", "rank", "--run", str(tmp_path / "nothing"), "--quiet"]) == 2
    assert main(["supernet", "train", "--run", str(tmp_path / "x"), "--sampler", "greedy", "--quiet"]) == 2
