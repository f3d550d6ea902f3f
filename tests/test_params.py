import copy
import json
import pickle

import numpy as np
import pytest

from nasforge import NasforgeError
from nasforge import params as P
from nasforge.params import Configurable, from_spec, register
from nasforge.spaces import NB201Space
from nasforge.strategies import STRATEGIES, get_strategy

SPACE = NB201Space()
MULTI_FIDELITY = {"sh", "hyperband", "asha", "pasha", "bohb"}


def build(name, **kwargs):
    if name in MULTI_FIDELITY and not {"rungs", "min_fidelity", "max_fidelity"} & set(kwargs):
        kwargs["rungs"] = [12, 200]
    return get_strategy(name, SPACE, **kwargs)


def round_trip(obj, **skip):
    text = json.dumps(obj.spec(**skip))  # plain JSON data, through text and back
    return from_spec(text)


def test_nb201_space_round_trip():
    spec = SPACE.spec()
    assert spec == {"class": "nasforge.spaces.nb201:NB201Space", "params": {}}
    again = round_trip(SPACE)
    assert type(again) is NB201Space and again.get_params() == {} and again.spec() == spec


def test_space_with_parameters_round_trip():
    from nasforge.spaces.nbgraph import NBGraphSpace

    space = NBGraphSpace(ops="proteins")
    assert space.get_params() == {"ops": "proteins"}
    again = round_trip(space)
    assert type(again) is NBGraphSpace and again.ops == space.ops


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_round_trips(name):
    strategy = build(name, seed=7)
    spec = strategy.spec()
    assert spec["class"] == f"{type(strategy).__module__}:{type(strategy).__qualname__}"
    assert spec["params"]["space"] == SPACE.spec() and spec["params"]["seed"] == 7
    again = round_trip(strategy)
    assert type(again) is type(strategy) and again.config() == strategy.config()
    assert again.spec() == spec


def test_rebuilt_strategy_asks_the_same():
    initial = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|"]
    a = build("re", population_size=4, sample_size=2, initial=initial, seed=3)
    b = from_spec(a.spec())
    for _ in range(12):
        sa, sb = a.ask(), b.ask()
        assert sa.arch == sb.arch
        score = float(sum(len(op) for op in sa.arch))
        a.tell(sa, score)
        b.tell(sb, score)


def test_get_params_lists_every_constructor_parameter():
    ls = build("ls", n_init=4)
    assert ls.get_params() == {"space": SPACE, "n_init": 4, "seed": 0, "metric": None, "maximize": None,
                               "fidelity": None, "allow_duplicates": False, "dedup": "arch", "feasible": None}
    params = ls.get_params()
    params["n_init"] = 99  # a copy: the strategy is unchanged
    assert ls.get_params()["n_init"] == 4


def test_config_keeps_the_stored_shape():
    assert build("re").config() == {"name": "re", "seed": 0, "fidelity": None, "allow_duplicates": False,
                                    "dedup": "arch", "population_size": 20, "sample_size": 10}
    assert build("ls", n_init=4).config() == {"name": "ls", "seed": 0, "fidelity": None, "allow_duplicates": False,
                                              "dedup": "arch", "n_init": 4}
    assert build("mo-random").config() == {"name": "mo-random", "seed": 0, "fidelity": None,
                                           "allow_duplicates": False, "dedup": "arch"}
    # the scheduler stores its rung levels, however they were given, and never min/max
    sh = build("sh", min_fidelity=1, max_fidelity=27, eta=3)
    assert sh.config() == {"name": "sh", "seed": 0, "fidelity": None, "allow_duplicates": False, "dedup": "arch",
                           "rungs": [1.0, 3.0, 9.0, 27.0], "eta": 3, "base": "random", "base_params": {},
                           "n_configs": 27}
    again = from_spec(sh.spec())
    assert again.levels == sh.levels and again.config() == sh.config()
    hb = build("hyperband", n_configs=5)
    assert "n_configs" not in hb.config() and hb.get_params()["n_configs"] is None
    assert build("pasha", percentile=80).config()["percentile"] == 80.0
    bo = build("bo", batch_size=np.int64(2), beta=1)
    assert bo.config()["batch_size"] == 2 and type(bo.config()["batch_size"]) is int
    assert bo.config()["kernel"] == "tw2" and bo.config()["kernel_params"] == {}
    assert build("bananas", hidden=(8, 8)).config()["hidden"] == [8, 8]
    mo = build("nsga2", metric=["a", "b"], maximize=[True, False])
    assert not {"space", "metric", "maximize", "feasible"} & set(mo.config())
    json.dumps([build(n).config() for n in STRATEGIES])  # stored as JSON


