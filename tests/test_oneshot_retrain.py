"""Training a found DARTS cell from scratch (nasforge.oneshot.differentiable.retrain and
``nasforge oneshot retrain``) on digits with a tiny network (C=2, 3 cells, one epoch)."""

from __future__ import annotations

import json

import pytest
import torch

from nasforge.data import load_dataset
from nasforge.errors import NasforgeError
from nasforge.oneshot.differentiable import search
from nasforge.oneshot.differentiable.retrain import load_retrain_data, resolve_genotype, retrain
from nasforge.spaces import get_space
from nasforge.spaces.darts import GENOTYPES

torch.set_num_threads(1)
NET = {"C": 2, "layers": 3}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_a_found_cell_trains_from_scratch_reproducibly(digits):
    found = search(digits, "darts", "darts", net=NET, epochs=1, steps_per_epoch=1, batch_size=8, seed=0)
    a = retrain(found.genotype, digits, "darts", epochs=1, net=NET, seed=0)
    b = retrain(found.arch, digits, "darts", epochs=1, net=NET, seed=0)
    c = retrain(found.genotype, digits, "darts", epochs=1, net=NET, seed=1)
    assert a["genotype"] == found.genotype == b["genotype"]
    assert a["valid_acc"] == b["valid_acc"] and a["test_acc"] == b["test_acc"]  # same seed, same training
    assert (a["valid_acc"], a["train_loss"]) != (c["valid_acc"], c["train_loss"])
    assert a["valid_acc"] > 20.0  # ten classes: one epoch of training beats chance
    # the evaluation network of the genotype, not the supernet: its closed-form parameter count
    assert a["params"] == get_space("darts").param_count(found.genotype, C=2, layers=3, in_channels=1)
    assert a["epochs"] == 1 and a["net"] == NET and a["lr"] == 0.05


def test_genotypes_resolve_from_names_text_and_run_folders(tmp_path):
    space = get_space("darts")
    v2 = space.format(GENOTYPES["darts_v2"])
    assert resolve_genotype("darts_v2") == v2
    assert resolve_genotype(v2.replace(" ", "")) == v2
    (tmp_path / "result.json").write_text(json.dumps({"space": "darts", "genotype": v2}))
    assert resolve_genotype(str(tmp_path)) == v2
    assert resolve_genotype(str(tmp_path / "result.json")) == v2
    (tmp_path / "nb" ).mkdir()
    (tmp_path / "nb" / "result.json").write_text(json.dumps({"space": "nb201", "genotype": "|skip_connect~0|"}))
    with pytest.raises(NasforgeError, match="searched on the 'nb201' space"):
        resolve_genotype(str(tmp_path / "nb"))
    with pytest.raises(NasforgeError, match="no search result"):
        resolve_genotype(str(tmp_path / "empty.json"))
    with pytest.raises(NasforgeError):
        resolve_genotype("not_a_cell")


def test_bad_settings_are_named(digits):
    with pytest.raises(NasforgeError, match="unknown training setting 'momentum'"):
        retrain("darts_v2", digits, "darts", epochs=1, net=NET, momentum=0.5)
    with pytest.raises(NasforgeError, match="n_val must be"):
        load_retrain_data("cifar10", n_val=0)


def test_cli_retrains_the_cell_a_search_printed(tmp_path, capsys):
    from nasforge.cli.main import main

    run = tmp_path / "d"
    assert main(["oneshot", "search", "--method", "gdas", "--space", "darts", "--run", str(run), "--C", "2",
                 "--layers", "3", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8", "--quiet"]) == 0
    assert "nasforge oneshot retrain" in capsys.readouterr().out
    found = json.loads((run / "result.json").read_text())["genotype"]
    assert main(["oneshot", "retrain", str(run), "--dataset", "digits", "--C", "2", "--layers", "3",
                 "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "valid_acc" in out and "test_acc" in out
    rec = json.loads((run / "retrain.json").read_text())
    assert rec["genotype"] == found and rec["net"] == {"C": 2, "layers": 3}
    assert main(["oneshot", "retrain", "nonsense", "--dataset", "digits", "--epochs", "1"]) == 2
