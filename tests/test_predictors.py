"""Performance predictors, the NASLib protocol, predictor-guided search and CATE."""

from __future__ import annotations

import numpy as np
import pytest

import nasforge.strategies  # noqa: F401 - registers the gp and bananas predictors
from nasforge.analysis.correlation import kendall_tau
from nasforge.errors import NasforgeError
from nasforge.estimation.predictors import PREDICTORS, get_predictor
from nasforge.estimation.predictors.protocol import evaluate
from nasforge.spaces import get_space
from nasforge.strategies import get_strategy

SPACE = get_space("nb201")
#: small settings so that every predictor fits in well under a second
FAST = {"gp": {"kernel": "hamming"}, "bananas": {"ensemble": 2, "epochs": 30, "hidden": [16]},
        "xgb": {"n_estimators": 50}, "rf": {"n_estimators": 30}, "quantile_gbt": {"n_estimators": 30},
        "gp_encoding": {}, "seminas": {"base": "rf", "base_params": {"n_estimators": 20}, "n_unlabeled": 50},
        "gin": {"epochs": 20, "hidden": 16}, "gcn": {"epochs": 20, "hidden": 16}}


def toy(n: int, seed: int = 0) -> tuple[list, np.ndarray]:
    """Architectures and a score that depends on their operations (conv3x3 count, no pooling)."""
    rng = np.random.default_rng(seed)
    archs = [SPACE.sample(rng) for _ in range(n)]
    y = np.array([sum(op == "nor_conv_3x3" for op in a) - 0.5 * sum(op == "avg_pool_3x3" for op in a)
                  for a in archs], dtype=float) + 0.05 * rng.standard_normal(n)
    return archs, y


def test_registry_lists_every_predictor():
    assert set(FAST) | {"lce"} <= set(PREDICTORS)


@pytest.mark.parametrize("name", sorted(FAST))
def test_fit_predict_shapes_and_signal(name):
    archs, y = toy(60)
    test, yt = toy(80, seed=1)
    p = get_predictor(name, SPACE, seed=3, **FAST[name]).fit(archs, y)
    mean = p.predict(test)
    assert mean.shape == (80,) and np.all(np.isfinite(mean))
    mean2, std = p.predict(test, return_std=True)
    assert np.allclose(mean, mean2) and std.shape == (80,) and np.all(std >= 0)
    if p.probabilistic:
        assert std.max() > 0
    else:
        assert np.all(std == 0)
    assert kendall_tau(mean, yt) > 0.3, name
    assert p.predict([]).shape == (0,)


@pytest.mark.parametrize("name", ["xgb", "gin", "bananas", "seminas"])
def test_same_seed_same_predictions(name):
    archs, y = toy(40)
    test, _ = toy(30, seed=1)
    a = get_predictor(name, SPACE, seed=5, **FAST[name]).fit(archs, y).predict(test)
    b = get_predictor(name, SPACE, seed=5, **FAST[name]).fit(archs, y).predict(test)
    assert np.array_equal(a, b)
    if name in ("gin", "bananas"):  # seeded weights: another seed gives another network
        c = get_predictor(name, SPACE, seed=6, **FAST[name]).fit(archs, y).predict(test)
        assert not np.array_equal(a, c)


def test_bad_input_is_a_one_line_error():
    archs, y = toy(10)
    p = get_predictor("rf", SPACE, **FAST["rf"])
    with pytest.raises(NasforgeError, match="not fitted"):
        p.predict(archs)
    with pytest.raises(NasforgeError, match="10 architectures but 9 targets"):
        p.fit(archs, y[:9])
    bad = y.copy()
    bad[3] = np.nan
    with pytest.raises(NasforgeError, match=r"y\[3\]"):
        p.fit(archs, bad)
    with pytest.raises(NasforgeError, match="malformed NB201 string"):
        p.fit(["|nonsense~0|", *archs[1:]], y)
    with pytest.raises(NasforgeError, match="at least 2"):
        p.fit(archs[:1], y[:1])
    with pytest.raises(NasforgeError, match="unknown predictor 'nope'; allowed: .*xgb"):
        get_predictor("nope", SPACE)
    with pytest.raises(NasforgeError, match="no encoding 'paths'"):
        get_predictor("xgb", SPACE, encoding="paths")
    with pytest.raises(NasforgeError, match="backend 'lightgbm'"):
        get_predictor("xgb", SPACE, backend="lightgbm")
    with pytest.raises(NasforgeError, match="n_estimators must be an integer >= 1"):
        get_predictor("rf", SPACE, n_estimators=0)
    with pytest.raises(NasforgeError, match="unknown graph predictor kind"):
        get_predictor("gin", SPACE, kind="gat")
    with pytest.raises(NasforgeError, match="base predictor 'seminas'"):
        get_predictor("seminas", SPACE, base="seminas")
    with pytest.raises(NasforgeError, match="multi-fidelity tabular benchmark"):
        get_predictor("lce", SPACE)


def test_gbt_falls_back_to_scikit_learn_with_a_warning(monkeypatch):
    from nasforge.estimation.predictors import models

    monkeypatch.setattr(models, "xgboost_available", lambda: False)
    monkeypatch.setattr(models, "_WARNED", set())
    with pytest.raises(NasforgeError, match="pip install 'nasforge\\[xgboost\\]'"):
        get_predictor("xgb", SPACE, backend="xgboost")
    p = get_predictor("xgb", SPACE, n_estimators=30)
    archs, y = toy(30)
    with pytest.warns(UserWarning, match="xgboost is not installed"):
        p.fit(archs, y)
    assert p.backend_ == "sklearn"


