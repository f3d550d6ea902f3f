"""The command lines of issue 18's methods (``nasforge equivariance search``, ``nasforge energy
search``), their library calls, and BOHB."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nasforge.cli.main import main
from nasforge.errors import NasforgeError
from nasforge.estimation.base import Estimator, Measurement
from nasforge.spaces.choice import ChoiceSpace
from nasforge.strategies import get_strategy
from nasforge.study import Study, load_study
from nasforge.study.energy import parse_hyperparameters

TINY_EQUI = ["--layers", "1", "--planes", "8", "--epochs", "1", "--quiet"]


def test_equivariance_search_re_is_a_resumable_study(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/e.db"
    argv = ["equivariance", "search", "--method", "re", "--groups", "D4,C4,C1", *TINY_EQUI, "--trials", "2",
            "--storage", db, "--out", str(tmp_path / "r.json"), "--compare"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "re (chosen)" in text and "all D4" in text and "nasforge show equi-re-0" in text
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["chosen"]["groups"][0] in ("D4", "C4", "C1") and set(res["uniform"]) == {"D4", "C4", "C1"}
    # a D4 layer of 8 planes: one channel, 9 weights and a bias; the head sees 1 feature
    assert res["uniform"]["D4"]["params"] == 9 + 1 + 10 + 10
    study = load_study("equi-re-0", db)
    assert len(study.finished_trials) == 2 and study.space.name == "equivariant-d4"
    # the same command with a larger trial budget resumes; other settings are refused
    assert main(argv[:-5] + ["--trials", "3", "--storage", db]) == 0
    assert len(load_study("equi-re-0", db).finished_trials) == 3
    assert "resuming study 'equi-re-0' after 2" in capsys.readouterr().out
    assert main(argv[:-5] + ["--epochs", "2", "--storage", db]) == 2
    assert "other settings (epochs" in capsys.readouterr().err


def test_equivariance_search_equinas_with_flips(tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["equivariance", "search", "--method", "equinas-e", "--dataset", "rotated-flipped-digits",
                 "--groups", "D4,C4,D2,C1", *TINY_EQUI, "--generations", "1", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["settings"]["dataset"] == "digits-rot90-flip-8px"
    assert res["chosen"]["groups"][0] in ("D4", "C4", "D2") and res["search"]["history"] in ([], ["layer0->C4"],
                                                                                              ["layer0->D2"])
    assert not (tmp_path / "nasforge.db").exists()
    out = tmp_path / "d.json"
    assert main(["equivariance", "search", "--method", "equinas-d", "--groups", "C4,C1", *TINY_EQUI,
                 "--search-epochs", "1", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert len(res["search"]["alphas"][0]) == 2 and res["chosen"]["groups"][0] in ("C4", "C1")


def test_parse_hyperparameters():
    hp = parse_hyperparameters(["epochs=2,4", "batch_size=64", "optimizer="])
    assert hp == {"lr_scale": [0.3, 1.0, 3.0], "batch_size": [64], "epochs": [2, 4]}
    assert "lr_scale" not in parse_hyperparameters(["lr=0.1,0.01"])
    for bad, msg in ((["epochs=1.5"], "epochs value '1.5'"), (["lr_scale=-1"], "lr_scale value '-1'"),
                     (["label_smoothing=1"], "label_smoothing value '1'"), (["epochs=2,2"], "repeated"),
                     (["lr=0.1", "lr_scale=1"], "either lr or lr_scale"), (["momentum=0.9"], "'momentum'")):
        with pytest.raises(NasforgeError, match=msg):
            parse_hyperparameters(bad)


def test_energy_search_cli(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/e.db"
    argv = ["energy", "search", "--strategy", "rs", "--energy-weight", "-0.3", "--energy-budget", "0.5",
            "--hp", "epochs=1", "--hp", "batch_size=128", "--hp", "optimizer=sgd", "--hp", "lr_scale=1",
            "--n-train", "40", "--C", "2", "--power", "cpu_time", "--storage", db, "--quiet",
            "--out", str(tmp_path / "r.json")]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "declared 10 W per busy core" in text and "chosen (best ea_score)" in text
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["search_energy_j"] >= 0.5 and res["trials"] >= 1 and res["front"]
    best = res["best"]
    assert best["ea_score"] == pytest.approx(best["valid_acc"] * (best["full_train_energy_j"] / 10.0) ** -0.3)
    study = load_study(res["study"], db)
    assert res["study"] == "energy-rs-w-0.3-0" and len(study.finished_trials) == res["trials"]
    assert main(argv[:-2]) == 0  # the budget is spent: resuming trains nothing more
    assert len(load_study(res["study"], db).finished_trials) == res["trials"]


class _Synthetic(Estimator):
    """Score = matches with a target configuration (plus a little fidelity), for BOHB."""

    def __init__(self, space, target):
        self.space, self.target, self.fidelities = space, target, (1.0, 3.0, 9.0)

    def estimate(self, arch, fidelity=None):
        cfg = self.space.config_of(self.space.coerce(arch))
        score = sum(cfg[k] == v for k, v in self.target.items()) + 0.01 * (fidelity or 9.0)
        return Measurement({"score": float(score)}, 1.0, fidelity)

    @property
    def metric_names(self):
        return ["score"]


def test_bohb_models_the_good_configurations():
    space = ChoiceSpace({f"x{i}": list(range(4)) for i in range(6)}, name="grid")
    target = {f"x{i}": 3 for i in range(6)}

    def run(name, seed):
        study = Study(f"{name}-{seed}", space, "score")
        st = get_strategy(name, space, seed=seed, rungs=[1, 3, 9], eta=3)
        study.optimize(st, _Synthetic(space, target), n_trials=90)
        return study, st

    def new_configs(study):  # the score of each configuration when first tried
        seen = {}
        for t in study.trials:
            seen.setdefault(t.arch, t.value - 0.01 * t.fidelity)
        return list(seen.values())

    bohb, st = run("bohb", 0)
    assert st.n_model > 10  # the model chose part of the new configurations
    again, _ = run("bohb", 0)
    assert [t.arch for t in again.trials] == [t.arch for t in bohb.trials]
    hb = [v for seed in range(2) for v in new_configs(run("hyperband", seed)[0])]
    assert np.mean(new_configs(bohb)) > np.mean(hb) + 0.5  # uniform draws match 1.5 of 6 on average
    with pytest.raises(NasforgeError, match="bandwidth"):
        get_strategy("bohb", space, rungs=[1, 3], bandwidth=2.0)
