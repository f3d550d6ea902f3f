"""CATE and other encodings inside the search strategies (DNGO, BANANAS, evolution, local search),
the predictor ensemble, and the predictor strategy's candidate options."""

from __future__ import annotations

import numpy as np
import pytest

import nasforge.strategies  # noqa: F401 - registers the gp, bananas and dngo predictors
from nasforge.analysis.correlation import kendall_tau
from nasforge.errors import NasforgeError
from nasforge.estimation.predictors import get_predictor
from nasforge.spaces import get_space
from nasforge.strategies import get_strategy
from nasforge.strategies.encoded import EncodedNeighbourhood

SPACE = get_space("nb201")
TINY_CATE = {"dim": 8, "heads": 2, "layers": 1, "epochs": 1, "n_archs": 300, "window": 10}


def score(arch) -> float:
    """A synthetic objective on NB201 cells: conv3x3 count, pooling penalised, one interaction."""
    ops = list(arch)
    return (sum(o == "nor_conv_3x3" for o in ops) - 0.5 * sum(o == "avg_pool_3x3" for o in ops)
            + 0.7 * (ops[0] == "nor_conv_3x3" and ops[-1] == "nor_conv_1x1"))


def toy(n: int, seed: int = 0) -> tuple[list, np.ndarray]:
    rng = np.random.default_rng(seed)
    archs = [SPACE.sample(rng) for _ in range(n)]
    return archs, np.array([score(a) for a in archs]) + 0.05 * rng.standard_normal(n)


def drive(strategy, n: int) -> list[str]:
    out = []
    for _ in range(n):
        s = strategy.ask()
        strategy.tell(s, score(s.arch))
        out.append(SPACE.format(s.arch))
    return out


@pytest.fixture(scope="module")
def cate(tmp_path_factory):
    """Tiny CATE settings with their own cache (pre-trained once for the module)."""
    return {**TINY_CATE, "cache_dir": tmp_path_factory.mktemp("cate")}


def test_dngo_predicts_with_uncertainty_on_every_encoding(cate):
    archs, y = toy(60)
    test, yt = toy(80, seed=1)
    for enc in ("adjacency", "path", "cate"):
        extra = {"cate_params": cate} if enc == "cate" else {}
        p = get_predictor("dngo", SPACE, encoding=enc, seed=3, hidden=[16, 16], epochs=150, **extra).fit(archs, y)
        mean, std = p.predict(test, return_std=True)
        assert mean.shape == (80,) and np.all(std > 0), enc
        if enc == "adjacency":  # the toy score reads every edge; paths drop the dead ones, and the tiny
            assert kendall_tau(mean, yt) > 0.3  # CATE model (one epoch) carries little
        elif enc == "path":
            assert kendall_tau(mean, yt) > 0.1
        again = get_predictor("dngo", SPACE, encoding=enc, seed=3, hidden=[16, 16], epochs=150, **extra)
        assert np.array_equal(again.fit(archs, y).predict(test), mean)
    with pytest.raises(NasforgeError, match="unknown encoding 'paths'"):
        get_predictor("dngo", SPACE, encoding="paths")
    with pytest.raises(NasforgeError, match="cate_params must be a dict"):
        get_predictor("dngo", SPACE, encoding="cate", cate_params=3)


def test_ensemble_mixes_members():
    archs, y = toy(50)
    test, yt = toy(60, seed=1)
    members = [["gp", {"kernel": "hamming"}], ["gp", {"kernel": "wl"}]]
    ens = get_predictor("ensemble", SPACE, members=members, seed=0).fit(archs, y)
    mean, std = ens.predict(test, return_std=True)
    parts = [get_predictor("gp", SPACE, kernel=k).fit(archs, y).predict(test, return_std=True)
             for k in ("hamming", "wl")]
    assert np.allclose(mean, (parts[0][0] + parts[1][0]) / 2)
    assert np.all(std >= np.sqrt((parts[0][1] ** 2 + parts[1][1] ** 2) / 2) - 1e-9)
    assert kendall_tau(mean, yt) > 0.3
    assert ens.get_params()["members"] == members
    with pytest.raises(NasforgeError, match="non-empty list"):
        get_predictor("ensemble", SPACE, members=[])
    with pytest.raises(NasforgeError, match="cannot contain another ensemble"):
        get_predictor("ensemble", SPACE, members=["ensemble"])
    with pytest.raises(NasforgeError, match="must be a predictor name or a"):
        get_predictor("ensemble", SPACE, members=[["gp"]])


