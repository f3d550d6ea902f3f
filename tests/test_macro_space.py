import csv
import json
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from nasforge import NasforgeError
from nasforge.params import from_spec
from nasforge.spaces import get_space
from nasforge.spaces.macro import (
    BLOCK_CHOICES,
    DEPTHS,
    HARDCORENAS,
    LAYERS,
    MBV3_SIZE,
    MacroArch,
    MacroSpace,
    MBV3Arch,
    MBV3Block,
    MBV3Space,
    load_latency_table,
)
from nasforge.spaces.mbconv import count_macs, make_divisible

# params and flops fields of nas-bench-macro_cifar10.json (NAS-Bench-Macro release, as distributed
# with the benchmark; flops are multiply-adds of conv and linear weights on a 32x32 input)
MACRO_PUBLISHED = {
    "02012100": (890666, 47327744),
    "11111221": (2181386, 65012224),
    "00011110": (1118378, 31390208),
    "02012220": (1886890, 65495552),
    "00220121": (2038570, 54901248),
    "10000011": (1203722, 24932864),
    "22222200": (1269610, 79266304),
    "22222211": (2077034, 92070400),
    "11222222": (2885834, 91628032),
    "00100110": (942442, 22669824),
    "22012012": (2028138, 72819200),
    "22012112": (2147818, 77068800),
    "11210000": (603722, 34902528),
    "02210000": (628522, 38793728),
}

# parameter counts of the HardCoRe-NAS A-F networks at 1000 classes, as timm builds them
# (hardcorenas_a ... hardcorenas_f; timm's model cards round them to 5.26M ... 8.2M)
HARDCORENAS_PARAMS = {"a": 5260232, "b": 5176544, "c": 5521224, "d": 7500208, "e": 8070992, "f": 8199688}


@pytest.fixture(scope="module")
def macro():
    return MacroSpace()


@pytest.fixture(scope="module")
def mbv3():
    return MBV3Space(input_size=32, num_classes=10)


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


# --- NAS-Bench-Macro ----------------------------------------------------------------------------
def test_macro_enumerates_every_arch_once(macro):
    archs = list(macro)
    assert len(macro) == macro.size == len(archs) == 3**8 == 6561
    assert len(set(archs)) == 6561
    assert str(archs[0]) == "00000000" and str(archs[-1]) == "22222222"
    texts = [macro.format(a) for a in archs]
    assert len(set(texts)) == 6561 and all(len(t) == LAYERS for t in texts)
    assert all(macro.parse(t) is a for t, a in zip(texts, archs))
    assert macro.parse(" 01210121 ") == MacroArch((0, 1, 2, 1, 0, 1, 2, 1))
    assert macro.coerce([0, 1, 2, 1, 0, 1, 2, 1]) == macro.parse("01210121")
    assert macro.parse("01210121") in macro and "01210121" not in macro


@pytest.mark.parametrize("bad", ["", "0121012", "012101210", "01210123", "0121o121", "0,1,2,1,0,1,2,1"])
def test_macro_bad_strings(macro, bad):
    with pytest.raises(NasforgeError) as info:
        macro.parse(bad)
    msg = str(info.value)
    assert "\n" not in msg and repr(bad) in msg
    assert "8 characters" in msg and "0 (identity), 1 (MB3_K3) or 2 (MB6_K5)" in msg


def test_macro_bad_values(macro):
    with pytest.raises(NasforgeError, match="string is expected"):
        macro.parse(1210121)
    with pytest.raises(NasforgeError, match="not a NAS-Bench-Macro architecture"):
        macro.coerce([0, 1, 3, 1, 0, 1, 2, 1])
    with pytest.raises(NasforgeError, match="not a NAS-Bench-Macro architecture"):
        macro.format("01210121")