def test_tau_on_a_table_sample(nb201_c10):
    bench = nb201_c10
    recs = evaluate(lambda s: get_predictor("gp", bench.space, seed=s, kernel="tw2"), bench, "valid_acc", 200,
                    train_sizes=(20, 100), n_test=300, seeds=[0, 1])
    assert [(r["seed"], r["train_size"]) for r in recs] == [(0, 20), (0, 100), (1, 20), (1, 100)]
    for r in recs:
        assert r["kendall"] > 0.3, r
    assert np.mean([r["kendall"] for r in recs if r["train_size"] == 100]) > 0.45
    # the split never puts a test cell into a training set
    from nasforge.estimation.predictors.protocol import split

    test, train = split(len(bench.archs), (10, 500), 1000, 7)
    assert len(set(test) & set(train)) == 0 and len(train) == 500


def test_learning_curve_predictor_reads_the_low_fidelity(nb201_c10):
    bench = nb201_c10
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(bench.archs))
    y = np.asarray(bench.values("valid_acc", 200))
    tr, te = idx[:50], idx[50:450]
    p = get_predictor("lce", bench.space, benchmark=bench, with_encoding=False).fit(
        [bench.archs[i] for i in tr], y[tr])
    assert kendall_tau(p.predict([bench.archs[i] for i in te]), y[te]) > 0.4
    with pytest.raises(NasforgeError, match="early fidelity 200 is not a low fidelity"):
        get_predictor("lce", bench.space, benchmark=bench, early=[200])


def test_predictor_search_runs_in_a_study_and_is_deterministic(nb201_c10):
    from nasforge.study import Study

    bench = nb201_c10

    def run(seed):
        s = get_strategy("predictor", bench.space, seed=seed, predictor="gp", predictor_params={"kernel": "hamming"},
                         n_init=5, n_candidates=30, n_random=5)
        st = Study(f"p{seed}", bench.space, "valid_acc")
        st.optimize(s, bench, n_trials=14)
        return [str(t.arch) for t in st.trials], s

    a, s = run(1)
    b, _ = run(1)
    assert a == b and len(set(a)) == 14
    assert s.acquisition == "ei" and s.config()["predictor"] == "gp"
    assert s._n_fits == 9
    # a predictor object is stored as its spec; a predictor without uncertainty needs 'mean'
    obj = get_predictor("xgb", bench.space, seed=2, n_estimators=10)
    s2 = get_strategy("predictor", bench.space, predictor=obj)
    assert s2.acquisition == "mean"
    assert s2.config()["predictor"]["params"]["n_estimators"] == 10
    assert get_strategy("predictor", bench.space, predictor="rf").acquisition == "ei"  # trees' spread
    with pytest.raises(NasforgeError, match="needs a predictor with uncertainty"):
        get_strategy("predictor", bench.space, predictor="xgb", acquisition="ei")
    with pytest.raises(NasforgeError, match="unknown acquisition"):
        get_strategy("predictor", bench.space, acquisition="pi")


def test_cate_pretrains_caches_and_encodes(tmp_path):
    from nasforge.estimation.predictors.cate import CATEEncoder

    settings = {"dim": 8, "heads": 2, "layers": 1, "epochs": 1, "n_archs": 300, "window": 10,
                "cache_dir": tmp_path}
    enc = CATEEncoder(SPACE, **settings).pretrain()
    assert not enc.loaded_from_cache and enc.path().is_file()
    archs, _ = toy(5)
    X = enc.matrix(archs)
    assert X.shape == (5, 8) and np.all(np.isfinite(X))
    again = CATEEncoder(SPACE, **settings).pretrain()
    assert again.loaded_from_cache
    assert np.allclose(again.matrix(archs), X, atol=1e-5)
    other = CATEEncoder(SPACE, **{**settings, "seed": 1})
    assert other.path() != enc.path()
    with pytest.raises(NasforgeError, match="unknown CATE pairing"):
        CATEEncoder(SPACE, pair_by="latency")
    # a GP on the CATE encoding is a predictor like the others
    p = get_predictor("gp_encoding", SPACE, encoding="cate", cate_params=settings, seed=0)
    tr, y = toy(30)
    assert p.fit(tr, y).predict(archs).shape == (5,)
    lin = get_predictor("gp_encoding", SPACE, encoding="cate", cate_params=settings, seed=0, linear=True)
    assert lin.get_params()["linear"] and lin.fit(tr, y).predict(archs, return_std=True)[1].min() > 0


def test_cli_runs_the_protocol(nb201_c10, data_dir, tmp_path, capsys):
    import json

    from nasforge.cli.main import main

    out = tmp_path / "tau.jsonl"
    assert main(["predictors", "--predictors", "gp,xgb", "--param", "xgb.n_estimators=30", "--seeds", "2",
                 "--train-sizes", "20,50", "--test-size", "200", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    text = capsys.readouterr().out
    assert "| gp |" in text and "| xgb |" in text and "n=50" in text
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 8 and {r["predictor"] for r in recs} == {"gp", "xgb"}
    assert all(r["metric"] == "valid_acc" for r in recs)
    for argv in (["predictors", "--predictors", "nope"], ["predictors", "--train-sizes", "1,5"],
                 ["predictors", "--predictors", "gp", "--param", "rf.n_estimators=3"]):
        assert main(argv) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
