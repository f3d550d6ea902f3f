"""Hard constraints on architectures: ``latency_ms[pixel3] <= 20``, ``params <= 0.5e6``, ``flops < 100M``.

A :class:`ConstraintSet` is parsed from such strings and bound to a search space (and optionally a
table): it then answers, *before* any evaluation, whether an architecture is feasible. Values come
from the table's columns where it has the metric (device latency and energy, or any metric of the
table), else from the space's cost model: ``params`` and ``flops`` (multiply-adds) by
:meth:`SearchSpace.param_count` and :meth:`SearchSpace.flops` at the space's
:meth:`~SearchSpace.default_net` (in closed form where the space has one, otherwise by building the
network and counting, see :mod:`nasforge.spaces.counting`). ``latency_ms[<device>]`` and
``energy_mj[<device>]`` are looked up in the space's published device tables
(:meth:`SearchSpace.device_tables`) when the table lacks them. ``latency_ms[local-torch]`` and
``latency_ms[local-onnxruntime]`` are measured on this machine
(:class:`~nasforge.estimation.hardware.MeasuredLatency`, the median of timed runs of the network
built at those settings), on any space that builds networks; each architecture is measured once
and the value kept. Measured latencies vary from run to run (other processes, frequency scaling),
so a search constrained by them is reproducible only up to architectures near the bound.

Strategies take the predicate as ``feasible=``: every proposal goes through ``Strategy.is_new``,
so infeasible architectures are never suggested (random sampling rejects them, mutation proposes
again, i.e. repairs by another mutation). A :class:`~nasforge.study.Study` given the set also
marks each trial's feasibility and never reports an infeasible trial as the best.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nasforge.errors import NasforgeError

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt,
}
_SUFFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
#: latency metrics measured on this machine, and their backend
LOCAL_LATENCY: dict[str, str] = {"latency_ms[local-torch]": "torch", "latency_ms[local-onnxruntime]": "onnxruntime"}
_PATTERN = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.\-]*(?:\[[\w.\-]+\])?)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<num>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<suffix>[kKMG]?)\s*$"
)


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``, e.g. ``Constraint("latency_ms[pixel3]", "<=", 20.0)``."""

    metric: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise NasforgeError(f"unknown comparison {self.op!r} in a constraint; allowed: {', '.join(_OPS)}")

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the constraint (NaN never does)."""
        return not math.isnan(value) and _OPS[self.op](float(value), self.bound)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def parse_constraint(text: str) -> Constraint:
    """Parse ``"<metric> <op> <number>"``; ``op`` is one of ``<= < >= >``; the number may carry a
    ``k``/``M``/``G`` suffix (``flops <= 100M``). Metric names may hold a ``[device]`` part."""
    if not isinstance(text, str):
        raise NasforgeError(f"a constraint must be a string like 'params <= 0.5e6', got {text!r}")
    m = _PATTERN.match(text)
    if not m:
        raise NasforgeError(
            f"malformed constraint {text!r}: expected '<metric> <op> <number>' with op one of "
            f"{', '.join(_OPS)}, e.g. 'latency_ms[pixel3] <= 20', 'params <= 0.5e6', 'flops < 100M'"
        )
    return Constraint(m["metric"], m["op"], float(m["num"]) * _SUFFIX[m["suffix"]])


class ConstraintSet:
    """Several constraints that must all hold; bind it to a space before asking about architectures.

    ``ConstraintSet(["params <= 0.5e6", "latency_ms[pixel3] <= 20"]).bind(space, table)``.
    """

    def __init__(self, constraints: Iterable[str | Constraint] = ()) -> None:
        self.constraints: list[Constraint] = [c if isinstance(c, Constraint) else parse_constraint(c)
                                              for c in constraints]
        self.space: Any = None
        self.table: Any = None
        self._build: dict[str, Any] = {}
        self._data_dir: Any = None
        self._hw: dict[str, Any] = {}
        self._latency: dict[str, Any] = {}
        self._meters: dict[str, Any] = {}
        self._cache: dict[Any, dict[str, float]] = {}

    # --- construction -------------------------------------------------------------------------
    def strings(self) -> list[str]:
        """The constraints as text (what a study stores in its config)."""
        return [str(c) for c in self.constraints]

    def __len__(self) -> int:
        return len(self.constraints)

    def __bool__(self) -> bool:
        return bool(self.constraints)

    def __repr__(self) -> str:
        return f"ConstraintSet({self.strings()!r})"

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(c.metric for c in self.constraints))

    def bind(self, space: Any, table: Any = None, build: dict[str, Any] | None = None,
             data_dir: Any = None, latency: dict[str, Any] | None = None) -> ConstraintSet:
        """Attach the space (and table) the values come from; checks every metric can be resolved.

        ``build`` holds network settings for counting ``params``/``flops`` and for measuring
        latency (default: the space's :meth:`~SearchSpace.default_net`, with the table's class
        count); ``data_dir`` locates the space's device tables; ``latency`` holds settings of the
        measurement for ``latency_ms[local-*]`` (``batch_size``, ``threads``, ``warmup``,
        ``repeats`` of :class:`~nasforge.estimation.hardware.MeasuredLatency`)."""
        allowed = {"batch_size", "threads", "warmup", "repeats"}
        bad = sorted(set(latency or {}) - allowed)
        if bad:
            raise NasforgeError(f"unknown latency measurement setting {bad[0]!r}; allowed: {', '.join(sorted(allowed))}")
        self.space, self.table, self._build, self._data_dir = space, table, dict(build or {}), data_dir
        self._latency = dict(latency or {})
        self._meters.clear()
        self._cache.clear()
        for metric in self.metrics:
            self._resolver(metric)  # raises a clear error for an unknown metric
        return self

    # --- values ---------------------------------------------------------------------------------
    def _net(self) -> dict[str, Any]:
        """The network settings costs are counted at: the space's :meth:`default_net`, the table's
        class count (100 on a CIFAR-100 table, for a space with a ``num_classes`` setting), then
        ``build``."""
        net = dict(self.space.default_net()) if hasattr(self.space, "default_net") else {}
        name = getattr(self.table, "name", "") or ""
        if "num_classes" in net and "cifar100" in name:
            net["num_classes"] = 100
        net.update(self._build)
        return net

    def _resolver(self, metric: str) -> Callable[[Any], float]:
        if self.space is None:
            raise NasforgeError("bind the constraints to a search space first: constraints.bind(space, table)")
        table = self.table
        if table is not None:
            cols = getattr(table, "columns", {})
            names = set(cols) | set(table.metrics_at(None)) if hasattr(table, "metrics_at") else set(cols)
            if metric in names:
                col = metric if metric in cols else table.column(metric)
                values = table.columns[col]
                return lambda a: float(values[table.row(a)])
        if metric in ("params", "flops"):
            return self._cost(metric)
        if metric in LOCAL_LATENCY:
            return self._measured(metric)
        if metric.startswith(("latency_ms[", "energy_mj[")):
            return self._device(metric)
        from nasforge.estimation.hardware import device_tables

        avail = ["params", "flops"]
        if device_tables(self.space):
            avail.append(f"latency_ms[<device>]/energy_mj[<device>] ({self.space.name} device tables)")
        if table is not None:
            avail.append("the table's metrics: " + ", ".join(sorted(getattr(table, "columns", {}))))
        raise NasforgeError(f"unknown metric {metric!r} in a constraint (on any space latency_ms[local-torch] and "
                            f"latency_ms[local-onnxruntime] are measured here); available: {'; '.join(avail)}")

    def _cost(self, metric: str) -> Callable[[Any], float]:
        """``params`` or ``flops`` (multiply-adds) from the space's cost model."""
        from nasforge.spaces.base import settings_for

        fn = self.space.param_count if metric == "params" else self.space.flops
        kw = settings_for(fn, self._net())
        return lambda a: float(fn(a, **kw))

    def _measured(self, metric: str) -> Callable[[Any], float]:
        """Latency measured on this machine: the median of timed runs of the network of the
        constraint's settings (:meth:`_net`), once per architecture."""
        from nasforge.estimation.hardware import MeasuredLatency
        from nasforge.spaces.base import settings_for

        meter = self._meters.get(metric)
        if meter is None:
            build = settings_for(self.space.build, self._net())
            meter = self._meters[metric] = MeasuredLatency(self.space, build=build, backend=LOCAL_LATENCY[metric],
                                                           **self._latency)

        def measure(a: Any) -> float:
            try:
                return float(meter.measure(a).median_ms)
            except NotImplementedError as exc:
                raise NasforgeError(f"constraint on {metric!r}: space {self.space.name!r} builds no networks to time "
                                    f"({exc})") from None

        return measure

    def _device(self, metric: str) -> Callable[[Any], float]:
        """A device metric looked up in the space's device tables."""
        from nasforge.estimation.hardware import device_tables, load_device_table, no_device_tables

        tables = device_tables(self.space)
        if not tables:
            raise no_device_tables(self.space, f"constraint on {metric!r}")
        for which, spec in tables.items():
            if self._build:  # a search that trains its own networks (their settings, their data)
                settings = ", ".join(f"{k}={v}" for k, v in spec.net.items())
                raise NasforgeError(f"constraint on {metric!r}: the {self.space.name} device tables describe the "
                                    f"{settings} network, not the networks this search builds; use params or flops")
            hw = self._hw.get(which)
            if hw is None:
                hw = self._hw[which] = load_device_table(self.space, which, self._data_dir)
            if metric in hw.columns:
                values = hw.columns[metric]
                return lambda a, hw=hw, values=values: float(values[hw.row(a)])
        avail = sorted(set().union(*(set(t.columns) for t in self._hw.values())))
        raise NasforgeError(f"unknown device metric {metric!r} in a constraint; available: {', '.join(avail)}")

    def values(self, arch: Any) -> dict[str, float]:
        """The constrained metrics of ``arch`` (cached)."""
        arch = self.space.coerce(arch) if self.space is not None else arch
        got = self._cache.get(arch)
        if got is None:
            got = self._cache[arch] = {m: self._resolver(m)(arch) for m in self.metrics}
        return got

    def check(self, values: Mapping[str, float]) -> bool:
        """Whether measured ``values`` satisfy every constraint (a missing metric is a violation)."""
        return all(c.metric in values and c.holds(float(values[c.metric])) for c in self.constraints)

    def violations(self, values: Mapping[str, float]) -> list[str]:
        """The constraints ``values`` break, as text."""
        return [str(c) for c in self.constraints
                if c.metric not in values or not c.holds(float(values[c.metric]))]

    def feasible(self, arch: Any, metrics: Mapping[str, float] | None = None) -> bool:
        """Whether ``arch`` satisfies every constraint; measured ``metrics`` take precedence."""
        if not self.constraints:
            return True
        vals = dict(self.values(arch)) if self.space is not None else {}
        if metrics:
            vals.update({k: float(v) for k, v in metrics.items() if k in self.metrics})
        return self.check(vals)

    def __call__(self, arch: Any) -> bool:
        """The predicate strategies take as ``feasible=``."""
        return self.feasible(arch)

    def feasible_mask(self, archs: Iterable[Any]) -> list[bool]:
        """Feasibility of many architectures (e.g. a whole table, for the true constrained optimum)."""
        return [self.feasible(a) for a in archs]


def bind_constraints(texts: Iterable[str] | None, space: Any, table: Any = None, estimator: Any = None,
                     data_dir: Any = None) -> ConstraintSet | None:
    """A bound :class:`ConstraintSet` for a search (``None`` without constraints).

    On a table, values come from the table (and the space's device tables); with a training
    estimator, ``params``/``flops`` are those of the networks it builds (its dataset's input size
    and class count, its ``C``/``N``)."""
    texts = list(texts or [])
    if not texts:
        return None
    build: dict[str, Any] = {}
    data = getattr(estimator, "dataset", None)
    if table is None and data is not None:
        build = {"num_classes": data.num_classes, "in_channels": data.in_channels, "input_size": data.input_size,
                 **dict(getattr(estimator, "net", {}) or {})}
    return ConstraintSet(texts).bind(space, table, build=build, data_dir=data_dir)


__all__ = ["Constraint", "ConstraintSet", "parse_constraint", "bind_constraints"]
