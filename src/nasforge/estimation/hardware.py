"""Hardware cost of architectures: parameters, FLOPs, measured latency, and device tables.

Cost models belong to the search space: :meth:`SearchSpace.param_count` and
:meth:`SearchSpace.flops` (multiply-adds), at the settings of :meth:`SearchSpace.default_net`,
in closed form where the space has one (NB201, DARTS parameters) and otherwise by building the
network and counting. This module holds what works on any space:

* :func:`count_params` / :func:`count_flops` on any ``nn.Module`` (re-exported from
  :mod:`nasforge.spaces.counting`, where the FLOP conventions are described);
* :func:`measure_latency` times a network on this machine, in PyTorch or onnxruntime;
* :func:`load_device_table` reads a space's published device tables
  (:meth:`SearchSpace.device_tables`) and :func:`with_hardware` joins them, with the space's
  parameters and FLOPs, to an accuracy table, so that latency, energy, parameters and FLOPs are
  ordinary metrics.
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
from nasforge.spaces.base import DeviceTable, settings_for
from nasforge.spaces.counting import FLOP_CONVENTIONS, FlopCount, count_flops, count_flops_all, count_params

# earlier homes of NB201 data and its closed form, kept importable from here
from nasforge.spaces.nb201 import LATENCY_DEVICES, PI5_RUNTIMES, nb201_flops


def latency_metric(device: str) -> str:
    """The metric name of a device's latency: ``latency_ms[<device>]``."""
    return f"latency_ms[{device}]"


def energy_metric(device: str) -> str:
    """The metric name of a device's energy per inference: ``energy_mj[<device>]``."""
    return f"energy_mj[{device}]"


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
            shape_of = getattr(space, "input_shape", None)
            if callable(shape_of):
                input_shape = shape_of(**self.build)
            else:
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
def device_tables(space: Any) -> dict[str, DeviceTable]:
    """The space's published device tables by name (none for a space that declares none)."""
    get = getattr(space, "device_tables", None)
    return dict(get()) if callable(get) else {}


def no_device_tables(space: Any, what: str) -> NasforgeError:
    """The error for ``what`` (a device metric or table) asked of a space without device tables;
    it names the registered spaces that have them."""
    from nasforge.spaces import SPACES, get_space

    having = []
    for name in SPACES:
        if name == getattr(space, "name", None):
            continue
        try:
            if device_tables(get_space(name)):
                having.append(name)
        except Exception:  # noqa: BLE001 - a space that cannot be made here has no tables to offer
            continue
    where = (f"published device tables are specific to the architectures of space(s) {', '.join(having)}"
             if having else "no registered space has device tables")
    return NasforgeError(f"{what}: space {getattr(space, 'name', space)!r} has no device tables ({where}); "
                         "use params or flops, a benchmark with that column, or measure latency on this "
                         "machine (MeasuredLatency)")


def _table_dir(space: Any, table: DeviceTable, data_dir: str | os.PathLike[str] | None) -> Path:
    from nasforge.estimation.tabular import find_data_dir

    root = find_data_dir(data_dir)
    if root is None or not (root / table.path).parent.is_dir():
        paths = " and ".join(t.path for t in device_tables(space).values())
        raise NasforgeError(f"the {space.name} device tables need the reference data folder: pass data_dir or set "
                            f"NASFORGE_DATA (it holds {paths})")
    return root


def load_device_table(space: Any, which: str, data_dir: str | os.PathLike[str] | None = None) -> Any:
    """Device table ``which`` of ``space`` as a :class:`TabularBenchmark` over the space's
    architectures, with metrics ``latency_ms[<device>]`` and ``energy_mj[<device>]``."""
    from nasforge.estimation.tabular import TabularBenchmark, read_arch_table

    tables = device_tables(space)
    if not tables:
        raise no_device_tables(space, f"device table {which!r}")
    if which not in tables:
        raise unknown("hardware table", which, tuple(tables))
    table = tables[which]
    path = _table_dir(space, table, data_dir) / table.path
    archs, cols = read_arch_table(path, space.parse)
    suffixes = (("_lat_ms", latency_metric), ("_energy_mj", energy_metric))
    renamed: dict[str, np.ndarray] = {}
    for c, v in cols.items():
        if table.unit is not None:
            renamed[f"{table.unit}[{c}]"] = v
            continue
        for suffix, metric in suffixes:
            if c.endswith(suffix):
                renamed[metric(c[: -len(suffix)])] = v
                break
        else:
            renamed[c] = v
    return TabularBenchmark(space, archs, renamed, name=f"{space.name}-hw:{which}")