def test_predictor_search_candidate_options():
    base = dict(predictor="gp", predictor_params={"kernel": "hamming"}, n_init=5)
    s = get_strategy("predictor", SPACE, seed=0, n_candidates=0, n_local=24, n_random=10, transform="rank", **base)
    drive(s, 8)
    cands = s.candidates()
    best = sorted(zip(s._y, s._archs), key=lambda t: -t[0])[:5]
    nbrs = {a for _, b in best for a in SPACE.neighbors(b)} - set(s._archs)
    assert nbrs <= set(cands) and len(cands) == len(nbrs) + 10
    cfg = s.config()
    assert cfg["n_local"] == 24 and cfg["transform"] == "rank"
    # the defaults leave the stored configuration as it was
    plain = get_strategy("predictor", SPACE, **base).config()
    assert "n_local" not in plain and "transform" not in plain and "exhaustive" not in plain
    ex = get_strategy("predictor", SPACE, seed=0, n_candidates=0, exhaustive=True, **base)
    drive(ex, 6)
    assert len(ex.candidates()) == len(SPACE) - 6
    assert drive(get_strategy("predictor", SPACE, seed=4, n_candidates=0, n_local=24, transform="rank", **base), 12) \
        == drive(get_strategy("predictor", SPACE, seed=4, n_candidates=0, n_local=24, transform="rank", **base), 12)
    with pytest.raises(NasforgeError, match="unknown transform 'log'"):
        get_strategy("predictor", SPACE, transform="log")
    with pytest.raises(NasforgeError, match="n_local must be an integer >= 0"):
        get_strategy("predictor", SPACE, n_local=-1)
    with pytest.raises(NasforgeError, match="exhaustive candidates need an enumerable space"):
        get_strategy("predictor", get_space("darts"), predictor="xgb", exhaustive=True)


def test_encoded_neighbourhood_drives_evolution_and_local_search(cate):
    adj = EncodedNeighbourhood(SPACE, "adjacency")
    a = SPACE.sample(np.random.default_rng(1))
    assert set(adj.neighbors(a)) == set(SPACE.neighbors(a))  # NB201: one-hot distance = one edge
    enc = EncodedNeighbourhood(SPACE, "cate", k=10, cate_params=cate)
    nb = enc.neighbors(a)
    assert len(nb) == 10 and a not in nb and len(set(nb)) == 10
    E = enc._E
    d = np.linalg.norm(E - E[enc._index[a]], axis=1)
    far = np.sort(d)[11]  # every neighbour is at most as far as the 11th-nearest (itself first)
    assert max(d[enc._index[b]] for b in nb) <= far + 1e-9
    rng = np.random.default_rng(0)
    assert all(enc.mutate(a, rng) in set(nb) for _ in range(20))
    assert enc.name == SPACE.name and len(enc) == len(SPACE) and enc.format(a) == SPACE.format(a)
    for name in ("re", "ls"):
        run = [drive(get_strategy(name, enc, seed=2, **({"population_size": 5, "sample_size": 3}
                                                       if name == "re" else {"n_init": 3})), 25) for _ in range(2)]
        assert run[0] == run[1] and len(set(run[0])) == 25
    with pytest.raises(NasforgeError, match="enumerable space of at most"):
        EncodedNeighbourhood(get_space("darts"), "adjacency")
    with pytest.raises(NasforgeError, match="unknown encoding"):
        EncodedNeighbourhood(SPACE, "paths")


def test_bananas_runs_on_the_cate_encoding(cate):
    s = get_strategy("bananas", SPACE, seed=0, encoding="cate", cate_params=cate, n_init=5, k=3, ensemble=2,
                     epochs=30, hidden=[8], n_candidates=20)
    run = drive(s, 11)
    assert len(set(run)) == 11 and s.config()["encoding"] == "cate"
    p = get_predictor("bananas", SPACE, encoding="cate", cate_params=cate, ensemble=2, epochs=30, hidden=[8])
    archs, y = toy(30)
    assert p.fit(archs, y).predict(archs[:4], return_std=True)[1].shape == (4,)