def test_macro_neighbors_and_mutate(macro):
    arch = macro.parse("01210121")
    nbrs = macro.neighbors(arch)
    assert len(nbrs) == 16 == len(set(nbrs)) and arch not in nbrs
    assert all(sum(x != y for x, y in zip(arch, n)) == 1 for n in nbrs)
    rng = np.random.default_rng(0)
    seen = Counter(macro.mutate(arch, rng) for _ in range(800))
    assert set(seen) == set(nbrs)  # every neighbour reachable, nothing else
    assert macro.neighbors("01210121") == nbrs  # fixed order, strings accepted


def test_macro_canonical_key(macro):
    # within a stage, identities after the first layer move to the stage's end (same network)
    assert str(macro.canonical_key("10102010")) == "10120010"
    assert macro.canonical_key("00010000") == macro.canonical_key("00001000")
    assert macro.canonical_key("01000000") != macro.canonical_key("10000000")  # the first layer strides
    keys = {macro.canonical_key(a) for a in macro}
    assert len(keys) == 3969  # the networks the benchmark trained
    for a in ("10102010", "00001000", "20201102"):
        k = macro.canonical_key(a)
        assert macro.param_count(a) == macro.param_count(k) and macro.flops(a) == macro.flops(k)


@pytest.mark.parametrize("text", sorted(MACRO_PUBLISHED))
def test_macro_published_params_and_flops(macro, text):
    params, flops = MACRO_PUBLISHED[text]
    assert macro.param_count(text) == params
    assert macro.flops(text) == flops


def test_macro_closed_forms_match_built_network(macro):
    for text in ("00000000", "22222222", "01210121", "20100220"):
        net = macro.build(text)
        assert _n_params(net) == macro.param_count(text)
        assert count_macs(net, 32) == macro.flops(text)
    # extremes of the space, by the closed forms
    params = [macro.param_count(a) for a in macro]
    assert min(params) == macro.param_count("00000000") == 387882
    assert max(params) == macro.param_count("22222222") == 2932586


def test_macro_forward(macro):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for text in ("00000000", "22222222", "10210121"):
        net = macro.build(text).eval()
        with torch.no_grad():
            assert net(x).shape == (2, 10)
    assert macro.build("01210121", num_classes=100)(x).shape == (2, 100)


def test_macro_encodings_and_graph(macro):
    arch = macro.parse("01210121")
    onehot = macro.encode(arch)
    assert onehot.shape == (24,) and onehot.sum() == 8
    assert onehot.reshape(8, 3).argmax(1).tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    assert macro.encode(arch, "index").tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    with pytest.raises(NasforgeError, match="allowed: onehot, index"):
        macro.encode(arch, "adjacency")
    assert len({macro.encode(a).tobytes() for a in macro}) == 6561
    adj, labels = macro.graph(arch)
    assert adj.shape == (10, 10) and adj.sum() == 9
    assert all(adj[i, i + 1] == 1 for i in range(9))
    assert labels == ["input", "identity", "mb3_k3", "mb6_k5", "mb3_k3", "identity", "mb3_k3", "mb6_k5",
                      "mb3_k3", "output"]
    assert set(labels[1:-1]) <= set(macro.ops)


def test_macro_sampling_is_uniform(macro):
    rng = np.random.default_rng(123)
    samples = [macro.sample(rng) for _ in range(3000)]
    ops = np.array(samples)
    for layer in range(LAYERS):
        counts = np.bincount(ops[:, layer], minlength=3)
        assert chisquare(counts).pvalue > 1e-3
    assert chisquare(np.bincount(ops.ravel(), minlength=3)).pvalue > 1e-3
    rng2 = np.random.default_rng(123)
    assert [macro.sample(rng2) for _ in range(5)] == samples[:5]  # seeded


