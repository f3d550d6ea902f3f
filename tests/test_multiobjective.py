import numpy as np
import pytest

from nasforge import NasforgeError
from nasforge.analysis.pareto import (crowding_distance, dominates, hypervolume, hypervolume_fraction,
                                      non_dominated_sort, normalize, pareto_mask)
from nasforge.estimation.base import Estimator, Measurement
from nasforge.spaces import NB201Space
from nasforge.strategies import MULTI_OBJECTIVE, get_strategy
from nasforge.study import Study

SPACE = NB201Space()
W_ACC = {"none": 0.0, "skip_connect": 0.3, "nor_conv_1x1": 0.6, "nor_conv_3x3": 1.0, "avg_pool_3x3": 0.2}
W_LAT = {"none": 0.0, "skip_connect": 0.05, "nor_conv_1x1": 0.3, "nor_conv_3x3": 1.0, "avg_pool_3x3": 0.2}


class Synthetic(Estimator):
    """Two conflicting objectives over NB201: 'acc' (max) and 'lat' (min)."""

    def estimate(self, arch, fidelity=None):
        acc = sum(W_ACC[o] * (1 + 0.03 * i) for i, o in enumerate(arch))
        lat = sum(W_LAT[o] * (1 + 0.02 * (5 - i)) for i, o in enumerate(arch))
        return Measurement({"acc": acc, "lat": lat}, 1.0)

    @property
    def metric_names(self):
        return ["acc", "lat"]


EST = Synthetic()
ALL = np.array([[EST.estimate(a).metrics["acc"], EST.estimate(a).metrics["lat"]] for a in SPACE])


def brute_front(Y):
    return np.array([not any(np.all(Y[j] <= Y[i]) and np.any(Y[j] < Y[i]) for j in range(len(Y)))
                     for i in range(len(Y))])


# --- analysis ------------------------------------------------------------------------------------
@pytest.mark.parametrize("m", [2, 3])
def test_pareto_mask_and_sort_match_brute_force(m):
    rng = np.random.default_rng(m)
    for _ in range(20):
        Y = rng.integers(0, 5, (25, m)).astype(float)
        assert (pareto_mask(Y) == brute_front(Y)).all()
        rank = non_dominated_sort(Y)
        assert ((rank == 0) == brute_front(Y)).all()
        rest = rank > 0  # removing front 0, front 1 is the new non-dominated set
        assert ((rank[rest] == 1) == brute_front(Y[rest])).all()
    assert dominates([1, 5], [0, 5], maximize=True) and not dominates([1, 4], [0, 5], maximize=True)
    assert (pareto_mask([[1, 2], [2, 1], [np.nan, 0]]) == [True, True, False]).all()


def test_hypervolume_exact_values():
    # 2-d: staircase of 3 points to reference (4, 4): 3*1 + 2*1 + 1*1 = 6
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == pytest.approx(6.0)
    assert hypervolume([[1, 3], [2, 2], [3, 1], [3, 3], [5, 0]], [4, 4]) == pytest.approx(6.0)  # dominated / outside
    # maximising accuracy, minimising latency, reference (acc 0, lat 10)
    assert hypervolume([[0.9, 2.0], [0.5, 1.0]], [0.0, 10.0], maximize=[True, False]) == pytest.approx(
        0.9 * 8 + 0.5 * 1)
    # 3-d: two boxes by inclusion-exclusion
    a, b, ref = np.array([1, 2, 3.0]), np.array([2, 1, 2.0]), np.array([4, 4, 4.0])
    inter = np.prod(ref - np.maximum(a, b))
    assert hypervolume([a, b], ref) == pytest.approx(np.prod(ref - a) + np.prod(ref - b) - inter)
    rng = np.random.default_rng(0)
    P = rng.random((12, 3))
    S = rng.random((200_000, 3)) * 1.2
    mc = np.mean(np.any(np.all(S[:, None, :] >= P[None], axis=2), axis=1)) * 1.2 ** 3
    assert hypervolume(P, [1.2] * 3) == pytest.approx(mc, abs=0.01)
    assert hypervolume(np.c_[P[:, :2], np.zeros(12)], [1.2, 1.2, 1.0]) == pytest.approx(hypervolume(P[:, :2], [1.2, 1.2]))
    z = normalize([[0.9, 2.0]], [0.5, 1.0], [1.0, 3.0], maximize=[True, False])
    assert np.allclose(z, [[0.2, 0.5]])
    assert np.isinf(crowding_distance([[0, 1], [1, 0], [0.5, 0.5]])[[0, 1]]).all()


