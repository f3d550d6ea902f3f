"""Zero-cost proxies: scores of an untrained network from one minibatch.

:func:`score_network` computes any set of proxies (see :data:`~nasforge.estimation.proxies.base.PROXIES`)
for one network and one batch, sharing passes where proxies need the same computation:

``static`` (no pass over data)
    ``params``, ``l2_norm``; ``flops`` from one forward of a single zero input (eval mode).
``forward`` (one forward of the batch, train-mode BatchNorm, ``torch.no_grad``)
    ``naswot``: binary codes of the input of every ReLU module, accumulated into the Hamming kernel
    as the batch flows (no activation is kept). When the ``gradient`` group runs, its forward is
    used instead and this pass is skipped.
``gradient`` (the same forward, then up to two backward passes)
    ``jacov`` and ``epe_nas`` from the input gradient of the summed logits;
    ``snip``, ``grad_norm``, ``plain``, ``knas`` from the weight gradient of the cross-entropy
    loss, and ``fisher`` from tensor hooks on the convolution/linear outputs during that backward.
``grasp`` (one forward, a gradient with ``create_graph``, a Hessian-gradient product)
    The reference code runs two identical forward passes (one for ``g``, one for ``H g``); they
    give the same gradient, so one is enough.
``synflow`` (a copy in float64 with ``|theta|`` weights and BatchNorm bypassed; all-ones input)
``zen`` (a copy with Gaussian weights; two forwards of Gaussian inputs, ``torch.no_grad``)

Every group works on its own deep copy of the network (``static`` reads it only), so no
proxy sees another's side effects (BatchNorm running statistics, modified weights), and each
proxy's value does not depend on which others are computed with it.

BatchNorm, as each reference specifies: train mode (batch statistics) for every data-dependent
proxy (NASWOT's code scores the network as built, in train mode; the zero-cost-proxy code of
Abdelfattah et al. and NAS-Bench-Suite-Zero too); bypassed for ``synflow`` (the zero-cost-proxy
code removes BN; Tanaka et al. score in eval mode at initialisation, where BN is the identity
up to ``1/sqrt(1 + eps)``); for ``zen`` train mode, and the BN term of the Zen-score uses each
BN layer's batch variance on the Gaussian input (the paper's definition; ``zen_bn="running"``
reads the running variance after the two forwards instead, as the NAS-Bench-Suite-Zero code
does with PyTorch's default momentum of 0.1).

Layers: "weights" are those of convolution and linear modules (``nn.Conv1d/2d/3d``,
``nn.Linear``), as in the reference implementations; ReLU codes come from ``nn.ReLU``,
``nn.ReLU6`` and ``nn.LeakyReLU`` modules (functional ReLUs are invisible to hooks).
"""

from __future__ import annotations

import copy
import math
import time
import types
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.estimation.proxies.base import GROUPS, PROXIES, resolve_proxies

__all__ = ["score_network", "weight_layers", "naswot_kernel_score", "jacov_score", "epe_nas_score"]

_RELUS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)
_BN = nn.modules.batchnorm._BatchNorm
#: columns per GEMM when accumulating the NASWOT kernel: float32 sums of 0/1 stay exact below 2**24,
#: int32 sums below 2**31
_NASWOT_CHUNK = 1 << 23
_NASWOT_CHUNK_INT8 = 1 << 30


def weight_layers(net: nn.Module) -> list[nn.Module]:
    """Convolution and linear modules, in module order (the layers the proxies score)."""
    return [m for m in net.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]


