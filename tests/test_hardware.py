import math

import numpy as np
import pytest
import torch
from torch import nn

from nasforge import NasforgeError
from nasforge.estimation.constraints import ConstraintSet, parse_constraint
from nasforge.estimation.hardware import (EnergyMeter, MeasuredLatency, count_flops, count_params, measure_latency,
                                          nb201_flops, search_energy)
from nasforge.estimation.latency_predictors import (AdditiveLatencyModel, LearnedLatencyPredictor,
                                                    TransferLatencyPredictor, evaluate_predictor, op_counts)
from nasforge.spaces import NB201Space
from nasforge.spaces.nb201_net import nb201_param_count
from nasforge.strategies import get_strategy
from nasforge.study import Study

SPACE = NB201Space()
R1 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_1x1~2|"
R2 = "|none~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|none~2|"


# --- FLOPs and parameters -----------------------------------------------------------------------
def test_flop_conventions_on_a_hand_counted_network():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    conv = 9 * 3 * 4 * 64 + 4 * 64  # 8x8 output, with bias
    lin = 4 * 5 + 5
    assert count_flops(net, (3, 8, 8)).total == conv + lin
    pool = 4 * (4 * 4 * 4)  # kernel area x output elements
    assert count_flops(net, (3, 8, 8), "nb201+pool").total == conv + lin + pool
    full = count_flops(net, (3, 8, 8), "full")
    assert full.total == conv + lin + pool + 2 * 256 + 256 + 4 * 16  # BN 2/elt, ReLU 1/elt, global pool input
    assert full.by_type["BatchNorm2d"] == 512 and full.convention == "full"
    assert net.training  # mode restored
    assert count_flops(net, (3, 8, 8), "macs").total == 9 * 3 * 4 * 64 + 4 * 5  # weights only, no biases
    with pytest.raises(NasforgeError, match="unknown FLOP convention 'mac'"):
        count_flops(net, (3, 8, 8), "mac")


@pytest.mark.parametrize("arch,C,N,side,nc", [(R1, 4, 1, 8, 10), (R2, 8, 1, 16, 3),
                                              (("nor_conv_3x3",) * 6, 4, 2, 8, 5), (("none",) * 6, 4, 1, 8, 10)])
def test_closed_form_flops_and_params_equal_the_counted_ones(arch, C, N, side, nc):
    net = SPACE.build(arch, C=C, N=N, num_classes=nc, input_size=side)
    for conv in ("macs", "nb201", "nb201+pool", "full"):
        assert count_flops(net, (3, side, side), conv).total == nb201_flops(arch, C=C, N=N, num_classes=nc,
                                                                            input_size=side, convention=conv)
    assert count_params(net) == nb201_param_count(arch, C=C, N=N, num_classes=nc)


def test_official_nb201_values_c16_n5_cifar10():
    # official counter (conv + linear MACs): the published range 7.78305 .. 220.11969 MFLOPs
    assert nb201_flops(("none",) * 6) == 7_783_050
    assert nb201_flops(("nor_conv_3x3",) * 6) == 220_119_690
    assert nb201_param_count(("none",) * 6) == 73_306 and nb201_param_count(("nor_conv_3x3",) * 6) == 1_531_546
    assert nb201_param_count(R1) == 428_346  # 0.428346 M, as in the issue
    assert nb201_flops(R1) == 58_901_130 and nb201_flops(R2) == 11_715_210
    # charging pooling (kernel area x output) and BN/ReLU/global pooling too
    assert nb201_flops(R1, convention="nb201+pool") == 60_215_946
    assert nb201_flops(R1, convention="full") == 62_501_514 and nb201_flops(R2, convention="full") == 14_885_514