# --- MobileNetV3-like (HardCoRe-NAS) ------------------------------------------------------------
def test_mbv3_round_trip(mbv3):
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = mbv3.sample(rng)
        text = mbv3.format(a)
        assert mbv3.parse(text) == a and hash(mbv3.parse(text)) == hash(a)
        assert all(len(stage) in DEPTHS for stage in a)
    a_text = "k5e3,k5e3se|k5e3,k5e6se|k5e6se,k5e6se|k5e6se,k5e6se|k5e6se,k5e6se"
    assert str(HARDCORENAS["a"]) == a_text
    assert mbv3.parse(" k5e3, k5e3se | k5e3,k5e6se|k5e6se,k5e6se|k5e6se,k5e6se|k5e6se,k5e6se ") == HARDCORENAS["a"]
    nested = [[(5, 3, False), (5, 3, True)], [(5, 3, False), (5, 6, True)]] + [[(5, 6, True)] * 2] * 3
    assert mbv3.coerce(nested) == HARDCORENAS["a"]
    assert HARDCORENAS["a"].depths == (2, 2, 2, 2, 2)


@pytest.mark.parametrize("bad, why", [
    ("k5e3,k5e3", "1 stage"),
    ("k5e3|k5e3,k5e3|k5e3,k5e3|k5e3,k5e3|k5e3,k5e3", "stage 1 has 1 blocks; allowed depths: 2, 3, 4"),
    ("k5e3,k5e3,k5e3,k5e3,k5e3|k5e3,k5e3|k5e3,k5e3|k5e3,k5e3|k5e3,k5e3", "stage 1 has 5 blocks"),
    ("k7e3,k5e3|k5e3,k5e3|k5e3,k5e3|k5e3,k5e3|k5e3,k5e3", "allowed kernels 3, 5, expansions 3, 4, 6"),
    ("k5e3,k5e3|k5e5,k5e3|k5e3,k5e3|k5e3,k5e3|k5e3,k5e3", "'k5e5' in stage 2"),
    ("k5e3,k5e3|k5e3,mb6|k5e3,k5e3|k5e3,k5e3|k5e3,k5e3", "not written k<kernel>e<expansion>[se]"),
    ("", "1 stage"),
])
def test_mbv3_bad_strings(mbv3, bad, why):
    with pytest.raises(NasforgeError) as info:
        mbv3.parse(bad)
    msg = str(info.value)
    assert "\n" not in msg and repr(bad) in msg and why in msg


def test_mbv3_bad_values():
    with pytest.raises(NasforgeError, match="not .kernel, expansion, se."):
        MBV3Arch([[(5,), (5, 3, True)]] * 5)
    with pytest.raises(NasforgeError, match="4 stages; expected 5"):
        MBV3Arch([[(5, 3, True)] * 2] * 4)
    with pytest.raises(NasforgeError, match="input_size must be a positive integer"):
        MBV3Space(input_size=0)
    with pytest.raises(NasforgeError, match="allowed: per_choice, uniform"):
        MBV3Space(sampling="ofa")


def test_mbv3_size(mbv3):
    assert mbv3.size == MBV3_SIZE == (12**2 + 12**3 + 12**4) ** 5 == 5906234995112194080768
    with pytest.raises(TypeError, match="5,906,234,995,112,194,080,768"):
        len(mbv3)
    with pytest.raises(TypeError):
        iter(mbv3)
    assert len(BLOCK_CHOICES) == 12 == len(set(BLOCK_CHOICES))


def test_mbv3_neighbors_and_mutate(mbv3):
    arch = mbv3.parse("k5e3,k5e3se|k3e4,k5e6se,k3e3|k5e6se,k5e6se,k3e3,k3e3|k5e6se,k5e6se|k3e6,k5e4se,k5e3")
    nbrs = mbv3.neighbors(arch)
    blocks = sum(len(s) for s in arch)
    # 4 one-choice changes per block; per stage: drop the last block if deeper than 2,
    # append any of 12 blocks if shallower than 4
    expected = 4 * blocks + sum((len(s) > 2) + 12 * (len(s) < 4) for s in arch)
    assert len(nbrs) == expected == len(set(nbrs)) and arch not in nbrs
    for n in nbrs:
        changed = [i for i in range(5) if n[i] != arch[i]]
        assert len(changed) == 1
        a, b = arch[changed[0]], n[changed[0]]
        if len(a) == len(b):
            diffs = [(x, y) for x, y in zip(a, b) if x != y]
            assert len(diffs) == 1
            x, y = diffs[0]
            assert sum(u != v for u, v in zip(x, y)) == 1
        else:
            assert abs(len(a) - len(b)) == 1 and (a[: len(b)] == b or b[: len(a)] == a)
    rng = np.random.default_rng(1)
    nset = set(nbrs)
    assert all(mbv3.mutate(arch, rng) in nset for _ in range(200))


