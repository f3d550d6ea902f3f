"""HardCoRe-NAS and the soft latency penalty (nasforge.oneshot.differentiable.hardcore), the additive
latency model of a space, and the mbv3 supernet; tiny networks, synthetic latency tables."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

from nasforge.data import load_dataset
from nasforge.errors import NasforgeError
from nasforge.oneshot.differentiable import DifferentiableSearch, min_latency, project, resolve_latency
from nasforge.spaces.macro import MBV3Space
from nasforge.spaces.mbv3_supernet import DEPTH_OPS
from nasforge.spaces.mbv3_supernet import LAYOUT as MBV3
from nasforge.spaces.nb201_supernet import LAYOUT as NB201

torch.set_num_threads(1)
NET = {"C": 4, "N": 1}
FAST = {"epochs": 2, "steps_per_epoch": 3, "batch_size": 16}


def nb201_table(n: int = 300, seed: int = 0) -> dict[str, float]:
    """Latencies of ``n`` random NB201 cells that add up exactly per (edge, operation)."""
    rng = np.random.default_rng(seed)
    cost = rng.uniform(0.0, 1.0, size=(6, 5))
    cost[:, 3] += 1.0  # the 3x3 convolution is the slow one
    out = {}
    for _ in range(n):
        idx = tuple(int(k) for k in rng.integers(5, size=6))
        out[NB201.space.format(NB201.arch(idx))] = float(0.5 + cost[np.arange(6), idx].sum())
    return out


def mbv3_table(size: int = 32, classes: int = 10) -> dict[str, float]:
    """A lookup table for every piece of the mbv3 space (ms grows with the MACs of the piece)."""
    sp = MBV3Space(input_size=size, num_classes=classes)
    rng = np.random.default_rng(1)
    out = {}
    for e in sp.latency_entries():
        base = 0.2 if e["part"] != "block" else 0.05 * e["kernel"] * e["expansion"] / (1 + e["stage"]) + 0.1 * e["se"]
        out[e["key"]] = float(base * rng.uniform(0.9, 1.1))
    return out


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


# --- the latency models ------------------------------------------------------------------------
def test_nb201_fit_recovers_an_additive_table_and_the_bilinear_forms_agree():
    table = nb201_table()
    model = NB201.latency_model(table)
    assert model.fit["r2"] > 1 - 1e-12 and model.fit["mae_ms"] < 1e-9
    for text, ms in list(table.items())[:20]:
        assert model.of_indices(NB201.coerce_indices(text)) == pytest.approx(ms, abs=1e-9)
    w = np.random.default_rng(0).dirichlet(np.ones(5), size=6)
    a, c = model.alpha_constraint(w)
    assert c + (a * w).sum() == pytest.approx(model.expected(w))


def test_a_table_that_is_not_additive_is_fitted_with_a_warning():
    exact = nb201_table()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an additive table: no warning
        NB201.latency_model(exact)
    rng = np.random.default_rng(2)
    noisy = {k: float(v * rng.uniform(0.2, 3.0)) for k, v in exact.items()}  # per-cell factors: no additive law
    with pytest.warns(UserWarning, match=r"describe it poorly \(R² 0\.\d+"):
        model = NB201.latency_model(noisy)
    assert model.fit["r2"] < 0.95


def test_mbv3_latency_model_is_the_lut_sum_and_bilinear_in_op_and_depth_attentions():
    table = mbv3_table()
    sp = MBV3Space(input_size=32, num_classes=10)
    model = MBV3.latency_model(table)
    rng = np.random.default_rng(0)
    for _ in range(10):
        arch = sp.sample(rng)
        assert model.of_indices(MBV3.indices(arch)) == pytest.approx(sp.latency_ms(arch, table))
    assert len(model.gate_edges) == 5 and len(model.op_edges) == 20
    w = np.zeros((MBV3.n_edges, MBV3.n_ops))
    for e in range(MBV3.n_edges):
        k = len(MBV3.ops[e])
        w[e, :k] = rng.dirichlet(np.ones(k))
    a, c = model.alpha_constraint(w)
    b, c2 = model.beta_constraint(w)
    assert c + (a * w).sum() == pytest.approx(model.expected(w))
    assert c2 + (b * w).sum() == pytest.approx(model.expected(w))
    # the expectation over independent draws, by sampling (exact for one-hot rows, linear in each row)
    draws = [tuple(int(rng.choice(len(MBV3.ops[e]), p=w[e, :len(MBV3.ops[e])])) for e in range(MBV3.n_edges))
             for _ in range(4000)]
    mc = np.mean([model.of_indices(d) for d in draws])
    assert mc == pytest.approx(model.expected(w), rel=0.01)
    with pytest.raises(NasforgeError, match="no entry"):
        MBV3.latency_model({k: v for k, v in table.items() if "stage3" not in k})


def test_mbv3_layout_and_supernet():
    sp = MBV3Space()
    arch = sp.sample(np.random.default_rng(3))
    idx = MBV3.indices(arch)
    assert MBV3.arch(idx) == arch and MBV3.count(MBV3.candidates) == sp.size
    allowed = [list(DEPTH_OPS) if e.endswith("depth") else ["k3e3", "k5e6se"] for e in MBV3.edges]
    m = MBV3.mask(allowed)
    assert MBV3.count(m) == (2 ** 2 + 2 ** 3 + 2 ** 4) ** 5
    small = [list(DEPTH_OPS[:2]) if e.endswith("depth") else ["k3e3"] for e in MBV3.edges]
    assert len(list(MBV3.iter_indices(MBV3.mask(small)))) == MBV3.count(MBV3.mask(small)) == 2 ** 5
    torch.manual_seed(0)
    net = MBV3.build(num_classes=10, input_size=16, width=0.125, allowed=allowed).eval()
    x = torch.randn(2, 3, 16, 16)
    arch = MBV3.arch(tuple(int(np.flatnonzero(m[e])[-1]) for e in range(MBV3.n_edges)))
    onehot = torch.zeros(MBV3.n_edges, MBV3.n_ops)
    onehot[torch.arange(MBV3.n_edges), torch.tensor(MBV3.indices(arch))] = 1.0
    with torch.no_grad():
        assert torch.allclose(net(x, weights=onehot), net(x, arch=arch), atol=1e-5)


# --- HardCoRe-NAS ------------------------------------------------------------------------------
def _hardcore(digits, target, seed=0, method="hardcore", **extra):
    params = {"target": target, "latency": nb201_table(), **extra}
    return DifferentiableSearch(digits, method, net=NET, seed=seed, method_params=params, **FAST)


def _record_steps(run):
    """Wrap the α step so that the expected latency after every step is recorded."""
    seen = []
    step = run.method.arch_step

    def wrapped(opt):
        step(opt)
        seen.append(run.method.lat.expected(run.method.probs()))
    run.method.arch_step = wrapped
    return seen


def test_hardcore_constraint_holds_at_every_step_and_after_projection(digits):
    model = NB201.latency_model(nb201_table())
    low, _ = min_latency(model, NB201.candidates)
    uniform = model.expected(np.full((6, 5), 0.2))
    target = low + 0.3 * (uniform - low)
    run = _hardcore(digits, target)
    start = run.method.probs()
    assert model.expected(start) <= target  # a feasible start although the uniform mixture is not
    seen = _record_steps(run)
    res = run.run()
    assert len(seen) == FAST["epochs"] * FAST["steps_per_epoch"]
    assert max(seen) <= target
    assert not np.allclose(start, run.method.probs())  # α moved
    assert np.allclose(run.method.probs().sum(axis=1), 1.0)
    assert model.of_indices(res.indices) <= target
    h = res.history[-1]
    assert h["latency_max"] <= target and h["arch_latency"] <= target and h["min_latency"] == pytest.approx(low)
    # the same seed gives the same trajectory, another seed another one
    again = _hardcore(digits, target)
    again.run()
    assert np.array_equal(again.method.probs(), run.method.probs())
    other = _hardcore(digits, target, seed=1)
    other.run()
    assert not np.array_equal(other.method.probs(), run.method.probs())


def test_projection_is_the_most_probable_architecture_within_the_target():
    model = NB201.latency_model(nb201_table())
    rng = np.random.default_rng(5)
    w = rng.dirichlet(np.ones(5) * 0.5, size=6)
    allidx = list(itertools.product(range(5), repeat=6))
    lat = np.array([model.of_indices(i) for i in allidx])
    logp = np.array([np.log(w[np.arange(6), i]).sum() for i in allidx])
    for target in np.quantile(lat, [0.01, 0.2, 0.6, 1.0]):
        idx = project(model, NB201.candidates, w, float(target))
        assert model.of_indices(idx) <= target + 1e-12
        best = logp[lat <= target + 1e-12].max()
        assert np.log(w[np.arange(6), idx]).sum() == pytest.approx(best)


def test_hardcore_on_mbv3_holds_the_constraint_with_depth_steps(digits):
    table = mbv3_table(size=8)
    allowed = [list(DEPTH_OPS) if e.endswith("depth") else ["k3e3", "k5e6se"] for e in MBV3.edges]
    model = MBV3.latency_model(table)
    m = MBV3.mask(allowed)
    low, _ = min_latency(model, m)
    target = low + 0.4 * (model.expected(m / m.sum(axis=1, keepdims=True)) - low)
    run = DifferentiableSearch(digits, "hardcore", "mbv3", net={"width": 0.125, "allowed": allowed}, seed=0,
                               method_params={"target": target, "latency": table}, epochs=1, steps_per_epoch=4,
                               batch_size=8)
    beta_rows = run.method.lat.gate_edges
    start = run.method.probs()
    seen = _record_steps(run)
    res = run.run()
    assert max(seen) <= target and model.of_indices(res.indices) <= target
    after = run.method.probs()
    assert not np.allclose(start[beta_rows], after[beta_rows])  # the depth attentions moved too
    assert not np.allclose(np.delete(start, beta_rows, 0), np.delete(after, beta_rows, 0))
    assert res.arch == MBV3.arch(res.indices)


def test_infeasible_target_and_bad_latency_settings_are_refused(digits):
    model = NB201.latency_model(nb201_table())
    low, _ = min_latency(model, NB201.candidates)
    with pytest.raises(NasforgeError, match=rf"latency target {low - 0.1:.6g} ms is infeasible.*takes {low:.6g} ms"):
        _hardcore(digits, low - 0.1)
    with pytest.raises(NasforgeError, match="needs a latency target"):
        DifferentiableSearch(digits, "hardcore", net=NET, method_params={"latency": nb201_table()})
    with pytest.raises(NasforgeError, match="needs latency="):
        DifferentiableSearch(digits, "hardcore", net=NET, method_params={"target": 3.0})
    with pytest.raises(NasforgeError, match="unknown latency 'nodevice'"):
        DifferentiableSearch(digits, "hardcore", net=NET, method_params={"target": 3.0, "latency": "nodevice"})
    with pytest.raises(NasforgeError, match="gamma_max"):
        _hardcore(digits, low + 1, gamma_max=2.0)
    with pytest.raises(NasforgeError, match="no additive latency model"):
        resolve_latency(get_darts_layout(), {"x": 1.0})


def get_darts_layout():
    from nasforge.spaces import get_space

    return get_space("darts").supernet_layout()


def test_latency_penalty_pushes_the_expected_latency_down(digits):
    model = NB201.latency_model(nb201_table())
    low, _ = min_latency(model, NB201.candidates)
    target = low + 0.1
    plain = _hardcore(digits, target, method="latency-penalty", lam=0.0)
    plain.run()
    pushed = _hardcore(digits, target, method="latency-penalty", lam=10.0)
    res = pushed.run()
    assert model.expected(pushed.method.probs()) < model.expected(plain.method.probs())
    assert res.history[-1]["latency"] < plain.history[-1]["latency"]  # the per-epoch log shows it


def test_hardcore_resumes_the_uninterrupted_trajectory(digits, tmp_path):
    model = NB201.latency_model(nb201_table())
    low, _ = min_latency(model, NB201.candidates)
    params = {"target": low + 1.0, "latency": nb201_table()}
    settings = {**FAST, "epochs": 3}
    full = DifferentiableSearch(digits, "hardcore", net=NET, seed=2, method_params=params,
                                checkpoint=tmp_path / "a.ckpt", **settings).run()
    part = DifferentiableSearch(digits, "hardcore", net=NET, seed=2, method_params=params,
                                checkpoint=tmp_path / "b.ckpt", **settings)
    part.run(until_epoch=1)
    resumed = DifferentiableSearch(digits, "hardcore", net=NET, seed=2, method_params=params,
                                   checkpoint=tmp_path / "b.ckpt", **settings).run()
    assert np.array_equal(full.probs, resumed.probs) and full.genotype == resumed.genotype


def test_hardcore_nan_gradient_fails_with_the_reason_and_keeps_the_checkpoint(digits, tmp_path):
    model = NB201.latency_model(nb201_table())
    low, _ = min_latency(model, NB201.candidates)
    ck = tmp_path / "h.ckpt"
    run = DifferentiableSearch(digits, "hardcore", net=NET, seed=0, checkpoint=ck,
                               method_params={"target": low + 1.0, "latency": nb201_table()}, **FAST)
    run.run(until_epoch=1)

    def broken(*args, **kwargs):
        run.method.alpha.grad = torch.full_like(run.method.alpha, float("nan"))
        return 0.0

    run.method.arch_backward = broken
    with pytest.raises(NasforgeError, match="hardcore search failed at epoch 2 step 1: the architecture gradient is NaN"
                                            ".*checkpoint of epoch 1 is kept"):
        run.run()
    assert torch.load(ck, weights_only=False)["epoch"] == 1
