"""DaSS, the distillation-aware meta-predictor: parameter remapping, fit/predict, the teacher's
effect on predictions, determinism and bad input.

Two tiny real tasks: the digits and the rotated digits (200 training images each), each with a
small NB201 teacher trained one epoch and six C=4 students distilled from it for one epoch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.data import from_arrays, load_digits
from nasforge.data.rotated import load_rotated_digits
from nasforge.errors import NasforgeError
from nasforge.estimation.training import TrainingEstimator
from nasforge.spaces.nb201 import NB201Space
from nasforge.transfer.dass import DaSS, DaSSTask, functional_stats, remap_teacher

SPACE = NB201Space()
TEACHER = SPACE.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
STUDENT = {"C": 4, "N": 1}
FAST = {"student_net": STUDENT, "epochs": 30, "hidden": 16, "probes": 4, "shots": 2}


def _cells(n: int) -> list:
    rng, out = np.random.default_rng(1), []
    while len(out) < n:
        a = SPACE.sample(rng)
        if a not in out:
            out.append(a)
    return out


CELLS = _cells(8)


def _task(name: str, data, n_records: int = 6) -> DaSSTask:
    torch.set_num_threads(1)
    t_est = TrainingEstimator(SPACE, data, max_epochs=1, net={"C": 8, "N": 1}, seed=0, threads=1)
    teacher = t_est.trained_model(TEACHER)
    acc = [TrainingEstimator(SPACE, data, max_epochs=1, net=STUDENT, seed=0, threads=1, teacher=teacher)
           .estimate(a).metrics["valid_acc"] for a in CELLS[:n_records]]
    return DaSSTask(name, data, teacher, CELLS[:n_records], acc)


@pytest.fixture(scope="module")
def tasks() -> list[DaSSTask]:
    rest = (1797 - 200) / 1797 / 2
    return [_task("digits", load_digits(seed=0, val_fraction=rest, test_fraction=rest)),
            _task("rot", load_rotated_digits(seed=0, max_degrees=90, n_train=200))]


def test_remap_copies_teacher_slices(tasks: list[DaSSTask]) -> None:
    teacher = tasks[0].teacher
    student_arch = SPACE.parse("|nor_conv_1x1~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|none~0|skip_connect~1|nor_conv_1x1~2|")
    student = SPACE.build(student_arch, C=4, N=1, num_classes=10, in_channels=1, input_size=8)
    before = functional_stats(student, torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    remap_teacher(teacher, student)
    assert torch.equal(student.stem[0].weight, teacher.stem[0].weight[:4, :1])
    assert torch.equal(student.classifier.weight, teacher.classifier.weight[:, :16])
    assert torch.equal(student.lastact[0].running_var, teacher.lastact[0].running_var[:16])
    # edge 0 is a 1x1 conv; the teacher's edge 0 is a 3x3 conv: the centre tap of its kernel
    assert torch.equal(student.cells[0].layers[0].op[1].weight[:, :, 0, 0],
                       teacher.cells[0].layers[0].op[1].weight[:4, :4, 1, 1])
    # edge 2 is a 3x3 conv on both: the same edge of the teacher's first cell of stage 1
    assert torch.equal(student.cells[0].layers[2].op[1].weight, teacher.cells[0].layers[2].op[1].weight[:4, :4])
    # edge 5 (1x1): the teacher's edge 5 is a 3x3 conv of the first cell of the last stage
    assert torch.equal(student.cells[4].layers[5].op[1].weight[:, :, 0, 0],
                       teacher.cells[4].layers[5].op[1].weight[:16, :16, 1, 1])
    after = functional_stats(student, torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert after.shape == before.shape == (64,) and not np.allclose(after, before)


def test_fit_predict_shapes_and_determinism(tasks: list[DaSSTask]) -> None:
    a = DaSS(SPACE, seed=0, **FAST).fit(tasks[:1])
    p = a.predict(tasks[1], CELLS)
    assert p.shape == (8,) and np.all(np.isfinite(p))
    assert np.array_equal(p, DaSS(SPACE, seed=0, **FAST).fit(tasks[:1]).predict(tasks[1], CELLS))
    assert not np.allclose(p, DaSS(SPACE, seed=1, **FAST).fit(tasks[:1]).predict(tasks[1], CELLS))
    assert a.predict(tasks[1], []).shape == (0,)
    # a refit on other tasks, then back, reuses the cached embeddings and gives the same model
    a.fit(tasks[1:])
    assert np.array_equal(a.fit(tasks[:1]).predict(tasks[1], CELLS), p)
    assert a.embed(tasks[1], CELLS[:3]).shape == (3, 64)
    # meta-training fits its own records: the within-task order is learnt
    both = DaSS(SPACE, seed=0, **{**FAST, "epochs": 150}).fit(tasks)
    fitted = both.predict(tasks[0], tasks[0].archs)
    assert np.corrcoef(fitted, tasks[0].accuracies)[0, 1] > 0.9
    g = DaSS(SPACE, seed=0, normalise="global", **{**FAST, "epochs": 150}).fit(tasks)
    assert abs(g.predict(tasks[0], tasks[0].archs).mean() - tasks[0].accuracies.mean()) < 5.0


def test_teacher_changes_predictions_only_with_teacher_embedding(tasks: list[DaSSTask]) -> None:
    data = tasks[1].dataset
    other = DaSSTask("rot-untrained-teacher", data,
                     TrainingEstimator(SPACE, data, max_epochs=1, net={"C": 8, "N": 1}, seed=3, threads=1).build(TEACHER))
    same = DaSSTask("rot-again", data, tasks[1].teacher)
    dass = DaSS(SPACE, seed=0, **FAST).fit(tasks[:1])
    assert np.array_equal(dass.predict(same, CELLS), dass.predict(tasks[1], CELLS))
    assert not np.allclose(dass.predict(other, CELLS), dass.predict(tasks[1], CELLS))
    base = DaSS(SPACE, use_teacher=False, seed=0, **FAST).fit(tasks[:1])
    assert np.array_equal(base.predict(other, CELLS), base.predict(tasks[1], CELLS))
    # the dataset encoding alone still tells the two tasks apart
    assert not np.allclose(base.predict(tasks[0], CELLS), base.predict(tasks[1], CELLS))


def test_errors(tasks: list[DaSSTask]) -> None:
    t = tasks[0]
    with pytest.raises(NasforgeError, match="at least one task"):
        DaSS(SPACE, **FAST).fit([])
    with pytest.raises(NasforgeError, match="at least 2"):
        DaSS(SPACE, **FAST).fit([DaSSTask("one", t.dataset, t.teacher, CELLS[:1], [50.0])])
    with pytest.raises(NasforgeError, match="not fitted"):
        DaSS(SPACE, **FAST).predict(t, CELLS)
    with pytest.raises(NasforgeError, match="3 architectures but 2 accuracies"):
        DaSSTask("bad", t.dataset, t.teacher, CELLS[:3], [1.0, 2.0])
    with pytest.raises(NasforgeError, match="finite"):
        DaSSTask("bad", t.dataset, t.teacher, CELLS[:2], [1.0, float("nan")])
    with pytest.raises(NasforgeError, match="not an architecture of space 'nb201'"):
        DaSS(SPACE, **FAST).fit([DaSSTask("bad", t.dataset, t.teacher, ["|conv~0|", CELLS[0]], [1.0, 2.0])])
    with pytest.raises(NasforgeError, match="distinct"):
        DaSS(SPACE, **FAST).fit([t, DaSSTask(t.name, t.dataset, t.teacher, t.archs, t.accuracies)])
    vec = from_arrays(np.random.default_rng(0).normal(size=(60, 5)), np.arange(60) % 3, name="vectors")
    with pytest.raises(NasforgeError, match="needs image data"):
        DaSSTask("vec", vec, t.teacher)
    with pytest.raises(NasforgeError, match="torch.nn.Module"):
        DaSSTask("x", t.dataset, "teacher")
    from nasforge.spaces.darts import DartsSpace

    with pytest.raises(NasforgeError, match="space 'darts' is not supported"):
        DaSS(DartsSpace())
    with pytest.raises(NasforgeError, match="unknown probe"):
        DaSS(SPACE, probe="images")
    with pytest.raises(NasforgeError, match="unknown normalise"):
        DaSS(SPACE, normalise="rank")
    five = from_arrays(t.dataset.x_train[:100], t.dataset.y_train[:100] % 5, name="five-classes")
    wrong = DaSSTask("five", five, t.teacher)  # a 10-class teacher on 5-class data
    fitted = DaSS(SPACE, **FAST).fit(tasks[:1])
    with pytest.raises(NasforgeError, match="5 classes"):
        fitted.predict(wrong, CELLS[:2])
    with pytest.raises(NasforgeError, match="NB201 networks"):
        remap_teacher(torch.nn.Linear(3, 3), SPACE.build(CELLS[0], C=4, N=1, num_classes=10, in_channels=1,
                                                          input_size=8))