def test_true_front_has_fraction_one():
    front = ALL[pareto_mask(ALL, [True, False])]
    lo, hi = ALL.min(axis=0), ALL.max(axis=0)
    assert hypervolume_fraction(front, front, [True, False], lo, hi) == pytest.approx(1.0)
    assert hypervolume_fraction(ALL[:50], front, [True, False], lo, hi) < 1.0


# --- strategies ------------------------------------------------------------------------------------
def run(strategy, n):
    out = []
    for _ in range(n):
        s = strategy.ask()
        out.append(s.arch)
        strategy.tell(s, EST.estimate(s.arch))
    return out


@pytest.mark.parametrize("name", MULTI_OBJECTIVE)
def test_mo_strategies_are_seeded_and_never_repeat(name):
    kw = dict(metric=["acc", "lat"], maximize=[True, False])
    a = run(get_strategy(name, SPACE, seed=3, **kw), 120)
    b = run(get_strategy(name, SPACE, seed=3, **kw), 120)
    c = run(get_strategy(name, SPACE, seed=4, **kw), 120)
    assert a == b and a != c and len(set(a)) == len(a)


def hv_fraction(archs):
    Y = np.array([[EST.estimate(x).metrics["acc"], EST.estimate(x).metrics["lat"]] for x in archs])
    front = ALL[pareto_mask(ALL, [True, False])]
    return hypervolume_fraction(Y, front, [True, False], ALL.min(axis=0), ALL.max(axis=0))


def test_evolutionary_mo_strategies_beat_random_search():
    kw = dict(metric=["acc", "lat"], maximize=[True, False])
    score = {n: np.mean([hv_fraction(run(get_strategy(n, SPACE, seed=s, **kw), 150)) for s in range(4)])
             for n in MULTI_OBJECTIVE}
    for n in ("nsga2", "mo-re", "chebyshev"):
        assert score[n] > score["mo-random"], score
    assert score["nsga2"] > 0.9


def test_mo_strategies_respect_constraints_and_reject_bad_settings():
    feasible = lambda a: a.count("nor_conv_3x3") <= 2  # noqa: E731
    for name in MULTI_OBJECTIVE:
        archs = run(get_strategy(name, SPACE, seed=0, metric=["acc", "lat"], maximize=[True, False],
                                 feasible=feasible), 80)
        assert all(map(feasible, archs))
    s = get_strategy("nsga2", SPACE, metric="acc", maximize=True)
    with pytest.raises(NasforgeError, match="two or more metric names"):
        s.tell(s.ask(), {"acc": 1.0})
    with pytest.raises(NasforgeError, match="2 objectives .* but 3 directions"):
        t = get_strategy("mo-re", SPACE, metric=["acc", "lat"], maximize=[True, False, True])
        t.tell(t.ask(), {"acc": 1.0, "lat": 1.0})
    with pytest.raises(NasforgeError, match="population_size >= 2"):
        get_strategy("nsga2", SPACE, population_size=1)
    # failures and NaN results never enter the population
    t = get_strategy("mo-re", SPACE, seed=0, metric=["acc", "lat"], maximize=[True, False], population_size=3,
                     sample_size=2)
    t.tell(t.ask(), None)
    t.tell(t.ask(), {"acc": float("nan"), "lat": 1.0})
    assert not t.population and t.n_told == 2


