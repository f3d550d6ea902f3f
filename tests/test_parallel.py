"""Core v2: ask/tell, executors, several processes on one study, stale trials, schema versions."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from nasforge import NasforgeError
from nasforge.estimation import Estimator, Measurement
from nasforge.spaces import NB201Space
from nasforge.strategies import get_strategy
from nasforge.study import Study, TrialState, create_study, get_storage, load_study
from nasforge.study.storage import SCHEMA_VERSION

SPACE = NB201Space()
SCORE = {"none": 0, "skip_connect": 1, "nor_conv_1x1": 3, "nor_conv_3x3": 4, "avg_pool_3x3": 2}
TESTS = os.path.dirname(__file__)


class Synthetic(Estimator):
    """Deterministic; cost = 1 + (score mod 5) simulated seconds; fails on a 'none' first edge if asked."""

    def __init__(self, delay=0.0, fail_none=False):
        self.delay, self.fail_none = delay, fail_none

    @property
    def metric_names(self):
        return ["acc"]

    def estimate(self, arch, fidelity=None):
        if self.delay:
            time.sleep(self.delay)
        if self.fail_none and arch[0] == "none":
            raise RuntimeError("diverged")
        s = sum(SCORE[o] * (i + 1) for i, o in enumerate(arch))
        return Measurement({"acc": float(s)}, cost=1.0 + s % 5)


def archs(study, state=None):
    return [t.arch for t in study.trials if state is None or t.state is state]


def test_ask_tell_by_hand_equals_optimize():
    est = Synthetic()
    ref = Study("ref", SPACE, "acc").optimize(get_strategy("re", SPACE, seed=4), est, n_trials=50)
    st = create_study("hand", SPACE, "acc")
    strategy = get_strategy("re", SPACE, seed=4)
    for i in range(50):
        trial = st.ask(strategy if i == 0 else None)
        assert trial.state is TrialState.RUNNING and trial.number == i
        st.tell(trial, est.estimate(trial.suggestion.arch))
    assert archs(st) == archs(ref)
    assert st.best_trial.value == ref.best_trial.value


def test_tell_accepts_numbers_dicts_failures_and_pruning():
    st = create_study("t", SPACE, "acc")
    a, b, c, d, e = (st.ask() for _ in range(5))
    st.tell(a, 3.5)
    st.tell(b, {"acc": 2.0, "other": 1.0})
    st.tell(c, RuntimeError("out of memory"))
    st.tell(d, None)
    st.tell(e.number, 1.0, state="pruned")
    states = [t.state for t in st.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAILED, TrialState.FAILED,
                      TrialState.PRUNED]
    assert st.trials[2].error == "RuntimeError: out of memory" and st.best_trial.number == 0
    with pytest.raises(NasforgeError, match="is complete, not running"):
        st.tell(a, 1.0)
    with pytest.raises(NasforgeError, match="unknown trial state 'done'"):
        st.tell(st.ask(), 1.0, state="done")
    with pytest.raises(NasforgeError, match="cannot read a result"):
        st.tell(st.ask(), "high")


def test_create_and_load_study(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    st = create_study("a", SPACE, "acc", maximize=False, storage=url)
    st.optimize(get_strategy("random", SPACE, seed=0), Synthetic(), n_trials=5)
    with pytest.raises(NasforgeError, match="already exists"):
        create_study("a", SPACE, "acc", storage=url)
    again = create_study("a", SPACE, "acc", maximize=False, storage=url, load_if_exists=True)
    assert len(again.trials) == 5
    loaded = load_study("a", url)
    assert loaded.space.name == "nb201" and loaded.metric == "acc" and loaded.maximize is False
    assert [t.arch for t in loaded.trials] == [t.arch for t in st.trials]
    with pytest.raises(NasforgeError, match="no study 'b' in .*studies: a"):
        load_study("b", url)


def test_simulated_clock_orders_results_by_finishing_time():
    est = Synthetic()
    runs = []
    for _ in range(2):
        st = Study("sim", SPACE, "acc")
        st.optimize(get_strategy("re", SPACE, seed=1, population_size=8, sample_size=3), est, n_trials=60,
                    n_workers=4, executor="simulated")
        runs.append(st)
    assert archs(runs[0]) == archs(runs[1])  # deterministic
    trials = runs[0].trials
    assert all(t.state is TrialState.COMPLETE for t in trials) and len(trials) == 60
    # the first four start at 0; every trial occupies its worker for exactly its cost
    assert [t.info["sim_start"] for t in trials[:4]] == [0.0] * 4
    for t in trials:
        assert t.info["sim_end"] - t.info["sim_start"] == pytest.approx(t.cost)
    # never more than 4 at once
    events = sorted([(t.info["sim_start"], 1) for t in trials] + [(t.info["sim_end"], -1) for t in trials],
                    key=lambda e: (e[0], e[1]))
    busy = peak = 0
    for _, d in events:
        busy += d
        peak = max(peak, busy)
    assert peak == 4
    # results were told in finishing order: tell_seq increases with sim_end
    told = sorted(trials, key=lambda t: t.tell_seq)
    ends = [t.info["sim_end"] for t in told]
    assert ends == sorted(ends)
    # the simulated wall-clock of 4 workers is about a quarter of the serial cost
    assert max(ends) < sum(t.cost for t in trials) / 4 + 5


@pytest.mark.parametrize("executor", ["thread", "simulated"])
def test_parallel_run_resumes_by_replaying_the_told_order(tmp_path, executor):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    est = Synthetic(delay=0.005 if executor == "thread" else 0.0)
    st = Study("p", SPACE, "acc", storage=url)
    st.optimize(get_strategy("re", SPACE, seed=2, population_size=10, sample_size=3), est, n_trials=40,
                n_workers=4, executor=executor)
    assert sorted(t.number for t in st.trials) == list(range(40))
    assert all(t.state is TrialState.COMPLETE for t in st.trials)
    st.storage.close()
    resumed = Study("p", SPACE, "acc", storage=url)
    resumed.optimize(get_strategy("re", SPACE, seed=2, population_size=10, sample_size=3), est, n_trials=70,
                     n_workers=4, executor=executor)
    assert len(resumed.finished_trials) == 70 and len(set(archs(resumed))) == 70  # no architecture twice


def test_process_executor_and_failures(tmp_path):
    st = Study("pp", SPACE, "acc", storage=f"sqlite:///{tmp_path / 'pp.db'}")
    st.optimize(get_strategy("random", SPACE, seed=0), Synthetic(fail_none=True), n_trials=24, n_workers=2,
                executor="process")
    assert len(st.finished_trials) == 24
    failed = [t for t in st.trials if t.state is TrialState.FAILED]
    assert failed and all(t.error == "RuntimeError: diverged" for t in failed)
    assert all(t.arch.startswith("|none~0|") for t in failed)


@pytest.mark.parametrize("args, message", [
    (dict(executor="cluster"), "unknown executor 'cluster'; allowed: serial, thread, process, ray, simulated"),
    (dict(n_workers=0, executor="thread"), "n_workers must be a whole number >= 1, got 0"),
    (dict(n_workers=2, executor="serial"), "executor 'serial' runs one trial at a time"),
    (dict(executor="thread", ray_address="127.0.0.1:1"), "needs executor 'ray'"),
])
def test_bad_executor_settings(args, message):
    st = Study("bad", SPACE, "acc")
    with pytest.raises(NasforgeError, match=message):
        st.optimize(get_strategy("random", SPACE), Synthetic(), n_trials=3, **args)
    assert st.trials == []  # nothing ran


def test_process_executor_needs_a_picklable_estimator():
    class Local(Synthetic):
        pass

    st = Study("pk", SPACE, "acc")
    with pytest.raises(NasforgeError, match="picklable estimator"):
        st.optimize(get_strategy("random", SPACE), Local(), n_trials=3, n_workers=2, executor="process")


WORKER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_parallel import SPACE, Synthetic
    from nasforge.strategies import get_strategy
    from nasforge.study import create_study
    st = create_study("shared", SPACE, "acc", storage={url!r}, load_if_exists=True)
    st.optimize(get_strategy("random", SPACE, seed=7), Synthetic(delay={delay}), n_trials={n},
                heartbeat_interval=0.2, stale_after=30)
    """
)


