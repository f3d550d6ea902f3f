"""Hardware cost of architectures: parameters, FLOPs, measured latency, and device tables.

* :func:`count_params` / :func:`count_flops` work on any ``nn.Module`` a space builds; FLOPs are
  counted with forward hooks on an input of the actual size, per sample.
* :func:`nb201_flops` is the same count for the NB201 network in closed form (no network built).
* :func:`measure_latency` times a network on this machine, in PyTorch or onnxruntime.
* :func:`load_hardware_table` and :func:`with_hardware` read the NB201 device tables (14 devices'
  latency from HELP / HW-NAS-Bench; Raspberry Pi 5 latency and energy) and join them to an
  accuracy table, so that latency, energy, parameters and FLOPs are ordinary metrics.

FLOP conventions (``convention=``), all in multiply-accumulates (MACs) per sample:

``"nb201"`` (default)
    The official NAS-Bench-201 counter (``get_model_infos`` of the benchmark's code): convolutions
    ``k_h*k_w*C_in/groups*C_out*H_out*W_out`` (+ ``C_out*H_out*W_out`` with a bias), linear layers
    ``in*out`` (+ ``out`` with a bias). Its pooling hook charges ``k^2 x output elements`` but that
    count is left out of the official sum, and BatchNorm, activations, additions, ``none``/
    ``skip_connect`` and global pooling have no hook: they cost 0. This reproduces the published
    NB201 CIFAR-10 range exactly (7.78305 to 220.11969 MFLOPs).
``"nb201+pool"``
    ``"nb201"`` plus pooling at ``kernel area x output elements`` (the official pooling hook, summed).
``"full"``
    ``"nb201+pool"`` plus BatchNorm at 2 per element (1 without affine), activations at 1 per
    element and adaptive (global) pooling at 1 per input element. Tensor additions are not modules
    and are not counted in any convention.
"""

from __future__ import annotations

import io
import math
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError, unknown
from nasforge.estimation.base import Estimator, Measurement

FLOP_CONVENTIONS = ("nb201", "nb201+pool", "full")

#: the 14 device columns of ``nb201/latency_ms.csv`` (HELP release; HW-NAS-Bench for the edge ones)
LATENCY_DEVICES = ("1080ti_1", "1080ti_32", "1080ti_256", "2080ti_1", "2080ti_32", "2080ti_256", "gold_6240",
                   "silver_4114", "eyeriss", "fpga", "pixel3", "raspi4", "samsung_s7", "essential_ph_1")
#: Raspberry Pi 5 runtimes of ``nb201/pi5_cifar100_latency_energy.csv`` (CIFAR-100 network)
PI5_RUNTIMES = ("pi5_onnx", "pi5_litert")


def latency_metric(device: str) -> str:
    """The metric name of a device's latency: ``latency_ms[<device>]``."""
    return f"latency_ms[{device}]"


def energy_metric(device: str) -> str:
    """The metric name of a device's energy per inference: ``energy_mj[<device>]``."""
    return f"energy_mj[{device}]"


