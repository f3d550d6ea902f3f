"""MDL-NAS: the multi-domain ViT space, sharing policies, joint search under a budget, no forgetting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasforge.errors import NasforgeError
from nasforge.oneshot.mdl import (TaskData, accuracy, add_task, joint_search, outputs, train_separate,
                                  train_supernet, train_task)
from nasforge.spaces.vit_multidomain import LINEARS, LayerShare, MDLSpace, TaskArch, TaskSpec

torch.set_num_threads(1)


def _task(name: str, shape, patch, seed: int, n: int = 48) -> TaskData:
    g = torch.Generator().manual_seed(seed)
    spec = TaskSpec(name, shape, patch, 3)

    def xy(m):
        y = torch.randint(3, (m,), generator=g)
        x = torch.randn(m, *shape, generator=g) * 0.5 + y.view(-1, 1, 1, 1).float()  # learnable signal
        return x, y

    (a, b), (c, d), (e, f) = xy(n), xy(n // 2), xy(n // 2)
    return TaskData(spec, a, b, c, d, e, f)


@pytest.fixture
def tasks():
    return {"img": _task("img", (1, 8, 8), (4, 4), 0), "vec": _task("vec", (1, 1, 12), (1, 4), 1)}


def _space(tasks) -> MDLSpace:
    return MDLSpace([t.spec for t in tasks.values()], depths=(1, 2), embed_dims=(8, 16), heads=(1, 2),
                    mlp_ratios=(1.0, 2.0), head_dim=4, share_ratios=(0.0, 0.5, 1.0), mask_seeds=3)


def test_param_count_matches_built_module_and_extract_matches_supernet(tasks):
    space = _space(tasks)
    net = space.supernet(0)
    rng = np.random.default_rng(0)
    for _ in range(6):
        arch = space.sample(rng)
        for n, ta in arch.items():
            model = space.build(n, ta)
            assert sum(p.numel() for p in model.parameters()) == space.task_params(n, ta)
            x = tasks[n].x_val[:5]
            assert torch.allclose(net(x, n, ta), net.extract(n, ta)(x), atol=1e-5)
        assert space.parse(space.format(arch)) == arch


def test_storage_counts_shared_weights_once(tasks):
    space = _space(tasks)
    own = {n: space.largest(0.0) for n in tasks}
    st = space.storage(own)
    assert st["shared"] == 0 and st["total"] == st["separate"]
    full = {n: space.largest(1.0) for n in tasks}
    st = space.storage(full)
    per_task_shared = {n: sum(int(u.sum()) for u in space.shared_usage(n, full[n]).values()) for n in tasks}
    # both read the same shared blocks: stored once, so storage = separate - one copy of the blocks
    assert per_task_shared["img"] == per_task_shared["vec"] == st["shared"]
    assert st["total"] == st["separate"] - st["shared"]


def _grads(net, space, task, ta, data):
    net.zero_grad(set_to_none=False)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    F.cross_entropy(net(data.x_train, task, ta), data.y_train).backward()
    return net.shared[0], net.tasks[task].blocks[0]


@pytest.mark.parametrize("mode", ["seq", "mask"])
def test_sharing_touches_only_the_shared_rows(tasks, mode):
    space = _space(tasks)
    net = space.supernet(1)
    ta = space.check_task_arch("img", TaskArch(1, 16, 2, 2.0, (LayerShare(mode, 0.5, 2),)))
    shared, own = _grads(net, space, "img", ta, tasks["img"])
    for lin in LINEARS:
        rows, flags = space.shared_rows(ta, 0, lin)
        cols = space.linear_cols(ta, lin)
        secs = space.linear_rows(ta, lin)
        start = 0
        for sec in secs:  # each section shares round(0.5 * n) rows; sequential: the leading ones
            f = flags[start:start + len(sec)]
            assert f.sum() == round(0.5 * len(sec))
            if mode == "seq":
                assert f[: f.sum()].all()
            start += len(sec)
        sg, og = shared[f"{lin}_w"].grad, own[f"{lin}_w"].grad
        touched_shared = sg.abs().sum(1) > 0
        touched_own = og.abs().sum(1) > 0
        want_shared = torch.zeros(sg.shape[0], dtype=torch.bool)
        want_shared[torch.as_tensor(rows[flags])] = True
        want_own = torch.zeros(og.shape[0], dtype=torch.bool)
        want_own[torch.as_tensor(rows[~flags])] = True
        assert torch.equal(touched_shared, want_shared), lin
        assert torch.equal(touched_own, want_own), lin
        assert sg[:, cols:].abs().sum() == 0 and og[:, cols:].abs().sum() == 0
    if mode == "mask":  # some mask is not the prefix
        masks = [space.shared_rows(ta, 0, lin)[1] for lin in LINEARS]
        assert any(not m[: m.sum()].all() for m in masks)


def test_no_forgetting_when_a_task_is_added(tasks):
    space = MDLSpace([tasks["img"].spec], depths=(1, 2), embed_dims=(8, 16), heads=(1, 2), head_dim=4)
    net = space.supernet(0)
    train_supernet(net, {"img": tasks["img"]}, 3, batch_size=16, seed=0)
    ta = space.largest(0.5)
    before_out = outputs(net, "img", ta, tasks["img"].x_test).clone()
    before_state = {k: v.clone() for k, v in net.state_dict().items()}
    add_task(net, tasks["vec"], seed=5)
    new_init = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("tasks.vec.")}
    losses = train_task(net, "vec", tasks["vec"], 4, batch_size=16, seed=1)
    assert len(losses) == 4
    assert torch.equal(outputs(net, "img", ta, tasks["img"].x_test), before_out)
    after = net.state_dict()
    for k, v in before_state.items():
        assert torch.equal(after[k], v), k
    assert any(not torch.equal(after[k], v) for k, v in new_init.items())  # the new task did learn
    assert all(p.requires_grad for p in net.parameters())  # freezing is undone


def test_joint_search_respects_budget_and_is_deterministic(tasks):
    def run():
        space = _space(tasks)
        net = space.supernet(3)
        train_supernet(net, tasks, 4, batch_size=16, seed=3)
        budget = space.storage({n: space.largest(0.0) for n in tasks})["total"] // 2
        res = joint_search(net, tasks, budget, population=4, cycles=6, sample_size=2, seed=3)
        return space, budget, res, net

    space, budget, res, net = run()
    assert res.storage["total"] <= budget
    assert all(st <= budget for _, st in res.history) and res.evaluations == len(res.history) == 10
    assert res.fitness == pytest.approx(np.mean(list(res.val_acc.values())))
    assert res.val_acc["img"] == accuracy(net, "img", res.arch["img"], tasks["img"])
    _, _, res2, net2 = run()
    assert space.format(res.arch) == space.format(res2.arch) and res.history == res2.history
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), net2.state_dict().values()))


def test_search_with_fixed_tasks_changes_only_the_free_one(tasks):
    space = _space(tasks)
    net = space.supernet(0)
    fixed = {"img": space.smallest()}
    big = space.storage({n: space.largest(0.0) for n in tasks})["total"]
    res = joint_search(net, tasks, big, population=3, cycles=4, sample_size=2, seed=0, fixed=fixed)
    assert res.arch["img"] == space.smallest()


def test_training_learns_and_separate_baseline_is_seeded(tasks):
    space = _space(tasks)
    net = space.supernet(0)
    losses = train_supernet(net, tasks, 30, batch_size=48, lr=5e-3, seed=0)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    ta = space.largest(0.5)
    a = train_separate(space, "img", ta, tasks["img"], 3, seed=2)
    b = train_separate(space, "img", ta, tasks["img"], 3, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_bad_input_is_named(tasks):
    space = _space(tasks)
    net = space.supernet(0)
    with pytest.raises(NasforgeError, match="below the smallest"):
        joint_search(net, tasks, 10, population=2, cycles=0, sample_size=2)
    with pytest.raises(NasforgeError, match="unknown task 'nope'"):
        space.task("nope")
    with pytest.raises(NasforgeError, match="unknown task"):
        space.check({"img": space.smallest(), "vec": space.smallest(), "nope": space.smallest()})
    with pytest.raises(NasforgeError, match="lacks task"):
        space.check({"img": space.smallest()})
    with pytest.raises(NasforgeError, match="share ratio 0.3"):
        space.check_task_arch("img", TaskArch(1, 8, 1, 1.0, (LayerShare("seq", 0.3),)))
    with pytest.raises(NasforgeError, match="sharing mode"):
        space.check_task_arch("img", TaskArch(1, 8, 1, 1.0, (LayerShare("half", 0.5),)))
    with pytest.raises(NasforgeError, match="embed_dim 12"):
        space.check_task_arch("img", TaskArch(1, 12, 1, 1.0, (LayerShare(),)))
    with pytest.raises(NasforgeError, match="one per block"):
        space.check_task_arch("img", TaskArch(2, 8, 1, 1.0, (LayerShare(),)))
    with pytest.raises(NasforgeError, match="heads 3"):
        net(tasks["img"].x_val, "img", TaskArch(1, 8, 3, 1.0, (LayerShare(),)))
    with pytest.raises(NasforgeError, match="unknown task 'vecc'"):
        net(tasks["vec"].x_val, "vecc", space.smallest())
    with pytest.raises(NasforgeError, match="cannot read"):
        space.parse("img=d1-e8")
    with pytest.raises(NasforgeError, match="patch"):
        TaskSpec("x", (1, 8, 8), (3, 3), 10)
    with pytest.raises(NasforgeError, match="already in the space"):
        net.add_task(tasks["img"].spec)
    with pytest.raises(NasforgeError, match="only='img'"):
        train_supernet(net, tasks, 1, only="img")
    with pytest.raises(NasforgeError, match="unknown task"):
        train_supernet(net, {"other": _task("other", (1, 8, 8), (4, 4), 3)}, 1)


def test_run_mdl_protocol_with_an_added_task(tasks):
    from nasforge.oneshot.mdl import run_mdl

    res = run_mdl({"img": tasks["img"]}, steps=3, seed=0, add=tasks["vec"], population=3, cycles=3)
    assert res["storage"]["total"] <= res["budget"]
    assert res["added"]["storage"]["total"] <= res["added"]["budget"]
    assert res["added"]["old_identical"] == {"img": True}
    assert set(res["test_acc"]) == {"img"} and 0 <= res["added"]["test_acc"] <= 100


def test_cli_mdl(capsys):
    from nasforge.cli.main import main

    assert main(["mdl", "--tasks", "digits,digits"]) == 2
    assert "twice" in capsys.readouterr().err
    assert main(["mdl", "--tasks", "digits", "--steps", "2", "--budget", "10"]) == 2
    assert "below the smallest" in capsys.readouterr().err
    assert main(["mdl", "--tasks", "digits", "--steps", "2", "--json"]) == 0
    out = capsys.readouterr().out
    import json

    res = json.loads(out)
    assert res["arch"].startswith("digits=") and res["storage"]["total"] <= res["budget"]
