import itertools
import pickle

import numpy as np
import pytest

from nasforge import NasforgeError
from nasforge.spaces import get_space
from nasforge.spaces.nbgraph import LINK_PATTERNS, OPS_FULL, OPS_PROTEINS, NBGraphArch, NBGraphSpace


@pytest.fixture(scope="module")
def space():
    return NBGraphSpace()


@pytest.fixture(scope="module")
def proteins():
    return NBGraphSpace("proteins")


@pytest.fixture(scope="module")
def cora():
    from nasforge.estimation import load_nbgraph

    return load_nbgraph("cora")


def _is_normal_form(arch):
    """The package's own test: the pair is unchanged by its normal form."""
    from nas_bench_graph.architecture import Arch

    return Arch(list(arch.links), list(arch.ops)).check_isomorph()


# --- the space -----------------------------------------------------------------------------------
def test_sizes_match_the_benchmark_keys(space, proteins):
    from nas_bench_graph import light_read

    assert len(space) == 26206 == len(set(space))
    assert len(proteins) == 2021 == len(set(proteins))
    assert {space.canonical_key(a) for a in space} == set(light_read("cora"))
    assert {proteins.canonical_key(a) for a in proteins} == set(light_read("proteins"))
    assert set(proteins) <= set(space)
    assert all(set(a.ops) <= set(OPS_PROTEINS) for a in proteins)
    keys = [space.canonical_key(a) for a in space]
    assert keys == sorted(keys)  # iteration in benchmark-key order


def test_registry_and_op_sets():
    assert isinstance(get_space("nbgraph"), NBGraphSpace)
    assert get_space("nbgraph", ops="proteins").ops == OPS_PROTEINS
    assert NBGraphSpace().ops == OPS_FULL
    with pytest.raises(NasforgeError, match="unknown NAS-Bench-Graph op set 'small'.*proteins"):
        NBGraphSpace("small")


def test_arch_value_semantics(space):
    a = space.parse("0-1-2-3|gcn,gin,fc,cheb")
    assert str(a) == "0-1-2-3|gcn,gin,fc,cheb"
    assert repr(a) == "NBGraphArch('0-1-2-3|gcn,gin,fc,cheb')"
    assert a.links == (0, 1, 2, 3) and a.ops == ("gcn", "gin", "fc", "cheb")
    assert a == ((0, 1, 2, 3), ("gcn", "gin", "fc", "cheb"))
    assert hash(a) == hash(((0, 1, 2, 3), ("gcn", "gin", "fc", "cheb")))
    b = pickle.loads(pickle.dumps(a))
    assert b == a and type(b) is NBGraphArch
    with pytest.raises(AttributeError):
        a.links = (0, 0, 0, 0)


def test_parse_format_round_trip(space, proteins):
    archs = list(space)
    for a in archs[::13]:
        s = space.format(a)
        assert s == str(a)
        assert space.parse(s) is a or space.parse(s) == a
        assert space.coerce(s) == a and space.coerce(a) == a
        assert space.coerce((list(a.links), list(a.ops))) == a
    for a in proteins:
        assert proteins.parse(proteins.format(a)) == a
    assert space.parse("  0-1-2-3|gcn,gin,fc,cheb \n") == space.parse("0-1-2-3|gcn,gin,fc,cheb")


