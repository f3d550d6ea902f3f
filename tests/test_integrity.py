"""Data integrity and a busy machine: non-finite metrics, study names as paths, settings checked
before a study exists, read-only and damaged databases, damaged tables, the cost of resuming BO,
and threads chosen from the cores other processes leave free."""

from __future__ import annotations

import contextlib
import io
import math
import sqlite3

import pytest

from nasforge import NasforgeError
from nasforge.estimation import Estimator, Measurement, load_nb201
from nasforge.spaces import NB201Space
from nasforge.strategies import get_strategy
from nasforge.study import Study, TrialState

SPACE = NB201Space()
WEIGHT = {"none": 0.0, "skip_connect": 0.1, "nor_conv_1x1": 0.5, "nor_conv_3x3": 1.0, "avg_pool_3x3": 0.2}


def objective(arch) -> float:
    return sum(WEIGHT[op] * (1 + 0.01 * i) for i, op in enumerate(arch))


class InfOnPools(Estimator):
    """A synthetic objective that answers ``+inf`` (a diverged or overflowing measure) for every
    cell whose first edge is an average pool: far better than any real value if it were kept."""

    def __init__(self, bad: float = math.inf) -> None:
        self.bad = bad

    @property
    def metric_names(self):
        return ["score", "other"]

    def estimate(self, arch, fidelity=None):
        score = self.bad if arch[0] == "avg_pool_3x3" else objective(arch)
        return Measurement({"score": score, "other": float("inf")}, cost=1.0, fidelity=fidelity)


def _pooled(arch) -> bool:
    return SPACE.coerce(arch)[0] == "avg_pool_3x3"


# --- 1. a +inf metric fails its trial, the same in memory and in storage ------------------------
@pytest.mark.parametrize("bad", [math.inf, float("1e400"), -math.inf])
def test_non_finite_objective_fails_the_trial_identically_after_reload(tmp_path, bad):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study("s", SPACE, "score", storage=url)
    study.optimize(get_strategy("random", SPACE, seed=3), InfOnPools(bad), n_trials=30)
    failed = [t for t in study.trials if t.state is TrialState.FAILED]
    assert failed and all(_pooled(t.arch) for t in failed)
    assert all("score is" in t.error and "inf" in t.error for t in failed)
    assert all(math.isfinite(t.value) for t in study.trials if t.state is TrialState.COMPLETE)
    assert not _pooled(study.best_trial.arch)
    # a non-objective metric that is infinite is kept as a missing value, not as +inf
    done = [t for t in study.trials if t.state is TrialState.COMPLETE]
    assert all(math.isnan(t.metrics["other"]) for t in done)
    reloaded = Study("s", SPACE, "score", storage=url)
    assert [(t.number, t.state, t.value, t.error) for t in reloaded.trials] == \
        [(t.number, t.state, t.value, t.error) for t in study.trials]
    assert reloaded.best_trial.number == study.best_trial.number


@pytest.mark.parametrize("name, kw, fid", [
    ("re", {"population_size": 8, "sample_size": 3}, None),
    ("bo", {"n_init": 5, "n_random": 20, "refit_every": 4}, None),
    ("asha", {"rungs": [1, 3, 9]}, None),
    ("bananas", {"n_init": 6, "k": 3, "epochs": 20}, None),
])
def test_resume_through_inf_results_equals_an_uninterrupted_run(tmp_path, name, kw, fid):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    ref = Study("ref", SPACE, "score")
    ref.optimize(get_strategy(name, SPACE, seed=5, **kw), InfOnPools(), n_trials=24)
    assert any(t.state is TrialState.FAILED for t in ref.trials)  # the case is exercised
    Study("run", SPACE, "score", storage=url).optimize(get_strategy(name, SPACE, seed=5, **kw), InfOnPools(),
                                                       n_trials=12)
    resumed = Study("run", SPACE, "score", storage=url)
    resumed.optimize(get_strategy(name, SPACE, seed=5, **kw), InfOnPools(), n_trials=24)
    assert [(t.arch, t.state, t.value) for t in resumed.trials] == [(t.arch, t.state, t.value) for t in ref.trials]