# --- latency ------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_measure_latency_records_its_settings(backend):
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
    net = SPACE.build(R1, C=4, N=1, input_size=8)
    threads = torch.get_num_threads()
    m = measure_latency(net, (3, 8, 8), batch_size=4, backend=backend, threads=1, warmup=1, repeats=3)
    assert m.median_ms > 0 and m.p10_ms <= m.p90_ms and len(m.samples_ms) == 3
    assert (m.batch_size, m.threads, m.repeats, m.backend) == (4, 1, 3, backend)
    assert torch.get_num_threads() == threads
    with pytest.raises(NasforgeError, match="repeats must be an integer >= 1"):
        measure_latency(net, (3, 8, 8), repeats=0)


def test_measured_latency_is_an_estimator():
    est = MeasuredLatency(SPACE, build={"C": 4, "N": 1, "input_size": 8}, warmup=0, repeats=2)
    m = est.estimate(R2)
    assert m.metrics["latency_ms[local-torch]"] > 0 and m.info["input_shape"] == (3, 8, 8)
    assert est.estimate(R2).metrics == m.metrics  # cached


# --- device tables ------------------------------------------------------------------------------
def test_hardware_columns_join_the_accuracy_table(data_dir):
    import pandas as pd

    from nasforge.estimation import load_benchmark

    bench = load_benchmark("nb201:cifar10+hw", data_dir=data_dir)
    raw = pd.read_csv(data_dir / "nb201" / "latency_ms.csv").set_index("arch")
    pi5 = pd.read_csv(data_dir / "nb201" / "pi5_cifar100_latency_energy.csv").set_index("arch")
    m = bench.estimate(R1)
    assert m.metrics["latency_ms[pixel3]"] == pytest.approx(raw.loc[R1, "pixel3"])
    assert m.metrics["energy_mj[pi5_onnx]"] == pytest.approx(pi5.loc[R1, "pi5_onnx_energy_mj"])
    assert m.metrics["params"] == 428_346 and m.metrics["flops"] == 58_901_130
    assert m.metrics["valid_acc"] == bench.query(R1, "valid_acc") and bench.default_metric == "valid_acc"
    assert bench.fidelities == (12.0, 200.0)
    assert load_benchmark("nb201:cifar100+cost", data_dir=data_dir).query(R1, "params") == nb201_param_count(
        R1, num_classes=100)
    with pytest.raises(NasforgeError, match="unknown hardware part 'gpu'"):
        load_benchmark("nb201:cifar10+gpu", data_dir=data_dir)


# --- constraints -----------------------------------------------------------------------------------
def test_parse_constraints():
    c = parse_constraint("latency_ms[pixel3] <= 20")
    assert (c.metric, c.op, c.bound) == ("latency_ms[pixel3]", "<=", 20.0)
    assert parse_constraint("params<0.5e6").bound == 5e5
    assert parse_constraint("flops <= 100M").bound == 1e8
    assert c.holds(20.0) and not c.holds(20.1) and not c.holds(math.nan)
    for bad in ("latency <= ", "params == 3", "<= 3", "params <= 3 ms"):
        with pytest.raises(NasforgeError, match="malformed constraint"):
            parse_constraint(bad)


def test_constraints_without_a_table_use_closed_forms_and_counting():
    cons = ConstraintSet(["params <= 0.2e6", "flops < 40M"]).bind(SPACE)
    assert cons(("none",) * 6) and not cons(("nor_conv_3x3",) * 6)
    assert cons.values(R1) == {"params": 428_346.0, "flops": 58_901_130.0}
    small = ConstraintSet(["params <= 2000"]).bind(SPACE, build={"C": 4, "N": 1, "input_size": 8})
    assert small(("none",) * 6) == (count_params(SPACE.build(("none",) * 6, C=4, N=1, input_size=8)) <= 2000)
    with pytest.raises(NasforgeError, match="unknown metric 'size'"):
        ConstraintSet(["size <= 3"]).bind(SPACE)