def test_non_canonical_input_is_canonicalised(space):
    from nas_bench_graph.architecture import Arch

    rng = np.random.default_rng(3)
    wirings = [(0, a, b, c) for a in range(2) for b in range(3) for c in range(4)]
    assert len(wirings) == 24
    for _ in range(400):
        links = wirings[int(rng.integers(24))]
        ops = tuple(OPS_FULL[int(i)] for i in rng.integers(len(OPS_FULL), size=4))
        if set(ops) == {"skip"}:
            continue
        a = space.coerce((links, ops))
        assert a in space and _is_normal_form(a)
        assert space.canonical_key((links, ops)) == Arch(list(links), list(ops)).valid_hash()
        assert sorted(a.ops) == sorted(ops)
        text = "-".join(map(str, links)) + "|" + ",".join(ops)
        assert space.parse(text) == a
    # leaves in another order: the same cell
    assert space.parse("0-0-0-0|gin,gcn,gat,fc") == space.parse("0-0-0-0|gat,gcn,fc,gin")
    assert NBGraphArch((0, 0, 0, 2), ("gcn", "gat", "fc", "gin")) not in space
    assert space.coerce(NBGraphArch((0, 0, 0, 2), ("gcn", "gat", "fc", "gin"))) in space


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "exactly one '|'"),
        ("0-1-2-3 gcn,gin,fc,cheb", "exactly one '|'"),
        ("0-1-2-3|gcn|gin,fc,cheb", "found 2"),
        ("0-1-2|gcn,gin,fc,cheb", "has 3 entries separated by '-'"),
        ("0-1-2-3|gcn,gin,fc", "has 3 entries separated by ','"),
        ("0-x-2-3|gcn,gin,fc,cheb", "link 2 'x' (at character 2) is not a non-negative integer"),
        ("0-1--3|gcn,gin,fc,cheb", "link 3 '' (at character 4)"),
        ("0-1-3-3|gcn,gin,fc,cheb", "link 3 (at character 4) makes node 3 read from 3"),
        ("1-1-2-3|gcn,gin,fc,cheb", "node 1 read from 1, but it may only read from 0..0"),
        ("0-1-2-3|gcn,gin,mlp,cheb", "op 3 'mlp' (at character 16)"),
        ("0-1-2-3|gcn,gin,mlp,cheb", "allowed: gat, gcn, gin, cheb, sage, arma, graph, fc, skip"),
        ("0-1-2-3|skip,skip,skip,skip", "all four operations are 'skip'"),
    ],
)
def test_malformed_strings_say_what_and_where(space, text, needle):
    with pytest.raises(NasforgeError) as err:
        space.parse(text)
    assert needle in str(err.value)


def test_proteins_rejects_other_ops(proteins):
    with pytest.raises(NasforgeError, match="'gat'.*proteins op set; allowed: gcn, sage, arma, fc, skip"):
        proteins.parse("0-1-2-3|gat,gcn,fc,skip")
    with pytest.raises(NasforgeError, match="unknown operation 'gin' at node 2"):
        proteins.coerce(((0, 1, 2, 3), ("gcn", "gin", "fc", "skip")))


@pytest.mark.parametrize(
    "bad, needle",
    [
        (42, "not a NAS-Bench-Graph architecture"),
        (((0, 1, 2), ("gcn",) * 4), "links must be 4 integers"),
        (((0, 1, 2, 3), "gcn"), "ops must be 4 operation names"),
        (((0, 1, 2, 4), ("gcn",) * 4), "node 4 reads from 4"),
        (((0, 1.5, 2, 3), ("gcn",) * 4), "link of node 2 must be an integer"),
        (((0, 0, 0, 0), ("skip",) * 4), "all four operations are 'skip'"),
        (((0, 0, 0, 0), ("gcn", ["gat"], "fc", "fc")), "unknown operation ['gat'] at node 2"),
    ],
)
def test_coerce_errors(space, bad, needle):
    with pytest.raises(NasforgeError) as err:
        space.coerce(bad)
    assert needle in str(err.value)
    assert bad not in space


def test_sample_mutate_neighbors_stay_canonical(space, proteins):
    for sp, n in ((space, 150), (proteins, 60)):
        rng = np.random.default_rng(0)
        for _ in range(n):
            a = sp.sample(rng)
            assert a in sp and _is_normal_form(a)
            m = sp.mutate(a, rng)
            nbrs = sp.neighbors(a)
            assert m != a and m in sp and _is_normal_form(m)
            assert m in nbrs
            assert a not in nbrs and len(nbrs) == len(set(nbrs)) > 0
            assert all(b in sp for b in nbrs)
            assert nbrs == sp.neighbors(str(a))  # fixed order