def test_tables_with_infinite_values_are_refused(tmp_path):
    best = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    other = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    for value in ("inf", "1e400", "-inf"):
        p = tmp_path / f"t{value}.csv"
        p.write_text(f"arch,valid_acc_5\n{other},50\n{best},{value}\n")
        with pytest.raises(NasforgeError, match=r"line 3: column 'valid_acc_5' holds an infinite value"):
            load_nb201(p)
    p = tmp_path / "nan.csv"  # an empty cell is a missing value, as before
    p.write_text(f"arch,valid_acc_5\n{other},50\n{best},\n")
    with pytest.warns(UserWarning, match="holds 2 of the 15,625 cells"):
        assert math.isnan(load_nb201(p).query(best, "valid_acc_5"))


# --- 2. study names --------------------------------------------------------------------------
@pytest.mark.parametrize("name, message", [
    ("../../x", "contains '/'"), ("a/b", "contains '/'"), ("..", "not a folder name"), (".", "not a folder name"),
    ("a\\b", "contains"), ("x" * 256, "too long"),
])
def test_study_names_used_as_folders_stay_inside_the_work_folder(tmp_path, name, message):
    from nasforge.study.task import study_dir

    with pytest.raises(NasforgeError, match=message):
        study_dir(tmp_path, name)
    assert study_dir(tmp_path, "re-digits-seed0") == tmp_path / "re-digits-seed0"


@pytest.mark.parametrize("name, message", [
    ("a\x00b", "control character"), ("x" * 256, "256 characters; at most 255"), ("", "non-empty"),
    ("  ", "non-empty"), (None, "non-empty"), ("a\nb", "control character"),
])
def test_study_names_every_storage_can_hold(name, message):
    with pytest.raises(NasforgeError, match=message):
        Study(name, SPACE, "score")
    assert Study("x" * 255, SPACE, "score").name == "x" * 255


# --- 3. settings are checked before a study exists; all failed is an error ----------------------
def test_bad_training_settings_create_no_study(tmp_path):
    from nasforge.cli.main import main

    db = tmp_path / "t.db"
    for bad in (["--C", "0"], ["--N", "-1"], ["--lr", "-1"], ["--space", "nbgraph"],
                ["--workdir", str(tmp_path / "file.txt" / "sub")]):
        (tmp_path / "file.txt").write_text("x")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["search", "--dataset", "digits", "--study", "t", "--storage", f"sqlite:///{db}", "--quiet",
                         *bad])
        assert code == 2 and len(err.getvalue().strip().splitlines()) == 1, (bad, err.getvalue())
        if db.exists():
            with contextlib.closing(sqlite3.connect(db)) as con:
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                n = con.execute("SELECT COUNT(*) FROM studies").fetchone()[0] if "studies" in tables else 0
            assert n == 0, bad


def test_a_search_whose_every_trial_failed_exits_non_zero(capsys):
    from nasforge.cli.main import _all_failed

    class Broken(Estimator):
        metric_names = ["score"]

        def estimate(self, arch, fidelity=None):
            raise RuntimeError("out of memory")

    study = Study("all-failed", SPACE, "score")
    study.optimize(get_strategy("random", SPACE, seed=0), Broken(), n_trials=3)
    assert _all_failed(study) == 1
    err = capsys.readouterr().err
    assert "all 3 trial(s)" in err and "RuntimeError: out of memory" in err and len(err.strip().splitlines()) == 1
    ok = Study("some-failed", SPACE, "score")
    ok.optimize(get_strategy("random", SPACE, seed=3), InfOnPools(), n_trials=10)
    assert any(t.state is TrialState.FAILED for t in ok.trials) and _all_failed(ok) == 0


# --- 4. read-only and damaged databases ----------------------------------------------------------
@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    from nasforge.estimation import load_benchmark
    from nasforge.study import create_study

    folder = tmp_path_factory.mktemp("ro")
    path = folder / "s.db"
    bench = load_benchmark("nbgraph:cora")
    study = create_study("tab", bench.space, bench.default_metric, storage=f"sqlite:///{path}",
                         config={"search": {"benchmark": "nbgraph:cora", "strategy": "random", "seed": 0}})
    study.optimize(get_strategy("random", bench.space, seed=0), bench, n_trials=6)
    study.storage.close() if hasattr(study.storage, "close") else None
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode=DELETE")
    return path


