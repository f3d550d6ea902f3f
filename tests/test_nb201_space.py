import numpy as np
import pytest

from nasforge import NasforgeError
from nasforge.spaces import NB201Space, get_space
from nasforge.spaces.nb201 import OPS

OFFICIAL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def space():
    return NB201Space()


def test_size_and_round_trip(space):
    archs = list(space)
    assert len(space) == 15625 == len(set(archs))
    for a in archs[::7]:
        assert space.parse(space.format(a)) == a
    a = space.parse(OFFICIAL)
    assert str(a) == OFFICIAL
    assert tuple(a) == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "3 node groups"),
        (OFFICIAL.replace("avg_pool_3x3", "max_pool_3x3"), "unknown operation 'max_pool_3x3'"),
        (OFFICIAL.replace("avg_pool_3x3~1", "avg_pool_3x3~0"), "node 2, edge 2"),
        (OFFICIAL.replace("|+|skip_connect~0|", "|+|skip_connect0|"), "lacks '~"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "needs 2 input edge"),
        ("nor_conv_3x3~0|+|a~0|b~1|+|c~0|d~1|e~2|", "must start and end with '|'"),
    ],
)
def test_malformed_strings_say_what_and_where(space, text, needle):
    with pytest.raises(NasforgeError) as err:
        space.parse(text)
    assert needle in str(err.value)


def test_neighbors_and_mutation(space):
    a = space.parse(OFFICIAL)
    nb = space.neighbors(a)
    assert len(nb) == 24 == len(set(nb)) and a not in nb
    assert all(sum(x != y for x, y in zip(a, n)) == 1 for n in nb)
    rng = np.random.default_rng(0)
    for _ in range(200):
        m = space.mutate(a, rng)
        assert m in nb


def test_sampling_is_seeded_and_covers_ops(space):
    s1 = [space.sample(np.random.default_rng(3)) for _ in range(5)]
    s2 = [space.sample(np.random.default_rng(3)) for _ in range(5)]
    assert s1 == s2
    rng = np.random.default_rng(0)
    seen = {op for _ in range(200) for op in space.sample(rng)}
    assert seen == set(OPS)


def test_canonical_key_classes(space):
    assert len({space.canonical_key(a) for a in space}) == 6466
    assert len({space.functional_key(a) for a in space}) == 4930
    # the order of a sum does not matter; a dead branch (cut off from the output) does not matter
    a = space.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|skip_connect~2|")
    b = space.parse("|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|skip_connect~2|")
    assert space.canonical_key(a) != space.canonical_key(b)  # these compute different functions
    c = space.parse("|avg_pool_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    d = space.parse("|nor_conv_1x1~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    assert space.canonical_key(c) == space.canonical_key(d)  # node 1 never reaches the output
    e = space.parse("|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|")
    f = space.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|")
    assert space.canonical_key(e) == space.canonical_key(f)  # skip is the identity


def test_encodings_and_graph(space):
    a = space.parse(OFFICIAL)
    oh = space.encode(a, "onehot")
    assert oh.shape == (30,) and oh.sum() == 6
    assert list(space.encode(a, "index")) == [3, 3, 4, 1, 3, 1]
    adj, labels = space.graph(a)
    assert adj.shape == (8, 8) and labels[0] == "input" and labels[-1] == "output"
    assert np.all(np.tril(adj) == 0)  # a DAG in topological order
    assert adj[0, 1:4].tolist() == [1, 1, 0]  # edges 0->1, 0->2 start at the input; 1->2 does not
    assert adj[1, 3] == 1  # op on edge 0->1 feeds the op on edge 1->2
    assert space.encode(a, "adjacency").shape == (28 + 30,)
    with pytest.raises(NasforgeError, match="allowed: onehot"):
        space.encode(a, "path2")


def test_registry():
    assert isinstance(get_space("nb201"), NB201Space)
    with pytest.raises(NasforgeError, match="allowed: darts, macro, mbv3, nb101, nb201, nbgraph"):
        get_space("darts-xl")
