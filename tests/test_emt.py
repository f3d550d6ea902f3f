"""EMT-NAS (nasforge.transfer.emt): multifactorial evolution over tasks with one supernet per task."""

from __future__ import annotations

import numpy as np
import pytest

from nasforge.data import load_digits, load_mnist1d
from nasforge.errors import NasforgeError
from nasforge.transfer.emt import EMTNAS, class_subset

TINY = dict(population=3, generations=2, steps=3, batch_size=32, bn_batches=1, bn_batch_size=32, n_eval=60,
            net={"C": 4, "N": 1})


@pytest.fixture(scope="module")
def tasks():
    d = load_digits(seed=0)
    return {"low": class_subset(d, range(5)), "high": class_subset(d, range(5, 10))}


@pytest.fixture(scope="module")
def run_a(tasks):
    return EMTNAS(tasks, rmp=1.0, seed=3, **TINY).run(test=True, threads=1)


def test_class_subset_relabels_and_keeps_only_its_classes():
    d = load_digits(seed=0)
    s = class_subset(d, [7, 2], n_train=50)
    assert s.num_classes == 2 and len(s.y_train) == 50
    assert set(np.unique(s.y_val)) == {0, 1}
    assert len(s.y_test) == int(np.isin(d.y_test, [7, 2]).sum())
    # label 0 is the old 7: the same images
    assert np.array_equal(s.x_test[s.y_test == 0], d.x_test[d.y_test == 7])
    with pytest.raises(NasforgeError, match="2 distinct classes"):
        class_subset(d, [3, 3])
    with pytest.raises(NasforgeError, match="class"):
        class_subset(d, [0, 10])


def test_same_seed_same_run(tasks, run_a):
    again = EMTNAS(tasks, rmp=1.0, seed=3, **TINY).run(test=True, threads=1)
    assert again.best == run_a.best and again.best_fitness == run_a.best_fitness
    assert [h["best"] for h in again.history] == [h["best"] for h in run_a.history]
    other = EMTNAS(tasks, rmp=1.0, seed=4, **TINY).run(threads=1)
    assert [h["best"] for h in other.history] != [h["best"] for h in run_a.history]


def test_tracking_test_accuracy_leaves_the_search_unchanged(tasks, run_a):
    res = EMTNAS(tasks, rmp=1.0, seed=3, **TINY).run(test=True, threads=1, track_test=True)
    assert [h["best"] for h in res.history] == [h["best"] for h in run_a.history]
    assert res.best_fitness == run_a.best_fitness
    assert res.history[-1]["best_test"] == res.test_acc == run_a.test_acc


def test_each_task_gets_its_own_best(tasks, run_a):
    assert run_a.tasks == ["low", "high"]
    assert len(run_a.best) == 2 and len(run_a.test_acc) == 2
    last = run_a.history[-1]
    assert last["best"] == run_a.best and last["best_fitness"] == run_a.best_fitness
    assert all(0.0 <= a <= 100.0 for a in run_a.test_acc)
    assert [h["generation"] for h in run_a.history] == [0, 1]
    # every generation: population per task kept, two tasks' supernets trained, offspring scored
    assert sum(run_a.history[1]["children"]) == 6
    assert run_a.history[-1]["train_steps"] == 2 * 2 * TINY["steps"]
    assert run_a.history[0]["evaluations"] == 6  # the first population, 3 per task
    assert 6 < run_a.history[1]["evaluations"] - 6 <= 12  # parents re-scored and children, repeats once


def test_children_train_and_score_in_their_task_supernet(tasks, monkeypatch):
    """Each task's supernet trains the paths of exactly the individuals of that task, cross-task
    children included, and every individual is scored by its task's evaluator."""
    pools, scored = [], []
    orig_train, orig_score = EMTNAS._train, EMTNAS._score

    def train(self, trainers, group, g):
        out = orig_train(self, trainers, group, g)
        pools.append(([list(tr.sampler.pool) for tr in trainers], [dict(i) for i in group]))
        return out

    def score(self, evaluators, group, g):
        for ev in evaluators:
            ev.seen = []
            real = ev.score
            ev.score = lambda idx, ev=ev, real=real: (ev.seen.append(tuple(idx)), real(idx))[1]
        out = orig_score(self, evaluators, group, g)
        scored.append([list(ev.seen) for ev in evaluators])
        for ev in evaluators:
            del ev.score
        return out

    monkeypatch.setattr(EMTNAS, "_train", train)
    monkeypatch.setattr(EMTNAS, "_score", score)
    EMTNAS(tasks, rmp=1.0, seed=3, **TINY).run(threads=1)
    crossed = 0
    for (pool, group), seen in zip(pools, scored):
        for k in range(2):
            mine = [i["idx"] for i in group if i["task"] == k]
            assert pool[k] == mine
            assert set(seen[k]) == set(mine)
        crossed += sum(1 for i in group if i.get("origin") == "cross")
    assert crossed > 0


def _population(emt: EMTNAS, rng: np.random.Generator) -> list[dict]:
    pop = []
    for k in range(2):
        for j in range(10):
            pop.append({"idx": emt._random(rng), "task": k, "fitness": float(j), "measured": float(j),
                        "origin": "initial"})
    emt._ranks(pop)
    return pop


