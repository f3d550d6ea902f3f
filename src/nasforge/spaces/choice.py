"""User-defined spaces from a dict of choices: every strategy, estimator and export works on them.

    space = ChoiceSpace({"depth": [1, 2, 3], "width": [16, 32, 64], "act": ["relu", "gelu"]},
                        builder=make_net, name="mlp")

An architecture is a :class:`Choices` value (one value per key, in the order of the dict); its
canonical string is ``depth=2,width=32,act=relu``. From the dict the space derives sampling
(uniform per key), mutation and neighbours (one key changed), one-hot encodings, a graph view (a
chain input -> one node per key -> output, labelled ``key=value``, so graph kernels apply), and
the network (``builder(dict_of_choices, **build_settings)`` returns an ``nn.Module``).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError, shorten
from nasforge.spaces.base import SearchSpace

_SCALARS = (str, int, float, bool)


class Choices(tuple):
    """One architecture of a :class:`ChoiceSpace`: its values in the space's key order."""

    __slots__ = ()


class ChoiceSpace(SearchSpace):
    """A space of independent categorical choices (layers, widths, kernel sizes, activations...).

    ``choices`` maps each name to its allowed values (a list of strings, numbers or booleans;
    ``range(...)`` works for integers), in the order they are shown. ``builder(config, **kwargs)``
    builds the network of one architecture (``config`` a plain dict); it receives what an
    estimator passes to ``build`` (e.g. ``num_classes``, ``in_channels``, ``input_size``).
    """

    encodings = ("onehot", "index")

    def __init__(
        self,
        choices: Mapping[str, Sequence[Any]],
        builder: Callable[..., Any] | None = None,
        name: str = "choices",
    ) -> None:
        if not isinstance(choices, Mapping) or not choices:
            raise NasforgeError(f"a choice space needs a non-empty dict of name -> allowed values, got {choices!r}")
        keys: list[str] = []
        values: list[tuple[Any, ...]] = []
        for key, allowed in choices.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise NasforgeError(f"choice name {key!r} must be an identifier (letters, digits, _)")
            if isinstance(allowed, (str, bytes)) or not isinstance(allowed, (Sequence, range)):
                raise NasforgeError(f"choice {key!r}: expected a list of allowed values, got {allowed!r}")
            vals = tuple(allowed)
            if not vals:
                raise NasforgeError(f"choice {key!r} is empty; give at least one allowed value")
            bad = [v for v in vals if not isinstance(v, _SCALARS) or (isinstance(v, float) and not math.isfinite(v))]
            if bad:
                raise NasforgeError(f"choice {key!r}: value {bad[0]!r} is not a string, number or boolean")
            if len(set(map(_text, vals))) != len(vals):
                raise NasforgeError(f"choice {key!r} lists a value twice: {list(vals)!r}")
            keys.append(key)
            values.append(vals)
        if builder is not None and not callable(builder):
            raise NasforgeError(f"builder must be a function returning a torch.nn.Module, got {builder!r}")
        self.name = name
        self.keys = tuple(keys)
        self.values = tuple(values)
        self.builder = builder
        self._index = [{_text(v): i for i, v in enumerate(vals)} for vals in values]
        #: the labels of the graph view's inner nodes (graph encodings and kernels read them)
        self.ops = tuple(f"{k}={_text(v)}" for k, vals in zip(keys, values) for v in vals)
        self._settle_params(choices={k: list(v) for k, v in zip(keys, values)})

    # --- the set ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return math.prod(len(v) for v in self.values)

    def __iter__(self) -> Iterator[Choices]:
        return (Choices(c) for c in itertools.product(*self.values))

    def sample(self, rng: np.random.Generator) -> Choices:
        return Choices(vals[int(rng.integers(len(vals)))] for vals in self.values)

    def mutate(self, arch: Any, rng: np.random.Generator) -> Choices:
        arch = self.coerce(arch)
        movable = [i for i, vals in enumerate(self.values) if len(vals) > 1]
        if not movable:
            raise NasforgeError(f"space {self.name!r} has one architecture only; nothing to mutate")
        i = movable[int(rng.integers(len(movable)))]
        cur = self._index[i][_text(arch[i])]
        j = int(rng.integers(len(self.values[i]) - 1))
        j += j >= cur
        return Choices(arch[:i] + (self.values[i][j],) + arch[i + 1:])

    def neighbors(self, arch: Any) -> list[Choices]:
        arch = self.coerce(arch)
        out = []
        for i, vals in enumerate(self.values):
            for v in vals:
                if _text(v) != _text(arch[i]):
                    out.append(Choices(arch[:i] + (v,) + arch[i + 1:]))
        return out

    # --- text -----------------------------------------------------------------------------------
    def format(self, arch: Any) -> str:
        if not isinstance(arch, tuple) or len(arch) != len(self.keys):
            raise NasforgeError(f"{arch!r} is not an architecture of space {self.name!r}")
        for i, v in enumerate(arch):
            if _text(v) not in self._index[i]:
                raise NasforgeError(f"{self.keys[i]}={v!r} is not allowed; allowed: {_allowed(self.values[i])}")
        return ",".join(f"{k}={_text(v)}" for k, v in zip(self.keys, arch))

    def parse(self, text: str) -> Choices:
        if isinstance(text, Mapping):
            items = dict(text)
        else:
            items = {}
            for part in str(text).split(","):
                key, sep, raw = part.strip().partition("=")
                if not sep:
                    raise NasforgeError(f"bad architecture {text!r}: expected key=value,... e.g. "
                                        f"{self.format(next(iter(self)))}")
                items[key.strip()] = raw.strip()
        unknown_keys = [k for k in items if k not in self.keys]
        missing = [k for k in self.keys if k not in items]
        if unknown_keys or missing:
            what = f"unknown choice {unknown_keys[0]!r}" if unknown_keys else f"missing choice {missing[0]!r}"
            raise NasforgeError(f"bad architecture {text!r}: {what}; the choices are {', '.join(self.keys)}")
        out = []
        for i, key in enumerate(self.keys):
            j = self._index[i].get(_text(items[key]))
            if j is None:
                raise NasforgeError(f"bad architecture {text!r}: {key}={items[key]!r} is not allowed; "
                                    f"allowed: {_allowed(self.values[i])}")
            out.append(self.values[i][j])
        return Choices(out)

    def coerce(self, arch: Any) -> Choices:
        """A :class:`Choices` from itself, its string, a dict of choices, or a tuple of values
        (what a crossover of two architectures gives)."""
        if isinstance(arch, (str, Mapping)):
            return self.parse(arch)
        self.format(arch)  # a one-line error naming the bad value
        return arch if isinstance(arch, Choices) else Choices(arch)

    def config_of(self, arch: Any) -> dict[str, Any]:
        """The architecture as a plain dict (what ``builder`` receives)."""
        arch = self.coerce(arch)
        return dict(zip(self.keys, arch))

    # --- numbers --------------------------------------------------------------------------------
    def encode(self, arch: Any, kind: str = "onehot") -> np.ndarray:
        arch = self.coerce(arch)
        idx = [self._index[i][_text(v)] for i, v in enumerate(arch)]
        if kind == "index":
            return np.asarray(idx, dtype=np.float64)
        if kind == "onehot":
            out = np.zeros(sum(len(v) for v in self.values))
            offset = 0
            for i, vals in zip(idx, self.values):
                out[offset + i] = 1.0
                offset += len(vals)
            return out
        raise NasforgeError(f"unknown encoding {kind!r}; allowed: {', '.join(self.encodings)}")

    def graph(self, arch: Any) -> tuple[np.ndarray, list[str]]:
        arch = self.coerce(arch)
        n = len(self.keys) + 2
        adj = np.zeros((n, n), dtype=np.int64)
        for i in range(n - 1):
            adj[i, i + 1] = 1
        labels = ["input"] + [f"{k}={_text(v)}" for k, v in zip(self.keys, arch)] + ["output"]
        return adj, labels

    def build(self, arch: Any, **kwargs: Any) -> Any:
        if self.builder is None:
            raise NasforgeError(f"space {self.name!r} has no builder; give ChoiceSpace(..., builder=fn)")
        from torch import nn

        net = self.builder(self.config_of(arch), **kwargs)
        if not isinstance(net, nn.Module):
            raise NasforgeError(f"the builder of space {self.name!r} returned {shorten(net, 80)} "
                                f"({type(net).__name__}) for {self.format(arch)}; it must return a torch.nn.Module")
        return net

    def __contains__(self, arch: object) -> bool:
        try:
            self.format(arch)
        except NasforgeError:
            return False
        return True


def _text(v: Any) -> str:
    """The canonical text of a value (JSON for numbers and booleans: 1 and 1.0 differ, True is true)."""
    return v if isinstance(v, str) else json.dumps(v)


def _allowed(vals: Sequence[Any]) -> str:
    return ", ".join(_text(v) for v in vals)
