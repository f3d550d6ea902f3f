import dataclasses
import json

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from nasforge import NasforgeError
from nasforge.params import from_spec
from nasforge.spaces import get_space
from nasforge.spaces.nb101 import (
    CONV1X1,
    CONV3X3,
    INPUT,
    MAXPOOL3X3,
    NUM_UNIQUE_CELLS,
    OPS,
    OUTPUT,
    NB101Arch,
    NB101Space,
    make_arch,
)
from nasforge.spaces.nb101_net import nb101_param_count, vertex_channels

# --- published cells ----------------------------------------------------------------------------
# The Inception-like example of the benchmark's README / api.py docstring. Its published query
# (google-research/nasbench, NASBench.ipynb, "Basic usage" cell output) returns the stored
# isomorphic representative README_STORED and trainable_parameters: 2694282.
README_MATRIX = [
    [0, 1, 1, 1, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0],
]
README_OPS = [INPUT, CONV1X1, CONV3X3, CONV3X3, CONV3X3, MAXPOOL3X3, OUTPUT]
README_STORED = (
    [
        [0, 1, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    [INPUT, CONV3X3, CONV1X1, MAXPOOL3X3, CONV3X3, CONV3X3, OUTPUT],
)
README_PARAMS = 2_694_282

# The NAS-Bench-101 example of NNI's benchmark docs (microsoft/nni,
# docs/en_US/NAS/BenchmarksExample.ipynb): hash '00005c142e6f48ac74fdcf73e3439874',
# 'parameters': 8.55553 (millions). The same dataset entry printed in full, with
# 'trainable_parameters': 8555530, appears in dataset-extraction scripts built on the official
# API (e.g. initxu/naranker, docstrings of its NAS-Bench-101 data code).
NNI_MATRIX = [
    [0, 1, 0, 0, 1, 1, 0],
    [0, 0, 1, 0, 0, 0, 0],
    [0, 0, 0, 1, 0, 0, 1],
    [0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0],
]
NNI_OPS = [INPUT, CONV3X3, MAXPOOL3X3, CONV3X3, CONV3X3, CONV1X1, OUTPUT]
NNI_HASH = "00005c142e6f48ac74fdcf73e3439874"
NNI_PARAMS = 8_555_530

# A dataset entry printed by a public script on NASLib's NAS-Bench-101 API ("NASLIB RAW DICT
# STRUCTURE"): trainable_parameters 3468426, with UNIQUE_HASH printed as
# '00019e2cbab0bc93ca1a7816a099b2b' (31 digits there: the last one was lost in the printout).
RAW_MATRIX = [
    [0, 1, 0, 1, 0, 0, 0],
    [0, 0, 1, 0, 1, 1, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0],
]
RAW_OPS = [INPUT, MAXPOOL3X3, CONV3X3, MAXPOOL3X3, CONV1X1, MAXPOOL3X3, OUTPUT]
RAW_PARAMS = 3_468_426
RAW_HASH_PREFIX = "00019e2cbab0bc93ca1a7816a099b2b"

# NASLib's NAS-Bench-101 test (automl/NASLib, tests/test_nb101_search_space.py): HASHSPEC
# 'ff940d27cbe9ed0a639a68a9c3f87283' is looked up in a subset of the benchmark and must give
# FIXED_ARCH, whose ops are coded with NASLib's list [input, output, maxpool3x3, conv1x1, conv3x3].
NASLIB_HASH = "ff940d27cbe9ed0a639a68a9c3f87283"
NASLIB_FIXED_ARCH = (0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0,
                     0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 3, 3, 4, 1)
NASLIB_OPS = [INPUT, OUTPUT, MAXPOOL3X3, CONV1X1, CONV3X3]


@pytest.fixture(scope="module")
def space():
    return NB101Space()


def _text(matrix, ops):
    return json.dumps({"matrix": matrix, "ops": ops})


def _relabel(arch, rng):
    """An isomorphic copy of ``arch``: its interior vertices in another topological order."""
    n = arch.num_vertices
    m = np.array(arch.matrix)
    order, placed = [0], {0}
    while len(order) < n - 1:
        ready = [v for v in range(1, n - 1) if v not in placed and all(u in placed for u in np.nonzero(m[:, v])[0])]
        v = ready[int(rng.integers(len(ready)))]
        order.append(v)
        placed.add(v)
    order.append(n - 1)
    new = m[np.ix_(order, order)]
    return make_arch(new.tolist(), [arch.ops[v] for v in order])


# --- parsing, validation, pruning --------------------------------------------------------------
def test_round_trip_and_canonical_string(space):
    a = space.parse(_text(NNI_MATRIX, NNI_OPS))
    assert isinstance(a, NB101Arch) and a in space
    assert space.format(a) == str(a) and "\n" not in str(a)
    assert space.parse(space.format(a)) == a
    assert space.coerce({"matrix": NNI_MATRIX, "ops": NNI_OPS}) == a
    assert space.coerce((np.array(NNI_MATRIX), NNI_OPS)) == a
    assert space.coerce((np.array(NNI_MATRIX, dtype=bool), NNI_OPS)) == a
    assert hash(a) == hash(space.parse(json.dumps({"ops": NNI_OPS, "matrix": NNI_MATRIX}, indent=2)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.ops = ()
    rng = np.random.default_rng(1)
    for _ in range(50):
        s = space.sample(rng)
        assert space.parse(space.format(s)) == s


@pytest.mark.parametrize(
    "text, needle",
    [
        ("not json", "not JSON"),
        ('{"matrix": [[0, 1], [0, 0]]}', "exactly the keys 'matrix' and 'ops'"),
        (_text([[0] * 8 for _ in range(8)], [INPUT] + [CONV3X3] * 6 + [OUTPUT]), "8 rows; allowed: 2 to 7"),
        (_text([[0, 1, 0], [0, 0, 1], [0, 0]], [INPUT, CONV3X3, OUTPUT]), "row 2 must hold 3 entries"),
        (_text([[0, 1], [0, 0]], [INPUT, CONV3X3, OUTPUT]), "3 ops for a 2x2 matrix"),
        (_text([[0, 2], [0, 0]], [INPUT, OUTPUT]), "matrix[0][1] is 2; allowed: 0 or 1"),
        (_text([[0, 0.5], [0, 0]], [INPUT, OUTPUT]), "matrix[0][1] is 0.5; allowed: 0 or 1"),
        (_text([[0, 1, 1], [0, 0, 1], [0, 1, 0]], [INPUT, CONV3X3, OUTPUT]), "matrix[2][1] = 1 is a backward edge"),
        (_text([[1, 1], [0, 0]], [INPUT, OUTPUT]), "self-loop"),
        (_text([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [INPUT, "conv5x5", OUTPUT]), "unknown operation 'conv5x5' at vertex 1"),
        (_text([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [CONV3X3, CONV3X3, OUTPUT]), "first vertex must be 'input'"),
        (_text([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [INPUT, CONV3X3, CONV3X3]), "last vertex must be 'output'"),
        (_text([[0, 1, 0], [0, 0, 0], [0, 0, 0]], [INPUT, CONV3X3, OUTPUT]), "does not reach the output"),
        (_text([[0, 0], [0, 0]], [INPUT, OUTPUT]), "disconnected"),
        (_text(np.triu(np.ones((7, 7), int), 1).tolist(), [INPUT] + [CONV3X3] * 5 + [OUTPUT]),
         "21 edges after pruning; allowed: at most 9"),
    ],
)
def test_invalid_cells_are_one_line_errors(space, text, needle):
    with pytest.raises(NasforgeError) as err:
        space.parse(text)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def test_pruning_matches_the_official_model_spec(space):
    # vertex 1 is not reachable from the input; vertex 3 does not reach the output
    matrix = [
        [0, 0, 1, 1, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    a = space.parse(_text(matrix, [INPUT, CONV1X1, CONV3X3, MAXPOOL3X3, OUTPUT]))
    assert a.matrix == ((0, 1, 0), (0, 0, 1), (0, 0, 0))
    assert a.ops == (INPUT, CONV3X3, OUTPUT)
    # edges to pruned vertices do not count towards the limit of 9 (as in the benchmark)
    big = np.zeros((7, 7), int)
    big[0, 1] = big[1, 6] = 1
    big[0, 2:6] = 1  # 4 edges into vertices 2..5, which reach nothing
    big[2, 3:6] = 1
    big[3, 4:6] = 1
    big[4, 5] = 1  # 10 edges in all, 2 after pruning
    b = space.coerce((big, [INPUT] + [CONV3X3] * 5 + [OUTPUT]))
    assert b.num_edges == 2 and b.num_vertices == 3
    # an unpruned NB101Arch value is not in the space; coerce prunes it
    raw = NB101Arch(tuple(map(tuple, matrix)), (INPUT, CONV1X1, CONV3X3, MAXPOOL3X3, OUTPUT))
    assert raw not in space and space.coerce(raw) == a


# --- the official graph hash -------------------------------------------------------------------
def test_official_hashes(space):
    assert space.hash(space.coerce((NNI_MATRIX, NNI_OPS))) == NNI_HASH
    assert space.hash(space.coerce((RAW_MATRIX, RAW_OPS))).startswith(RAW_HASH_PREFIX)
    m = np.array(NASLIB_FIXED_ARCH[:49]).reshape(7, 7)
    ops = [NASLIB_OPS[i] for i in NASLIB_FIXED_ARCH[49:]]
    naslib = space.coerce((m, ops))
    assert space.hash(naslib) == NASLIB_HASH == space.canonical_key(naslib)
    # the README cell and the representative the benchmark returns for it share the hash
    readme = space.coerce((README_MATRIX, README_OPS))
    stored = space.coerce(README_STORED)
    assert readme != stored and space.hash(readme) == space.hash(stored)


def test_hash_is_invariant_under_relabelling(space):
    rng = np.random.default_rng(0)
    for _ in range(60):
        a = space.sample(rng)
        b = _relabel(a, rng)
        assert space.canonical_key(a) == space.canonical_key(b)
    # but different operations or wiring give different keys
    a = space.coerce((NNI_MATRIX, NNI_OPS))
    other_ops = list(NNI_OPS)
    other_ops[2] = CONV1X1
    assert space.hash(space.coerce((NNI_MATRIX, other_ops))) != space.hash(a)


# --- sampling and local moves --------------------------------------------------------------------
def test_sampling_is_seeded_and_valid(space):
    s1 = [space.sample(np.random.default_rng(3)) for _ in range(5)]
    s2 = [space.sample(np.random.default_rng(3)) for _ in range(5)]
    assert s1 == s2
    rng = np.random.default_rng(4)
    archs = [space.sample(rng) for _ in range(300)]
    assert all(a in space and a.num_edges <= 9 for a in archs)
    assert {a.num_vertices for a in archs} >= {2, 3, 4, 5, 6}


def test_sampled_operations_are_uniform(space):
    # pruning and the validity checks depend on the matrix only, and the official sampler draws
    # every operation uniformly and independently of it: the operations of surviving interior
    # vertices are exactly uniform over the 3 choices
    rng = np.random.default_rng(7)
    counts = dict.fromkeys(OPS, 0)
    for _ in range(3000):
        for op in space.sample(rng).ops[1:-1]:
            counts[op] += 1
    observed = np.array([counts[op] for op in OPS])
    assert observed.sum() > 6000
    assert chisquare(observed).pvalue > 1e-3


def test_neighbors_and_mutation(space):
    rng = np.random.default_rng(5)
    for _ in range(25):
        a = space.sample(rng)
        nbrs = space.neighbors(a)
        assert nbrs == space.neighbors(a)  # fixed order
        keys = [space.hash(n) for n in nbrs]
        assert len(set(keys)) == len(keys) and space.hash(a) not in keys
        assert all(n in space for n in nbrs)
        for _ in range(5):
            m = space.mutate(a, rng)
            assert m in nbrs and space.hash(m) != space.hash(a)
    # the smallest cell cannot flip its only edge, but can grow a vertex of any operation
    io = space.parse(_text([[0, 1], [0, 0]], [INPUT, OUTPUT]))
    grown = space.neighbors(io)
    assert sorted(n.ops[1] for n in grown) == sorted(OPS)
    assert all(n.num_vertices == 3 for n in grown)


def test_encodings_have_fixed_length(space):
    rng = np.random.default_rng(6)
    archs = [space.sample(rng) for _ in range(40)] + [space.parse(_text([[0, 1], [0, 0]], [INPUT, OUTPUT]))]
    for a in archs:
        adj = space.encode(a, "adjacency")
        one = space.encode(a, "onehot")
        path = space.encode(a, "path")
        assert adj.shape == (36,) and one.shape == (41,) and path.shape == (364,)
        assert adj[:21].sum() == one[:21].sum() == a.num_edges
        assert one[21:].reshape(5, 4).sum(axis=1).tolist() == [1.0] * 5
        assert path.sum() >= 1
        b = _relabel(a, rng)
        assert np.array_equal(space.encode(b, "path"), path)
    io = archs[-1]
    assert space.encode(io, "path")[0] == 1.0 and space.encode(io, "adjacency")[5] == 1.0  # edge 0 -> 6
    with pytest.raises(NasforgeError, match="unknown encoding 'bogus'"):
        space.encode(io, "bogus")
    adj, labels = space.graph(io)
    assert adj.tolist() == [[0, 1], [0, 0]] and labels == [INPUT, OUTPUT]


# --- registry and configuration ------------------------------------------------------------------
def test_registry_and_spec_round_trip():
    sp = get_space("nb101")
    assert isinstance(sp, NB101Space) and sp.name == "nb101"
    spec = sp.spec()
    assert spec["params"] == {}
    again = from_spec(json.dumps(spec))
    assert isinstance(again, NB101Space) and again.spec() == spec
    assert sp.num_unique_cells() == NUM_UNIQUE_CELLS == 423_624
    with pytest.raises(TypeError):
        len(sp)
    with pytest.raises(TypeError):
        iter(sp)


# --- networks ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "matrix, ops, official",
    [
        (README_MATRIX, README_OPS, README_PARAMS),
        (README_STORED[0], README_STORED[1], README_PARAMS),
        (NNI_MATRIX, NNI_OPS, NNI_PARAMS),
        (RAW_MATRIX, RAW_OPS, RAW_PARAMS),
    ],
)
def test_parameter_counts_equal_the_published_ones(space, matrix, ops, official):
    arch = space.coerce((matrix, ops))
    assert nb101_param_count(arch) == official
    net = space.build(arch)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == official


def test_vertex_channels_split_and_truncate():
    # three vertices feed the output: 16 channels split 6/5/5; vertex 1 feeds vertex 2 too,
    # so its 6 channels are cut to 5 on that edge
    arch = make_arch(
        [[0, 1, 1, 1, 0], [0, 0, 1, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
        [INPUT, CONV3X3, CONV1X1, MAXPOOL3X3, OUTPUT],
    )
    assert vertex_channels(arch, 8, 16) == [8, 6, 5, 5, 16]
    chain = make_arch([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], [INPUT, CONV1X1, CONV3X3, OUTPUT])
    assert vertex_channels(chain, 8, 16) == [8, 16, 16, 16]


def test_small_networks_run_and_match_the_closed_form(space):
    torch.manual_seed(0)
    rng = np.random.default_rng(8)
    x = torch.randn(2, 3, 32, 32)
    archs = [space.sample(rng) for _ in range(6)]
    archs.append(make_arch(
        [[0, 1, 1, 1, 0], [0, 0, 1, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
        [INPUT, CONV3X3, CONV1X1, MAXPOOL3X3, OUTPUT],
    ))
    archs.append(space.parse(_text([[0, 1], [0, 0]], [INPUT, OUTPUT])))
    for a in archs:
        kw = {"stem_channels": 16, "num_stacks": 2, "cells_per_stack": 1, "num_classes": 10}
        net = space.build(a, **kw).eval()
        with torch.no_grad():
            out = net(x)
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        assert sum(p.numel() for p in net.parameters()) == nb101_param_count(a, **kw)
    # odd sides: the 2x2 pooling rounds up, as TensorFlow's 'same' padding
    net = space.build(archs[0], stem_channels=8, num_stacks=3, cells_per_stack=1)
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 3, 13, 13)).shape == (1, 10)
    with pytest.raises(NasforgeError, match="stem_channels must be a positive integer"):
        space.build(archs[0], stem_channels=0)


def test_hash_classes_are_the_isomorphism_classes_of_small_cells(space):
    # every valid cell of at most 5 vertices, by brute force: the graph hash must neither split
    # an isomorphism class nor merge two (exact classes: minimum over interior relabellings)
    import itertools

    hashes, classes, per_size = set(), set(), {}
    for n in range(2, 6):
        slots = [(i, j) for i in range(n) for j in range(i + 1, n)]
        perms = list(itertools.permutations(range(1, n - 1)))
        found = set()
        for bits in range(1 << len(slots)):
            m = [[0] * n for _ in range(n)]
            for k, (i, j) in enumerate(slots):
                m[i][j] = bits >> k & 1
            for lab in itertools.product(OPS, repeat=n - 2):
                try:
                    a = make_arch(m, [INPUT, *lab, OUTPUT])
                except NasforgeError:
                    continue
                if a.num_vertices != n:
                    continue  # counted with its pruned size
                k = a.num_vertices
                forms = []
                for p in perms:
                    order = [0, *p, k - 1]
                    forms.append((tuple(tuple(a.matrix[u][v] for v in order) for u in order),
                                  tuple(a.ops[u] for u in order)))
                classes.add(min(forms))
                hashes.add(space.hash(a))
                found.add(space.hash(a))
        per_size[n] = len(found)
    assert len(hashes) == len(classes)
    assert per_size == {2: 1, 3: 6, 4: 84, 5: 2441}