@pytest.mark.parametrize("rmp", [0.0, 0.25, 0.75, 1.0])
def test_cross_task_crossover_rate_follows_rmp(tasks, rmp):
    """Among parent pairs of different tasks, the share that cross over is rmp (none at rmp=0)."""
    emt = EMTNAS(tasks, rmp=rmp, seed=0, **TINY)
    rng = np.random.default_rng(0)
    pop = _population(emt, rng)
    cross = mutated = 0
    for _ in range(150):
        kids = emt._offspring(pop, rng)  # children come in pairs: count pairs
        cross += sum(1 for c in kids if c["origin"] == "cross") // 2
        mutated += sum(1 for c in kids if c["origin"] == "mutation") // 2
        for c in kids:
            assert c["task"] in (0, 1) and emt.layout.valid(c["idx"])
    n = cross + mutated  # pairs of parents from different tasks
    assert n > 500
    if rmp == 0.0:
        assert cross == 0
    elif rmp == 1.0:
        assert mutated == 0
    else:
        assert abs(cross / n - rmp) < 4 * np.sqrt(rmp * (1 - rmp) / n)


def test_rmp_zero_run_has_no_cross_task_children(tasks):
    res = EMTNAS(tasks, rmp=0.0, seed=3, **TINY).run(threads=1)
    assert res.cross_task_children == 0


def test_cross_task_children_join_one_parents_task(tasks):
    """Vertical cultural transmission: a cross-task child takes one parent's task, at random."""
    emt = EMTNAS(tasks, rmp=1.0, seed=0, **TINY)
    rng = np.random.default_rng(1)
    pop = _population(emt, rng)
    got = [c["task"] for _ in range(100) for c in emt._offspring(pop, rng) if c["origin"] == "cross"]
    assert len(got) > 200 and 0.4 < np.mean(got) < 0.6


def test_resume_continues_exactly(tasks, tmp_path, run_a):
    class Stop(Exception):
        pass

    def stop(h):
        if h["generation"] == 0:
            raise Stop

    with pytest.raises(Stop):
        EMTNAS(tasks, rmp=1.0, seed=3, out_dir=tmp_path, **TINY).run(callback=stop, threads=1)
    assert (tmp_path / "state.json").is_file()
    seen = []
    res = EMTNAS(tasks, rmp=1.0, seed=3, out_dir=tmp_path, **TINY).run(test=True, threads=1,
                                                                       callback=lambda h: seen.append(h["generation"]))
    assert seen == [1]  # only the unfinished generation ran
    assert res.best == run_a.best and res.best_fitness == pytest.approx(run_a.best_fitness)
    assert res.test_acc == pytest.approx(run_a.test_acc)
    with pytest.raises(NasforgeError, match="rmp"):
        EMTNAS(tasks, rmp=0.5, seed=3, out_dir=tmp_path, **TINY).run(threads=1)


def test_bad_input(tasks):
    d = list(tasks.values())
    with pytest.raises(NasforgeError, match="at least 2 tasks"):
        EMTNAS(d[:1], **TINY)
    with pytest.raises(NasforgeError, match="rmp"):
        EMTNAS(d, rmp=1.5, **TINY)
    with pytest.raises(NasforgeError, match="rmp"):
        EMTNAS(d, rmp=-0.1, **TINY)
    with pytest.raises(NasforgeError, match="same space"):
        EMTNAS(d, space=["nb201", "darts"], **TINY)
    with pytest.raises(NasforgeError, match="image dataset"):
        EMTNAS({"a": d[0], "v": load_mnist1d(seed=0, n_samples=200)}, **TINY)
    with pytest.raises(NasforgeError, match="names must differ"):
        EMTNAS([d[0], d[0]], **TINY)
    with pytest.raises(NasforgeError, match="population"):
        EMTNAS(d, **{**TINY, "population": 1})
    with pytest.raises(NasforgeError, match="no weight-sharing supernet"):
        EMTNAS(d, space="nbgraph", **TINY)
    with pytest.raises(NasforgeError, match="search space"):
        EMTNAS(d, space="nope", **TINY)


def test_cli_runs_and_resumes(tmp_path, capsys):
    from nasforge.cli.main import main

    argv = ["transfer", "emt", "--task", "digits:0-4", "--task", "digits:5-9", "--population", "3",
            "--generations", "2", "--steps", "3", "--batch-size", "32", "--n-eval", "60", "--net", "C=4",
            "--seed", "1", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "generation 2/2" in out and "digits:0-4: |" in out and "digits:5-9: |" in out
    assert main(argv) == 0  # finished run: nothing left to do, same answer
    again = capsys.readouterr().out
    assert "generation" not in again.split("done in")[0].split("recorded in")[-1]
    assert out.split("best architecture per task")[-1] == again.split("best architecture per task")[-1]


def test_cli_bad_input(capsys):
    from nasforge.cli.main import main
    from nasforge.cli.transfer_emt import parse_task

    assert parse_task("cifar10:0-2,7") == ("cifar10", [0, 1, 2, 7])
    assert parse_task("digits") == ("digits", None)
    assert main(["transfer", "emt", "--task", "digits:0-4"]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert main(["transfer", "emt", "--task", "digits:0-4", "--task", "digits:5-9", "--rmp", "2"]) == 2
    assert "rmp" in capsys.readouterr().err
    with pytest.raises(NasforgeError, match="end is below"):
        parse_task("digits:4-1")