def test_neighbors_cover_op_and_link_changes(space):
    a = space.parse("0-1-2-3|gcn,gin,fc,cheb")
    nbrs = space.neighbors(a)
    assert space.parse("0-1-2-3|gat,gin,fc,cheb") in nbrs
    assert space.coerce(((0, 0, 0, 0), a.ops)) in nbrs
    # at most 4 x 8 op changes plus 8 link patterns
    assert len(nbrs) <= 4 * 8 + 8


def test_seeded_determinism(space):
    def run(seed):
        rng = np.random.default_rng(seed)
        out = [space.sample(rng) for _ in range(20)]
        out += [space.mutate(out[i], rng) for i in range(20)]
        return out

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_sample_is_roughly_uniform(proteins):
    rng = np.random.default_rng(1)
    draws = [proteins.index(proteins.sample(rng)) for _ in range(20000)]
    counts = np.bincount(draws, minlength=len(proteins))
    assert counts.min() > 0 and counts.max() < 30  # expected ~9.9 per architecture


def test_encodings_and_graph(space, proteins):
    a = space.parse("0-0-1-1|gcn,gin,fc,cheb")
    assert str(a) == "0-0-1-1|gcn,gin,cheb,fc"  # the two leaves read by node 1: sorted
    v = space.encode(a)
    assert v.shape == (9 + 4 * 9,) and v.sum() == 5
    assert v[LINK_PATTERNS.index((0, 0, 1, 1))] == 1
    assert v[9 + OPS_FULL.index("gcn")] == 1 and v[9 + 3 * 9 + OPS_FULL.index("fc")] == 1
    assert proteins.encode(proteins.sample(np.random.default_rng(0))).shape == (9 + 4 * 5,)
    adj, labels = space.graph(a)
    assert labels == ["input", "gcn", "gin", "cheb", "fc", "output"]
    expected = np.zeros((6, 6), dtype=np.int8)
    for src, dst in [(0, 1), (0, 2), (1, 3), (1, 4), (2, 5), (3, 5), (4, 5)]:
        expected[src, dst] = 1
    assert (adj == expected).all()
    assert space.encode(a, "adjacency").shape == (15 + 36,)
    for b in itertools.islice(space, 0, None, 997):
        adj, _ = space.graph(b)
        assert (np.tril(adj) == 0).all() and adj[:, 0].sum() == 0 and adj[5].sum() == 0
        assert adj[1:5].sum(axis=1).min() == 1  # every computing node feeds a node or the output
    with pytest.raises(NasforgeError, match="unknown encoding 'path'.*onehot, adjacency"):
        space.encode(a, "path")


def test_build_not_yet(space):
    with pytest.raises(NotImplementedError, match="not implemented yet"):
        space.build(space.sample(np.random.default_rng(0)))