def cooperate(url, n_procs, n_trials, delay=0.0):
    code = WORKER.format(tests=TESTS, url=url, n=n_trials, delay=delay)
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n_procs)]
    return procs


def check_shared_study(url, n_trials):
    st = load_study("shared", url)
    trials = st.trials
    finished = [t for t in trials if t.state.finished]
    assert len(finished) == n_trials
    assert [t.number for t in trials] == list(range(len(trials)))  # numbers unique, none skipped
    # every process replays the shared log into its strategy: no architecture is asked twice
    asked = [t.arch for t in trials if t.retry_of is None]
    assert len(set(asked)) == len(asked)
    ref = Study("ref", SPACE, "acc").optimize(get_strategy("random", SPACE, seed=7), Synthetic(), n_trials=len(asked))
    assert asked == archs(ref)  # the same sequence one process would ask
    return st


def test_several_processes_share_one_sqlite_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    procs = cooperate(url, 3, 90, delay=0.01)
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    st = check_shared_study(url, 90)
    assert len({t.worker for t in st.trials}) == 3  # all three took part


def test_several_processes_share_one_postgres_study(pg_storage_url):
    procs = cooperate(pg_storage_url, 3, 60, delay=0.01)
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    check_shared_study(pg_storage_url, 60)


def test_killed_worker_trials_are_requeued_and_finished(tmp_path):
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    procs = cooperate(url, 2, 40, delay=0.1)
    store = get_storage(url)
    sid = None
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until the first process is running a trial, then kill it
        time.sleep(0.05)
        found = store.study_id("shared") if os.path.exists(tmp_path / "kill.db") else None
        if found is None:
            continue
        sid = found[0]
        running = [t for t in store.trials(sid) if t.state is TrialState.RUNNING
                   and t.worker.split(":")[1] == str(procs[0].pid)]
        if running and len([t for t in store.trials(sid) if t.state.finished]) >= 5:
            break
    procs[0].send_signal(signal.SIGKILL)
    assert procs[0].wait() == -signal.SIGKILL
    assert procs[1].wait(timeout=120) == 0  # the survivor finishes the study, re-running the lost trial
    st = check_shared_study(url, 40)
    stale = [t for t in st.trials if t.state is TrialState.STALE]
    assert stale, "the killed process left a running trial"
    for t in stale:
        retries = [r for r in st.trials if r.retry_of == t.number]
        assert len(retries) == 1 and retries[0].state is TrialState.COMPLETE and retries[0].arch == t.arch


