import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nasforge import NasforgeError  # noqa: E402
from nasforge.spaces import NB201Space  # noqa: E402
from nasforge.spaces.nb201 import EDGES, OPS, NB201Arch  # noqa: E402
from nasforge.spaces.nb201_net import InferCell, NB201Network, nb201_param_count  # noqa: E402

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED = "|avg_pool_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_1x1~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
ALL_POOL = "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|"
# a cell with a dead-zero node 1 (its only input is `none`) feeding convolutions
SPARSE = "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|"
SKELETON = 73_306  # C=16, N=5, 10 classes: every cell without convolutions

# Published NB201 parameter counts (C=16, N=5), in units of 1e6 in the benchmark files:
# the two cells of the brief, and the benchmark-wide minimum / maximum per dataset
# (CIFAR-10: 10 classes, CIFAR-100: 100, ImageNet16-120: 120 classes).
OFFICIAL = [
    (ALL_CONV3, 10, 1_531_546),
    (MIXED, 10, 428_346),
    (ALL_NONE, 10, 73_306),
    (ALL_SKIP, 10, 73_306),
    (ALL_POOL, 10, 73_306),
    (ALL_NONE, 100, 79_156),
    (ALL_CONV3, 100, 1_537_396),
    (ALL_NONE, 120, 80_456),
    (ALL_CONV3, 120, 1_538_696),
]


def n_params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def uniform(op: str) -> NB201Arch:
    return NB201Space().coerce((op,) * 6)


@pytest.mark.parametrize("arch, classes, expected", OFFICIAL)
def test_official_parameter_counts(arch, classes, expected):
    assert nb201_param_count(arch, num_classes=classes) == expected
    assert n_params(NB201Network(arch, num_classes=classes)) == expected


def test_closed_form_over_all_cells():
    space = NB201Space()
    for arch in space:
        e3 = sum(op == "nor_conv_3x3" for op in arch)
        e1 = sum(op == "nor_conv_1x1" for op in arch)
        assert nb201_param_count(arch) == SKELETON + 243_040 * e3 + 28_000 * e1
    assert nb201_param_count(ALL_SKIP) == nb201_param_count(ALL_NONE) == SKELETON


def test_analytic_count_matches_module():
    space = NB201Space()
    rng = np.random.default_rng(0)
    archs = [uniform(op) for op in OPS] + [space.sample(rng) for _ in range(30)]
    for arch in archs:
        assert nb201_param_count(arch) == n_params(space.build(arch)), str(arch)
    # other skeleton settings
    for arch in archs[:8]:
        kw = dict(C=8, N=2, num_classes=7, in_channels=1)
        assert nb201_param_count(arch, **kw) == n_params(NB201Network(arch, input_size=8, **kw)), str(arch)


def test_attributes_and_state_dict_layout():
    net = NB201Space().build(MIXED, C=8, N=1, num_classes=5, in_channels=1, input_size=8)
    assert net.arch == NB201Space().parse(MIXED) and isinstance(net.arch, NB201Arch)
    assert (net.C, net.N, net.num_classes, net.in_channels, net.input_size) == (8, 1, 5, 1, 8)
    assert len(net.cells) == 3 * 1 + 2
    keys = set(net.state_dict())
    # the official implementation's key names
    for k in (
        "stem.0.weight",
        "stem.1.running_mean",
        "cells.0.layers.1.op.1.weight",
        "cells.1.conv_a.op.1.weight",
        "cells.1.conv_b.op.2.bias",
        "cells.1.downsample.1.weight",
        "cells.4.layers.4.op.2.running_var",
        "lastact.0.weight",
        "classifier.weight",
    ):
        assert k in keys, k
    assert net.cells[0].layers[1].op[1].weight.shape == (8, 8, 1, 1)
    assert net.cells[4].layers[4].op[1].weight.shape == (32, 32, 3, 3)


@pytest.mark.parametrize("arch", [ALL_CONV3, MIXED, SPARSE, ALL_SKIP])
@pytest.mark.parametrize("in_channels, size", [(3, 32), (1, 8)])
def test_forward_shapes(arch, in_channels, size):
    net = NB201Network(arch, C=8, N=1, num_classes=10, in_channels=in_channels, input_size=size)
    x = torch.randn(2, in_channels, size, size)
    y = net(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 10)
    assert torch.isfinite(y).all()
    net.eval()
    with torch.no_grad():
        assert net(x).shape == (2, 10)


