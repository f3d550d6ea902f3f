"""Energy-aware joint search: the energy meter, the joint space, training with energy, the
Bézier learning-curve surrogate and the energy-aware score."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nasforge.errors import NasforgeError
from nasforge.estimation.bezier import (BezierCurveSurrogate, SurrogateBenchmark, bernstein, bezier_curve,
                                        fit_bezier)
from nasforge.estimation.energy import EnergyAwareScore, EnergyMeter, JointTrainingEstimator, search_energy
from nasforge.spaces.joint import JointConfig, JointSpace
from nasforge.spaces.nb201 import NB201Space
from nasforge.strategies import get_strategy
from nasforge.study import create_study

HP = {"optimizer": ["sgd", "adamw"], "lr_scale": [0.5, 1.0], "epochs": [1, 2]}


# --- the energy meter ------------------------------------------------------------------------
def _fake_rapl(tmp_path, value: int, wrap: int = 10_000_000):
    d = tmp_path / "intel-rapl:0"
    d.mkdir(exist_ok=True)
    (d / "energy_uj").write_text(f"{value}\n")
    (d / "max_energy_range_uj").write_text(f"{wrap}\n")
    sub = tmp_path / "intel-rapl:0:0"  # a sub-domain (core): counted inside the package, never added
    sub.mkdir(exist_ok=True)
    (sub / "energy_uj").write_text("5\n")
    return d / "energy_uj"


def test_rapl_meter_reads_package_counters_and_their_wrap(tmp_path):
    counter = _fake_rapl(tmp_path, 1_000)
    meter = EnergyMeter("auto", rapl_root=tmp_path)
    assert meter.method == "rapl" and "RAPL" in meter.describe()
    tok = meter.start()
    counter.write_text(f"{1_000 + 3_000_000}\n")
    assert meter.stop(tok).joules == pytest.approx(3.0)
    counter.write_text("9_000_000".replace("_", ""))
    tok = meter.start()
    counter.write_text("500000")  # wrapped at 10 J
    assert meter.stop(tok).joules == pytest.approx((500_000 + 10_000_000 - 9_000_000) / 1e6)


def test_cpu_time_meter_is_declared_power_times_cpu_seconds(tmp_path):
    meter = EnergyMeter("auto", watts_per_core=20.0, rapl_root=tmp_path / "none")
    assert meter.method == "cpu_time" and "20 W" in meter.describe()
    tok = meter.start()
    x = 0.0
    for i in range(200_000):
        x += math.sqrt(i)
    r = meter.stop(tok)
    assert r.cpu_seconds > 0 and r.joules == pytest.approx(20.0 * r.cpu_seconds)
    with pytest.raises(NasforgeError, match="RAPL"):
        EnergyMeter("rapl", rapl_root=tmp_path / "none")
    with pytest.raises(NasforgeError, match="allowed: auto, rapl, cpu_time"):
        EnergyMeter("watts")


# --- the joint space -------------------------------------------------------------------------
def test_joint_space_sample_mutate_parse_encode():
    space = JointSpace(NB201Space(), HP)
    assert len(space) == 15625 * 8
    rng = np.random.default_rng(0)
    moved_arch = moved_hp = 0
    for _ in range(200):
        cfg = space.sample(rng)
        assert isinstance(cfg, JointConfig) and space.parse(space.format(cfg)) == cfg
        new = space.mutate(cfg, rng)
        assert new != cfg
        if new.arch != cfg.arch:
            assert new.hp == cfg.hp
            moved_arch += 1
        else:
            assert sum(a != b for a, b in zip(new.hp, cfg.hp)) == 1
            moved_hp += 1
    # 6 cell edges against 3 hyperparameters: the cell moves about twice as often
    assert 100 < moved_arch < 165 and moved_hp > 35
    cfg = space.sample(np.random.default_rng(1))
    nb = space.neighbors(cfg)
    assert len(nb) == len(NB201Space().neighbors(cfg.arch)) + 3 and cfg not in nb
    assert space.encode(cfg).shape == (NB201Space().encode(cfg.arch).shape[0] + 6,)
    adj, labels = space.graph(cfg)
    assert adj.shape == (len(labels), len(labels)) and labels[-2] == "epochs=" + str(cfg.hp[2]) and labels[-1] == "output"
    assert space.hyperparameters(cfg)["optimizer"] in ("sgd", "adamw")
    with pytest.raises(NasforgeError, match="expected '<architecture> @"):
        space.parse("optimizer=sgd")
    with pytest.raises(NasforgeError, match="not allowed"):
        space.parse(space.format(cfg).replace("epochs=", "epochs=7").replace("epochs=71", "epochs=7")
                    .replace("epochs=72", "epochs=7"))


# --- training with energy --------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    from nasforge.data import from_arrays

    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = (rng.normal(size=(60, 1, 8, 8)) * 0.3 + y[:, None, None, None]).astype(np.float32)
    data = from_arrays(x, y, name="tiny", seed=0)
    space = JointSpace(NB201Space(), HP)
    return space, data


def test_joint_training_records_curves_and_energy_and_continues(tiny):
    space, data = tiny
    est = JointTrainingEstimator(space, data, net={"C": 4, "N": 1}, power="cpu_time", watts_per_core=10.0)
    assert est.fidelities == (1.0, 2.0)
    cell = NB201Space().parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")
    cfg = space.coerce((cell, ("sgd", 1.0, 2)))
    low = est.estimate(cfg, 1)
    assert low.metrics["epochs"] == 1 and low.cost == low.metrics["energy_j"] > 0
    full = est.estimate(cfg)
    assert full.info["valid_curve"][0] == low.metrics["valid_acc"] and len(full.info["valid_curve"]) == 2
    assert full.metrics["train_energy_j"] == pytest.approx(sum(full.info["epoch_energy_j"]))
    assert full.metrics["train_energy_j"] == pytest.approx(low.cost + full.cost)
    assert full.info["energy_method"] == "cpu_time"
    # the same network as training 2 epochs in one go
    fresh = JointTrainingEstimator(space, data, net={"C": 4, "N": 1}, power="cpu_time")
    assert fresh.estimate(cfg).metrics["valid_acc"] == full.metrics["valid_acc"]
    # a one-epoch configuration asked for 2 epochs is trained to its own 1
    one = est.estimate(space.coerce((cell, ("adamw", 0.5, 1))), 2)
    assert one.metrics["epochs"] == 1 and one.metrics["config_epochs"] == 1
    assert est.records()[0]["config"] == space.format(cfg)
    with pytest.raises(NasforgeError, match="fidelity 3"):
        est.estimate(cfg, 3)


def test_joint_training_refuses_unknown_hyperparameters(tiny):
    space, data = tiny
    with pytest.raises(NasforgeError, match="'dropout' has no meaning"):
        JointTrainingEstimator(JointSpace(NB201Space(), {"dropout": [0.1]}), data)
    with pytest.raises(NasforgeError, match="either lr or lr_scale"):
        JointTrainingEstimator(JointSpace(NB201Space(), {"lr": [0.1], "lr_scale": [1.0]}), data)
    with pytest.raises(NasforgeError, match="needs a JointSpace"):
        JointTrainingEstimator(NB201Space(), data)


# --- the Bézier surrogate --------------------------------------------------------------------
def test_bezier_fit_recovers_a_bezier_curve():
    control = np.array([0.1, 0.5, 0.8, 0.85, 0.9, 0.92])
    curve = bezier_curve(control, 12)
    assert curve[0] == pytest.approx(0.1) and curve[-1] == pytest.approx(0.92)
    assert np.allclose(bernstein(5, np.linspace(0, 1, 7)).sum(1), 1.0)
    assert np.allclose(fit_bezier(curve, 5, smooth=0.0), control, atol=1e-6)
    # a curve shorter than the degree is still determined, and fitted exactly
    short = [0.2, 0.5, 0.6]
    assert np.allclose(bezier_curve(fit_bezier(short, 5), 3), short, atol=2e-3)
    with pytest.raises(NasforgeError, match="learning curve"):
        fit_bezier([])


def _synthetic(space, n, rng):
    """Curves that rise to a plateau set by the optimiser and the lr, of the configuration's
    length; energy per epoch set by the first cell edge."""
    cfgs = [space.sample(rng) for _ in range(n)]
    valid, test, energy = [], [], []
    for c in cfgs:
        hp = space.hyperparameters(c)
        top = 90.0 if hp["optimizer"] == "adamw" else 60.0
        top -= 20.0 * (hp["lr_scale"] == 0.5)
        e = np.arange(1, hp["epochs"] + 1)
        curve = top * (1 - np.exp(-e / 3.0))
        valid.append(list(curve))
        test.append(list(curve - 1.0))
        energy.append(5.0 if c.arch[0] == "nor_conv_3x3" else 1.0)
    return cfgs, valid, test, energy


def test_surrogate_learns_curves_of_any_length_and_energy():
    space = JointSpace(NB201Space(), {"optimizer": ["sgd", "adamw"], "lr_scale": [0.5, 1.0], "epochs": [4, 8, 12]})
    rng = np.random.default_rng(0)
    cfgs, valid, test, energy = _synthetic(space, 80, rng)
    x = np.array([space.encode(c) for c in cfgs])
    sur = BezierCurveSurrogate(steps=600, ensemble=2, seed=0).fit(x, valid, test, energy)
    cfgs2, valid2, _, energy2 = _synthetic(space, 30, np.random.default_rng(1))
    x2 = np.array([space.encode(c) for c in cfgs2])
    pred = sur.predict_curves(x2, [len(v) for v in valid2])
    err = np.concatenate([p[0] - np.asarray(v) for p, v in zip(pred, valid2)])
    spread = np.concatenate([np.asarray(v) for v in valid2]).std()
    assert np.sqrt(np.mean(err ** 2)) < 0.25 * spread
    assert [len(p[0]) for p in pred] == [len(v) for v in valid2]
    e_pred = sur.predict_epoch_energy(x2)
    assert np.corrcoef(e_pred, energy2)[0, 1] > 0.9
    # the same seed fits the same surrogate
    again = BezierCurveSurrogate(steps=600, ensemble=2, seed=0).fit(x, valid, test, energy)
    assert np.array_equal(again.control_points(x2), sur.control_points(x2))

    bench = SurrogateBenchmark(space, sur)
    assert bench.fidelities[-1] == 12.0
    cfg = next(c for c in cfgs2 if space.hyperparameters(c)["epochs"] == 12)
    low, full = bench.estimate(cfg, 4), bench.estimate(cfg)
    assert low.cost + full.cost == pytest.approx(full.metrics["full_train_energy_j"])
    assert full.metrics["valid_acc"] == pytest.approx(bench.predict(cfg)[0][-1])
    short = next(c for c in cfgs2 if space.hyperparameters(c)["epochs"] == 4)
    assert bench.estimate(short, 12).metrics["epochs"] == 4


def test_energy_aware_score_and_an_energy_budgeted_search():
    space = JointSpace(NB201Space(), {"optimizer": ["sgd", "adamw"], "lr_scale": [0.5, 1.0], "epochs": [4, 8, 12]})
    cfgs, valid, test, energy = _synthetic(space, 60, np.random.default_rng(0))
    sur = BezierCurveSurrogate(steps=300, ensemble=1).fit(np.array([space.encode(c) for c in cfgs]), valid, test,
                                                          energy)
    bench = SurrogateBenchmark(space, sur)
    ea = EnergyAwareScore(bench, target=10.0, weight=-0.5)
    assert ea.score(80.0, 40.0) == pytest.approx(40.0) and ea.higher_is_better("ea_score")
    m = ea.estimate(cfgs[0])
    assert m.metrics["ea_score"] == pytest.approx(m.metrics["valid_acc"]
                                                  * (m.metrics["full_train_energy_j"] / 10.0) ** -0.5)
    chosen = {}
    for metric in ("valid_acc", "ea_score"):
        bench.reset()
        st = create_study(f"s-{metric}", space, metric)
        st.optimize(get_strategy("re", space, seed=0, metric=metric, population_size=8, sample_size=3), ea,
                    max_cost=400.0)
        spent = search_energy(st)
        assert 400.0 <= spent < 400.0 + 70.0  # the budget is energy: stops after the trial that crosses it
        chosen[metric] = st.best_trial.metrics["full_train_energy_j"]
    assert chosen["ea_score"] < chosen["valid_acc"]  # the energy-aware search picks a cheaper network
    with pytest.raises(NasforgeError, match="needs metric 'power'"):
        EnergyAwareScore(bench, target=1.0, energy="power").estimate(cfgs[0])