# --- parameters and FLOPs ----------------------------------------------------------------------
def count_params(model: Any, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (every parameter, or only those requiring gradients)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


@dataclass
class FlopCount:
    """FLOPs (MACs) of one forward pass per sample, with the share of each module type."""

    total: int
    by_type: dict[str, int]
    convention: str
    input_shape: tuple[int, ...]

    @property
    def mflops(self) -> float:
        """``total / 1e6``, the unit NB201 reports."""
        return self.total / 1e6


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


_LEVEL = {"nb201": 0, "nb201+pool": 1, "full": 2}


def _count_by_level(model: Any, input_shape: Sequence[int]) -> tuple[tuple[int, ...], dict[str, tuple[int, int]]]:
    """One hooked forward pass: {module type: (convention level, MACs)}; level 0 counts in every
    convention, 1 from ``nb201+pool`` on, 2 only in ``full``."""
    import torch
    from torch import nn

    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise NasforgeError(f"input_shape must be positive sizes without the batch dimension, got {input_shape!r}")
    counts: dict[str, tuple[int, int]] = {}

    def add(m: nn.Module, level: int, n: float) -> None:
        k = type(m).__name__
        counts[k] = (level, counts.get(k, (level, 0))[1] + int(round(n)))

    def conv(m: nn.Module, inp: tuple, out: Any) -> None:
        per_pos = math.prod(m.kernel_size) * m.in_channels // m.groups * m.out_channels
        positions = out.numel() // out.shape[1]  # batch x spatial
        add(m, 0, per_pos * positions + (m.out_channels * positions if m.bias is not None else 0))

    def linear(m: nn.Module, inp: tuple, out: Any) -> None:
        rows = out.numel() // m.out_features
        add(m, 0, rows * m.in_features * m.out_features + (rows * m.out_features if m.bias is not None else 0))

    def pool(m: nn.Module, inp: tuple, out: Any) -> None:
        ks = m.kernel_size
        area = math.prod(ks) if isinstance(ks, (tuple, list)) else ks ** (out.dim() - 2)
        add(m, 1, area * out.numel())

    def norm(m: nn.Module, inp: tuple, out: Any) -> None:
        affine = getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)
        add(m, 2, inp[0].numel() * (2 if affine else 1))

    def elementwise_in(m: nn.Module, inp: tuple, out: Any) -> None:
        add(m, 2, inp[0].numel())

    rules: list[tuple[tuple[type, ...], Any]] = [
        ((nn.Conv1d, nn.Conv2d, nn.Conv3d), conv), ((nn.Linear,), linear),
        ((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d), pool),
        ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d), norm),
        ((nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
          nn.Hardsigmoid, nn.Mish), elementwise_in),
        ((nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool2d), elementwise_in),
    ]
    handles = []
    for m in model.modules():
        for types, hook in rules:
            if isinstance(m, types):
                handles.append(m.register_forward_hook(hook))
                break
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.rand(1, *shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return shape, counts


def _flop_count(shape: tuple[int, ...], counts: dict[str, tuple[int, int]], convention: str) -> FlopCount:
    top = _LEVEL[convention]
    by_type = {k: n for k, (lvl, n) in sorted(counts.items()) if lvl <= top}
    return FlopCount(int(sum(by_type.values())), by_type, convention, shape)


def count_flops(model: Any, input_shape: Sequence[int], convention: str = "nb201") -> FlopCount:
    """FLOPs (MACs) of ``model`` on one input of ``input_shape`` (without the batch dimension).

    Counted by forward hooks on the modules that run, for the size given, so it works for any
    network (see the module docstring for the conventions). The model is run once in eval mode
    under ``torch.no_grad()`` on a batch of one random input; its training mode is restored.
    """
    if convention not in FLOP_CONVENTIONS:
        raise unknown("FLOP convention", convention, FLOP_CONVENTIONS)
    return _flop_count(*_count_by_level(model, input_shape), convention)


def count_flops_all(model: Any, input_shape: Sequence[int]) -> dict[str, FlopCount]:
    """:func:`count_flops` in every convention, from one forward pass."""
    shape, counts = _count_by_level(model, input_shape)
    return {c: _flop_count(shape, counts, c) for c in FLOP_CONVENTIONS}


def nb201_flops(arch: Any, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3,
                input_size: int = 32, convention: str = "nb201") -> int:
    """FLOPs (MACs) of the NB201 network for ``arch`` in closed form; equals :func:`count_flops`.

    With ``e3``/``e1``/``ep`` cells edges ``nor_conv_3x3``/``nor_conv_1x1``/``avg_pool_3x3`` and
    stage widths ``c = C, 2C, 4C`` at sides ``s = input_size, /2, /4`` (``N`` cells each), the cell
    part is ``N * sum_c,s (9 e3 + e1) c^2 s^2`` (+ ``9 ep c s^2`` with pooling, + ``3 (e3 + e1) c s^2``
    for BatchNorm and ReLU in ``"full"``); ``none`` and ``skip_connect`` cost nothing. For C=16,
    N=5 on CIFAR-10 (32x32) the official count is ``7,783,050 + 35,389,440 e3 + 3,932,160 e1``.
    """
    from nasforge.spaces.nb201 import NB201Space, check_network_config

    if convention not in FLOP_CONVENTIONS:
        raise unknown("FLOP convention", convention, FLOP_CONVENTIONS)
    check_network_config(C, N, num_classes, in_channels, input_size)
    arch = NB201Space().coerce(arch)
    pools = convention in ("nb201+pool", "full")
    full = convention == "full"
    e3, e1, ep = arch.count("nor_conv_3x3"), arch.count("nor_conv_1x1"), arch.count("avg_pool_3x3")
    total = 0
    h = input_size
    total += 9 * in_channels * C * h * h + (2 * C * h * h if full else 0)  # stem conv (+ BN)
    c = C
    for stage in range(3):
        if stage:  # residual reduction c -> 2c, side h -> h/2
            o = h // 2
            total += 9 * c * 2 * c * o * o + 9 * (2 * c) ** 2 * o * o + c * 2 * c * o * o  # conv_a, conv_b, 1x1
            if pools:
                total += 4 * c * o * o  # 2x2 average pooling on the shortcut
            if full:
                total += c * h * h + 2 * 2 * c * o * o + 2 * c * o * o + 2 * 2 * c * o * o  # ReLU, BN, ReLU, BN
            c, h = 2 * c, o
        elems = c * h * h
        cell = (9 * e3 + e1) * c * elems
        if pools:
            cell += 9 * ep * elems
        if full:
            cell += 3 * (e3 + e1) * elems
        total += N * cell
    total += c * num_classes + num_classes  # classifier with bias
    if full:
        total += 3 * c * h * h + c * h * h  # lastact BN (2) + ReLU (1), global pooling input
    return int(total)


# --- latency on this machine ---------------------------------------------------------------------
@dataclass
class LatencyMeasurement:
    """Inference latency of one network on this machine (milliseconds per batch). The median is
    the headline number; the minimum is the least disturbed by other processes."""

    median_ms: float
    mean_ms: float
    p10_ms: float
    p90_ms: float
    min_ms: float
    backend: str
    batch_size: int
    threads: int
    warmup: int
    repeats: int
    input_shape: tuple[int, ...]
    samples_ms: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("samples_ms")
        return d


LATENCY_BACKENDS = ("torch", "onnxruntime")


def _onnx_session(model: Any, example: Any, threads: int) -> Any:
    import warnings

    import torch

    try:
        import onnxruntime as ort
    except ImportError:
        raise NasforgeError("the onnxruntime backend needs onnxruntime: pip install 'nasforge[onnx]'") from None
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buf, input_names=["input"], output_names=["logits"],
                          opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])


