"""Transfer across tasks: the task bank, TNAS's meta-learned deep-kernel GP and AutoTransfer priors.

Tasks are synthetic tables over the NB201 space (no data folder needed): a score that adds one
weight per (edge, operation), shared between related tasks up to a task-specific perturbation,
so how well a method transfers is known in advance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from nasforge.cli.main import main
from nasforge.errors import NasforgeError
from nasforge.estimation.registry import register_benchmark, unregister_benchmark
from nasforge.estimation.tabular import TabularBenchmark
from nasforge.spaces.nb201 import NB201Space
from nasforge.spaces.nbgraph import NBGraphSpace
from nasforge.strategies import get_strategy
from nasforge.study import create_study
from nasforge.transfer import (TNAS, BankTask, MetaSurrogate, PriorSearch, TaskBank, anchors, design_prior,
                               embedding, task_from_study)

SPACE = NB201Space()
ARCHS = list(SPACE)
ONEHOT = np.vstack([SPACE.encode(a) for a in ARCHS])  # (15625, 30): 6 edges x 5 ops


def table(task: int, similarity: float = 0.9, sign: float = 1.0) -> TabularBenchmark:
    """A synthetic task: shared per-(edge, op) weights mixed with the task's own, plus a pair term."""
    base = np.random.default_rng(0).normal(size=30)
    own = np.random.default_rng(100 + task).normal(size=30)
    w = sign * (similarity * base + (1 - similarity) * own)
    score = ONEHOT @ w + 0.3 * (ONEHOT[:, 3] * ONEHOT[:, 8])
    valid = 60 + 5 * score
    return TabularBenchmark(SPACE, ARCHS, {"valid_acc": valid, "test_acc": valid + 0.1},
                            name=f"synth:t{task}", default_metric="valid_acc", report_metric="test_acc")


def finished_study(bench: TabularBenchmark, n: int = 200, name: str | None = None, storage=None):
    st = create_study(name or bench.name, bench.space, "valid_acc", storage=storage,
                      config={"search": {"benchmark": bench.name}})
    st.optimize(get_strategy("random", bench.space, seed=1), bench, n_trials=n, progress=False)
    return st


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- the bank ------------------------------------------------------------------------------------
def test_bank_task_from_a_finished_study_keeps_every_result_and_its_direction():
    bench = table(1)
    st = finished_study(bench, 30)
    task = task_from_study(st)
    assert task.label == "synth:t1" and task.metric == "valid_acc" and task.maximize and len(task) == 30
    for a, s in zip(task.archs, task.scores):
        assert s == pytest.approx(bench.query(a, "valid_acc"))
    assert task.top(1)[0][1] == max(task.scores)
    # a minimised metric is negated, so that higher is better for every task
    low = create_study("low", SPACE, "valid_acc", maximize=False)
    low.optimize(get_strategy("random", SPACE, seed=1), bench, n_trials=10, progress=False)
    lt = task_from_study(low)
    assert not lt.maximize and np.allclose(lt.values(), [bench.query(a, "valid_acc") for a in lt.archs])
    assert lt.top(1)[0][0] == min(lt.archs, key=lambda a: bench.query(a, "valid_acc"))


def test_bank_errors_name_what_is_wrong():
    bench = table(1)
    empty = create_study("empty", SPACE, "valid_acc")
    with pytest.raises(NasforgeError, match="no complete trials.*0 trials"):
        task_from_study(empty)
    st = finished_study(bench, 10)
    with pytest.raises(NasforgeError, match="mismatched metrics"):
        task_from_study(st, metric="test_acc")
    bank = TaskBank([task_from_study(st)])
    with pytest.raises(NasforgeError, match=r"no task in the bank searched space nbgraph\(ops='full'\).*nb201"):
        bank.compatible(NBGraphSpace("full"), "valid_perf")
    with pytest.raises(NasforgeError, match="mismatched metrics.*'train_acc'.*valid_acc"):
        bank.compatible(SPACE, "train_acc")
    with pytest.raises(NasforgeError, match="target itself"):
        bank.compatible(SPACE, "valid_acc", exclude=["synth:t1"])
    with pytest.raises(NasforgeError, match="already holds"):
        bank.add(task_from_study(st))
    with pytest.raises(NasforgeError, match="empty"):
        TaskBank().compatible(SPACE)
    # the two NAS-Bench-Graph spaces are different spaces for the bank
    g = BankTask("g", NBGraphSpace("proteins"), "nbgraph:proteins", "valid_perf", True,
                 [NBGraphSpace("proteins").sample(np.random.default_rng(0))], np.array([0.5]))
    with pytest.raises(NasforgeError, match="no task in the bank searched space nbgraph\\(ops='full'\\)"):
        TaskBank([g]).compatible(NBGraphSpace("full"))


