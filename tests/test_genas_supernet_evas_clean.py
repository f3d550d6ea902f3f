"""GeNAS flatness on supernet weights (scoring, search, rank, CLI) and EVAS's clean-training
protocol (issue 15)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasforge.data import load_digits
from nasforge.errors import NasforgeError
from nasforge.estimation.flatness import GENAS_SUPERNET_STDS, genas_combined, genas_flatness
from nasforge.oneshot.evaluate import PathEvaluator, PathNet, SupernetEstimator, recalibrate_bn
from nasforge.oneshot.run import RankResult, SupernetRun
from nasforge.spaces import get_space

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
SETTINGS = {"space": "nb201", "dataset": "digits", "net": {"C": 4, "N": 1}, "steps": 10, "batch_size": 16, "seed": 1}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread (fast and steady on a shared CPU); the previous count is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained supernet run on digits."""
    folder = tmp_path_factory.mktemp("sn") / "run"
    run = SupernetRun(folder, **SETTINGS)
    run.train(log=None)
    return run


#: a light BatchNorm recalibration keeps the tests fast
BN = {"bn_batches": 1, "bn_batch_size": 32}


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


# --- GeNAS on supernet weights -----------------------------------------------------------------
def test_path_flatness_is_genas_flatness_of_the_recalibrated_path(trained):
    ev = PathEvaluator(trained.load(), trained.dataset(), n_eval=120, flatness=True, **BN)
    assert ev.stds == GENAS_SUPERNET_STDS and ev.settings()["stds"] == list(GENAS_SUPERNET_STDS)
    before = _weights(ev.supernets)
    r1, r2 = ev.score(CELL), ev.score(CELL)
    assert r1["flatness"] == r2["flatness"] and r1["flat_losses"] == r2["flat_losses"]  # seeded noise
    assert len(r1["flat_losses"]) == 3 and r1["flatness"] > 0
    after = ev.supernets.state_dict()  # perturbation happens on a copy (BN statistics are recalibrated)
    assert all(torch.equal(before[k], after[k]) for k in before if "running" not in k and "num_batches" not in k)
    # the same measure, by hand, on the path as a plain module
    idx = ev.layout.coerce_indices(CELL)
    recalibrate_bn(ev.supernets, idx, ev.calib)
    flat, losses = genas_flatness(PathNet(ev.supernets, idx), ev.x, ev.y, GENAS_SUPERNET_STDS, seed=ev.noise_seed)
    assert flat == pytest.approx(r1["flatness"], rel=1e-6) and losses == pytest.approx(r1["flat_losses"], rel=1e-6)
    # the losses are the perturbed network's: at the smallest level close to the clean loss
    assert losses[0] == pytest.approx(r1["loss"], rel=0.05)
    # without flatness, no flatness keys and the same accuracy
    plain = PathEvaluator(trained.load(), trained.dataset(), n_eval=120, **BN).score(CELL)
    assert "flatness" not in plain and plain["acc"] == r1["acc"]


def test_supernet_estimator_scores(trained):
    est = SupernetEstimator(trained.load(), trained.dataset(), n_eval=100, score="acc+flatness", flat_weight=2.0, **BN)
    assert est.objective == "valid_genas"
    m = est.estimate(CELL).metrics
    assert set(est.metric_names) == set(m) == {"valid_acc", "valid_loss", "valid_flatness", "valid_genas"}
    assert m["valid_genas"] == pytest.approx(m["valid_acc"] / 100 + 2.0 * m["valid_flatness"] / 0.001)
    assert m["valid_genas"] == pytest.approx(genas_combined(m["valid_acc"] / 100, m["valid_flatness"], weight=2.0))
    assert est.higher_is_better("valid_flatness") and est.higher_is_better("valid_genas")
    acc_only = SupernetEstimator(trained.load(), trained.dataset(), n_eval=100, **BN)
    assert acc_only.objective == "valid_acc" and "valid_flatness" not in acc_only.estimate(CELL).metrics
    assert SupernetEstimator(trained.load(), trained.dataset(), n_eval=100, score="flatness").objective == \
        "valid_flatness"
    with pytest.raises(NasforgeError, match="unknown supernet score 'sharpness'"):
        SupernetEstimator(trained.load(), trained.dataset(), score="sharpness")
    with pytest.raises(NasforgeError, match="bad flat_weight -1"):
        SupernetEstimator(trained.load(), trained.dataset(), score="acc+flatness", flat_weight=-1)
    with pytest.raises(NasforgeError, match="strictly increasing"):
        SupernetEstimator(trained.load(), trained.dataset(), score="flatness", stds=[0.003, 0.001])


def test_search_by_flatness(trained):
    from nasforge.strategies import get_strategy
    from nasforge.study import create_study

    est = trained.estimator(n_eval=60, score="flatness", **BN)
    space = trained.space
    study = create_study("flat", space, metric=est.objective, maximize=True)
    study.optimize(get_strategy("random", space, seed=0), est, n_trials=3)
    vals = [t.metrics["valid_flatness"] for t in study.finished_trials]
    assert len(vals) == 3 and study.best_trial.value == max(vals)


