"""Group convolutions per layer, the equivariance relaxation morphism, [G]-mixed layers and the
searches over the group of each layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.data import from_arrays
from nasforge.data.rotated import rotate_images
from nasforge.errors import NasforgeError
from nasforge.oneshot.equinas import mixed_search, relaxation_search
from nasforge.spaces.equivariant import (DIHEDRAL_GROUPS, compose, elements, equivariant_space, inverse,
                                         is_subgroup, maximal_subgroups, parse_groups, plane_index)
from nasforge.spaces.equivariant_net import GroupCNN, GroupConv, MixedGroupConv, transform


def rot(x, k=1):
    return torch.rot90(x, k, dims=(-2, -1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_plane_layouts_are_permutations_and_c2_swaps_the_middle_bits():
    for n in (1, 2, 4):
        assert sorted(plane_index(n, 16)) == list(range(16))
    assert plane_index(4, 8) == list(range(8)) and plane_index(1, 8) == list(range(8))
    assert plane_index(2, 8) == [0, 2, 1, 3, 4, 6, 5, 7]


def test_lifting_and_group_layers_are_equivariant():
    x = torch.randn(2, 1, 8, 8)
    lift = GroupConv("C4", 1, 8, lifting=True)
    y, y_rot = lift(x), lift(rot(x))
    # a quarter turn of the input turns the output and moves each channel's planes on by one
    shifted = rot(y).reshape(2, 2, 4, 8, 8).roll(1, dims=2).reshape(2, 8, 8, 8)
    assert torch.allclose(y_rot, shifted, atol=1e-5)
    conv = GroupConv("C4", 8, 8)
    assert torch.allclose(conv(y_rot), rot(conv(y)).reshape(2, 2, 4, 8, 8).roll(1, dims=2).reshape(2, 8, 8, 8),
                          atol=1e-5)
    plain = GroupConv("C1", 8, 8)
    assert not torch.allclose(plain(y_rot), rot(plain(y)).reshape(2, 2, 4, 8, 8).roll(1, dims=2).reshape(2, 8, 8, 8),
                              atol=1e-3)


def test_networks_are_invariant_to_their_group_only():
    x = torch.randn(4, 1, 8, 8)
    c4, c2, c1 = (GroupCNN([g] * 3, planes=8) for g in ("C4", "C2", "C1"))
    assert torch.allclose(c4(x), c4(rot(x)), atol=1e-5) and torch.allclose(c4(x), c4(rot(x, 2)), atol=1e-5)
    assert torch.allclose(c2(x), c2(rot(x, 2)), atol=1e-5) and not torch.allclose(c2(x), c2(rot(x)), atol=1e-3)
    assert not torch.allclose(c1(x), c1(rot(x, 2)), atol=1e-3)
    n = [sum(p.numel() for p in net.parameters()) for net in (c4, c2, c1)]
    assert n[0] < n[1] < n[2]  # tied filters: the larger the group, the fewer parameters
    # a network whose last layer is plain is no longer invariant
    mixed = GroupCNN(["C4", "C4", "C1"], planes=8)
    assert not torch.allclose(mixed(x), mixed(rot(x)), atol=1e-3)


def test_relaxation_morphism_keeps_the_function():
    x = torch.randn(3, 1, 8, 8)
    net = GroupCNN(["C4"] * 4, planes=8)
    for i, g in [(0, "C2"), (1, "C1"), (2, "C2"), (3, "C1"), (0, "C1")]:
        child = net.relax(i, g)
        assert child.groups[i] == g and torch.allclose(child(x), net(x), atol=1e-5)
        net = child
    assert net.groups == ("C1", "C1", "C2", "C1")
    with pytest.raises(NasforgeError, match="cannot relax a C2 layer to C4"):
        net.layers[2].relax("C4")
    with pytest.raises(NasforgeError, match="unknown symmetry group 'D8'"):
        GroupConv("D8", 8, 8)
    with pytest.raises(NasforgeError, match="multiples of 8"):
        GroupConv("D4", 8, 4)


def test_mixed_layer_weights_its_groups():
    layer = MixedGroupConv(("C4", "C2", "C1"), 4, 8)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        layer.alpha.copy_(torch.tensor([0.0, 50.0, 0.0]))
    assert torch.allclose(layer(x), layer.convs[1](x), atol=1e-4) and layer.chosen() == "C2"
    layer.alpha.data.zero_()
    layer(x).sum().backward()
    assert layer.alpha.grad is not None and layer.alpha.grad.abs().sum() > 0


def test_equivariant_space_builds_group_cnns():
    space = equivariant_space(3)
    assert len(space) == 27
    net = space.build("layer0=C4,layer1=C2,layer2=C1", num_classes=5, in_channels=1, planes=8)
    assert net.groups == ("C4", "C2", "C1") and net(torch.randn(2, 1, 8, 8)).shape == (2, 5)
    with pytest.raises(NasforgeError):
        equivariant_space(2, groups=("C4", "C3"))


def test_rotate_images():
    rng = np.random.default_rng(0)
    x = rng.random((5, 1, 8, 8)).astype(np.float32)
    same, angles = rotate_images(x, 0.0)
    assert np.allclose(same, x) and np.all(angles == 0)
    a, ang_a = rotate_images(x, 90.0, seed=3)
    b, ang_b = rotate_images(x, 90.0, seed=3)
    assert np.array_equal(a, b) and np.all(np.abs(ang_a) <= 90) and np.array_equal(ang_a, ang_b)
    with pytest.raises(NasforgeError, match="max_degrees"):
        rotate_images(x, 270.0)


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = rng.normal(size=(90, 1, 8, 8)).astype(np.float32) * 0.3
    x[y == 0, :, :4] += 1.0
    x[y == 1, :, :, :4] += 1.0
    return from_arrays(x, y, name="tiny", seed=0)


def test_relaxation_search_relaxes_one_layer_per_generation(tiny):
    out = relaxation_search(tiny, layers=3, planes=8, population=2, generations=1, warmup_epochs=1,
                            epochs_per_generation=1, seed=0)
    assert len(out["groups"]) == 3 and sum(g != "C4" for g in out["groups"]) <= 1
    assert out["log"][1]["evaluated"] == 4  # the parent and one child per layer
    again = relaxation_search(tiny, layers=3, planes=8, population=2, generations=1, warmup_epochs=1,
                              epochs_per_generation=1, seed=0)
    assert again["groups"] == out["groups"] and again["valid_acc"] == out["valid_acc"]


def test_mixed_search_is_seeded(tiny):
    a = mixed_search(tiny, layers=2, planes=8, epochs=1, seed=1)
    b = mixed_search(tiny, layers=2, planes=8, epochs=1, seed=1)
    assert a["groups"] == b["groups"] and a["alphas"] == b["alphas"] and len(a["groups"]) == 2
    assert all(abs(sum(w) - 1) < 1e-5 for w in a["alphas"])


# --- D4: rotations and flips -------------------------------------------------------------------

D4 = elements("D4")


def act(y, u, block=8):
    """How element ``u`` moves a regular feature map: plane of base element g -> that of u g,
    each plane transformed by u."""
    b, p, h, w = y.shape
    index = {e: i for i, e in enumerate(D4[:block])}
    out = torch.empty_like(y)
    src = transform(y, u).reshape(b, p // block, block, h, w)
    dst = out.view(b, p // block, block, h, w)
    for i, g in enumerate(D4[:block]):
        dst[:, :, index[compose(u, g)]] = src[:, :, i]
    return out


def test_d4_group_law_matches_the_image_transforms():
    img = torch.randn(5, 5)
    for a in D4:
        assert torch.equal(transform(transform(img, inverse(a)), a), img)
        for b in D4:
            assert torch.equal(transform(transform(img, b), a), transform(img, compose(a, b)))
    assert len({transform(img, a).flatten()[:7].tolist().__repr__() for a in D4}) == 8


def test_subgroup_lattice_and_parsing():
    assert maximal_subgroups("D4") == ["C4", "D2"] and maximal_subgroups("D2") == ["C2", "D1"]
    assert maximal_subgroups("C4") == ["C2"] and maximal_subgroups("D1") == ["C1"]
    assert maximal_subgroups("D4", ("D4", "C2", "C1")) == ["C2"]
    assert not is_subgroup("D1", "C4") and not is_subgroup("C4", "D2") and is_subgroup("C2", "D2")
    for g in DIHEDRAL_GROUPS:  # each group is closed under composition
        el = set(elements(g))
        assert {compose(a, b) for a in el for b in el} == el
        assert sorted(plane_index(g, 24, "D4")) == list(range(24))
    assert parse_groups("c1, D4,C4") == ("D4", "C4", "C1")
    with pytest.raises(NasforgeError, match="unknown symmetry group 'D3'"):
        parse_groups("D4,D3")
    with pytest.raises(NasforgeError, match="not a subgroup of the base group C4"):
        GroupConv("D1", 4, 4, base="C4")


@pytest.mark.parametrize("group", DIHEDRAL_GROUPS)
def test_dihedral_layers_are_equivariant_to_their_group_exactly(group):
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    lift = GroupConv(group, 1, 16, lifting=True, base="D4").double()
    conv = GroupConv(group, 16, 16, base="D4").double()
    y = conv(lift(x))
    for u in D4:
        y_u = conv(lift(transform(x, u)))
        same = torch.allclose(y_u, act(y, u), atol=1e-10)
        assert same == (u in elements(group)), (group, u)


def test_d4_networks_are_invariant_to_their_group_only():
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    xs = torch.cat([transform(x, u) for u in D4])  # all eight images of x, in one batch
    for groups in [[g] * 2 for g in DIHEDRAL_GROUPS] + [["D4", "C1"]]:
        with torch.no_grad():
            out = GroupCNN(groups, planes=8, base="D4").double()(xs).reshape(8, 2, -1)
        for u, out_u in zip(D4, out):
            invariant = all(u in elements(g) for g in groups)
            assert torch.allclose(out_u, out[0], atol=1e-9) == invariant, (groups, u)


def test_d4_parameter_counts():
    def count(group, planes=32):
        return sum(p.numel() for p in GroupCNN([group] * 4, planes=planes, base="D4").parameters())
    # lifting: planes/|G| filters of 1x3x3 and a bias each; three layers of (planes/|G|) x planes x 9 + bias
    for group, order in (("D4", 8), ("C4", 4), ("D2", 4), ("C2", 2), ("D1", 2), ("C1", 1)):
        c = 32 // order
        assert count(group) == c * 9 + c + 3 * (c * 32 * 9 + c) + (4 * 10 + 10), group
    assert count("D4") < count("C4") == count("D2") < count("C2") == count("D1") < count("C1")


def test_d4_relaxation_morphisms_keep_the_function():
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    for path in (("C4", "C2", "C1"), ("D2", "D1", "C1"), ("D2", "C2")):
        net = GroupCNN(["D4"] * 3, planes=16).double()
        ref = net(x)
        for g in path:
            for i in range(3):
                net = net.relax(i, g)
                assert torch.allclose(net(x), ref, atol=1e-10), (path, g, i)
        assert net.groups == (path[-1],) * 3
    with pytest.raises(NasforgeError, match="cannot relax a D1 layer to C2"):
        GroupConv("D1", 8, 8).relax("C2")


def test_d4_mixed_layers_space_and_searches(tiny):
    layer = MixedGroupConv(DIHEDRAL_GROUPS, 8, 16)
    with torch.no_grad():
        layer.alpha.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 60.0, 0.0]))
    x = torch.randn(2, 8, 8, 8)
    assert layer.chosen() == "D1" and torch.allclose(layer(x), layer.convs[4](x), atol=1e-4)
    space = equivariant_space(2, groups=("D4", "C4", "C1"))
    assert len(space) == 9 and space.name == "equivariant-d4"
    net = space.build("layer0=C4,layer1=C1", num_classes=3, in_channels=1, planes=16)
    assert net.base == "D4" and net.head.in_features == 2
    out = relaxation_search(tiny, layers=2, planes=16, population=2, generations=1, warmup_epochs=1,
                            epochs_per_generation=1, seed=0, groups=DIHEDRAL_GROUPS)
    assert out["log"][0]["members"][0][0] == ("D4", "D4")
    assert out["log"][1]["evaluated"] == 5  # the parent and two children (C4, D2) per layer
    assert all(g in ("D4", "C4", "D2") for g in out["groups"])
    d = mixed_search(tiny, layers=2, planes=16, epochs=1, seed=0, groups="D4,D1,C1")
    assert len(d["alphas"][0]) == 3 and all(g in ("D4", "D1", "C1") for g in d["groups"])
    with pytest.raises(NasforgeError, match="no largest member"):
        relaxation_search(tiny, layers=2, planes=16, groups=("C4", "D1"))


def test_rotated_digits_can_be_mirrored():
    from nasforge.data.rotated import load_rotated_digits

    plain = load_rotated_digits(seed=0, max_degrees=0.0)
    flipped = load_rotated_digits(seed=0, max_degrees=0.0, flip=True)
    assert flipped.name == "digits-rot0-flip-8px" and np.array_equal(plain.y_train, flipped.y_train)
    same = np.all(plain.x_train == flipped.x_train, axis=(1, 2, 3))
    mirrored = np.all(plain.x_train[..., ::-1] == flipped.x_train, axis=(1, 2, 3))
    assert np.all(same | mirrored) and 0.4 < mirrored.mean() < 0.6
    again = load_rotated_digits(seed=0, max_degrees=0.0, flip=True)
    assert np.array_equal(again.x_train, flipped.x_train)