# --- NASWOT -------------------------------------------------------------------------------------
class _NaswotHooks:
    """Forward hooks that add each ReLU's binary codes to the Hamming kernel of the batch.

    ``K[i, j] = sum over units of [c_i == c_j] = D - |c_i| - |c_j| + 2 c_i . c_j`` for the D
    units of a layer, so one Gram GEMM per layer suffices (``|c_i|`` is its diagonal). Several
    ReLUs reading the very same tensor (NB201: every convolution leaving a node has its own ReLU)
    share one GEMM: the last few inputs are cached by identity, holding a reference so a freed
    tensor's memory can never be mistaken for it. ``method`` is how the Gram matrix is computed
    (see :func:`_hamming_kernel`); every method gives the same integers.
    """

    def __init__(self, net: nn.Module, batch: int, method: str = "int8") -> None:
        if method not in _NASWOT_METHODS:
            raise NasforgeError(f"unknown NASWOT kernel method {method!r}; allowed: {', '.join(_NASWOT_METHODS)}")
        self.K = torch.zeros(batch, batch, dtype=torch.float64)
        self.count = 0
        self.method = method
        self._recent: list[tuple[Tensor, Tensor]] = []
        self.handles = [m.register_forward_hook(self._hook) for m in net.modules() if isinstance(m, _RELUS)]

    def _hook(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        x = inputs[0]
        for t, k in self._recent:
            if t is x:
                self.K += k
                self.count += 1
                return
        if self.method == "int8" and isinstance(module, (nn.ReLU, nn.ReLU6)):
            # relu(x) != 0 exactly where x > 0 (NaN aside): a cheaper pass than comparing x
            codes = output.detach().to(torch.bool)
        else:
            codes = x.detach() > 0
        k = _hamming_kernel(codes, self.method)
        self._recent.append((x, k))
        if len(self._recent) > 4:
            self._recent.pop(0)
        self.K += k
        self.count += 1

    def add_zero_input(self, units: int) -> None:
        """Count a ReLU whose input is all zeros without running it: every code is 0, so each pair
        agrees on all ``units`` units (exactly what the hook would add)."""
        self.K += float(units)
        self.count += 1

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self._recent.clear()


# --- NASWOT on NB201 cells: skip the work that cannot change any code -------------------------------
def _edge_kind(layer: nn.Module) -> tuple[str, nn.Module | None]:
    """How a cell edge may be pruned: ``("relu_first", relu)`` for ReLU -> conv (no bias) ->
    BatchNorm (zero bias) with no other ReLU (zeros in give zeros out at initialisation);
    ``("plain", None)`` for an edge without ReLU mapping zeros to zeros (identity, average
    pooling); ``("keep", None)`` otherwise (always computed as written)."""
    relus = [m for m in layer.modules() if isinstance(m, _RELUS)]
    if not relus:
        plain = (nn.Identity, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
        leaves = [m for m in layer.modules() if not list(m.children())]
        return ("plain", None) if all(isinstance(m, plain) for m in leaves) and leaves else ("keep", None)
    seq = getattr(layer, "op", None)
    if len(relus) == 1 and isinstance(seq, nn.Sequential) and len(seq) == 3 and isinstance(seq[0], nn.ReLU):
        conv, bn = seq[1], seq[2]
        if (isinstance(conv, nn.modules.conv._ConvNd) and conv.bias is None and isinstance(bn, _BN)
                and (bn.bias is None or not bool(bn.bias.detach().any()))):
            return "relu_first", seq[0]
    return "keep", None


def _pruned_cell_forward(cell: nn.Module, hooks: _NaswotHooks, kinds: list[tuple[str, nn.Module | None]],
                         x: Tensor) -> Tensor:
    """An NB201 ``InferCell`` forward for NASWOT (train-mode BatchNorm, initial weights) that gives
    the same codes and output as the cell's own forward while skipping (1) edges whose output
    reaches no ReLU and not the cell output (only their leading ReLU runs, for its codes) and
    (2) edges reading a node that is identically zero (the cell's forward materialises zeros
    there: their ReLU codes are all 0, added to the kernel directly, and their output is zero)."""
    src, dst, active = cell.edge_src, cell.edge_dst, cell.edge_active
    live = {3}  # nodes whose value is read: by an edge into a live node, or by an edge's ReLU
    for node in (2, 1, 0):
        if any(active[k] and src[k] == node and (dst[k] in live or kinds[k][0] != "plain")
               for k in range(len(src))):
            live.add(node)
    nodes: list[Tensor | None] = [x, None, None, None]
    for k, layer in enumerate(cell.layers):
        if not active[k]:
            continue
        kind, relu = kinds[k]
        inp = nodes[src[k]]
        if kind != "keep" and inp is None:  # reads zeros: codes all 0, output all 0
            if kind == "relu_first":
                hooks.add_zero_input(x[0].numel())
            continue
        if kind != "keep" and dst[k] not in live:  # the output is never read
            if kind == "relu_first":
                relu(inp)  # the hook records its codes
            continue
        y = layer(torch.zeros_like(x) if inp is None else inp)
        acc = nodes[dst[k]]
        nodes[dst[k]] = y if acc is None else acc + y
    out = nodes[3]
    return torch.zeros_like(x) if out is None else out


def _prune_nb201_cells(net: nn.Module, hooks: _NaswotHooks) -> list[nn.Module]:
    """Give every NB201 ``InferCell`` of ``net`` the pruned NASWOT forward (undone by
    :func:`_unprune`).

    Cells are recognised by their ``layers``/``edge_src``/``edge_dst``/``edge_active`` attributes
    and four nodes; anything else keeps its forward. Returns the cells patched.
    """
    patched: list[nn.Module] = []
    for m in net.modules():
        if not all(hasattr(m, a) for a in ("layers", "edge_src", "edge_dst", "edge_active")):
            continue
        if not (isinstance(m.layers, nn.ModuleList) and len(m.layers) == len(m.edge_src) == len(m.edge_dst)
                and max(m.edge_dst, default=0) == 3):
            continue
        kinds = [_edge_kind(layer) for layer in m.layers]

        def forward(self: nn.Module, x: Tensor, _kinds: list = kinds) -> Tensor:
            return _pruned_cell_forward(self, hooks, _kinds, x)

        m.forward = types.MethodType(forward, m)
        patched.append(m)
    return patched


def _unprune(cells: list[nn.Module]) -> None:
    """Restore the class forward of modules patched by :func:`_prune_nb201_cells` or
    :func:`_fast_box_pools` (no reference cycles left)."""
    for m in cells:
        del m.forward


# --- 3x3 average pooling, same floats, less per-pixel overhead ----------------------------------------
#: at most this many channels, :func:`_box_mean3` beats torch's channels-last pooling kernel, whose
#: cost is per output pixel (measured on a 2-core AVX-512 CPU, batch 128: 1.7x faster at 16 channels,
#: even at 32, slower at 64)
_BOX_MAX_CHANNELS = 16
_box_counts: dict[tuple[int, int, torch.dtype], Tensor] = {}


def _is_box_pool(m: nn.Module) -> bool:
    """An ``nn.AvgPool2d`` of 3x3 windows, stride 1, padding 1, padding excluded from the mean."""
    def pair(v: Any) -> tuple:
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    return (isinstance(m, nn.AvgPool2d) and pair(m.kernel_size) == (3, 3) and pair(m.stride) == (1, 1)
            and pair(m.padding) == (1, 1) and not m.ceil_mode and not m.count_include_pad
            and m.divisor_override is None)


def _box_mean3(x: Tensor) -> Tensor:
    """``avg_pool2d(x, 3, 1, 1, count_include_pad=False)`` of a float32/float64 ``N x C x H x W``
    tensor, bit for bit, as nine shifted in-place sums and one division.

    torch's CPU kernel adds the in-bounds values of each window to zero in row-major order and
    divides the sum by their number; the same additions done tensor-wide, window offset by window
    offset, are the same floating-point operations in the same order (checked against
    ``F.avg_pool2d`` in the tests).
    """
    n, c, h, w = x.shape
    key = (h, w, x.dtype)
    cnt = _box_counts.get(key)
    if cnt is None:  # in-bounds values per window: (3 or fewer rows) x (3 or fewer columns)
        rows = 3.0 - (torch.arange(h) == 0).double() - (torch.arange(h) == h - 1).double()
        cols = 3.0 - (torch.arange(w) == 0).double() - (torch.arange(w) == w - 1).double()
        cnt = _box_counts[key] = (rows[:, None] * cols[None, :]).to(x.dtype).view(1, 1, h, w)
    out = torch.zeros_like(x)
    for dh in (-1, 0, 1):
        for dw in (-1, 0, 1):
            r0, r1, c0, c1 = max(0, -dh), h - max(0, dh), max(0, -dw), w - max(0, dw)
            if r0 < r1 and c0 < c1:
                out[:, :, r0:r1, c0:c1] += x[:, :, r0 + dh:r1 + dh, c0 + dw:c1 + dw]
    return out.div_(cnt)


def _fast_box_pools(net: nn.Module) -> list[nn.Module]:
    """Give every 3x3 box ``nn.AvgPool2d`` of ``net`` a forward that runs :func:`_box_mean3` on
    float32/float64 4-D inputs of at most :data:`_BOX_MAX_CHANNELS` channels outside autograd (the
    module's own forward otherwise). Undone by :func:`_unprune`; returns the modules patched."""
    patched = []
    for m in net.modules():
        if not _is_box_pool(m):
            continue

        def forward(self: nn.Module, x: Tensor) -> Tensor:
            if (x.dim() == 4 and x.dtype in (torch.float32, torch.float64) and x.shape[1] <= _BOX_MAX_CHANNELS
                    and not torch.is_grad_enabled()):
                return _box_mean3(x)
            return type(self).forward(self, x)

        m.forward = types.MethodType(forward, m)
        patched.append(m)
    return patched


#: Gram-matrix methods of the NASWOT kernel: ``int8`` (int8 x int8 -> int32 GEMM, the default)
#: and ``float32`` (the former float32 GEMM, kept as the reference); both are exact integer counts
_NASWOT_METHODS = ("int8", "float32")


def _flat_codes(codes: Tensor) -> Tensor:
    """``codes`` as ``batch x units`` without a copy where the layout allows (unit order is irrelevant)."""
    b = codes.shape[0]
    if codes.dim() == 4 and not codes.is_contiguous() and codes.is_contiguous(memory_format=torch.channels_last):
        return codes.permute(0, 2, 3, 1).reshape(b, -1)  # a view of channels-last memory
    return codes.reshape(b, -1)


def _hamming_kernel(x: Tensor, method: str = "int8") -> Tensor:
    """``D - Hamming(c_i, c_j)`` of the binary codes of a batch (float64, B x B).

    ``x`` is either the codes themselves (a bool tensor) or a pre-activation whose codes are
    ``x > 0``. ``int8`` multiplies the 0/1 codes as int8 with int32 accumulation (exact below
    ``2**31`` units per chunk); ``float32`` as float32 (exact below ``2**24``). Both give the
    same integer kernel; int8 is several times faster on CPUs with VNNI/AMX.
    """
    codes = x if x.dtype == torch.bool else x > 0
    c = _flat_codes(codes)
    d = c.shape[1]
    n = c.shape[0]
    g = torch.zeros(n, n, dtype=torch.float64)
    # torch._int_mm (private, present in recent PyTorch) mishandles a single column: tiny layers, and
    # builds without it, take the float32 path, which gives the same integer kernel
    if method == "int8" and d >= 8 and hasattr(torch, "_int_mm"):
        c8 = c.view(torch.int8) if c.is_contiguous() else c.contiguous().view(torch.int8)
        for start in range(0, d, _NASWOT_CHUNK_INT8):
            part = c8[:, start:start + _NASWOT_CHUNK_INT8]
            g += torch._int_mm(part, part.t()).to(torch.float64)
    else:
        cf = c.to(torch.float32)
        for start in range(0, d, _NASWOT_CHUNK):
            part = cf[:, start:start + _NASWOT_CHUNK]
            g += (part @ part.t()).to(torch.float64)
    s = g.diagonal()  # |c_i| = c_i . c_i
    return d - s[:, None] - s[None, :] + 2.0 * g


def naswot_kernel_score(K: Tensor | np.ndarray) -> float:
    """NASWOT's score of an accumulated kernel: ``log |det K|`` (``-inf`` when K is singular)."""
    K = torch.as_tensor(K, dtype=torch.float64)
    sign, logabs = torch.linalg.slogdet(K)
    return float(logabs) if float(sign) != 0.0 else -math.inf


# --- Jacobian-based scores --------------------------------------------------------------------------
def _row_correlation(j: np.ndarray) -> np.ndarray | None:
    """Correlation matrix of the rows of ``j``; ``None`` when a row is constant (undefined)."""
    j = j - j.mean(axis=1, keepdims=True)
    norms = np.sqrt((j * j).sum(axis=1))
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        return None
    j = j / norms[:, None]
    return np.clip(j @ j.T, -1.0, 1.0)


def jacov_score(jacobians: np.ndarray, k: float = 1e-5) -> float:
    """``-sum(log(v + k) + 1/(v + k))`` over the eigenvalues ``v`` of the Jacobians' correlation matrix.

    A network whose output ignores its input (constant Jacobian rows) scores ``-inf``.
    """
    corr = _row_correlation(np.asarray(jacobians, dtype=np.float64).reshape(len(jacobians), -1))
    if corr is None:
        return -math.inf
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def epe_nas_score(jacobians: np.ndarray, labels: np.ndarray, num_classes: int, k: float = 1e-5) -> float:
    """EPE-NAS: per class, ``s_c = sum log(|corr| + k)`` of the class's Jacobian correlations.

    Up to 100 classes the score is ``sum_c |s_c|``; above, ``sum_{c, c'} |s_c - s_c'| / n_classes``
    with each ``s_c`` divided by its matrix size (the reference implementation). A class with a
    single sample has the 1x1 matrix ``[1]``. Constant Jacobian rows give ``-inf``.
    """
    j = np.asarray(jacobians, dtype=np.float64).reshape(len(jacobians), -1)
    labels = np.asarray(labels)
    per_class: dict[int, float] = {}
    for c in np.unique(labels):
        rows = j[labels == c]
        if len(rows) == 1:
            corr: np.ndarray | None = np.ones((1, 1))
        else:
            corr = _row_correlation(rows)
        if corr is None:
            return -math.inf
        s = float(np.sum(np.log(np.abs(corr) + k)))
        if num_classes > 100:
            s /= len(corr)
        per_class[int(c)] = s
    vals = np.array(list(per_class.values()))
    if num_classes <= 100:
        return float(np.abs(vals).sum())
    return float(np.abs(vals[:, None] - vals[None, :]).sum() / max(len(vals), 1))


# --- helpers ------------------------------------------------------------------------------------------
def _flops(net: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Multiply-accumulates (millions) of convolution and linear layers for one input."""
    macs = [0]

    def hook(m: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
        if isinstance(m, nn.modules.conv._ConvNd):
            per_out = m.in_channels // m.groups * math.prod(m.kernel_size)
            macs[0] += out.numel() // out.shape[0] * per_out
        else:
            macs[0] += out.numel() // out.shape[0] * m.in_features

    handles = [m.register_forward_hook(hook) for m in weight_layers(net)]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros((1, *input_shape)))
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return macs[0] / 1e6


def _layout(net: nn.Module, x: Tensor, channels_last: bool, copy_net: bool = True) -> tuple[nn.Module, Tensor]:
    """A deep copy of ``net`` (``net`` itself when ``copy_net`` is false) in train mode, in
    channels-last layout for image batches when asked."""
    net = (copy.deepcopy(net) if copy_net else net).train()
    if channels_last and x.dim() == 4:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return net, x


def _bypass(module: nn.Module, x: Tensor) -> Tensor:
    return x


def _gaussian_init(net: nn.Module, gen: torch.Generator) -> None:
    """Zen-NAS initialisation: conv/linear weights N(0, 1), biases 0, BN weight 1 and bias 0."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=m.weight.dtype))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (_BN, nn.GroupNorm)) and m.weight is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()


def _feature_module(net: nn.Module) -> tuple[nn.Module, str]:
    """Where Zen-NAS reads the features: the input of the last global pooling, else of the last linear."""
    pools = [m for m in net.modules() if isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                                                        nn.AdaptiveAvgPool3d))]
    if pools:
        return pools[-1], "pre-GAP"
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if linears:
        return linears[-1], "pre-classifier"
    raise NasforgeError("zen needs a global average pooling or a linear classifier to read features before")


def _sum_layers(values: Iterable[Tensor]) -> float:
    total = torch.zeros((), dtype=torch.float64)
    for v in values:
        total += v.to(torch.float64).sum()
    return float(total)


# --- the groups -----------------------------------------------------------------------------------------
def _static(net: nn.Module, inputs: Tensor, wanted: set[str], out: dict[str, float]) -> None:
    if "params" in wanted:
        out["params"] = sum(p.numel() for p in net.parameters()) / 1e6
    if "l2_norm" in wanted:
        with torch.no_grad():
            out["l2_norm"] = _sum_layers(m.weight.detach().norm() for m in weight_layers(net))
    if "flops" in wanted:
        out["flops"] = _flops(copy.deepcopy(net), tuple(inputs.shape[1:]))


def _forward(net: nn.Module, inputs: Tensor, out: dict[str, float], channels_last: bool, copy_net: bool = True,
             naswot_method: str = "int8", prune: bool = True) -> None:
    net, inputs = _layout(net, inputs, channels_last, copy_net)
    hooks = _NaswotHooks(net, inputs.shape[0], naswot_method)
    pruned = _prune_nb201_cells(net, hooks) + _fast_box_pools(net) if prune else []
    try:
        with torch.no_grad():
            net(inputs)
    finally:
        _unprune(pruned)
        hooks.close()
    _naswot_result(hooks, out)


def _naswot_result(hooks: _NaswotHooks, out: dict[str, float]) -> None:
    if hooks.count == 0:
        raise NasforgeError("naswot needs ReLU modules (nn.ReLU, nn.ReLU6, nn.LeakyReLU) in the network; none ran")
    out["naswot"] = naswot_kernel_score(hooks.K)


def _gradient(net: nn.Module, inputs: Tensor, targets: Tensor, wanted: set[str], out: dict[str, float],
              num_classes: int | None, channels_last: bool, copy_net: bool = True,
              naswot_method: str = "int8") -> None:
    """One forward; the input Jacobian (jacov, epe_nas); the loss gradient (snip, grad_norm, plain,
    knas, fisher); NASWOT's codes from the same forward when asked."""
    net, inputs = _layout(net, inputs, channels_last, copy_net)
    layers = weight_layers(net)
    weights = [m.weight.requires_grad_(True) for m in layers]
    need_jac = bool(wanted & {"jacov", "epe_nas"})
    need_grad = bool(wanted & {"snip", "grad_norm", "plain", "knas", "fisher"})
    naswot = _NaswotHooks(net, inputs.shape[0], naswot_method) if "naswot" in wanted else None

    fisher_on = [False]
    fisher_vals: list[Tensor] = []
    acts: dict[int, Tensor] = {}  # activations by call; cleared after the backward (no tensor-hook cycles)
    handles = []
    if "fisher" in wanted:
        def fwd_hook(m: nn.Module, inp: tuple[Tensor, ...], act: Tensor) -> None:
            if not act.requires_grad:
                return
            key = len(acts)
            acts[key] = act.detach()
            per_channel = m.weight[0].numel()  # weights feeding one output channel

            def grad_hook(g: Tensor) -> None:
                if not fisher_on[0]:
                    return
                a, g = acts[key], g.detach()
                g_nk = (a * g).sum(dim=tuple(range(2, a.dim()))) if a.dim() > 2 else a * g
                fisher_vals.append(0.5 * g_nk.pow(2).mean(0).sum() * per_channel)

            act.register_hook(grad_hook)

        handles = [m.register_forward_hook(fwd_hook) for m in layers]
    x = inputs.detach().clone().requires_grad_(need_jac)
    try:
        with torch.set_grad_enabled(need_jac or need_grad):
            logits = net(x)
    finally:
        for h in handles:
            h.remove()
        if naswot is not None:
            naswot.close()
    if naswot is not None:
        _naswot_result(naswot, out)
    if need_jac:
        jac = None
        if logits.requires_grad:
            (jac,) = torch.autograd.grad(logits, x, grad_outputs=torch.ones_like(logits), retain_graph=need_grad,
                                         allow_unused=True)
        if jac is None:  # the output does not depend on the input: constant (zero) Jacobians
            jac = torch.zeros_like(x)
        jac_np = jac.detach().reshape(len(jac), -1).double().numpy()
        if "jacov" in wanted:
            out["jacov"] = jacov_score(jac_np)
        if "epe_nas" in wanted:
            out["epe_nas"] = epe_nas_score(jac_np, targets.numpy(), num_classes or logits.shape[-1])
    if need_grad:
        loss = F.cross_entropy(logits, targets)
        fisher_on[0] = True
        grads = torch.autograd.grad(loss, weights, allow_unused=True) if loss.requires_grad else [None] * len(weights)
        fisher_on[0] = False
        acts.clear()
        _from_gradients(weights, grads, wanted, out)
        if "fisher" in wanted:
            out["fisher"] = _sum_layers(fisher_vals)


def _from_gradients(weights: list[Tensor], grads: Iterable[Tensor | None], wanted: set[str],
                    out: dict[str, float]) -> None:
    snip = grad_norm = plain = knas = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for w, g in zip(weights, grads):
            if g is None:  # a layer the loss does not reach contributes zero, as in the references
                continue
            wg = (w.detach() * g).to(torch.float64)
            snip = snip + wg.abs().sum()
            plain = plain + wg.sum()
            sq = g.to(torch.float64).pow(2).sum()
            grad_norm = grad_norm + sq.sqrt()
            knas = knas + sq
    for name, v in (("snip", snip), ("grad_norm", grad_norm), ("plain", plain), ("knas", knas)):
        if name in wanted:
            out[name] = float(v)


def _grasp(net: nn.Module, inputs: Tensor, targets: Tensor, out: dict[str, float]) -> None:
    net = copy.deepcopy(net).train()
    weights = [m.weight.requires_grad_(True) for m in weight_layers(net)]
    loss = F.cross_entropy(net(inputs), targets)
    grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    z = sum(((g.detach() * g).sum() for g in grads if g is not None), torch.zeros(()))
    if not z.requires_grad:  # the loss reaches no weight: H g = 0
        out["grasp"] = 0.0
        return
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    with torch.no_grad():
        out["grasp"] = _sum_layers(-w.detach() * h for w, h in zip(weights, hg) if h is not None)


def _synflow(net: nn.Module, inputs: Tensor, out: dict[str, float]) -> None:
    net = copy.deepcopy(net).double().eval()
    for m in net.modules():
        if isinstance(m, _BN):
            m.forward = types.MethodType(_bypass, m)  # this copy only
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    weights = [m.weight.requires_grad_(True) for m in weight_layers(net)]
    x = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64)
    r = net(x).sum()
    if not r.requires_grad:
        out["synflow"] = 0.0
        return
    grads = torch.autograd.grad(r, weights, allow_unused=True)
    with torch.no_grad():
        out["synflow"] = _sum_layers((w * g).abs() for w, g in zip(weights, grads) if g is not None)