def measure_latency(model: Any, input_shape: Sequence[int], batch_size: int = 1, backend: str = "torch",
                    threads: int = 1, warmup: int = 10, repeats: int = 30, seed: int = 0) -> LatencyMeasurement:
    """Time ``model`` on a batch of ``batch_size`` inputs of ``input_shape`` on this CPU.

    ``warmup`` untimed runs, then ``repeats`` timed runs (``time.perf_counter``); the median is
    the headline number. ``threads`` sets PyTorch's intra-op threads for the measurement (restored
    afterwards) or onnxruntime's ``intra_op_num_threads``. Latencies on a shared machine are noisy:
    compare numbers taken with the same settings, and prefer the median.
    """
    import torch

    if backend not in LATENCY_BACKENDS:
        raise unknown("latency backend", backend, LATENCY_BACKENDS)
    for name, v, lo in (("batch_size", batch_size, 1), ("threads", threads, 1), ("warmup", warmup, 0),
                        ("repeats", repeats, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise NasforgeError(f"{name} must be an integer >= {lo}, got {v!r}")
    shape = tuple(int(s) for s in input_shape)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch_size, *shape, generator=gen)
    was_training = model.training
    model.eval()
    samples: list[float] = []
    old_threads = torch.get_num_threads()
    try:
        if backend == "torch":
            torch.set_num_threads(threads)
            with torch.inference_mode():
                for _ in range(warmup):
                    model(x)
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    model(x)
                    samples.append((time.perf_counter() - t0) * 1e3)
        else:
            sess = _onnx_session(model, x, threads)
            feed = {"input": x.numpy()}
            for _ in range(warmup):
                sess.run(None, feed)
            for _ in range(repeats):
                t0 = time.perf_counter()
                sess.run(None, feed)
                samples.append((time.perf_counter() - t0) * 1e3)
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)
    q = np.percentile(samples, [10, 90])
    return LatencyMeasurement(float(statistics.median(samples)), float(np.mean(samples)), float(q[0]), float(q[1]),
                              float(min(samples)), backend, batch_size, threads, warmup, repeats, shape, samples)


