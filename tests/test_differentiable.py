"""Differentiable NAS (nasforge.oneshot.differentiable): the bilevel loop and every method on a
tiny NB201 supernet (C=4, N=1, 8x8 digits, a few steps)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasforge.data import load_dataset
from nasforge.errors import NasforgeError
from nasforge.oneshot.differentiable import METHODS, DifferentiableSearch, OnePath, derive, search
from nasforge.oneshot.differentiable.methods import StepContext
from nasforge.spaces import get_space

torch.set_num_threads(1)
NET = {"C": 4, "N": 1}
#: the unconstrained methods (the latency-constrained ones need a target and a table: tests/test_hardcore.py)
UNCONSTRAINED = [m for m in METHODS if "target" not in METHODS[m].defaults]
FAST = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 16}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _alpha(run: DifferentiableSearch) -> torch.Tensor:
    return run.method.alpha.detach().clone()


@pytest.mark.parametrize("method", UNCONSTRAINED)
def test_alpha_moves_and_seeds_reproduce(digits, method):
    a = DifferentiableSearch(digits, method, net=NET, seed=3, **FAST)
    init = _alpha(a)
    ra = a.run()
    b = DifferentiableSearch(digits, method, net=NET, seed=3, **FAST)
    assert torch.equal(init, _alpha(b))
    rb = b.run()
    c = DifferentiableSearch(digits, method, net=NET, seed=4, **FAST)
    c.run()
    assert not torch.equal(init, _alpha(a)), "α did not move"
    assert torch.equal(_alpha(a), _alpha(b))
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    assert [h["genotype"] for h in ra.history] == [h["genotype"] for h in rb.history]
    assert not torch.equal(_alpha(a), _alpha(c))
    assert len(ra.history) == 2 and ra.history[-1]["genotype"] == ra.genotype
    h = ra.history[-1]
    assert np.allclose(np.sum(h["probs"], axis=1), 1.0, atol=1e-4)
    assert h["skip_count"] == sum(op == "skip_connect" for op in h["ops"])


@pytest.mark.parametrize("method", UNCONSTRAINED)
def test_resume_gives_the_uninterrupted_trajectory(digits, method, tmp_path):
    settings = {**FAST, "epochs": 3}
    full = DifferentiableSearch(digits, method, net=NET, seed=1, checkpoint=tmp_path / "a.ckpt", **settings).run()
    part = DifferentiableSearch(digits, method, net=NET, seed=1, checkpoint=tmp_path / "b.ckpt", **settings)
    part.run(until_epoch=1)
    assert part.epoch == 1
    again = DifferentiableSearch(digits, method, net=NET, seed=1, checkpoint=tmp_path / "b.ckpt", **settings)
    assert again.epoch == 1
    resumed = again.run()
    assert [h["genotype"] for h in full.history] == [h["genotype"] for h in resumed.history]
    assert [h["train_loss"] for h in full.history] == [h["train_loss"] for h in resumed.history]
    assert np.array_equal(full.probs, resumed.probs)


def test_checkpoint_of_other_settings_is_refused(digits, tmp_path):
    DifferentiableSearch(digits, "darts", net=NET, checkpoint=tmp_path / "c.ckpt", **FAST).run(until_epoch=1)
    with pytest.raises(NasforgeError, match="settings.epochs was 2, now 3"):
        DifferentiableSearch(digits, "darts", net=NET, checkpoint=tmp_path / "c.ckpt", **{**FAST, "epochs": 3})


def test_nan_alpha_fails_with_the_reason_and_keeps_the_checkpoint(digits, tmp_path):
    ck = tmp_path / "n.ckpt"
    run = DifferentiableSearch(digits, "darts", net=NET, checkpoint=ck, **FAST)
    run.run(until_epoch=1)

    def broken(*args, **kwargs):
        run.method.alpha.grad = torch.full_like(run.method.alpha, float("nan"))
        return 0.0

    run.method.arch_backward = broken
    with pytest.raises(NasforgeError, match="NaN.*checkpoint of epoch 1 is kept"):
        run.run()
    assert torch.load(ck, weights_only=False)["epoch"] == 1


def test_bad_input(digits):
    with pytest.raises(NasforgeError, match="unknown method 'nope'"):
        DifferentiableSearch(digits, "nope", net=NET)
    with pytest.raises(NasforgeError, match="unknown setting 'K' for method 'darts'"):
        DifferentiableSearch(digits, "darts", net=NET, method_params={"K": 2})
    with pytest.raises(NasforgeError, match="needs at least 2 search cells"):
        DifferentiableSearch(digits, "lambda-darts", "macro")
    with pytest.raises(NasforgeError, match="epochs must be"):
        DifferentiableSearch(digits, "darts", net=NET, epochs=0)
    with pytest.raises(NasforgeError, match="drnas reg"):
        DifferentiableSearch(digits, "drnas", net=NET, method_params={"reg": "l1"})
    with pytest.raises(NasforgeError, match=r"warmup_epochs \(2\) must be smaller than epochs \(2\)"):
        DifferentiableSearch(digits, "darts", net=NET, warmup_epochs=2, epochs=2)
    with pytest.raises(NasforgeError, match="warmup_epochs must be a whole number >= 0, got -1"):
        DifferentiableSearch(digits, "darts", net=NET, warmup_epochs=-1)
    with pytest.raises(NasforgeError, match=r"drnas keep must be 0 \(no pruning\) or a whole number in 1..4, got 5"):
        DifferentiableSearch(digits, "drnas", net=NET, method_params={"keep": 5})
    with pytest.raises(NasforgeError, match=r"drnas prune_at must lie in \(0, 1\), got 1"):
        DifferentiableSearch(digits, "drnas", net=NET, method_params={"keep": 3, "prune_at": 1})
    with pytest.raises(NasforgeError, match="drnas rewarm .* needs keep > 0, got rewarm=2 keep=0"):
        DifferentiableSearch(digits, "drnas", net=NET, method_params={"rewarm": 2})


def test_drnas_progressive_pruning_keeps_the_strongest_operations(digits, tmp_path):
    settings = {**FAST, "epochs": 4}
    run = DifferentiableSearch(digits, "drnas", net=NET, seed=5, method_params={"keep": 2}, **settings)
    run.run(until_epoch=2)
    assert bool(run.method.mask.all()) and not run.method.pruned  # prunes when epoch 3 (= 0.5 x 4 + 1) starts
    before = run.method.probs()
    res = run.run()
    mask = run.method.mask.numpy()
    assert (mask.sum(axis=1) == 2).all()
    for e in range(mask.shape[0]):  # the two strongest by the Dirichlet mean at the pruning
        assert set(np.flatnonzero(mask[e])) == set(np.argsort(-before[e], kind="stable")[:2])
    assert np.allclose(res.probs[~mask], 0.0) and np.allclose(res.probs.sum(axis=1), 1.0)
    assert all(mask[e, k] for e, k in enumerate(res.indices))
    # the pruning survives a checkpoint: resuming after it gives the uninterrupted trajectory
    part = DifferentiableSearch(digits, "drnas", net=NET, seed=5, method_params={"keep": 2},
                                checkpoint=tmp_path / "d.ckpt", **settings)
    part.run(until_epoch=3)
    again = DifferentiableSearch(digits, "drnas", net=NET, seed=5, method_params={"keep": 2},
                                 checkpoint=tmp_path / "d.ckpt", **settings)
    assert again.method.pruned and torch.equal(again.method.mask, part.method.mask)
    again.run()
    assert np.array_equal(again.method.probs(), run.method.probs())
    # rewarm: the epoch after the pruning trains the weights only, then α moves again
    re = DifferentiableSearch(digits, "drnas", net=NET, seed=5, method_params={"keep": 2, "rewarm": 1}, **settings)
    re.run(until_epoch=2)
    a2 = _alpha(re)
    re.run(until_epoch=3)
    assert torch.equal(a2, _alpha(re)) and re.method.pruned
    res = re.run()
    assert [h["warmup"] for h in res.history] == [False, False, True, False] and not torch.equal(a2, _alpha(re))


def test_drnas_on_a_partial_channel_supernet_searches_and_resumes(digits, tmp_path):
    net = {"C": 4, "N": 1, "partial": 2}
    settings = {**FAST, "epochs": 3}
    full = DifferentiableSearch(digits, "drnas", net=net, seed=6, **settings)
    init = _alpha(full)
    res = full.run()
    assert full.model.partial == 2 and not torch.equal(init, _alpha(full))
    part = DifferentiableSearch(digits, "drnas", net=net, seed=6, checkpoint=tmp_path / "p.ckpt", **settings)
    part.run(until_epoch=1)
    again = DifferentiableSearch(digits, "drnas", net=net, seed=6, checkpoint=tmp_path / "p.ckpt", **settings)
    assert again.run().genotype == res.genotype and torch.equal(_alpha(again), _alpha(full))
    with pytest.raises(NasforgeError, match="checkpoint .* belongs to another search"):
        DifferentiableSearch(digits, "drnas", net={"C": 4, "N": 1}, seed=6, checkpoint=tmp_path / "p.ckpt", **settings)


@pytest.mark.parametrize("method", ["darts", "drnas"])
def test_warmup_trains_weights_only_then_searches(digits, method):
    run = DifferentiableSearch(digits, method, net=NET, seed=2, **{**FAST, "epochs": 3}, warmup_epochs=2)
    init = _alpha(run)
    w0 = [p.detach().clone() for p in run.model.parameters()]
    res = run.run(until_epoch=2)
    assert torch.equal(init, _alpha(run)), "α moved during the warm-up"
    assert any(not torch.equal(a, b) for a, b in zip(w0, run.model.parameters())), "weights did not train"
    assert [h["warmup"] for h in res.history] == [True, True] and res.history[0]["val_loss"] is None
    res = run.run()
    assert not torch.equal(init, _alpha(run)) and res.history[-1]["warmup"] is False
    # the warm-up changes the trajectory: the same seed without it ends elsewhere
    plain = DifferentiableSearch(digits, method, net=NET, seed=2, **{**FAST, "epochs": 3})
    plain.run()
    assert not torch.equal(_alpha(plain), _alpha(run))


def test_darts2_finite_difference_matches_the_exact_unrolled_gradient(digits):
    # float64 and a small finite-difference radius: the formula (virtual step with momentum and weight
    # decay, sign and scale of the Hessian-vector term) must then give the exact unrolled gradient
    run = DifferentiableSearch(digits, "darts2", net=NET, seed=0, method_params={"r": 1e-6}, **FAST)
    m, model = run.method, run.model.double()
    with torch.no_grad():
        m.alpha.data = m.alpha.data.double().normal_(0, 0.5)
    x, y = run.xt[:16].double(), run.yt[:16]
    xv, yv = run.xv[:16].double(), run.yv[:16]
    lr, wd, mom = 0.05, 3e-4, 0.9
    w = list(model.parameters())
    for p in w:  # a momentum buffer, as after some weight steps
        run.w_opt.state[p]["momentum_buffer"] = 0.01 * torch.randn_like(p)
    ctx = StepContext(lr=lr, momentum=mom, weight_decay=wd, optimizer=run.w_opt, epoch=0, epochs=1)
    m.arch_backward(x, y, xv, yv, ctx)
    fd = m.alpha.grad.clone()
    names = [n for n, _ in model.named_parameters()]
    loss_t = F.cross_entropy(model(x, weights=m.mixture()), y)
    g = torch.autograd.grad(loss_t, w, create_graph=True, allow_unused=True)
    new = {n: p - lr * ((torch.zeros_like(p) if gi is None else gi) + wd * p + mom * run.w_opt.state[p]["momentum_buffer"])
           for n, p, gi in zip(names, w, g)}
    out = torch.func.functional_call(model, new, (xv,), {"weights": m.mixture()})
    exact = torch.autograd.grad(F.cross_entropy(out, yv), m.alpha)[0]
    first = torch.autograd.grad(F.cross_entropy(model(xv, weights=m.mixture()), yv), m.alpha)[0]
    assert not torch.allclose(exact, first, rtol=1e-3)  # the second-order term matters
    assert torch.allclose(fd, exact, rtol=1e-4, atol=1e-6 * float(exact.abs().max()))


def test_gdas_runs_exactly_one_operation_per_edge(digits):
    run = DifferentiableSearch(digits, "gdas", net=NET, seed=0, **FAST)
    m, model, lay = run.method, run.model, run.model.layout
    calls: dict[tuple[int, int], int] = {}
    hooks = []
    for e in range(lay.n_edges):
        for k in range(len(lay.ops[e])):
            for mod in model.candidate_modules(e, k):
                def count(mod, _inp, key=(e, k)):
                    if "forward" not in mod.__dict__:  # not replaced by OnePath's zeros: it computes
                        calls[key] = calls.get(key, 0) + 1
                hooks.append(mod.register_forward_pre_hook(count))
    x, y = run.xt[:8], run.yt[:8]
    torch.manual_seed(0)
    try:
        m.loss(x, y)  # the first call measures the operations' output shapes once
        for _ in range(12):
            calls.clear()
            loss, logits = m.loss(x, y)
            path = m.last_path
            expect = {(e, k): model.n_cells for e, k in enumerate(path) if lay.ops[e][k] != "none"}
            assert calls == expect
            # the forward is the path's, and the loss reaches α only through the sampled operations
            assert torch.allclose(logits, model(x, arch=path), atol=1e-5)
            grad = torch.autograd.grad(loss, m.alpha)[0]
            # α gets a gradient exactly when the sampled cell connects its input to its output
            from nasforge.spaces.nb201 import EDGES

            reach = {0}
            for e, (src, dst) in enumerate(EDGES):
                if src in reach and lay.ops[e][path[e]] != "none":
                    reach.add(dst)
            assert bool(grad.abs().sum() > 0) == (3 in reach)
    finally:
        for h in hooks:
            h.remove()
    # τ anneals linearly from 10 to 0.1
    m.begin_epoch(0, 5)
    assert m.tau == pytest.approx(10.0)
    m.begin_epoch(4, 5)
    assert m.tau == pytest.approx(0.1)
    # outside the context every operation computes again
    assert all("forward" not in mod.__dict__ for e in range(lay.n_edges) for k in range(len(lay.ops[e]))
               for mod in model.candidate_modules(e, k))


def test_drnas_dirichlet_draws_and_regulariser(digits):
    run = DifferentiableSearch(digits, "drnas", net=NET, seed=0, **FAST)
    m = run.method
    a, b = m.mixture(), m.mixture()
    assert torch.allclose(a.sum(-1), torch.ones(a.shape[0])) and (a >= 0).all()
    assert not torch.equal(a, b)
    (a[:, 3].sum()).backward()  # pathwise gradient reaches α
    assert m.alpha.grad.abs().sum() > 0
    with torch.no_grad():
        m.alpha.zero_()
    assert m.regulariser().item() == pytest.approx(0.0, abs=1e-6)  # β = 1: the anchor itself
    with torch.no_grad():
        m.alpha[0, 2] = 3.0
    assert m.regulariser().item() > 0
    p = m.probs()
    assert p[0, 2] == pytest.approx(4.0 / 8.0) and np.allclose(p.sum(1), 1)


def _alignment_reference(m, model, x, y):
    """Loss and mean pairwise cosine of the per-cell α gradients, kept differentiable (the
    Λ-DARTS alignment term computed directly, as the reference for the method's gradient)."""
    copies = m.mixture().detach().unsqueeze(0).repeat(model.n_cells, 1, 1).requires_grad_(True)
    loss = F.cross_entropy(model(x, weights=copies), y)
    gc = torch.autograd.grad(loss, copies, create_graph=True)[0].reshape(model.n_cells, -1)
    pairs = [(i, j) for i in range(model.n_cells) for j in range(i + 1, model.n_cells)]
    return loss, sum(F.cosine_similarity(gc[i], gc[j], dim=0) for i, j in pairs) / len(pairs)


def test_lambda_darts_finite_difference_matches_the_exact_alignment_gradient(digits):
    # float64 and a small ε: the central difference must then be the exact weight gradient of the
    # alignment term (mean pairwise cosine of the per-cell gradients), with the sign that raises it
    run = DifferentiableSearch(digits, "lambda-darts", net=NET, seed=0,
                               method_params={"lam": 1.0, "ramp": 0.0, "eps0": 1e-6}, **FAST)
    m, model = run.method, run.model.double()
    with torch.no_grad():
        m.alpha.data = m.alpha.data.double().normal_(0, 0.5)
    x, y = run.xt[:16].double(), run.yt[:16]
    ctx = StepContext(lr=0.025, momentum=0.9, weight_decay=0.0, optimizer=run.w_opt, epoch=0, epochs=1)
    w = [p for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    m.weight_backward(x, y, ctx)
    with_reg = [p.grad.clone() for p in w]
    assert np.isfinite(m.stats["layer_corr"][0])
    # plain gradient and the exact gradient of the mean pairwise cosine of the per-cell gradients
    loss, corr = _alignment_reference(m, model, x, y)
    plain = torch.autograd.grad(loss, w, retain_graph=True, allow_unused=True)
    exact = torch.autograd.grad(corr, w, allow_unused=True)
    reg = torch.cat([(wr - (torch.zeros_like(wr) if pl is None else pl)).flatten() for wr, pl in zip(with_reg, plain)])
    ex = torch.cat([(torch.zeros_like(p) if e is None else -e).flatten() for p, e in zip(w, exact)])
    assert float(F.cosine_similarity(reg, ex, dim=0)) > 0.9999
    assert float(reg.norm() / ex.norm()) == pytest.approx(1.0, rel=1e-3)
    # by default (the authors' code) λ ramps linearly over the whole run: 0.125 * epoch / (epochs - 1)
    m2 = DifferentiableSearch(digits, "lambda-darts", net=NET, **FAST).method
    assert m2.params["eps0"] == 1e-4 and m2.params["lam"] == 0.125
    m2.begin_epoch(0, 10)
    assert m2.lam() == 0.0
    m2.begin_epoch(2, 10)
    assert m2.lam() == pytest.approx(0.125 * 2 / 9)
    m2.begin_epoch(9, 10)
    assert m2.lam() == pytest.approx(0.125)
    # ramp=0.5: full λ from epoch 0.5 * (epochs - 1) on; one epoch: full λ at once
    m3 = DifferentiableSearch(digits, "lambda-darts", net=NET, method_params={"ramp": 0.5}, **FAST).method
    m3.begin_epoch(2, 11)
    assert m3.lam() == pytest.approx(0.125 * 2 / 5)
    m3.begin_epoch(7, 11)
    assert m3.lam() == pytest.approx(0.125)
    m3.begin_epoch(0, 1)
    assert m3.lam() == pytest.approx(0.125)


def test_lambda_darts_exact_option_is_the_double_backward_gradient(digits):
    # exact=True: the weight gradient is that of loss - λ * (mean pairwise cosine of the per-cell
    # gradients), computed by double back-propagation, equal to the reference computed here
    run = DifferentiableSearch(digits, "lambda-darts", net=NET, seed=0,
                               method_params={"lam": 0.5, "ramp": 0.0, "exact": True}, **FAST)
    m, model = run.method, run.model.double()
    with torch.no_grad():
        m.alpha.data = m.alpha.data.double().normal_(0, 0.5)
    x, y = run.xt[:16].double(), run.yt[:16]
    ctx = StepContext(lr=0.025, momentum=0.9, weight_decay=0.0, optimizer=run.w_opt, epoch=0, epochs=1)
    w = list(model.parameters())
    model.zero_grad(set_to_none=True)
    m.weight_backward(x, y, ctx)
    got = torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in w])
    assert np.isfinite(m.stats["layer_corr"][0])
    loss, corr = _alignment_reference(m, model, x, y)
    ref = torch.autograd.grad(loss - 0.5 * corr, w, allow_unused=True, retain_graph=True)
    want = torch.cat([(torch.zeros_like(p) if r is None else r).flatten() for p, r in zip(w, ref)])
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-9)
    plain = torch.cat([(torch.zeros_like(p) if r is None else r).flatten()
                       for p, r in zip(w, torch.autograd.grad(loss, w, allow_unused=True))])
    assert float((got - plain).norm()) > 1e-6  # the alignment term is there
    with pytest.raises(NasforgeError, match="exact must be true or false"):
        DifferentiableSearch(digits, "lambda-darts", net=NET, method_params={"exact": "yes"}, **FAST)