def test_bank_from_a_storage_skips_unusable_studies_only_when_reading_everything(tmp_path):
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    finished_study(table(1), 20, "a", url)
    finished_study(table(2), 20, "b", url)
    create_study("none", SPACE, "valid_acc", storage=url)
    bank = TaskBank.from_storage(url, skip_unusable=True)
    assert [t.name for t in bank] == ["a", "b"]
    with pytest.raises(NasforgeError, match="'none' has no complete trials"):
        TaskBank.from_storage(url, names=["a", "none"])
    with pytest.raises(NasforgeError, match="no study 'zz'"):
        TaskBank.from_storage(url, names=["zz"])


# --- TNAS ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def meta():
    sources = [table(1), table(2)]
    bank = TaskBank(task_from_study(finished_study(b, 150)) for b in sources)
    return MetaSurrogate(SPACE, bank.compatible(SPACE, "valid_acc"), meta_steps=150, hidden=32, seed=0).fit()


def test_meta_training_learns_the_sources_and_is_seeded(meta):
    assert np.mean(meta.meta_loss[-20:]) < np.mean(meta.meta_loss[:20]) - 0.3
    sample = ARCHS[::37]
    m = meta.for_target().prior_mean(sample)
    target = table(3)  # a related task never seen in training
    tau = kendalltau(m, [target.query(a, "valid_acc") for a in sample])[0]
    assert tau > 0.6
    again = MetaSurrogate(SPACE, meta.tasks, meta_steps=150, hidden=32, seed=0).fit()
    assert np.array_equal(again.for_target().prior_mean(sample), m)
    # a search's copy is fine-tuned without touching the meta-model
    tm = meta.for_target()
    tm.finetune(sample[:10], [target.query(a, "valid_acc") for a in sample[:10]], steps=5, lr=1e-2)
    assert np.array_equal(meta.for_target().prior_mean(sample), m)
    assert not np.array_equal(tm.prior_mean(sample), m)


def test_tnas_warm_starts_near_the_top_and_beats_random_search(meta):
    target = table(3)
    vals = target.values("valid_acc")
    best_tnas, best_rs = [], []
    for seed in range(3):
        st = create_study(f"tn{seed}", SPACE, "valid_acc")
        st.optimize(TNAS(SPACE, meta, seed=seed, n_warm=3, n_random=60, warm_pool=2000), target, n_trials=12,
                    progress=False)
        assert [t.info["phase"] for t in st.trials[:3]] == ["warm"] * 3
        assert all(target.fraction_better("valid_acc", t.value) < 5.0 for t in st.trials[:3])  # top 5 %
        assert [t.info["phase"] for t in st.trials[5:]] == ["tnas"] * 7
        best_tnas.append(max(t.value for t in st.trials))
        rs = create_study(f"rs{seed}", SPACE, "valid_acc")
        rs.optimize(get_strategy("random", SPACE, seed=seed), target, n_trials=12, progress=False)
        best_rs.append(max(t.value for t in rs.trials))
    assert min(best_tnas) > max(best_rs)
    assert np.mean(vals >= min(best_tnas)) < 0.01


def test_tnas_same_seed_same_search_and_resume_by_replay(meta, tmp_path):
    target = table(3)

    def strategy():
        return TNAS(SPACE, meta, seed=4, n_warm=2, n_random=40, warm_pool=1000, finetune_steps=5)

    url = f"sqlite:///{tmp_path / 's.db'}"
    whole = create_study("whole", SPACE, "valid_acc", storage=url)
    whole.optimize(strategy(), target, n_trials=9, progress=False)
    part = create_study("part", SPACE, "valid_acc", storage=url)
    part.optimize(strategy(), target, n_trials=5, progress=False)
    resumed = create_study("part", SPACE, "valid_acc", storage=url, load_if_exists=True)
    resumed.optimize(strategy(), target, n_trials=9, progress=False)
    assert [t.arch for t in resumed.trials] == [t.arch for t in whole.trials]
    other = MetaSurrogate(SPACE, meta.tasks[:1], meta_steps=10, hidden=32, seed=0)
    with pytest.raises(NasforgeError, match="different strategy.*surrogate"):
        create_study("part", SPACE, "valid_acc", storage=url, load_if_exists=True).optimize(
            TNAS(SPACE, other, seed=4, n_warm=2, n_random=40, warm_pool=1000, finetune_steps=5), target, n_trials=10,
            progress=False)