def load_hardware_table(which: str = "latency", data_dir: str | os.PathLike[str] | None = None,
                        space: Any = None) -> Any:
    """A device table as a :class:`TabularBenchmark` (:func:`load_device_table`); ``space``
    defaults to the one space whose tables the reference data holds, NB201: ``which="latency"``
    (14 devices' ``latency_ms[<device>]``) or ``"pi5"`` (Raspberry Pi 5 ``latency_ms[pi5_*]`` and
    ``energy_mj[pi5_*]``, CIFAR-100 network)."""
    if space is None:
        from nasforge.spaces.nb201 import NB201Space

        space = NB201Space()
    return load_device_table(space, which, data_dir)


def cost_columns(archs: Sequence[Any], space: Any, **net: Any) -> dict[str, np.ndarray]:
    """``params`` and ``flops`` (multiply-adds) of ``archs``, from the space's cost model at its
    :meth:`~SearchSpace.default_net` updated by ``net``."""
    settings = {**space.default_net(), **net}
    p_kw, f_kw = settings_for(space.param_count, settings), settings_for(space.flops, settings)
    params = np.array([space.param_count(a, **p_kw) for a in archs], dtype=float)
    flops = np.array([space.flops(a, **f_kw) for a in archs], dtype=float)
    return {"params": params, "flops": flops}


def hardware_parts(space: Any) -> tuple[str, ...]:
    """What :func:`with_hardware` can add for ``space``: its device tables, and ``cost``."""
    return (*device_tables(space), "cost")


def with_hardware(bench: Any, parts: Iterable[str] | None = None, data_dir: str | os.PathLike[str] | None = None,
                  num_classes: int | None = None) -> Any:
    """A copy of table ``bench`` with hardware metrics on the same architectures.

    ``parts`` (default: all of :func:`hardware_parts`): a device table of the bench's space by
    name (for NB201 ``latency``, the 14 devices' ``latency_ms[<device>]``, and ``pi5``, Raspberry
    Pi 5 ``latency_ms[pi5_*]``/``energy_mj[pi5_*]``), and ``cost`` (``params`` and ``flops`` of the
    space's :meth:`~SearchSpace.default_net` network, from the space's cost model; ``num_classes``
    defaults to 100 for a CIFAR-100 table of a space whose default network has that setting, else
    the space's default). The result keeps
    ``bench``'s fidelities, ``default_metric`` and ``report_metric``.
    """
    space = bench.space
    allowed = hardware_parts(space)
    parts = list(dict.fromkeys(allowed if parts is None else parts))
    for p in parts:
        if p not in allowed:
            if not device_tables(space) and p != "cost":
                raise no_device_tables(space, f"hardware part {p!r} of benchmark {bench.name!r}")
            raise unknown("hardware part", p, allowed)
    columns = dict(bench.columns)
    for p in parts:
        if p == "cost":
            net: dict[str, Any] = {}
            if num_classes is not None:
                net["num_classes"] = num_classes
            elif "cifar100" in bench.name and "num_classes" in space.default_net():
                net["num_classes"] = 100
            extra = cost_columns(bench.archs, space, **net)
        else:
            table = load_device_table(space, p, data_dir)
            rows = np.array([table.row(a) for a in bench.archs])
            extra = {c: v[rows] for c, v in table.columns.items()}
        for c, v in extra.items():
            if c in columns:
                raise NasforgeError(f"benchmark {bench.name!r} already has a column {c!r}")
            columns[c] = v
    return bench.derive(columns, name=f"{bench.name}+{'+'.join(parts)}")


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
           "FlopCount", "count_flops", "count_flops_all", "nb201_flops", "LatencyMeasurement", "measure_latency",
           "MeasuredLatency", "device_tables", "load_device_table", "load_hardware_table", "cost_columns",
           "hardware_parts", "with_hardware", "EnergyMeter", "search_energy"]