def test_stale_trial_is_requeued_once_then_fails():
    st = create_study("once", SPACE, "acc")
    trial = st.ask()
    with st.storage.lock(st._id) as tx:
        retry = tx.requeue(tx.get(trial.number), TrialState.STALE, "stale: gone")
    again = st.ask()
    assert again.number == retry.number and again.retry_of == trial.number and again.arch == trial.arch
    with st.storage.lock(st._id) as tx:
        assert tx.requeue(tx.get(again.number), TrialState.STALE, "stale: gone again") is None
    states = [t.state for t in st.trials]
    assert states == [TrialState.STALE, TrialState.FAILED]
    assert "already re-queued 1 time(s)" in st.trials[1].error


def test_keyboard_interrupt_requeues_running_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 'ki.db'}"

    class Interrupting(Synthetic):
        n = 0

        def estimate(self, arch, fidelity=None):
            Interrupting.n += 1
            if Interrupting.n == 7:
                raise KeyboardInterrupt
            return super().estimate(arch, fidelity)

    st = Study("ki", SPACE, "acc", storage=url)
    with pytest.raises(KeyboardInterrupt):
        st.optimize(get_strategy("re", SPACE, seed=0), Interrupting(), n_trials=30)
    assert [t.state for t in st.trials][-2:] == [TrialState.INTERRUPTED, TrialState.WAITING]
    resumed = Study("ki", SPACE, "acc", storage=url)
    resumed.optimize(get_strategy("re", SPACE, seed=0), Synthetic(), n_trials=30)
    ref = Study("ref", SPACE, "acc").optimize(get_strategy("re", SPACE, seed=0), Synthetic(), n_trials=30)
    assert archs(resumed, TrialState.COMPLETE) == archs(ref)


V1 = """
CREATE TABLE nasforge_studies (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(255) NOT NULL UNIQUE,
  created FLOAT NOT NULL, config TEXT NOT NULL);
CREATE TABLE nasforge_trials (study_id INTEGER NOT NULL REFERENCES nasforge_studies(id), number INTEGER NOT NULL,
  arch TEXT NOT NULL, fidelity FLOAT, state VARCHAR(16) NOT NULL, value FLOAT, metrics TEXT, cost FLOAT,
  started FLOAT, duration FLOAT, error TEXT, info TEXT, PRIMARY KEY (study_id, number));
"""