def test_idarts_hypergradient(digits):
    run = DifferentiableSearch(digits, "idarts", net=NET, seed=0, method_params={"K": 2}, **FAST)
    m = run.method
    run.model.double()
    with torch.no_grad():
        m.alpha.data = m.alpha.data.double().normal_(0, 0.5)
    x, y, xv, yv = run.xt[:16].double(), run.yt[:16], run.xv[:16].double(), run.yv[:16]

    def grad(lr: float, K: int) -> torch.Tensor:
        m.params["K"] = K
        ctx = StepContext(lr=lr, momentum=0.9, weight_decay=0.0, optimizer=run.w_opt, epoch=0, epochs=1)
        m.arch_backward(x, y, xv, yv, ctx)
        return m.alpha.grad.clone()

    first = torch.autograd.grad(F.cross_entropy(run.model(xv, weights=m.mixture()), yv), m.alpha)[0]
    assert torch.allclose(grad(0.0, 2), first, atol=1e-12)  # γ = 0: the first-order gradient
    g0, g2 = grad(0.05, 0), grad(0.05, 2)
    assert not torch.allclose(g0, first) and not torch.allclose(g0, g2)
    # K = 0: ∇_α L_val - γ ∇²_{α,w} L_train ∇_w L_val, checked against a directional derivative
    w = list(run.model.parameters())
    v = torch.autograd.grad(F.cross_entropy(run.model(xv, weights=m.mixture()), yv), w, allow_unused=True)
    v = [torch.zeros_like(p) if t is None else t for p, t in zip(w, v)]
    h = 1e-6
    outs = []
    for s in (1, -1):
        with torch.no_grad():
            for p, t in zip(w, v):
                p.add_(s * h * t)
        outs.append(torch.autograd.grad(F.cross_entropy(run.model(x, weights=m.mixture()), y), m.alpha)[0])
        with torch.no_grad():
            for p, t in zip(w, v):
                p.sub_(s * h * t)
    mixed = (outs[0] - outs[1]) / (2 * h)
    assert torch.allclose(g0, first - 0.05 * mixed, rtol=1e-4, atol=1e-6 * float(first.abs().max()))


