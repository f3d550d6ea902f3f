import numpy as np
import pytest

from nasforge import NasforgeError
from nasforge.estimation import load_benchmark, load_nb201
from nasforge.estimation.tabular import split_column

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_split_column():
    assert split_column("valid_acc_200") == ("valid_acc", 200.0)
    assert split_column("test_acc_200_full") == ("test_acc_full", 200.0)
    assert split_column("latency") == ("latency", None)
    assert split_column("1080ti_32") == ("1080ti_32", None)


def test_device_columns_are_not_fidelities(data_dir):
    lat = load_nb201(data_dir / "nb201" / "latency_ms.csv")
    assert lat.fidelities is None
    assert {"gold_6240", "1080ti_32", "pixel3"} <= set(lat.estimate(BEST).metrics)


def test_nb201_lookup_and_fidelities(nb201_c10):
    b = nb201_c10
    assert len(b) == 15625 and b.fidelities == (12.0, 200.0)
    m = b.estimate(BEST)
    assert m.fidelity == 200 and m.cost == 200
    assert set(m.metrics) == {"train_acc", "valid_acc", "test_acc", "test_acc_full"}
    assert m.metrics["test_acc_full"] == pytest.approx(94.3733)
    low = b.estimate(BEST, 12)
    assert set(low.metrics) == {"valid_acc", "test_acc"} and low.cost == 12
    assert b.query(BEST, "valid_acc_12") == low.metrics["valid_acc"]
    with pytest.raises(NasforgeError, match="no fidelity 50.*allowed: 12, 200"):
        b.estimate(BEST, 50)


def test_optimum_and_percentile(nb201_c10):
    b = nb201_c10
    arch, opt = b.optimum("test_acc_200_full")
    assert opt == pytest.approx(94.37, abs=0.01) and str(arch) == BEST
    assert b.optimum("test_acc_200")[1] == pytest.approx(91.52, abs=0.01)
    assert b.percentile("test_acc_200_full", opt) == 100.0
    assert b.fraction_better("test_acc_200_full", opt) == 0.0
    assert 99.9 < b.fraction_better("test_acc_200_full", opt, maximize=False) < 100
    v = b.values("valid_acc_200")
    assert b.percentile("valid_acc_200", float(np.median(v))) == pytest.approx(50, abs=0.1)
    with pytest.raises(NasforgeError, match="unknown metric 'accuracy'.*available: train_acc_200"):
        b.query(BEST, "accuracy")
    with pytest.raises(ValueError):
        b.values("valid_acc_200")[0] = 0  # read-only


def test_report_metric_protocol(data_dir):
    c10 = load_benchmark("nb201:cifar10", data_dir=data_dir)
    c100 = load_benchmark("nb201:cifar100", data_dir=data_dir)
    assert (c10.default_metric, c10.report_metric) == ("valid_acc", "test_acc_full")
    assert (c100.default_metric, c100.report_metric) == ("valid_acc", "test_acc")
    assert c100.optimum("test_acc_200")[1] == pytest.approx(73.51, abs=0.01)


def test_user_table_and_bad_files(tmp_path):
    ok = tmp_path / "mine.csv"
    ok.write_text(f"arch,valid_acc_5,valid_acc_10,params\n{BEST},50.0,60.0,1.5\n")
    b = load_nb201(ok)
    assert b.fidelities == (5.0, 10.0) and b.estimate(BEST).metrics == {"valid_acc": 60.0, "params": 1.5}
    other = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    with pytest.raises(NasforgeError, match=r"\|none~0\|.* is not in benchmark 'nb201:mine'"):
        b.estimate(other)
    with pytest.raises(NasforgeError, match="benchmark file not found"):
        load_nb201(tmp_path / "absent.csv")
    (tmp_path / "noarch.csv").write_text("a,b\n1,2\n")
    with pytest.raises(NasforgeError, match="no 'arch' column"):
        load_nb201(tmp_path / "noarch.csv")
    (tmp_path / "badarch.csv").write_text(f"arch,x\n{BEST},1\n|conv~0|+|a~0|b~1|+|c~0|d~1|e~2|,2\n")
    with pytest.raises(NasforgeError, match="badarch.csv, line 3: malformed NB201 string"):
        load_nb201(tmp_path / "badarch.csv")
    (tmp_path / "badnum.csv").write_text(f"arch,x\n{BEST},oops\n")
    with pytest.raises(NasforgeError, match="line 2: column 'x' holds a non-number"):
        load_nb201(tmp_path / "badnum.csv")
    (tmp_path / "dup.csv").write_text(f"arch,x\n{BEST},1\n{BEST},2\n")
    with pytest.raises(NasforgeError, match="appears twice"):
        load_nb201(tmp_path / "dup.csv")
    (tmp_path / "binary.csv").write_bytes(b"\x00\x01\x02\xff\xfe")
    with pytest.raises(NasforgeError):
        load_nb201(tmp_path / "binary.csv")


