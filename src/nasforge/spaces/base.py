"""The search-space interface every space implements."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError, NotAnArchitecture, shorten
from nasforge.params import Configurable


@dataclass(frozen=True)
class DeviceTable:
    """Published measurements of a space's architectures on devices (one CSV with an ``arch`` column).

    ``path`` is relative to the reference data folder. With ``unit`` set (e.g. ``"latency_ms"``)
    every other column is a device and holds that metric (``latency_ms[<device>]``); without it,
    columns name their unit by suffix: ``<device>_lat_ms`` and ``<device>_energy_mj``. ``net``
    holds the network settings the measurements describe (a table says nothing of other networks).
    """

    name: str
    path: str
    unit: str | None = None
    net: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    devices: tuple[str, ...] = ()


def settings_for(fn: Callable[..., Any], net: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the network settings ``net`` that ``fn`` accepts as keywords (all of them when
    it takes ``**kwargs``): settings a cost model does not depend on (``drop_path_prob``, or
    ``input_size`` for a parameter count) are left out."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return dict(net)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(net)
    names = {p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return {k: v for k, v in net.items() if k in names}


class SearchSpace(Configurable, ABC):
    """A set of architectures with sampling, local moves, encodings and a network builder.

    Architectures are immutable, hashable values owned by the space; ``format`` gives their one
    canonical string and ``parse`` reads it back. Spaces hold no random state: every random
    operation takes a ``numpy.random.Generator``. A space describes itself by its constructor
    arguments (``get_params()``, ``spec()``; see :mod:`nasforge.params`).
    """

    #: short registry name, e.g. ``"nb201"``
    name: str = ""
    #: encodings accepted by :meth:`encode`
    encodings: tuple[str, ...] = ()

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """One architecture drawn at random."""

    @abstractmethod
    def mutate(self, arch: Any, rng: np.random.Generator) -> Any:
        """A random neighbour of ``arch`` (one local change; never ``arch`` itself)."""

    @abstractmethod
    def neighbors(self, arch: Any) -> list[Any]:
        """Every architecture one local change away from ``arch``, in a fixed order."""

    @abstractmethod
    def parse(self, text: str) -> Any:
        """The architecture written as ``text``; raises ``NasforgeError`` saying what is wrong."""

    @abstractmethod
    def format(self, arch: Any) -> str:
        """The canonical string of ``arch``."""

    @abstractmethod
    def encode(self, arch: Any, kind: str = "onehot") -> np.ndarray:
        """A fixed-length numeric vector for ``arch``."""

    @abstractmethod
    def graph(self, arch: Any) -> tuple[np.ndarray, list[str]]:
        """The architecture as a DAG with operations on nodes: (adjacency matrix, node labels).

        Node 0 is the input and the last node the output; model-based strategies define their
        graph kernels through this view, so they are not tied to one space.
        """

    def canonical_key(self, arch: Any) -> Hashable:
        """A key equal for architectures that compute the same function (default: the arch)."""
        return arch

    def build(self, arch: Any, **kwargs: Any) -> Any:
        """The PyTorch ``nn.Module`` for ``arch``."""
        raise NotImplementedError(f"space {self.name!r} does not build networks")

    # --- cost models (optional; the defaults build the network and count) ----------------------
    def default_net(self) -> dict[str, Any]:
        """The network settings hardware cost is quoted at (``build``'s keywords); ``{}`` means
        ``build``'s own defaults."""
        return {}

    def input_shape(self, **net: Any) -> tuple[int, ...]:
        """The shape of one input (no batch dimension) of the network built with ``net``:
        ``(in_channels, input_size, input_size)``, 3x32x32 unless the settings say otherwise."""
        side = int(net.get("input_size", 32))
        return (int(net.get("in_channels", 3)), side, side)

    def param_count(self, arch: Any, **net: Any) -> int:
        """Parameters of the network of ``arch`` built with settings ``net``.

        The default builds the network (with the settings ``build`` takes) and counts its
        parameters; spaces with a closed form override it (same numbers, no network built)."""
        from nasforge.spaces.counting import count_params

        return count_params(self._cost_network(arch, net, "parameter count"))

    def flops(self, arch: Any, convention: str = "nb201", **net: Any) -> int:
        """FLOPs of one forward pass on one input, counted as multiply-adds (MACs), of the network of
        ``arch`` built with settings ``net``.

        The default builds the network (with the settings ``build`` takes) and counts with forward
        hooks on an input of :meth:`input_shape` (``convention`` as in :mod:`nasforge.spaces.counting`: by default
        convolutions and linear layers only); spaces with a closed form override it."""
        from nasforge.spaces.counting import check_convention, count_flops

        check_convention(convention)
        model = self._cost_network(arch, net, "FLOP count")
        return int(count_flops(model, self.input_shape(**net), convention).total)

    def _cost_network(self, arch: Any, net: Mapping[str, Any], what: str) -> Any:
        try:
            return self.build(self.coerce(arch), **settings_for(self.build, net))
        except NotImplementedError as exc:
            raise NasforgeError(f"space {self.name!r} has no {what}: it neither builds networks nor has a closed "
                                f"form ({exc})") from None

    # --- weight sharing (optional) -------------------------------------------------------------
    def supernet_layout(self) -> Any:
        """The space's supernet protocol (a :class:`nasforge.spaces.supernet.SupernetLayout`): its
        decision points and candidate operations, architectures as per-edge operation indices,
        validity, drawing, and the supernet module (:meth:`supernet`). Spaces without one raise."""
        raise NasforgeError(f"space {self.name!r} has no weight-sharing supernet")

    def supernet(self, allowed: Any = None, **net: Any) -> Any:
        """The weight-sharing supernet over this space (a :class:`nasforge.spaces.supernet.Supernet`
        ``nn.Module``) with network settings ``net``; ``allowed`` restricts the operations per edge."""
        return self.supernet_layout().build(allowed=allowed, **net)

    def device_tables(self) -> dict[str, DeviceTable]:
        """Published device measurements (latency, energy) of this space's architectures, by name;
        none by default."""
        return {}

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(f"space {self.name!r} is not enumerable")

    def __len__(self) -> int:
        raise TypeError(f"space {self.name!r} has no finite size")

    def finite_size(self) -> int | None:
        """The number of architectures, or None where the space has no finite size."""
        try:
            return len(self)
        except TypeError:
            return None

    def __contains__(self, arch: object) -> bool:
        try:
            self.format(arch)
        except Exception:  # noqa: BLE001 - anything the space cannot format is not in it
            return False
        return True

    def coerce(self, arch: Any) -> Any:
        """Accept an architecture or its string; return the architecture."""
        if isinstance(arch, str):
            return self.parse(arch)
        if arch not in self:
            raise NotAnArchitecture(f"{shorten(arch)} is not an architecture of space {self.name!r}")
        return arch
