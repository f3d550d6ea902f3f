"""User-defined spaces: a dict of choices and a builder; every strategy and estimator works on them."""

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from torch import nn

from nasforge import NasforgeError
from nasforge.estimation import Estimator, Measurement
from nasforge.spaces.choice import ChoiceSpace, Choices
from nasforge.strategies import get_strategy
from nasforge.study import Study, TrialState

CHOICES = {"depth": [1, 2, 3], "width": [8, 16, 32], "act": ["relu", "gelu", "tanh"], "dropout": [0.0, 0.2]}


def make_cnn(cfg, num_classes=10, in_channels=1, input_size=8, **_):
    act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}[cfg["act"]]
    layers, c = [], in_channels
    for _ in range(cfg["depth"]):
        layers += [nn.Conv2d(c, cfg["width"], 3, padding=1), nn.BatchNorm2d(cfg["width"]), act()]
        c = cfg["width"]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(cfg["dropout"]), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)


SPACE = ChoiceSpace(CHOICES, builder=make_cnn, name="cnn")


class Score(Estimator):
    """Deterministic synthetic objective over the choices."""

    metric_names = ["acc"]

    def estimate(self, arch, fidelity=None):
        cfg = SPACE.config_of(arch)
        acc = cfg["depth"] * 2 + cfg["width"] / 8 + {"relu": 1, "gelu": 2, "tanh": 0}[cfg["act"]] - 5 * cfg["dropout"]
        return Measurement({"acc": float(acc)}, cost=float(cfg["depth"]))


def test_set_text_and_encodings():
    assert len(SPACE) == 54 and len(set(SPACE)) == 54
    a = SPACE.parse("depth=2,width=16,act=gelu,dropout=0.2")
    assert isinstance(a, Choices) and SPACE.format(a) == "depth=2,width=16,act=gelu,dropout=0.2"
    assert SPACE.parse({"depth": 2, "width": 16, "act": "gelu", "dropout": 0.2}) == a
    assert SPACE.config_of(a) == {"depth": 2, "width": 16, "act": "gelu", "dropout": 0.2}
    nbrs = SPACE.neighbors(a)
    assert len(nbrs) == 2 + 2 + 2 + 1 and all(sum(x != y for x, y in zip(n, a)) == 1 for n in nbrs)
    rng = np.random.default_rng(0)
    for _ in range(50):
        m = SPACE.mutate(a, rng)
        assert m != a and m in nbrs
    oh = SPACE.encode(a)
    assert oh.shape == (11,) and oh.sum() == 4
    assert list(SPACE.encode(a, "index")) == [1, 1, 1, 1]
    adj, labels = SPACE.graph(a)
    assert adj.shape == (6, 6) and labels[1:-1] == ["depth=2", "width=16", "act=gelu", "dropout=0.2"]
    assert set(labels[1:-1]) <= set(SPACE.ops)


def test_sampling_is_uniform_per_choice():
    rng = np.random.default_rng(1)
    draws = [SPACE.sample(rng) for _ in range(3000)]
    for i, vals in enumerate(SPACE.values):
        counts = [sum(d[i] == v for d in draws) for v in vals]
        assert chisquare(counts).pvalue > 0.001


@pytest.mark.parametrize("bad, message", [
    ({}, "non-empty dict"),
    ({"depth": []}, "choice 'depth' is empty"),
    ({"depth": "123"}, "expected a list of allowed values"),
    ({"my depth": [1]}, "must be an identifier"),
    ({"depth": [1, 1]}, "lists a value twice"),
    ({"layer": [nn.ReLU()]}, "is not a string, number or boolean"),
])
def test_bad_spaces_are_clear_errors(bad, message):
    with pytest.raises(NasforgeError, match=message):
        ChoiceSpace(bad)
    with pytest.raises(NasforgeError, match="builder must be a function"):
        ChoiceSpace({"a": [1]}, builder="make_cnn")


@pytest.mark.parametrize("returned", [None, "conv", nn.ReLU, [nn.ReLU()]])
def test_a_builder_returning_a_non_module_is_a_clear_error(returned):
    space = ChoiceSpace({"depth": [1, 2]}, builder=lambda cfg, **_: returned, name="broken")
    with pytest.raises(NasforgeError) as err:
        space.build(space.parse("depth=2"), num_classes=10)
    msg = str(err.value)
    assert "\n" not in msg and "'broken'" in msg and "depth=2" in msg and "must return a torch.nn.Module" in msg
    assert type(returned).__name__ in msg
    assert isinstance(SPACE.build(SPACE.parse("depth=1,width=16,act=relu,dropout=0.0")), nn.Module)


@pytest.mark.parametrize("text, message", [
    ("depth=2,width=16,act=gelu", "missing choice 'dropout'"),
    ("depth=2,width=16,act=gelu,dropout=0.2,x=1", "unknown choice 'x'"),
    ("depth=4,width=16,act=gelu,dropout=0.2", "depth='4' is not allowed; allowed: 1, 2, 3"),
    ("deep", "expected key=value"),
])
def test_bad_architectures_are_clear_errors(text, message):
    with pytest.raises(NasforgeError, match=message):
        SPACE.parse(text)


@pytest.mark.parametrize("name, params", [
    ("random", {}), ("re", {"population_size": 10, "sample_size": 3}), ("ls", {}), ("bo", {"kernel": "hamming"}),
    ("bo", {"kernel": "wl"}), ("bananas", {}), ("sh", {"rungs": [1, 3]}), ("asha", {"rungs": [1, 3]}),
])
def test_every_strategy_searches_a_user_space(name, params):
    st = Study(f"{name}", SPACE, "acc")
    st.optimize(get_strategy(name, SPACE, seed=0, **params), Score(), n_trials=30)
    done = [t for t in st.trials if t.state is TrialState.COMPLETE]
    assert len(st.finished_trials) == 30 and len(done) == 30
    if name not in ("sh", "asha"):
        assert len({t.arch for t in st.trials}) == 30  # no architecture twice
    best = SPACE.parse(st.best_trial.arch)
    assert best in SPACE


def test_training_proxies_and_export_on_a_user_space(tmp_path):
    from nasforge.data import load_dataset
    from nasforge.estimation.export import save_trained
    from nasforge.estimation.proxies.estimator import ProxyEstimator
    from nasforge.estimation.training import TrainingEstimator

    data = load_dataset("digits", seed=0)
    est = TrainingEstimator(SPACE, data, max_epochs=2, net={})
    st = Study("train", SPACE, "valid_acc")
    st.optimize(get_strategy("random", SPACE, seed=0), est, n_trials=3)
    assert all(t.state is TrialState.COMPLETE and 0 <= t.metrics["valid_acc"] <= 100 for t in st.trials)
    best = st.best_trial
    model = est.trained_model(best.arch, 2)
    paths = save_trained(model, tmp_path / "best", best.arch, est)
    prog = torch.export.load(str(paths["program"])).module()
    assert prog(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    proxies = ProxyEstimator(SPACE, data, proxies=["naswot", "synflow", "params"], batch_size=32, net={})
    m = proxies.estimate(SPACE.parse("depth=2,width=16,act=relu,dropout=0.0"))
    assert all(np.isfinite(m.metrics[k]) for k in ("naswot", "synflow", "params"))