def test_tnas_checks_its_settings(meta):
    with pytest.raises(NasforgeError, match="MetaSurrogate"):
        TNAS(SPACE, object())
    with pytest.raises(NasforgeError, match="meta-model was trained on space nb201"):
        TNAS(NBGraphSpace("full"), meta)
    with pytest.raises(NasforgeError, match="n_warm"):
        TNAS(SPACE, meta, n_warm=-1)
    with pytest.raises(NasforgeError, match="at least one source task"):
        MetaSurrogate(SPACE, [])
    with pytest.raises(NasforgeError, match="no encoding 'nope'"):
        MetaSurrogate(SPACE, meta.tasks, encoding="nope")


# --- AutoTransfer priors --------------------------------------------------------------------------
def test_design_prior_weights_the_task_that_ranks_the_anchors_alike():
    near, far = table(1, 0.9), table(2, 0.9, sign=-1.0)  # far: the opposite ranking
    tasks = [task_from_study(finished_study(near, 120)), task_from_study(finished_study(far, 120))]
    target = table(3)
    anc = anchors(SPACE, 8, seed=0)
    assert anc == anchors(SPACE, 8, seed=0) and len(set(anc)) == 8
    emb = embedding([target.query(a, "valid_acc") for a in anc])
    prior, neighbours = design_prior(tasks, emb, anc, n_neighbors=2, top_k=5)
    assert [n for n, _, _ in neighbours] == [tasks[0].name, tasks[1].name]
    assert neighbours[0][2] > 0.9 and neighbours[0][1] < neighbours[1][1]
    assert sum(w for _, w in prior) == pytest.approx(1.0)
    heavy = [a for a, w in prior if w > 0.1]
    assert set(heavy) <= {a for a, _ in tasks[0].top(5)}


def test_prior_search_evaluates_anchors_then_samples_good_designs():
    tasks = [task_from_study(finished_study(table(1), 120)), task_from_study(finished_study(table(2), 120))]
    target = table(3)
    vals = target.values("valid_acc")
    for base in ("re", "random"):
        st = create_study(f"p-{base}", SPACE, "valid_acc")
        strat = PriorSearch(SPACE, tasks, base=base, n_anchors=6, seed=0, population_size=10, sample_size=3)
        st.optimize(strat, target, n_trials=30, progress=False)
        phases = [t.info.get("phase") for t in st.trials]
        assert phases[:6] == ["anchor"] * 6 and [t.arch for t in st.trials[:6]] == [SPACE.format(a) for a in
                                                                                   anchors(SPACE, 6, 0)]
        later = np.array([t.value for t in st.trials[6:16]])
        assert later.mean() > np.percentile(vals, 80)  # prior draws are far better than uniform ones
        if base == "re":
            assert "evolve" in phases[16:]
        else:
            assert set(phases[6:]) == {"prior"}
    # same seed, same search; the config names the bank
    a = PriorSearch(SPACE, tasks, seed=3)
    b = PriorSearch(SPACE, tasks, seed=3)
    for s in (a, b):
        for _ in range(15):
            sug = s.ask()
            s.tell(sug, target.query(sug.arch, "valid_acc"))
    assert a.best_arch == b.best_arch and a.config() == b.config() and len(a.config()["bank"]) == 2
    with pytest.raises(NasforgeError, match="unknown prior search base 'x'"):
        PriorSearch(SPACE, tasks, base="x")
    with pytest.raises(NasforgeError, match="searched space nb201, not nbgraph"):
        PriorSearch(NBGraphSpace("full"), tasks)


# --- the command line ----------------------------------------------------------------------------
@pytest.fixture
def synth_family():
    register_benchmark("synth", lambda name, data_dir: table(int(name[1:])), help="t<N>")
    yield
    unregister_benchmark("synth")