def _cli(*argv):
    from nasforge.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_show_reads_a_read_only_database_and_search_refuses_it(small_db):
    before = small_db.read_bytes()
    ro = f"sqlite:///file:{small_db}?mode=ro&uri=true"
    code, out, err = _cli("show", "tab", "--storage", ro)
    assert code == 0 and "6 complete trial(s)" in out, err
    code, out, err = _cli("show", "--storage", ro)
    assert code == 0 and "tab" in out
    code, _, err = _cli("search", "--study", "tab", "--budget", "9", "--storage", ro, "--quiet")
    assert code == 2 and "read-only" in err and len(err.strip().splitlines()) == 1
    assert small_db.read_bytes() == before


def test_damaged_database_is_one_line(small_db, tmp_path):
    bad = tmp_path / "bad.db"
    data = bytearray(small_db.read_bytes())
    for i in range(4096, len(data)):  # keep the header page, damage every other page
        data[i] = (i * 37 + 11) % 256
    bad.write_bytes(bytes(data))
    for argv in (["show", "tab"], ["show"], ["search", "--study", "tab", "--budget", "9", "--quiet"]):
        code, _, err = _cli(*argv, "--storage", f"sqlite:///{bad}")
        assert code == 2 and "malformed" in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_show_creates_no_database_and_a_misspelled_study_is_named(small_db, tmp_path):
    new = tmp_path / "new.db"
    code, _, err = _cli("show", "--storage", f"sqlite:///{new}")
    assert code == 2 and "new.db" in err and not new.exists()
    code, _, err = _cli("search", "--study", "tba", "--storage", f"sqlite:///{small_db}", "--quiet")
    assert code == 2 and "no study 'tba'" in err and "studies: 'tab'" in err


# --- 5. damaged tables -------------------------------------------------------------------------
def _table_rows(n: int) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(0)
    archs: list[str] = []
    while len(archs) < n:
        a = SPACE.format(SPACE.sample(rng))
        if a not in archs:
            archs.append(a)
    return archs


def test_damaged_tables_are_refused(tmp_path):
    archs = _table_rows(30)
    body = "".join(f"{a},{50 + i / 10},{40 + i / 10}\n" for i, a in enumerate(archs))
    whole = "arch,valid_acc_12,valid_acc_200\n" + body
    p = tmp_path / "cut.csv"
    p.write_text(whole[: len(whole) - 9])  # cut off mid-line
    with pytest.raises(NasforgeError, match=r"line 31: 2 field\(s\), the header has 3 \(the file may be cut off\)"):
        load_nb201(p)
    p = tmp_path / "dup.csv"
    p.write_text("arch,valid_acc_12,valid_acc_12\n" + body)
    with pytest.raises(NasforgeError, match="column 'valid_acc_12' appears twice in the header"):
        load_nb201(p)
    p = tmp_path / "extra.csv"
    p.write_text(whole + f"{archs[0]},1,2,3\n")
    with pytest.raises(NasforgeError, match="line 32: 4 field"):
        load_nb201(p)
    p.write_text(whole)
    with pytest.warns(UserWarning, match="holds 30 of the 15,625 cells"):
        assert len(load_nb201(p)) == 30


def test_a_partial_table_is_searched_only_where_it_holds_values(tmp_path):
    from nasforge.study.task import build_task, strategy_settings

    archs = _table_rows(40)
    p = tmp_path / "part.csv"
    p.write_text("arch,valid_acc_12,valid_acc_200\n" + "".join(
        f"{a},{50 + (i * 7) % 40},{40 + (i * 11) % 50}\n" for i, a in enumerate(archs)))
    with pytest.warns(UserWarning, match="holds 40 of the 15,625 cells") as caught:
        task = build_task({"benchmark": f"nb201:{p}", "strategy": "re", "seed": 0}, None, None)
    assert len(caught) == 1  # once, with the count
    assert "40 of the 15,625 architectures" in task.description
    for name in ("random", "re", "ls", "bo", "asha"):
        settings = {"strategy": name, "seed": 1, "params": {}}
        st = get_strategy(name, task.space, seed=1, feasible=task.strategy_feasible(None),
                          **strategy_settings(settings, task))
        study = Study(name, task.space, task.metric)
        study.optimize(st, task.estimator, n_trials=30)
        failed = [t.error for t in study.trials if t.state is TrialState.FAILED]
        assert not any("not in benchmark" in (e or "") for e in failed), (name, failed[:2])
        assert {str(t.arch) for t in study.trials} <= set(archs)