def test_version_1_files_are_migrated_and_resume(tmp_path):
    ref = Study("ref", SPACE, "acc").optimize(get_strategy("re", SPACE, seed=3), Synthetic(), n_trials=30)
    path = tmp_path / "v1.db"
    con = sqlite3.connect(path)
    con.executescript(V1)
    con.execute("INSERT INTO nasforge_studies VALUES (1, 'old', 0, ?)",
                ('{"space":"nb201","metric":"acc","maximize":true}',))
    for t in ref.trials[:12]:
        con.execute("INSERT INTO nasforge_trials VALUES (1, ?, ?, NULL, 'complete', ?, ?, ?, 0, 0, NULL, NULL)",
                    (t.number, t.arch, t.value, f'{{"acc":{t.value}}}', t.cost))
    con.execute("INSERT INTO nasforge_trials VALUES (1, 12, ?, NULL, 'running', NULL, '{}', 0, 0, 0, NULL, NULL)",
                (ref.trials[12].arch,))
    con.commit()
    con.close()
    st = Study("old", SPACE, "acc", storage=f"sqlite:///{path}")
    assert st.trials[12].state is TrialState.INTERRUPTED
    st.optimize(get_strategy("re", SPACE, seed=3), Synthetic(), n_trials=30)
    assert archs(st, TrialState.COMPLETE) == archs(ref)
    con = sqlite3.connect(path)
    assert con.execute("SELECT value FROM nasforge_meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    con.close()


def test_newer_schema_and_read_only_files_are_clear_errors(tmp_path):
    path = tmp_path / "new.db"
    Study("x", SPACE, "acc", storage=f"sqlite:///{path}").optimize(get_strategy("random", SPACE), Synthetic(),
                                                                  n_trials=3)
    con = sqlite3.connect(path)
    con.execute("UPDATE nasforge_meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(NasforgeError, match="schema version 99, newer than this nasforge understands"):
        get_storage(f"sqlite:///{path}")
    ro = tmp_path / "ro.db"
    st = Study("r", SPACE, "acc", storage=f"sqlite:///{ro}")
    st.optimize(get_strategy("random", SPACE), Synthetic(), n_trials=3)
    st.storage.close()
    os.chmod(ro, 0o444)
    os.chmod(tmp_path, 0o555)
    try:
        st = load_study("r", f"sqlite:///{ro}")  # reading works
        assert len(st.trials) == 3
        if os.geteuid() != 0:  # root writes through file modes
            with pytest.raises(NasforgeError, match="read-only"):
                st.optimize(get_strategy("random", SPACE), Synthetic(), n_trials=5)
            assert len(load_study("r", f"sqlite:///{ro}").trials) == 3
    finally:
        os.chmod(tmp_path, 0o755)
        os.chmod(ro, 0o644)


def test_ray_executor(ray_address, tmp_path):
    st = Study("ray", SPACE, "acc", storage=f"sqlite:///{tmp_path / 'ray.db'}")
    st.optimize(get_strategy("random", SPACE, seed=0), Synthetic(fail_none=True), n_trials=16, n_workers=2,
                executor="ray", ray_address=ray_address)
    assert len(st.finished_trials) == 16
    assert all(t.state is TrialState.COMPLETE or t.error == "RuntimeError: diverged" for t in st.trials)


def test_unreachable_ray_address_is_a_clear_error():
    pytest.importorskip("ray")
    st = Study("noray", SPACE, "acc")
    with pytest.raises(NasforgeError, match="cannot connect to Ray at '127.0.0.1:1'"):
        st.optimize(get_strategy("random", SPACE), Synthetic(), n_trials=2, n_workers=2, executor="ray",
                    ray_address="127.0.0.1:1")


def test_missing_database_driver_and_missing_ray_are_clear_errors(monkeypatch):
    with pytest.raises(NasforgeError, match="the database driver 'pg8000' is not installed"):
        get_storage("postgresql+pg8000://user@127.0.0.1:1/db")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    st = Study("r", SPACE, "acc")
    with pytest.raises(NasforgeError, match=r"executor 'ray' needs Ray: pip install 'nasforge\[ray\]'"):
        st.optimize(get_strategy("random", SPACE), Synthetic(), n_trials=2, n_workers=2, executor="ray")


class KillsItsWorkerOnce(Synthetic):
    """Kills the pool process that runs its third evaluation (once: a marker file remembers)."""

    def __init__(self, marker):
        super().__init__(delay=0.01)
        self.marker, self.calls = str(marker), 0

    def estimate(self, arch, fidelity=None):
        self.calls += 1
        if self.calls == 3 and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().estimate(arch, fidelity)


def test_a_dead_pool_worker_loses_only_its_trial(tmp_path):
    st = Study("pool", SPACE, "acc", storage=f"sqlite:///{tmp_path / 'pool.db'}")
    st.optimize(get_strategy("random", SPACE, seed=0), KillsItsWorkerOnce(tmp_path / "killed"), n_trials=12,
                n_workers=2, executor="process")
    assert (tmp_path / "killed").exists()
    assert len(st.finished_trials) == 12 and all(t.state is TrialState.COMPLETE for t in st.finished_trials)
    stale = [t for t in st.trials if t.state is TrialState.STALE]
    assert 1 <= len(stale) <= 2  # the killed job, and the other job of the broken pool if it was still running
    for t in stale:
        assert "worker died" in t.error
        assert [r.state for r in st.trials if r.retry_of == t.number] == [TrialState.COMPLETE]
