import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import sqlalchemy as sa

from nasforge import NasforgeError
from nasforge.estimation import Estimator, Measurement
from nasforge.spaces import NB201Space
from nasforge.strategies import get_strategy
from nasforge.study import Study, TrialState

SPACE = NB201Space()
SCORE = {"none": 0, "skip_connect": 1, "nor_conv_1x1": 3, "nor_conv_3x3": 4, "avg_pool_3x3": 2}


class Synthetic(Estimator):
    """A deterministic objective; fails on cells whose first edge is 'none' when asked to."""

    def __init__(self, fail_none=False, delay=0.0):
        self.fail_none, self.delay = fail_none, delay

    @property
    def metric_names(self):
        return ["acc", "test"]

    def estimate(self, arch, fidelity=None):
        if self.delay:
            time.sleep(self.delay)
        if self.fail_none and arch[0] == "none":
            raise RuntimeError("diverged: loss is NaN")
        s = sum(SCORE[o] * (i + 1) for i, o in enumerate(arch))
        return Measurement({"acc": float(s), "test": float(s) / 2}, cost=1.5)


def trajectory(study):
    return [t.arch for t in study.trials]


def test_in_memory_study_and_dataframe():
    st = Study("s", SPACE, "acc")
    st.optimize(get_strategy("re", SPACE, seed=0), Synthetic(), n_trials=60)
    assert len(st.trials) == 60 and all(t.state is TrialState.COMPLETE for t in st.trials)
    assert st.best_trial.value == max(t.value for t in st.trials)
    df = st.trials_dataframe()
    assert list(df["number"]) == list(range(60)) and {"acc", "test", "arch", "state", "cost"} <= set(df.columns)
    assert df["cost"].sum() == pytest.approx(90.0)
    # the budget counts what is done: asking for 60 again does nothing
    st.optimize(get_strategy("re", SPACE, seed=0), Synthetic(), n_trials=60)
    assert len(st.trials) == 60


def test_budget_by_cost_and_minimisation():
    st = Study("c", SPACE, "acc", maximize=False)
    st.optimize(get_strategy("random", SPACE, seed=1), Synthetic(), max_cost=15)
    assert len(st.trials) == 10
    assert st.best_trial.value == min(t.value for t in st.trials)
    with pytest.raises(NasforgeError, match="needs a budget"):
        st.optimize(get_strategy("random", SPACE, seed=1), Synthetic())


def test_failed_trials_are_recorded_and_search_goes_on(tmp_path):
    st = Study("f", SPACE, "acc", storage=f"sqlite:///{tmp_path / 'f.db'}")
    st.optimize(get_strategy("random", SPACE, seed=0), Synthetic(fail_none=True), n_trials=50)
    failed = [t for t in st.trials if t.state is TrialState.FAILED]
    assert failed and all("diverged" in t.error for t in failed)
    assert len(st.finished_trials) == 50
    again = Study("f", SPACE, "acc", storage=f"sqlite:///{tmp_path / 'f.db'}")
    assert [(t.state, t.error) for t in again.trials] == [(t.state, t.error) for t in st.trials]


@pytest.mark.parametrize("name", ["random", "re", "ls"])
def test_resume_continues_the_same_trajectory(tmp_path, name):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    full = Study("full", SPACE, "acc").optimize(get_strategy(name, SPACE, seed=3), Synthetic(), n_trials=120)
    first = Study("r", SPACE, "acc", storage=url)
    first.optimize(get_strategy(name, SPACE, seed=3), Synthetic(), n_trials=45)
    first.storage.close()
    resumed = Study("r", SPACE, "acc", storage=url)
    assert len(resumed.trials) == 45 and not resumed.created
    resumed.optimize(get_strategy(name, SPACE, seed=3), Synthetic(), n_trials=120)
    assert trajectory(resumed) == trajectory(full)
    assert [t.value for t in resumed.trials] == [t.value for t in full.trials]


def test_resume_refuses_other_settings(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    Study("x", SPACE, "acc", storage=url).optimize(get_strategy("re", SPACE, seed=0), Synthetic(), n_trials=5)
    with pytest.raises(NasforgeError, match="seed: stored 0, given 1"):
        Study("x", SPACE, "acc", storage=url).optimize(get_strategy("re", SPACE, seed=1), Synthetic(), n_trials=9)
    with pytest.raises(NasforgeError, match="exists with metric='acc'"):
        Study("x", SPACE, "test", storage=url)


def test_bad_storage_urls(tmp_path):
    with pytest.raises(NasforgeError, match="not a database URL"):
        Study("x", SPACE, "acc", storage=str(tmp_path / "plain.db"))
    with pytest.raises(NasforgeError, match="cannot open storage"):
        Study("x", SPACE, "acc", storage="nosuchdb://here")
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(NasforgeError, match="cannot open storage"):
        Study("x", SPACE, "acc", storage=f"sqlite:///{bad}")


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_study import SPACE, Synthetic
    from nasforge.strategies import get_strategy
    from nasforge.study import Study
    st = Study("killed", SPACE, "acc", storage={url!r})
    st.optimize(get_strategy("re", SPACE, seed=5), Synthetic(delay=0.02), n_trials=400)
    """
)


def _complete(url):
    eng = sa.create_engine(url)
    with eng.connect() as c:
        n = c.execute(sa.text("select count(*) from nasforge_trials where state='complete'")).scalar()
    eng.dispose()
    return n


def test_sigkill_loses_no_completed_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    code = CHILD.format(tests=os.path.dirname(__file__), url=url)
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    n = 0
    while time.time() < deadline:
        time.sleep(0.1)
        if os.path.exists(tmp_path / "k.db"):
            try:
                n = _complete(url)
            except sa.exc.OperationalError:
                continue
            if n >= 30:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and n >= 30
    kept = _complete(url)
    assert kept >= n  # nothing that was complete when we looked is lost
    resumed = Study("killed", SPACE, "acc", storage=url)
    assert sum(t.state is TrialState.COMPLETE for t in resumed.trials) == kept
    resumed.optimize(get_strategy("re", SPACE, seed=5), Synthetic(), n_trials=kept + 40)
    done = [t.arch for t in resumed.trials if t.state is TrialState.COMPLETE]
    reference = Study("ref", SPACE, "acc").optimize(get_strategy("re", SPACE, seed=5), Synthetic(), n_trials=kept + 40)
    assert done == trajectory(reference)