class MeasuredLatency(Estimator):
    """Latency of architectures measured on this machine: builds each network and times it.

    ``build`` holds the space's network settings (e.g. ``C``, ``N``, ``num_classes``); the input
    shape defaults to ``(in_channels, input_size, input_size)`` from them (3x32x32). Results are
    cached per architecture. :meth:`estimate` returns a Measurement with the metric
    ``latency_ms[<device>]`` (``device`` defaults to ``local-<backend>``), usable as an estimator.
    """

    def __init__(self, space: Any, build: dict[str, Any] | None = None, input_shape: Sequence[int] | None = None,
                 backend: str = "torch", batch_size: int = 1, threads: int = 1, warmup: int = 10,
                 repeats: int = 30, device: str | None = None) -> None:
        if backend not in LATENCY_BACKENDS:
            raise unknown("latency backend", backend, LATENCY_BACKENDS)
        self.space = space
        self.build = dict(build or {})
        if input_shape is None:
            side = int(self.build.get("input_size", 32))
            input_shape = (int(self.build.get("in_channels", 3)), side, side)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.backend, self.batch_size, self.threads = backend, batch_size, threads
        self.warmup, self.repeats = warmup, repeats
        self.device = device or f"local-{backend}"
        self.metric = latency_metric(self.device)
        self._cache: dict[Any, LatencyMeasurement] = {}

    def measure(self, arch: Any) -> LatencyMeasurement:
        arch = self.space.coerce(arch)
        if arch not in self._cache:
            model = self.space.build(arch, **self.build)
            self._cache[arch] = measure_latency(model, self.input_shape, self.batch_size, self.backend,
                                                self.threads, self.warmup, self.repeats)
        return self._cache[arch]

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        t0 = time.perf_counter()
        m = self.measure(arch)
        return Measurement({self.metric: m.median_ms}, time.perf_counter() - t0, None, m.as_dict())

    @property
    def metric_names(self) -> list[str]:
        return [self.metric]


# --- device tables ---------------------------------------------------------------------------------
def _nb201_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    from nasforge.estimation.tabular import find_data_dir

    root = find_data_dir(data_dir)
    if root is None or not (root / "nb201").is_dir():
        raise NasforgeError("the NB201 device tables need the reference data folder: pass data_dir or set "
                            "NASFORGE_DATA (it holds nb201/latency_ms.csv and nb201/pi5_cifar100_latency_energy.csv)")
    return root / "nb201"


HARDWARE_TABLES = ("latency", "pi5")


def load_hardware_table(which: str = "latency", data_dir: str | os.PathLike[str] | None = None) -> Any:
    """A device table as a :class:`TabularBenchmark` with metrics ``latency_ms[<device>]``
    (``which="latency"``: 14 devices) or ``latency_ms[pi5_*]`` and ``energy_mj[pi5_*]``
    (``which="pi5"``: Raspberry Pi 5, onnxruntime and LiteRT, CIFAR-100 network)."""
    from nasforge.estimation.tabular import TabularBenchmark, read_arch_table
    from nasforge.spaces.nb201 import NB201Space

    if which not in HARDWARE_TABLES:
        raise unknown("hardware table", which, HARDWARE_TABLES)
    folder = _nb201_dir(data_dir)
    path = folder / ("latency_ms.csv" if which == "latency" else "pi5_cifar100_latency_energy.csv")
    space = NB201Space()
    archs, cols = read_arch_table(path, space.parse)
    renamed: dict[str, np.ndarray] = {}
    for c, v in cols.items():
        if which == "latency":
            renamed[latency_metric(c)] = v
        elif c.endswith("_lat_ms"):
            renamed[latency_metric(c[: -len("_lat_ms")])] = v
        elif c.endswith("_energy_mj"):
            renamed[energy_metric(c[: -len("_energy_mj")])] = v
        else:
            renamed[c] = v
    return TabularBenchmark(space, archs, renamed, name=f"nb201-hw:{which}")


def cost_columns(archs: Sequence[Any], num_classes: int = 10, C: int = 16, N: int = 5,
                 input_size: int = 32) -> dict[str, np.ndarray]:
    """``params`` and ``flops`` (official NB201 convention) of NB201 architectures, in closed form."""
    from nasforge.spaces.nb201_net import nb201_param_count

    cache_p: dict[tuple[int, int], int] = {}
    cache_f: dict[tuple[int, int], int] = {}
    params = np.empty(len(archs))
    flops = np.empty(len(archs))
    for i, a in enumerate(archs):
        k = (a.count("nor_conv_3x3"), a.count("nor_conv_1x1"))
        if k not in cache_p:
            cache_p[k] = nb201_param_count(a, C=C, N=N, num_classes=num_classes)
            cache_f[k] = nb201_flops(a, C=C, N=N, num_classes=num_classes, input_size=input_size)
        params[i], flops[i] = cache_p[k], cache_f[k]
    return {"params": params, "flops": flops}


HARDWARE_PARTS = ("latency", "pi5", "cost")