def test_deterministic_under_seed():
    x = torch.randn(2, 3, 32, 32)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        net = NB201Network(MIXED, C=8, N=1)
        outs.append((net.state_dict(), net(x)))
    (sd_a, y_a), (sd_b, y_b) = outs
    assert sd_a.keys() == sd_b.keys()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    assert torch.equal(y_a, y_b)
    torch.manual_seed(124)
    assert not torch.equal(NB201Network(MIXED, C=8, N=1)(x), y_a)


def test_none_only_cell():
    net = NB201Network(ALL_NONE, C=8, N=1)
    for mode in (net.train, net.eval):
        mode()
        for shape in ((2, 3, 32, 32), (2, 3, 8, 8)):
            y = net(torch.randn(*shape))
            assert y.shape == (2, 10) and torch.isfinite(y).all()
    cell = net.cells[0]
    x = torch.randn(2, 8, 5, 5)
    z = cell(x)
    assert z.shape == x.shape and not z.any()


def test_backward_reaches_cell_convolutions():
    torch.manual_seed(0)
    net = NB201Network(MIXED, C=8, N=1)
    x = torch.randn(4, 3, 32, 32)
    target = torch.tensor([0, 1, 2, 3])
    loss = torch.nn.functional.cross_entropy(net(x), target)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert net.cells[0].layers[4].op[1].weight.grad.abs().sum() > 0  # a nor_conv_3x3 edge
    assert net.classifier.weight.grad.abs().sum() > 0


def _reference_forward(net, x):
    """The official computation: every edge evaluated, `none` as x * 0, sums over all inputs."""
    out = net.stem(x)
    for block in net.cells:
        if isinstance(block, InferCell):
            nodes = [out]
            for j in range(1, 4):
                nodes.append(sum(block.layers[k](nodes[i]) for k, (i, d) in enumerate(EDGES) if d == j))
            out = nodes[3]
        else:
            out = block(out)
    out = net.global_pooling(net.lastact(out))
    return net.classifier(out.flatten(1))


def _randomise_bn(net, seed):
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def test_skipping_none_edges_matches_official_semantics():
    space = NB201Space()
    rng = np.random.default_rng(1)
    archs = [SPARSE, ALL_NONE, MIXED] + [space.sample(rng) for _ in range(6)]
    x = torch.randn(2, 3, 8, 8)
    for s, arch in enumerate(archs):
        torch.manual_seed(s)
        net = NB201Network(arch, C=4, N=2, input_size=8)
        _randomise_bn(net, s)
        with torch.no_grad():
            net.eval()
            torch.testing.assert_close(net(x), _reference_forward(net, x), rtol=1e-5, atol=1e-6)
            net.train()
            torch.testing.assert_close(net(x), _reference_forward(net, x), rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_and_torchscript():
    torch.manual_seed(0)
    net = NB201Network(SPARSE, C=8, N=1, input_size=8)
    _randomise_bn(net, 0)
    net.eval()
    x = torch.randn(2, 3, 8, 8)
    other = NB201Network(str(net.arch), C=8, N=1, input_size=8)
    other.load_state_dict(net.state_dict())
    other.eval()
    with torch.no_grad():
        torch.testing.assert_close(other(x), net(x), rtol=0, atol=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(net)
        torch.testing.assert_close(scripted(x), net(x))


def test_onnx_export_matches_eager():
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = NB201Network(SPARSE, C=8, N=1, in_channels=1, input_size=8)
    _randomise_bn(net, 1)
    net.eval()
    x = torch.randn(2, 1, 8, 8)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), buf, dynamo=False, input_names=["x"], output_names=["logits"])
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(y, net(x).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(arch="|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|"), "unknown operation"),
        (dict(arch=ALL_NONE, C=0), "C must be a positive integer"),
        (dict(arch=ALL_NONE, N=2.5), "N must be a positive integer"),
        (dict(arch=ALL_NONE, input_size=30), "divisible by 4"),
    ],
)
def test_bad_arguments(kwargs, needle):
    with pytest.raises(NasforgeError, match=needle):
        NB201Network(**kwargs)


def test_param_count_rejects_bad_arch():
    with pytest.raises(NasforgeError):
        nb201_param_count(("nor_conv_3x3",) * 5)