def test_numpy_scalars_and_tuples_become_plain_data():
    strategy = build("bananas", hidden=(8, np.int64(8)), seed=np.int64(3), lr=np.float32(0.5))
    params = strategy.spec()["params"]
    assert params["seed"] == 3 and type(params["seed"]) is int
    assert params["hidden"] == [8, 8] and all(type(h) is int for h in params["hidden"])
    assert params["lr"] == 0.5 and type(params["lr"]) is float


def test_unrepresentable_parameter_is_a_clear_error():
    def feasible(arch):
        return arch[0] != "none"

    strategy = build("re", feasible=feasible)
    with pytest.raises(NasforgeError, match="RegularizedEvolution parameter 'feasible' holds a function"):
        strategy.spec()
    spec = strategy.spec(skip=("feasible",))
    assert "feasible" not in spec["params"]
    again = from_spec(spec, feasible=feasible)
    assert again.feasible is feasible and again.config() == strategy.config()


def test_unrepresentable_nested_value_names_its_place():
    arch = SPACE.sample(np.random.default_rng(0))  # an architecture object, not its string
    strategy = build("sh", base="re", base_params={"population_size": 4, "sample_size": 2, "initial": [arch]})
    with pytest.raises(NasforgeError, match=r"parameter \"base_params\['initial'\]\[0\]\" holds a NB201Arch"):
        strategy.spec()


def test_training_estimator_dataset_is_not_plain_data():
    pytest.importorskip("torch")
    from nasforge.data import load_dataset
    from nasforge.estimation.training import TrainingEstimator

    est = TrainingEstimator(SPACE, load_dataset("digits"), max_epochs=2)
    assert est.get_params()["max_epochs"] == 2
    with pytest.raises(NasforgeError, match="TrainingEstimator parameter 'dataset' holds a Dataset"):
        est.spec()
    spec = est.spec(skip=("dataset",))
    again = from_spec(spec, dataset=est.dataset)
    assert type(again) is TrainingEstimator and again.max_epochs == 2 and again.dataset is est.dataset


def test_tabular_benchmark_spec_is_its_loader(data_dir):
    from nasforge.estimation import load_benchmark
    from nasforge.estimation.tabular import TabularBenchmark

    bench = load_benchmark("nb201:cifar100", data_dir=data_dir)
    spec = bench.spec()
    assert spec == {"class": "nasforge.estimation.registry:load_benchmark",
                    "params": {"spec": "nb201:cifar100", "data_dir": str(data_dir)}}
    again = round_trip(bench)
    assert isinstance(again, TabularBenchmark) and again.name == bench.name and len(again) == len(bench)
    assert again.default_metric == bench.default_metric and again.report_metric == bench.report_metric
    arch = bench.archs[123]
    assert again.estimate(arch, 200).metrics == bench.estimate(arch, 200).metrics
    # a table built from its columns has no short description: its rows are not plain data
    small = TabularBenchmark(SPACE, bench.archs[:3], {"valid_acc": [1.0, 2.0, 3.0]})
    assert small.get_params()["name"] == "table"
    with pytest.raises(NasforgeError, match="TabularBenchmark parameter 'archs\\[0\\]' holds a NB201Arch"):
        small.spec()