def test_derive_on_darts_keeps_the_two_strongest_inputs_per_node():
    from nasforge.spaces.darts import CELL_EDGES

    lay = get_space("darts").supernet_layout()
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(lay.n_ops), size=lay.n_edges)
    idx = derive(lay, w)
    assert lay.valid(idx)
    ncell = len(CELL_EDGES)
    for c in range(2):
        for node in sorted({i for _, i in CELL_EDGES}):
            edges = [c * ncell + k for k, (_, i) in enumerate(CELL_EDGES) if i == node]
            strength = {e: w[e, 1:].max() for e in edges}
            top = sorted(edges, key=lambda e: -strength[e])[:2]
            assert sorted(e for e in edges if idx[e] != 0) == sorted(top)
            for e in top:
                assert idx[e] == 1 + int(w[e, 1:].argmax())
    nb = get_space("nb201").supernet_layout()
    w2 = rng.random((nb.n_edges, nb.n_ops))
    assert derive(nb, w2) == tuple(int(k) for k in w2.argmax(1))


def test_darts_space_runs(digits):
    res = search(digits, "gdas", "darts", net={"C": 2, "layers": 3}, epochs=1, steps_per_epoch=1, batch_size=8)
    assert res.arch is not None and "normal" in res.genotype


def test_cli_search_and_resume(tmp_path, capsys):
    from nasforge.cli.main import main

    args = ["oneshot", "search", "--method", "darts", "--space", "nb201", "--dataset", "digits", "--run",
            str(tmp_path / "r"), "--C", "4", "--N", "1", "--epochs", "2", "--steps-per-epoch", "2",
            "--batch-size", "16", "--quiet"]
    assert main(args) == 0
    out = json.loads((tmp_path / "r" / "result.json").read_text())
    assert len(out["history"]) == 2 and out["genotype"].startswith("|")
    assert main(args) == 0
    assert "genotype:" in capsys.readouterr().out
    assert main([*args[:-1], "--param", "K=3"]) == 2
    assert main(["oneshot", "search", "--method", "lambda-darts", "--space", "macro", "--run",
                 str(tmp_path / "m"), "--quiet"]) == 2
    darts = ["oneshot", "search", "--method", "darts", "--space", "darts", "--run", str(tmp_path / "d"), "--C", "2",
             "--layers", "3", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8", "--quiet"]
    assert main([*darts, "--lookup"]) == 2  # the DARTS space has no table to look the cell up in


def test_one_path_on_the_darts_supernet_computes_the_path():
    from nasforge.oneshot.train import build_supernet

    ds = load_dataset("digits", seed=0)
    model = build_supernet(ds, "darts", seed=0, C=2, layers=3)
    model.eval()
    lay = model.layout
    rng = np.random.default_rng(1)
    idx = lay.draw(lay.uniform(model.allowed), rng)
    onehot = torch.zeros(lay.n_edges, lay.n_ops)
    onehot[torch.arange(lay.n_edges), torch.as_tensor(idx)] = 1.0
    x = torch.as_tensor(ds.x_val[:4])
    with torch.no_grad():
        full = model(x, weights=onehot)
        with OnePath(model, idx):
            one = model(x, weights=onehot)
        path = model(x, arch=idx)
    assert torch.allclose(one, full, atol=1e-5) and torch.allclose(one, path, atol=1e-5)
    assert all("forward" not in m.__dict__ for e in range(lay.n_edges) for k in range(len(lay.ops[e]))
               for m in model.candidate_modules(e, k))


def test_transfer_darts_qrs_and_the_three_level_gradient(digits):
    from nasforge.oneshot.differentiable import qrs_loss

    torch.manual_seed(0)
    f = torch.randn(8, 5)
    quads = torch.randint(8, (64, 4))
    assert float(qrs_loss(f, 3.0 * f, quads)) == pytest.approx(0.0, abs=1e-10)  # scale-free, same similarities
    assert float(qrs_loss(f, torch.randn(8, 5), quads)) > 0.01
    # λ = 0: the α gradient is the one-step unrolled main validation loss (no auxiliary term)
    grads = {}
    for lam in (0.0, 1.0):
        run = DifferentiableSearch(digits, "transfer-darts", net=NET, seed=0, method_params={"lam": lam}, **FAST)
        m = run.method
        ctx = StepContext(lr=0.05, momentum=0.9, weight_decay=3e-4, optimizer=run.w_opt, epoch=0, epochs=1)
        torch.manual_seed(1)
        m.arch_backward(run.xt[:16], run.yt[:16], run.xv[:16], run.yv[:16], ctx)
        grads[lam] = m.alpha.grad.clone()
    model = run.model
    names = [n for n, _ in model.named_parameters()]
    w = list(model.parameters())
    g = torch.autograd.grad(F.cross_entropy(model(run.xt[:16], weights=m.mixture()), run.yt[:16]), w,
                            create_graph=True, allow_unused=True)
    new = {n: p - 0.05 * ((torch.zeros_like(p) if gi is None else gi) + 3e-4 * p) for n, p, gi in zip(names, w, g)}
    out = torch.func.functional_call(model, new, (run.xv[:16],), {"weights": m.mixture()})
    exact = torch.autograd.grad(F.cross_entropy(out, run.yv[:16]), m.alpha)[0]
    assert torch.allclose(grads[0.0], exact, rtol=1e-4, atol=1e-7)
    assert not torch.allclose(grads[1.0], grads[0.0], rtol=1e-3)  # the auxiliary model's loss reaches α