# --- the benchmark -------------------------------------------------------------------------------
def test_every_dataset_loads():
    from nasforge.estimation import NBGRAPH_DATASETS, load_nbgraph

    assert len(NBGRAPH_DATASETS) == 9
    for d in NBGRAPH_DATASETS:
        b = load_nbgraph(d)
        assert b.name == f"nbgraph:{d}"
        assert len(b) == (2021 if d == "proteins" else 26206)
        assert b.space.op_set == ("proteins" if d == "proteins" else "full")
        assert b.archs == list(b.space)
        m = b.estimate(b.archs[len(b) // 2])
        assert set(m.metrics) == {"valid_perf", "test_perf", "latency", "params"}
        assert 0 < m.metrics["valid_perf"] <= 1 and 0 < m.metrics["test_perf"] <= 1
        assert m.metrics["latency"] > 0 and m.metrics["params"] > 0
        for c in b.columns.values():
            assert not np.isnan(c).any()


def test_values_are_the_package_values(cora):
    from nas_bench_graph import light_read
    from nas_bench_graph.architecture import Arch

    raw = light_read("cora")
    a = cora.space.parse("0-1-2-3|gcn,gin,fc,cheb")
    entry = raw[Arch([0, 1, 2, 3], ["gcn", "gin", "fc", "cheb"]).valid_hash()]
    m = cora.estimate(a).metrics
    assert m["valid_perf"] == pytest.approx(entry["valid_perf"])
    assert m["test_perf"] == pytest.approx(entry["perf"])
    assert m["latency"] == pytest.approx(entry["latency"])
    assert m["params"] == pytest.approx(entry["para"])
    # any spelling of the cell finds the same row
    assert cora.query("0-1-2-3|gcn,gin,fc,cheb", "valid_perf") == m["valid_perf"]
    assert cora.query(((0, 1, 2, 3), ["gcn", "gin", "fc", "cheb"]), "test_perf") == m["test_perf"]
    b = cora.space.parse("0-0-0-0|gin,gcn,gat,fc")
    assert cora.estimate("0-0-0-0|gat,fc,gin,gcn").metrics == cora.estimate(b).metrics


def test_optimum_and_percentile(cora):
    arch, best = cora.optimum("valid_perf")
    assert best == cora.values("valid_perf").max() == cora.query(arch, "valid_perf")
    assert cora.percentile("valid_perf", best) == 100.0
    assert 0 < cora.percentile("valid_perf", float(np.median(cora.values("valid_perf")))) < 100
    fastest, lat = cora.optimum("latency")  # lower is better
    assert lat == cora.values("latency").min()
    _, small = cora.optimum("params")
    assert small == cora.values("params").min()
    assert cora.higher_is_better("test_perf") and not cora.higher_is_better("latency")


def test_benchmark_errors(cora, proteins):
    from nasforge.estimation import load_nbgraph

    with pytest.raises(NasforgeError, match="unknown NAS-Bench-Graph dataset 'imagenet'.*cora.*proteins"):
        load_nbgraph("imagenet")
    with pytest.raises(NasforgeError, match="unknown metric 'accuracy'.*valid_perf, test_perf, latency, params"):
        cora.query(cora.archs[0], "accuracy")
    pb = load_nbgraph("proteins")
    with pytest.raises(NasforgeError, match="'gat'"):
        pb.estimate("0-1-2-3|gat,gcn,fc,skip")
    assert "0-1-2-3|gat,gcn,fc,skip" not in pb
    with pytest.raises(NasforgeError, match="no fidelity"):
        cora.estimate(cora.archs[0], fidelity=200)


def test_registry_spec():
    from nasforge.estimation import load_benchmark

    b = load_benchmark("nbgraph:citeseer")
    assert b.name == "nbgraph:citeseer" and len(b) == 26206


def test_no_heavy_imports_at_package_import():
    import subprocess
    import sys

    code = (
        "import sys, nasforge, nasforge.estimation, nasforge.spaces; "
        "print(any(m.startswith(('nas_bench_graph', 'torch')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_registry_family_metrics_and_hardware_parts():
    from nasforge.estimation import load_benchmark
    from nasforge.estimation.constraints import ConstraintSet
    from nasforge.estimation.registry import benchmark_families

    assert "nbgraph" in benchmark_families()
    b = load_benchmark("nbgraph")
    assert (b.name, b.default_metric, b.report_metric) == ("nbgraph:cora", "valid_perf", "test_perf")
    assert b.get_params()["report_metric"] == "test_perf"
    # the NB201 device tables describe NB201 cells only; the error says so
    with pytest.raises(NasforgeError, match="space 'nbgraph' has no device tables.*specific to the architectures "
                                            "of space.*nb201"):
        load_benchmark("nbgraph:cora+latency")
    with pytest.raises(NasforgeError, match="space 'nbgraph' has no device tables"):
        ConstraintSet(["latency_ms[pixel3] <= 3"]).bind(b.space, b)
    with pytest.raises(NasforgeError, match="space 'nbgraph' has no parameter count"):
        load_benchmark("nbgraph:cora+cost")
    # the table's own columns still serve constraints
    cons = ConstraintSet(["params <= 0.1"]).bind(b.space, b)
    assert cons.feasible_mask(b.archs[:50]) == [v <= 0.1 for v in b.values("params")[:50]]