def with_hardware(bench: Any, parts: Iterable[str] = HARDWARE_PARTS, data_dir: str | os.PathLike[str] | None = None,
                  num_classes: int | None = None) -> Any:
    """A copy of NB201 table ``bench`` with hardware metrics on the same architectures.

    ``parts``: ``latency`` (``latency_ms[<device>]`` for the 14 devices), ``pi5`` (Raspberry Pi 5
    ``latency_ms[pi5_*]``/``energy_mj[pi5_*]``, measured on the CIFAR-100 network) and ``cost``
    (``params`` and ``flops`` of the C=16, N=5 network, official convention; ``num_classes``
    defaults to 100 for a CIFAR-100 table, else 10). The result keeps ``bench``'s fidelities,
    ``default_metric`` and ``report_metric``.
    """
    from nasforge.estimation.tabular import TabularBenchmark

    parts = list(dict.fromkeys(parts))
    for p in parts:
        if p not in HARDWARE_PARTS:
            raise unknown("hardware part", p, HARDWARE_PARTS)
    columns = dict(bench.columns)
    for p in parts:
        if p == "cost":
            nc = num_classes if num_classes is not None else (100 if "cifar100" in bench.name else 10)
            extra = cost_columns(bench.archs, num_classes=nc)
        else:
            table = load_hardware_table(p, data_dir)
            rows = np.array([table.row(a) for a in bench.archs])
            extra = {c: v[rows] for c, v in table.columns.items()}
        for c, v in extra.items():
            if c in columns:
                raise NasforgeError(f"benchmark {bench.name!r} already has a column {c!r}")
            columns[c] = v
    out = TabularBenchmark(bench.space, bench.archs, columns, name=f"{bench.name}+{'+'.join(parts)}",
                           key=bench._key, cost_metric=bench.cost_metric)
    out.default_metric, out.report_metric = bench.default_metric, bench.report_metric
    return out


# --- the energy a search spent ----------------------------------------------------------------------
class EnergyMeter:
    """Measured CPU package energy from Linux RAPL (``/sys/class/powercap/intel-rapl:*``), if readable.

    ``with EnergyMeter() as m: ...`` then ``m.joules`` (``None`` where RAPL is absent or unreadable:
    containers and non-Intel machines usually hide it). Counter wrap-around is handled.
    """

    def __init__(self, root: str | os.PathLike[str] = "/sys/class/powercap") -> None:
        self.root = Path(root)
        self.joules: float | None = None
        self.seconds: float = 0.0
        self._start: dict[Path, int] = {}
        self._t0 = 0.0

    def _zones(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        # top-level packages only (intel-rapl:0, intel-rapl:1): subzones are parts of them
        return sorted(p for p in self.root.glob("intel-rapl:*") if p.name.count(":") == 1 and (p / "energy_uj").is_file())

    def _read(self) -> dict[Path, int]:
        out = {}
        for z in self._zones():
            try:
                out[z] = int((z / "energy_uj").read_text().strip())
            except (OSError, ValueError):
                return {}
        return out

    @property
    def available(self) -> bool:
        return bool(self._read())

    def __enter__(self) -> EnergyMeter:
        self._start = self._read()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self._t0
        end = self._read()
        if not self._start or set(end) != set(self._start):
            self.joules = None
            return
        total = 0
        for z, e0 in self._start.items():
            d = end[z] - e0
            if d < 0:  # wrapped
                try:
                    d += int((z / "max_energy_range_uj").read_text().strip())
                except (OSError, ValueError):
                    d = 0
            total += d
        self.joules = total / 1e6


def search_energy(trials: Iterable[Any], power_watts: float, clock: str = "wall") -> dict[str, float]:
    """Energy a search spent: time x declared power.

    ``clock="wall"`` sums the trials' measured durations (what this machine really spent: for a
    tabular benchmark that is only look-up time); ``clock="cost"`` sums their costs, which must be
    seconds (a training estimator, or a table with a time column) to mean energy. Returns
    ``seconds``, ``joules``, ``wh`` (watt-hours) and ``power_watts``.
    """
    if clock not in ("wall", "cost"):
        raise unknown("energy clock", clock, ("wall", "cost"))
    if not isinstance(power_watts, (int, float)) or not power_watts > 0 or not math.isfinite(power_watts):
        raise NasforgeError(f"power must be a positive number of watts, got {power_watts!r}")
    seconds = 0.0
    for t in trials:
        if getattr(t, "state", None) is not None and not t.state.finished:
            continue
        seconds += float(t.duration if clock == "wall" else t.cost)
    joules = seconds * float(power_watts)
    return {"seconds": seconds, "joules": joules, "wh": joules / 3600.0, "power_watts": float(power_watts)}


__all__ = ["FLOP_CONVENTIONS", "LATENCY_DEVICES", "PI5_RUNTIMES", "latency_metric", "energy_metric", "count_params",
           "FlopCount", "count_flops", "count_flops_all", "nb201_flops", "LatencyMeasurement", "measure_latency", "MeasuredLatency",
           "load_hardware_table", "cost_columns", "with_hardware", "EnergyMeter", "search_energy"]
