import pytest

from nasforge import NasforgeError
from nasforge.data import load_dataset
from nasforge.estimation import Estimator, Measurement
from nasforge.estimation.training import TrainingEstimator
from nasforge.spaces import NB201Space
from nasforge.strategies import get_strategy
from nasforge.strategies.multifidelity import PASHA, rung_levels
from nasforge.study import Study

SPACE = NB201Space()
SCORE = {"none": 0, "skip_connect": 1, "nor_conv_1x1": 3, "nor_conv_3x3": 4, "avg_pool_3x3": 2}


class Curves(Estimator):
    """Synthetic learning curves: final quality q, value at fidelity r = q * r / (r + k)."""

    fidelities = (1.0, 3.0, 9.0, 27.0)

    def __init__(self, crossing=False):
        self.crossing = crossing

    @property
    def metric_names(self):
        return ["acc"]

    def estimate(self, arch, fidelity=None):
        r = 27.0 if fidelity is None else float(fidelity)
        q = sum(SCORE[o] * (i + 1) for i, o in enumerate(arch))
        k = 1.0 + (q % 7) * (5.0 if self.crossing else 0.0)  # slow starters when crossing
        return Measurement({"acc": q * r / (r + k)}, cost=r, fidelity=r)


def test_rung_levels():
    assert rung_levels(None, 1, 27, 3) == [1, 3, 9, 27]
    assert rung_levels(None, 1, 20, 3) == [1, 3, 9, 20]
    assert rung_levels([200, 12], None, None, 3) == [12, 200]
    with pytest.raises(NasforgeError, match="eta must be > 1"):
        rung_levels(None, 1, 9, 1)
    with pytest.raises(NasforgeError, match="give rungs"):
        rung_levels(None, None, 9, 3)


def run(name, n, **kw):
    st = Study(name, SPACE, "acc")
    strat = get_strategy(name, SPACE, seed=0, min_fidelity=1, max_fidelity=27, eta=3, **kw)
    st.optimize(strat, Curves(), n_trials=n)
    return st, strat


def test_successive_halving_bracket_shape():
    st, _ = run("sh", 27 + 9 + 3 + 1)
    fids = [t.fidelity for t in st.trials]
    assert fids == [1.0] * 27 + [3.0] * 9 + [9.0] * 3 + [27.0]
    # the promoted ones are the best of their rung
    rung0 = sorted((t for t in st.trials if t.fidelity == 1.0), key=lambda t: -t.value)
    assert {t.arch for t in st.trials if t.fidelity == 3.0} == {t.arch for t in rung0[:9]}


def test_hyperband_cycles_brackets():
    st, _ = run("hyperband", 27 + 9 + 3 + 1 + 12)
    fids = [t.fidelity for t in st.trials]
    assert fids[:40] == [1.0] * 27 + [3.0] * 9 + [9.0] * 3 + [27.0]
    assert fids[40:52] == [3.0] * 12  # second bracket: starts at rung 1 with ceil(4/3*9)=12


def test_asha_promotes_only_from_the_top_third_at_the_time():
    st, strat = run("asha", 80)
    levels = [1.0, 3.0, 9.0, 27.0]
    seen: dict[float, dict] = {f: {} for f in levels}
    n_promoted = 0
    for t in st.trials:
        if t.info.get("promoted"):
            below = seen[levels[levels.index(t.fidelity) - 1]]
            k = len(below) // 3
            top = sorted(below, key=lambda a: -below[a])[:k]
            assert t.arch in top
            n_promoted += 1
        seen[t.fidelity][t.arch] = t.value
    assert n_promoted >= 20 and any(t.fidelity == 27.0 for t in st.trials)
    assert st.best_trial.fidelity == 27.0


def test_pasha_grows_its_maximum_resource_only_when_rankings_disagree():
    stable = PASHA(SPACE, seed=0, min_fidelity=1, max_fidelity=27, eta=3, metric="acc", maximize=True)
    st = Study("p1", SPACE, "acc")
    st.optimize(stable, Curves(crossing=False), n_trials=80)
    assert stable.max_rung == 1  # same ordering at every fidelity: never needs more than 3 epochs
    assert max(t.fidelity for t in st.trials) == 3.0
    unstable = PASHA(SPACE, seed=0, min_fidelity=1, max_fidelity=27, eta=3, metric="acc", maximize=True, epsilon=0.0)
    st2 = Study("p2", SPACE, "acc")
    st2.optimize(unstable, Curves(crossing=True), n_trials=80)
    assert unstable.max_rung > 1 and unstable.increases
    assert unstable.current_epsilon() == 0.0
    noisy = PASHA(SPACE, seed=0, min_fidelity=1, max_fidelity=27, eta=3, metric="acc", maximize=True)
    Study("p3", SPACE, "acc").optimize(noisy, Curves(crossing=True), n_trials=80)
    assert noisy.current_epsilon() >= 0.0


@pytest.mark.parametrize("name", ["sh", "hyperband", "asha", "pasha"])
def test_schedulers_on_the_nb201_table_resume_exactly(name, tmp_path, nb201_c10):
    kw = dict(rungs=[12, 200], eta=4, seed=2)
    full = Study("f", SPACE, "valid_acc").optimize(get_strategy(name, SPACE, **kw), nb201_c10, max_cost=200 * 30)
    url = f"sqlite:///{tmp_path / 'mf.db'}"
    Study("r", SPACE, "valid_acc", storage=url).optimize(get_strategy(name, SPACE, **kw), nb201_c10, n_trials=25)
    resumed = Study("r", SPACE, "valid_acc", storage=url)
    resumed.optimize(get_strategy(name, SPACE, **kw), nb201_c10, max_cost=200 * 30)
    assert [(t.arch, t.fidelity) for t in resumed.trials] == [(t.arch, t.fidelity) for t in full.trials]
    assert sum(t.cost for t in full.trials) >= 200 * 30
    assert full.best_trial.fidelity == 200


def test_asha_with_re_base_and_real_training_continues_checkpoints():
    digits = load_dataset("digits")
    est = TrainingEstimator(SPACE, digits, max_epochs=4, net={"C": 4, "N": 1}, cost_unit="epochs")
    strat = get_strategy("asha", SPACE, seed=0, min_fidelity=1, max_fidelity=4, eta=2, base="re",
                         base_params={"population_size": 4, "sample_size": 2})
    st = Study("asha-train", SPACE, "valid_acc")
    st.optimize(strat, est, max_cost=24)
    promoted = [t for t in st.trials if t.info.get("promoted")]
    assert promoted
    for t in promoted:  # a promotion trains only the missing epochs
        prev = max(u.fidelity for u in st.trials if u.arch == t.arch and u.number < t.number)
        assert t.info["epochs_trained"] == t.fidelity - prev
    assert sum(t.cost for t in st.trials) >= 24