def test_mbv3_published_hardcorenas_params():
    space = MBV3Space()  # ImageNet: 224x224, 1000 classes
    for name, params in HARDCORENAS_PARAMS.items():
        assert space.param_count(HARDCORENAS[name]) == params
    assert _n_params(space.build(HARDCORENAS["a"])) == HARDCORENAS_PARAMS["a"]
    # multiply-adds at 224x224 by the closed form (equal to the hook count; see the forward test)
    assert space.flops(HARDCORENAS["a"]) == 224227936
    # SE widths follow the MobileNetV3 rule (timm: 72 -> 24, 240 -> 64, 1152 -> 288)
    assert [make_divisible(c / 4) for c in (72, 240, 480, 1152)] == [24, 64, 120, 288]


def test_mbv3_forward_and_closed_forms(mbv3):
    rng = np.random.default_rng(5)
    x = torch.randn(2, 3, 32, 32)
    for arch in [mbv3.sample(rng), HARDCORENAS["d"]]:
        net = mbv3.build(arch).eval()
        with torch.no_grad():
            assert net(x).shape == (2, 10)
        assert _n_params(net) == mbv3.param_count(arch)
        assert count_macs(net, 32) == mbv3.flops(arch)
        assert count_macs(net, 48) == mbv3.flops(arch, input_size=48)
    assert mbv3.param_count(HARDCORENAS["a"], num_classes=1000) == HARDCORENAS_PARAMS["a"]


def test_mbv3_encodings_and_graph(mbv3):
    rng = np.random.default_rng(2)
    archs = list({mbv3.sample(rng) for _ in range(200)})
    for a in archs[:20]:
        v = mbv3.encode(a)
        assert v.shape == (240,) and v.sum() == sum(len(s) for s in a)
        idx = mbv3.encode(a, "index")
        assert idx.shape == (20,) and (idx > 0).sum() == sum(len(s) for s in a)
        adj, labels = mbv3.graph(a)
        n = len(labels)
        assert n == sum(len(s) for s in a) + 2 and adj.shape == (n, n) and adj.sum() == n - 1
        assert labels[0] == "input" and labels[-1] == "output" and set(labels[1:-1]) <= set(mbv3.ops)
    assert len({mbv3.encode(a).tobytes() for a in archs}) == len(archs)
    assert len({mbv3.encode(a, "index").tobytes() for a in archs}) == len(archs)
    assert mbv3.graph(HARDCORENAS["a"])[1][1:3] == ["stage1_k5_e3", "stage1_k5_e3_se"]
    with pytest.raises(NasforgeError, match="allowed: onehot, index"):
        mbv3.encode(archs[0], "ofa")


def test_mbv3_sampling_distributions():
    rng = np.random.default_rng(7)
    space = MBV3Space(input_size=32)
    samples = [space.sample(rng) for _ in range(3000)]
    depths = np.array([[len(s) for s in a] for a in samples])
    for stage in range(5):
        counts = [(depths[:, stage] == d).sum() for d in DEPTHS]
        assert chisquare(counts).pvalue > 1e-3
    index = {b: i for i, b in enumerate(BLOCK_CHOICES)}
    first = [index[s[0]] for a in samples for s in a]
    assert chisquare(np.bincount(first, minlength=12)).pvalue > 1e-3
    kernels = Counter(b.kernel for a in samples for s in a for b in s)
    assert chisquare([kernels[3], kernels[5]]).pvalue > 1e-3

    uniform = MBV3Space(input_size=32, sampling="uniform")
    samples = [uniform.sample(rng) for _ in range(3000)]
    counts = np.bincount([len(s) - 2 for a in samples for s in a], minlength=3)
    weights = np.array([12.0**d for d in DEPTHS])
    expected = weights / weights.sum() * counts.sum()
    assert chisquare(counts, expected).pvalue > 1e-3