def test_constrained_search_never_reports_an_infeasible_best(data_dir):
    from nasforge.estimation import load_benchmark

    bench = load_benchmark("nb201:cifar10+hw", data_dir=data_dir)
    lat = bench.values("latency_ms[pixel3]")
    budget = float(np.percentile(lat, 25))
    cons = ConstraintSet([f"latency_ms[pixel3] <= {budget}"]).bind(bench.space, bench)
    feasible = np.array(cons.feasible_mask(bench.archs))
    valid = bench.values("valid_acc")
    for name in ("random", "re", "ls"):
        study = Study(name, bench.space, "valid_acc", constraints=cons)
        study.optimize(get_strategy(name, bench.space, seed=1), bench, n_trials=60)
        assert all(cons(t.arch) for t in study.trials) and all(t.info["feasible"] for t in study.trials)
        assert study.best_trial.value <= valid[feasible].max()
    # without device columns, an NB201 table takes the latency from the shared device tables
    plain = ConstraintSet([f"latency_ms[pixel3] <= {budget}"]).bind(bench.space, load_benchmark(
        "nb201:cifar10", data_dir=data_dir), data_dir=data_dir)
    assert plain.feasible_mask(bench.archs[:500]) == list(feasible[:500])
    # a strategy that ignores the constraint: infeasible trials are evaluated, marked, never best
    study = Study("unconstrained", bench.space, "valid_acc", constraints=cons)
    rogue = get_strategy("random", bench.space, seed=0, feasible=lambda a: True)
    study.optimize(rogue, bench, n_trials=80)
    flags = [t.info["feasible"] for t in study.trials]
    assert not all(flags) and any(flags)
    best = study.best_trial
    assert best.info["feasible"] and best.metrics["latency_ms[pixel3]"] <= budget
    top_any = max(study.trials, key=lambda t: t.value)
    assert not top_any.info["feasible"] or top_any is best


def test_every_strategy_respects_the_constraint(data_dir):
    from nasforge.estimation import load_benchmark
    from nasforge.strategies import MULTI_FIDELITY, MULTI_OBJECTIVE, STRATEGIES

    bench = load_benchmark("nb201:cifar10+latency", data_dir=data_dir)
    cons = ConstraintSet(["latency_ms[pixel3] <= 8"]).bind(bench.space, bench)
    for name in sorted(set(STRATEGIES) - set(MULTI_OBJECTIVE)):
        kw = {"rungs": [12, 200]} if name in MULTI_FIDELITY else {}
        study = Study(name, bench.space, "valid_acc", constraints=cons)
        study.optimize(get_strategy(name, bench.space, seed=0, **kw), bench, n_trials=25)
        assert all(cons(t.arch) for t in study.trials), name


def test_cli_search_with_constraints_stores_and_reuses_them(data_dir, tmp_path, capsys):
    from nasforge.cli.main import main
    from nasforge.study import get_storage

    db = f"sqlite:///{tmp_path / 's.db'}"
    args = ["search", "--benchmark", "nb201:cifar10", "--strategy", "re", "--study", "c", "--quiet",
            "--storage", db, "--data-dir", str(data_dir)]
    assert main(args + ["--budget", "25", "--constraint", "params <= 0.3e6", "--constraint", "flops < 30M"]) == 0
    assert main(args + ["--budget", "40"]) == 0  # resume: the stored constraints apply
    _, cfg, _ = get_storage(db).get_or_create_study("c", {})
    assert cfg["search"]["constraints"] == ["params <= 0.3e6", "flops < 30M"]
    study = Study("c", SPACE, "valid_acc", storage=db)
    assert len(study.trials) == 40
    assert all(nb201_param_count(t.arch) <= 3e5 and nb201_flops(t.arch) < 3e7 for t in study.trials)
    capsys.readouterr()
    assert main(args + ["--budget", "41", "--constraint", "params <= 1e6"]) == 2
    assert "cannot resume" in capsys.readouterr().err