def _zen(net: nn.Module, inputs: Tensor, out: dict[str, float], seed: int, bn: str, channels_last: bool,
         alpha: float = 0.01) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(inputs.shape, generator=gen, dtype=inputs.dtype)
    x_mix = x + alpha * torch.randn(inputs.shape, generator=gen, dtype=inputs.dtype)
    net, x = _layout(net, x, channels_last)
    x_mix = x_mix.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x_mix
    _gaussian_init(net, gen)
    where, _ = _feature_module(net)
    feats: list[Tensor] = []
    bn_var: list[Tensor] = []
    record_bn = [True]

    def feat_hook(m: nn.Module, inp: tuple[Tensor, ...], o: Tensor) -> None:
        feats.append(inp[0].detach())

    def bn_hook(m: nn.Module, inp: tuple[Tensor, ...], o: Tensor) -> None:
        if record_bn[0]:
            a = inp[0].detach().transpose(0, 1).reshape(inp[0].shape[1], -1).to(torch.float64)
            bn_var.append(a.var(dim=1, unbiased=False).mean())

    handles = [where.register_forward_hook(feat_hook)]
    if bn == "batch":
        handles += [m.register_forward_hook(bn_hook) for m in net.modules() if isinstance(m, _BN)]
    try:
        with torch.no_grad():
            net(x)
            record_bn[0] = False
            net(x_mix)
    finally:
        for h in handles:
            h.remove()
    f1, f2 = feats[-2].to(torch.float64), feats[-1].to(torch.float64)
    delta = (f1 - f2).abs().reshape(len(f1), -1).sum(1).mean()
    if bn == "batch":
        variances = bn_var
    else:
        variances = [m.running_var.to(torch.float64).mean() for m in net.modules()
                     if isinstance(m, _BN) and m.running_var is not None]
    log_bn = sum((0.5 * torch.log(v) for v in variances), torch.zeros((), dtype=torch.float64))
    out["zen"] = float(torch.log(delta) + log_bn) if float(delta) > 0 else -math.inf


