"""The supernet run protocol (nasforge.oneshot.run): a split run started from another run's root
(``root_from``, what the supernet benchmark does) trains the same sub-supernets as the split run
trained on its own (what ``nasforge supernet train --split`` does)."""

from __future__ import annotations

import pytest
import torch

from nasforge import NasforgeError
from nasforge.oneshot.run import SupernetRun

SETTINGS = {"space": "nb201", "dataset": "digits", "net": {"C": 4, "N": 1}, "steps": 12, "batch_size": 16, "seed": 3}


def _tensors(obj, prefix=""):
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(_tensors(v, f"{prefix}[{i}]"))
    elif torch.is_tensor(obj):
        out[prefix] = obj
    return out


def _final(folder):
    state = torch.load(folder / "final.pt", map_location="cpu", weights_only=False)
    return _tensors(state["supernets"] if state["kind"] == "split" else state["state"])


def test_keep_root_saves_the_branch_point_and_a_split_run_reuses_it(tmp_path):
    torch.set_num_threads(1)
    spos = SupernetRun(tmp_path / "spos", **SETTINGS)
    spos.train(log=None, keep_root=True)
    root = torch.load(tmp_path / "spos" / "root.pt", map_location="cpu", weights_only=True)
    assert root["step"] == 6  # half of the 12 passes (root_fraction 0.5), not the end of training
    final = torch.load(tmp_path / "spos" / "final.pt", map_location="cpu", weights_only=False)
    assert not all(torch.equal(final["state"][k], root["model"][k]) for k in root["model"])

    reused = SupernetRun(tmp_path / "fewshot-reused", split="fewshot", **SETTINGS)
    r = reused.train(log=None, root_from=tmp_path / "spos")
    assert r.path_passes == 6 + 5 * 1 and not (tmp_path / "fewshot-reused" / "train.ckpt").exists()
    alone = SupernetRun(tmp_path / "fewshot-alone", split="fewshot", **SETTINGS)
    alone.train(log=None)
    a, b = _final(tmp_path / "fewshot-reused"), _final(tmp_path / "fewshot-alone")
    assert a.keys() == b.keys() and len(a) > 0
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_root_from_must_share_the_root_settings(tmp_path):
    SupernetRun(tmp_path / "spos", **SETTINGS).train(log=None, keep_root=True)
    other = SupernetRun(tmp_path / "split", split="fewshot", **{**SETTINGS, "seed": 4})
    with pytest.raises(NasforgeError, match="--seed 3.*not this run's root"):
        other.train(log=None, root_from=tmp_path / "spos")
    with pytest.raises(NasforgeError, match="bad --root-fraction 1.5"):
        SupernetRun(tmp_path / "bad", root_fraction=1.5, **SETTINGS).train(log=None, keep_root=True)