# --- the energy of a search -------------------------------------------------------------------------
def test_search_energy_and_rapl(tmp_path):
    from nasforge.study.storage import Trial, TrialState

    trials = [Trial(0, R1, state=TrialState.COMPLETE, duration=2.0, cost=10.0),
              Trial(1, R2, state=TrialState.FAILED, duration=1.0, cost=0.0),
              Trial(2, R2, state=TrialState.RUNNING, duration=5.0)]
    e = search_energy(trials, 50.0)
    assert e["seconds"] == 3.0 and e["joules"] == 150.0 and e["wh"] == pytest.approx(150 / 3600)
    assert search_energy(trials, 50.0, clock="cost")["joules"] == 500.0
    with pytest.raises(NasforgeError, match="positive number of watts"):
        search_energy(trials, -1)
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "energy_uj").write_text("1000000\n")
    (zone / "max_energy_range_uj").write_text("10000000\n")
    with EnergyMeter(tmp_path) as m:
        (zone / "energy_uj").write_text("500000\n")  # wrapped around
    assert m.joules == pytest.approx(9.5)
    with EnergyMeter(tmp_path / "absent") as m2:
        pass
    assert m2.joules is None and not m2.available


# --- latency predictors ----------------------------------------------------------------------------
def test_additive_model_recovers_a_per_op_lookup_table():
    rng = np.random.default_rng(0)
    cost = dict(zip(SPACE.ops, [0.0, 0.1, 1.0, 4.0, 0.5]))
    archs = [SPACE.sample(rng) for _ in range(40)]
    lat = [2.0 + sum(cost[o] for o in a) for a in archs]
    model = AdditiveLatencyModel(SPACE, alpha=0.0).fit(archs[:20], lat[:20])
    table = model.lookup_table()
    assert table["skeleton"] + 6 * table["none"] == pytest.approx(2.0, abs=1e-6)  # 6 edges: only sums are identified
    assert table["nor_conv_3x3"] - table["none"] == pytest.approx(4.0, abs=1e-6)
    assert np.allclose(model.predict(archs[20:]), lat[20:], atol=1e-6)
    assert list(op_counts(SPACE, R2)) == [3, 0, 1, 0, 2]
    r = evaluate_predictor(lat[20:], model.predict(archs[20:]))
    assert r["spearman"] == pytest.approx(1.0) and r["rmse"] < 1e-6
    with pytest.raises(NasforgeError, match="positive"):
        LearnedLatencyPredictor(SPACE).fit(archs[:3], [1.0, -1.0, 2.0])


def test_transfer_to_an_unseen_device_from_20_samples(data_dir):
    from nasforge.estimation.hardware import LATENCY_DEVICES, load_hardware_table

    table = load_hardware_table("latency", data_dir)
    target = "pixel3"
    sources = {d: table.columns[f"latency_ms[{d}]"] for d in LATENCY_DEVICES if d != target}
    y = table.columns[f"latency_ms[{target}]"]
    rng = np.random.default_rng(0)
    idx = rng.choice(len(table.archs), 20, replace=False)
    rest = np.setdiff1d(np.arange(len(table.archs)), idx)[:3000]
    pred = TransferLatencyPredictor(SPACE, table.archs, sources).fit([table.archs[i] for i in idx], y[idx])
    r = evaluate_predictor(y[rest], pred.predict([table.archs[i] for i in rest]))
    assert r["spearman"] > 0.85 and set(pred.embedding_) == set(sources)
    learned = LearnedLatencyPredictor(SPACE, seed=0).fit([table.archs[i] for i in idx], y[idx])
    assert evaluate_predictor(y[rest], learned.predict([table.archs[i] for i in rest]))["spearman"] > 0.5


# --- cost models owned by the spaces ----------------------------------------------------------------
class _Data:
    """What bind_constraints reads of a training estimator's dataset."""

    def __init__(self, num_classes: int, in_channels: int, input_size: int) -> None:
        self.num_classes, self.in_channels, self.input_size = num_classes, in_channels, input_size


class _Trainer:
    def __init__(self, data: _Data, net: dict) -> None:
        self.dataset, self.net = data, net