def test_unknown_benchmarks(tmp_path):
    with pytest.raises(NasforgeError, match="unknown benchmark 'nb301:cifar10'"):
        load_benchmark("nb301:cifar10")
    with pytest.raises(NasforgeError, match="no NB201 table 'imagenet'"):
        load_benchmark("nb201:imagenet", data_dir=tmp_path)


# --- benchmark families as a registry --------------------------------------------------------------
def test_benchmark_families_are_a_registry(tmp_path):
    import json

    from nasforge.estimation.registry import benchmark_families, register_benchmark, unregister_benchmark
    from nasforge.estimation.tabular import TabularBenchmark
    from nasforge.params import from_spec
    from nasforge.spaces import NB201Space

    space = NB201Space()
    archs = list(space)[:4]
    calls = []

    def toy(name, data_dir):
        calls.append((name, data_dir))
        return TabularBenchmark(space, archs, {"valid_acc": [1.0, 2.0, 3.0, 4.0], "test_acc": [4.0, 3.0, 2.0, 1.0]},
                                name=f"toy:{name or 'small'}", default_metric="valid_acc", report_metric="test_acc")

    assert benchmark_families()[:2] == ("nb201", "nbgraph")
    register_benchmark("toy", toy, help="default small")
    try:
        b = load_benchmark("toy")
        assert (b.name, b.default_metric, b.report_metric) == ("toy:small", "valid_acc", "test_acc")
        assert load_benchmark("toy:big", data_dir=tmp_path).name == "toy:big" and calls[-1] == ("big", tmp_path)
        again = from_spec(json.dumps(b.spec()))  # its spec names the registry call, which finds the family again
        assert again.name == "toy:small" and again.report_metric == "test_acc"
        assert "toy" in benchmark_families()
        with pytest.raises(NasforgeError, match="benchmark family 'toy' is already registered"):
            register_benchmark("toy", lambda n, d: b)
        register_benchmark("toy", toy, replace=True)
        with pytest.raises(NasforgeError, match="registered families: nb201, nbgraph, toy"):
            load_benchmark("nope:x")
        # hardware parts are the space's: the cost columns of a toy NB201 table
        costed = load_benchmark("toy:x+cost")
        assert costed.query(archs[1], "params") == space.param_count(archs[1])
        assert costed.default_metric == "valid_acc" and costed.report_metric == "test_acc"
    finally:
        unregister_benchmark("toy")
    assert "toy" not in benchmark_families()
    with pytest.raises(NasforgeError, match="unknown benchmark 'toy:small': no family 'toy'; registered families: "
                                            "nb201, nbgraph"):
        load_benchmark("toy:small")
    for bad in ("", "a:b", "a+b"):
        with pytest.raises(NasforgeError, match="benchmark family is a non-empty name"):
            register_benchmark(bad, toy)


def test_loaders_pass_their_metrics_at_construction(data_dir, tmp_path):
    from nasforge.estimation.tabular import TabularBenchmark

    c10 = load_benchmark("nb201:cifar10", data_dir=data_dir)
    assert (c10.default_metric, c10.report_metric) == ("valid_acc", "test_acc_full")
    assert c10.get_params()["default_metric"] == "valid_acc"  # a constructor argument, not set afterwards
    c100 = load_benchmark("nb201:cifar100", data_dir=data_dir)
    assert (c100.default_metric, c100.report_metric) == ("valid_acc", "test_acc")
    assert load_benchmark("nb201", data_dir=data_dir).name == "nb201:cifar10"
    (tmp_path / "mine.csv").write_text(f"arch,valid_acc_12,valid_acc_200,test_acc_200\n{BEST},1,2,3\n")
    own = load_benchmark(f"nb201:{tmp_path / 'mine.csv'}")
    assert (own.name, own.default_metric, own.report_metric) == ("nb201:mine", "valid_acc", "test_acc")
    hw = load_benchmark("nb201:cifar10+latency+cost", data_dir=data_dir)
    assert (hw.default_metric, hw.report_metric) == ("valid_acc", "test_acc_full")
    assert {"latency_ms[pixel3]", "params", "flops"} <= set(hw.columns) and "energy_mj[pi5_onnx]" not in hw.columns
    small = TabularBenchmark(c10.space, c10.archs[:2], {"a": [1.0, 2.0]}, default_metric="a", report_metric="a")
    derived = small.derive({"a": [1.0, 2.0], "b": [3.0, 4.0]}, name="small+b")
    assert (derived.name, derived.default_metric, derived.report_metric) == ("small+b", "a", "a")
    assert derived.derive(report_metric="b").report_metric == "b"
