"""Hard constraints on architectures: ``latency_ms[pixel3] <= 20``, ``params <= 0.5e6``, ``flops < 100M``.

A :class:`ConstraintSet` is parsed from such strings and bound to a search space (and optionally a
table): it then answers, *before* any evaluation, whether an architecture is feasible. Values come
from the table's columns where it has the metric (device latency and energy, or any metric of the
table), else from the cost model: ``params`` and ``flops`` in closed form for NB201, or by building
the network and counting (official NB201 FLOP convention, see :mod:`nasforge.estimation.hardware`).
For NB201 spaces, ``latency_ms[<device>]``/``energy_mj[<device>]`` are looked up in the shared
device tables when the table lacks them.

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
             data_dir: Any = None) -> ConstraintSet:
        """Attach the space (and table) the values come from; checks every metric can be resolved.

        ``build`` holds network settings for counting ``params``/``flops`` (NB201 default: C=16,
        N=5, 32x32, the table's class count); ``data_dir`` locates the NB201 device tables."""
        self.space, self.table, self._build, self._data_dir = space, table, dict(build or {}), data_dir
        self._cache.clear()
        for metric in self.metrics:
            self._resolver(metric)  # raises a clear error for an unknown metric
        return self

    # --- values ---------------------------------------------------------------------------------
    def _num_classes(self) -> int:
        if "num_classes" in self._build:
            return int(self._build["num_classes"])
        name = getattr(self.table, "name", "") or ""
        return 100 if "cifar100" in name else 10

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
        is_nb201 = getattr(self.space, "name", "") == "nb201"
        if metric in ("params", "flops"):
            if is_nb201:
                from nasforge.estimation.hardware import nb201_flops
                from nasforge.spaces.nb201_net import nb201_param_count

                kw = {"C": 16, "N": 5, "num_classes": self._num_classes(), **self._build}
                if metric == "params":
                    kw.pop("input_size", None)
                    return lambda a: float(nb201_param_count(a, **kw))
                return lambda a: float(nb201_flops(a, **kw))
            return self._counted(metric)
        if is_nb201 and (metric.startswith("latency_ms[") or metric.startswith("energy_mj[")):
            if self._build:
                raise NasforgeError(f"constraint on {metric!r}: the NB201 device tables describe the C=16, N=5 "
                                    "32x32 network, not the networks this search builds; use params or flops")
            from nasforge.estimation.hardware import load_hardware_table

            for which in ("latency", "pi5"):
                hw = self._hw.get(which)
                if hw is None:
                    hw = self._hw[which] = load_hardware_table(which, self._data_dir)
                if metric in hw.columns:
                    values = hw.columns[metric]
                    return lambda a, hw=hw, values=values: float(values[hw.row(a)])
            avail = sorted(set(self._hw["latency"].columns) | set(self._hw["pi5"].columns))
            raise NasforgeError(f"unknown device metric {metric!r} in a constraint; available: {', '.join(avail)}")
        avail = ["params", "flops"]
        if is_nb201:
            avail.append("latency_ms[<device>]/energy_mj[<device>] (NB201 device tables)")
        if table is not None:
            avail.append("the table's metrics: " + ", ".join(sorted(getattr(table, "columns", {}))))
        raise NasforgeError(f"unknown metric {metric!r} in a constraint; available: {'; '.join(avail)}")

    def _counted(self, metric: str) -> Callable[[Any], float]:
        from nasforge.estimation.hardware import count_flops, count_params

        build = dict(self._build)
        side = int(build.get("input_size", 32))
        shape = (int(build.get("in_channels", 3)), side, side)

        def value(a: Any) -> float:
            model = self.space.build(a, **build)
            return float(count_params(model) if metric == "params" else count_flops(model, shape).total)

        return value

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

    On a table, values come from the table (and the NB201 device tables); with a training
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