def test_nb201_space_cost_model_keeps_the_published_numbers():
    from nasforge.estimation.hardware import cost_columns
    from nasforge.spaces import nb201

    assert SPACE.default_net() == {"C": 16, "N": 5, "num_classes": 10, "in_channels": 3, "input_size": 32}
    assert SPACE.param_count(R1) == 428_346 and SPACE.flops(R1) == 58_901_130
    assert SPACE.flops(("none",) * 6) == 7_783_050 and SPACE.flops(("nor_conv_3x3",) * 6) == 220_119_690
    assert SPACE.flops(R1, convention="nb201+pool") == 60_215_946 and SPACE.flops(R2, convention="full") == 14_885_514
    assert SPACE.param_count(R1, num_classes=100) == nb201_param_count(R1, num_classes=100)
    assert nb201_flops is nb201.nb201_flops  # the old import path still works
    rng = np.random.default_rng(3)
    archs = [SPACE.sample(rng) for _ in range(30)]
    cols = cost_columns(archs, SPACE, num_classes=100)
    assert list(cols["params"]) == [nb201_param_count(a, num_classes=100) for a in archs]
    assert list(cols["flops"]) == [nb201_flops(a, num_classes=100) for a in archs]
    # the closed forms equal the generic fallback (build and count) of the base class
    from nasforge.spaces.base import SearchSpace

    for a in archs[:3]:
        assert SearchSpace.param_count(SPACE, a, C=4, N=1, input_size=8) == SPACE.param_count(a, C=4, N=1)
        assert SearchSpace.flops(SPACE, a, C=4, N=1, input_size=8) == SPACE.flops(a, C=4, N=1, input_size=8)
    assert set(SPACE.device_tables()) == {"latency", "pi5"}


def _choice_space():
    from nasforge.spaces import ChoiceSpace

    def builder(config, num_classes=10, in_channels=3, input_size=32):
        layers, c = [], in_channels
        for _ in range(config["depth"]):
            layers += [nn.Conv2d(c, config["width"], 3, padding=1), nn.ReLU()]
            c = config["width"]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    return ChoiceSpace({"depth": [1, 2, 3], "width": [8, 16, 64]}, builder=builder, name="tiny")


def test_params_and_flops_constraints_on_a_user_choice_space():
    from nasforge.estimation.constraints import bind_constraints

    space = _choice_space()
    big, small = space.parse("depth=3,width=64"), space.parse("depth=1,width=8")
    cons = bind_constraints(["params <= 0.02e6", "flops <= 5M"], space)
    p_big = count_params(space.build(big))
    assert cons.values(big) == {"params": float(p_big),
                                "flops": float(count_flops(space.build(big), (3, 32, 32)).total)}
    assert space.param_count(big) == p_big > 20_000 and not cons(big) and cons(small)
    # with a training estimator: the dataset's input and classes, and the estimator's settings
    est = _Trainer(_Data(num_classes=3, in_channels=1, input_size=8), {})
    cons2 = bind_constraints(["params <= 0.5e6", "flops < 1e9"], space, estimator=est)
    net = space.build(big, num_classes=3, in_channels=1, input_size=8)
    assert cons2.values(big) == {"params": float(count_params(net)),
                                 "flops": float(count_flops(net, (1, 8, 8)).total)}
    with pytest.raises(NasforgeError, match="space 'tiny' has no device tables.*nb201"):
        bind_constraints(["latency_ms[pixel3] <= 20"], space)
    with pytest.raises(NasforgeError, match="unknown metric 'size'.*available: params; flops$"):
        bind_constraints(["size <= 3"], space)