def test_cli_transfer_bank_and_search(tmp_path, capsys, synth_family):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["search", "--benchmark", "synth:t1", "--strategy", "random", "--budget", "60", "--study", "s1",
                 "--storage", url, "--quiet"]) == 0
    assert main(["transfer", "bank", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "task bank: 1 study" in out and "synth:t1" in out and "valid_acc" in out
    argv = ["transfer", "search", "--benchmark", "synth:t3", "--method", "prior-re", "--budget", "14", "--storage",
            url, "--quiet", "--study", "p"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "bank: 1 task(s)" in out and "prior from: s1" in out and "14 complete trial(s)" in out
    argv[argv.index("14")] = "18"  # resume with a larger budget: same bank, 4 more trials
    assert main(argv) == 0
    assert "resuming after 14 trial(s)" in capsys.readouterr().out
    # bad input: one line, exit 2
    assert main(["transfer", "search", "--benchmark", "synth:t1", "--bank-study", "s1", "--storage", url]) == 2
    assert "target itself" in capsys.readouterr().err
    assert main(["transfer", "search", "--benchmark", "nbgraph:cora", "--bank-study", "s1", "--storage", url]) == 2
    assert "mismatched metrics" in capsys.readouterr().err
    assert main(["transfer", "bank", "--storage", url, "--bank-study", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no study 'nope'" in err and len(err.strip().splitlines()) == 1


# --- growing data (AdaXpert) ----------------------------------------------------------------------
def test_growing_snapshots_are_nested_and_keep_their_classes():
    from nasforge.data import load_digits
    from nasforge.transfer.adaxpert import data_shift, growing_snapshots

    d = load_digits(seed=0)
    vol = growing_snapshots(d, [100, 200, 400], seed=1)
    assert [len(s.y_train) for s in vol] == [100, 200, 400]
    for a, b in zip(vol, vol[1:]):  # nested: every earlier training image is still there
        rows = {x.tobytes() for x in b.x_train}
        assert all(x.tobytes() in rows for x in a.x_train)
    sh = data_shift(vol[0], vol[1])
    assert sh["new_fraction"] == pytest.approx(0.5) and sh["class_tv"] < 0.15
    cls = growing_snapshots(d, [150, 300], [3, 6], seed=1)
    assert set(cls[0].y_train) == {0, 1, 2} and cls[0].num_classes == 3 and set(cls[0].y_test) == {0, 1, 2}
    assert set(cls[1].y_train) == set(range(6)) and set(cls[1].y_val) == set(range(6))
    shc = data_shift(cls[0], cls[1])
    assert shc["class_tv"] > 0.4 and shc["extent"] >= shc["class_tv"]
    with pytest.raises(NasforgeError, match="snapshots must grow"):
        growing_snapshots(d, [200, 100])
    with pytest.raises(NasforgeError, match="asks for more than"):
        growing_snapshots(d, [100, 500], [2, 2])


def test_adjuster_follows_the_extent_and_the_condition_skips_small_shifts():
    from nasforge.transfer.adaxpert import adaxpert, adjust

    arch = SPACE.parse("|skip_connect~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|nor_conv_1x1~1|skip_connect~2|")
    rng = np.random.default_rng(0)
    small, large = adjust(SPACE, arch, 0.1, rng, 6), adjust(SPACE, arch, 0.9, rng, 6)
    assert len(small) == 1 and len(large) == 6 and set(large) <= set(SPACE.neighbors(arch))
    f0 = SPACE.flops(arch)
    assert all(SPACE.flops(a) > f0 for a in large[:3])  # a large shift grows the cell first
    with pytest.raises(NasforgeError, match="extent"):
        adjust(SPACE, arch, 1.5, rng)
    target = table(3)
    calls = []

    def evaluate(a, k):
        calls.append((SPACE.format(a), k))
        return {"valid_acc": target.query(a, "valid_acc")}

    shifts = [{"extent": 0.05, "class_tv": 0.0, "new_fraction": 0.05}, {"extent": 0.6, "class_tv": 0.3,
                                                                         "new_fraction": 0.4}]
    recs = adaxpert(SPACE, 3, evaluate, arch, shifts, threshold=0.2, max_candidates=4, seed=0)
    assert [r["adapted"] for r in recs] == [False, True] and [r["evaluations"] for r in recs] == [1, 4]
    assert recs[0]["arch"] == SPACE.format(arch) and not recs[0]["changed"]
    assert recs[1]["metrics"]["valid_acc"] == max(v for (a, k), v in
                                                   ((c, target.query(c[0], "valid_acc")) for c in calls) if k == 2)
    with pytest.raises(NasforgeError, match="need 2 data shifts"):
        adaxpert(SPACE, 3, evaluate, arch, shifts[:1])