def test_rank_with_flatness_and_scores(trained, tmp_path):
    res = trained.rank(n=4, n_eval=60, flatness=True, out=tmp_path / "r.csv", **BN)
    assert res.flatness is not None and len(res.flatness) == 4 and res.scored_before == 0
    again = trained.rank(n=4, n_eval=60, flatness=True, out=tmp_path / "r.csv", **BN)
    assert again.scored_before == 4 and np.array_equal(again.flatness, res.flatness)
    comb = res.scores("acc+flatness", 0.5)
    assert np.allclose(comb, res.acc / 100 + 0.5 * res.flatness / 0.001)
    assert res.best("flatness") == int(np.argmax(res.flatness))
    plain = trained.rank(n=4, n_eval=60, out=tmp_path / "p.csv", **BN)
    assert plain.flatness is None and np.array_equal(plain.acc, res.acc)
    with pytest.raises(NasforgeError, match="needs flatness"):
        plain.scores("flatness")
    with pytest.raises(NasforgeError, match="unknown supernet score"):
        plain.scores("angle")


def test_rank_result_picks_by_each_score():
    r = RankResult(["a", "b", "c"], np.array([50.0, 40.0, 45.0]), np.array([1.0, 1.0, 1.0]), np.zeros(3), 0,
                   None, 10, "nb201", flatness=np.array([0.0001, 0.0009, 0.0005]))
    assert r.best("acc") == 0 and r.best("flatness") == 1
    assert r.best("acc+flatness", 0.0) == 0 and r.best("acc+flatness", 10.0) == 1


def test_cli_rank_and_search_by_flatness(trained, capsys):
    from nasforge.cli.main import main

    folder = str(trained.folder)
    assert main(["supernet", "rank", "--run", folder, "--n", "3", "--n-eval", "50", "--score", "acc+flatness",
                 "--bn-batches", "1", "--bn-batch-size", "32", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "top-1 by flatness" in out and "top-1 by acc+flatness" in out
    assert main(["supernet", "search", "--run", folder, "--strategy", "random", "--budget", "2", "--n-eval", "50",
                 "--score", "flatness", "--bn-batches", "1", "--bn-batch-size", "32", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "best by supernet valid_flatness" in out and "score=flatness" in out
    assert main(["supernet", "search", "--run", folder, "--budget", "2", "--score", "flatness", "--stds", "0.01,x"]) == 2
    assert "bad --stds '0.01,x'" in capsys.readouterr().err
    assert main(["supernet", "rank", "--run", folder, "--score", "acc+flatness", "--flat-weight", "-1"]) == 2
    assert "bad --flat-weight -1" in capsys.readouterr().err


# --- EVAS: clean training, then the trigger -------------------------------------------------------
def _small(digits, n=200):
    from dataclasses import replace

    return replace(digits, x_train=digits.x_train[:n], y_train=digits.y_train[:n], x_test=digits.x_test[:150],
                   y_test=digits.y_test[:150])


def test_clean_training_attack_leaves_the_trained_network_alone(digits):
    from nasforge.estimation.backdoor import BackdoorEstimator, clean_training_attack

    space, small = get_space("nb201"), _small(digits)
    est = BackdoorEstimator(space, small, batch_size=4, seed=0, net={"C": 4, "N": 1})
    m1, m2 = est.build(space.parse(CELL)), est.build(space.parse(CELL))
    r1 = clean_training_attack(m1, small, epochs=2, trigger_epochs=1, mask_budget=0.2, seed=3)
    r2 = clean_training_attack(m2, small, epochs=2, trigger_epochs=3, mask_budget=0.2, seed=3)
    # the trigger phase never changes the network: same weights, same clean accuracy
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert r1["clean_acc"] == r2["clean_acc"]
    assert all(p.requires_grad for p in m1.parameters())
    for r in (r1, r2):
        assert set(r) == {"clean_acc", "asr", "mask_area", "trigger_loss"} and 0 <= r["asr"] <= 100
        assert 0.1 < r["mask_area"] < 0.35
    # same seed, same result
    r3 = clean_training_attack(est.build(space.parse(CELL)), small, epochs=2, trigger_epochs=1, mask_budget=0.2, seed=3)
    assert r3 == r1
    with pytest.raises(NasforgeError, match="bad target class 10"):
        clean_training_attack(est.build(space.parse(CELL)), small, target=10)
    with pytest.raises(NasforgeError, match="trigger_epochs"):
        clean_training_attack(est.build(space.parse(CELL)), small, trigger_epochs=0)


def test_fitting_the_trigger_raises_asr_against_the_frozen_network(digits):
    """More trigger fitting against the same clean-trained network: the trigger's loss falls."""
    from nasforge.estimation.backdoor import BackdoorEstimator, clean_training_attack

    space, small = get_space("nb201"), _small(digits)
    est = BackdoorEstimator(space, small, batch_size=4, seed=0, net={"C": 4, "N": 1})
    short = clean_training_attack(est.build(space.parse(CELL)), small, epochs=2, trigger_epochs=1, mask_budget=0.3,
                                  trigger_lr=0.05, seed=0)
    long = clean_training_attack(est.build(space.parse(CELL)), small, epochs=2, trigger_epochs=6, mask_budget=0.3,
                                 trigger_lr=0.05, seed=0)
    assert long["trigger_loss"] < short["trigger_loss"]


def test_cli_audit_clean(capsys):
    from nasforge.cli.main import main

    assert main(["audit", CELL, "--C", "4", "--reference", "0", "--repeats", "1", "--train", "clean", "--epochs", "1",
                 "--trigger-epochs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "poisoned_training" not in out
    c = out["clean_training"]
    assert c["epochs"] == 1 and c["trigger_epochs"] == 1 and 0 <= c["asr"] <= 100 and c["clean_acc"] > 0
    assert main(["audit", CELL, "--train", "--trigger-epochs", "3"]) == 2
    assert "--trigger-epochs applies to --train clean only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["audit", CELL, "--train", "dirty"])
    assert "invalid choice: 'dirty'" in capsys.readouterr().err
