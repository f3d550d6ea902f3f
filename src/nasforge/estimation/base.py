"""The estimator interface: how good is an architecture?"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from nasforge.params import Configurable


@dataclass(slots=True)
class Measurement:
    """What an estimator says about one architecture at one fidelity.

    ``metrics`` maps metric names to numbers; ``cost`` is what the evaluation cost in seconds
    (simulated for tabular benchmarks: the benchmark's training time where the table has one,
    otherwise the fidelity in epochs), so anytime curves can be drawn on a common clock.
    """

    metrics: dict[str, float]
    cost: float = 0.0
    fidelity: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Estimator(Configurable, ABC):
    """Turns an architecture (and a fidelity) into a :class:`Measurement`.

    An estimator describes itself by its constructor arguments (``get_params()``, ``spec()``; see
    :mod:`nasforge.params`).
    """

    #: fidelities the estimator accepts, smallest first; ``None`` when it has only one
    fidelities: tuple[float, ...] | None = None

    @abstractmethod
    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        """Measure ``arch`` at ``fidelity`` (the largest fidelity when ``None``)."""

    @property
    @abstractmethod
    def metric_names(self) -> list[str]:
        """Names of the metrics a measurement carries."""

    def higher_is_better(self, metric: str) -> bool:
        """Whether larger values of ``metric`` are better (by name: loss, error, latency... lower)."""
        lowered = metric.lower()
        return not any(w in lowered for w in ("loss", "err", "latency", "param", "flop", "energy", "time", "cost"))