def test_registry_and_specs():
    m = get_space("macro")
    assert isinstance(m, MacroSpace) and m.spec() == {"class": "nasforge.spaces.macro:MacroSpace", "params": {}}
    assert isinstance(from_spec(m.spec()), MacroSpace)
    v = get_space("mbv3", input_size=64, num_classes=10, sampling="uniform")
    spec = v.spec()
    assert spec == {"class": "nasforge.spaces.macro:MBV3Space",
                    "params": {"input_size": 64, "num_classes": 10, "sampling": "uniform"}}
    back = from_spec(spec)
    assert isinstance(back, MBV3Space) and back.spec() == spec and back.input_size == 64
    assert json.loads(json.dumps(spec)) == spec


# --- latency lookup table -----------------------------------------------------------------------
def test_mbv3_latency_lut_sum(mbv3, tmp_path):
    entries = mbv3.latency_entries()
    keys = [e["key"] for e in entries]
    assert len(entries) == 2 + 5 * 2 * 12 and len(set(keys)) == len(keys)
    # a toy table: entry i costs i + 1 ms (distinct powers would do too; sums stay exact in float)
    table = {k: float(i + 1) for i, k in enumerate(keys)}
    # (part, stage, kernel, expansion, se, first block of its stage?) -> ms
    by_config = {(e["part"], e["stage"], e["kernel"], e["expansion"], e["se"],
                  e["in_channels"] != e["out_channels"]): table[e["key"]] for e in entries}
    assert len(by_config) == len(entries)
    arch = mbv3.parse("k5e3,k5e3se|k3e4,k5e6se,k3e3|k5e6se,k5e6se,k3e3,k3e3|k5e6se,k5e6se|k3e6,k5e4se,k5e3")
    expected = by_config[("stem", 0, 0, 0, False, True)] + by_config[("head", 0, 0, 0, False, True)]
    for s, stage in enumerate(arch):
        for j, b in enumerate(stage):
            expected += by_config[("block", s + 1, b.kernel, b.expansion, b.se, j == 0)]
    assert mbv3.latency_ms(arch, table) == expected
    assert len(mbv3.latency_keys(arch)) == 2 + sum(len(s) for s in arch)

    # the same table as CSV and JSON files
    csv_path = tmp_path / "lut.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*entries[0].keys(), "ms"])
        w.writeheader()
        for e in entries:
            w.writerow({**e, "ms": table[e["key"]]})
    json_path = tmp_path / "lut.json"
    json_path.write_text(json.dumps({"entries": [{**e, "ms": table[e["key"]]} for e in entries]}))
    assert load_latency_table(csv_path) == table == load_latency_table(json_path)
    assert mbv3.latency_ms(arch, csv_path) == expected == mbv3.latency_ms(arch, str(json_path))

    # a table measured for another input size does not fit
    with pytest.raises(NasforgeError, match="no entry 'stem:in3:out16:r224'.*input_size=224"):
        MBV3Space(num_classes=10).latency_ms(arch, table)
    with pytest.raises(NasforgeError, match="not found"):
        load_latency_table(tmp_path / "missing.csv")


def test_mbv3_latency_modules_run(mbv3):
    entries = mbv3.latency_entries()
    picks = [entries[0], entries[1], entries[13], entries[-2], entries[-1]]
    for e in picks:
        module, shape = mbv3.latency_module(e)
        with torch.no_grad():
            out = module.eval()(torch.zeros(shape))
        if e["part"] == "head":
            assert out.shape == (1, 10)
        else:
            assert out.shape[1] == e["out_channels"]
    assert isinstance(HARDCORENAS["a"][0][0], MBV3Block)