# --- 7. resuming BO does not refit the model per stored trial -----------------------------------
def test_bo_resume_restores_the_recorded_model_instead_of_refitting(tmp_path, monkeypatch):
    from nasforge.strategies.bo import GaussianProcess

    calls = {"n": 0}
    fit = GaussianProcess.fit

    def counting(self, C, y, optimize=True):
        calls["n"] += bool(optimize)
        return fit(self, C, y, optimize=optimize)

    monkeypatch.setattr(GaussianProcess, "fit", counting)

    class Bench(Estimator):
        metric_names = ["score"]

        def estimate(self, arch, fidelity=None):
            return Measurement({"score": objective(arch)}, 1.0)

    cfg = {"kernel": "tw2", "n_init": 5, "n_random": 25, "refit_every": 2}
    url = f"sqlite:///{tmp_path / 'bo.db'}"
    ref = Study("ref", SPACE, "score")
    ref.optimize(get_strategy("bo", SPACE, seed=4, **cfg), Bench(), n_trials=30)
    full = calls["n"]
    Study("run", SPACE, "score", storage=url).optimize(get_strategy("bo", SPACE, seed=4, **cfg), Bench(), n_trials=26)
    calls["n"] = 0
    resumed = Study("run", SPACE, "score", storage=url)
    resumed.optimize(get_strategy("bo", SPACE, seed=4, **cfg), Bench(), n_trials=30)
    assert [t.arch for t in resumed.trials] == [t.arch for t in ref.trials]
    # replaying 26 stored trials refits nothing; the 4 new ones refit every second trial
    assert calls["n"] <= 3 < full


# --- issue 19: threads from the free cores ---------------------------------------------------------
def test_free_cores_leaves_the_busy_ones(monkeypatch):
    import os

    from nasforge.estimation import training

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(training, "_cgroup_cpus", lambda: None)
    for load, now, free in ((0.0, 0.1, 2), (0.4, 0.2, 2), (1.0, 0.3, 1), (0.2, 1.1, 1), (3.5, 2.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        monkeypatch.setattr(training, "_busy_cpus", lambda seconds, now=now: now)
        assert training.free_cores() == free, (load, now)
        assert training.LAST_CORES == {"usable": 2, "busy": round(max(load, now), 2), "free": free}
    monkeypatch.setattr(training, "_cgroup_cpus", lambda: 1.5)  # a CPU quota caps the usable cores
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(training, "_busy_cpus", lambda seconds: 0.0)
    assert training.free_cores() == 2 and training.LAST_CORES["usable"] == 2
    monkeypatch.setattr(training, "_cgroup_cpus", lambda: 1.0)
    assert training.free_cores() == 1


def test_training_takes_its_threads_from_the_free_cores(monkeypatch):
    import torch

    from nasforge.data import load_digits
    from nasforge.estimation import training

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(training, "free_cores", lambda sample=0.2: 1)
        monkeypatch.setattr(training.TrainingEstimator, "_threads_set", False, raising=False)
        training.TrainingEstimator(SPACE, load_digits(seed=0), max_epochs=1, net={"C": 2, "N": 1})
        assert torch.get_num_threads() == 1
        training.TrainingEstimator(SPACE, load_digits(seed=0), max_epochs=1, net={"C": 2, "N": 1}, threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_search_says_its_threads_in_the_opening_line(tmp_path):
    code, out, err = _cli("search", "--dataset", "digits", "--budget", "1", "--epochs", "1", "--C", "2",
                          "--n-train", "200", "--storage", ":memory:", "--workdir", str(tmp_path), "--quiet")
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("study 're-digits-seed0'") and "torch thread(s)" in first and "core(s)" in first
