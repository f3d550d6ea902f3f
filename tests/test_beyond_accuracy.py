"""Nero, knowledge distillation, DisWOT and GeNAS flatness (issue 15)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasforge.data import load_digits
from nasforge.errors import NasforgeError
from nasforge.estimation.distill import (DisWOTEstimator, classifier_gradient, diswot_distances, diswot_score,
                                         kd_loss, run_tapped)
from nasforge.estimation.flatness import GENAS_STDS, genas_flatness, poor_minimum
from nasforge.estimation.nero import Nero, neuron_mean, neuron_norm
from nasforge.estimation.training import TrainingEstimator
from nasforge.spaces import get_space

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
NET = {"C": 4, "N": 1}


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


@pytest.fixture(scope="module")
def space():
    return get_space("nb201")


def _toy(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 5, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2)), x, y


# --- Nero ---------------------------------------------------------------------------------------
def test_nero_keeps_neurons_balanced_and_learns():
    net, x, y = _toy()
    opt = Nero(net.parameters(), lr=0.01)
    first = float(F.cross_entropy(net(x), y).detach())
    bias0 = net[0].bias.detach().clone()
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    for layer in (net[0], net[2]):
        w = layer.weight.detach()
        assert torch.allclose(neuron_mean(w), torch.zeros_like(neuron_mean(w)), atol=1e-6)
        assert torch.allclose(neuron_norm(w), torch.ones_like(neuron_norm(w)), atol=1e-5)
    assert not torch.allclose(net[0].bias, bias0)  # vectors move but are not projected
    assert float(F.cross_entropy(net(x), y).detach()) < 0.5 * first


def test_nero_state_dict_resumes_the_same_trajectory():
    def run(split: bool) -> torch.Tensor:
        net, x, y = _toy(1)
        opt = Nero(net.parameters(), lr=0.02)
        for i in range(10):
            if split and i == 5:
                saved_net, saved_opt = copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict())
                net, _, _ = _toy(1)
                net.load_state_dict(saved_net)
                opt = Nero(net.parameters(), lr=0.02)
                opt.load_state_dict(saved_opt)
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    assert torch.equal(run(False), run(True))


def test_nero_bad_settings():
    net, _, _ = _toy()
    with pytest.raises(NasforgeError, match="lr"):
        Nero(net.parameters(), lr=0)
    with pytest.raises(NasforgeError, match="beta"):
        Nero(net.parameters(), beta=1.0)


def test_training_with_nero(space, digits):
    est = TrainingEstimator(space, digits, max_epochs=2, optimizer="nero", net=NET, seed=0, threads=1)
    assert est.lr == 0.01
    m = est.estimate(CELL)
    again = TrainingEstimator(space, digits, max_epochs=2, optimizer="nero", net=NET, seed=0, threads=1)
    assert again.estimate(CELL, 1).metrics["epochs"] == 1.0
    assert again.estimate(CELL, 2).metrics["valid_acc"] == m.metrics["valid_acc"]  # continued = in one go
    assert m.metrics["valid_acc"] > 30.0  # 10 classes: chance is 10 %
    model = est.trained_model(CELL)
    w = model.classifier.weight.detach()
    assert torch.allclose(neuron_norm(w), torch.ones_like(neuron_norm(w)), atol=1e-5)
    with pytest.raises(NasforgeError, match="allowed: sgd, adamw, nero"):
        TrainingEstimator(space, digits, optimizer="lion", net=NET)


# --- knowledge distillation ---------------------------------------------------------------------
def test_kd_loss():
    z = torch.randn(8, 10)
    assert float(kd_loss(z, z)) == pytest.approx(0.0, abs=1e-5)
    assert float(kd_loss(z, z.flip(1), temperature=2.0)) > 0.0


def test_training_with_a_teacher(space, digits):
    base = dict(max_epochs=2, net=NET, seed=3, threads=1)
    teacher = TrainingEstimator(space, digits, **base).trained_model(CELL)
    plain = TrainingEstimator(space, digits, **base).estimate(CELL).metrics
    zero = TrainingEstimator(space, digits, teacher=teacher, kd_weight=0.0, **base).estimate(CELL).metrics
    assert zero["valid_acc"] == plain["valid_acc"] and zero["train_loss"] == plain["train_loss"]
    kd = TrainingEstimator(space, digits, teacher=teacher, **base).estimate(CELL).metrics
    dis = TrainingEstimator(space, digits, teacher=teacher, distiller="diswot", **base).estimate(CELL).metrics
    assert kd["train_loss"] != plain["train_loss"] and dis["train_loss"] != kd["train_loss"]
    assert not teacher.training
    for bad, match in ((dict(kd_weight=1.5), "kd_weight"), (dict(kd_temperature=0), "kd_temperature"),
                       (dict(distiller="fitnet"), "allowed: kd, diswot"), (dict(teacher="net.pt"), "teacher")):
        with pytest.raises(NasforgeError, match=match):
            TrainingEstimator(space, digits, **{**base, **bad})


# --- DisWOT -------------------------------------------------------------------------------------
def test_classifier_gradient_is_autograds(space, digits):
    torch.manual_seed(0)
    net = space.build(CELL, C=4, N=1, num_classes=10, in_channels=1, input_size=8)
    x, y = torch.from_numpy(digits.x_train[:16]), torch.from_numpy(digits.y_train[:16])
    logits, _, pooled = run_tapped(net, x)
    F.cross_entropy(logits, y).backward()
    assert torch.allclose(classifier_gradient(logits.detach(), pooled.detach(), y), net.classifier.weight.grad,
                          atol=1e-6)


def test_diswot_distances(space, digits):
    torch.manual_seed(0)
    a = space.build(CELL, C=4, N=1, num_classes=10, in_channels=1, input_size=8)
    b = space.build("|none~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|", C=8, N=1, num_classes=10,
                    in_channels=1, input_size=8)
    x, y = torch.from_numpy(digits.x_train[:32]), torch.from_numpy(digits.y_train[:32])
    same = diswot_score(a.train(), copy.deepcopy(a), x, y)  # both with batch statistics: the same function
    assert same["diswot"] == pytest.approx(0.0, abs=1e-6)
    other = diswot_score(a, b, x, y)  # widths differ (4 vs 8 channels): still comparable
    assert other["diswot"] < -1e-4
    assert other["diswot"] == pytest.approx(other["diswot_semantic"] + other["diswot_relation"])
    with torch.no_grad():
        sem, rel = diswot_distances(run_tapped(a, x), run_tapped(b, x), y)
    assert float(sem) >= 0 and float(rel) >= 0


def test_diswot_estimator_and_search(space, digits):
    torch.manual_seed(0)
    teacher = space.build(CELL, C=8, N=1, num_classes=10, in_channels=1, input_size=8)
    est = DisWOTEstimator(space, digits, teacher, batch_size=32, seed=0, net=NET)
    archs = [space.sample(np.random.default_rng(i)) for i in range(4)]
    forward = [est.estimate(a).metrics["diswot"] for a in archs]
    backward = [est.estimate(a).metrics["diswot"] for a in reversed(archs)][::-1]
    assert forward == backward  # a score does not depend on the order of scoring
    assert len(set(forward)) > 1

    from nasforge.strategies.blackbox import RegularizedEvolution
    from nasforge.study import create_study

    study = create_study("diswot-re", space, metric="diswot", maximize=True)
    study.optimize(RegularizedEvolution(space, population_size=4, sample_size=2, seed=0), est, n_trials=8)
    values = [t.metrics["diswot"] for t in study.trials]
    assert len(values) == 8 and study.best_trial.metrics["diswot"] == max(values)
    with pytest.raises(NasforgeError, match="teacher"):
        DisWOTEstimator(space, digits, teacher="resnet", net=NET)
    with pytest.raises(NasforgeError, match="classes"):
        DisWOTEstimator(space, digits, nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), net=NET)


# --- GeNAS flatness -----------------------------------------------------------------------------
def test_poor_minimum_formula():
    assert poor_minimum([1.0, 2.0, 2.5], [0.5, 1.0, 2.0]) == pytest.approx(2.0 + 2.0 + 0.5)
    with pytest.raises(NasforgeError):
        poor_minimum([1.0], [0.1, 0.2])


def test_genas_flatness(space, digits):
    est = TrainingEstimator(space, digits, max_epochs=2, net=NET, seed=0, threads=1, flatness=True)
    m = est.estimate(CELL).metrics
    model = est.trained_model(CELL)
    before = copy.deepcopy(model.state_dict())
    x, y = torch.from_numpy(digits.x_val), torch.from_numpy(digits.y_val)
    f1, losses = genas_flatness(model, x, y, seed=5)
    f2, _ = genas_flatness(model, x, y, seed=5)
    assert f1 == f2 > 0 and len(losses) == len(GENAS_STDS)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # a copy is perturbed
    assert f1 == pytest.approx(1.0 / (poor_minimum(losses, GENAS_STDS) + 1e-5))
    assert "flatness" in est.metric_names and m["flatness"] > 0 and est.higher_is_better("flatness")
    # a sharper minimum of the same function: weights 20x smaller, the output scaled back up by a
    # constant, so the same weight noise moves the output 20x more
    class Scaled(nn.Module):
        def __init__(self, k: float) -> None:
            super().__init__()
            self.lin, self.k = nn.Linear(2, 2), k
            with torch.no_grad():
                self.lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]) / k)
                self.lin.bias.zero_()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) * self.k

    xs = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    ys = (xs[:, 1] > xs[:, 0]).long()
    wide, narrow = Scaled(1.0), Scaled(20.0)
    assert torch.allclose(wide(xs), narrow(xs), atol=1e-5)
    assert genas_flatness(wide, xs, ys, seed=1)[0] > genas_flatness(narrow, xs, ys, seed=1)[0]
    with pytest.raises(NasforgeError, match="noise levels"):
        genas_flatness(model, x, y, stds=[0.02, 0.01])


# --- EVAS ---------------------------------------------------------------------------------------
def test_ntk_condition_of_a_linear_map_is_one():
    from nasforge.estimation.backdoor import ntk_condition

    lin = nn.Linear(6, 4, bias=False)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    # J_n J_n^T = |x_n|^2 I for f = W x: every class alike
    assert ntk_condition(lin, dict(lin.named_parameters()), x) == pytest.approx(1.0, rel=1e-9)
    two = nn.Sequential(nn.Linear(6, 4, bias=False), nn.Linear(4, 3, bias=False))
    assert ntk_condition(two, {"1.weight": two[1].weight}, x) == pytest.approx(1.0, rel=1e-9)
    assert ntk_condition(two, {"0.weight": two[0].weight}, x) > 1.0


def test_trigger_generator_area(digits):
    from nasforge.estimation.backdoor import TriggerGenerator

    torch.manual_seed(0)
    x = torch.from_numpy(digits.x_train[:20])
    g = TriggerGenerator(1, area=0.25)
    assert g(x).shape == x.shape
    assert float(g.mask(x).detach().mean()) == pytest.approx(0.25, abs=0.08)
    free = TriggerGenerator(1)
    assert 0.0 <= float(free.mask(x).min()) and float(free.mask(x).max()) <= 1.0


def test_backdoor_estimator_and_poisoned_training(space, digits):
    from nasforge.estimation.backdoor import BackdoorEstimator, poisoned_training

    est = BackdoorEstimator(space, digits, batch_size=8, seed=0, net=NET)
    a, b = space.parse(CELL), space.sample(np.random.default_rng(3))
    ma = est.estimate(a).metrics
    assert ma == est.estimate(a).metrics and ma != est.estimate(b).metrics
    assert ma["kappa_trigger"] >= 1.0 and ma["kappa_clean"] >= 1.0 and not est.higher_is_better("kappa_trigger")
    from nasforge.data import from_arrays

    small = from_arrays(digits.x_train[:320], digits.y_train[:320], digits.x_test[:200], digits.y_test[:200],
                        name="digits-small", val_fraction=0.1)
    r = poisoned_training(est.build(a), small, epochs=6, poison_rate=0.1, mask_budget=0.1, seed=0)
    assert r["clean_acc"] > 30.0 and r["asr"] > 60.0  # the backdoor is learnt, the clean task too (chance: 10 %)
    assert r["mask_area"] == pytest.approx(0.1, abs=0.05)
    with pytest.raises(NasforgeError, match="target"):
        poisoned_training(est.build(a), digits, target=10)


def test_cli_audit(capsys):
    import json

    from nasforge.cli.main import main

    assert main(["audit", CELL, "--C", "4", "--reference", "2", "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["arch"] == CELL and len(out["reference_kappa_trigger"]) == 2 and 0 <= out["more_prone_than"] <= 1
    assert main(["audit", CELL, "--target", "12"]) == 2
    assert "bad --target 12" in capsys.readouterr().err