def test_params_and_flops_constraints_on_darts_and_nb101():
    from nasforge.estimation.constraints import bind_constraints
    from nasforge.spaces import get_space
    from nasforge.spaces.nb101_net import nb101_param_count

    rng = np.random.default_rng(0)
    darts = get_space("darts")
    est = _Trainer(_Data(10, 3, 16), {"C": 4, "layers": 5, "drop_path_prob": 0.2})
    cons = bind_constraints(["params <= 0.2e6", "flops <= 50M"], darts, estimator=est)
    archs = [darts.sample(rng) for _ in range(2)]
    for a in archs:  # settings the cost model does not take (input_size, drop_path_prob) are left out
        assert cons.values(a) == {"params": float(darts.param_count(a, C=4, layers=5, num_classes=10)),
                                  "flops": float(darts.flops(a, C=4, layers=5, num_classes=10, input_size=16))}
        assert cons(a) == (cons.values(a)["params"] <= 2e5 and cons.values(a)["flops"] <= 5e7)
    assert cons.values(archs[0])["params"] == count_params(darts.build(archs[0], C=4, layers=5))
    with pytest.raises(NasforgeError, match="space 'darts' has no device tables.*nb201"):
        bind_constraints(["energy_mj[pi5_onnx] <= 3"], darts)

    nb101 = get_space("nb101")
    net = {"stem_channels": 8, "num_stacks": 2, "cells_per_stack": 1}
    cons = bind_constraints(["params <= 30000", "flops < 20M"], nb101, estimator=_Trainer(_Data(10, 3, 16), net))
    for a in [nb101.sample(rng) for _ in range(3)]:
        model = nb101.build(a, **net, num_classes=10, in_channels=3)
        assert cons.values(a) == {"params": float(nb101_param_count(a, **net)),
                                  "flops": float(count_flops(model, (3, 16, 16)).total)}
    # without an estimator: the benchmark network's own settings (128 stem channels, 3 x 3 cells)
    a = nb101.sample(rng)
    assert bind_constraints(["params <= 1e9"], nb101).values(a) == {"params": float(nb101_param_count(a))}


def test_device_tables_are_asked_of_the_space(data_dir):
    from nasforge.estimation.hardware import load_device_table, load_hardware_table, with_hardware
    from nasforge.spaces import get_space

    via_space = load_device_table(SPACE, "latency", data_dir)
    assert via_space.name == "nb201-hw:latency" and "latency_ms[pixel3]" in via_space.columns
    assert np.array_equal(via_space.columns["latency_ms[pixel3]"],
                          load_hardware_table("latency", data_dir).columns["latency_ms[pixel3]"])
    pi5 = load_device_table(SPACE, "pi5", data_dir)
    assert {"latency_ms[pi5_onnx]", "energy_mj[pi5_litert]"} <= set(pi5.columns)
    with pytest.raises(NasforgeError, match="unknown hardware table 'gpu'"):
        load_device_table(SPACE, "gpu", data_dir)
    with pytest.raises(NasforgeError, match="space 'darts' has no device tables"):
        load_device_table(get_space("darts"), "latency", data_dir)
    from nasforge.estimation.tabular import TabularBenchmark

    space = _choice_space()
    toy = TabularBenchmark(space, list(space), {"acc": np.arange(9.0)}, name="toy:cifar100")
    with pytest.raises(NasforgeError, match="hardware part 'latency' of benchmark 'toy:cifar100': space 'tiny' "
                                            "has no device tables"):
        with_hardware(toy, ["latency"], data_dir)
    costed = with_hardware(toy, ["cost"])  # the generic cost model: build and count
    assert list(costed.columns["params"]) == [count_params(space.build(a)) for a in space]


def test_cost_command_asks_the_space(capsys):
    from nasforge.cli.main import main
    from nasforge.spaces import get_space

    darts = get_space("darts")
    arch = darts.format(darts.sample(np.random.default_rng(1)))
    assert main(["cost", arch, "--space", "darts", "--C", "4", "--input-size", "16", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["params"] == darts.param_count(arch, C=4) and out["build"] == {"C": 4, "input_size": 16}
    assert out["flops[nb201]"] > 0 and not any(k.startswith("latency_ms[") for k in out)
    assert main(["cost", arch, "--space", "darts", "--N", "2"]) == 2
    assert "space 'darts' builds networks without the setting(s) N" in capsys.readouterr().err