# --- studies -----------------------------------------------------------------------------------------
def test_multi_objective_study_keeps_the_front_and_resumes(tmp_path):
    db = f"sqlite:///{tmp_path / 'mo.db'}"
    kw = dict(metric=["acc", "lat"], maximize=[True, False])
    full = Study("full", SPACE, storage=":memory:", **kw)
    full.optimize(get_strategy("nsga2", SPACE, seed=5), EST, n_trials=90)
    part = Study("part", SPACE, storage=db, **kw)
    part.optimize(get_strategy("nsga2", SPACE, seed=5), EST, n_trials=37)
    part = Study("part", SPACE, storage=db, **kw)  # reload and resume by replay
    part.optimize(get_strategy("nsga2", SPACE, seed=5), EST, n_trials=90)
    assert [t.arch for t in part.trials] == [t.arch for t in full.trials]
    front = part.pareto_front
    Y = np.array([[t.metrics["acc"], t.metrics["lat"]] for t in part.trials])
    assert len(front) == pareto_mask(Y, [True, False]).sum()
    accs = [t.metrics["acc"] for t in front]
    assert accs == sorted(accs, reverse=True) and part.best_trial.metrics["acc"] == max(Y[:, 0])
    assert part.config["metric"] == ["acc", "lat"] and part.config["maximize"] == [True, False]
    assert "Pareto front over acc, lat" in part.summary()
    with pytest.raises(NasforgeError, match="exists with metric"):
        Study("part", SPACE, "acc", storage=db)
    with pytest.raises(NasforgeError, match="is multi-objective"):
        Study("single", SPACE, "acc").optimize(get_strategy("nsga2", SPACE), EST, n_trials=1)
    with pytest.raises(NasforgeError, match="2 metrics .* but 3 directions"):
        Study("bad", SPACE, ["acc", "lat"], maximize=[True, False, True])
    # a scalar strategy in a multi-objective study optimises the first objective
    s = Study("scalar", SPACE, **kw)
    s.optimize(get_strategy("re", SPACE, seed=0), EST, n_trials=30)
    assert len(s.pareto_front) >= 1


def test_an_objective_missing_from_the_measurement_fails_the_trial():
    class OnlyAcc(Synthetic):
        def estimate(self, arch, fidelity=None):
            m = super().estimate(arch)
            return Measurement({"acc": m.metrics["acc"]}, 1.0)

    s = Study("missing", SPACE, ["acc", "lat"], maximize=[True, False])
    s.optimize(get_strategy("mo-random", SPACE, seed=0), OnlyAcc(), n_trials=3)
    assert all(t.state.value == "failed" and "no metric 'lat'" in t.error for t in s.trials)
    assert s.pareto_front == [] and s.best_trial is None


def test_mosearch_front_and_show_commands(data_dir, tmp_path, capsys):
    from nasforge.cli.main import main

    db = f"sqlite:///{tmp_path / 'm.db'}"
    png = tmp_path / "front.png"
    common = ["--storage", db, "--data-dir", str(data_dir)]
    assert main(["mosearch", "--budget", "60", "--study", "m", "--quiet", "--objective", "valid_acc:max",
                 "--objective", "energy_mj[pi5_onnx]:min", "--benchmark", "nb201:cifar100+pi5",
                 "--constraint", "params <= 1e6", "--power-watts", "20", "--plot", str(png)] + common) == 0
    out = capsys.readouterr().out
    assert "Pareto front over valid_acc (max), energy_mj[pi5_onnx] (min)" in out
    assert "of the true front's" in out and "search energy:" in out and png.stat().st_size > 1000
    assert main(["front", "m", "--power-watts", "20"] + common) == 0
    assert "hypervolume:" in capsys.readouterr().out
    assert main(["show", "m"] + common) == 0
    assert "Pareto front over" in capsys.readouterr().out
    assert main(["mosearch", "--budget", "61", "--study", "m", "--quiet", "--strategy", "mo-re"] + common) == 2
    assert main(["cost", "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", "--C", "4", "--N", "1",
                 "--input-size", "8", "--latency", "torch", "--repeats", "2", "--warmup", "0", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "params:" in out and "flops[nb201]:" in out and "latency_ms[local-torch]: median" in out