def test_measured_latency_round_trip():
    from nasforge.estimation.hardware import MeasuredLatency

    est = MeasuredLatency(SPACE, build={"C": 4, "N": 1}, input_shape=(3, 16, 16), repeats=5)
    again = round_trip(est)
    assert type(again) is MeasuredLatency and again.build == {"C": 4, "N": 1}
    assert again.input_shape == (3, 16, 16) and again.repeats == 5 and again.space.name == "nb201"


@pytest.mark.parametrize("cls_name, message", [
    ("os:system", "refusing to rebuild 'os:system'"),
    ("builtins:eval", "refusing to rebuild"),
    ("nasforgery.x:Y", "refusing to rebuild"),
    ("nasforge.cli.main:main", "not a configurable nasforge class"),
    ("nasforge.spaces.nb201:NoSuchSpace", "has no 'NoSuchSpace'"),
    ("nasforge.no_such_module:Thing", "cannot rebuild"),
    ("NB201Space", "expected 'module:QualName'"),
])
def test_from_spec_refuses_other_classes(cls_name, message):
    with pytest.raises(NasforgeError, match=message):
        from_spec({"class": cls_name, "params": {}})


def test_from_spec_rejects_malformed_specs():
    with pytest.raises(NasforgeError, match="a spec is a dict"):
        from_spec({"class": "nasforge.spaces.nb201:NB201Space"})
    with pytest.raises(NasforgeError, match="must be JSON"):
        from_spec("{not json")
    with pytest.raises(NasforgeError, match="cannot rebuild .*unexpected keyword argument 'bogus'"):
        from_spec({"class": "nasforge.spaces.nb201:NB201Space", "params": {"bogus": 1}})


class Custom(Configurable):
    def __init__(self, width=3, inner=None):
        self.width, self.inner = width, inner


def test_registered_classes_outside_nasforge_rebuild(monkeypatch):
    obj = Custom(width=5, inner=SPACE)
    spec = obj.spec()
    assert spec == {"class": f"{__name__}:Custom", "params": {"width": 5, "inner": SPACE.spec()}}
    with pytest.raises(NasforgeError, match="refusing to rebuild"):
        from_spec(spec)
    monkeypatch.setattr(P, "_REGISTRY", dict(P._REGISTRY))
    assert register(Custom) is Custom
    again = from_spec(spec)
    assert type(again) is Custom and again.width == 5 and isinstance(again.inner, NB201Space)


def test_parameters_survive_pickling_and_copying():
    strategy = build("pasha", seed=2, epsilon=0.5)
    for other in (pickle.loads(pickle.dumps(strategy)), copy.deepcopy(strategy), copy.copy(strategy)):
        assert other.config() == strategy.config() and other.spec() == strategy.spec()


def test_construction_errors_are_unchanged():
    from nasforge.strategies import RandomSearch

    with pytest.raises(TypeError, match="bogus"):
        RandomSearch(SPACE, bogus=1)
    with pytest.raises(TypeError):
        RandomSearch()

    class NoInit(Configurable):
        pass

    assert NoInit().get_params() == {}
    with pytest.raises(TypeError, match="takes no arguments"):
        NoInit(1)


def test_keyword_catch_all_flattens_along_the_hierarchy():
    sig = P.constructor_signature(STRATEGIES["hyperband"])
    names = list(sig.parameters)
    assert names[:2] == ["space", "n_configs"]
    assert {"rungs", "eta", "base", "seed", "dedup", "feasible"} <= set(names) and "kwargs" not in names

    class Loose(Configurable):  # a catch-all with nothing above it keeps the extra keywords
        def __init__(self, a=1, **extra):
            self.a, self.extra = a, extra

    assert Loose(a=2, b=3).get_params() == {"a": 2, "b": 3}
