import math

import numpy as np
import pytest

from nasforge import NasforgeError
from nasforge.spaces import NB201Space
from nasforge.strategies import LocalSearch, RandomSearch, RegularizedEvolution, get_strategy

SPACE = NB201Space()
# a synthetic objective with a known optimum: count of nor_conv_3x3 edges, ties broken by conv_1x1
WEIGHT = {"none": 0.0, "skip_connect": 0.1, "nor_conv_1x1": 0.5, "nor_conv_3x3": 1.0, "avg_pool_3x3": 0.2}


def objective(arch):
    return sum(WEIGHT[op] * (1 + 0.01 * i) for i, op in enumerate(arch))


def run(strategy, n):
    archs = []
    for _ in range(n):
        s = strategy.ask()
        archs.append(s.arch)
        strategy.tell(s, objective(s.arch))
    return archs


@pytest.mark.parametrize("name", ["random", "re", "ls"])
def test_same_seed_same_trajectory_and_no_duplicates(name):
    a = run(get_strategy(name, SPACE, seed=7), 300)
    b = run(get_strategy(name, SPACE, seed=7), 300)
    c = run(get_strategy(name, SPACE, seed=8), 300)
    assert a == b and a != c
    assert len(set(a)) == len(a)


@pytest.mark.parametrize("name", ["re", "ls"])
def test_model_free_strategies_beat_random_on_a_smooth_objective(name):
    best = lambda n, seed: max(map(objective, run(get_strategy(n, SPACE, seed=seed), 150)))  # noqa: E731
    opt = objective(("nor_conv_3x3",) * 6)
    found = [best(name, s) for s in range(5)]
    rand = [best("random", s) for s in range(5)]
    assert np.mean(found) > np.mean(rand)
    assert max(found) == pytest.approx(opt)


def test_regularized_evolution_ages_out_the_oldest():
    re = RegularizedEvolution(SPACE, population_size=4, sample_size=2, seed=0)
    archs = run(re, 10)
    assert [a for a, _ in re.population] == archs[-4:]
    # after the initial population every suggestion is a one-edge mutation of a population member
    re2 = RegularizedEvolution(SPACE, population_size=4, sample_size=2, seed=1)
    run(re2, 4)
    pop = [a for a, _ in re2.population]
    s = re2.ask()
    assert any(sum(x != y for x, y in zip(s.arch, p)) == 1 for p in pop)
    assert s.info["parent"] in [str(p) for p in pop]


def test_local_search_climbs_to_the_optimum_and_restarts():
    ls = LocalSearch(SPACE, n_init=5, seed=0)
    archs = run(ls, 400)
    assert ("nor_conv_3x3",) * 6 in archs
    assert ls.n_restarts >= 1  # the global optimum is a local optimum too: it must restart


def test_failures_and_minimisation():
    rs = RandomSearch(SPACE, seed=0, metric="loss", maximize=False)
    s = rs.ask()
    rs.tell(s, None)
    assert rs.best_arch is None and rs.n_told == 1
    s2 = rs.ask()
    rs.tell(s2, {"loss": 2.0})
    s3 = rs.ask()
    rs.tell(s3, {"loss": 1.0})
    assert rs.best_arch == s3.arch and rs.best_score == -1.0
    with pytest.raises(NasforgeError, match="has no metric 'acc'"):
        RandomSearch(SPACE, metric="acc").tell(s, {"loss": 1.0})
    assert RandomSearch(SPACE).score(math.nan) == -math.inf


def test_bad_settings_and_names():
    with pytest.raises(NasforgeError, match="unknown strategy 'darts-xl'"):
        get_strategy("darts-xl", SPACE)
    with pytest.raises(NasforgeError, match="sample_size <= population_size"):
        get_strategy("re", SPACE, population_size=3, sample_size=5)
    with pytest.raises(NasforgeError, match="bad settings for strategy 'ls'"):
        get_strategy("ls", SPACE, population_size=3)


def test_exhausting_a_small_space():
    class Tiny(NB201Space):
        def __iter__(self):
            return iter(list(super().__iter__())[:5])

        def sample(self, rng):
            return list(self)[int(rng.integers(5))]

    rs = RandomSearch(Tiny(), seed=0)
    archs = run(rs, 5)
    assert len(set(archs)) == 5
    with pytest.raises(NasforgeError, match="exhausted"):
        rs.ask()


def test_canonical_dedup_never_repeats_an_equivalence_class():
    rs = RandomSearch(SPACE, seed=0, dedup="canonical")
    archs = run(rs, 500)
    keys = [SPACE.canonical_key(a) for a in archs]
    assert len(set(keys)) == 500