# --- entry point ------------------------------------------------------------------------------------------
def score_network(
    net: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    proxies: str | Iterable[str] = "all",
    seed: int = 0,
    num_classes: int | None = None,
    zen_bn: str = "batch",
    channels_last: bool = False,
    timings: dict[str, float] | None = None,
    owned: bool = False,
    naswot_method: str = "int8",
    naswot_prune: bool = True,
) -> dict[str, float]:
    """Scores of ``net`` (untrained, not modified) for ``proxies`` on the batch ``(inputs, targets)``.

    ``inputs`` is a float batch shaped as the network expects (images NCHW or vectors N x D),
    ``targets`` integer labels. ``seed`` fixes the random draws of ``zen`` (its Gaussian weights
    and inputs); every other proxy is deterministic given the network and the batch.
    ``channels_last`` runs the batch passes (forward, gradient, zen) in channels-last layout
    (faster convolutions on many CPUs; the summation order changes, so scores move in the last
    digits). ``timings``, when given, receives the seconds spent in each computation group.
    ``owned`` says the caller hands ``net`` over (a network built for this call): the last
    data pass then runs on it instead of on a deep copy (same scores, less time; ``net`` is
    left modified: train mode, layout, BatchNorm statistics). ``naswot_method`` is how the
    NASWOT kernel's Gram matrices are multiplied: ``int8`` (default) or ``float32`` (the former
    path); both count exactly, so the scores are identical. ``naswot_prune`` lets NASWOT's own
    forward (when no gradient proxy is asked) skip, in NB201 cells, edges whose output no ReLU
    reads and edges that read an all-zero node (their codes are known: all 0), and computes 3x3
    average pooling of few channels as shifted sums in the pooling kernel's own order; the codes,
    hence the score, are the same as without it. Returns
    ``{proxy: score}``; see :data:`~nasforge.estimation.proxies.base.PROXIES` for directions.
    """
    names = resolve_proxies(proxies)
    if zen_bn not in ("batch", "running"):
        raise NasforgeError(f"unknown zen_bn {zen_bn!r}; allowed: batch (the paper), running (NAS-Bench-Suite-Zero)")
    if not isinstance(inputs, Tensor) or not isinstance(targets, Tensor):
        raise NasforgeError("inputs and targets must be torch tensors")
    if inputs.shape[0] != targets.shape[0]:
        raise NasforgeError(f"inputs hold {inputs.shape[0]} samples but targets {targets.shape[0]}")
    net = _check_module(net)
    wanted = set(names)
    groups = {PROXIES[n].group for n in names}
    if "gradient" in groups:
        groups.discard("forward")  # NASWOT's codes come from the gradient group's forward
    if "naswot" in wanted and inputs.shape[0] < 2:
        raise NasforgeError("naswot needs a batch of at least 2 inputs")
    inputs = inputs.detach().float()
    targets = targets.detach().long()
    out: dict[str, float] = {}
    if naswot_method not in _NASWOT_METHODS:
        raise NasforgeError(f"unknown naswot_method {naswot_method!r}; allowed: {', '.join(_NASWOT_METHODS)}")
    clock = timings if timings is not None else {}
    last = [g for g in GROUPS if g in groups][-1]
    for group in GROUPS:
        if group not in groups:
            continue
        copy_net = not (owned and group == last)
        t0 = time.perf_counter()
        if group == "static":
            _static(net, inputs, wanted, out)
        elif group == "forward":
            _forward(net, inputs, out, channels_last, copy_net, naswot_method, naswot_prune)
        elif group == "gradient":
            _gradient(net, inputs, targets, wanted, out, num_classes, channels_last, copy_net, naswot_method)
        elif group == "synflow":
            _synflow(net, inputs, out)
        elif group == "zen":
            _zen(net, inputs, out, seed, zen_bn, channels_last)
        elif group == "grasp":
            _grasp(net, inputs, targets, out)
        clock[group] = clock.get(group, 0.0) + time.perf_counter() - t0
    return {n: out[n] for n in names}


def _check_module(net: Any) -> nn.Module:
    if not isinstance(net, nn.Module):
        raise NasforgeError(f"proxies score a torch.nn.Module, got {type(net).__name__}")
    return net
