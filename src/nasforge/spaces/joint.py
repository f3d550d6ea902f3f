"""Joint spaces: an architecture space times a space of training hyperparameters.

    space = JointSpace(NB201Space(), {"optimizer": ["sgd", "adamw"], "lr_scale": [0.3, 1, 3],
                                      "batch_size": [32, 128], "epochs": [3, 6, 12]})

A configuration is a :class:`JointConfig` ``(arch, hp)``: an architecture of the inner space and
a :class:`~nasforge.spaces.choice.Choices` of the hyperparameter :class:`ChoiceSpace`; its string
is ``<architecture> @ <key=value,...>``. Sampling draws both parts; a mutation changes one part
(the architecture or one hyperparameter, with probability proportional to how many independent
choices each part has, so every choice moves equally often); neighbours are the union of both
parts' neighbours; encodings concatenate the two parts'. This is the joint architecture x
hyperparameter space of EA-HAS-Bench (Dou et al., ICLR 2023), built from the spaces we already
have. Which hyperparameters mean what is decided by the estimator that trains a configuration
(:class:`nasforge.estimation.energy.JointTrainingEstimator`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError, NotAnArchitecture, shorten
from nasforge.spaces.base import SearchSpace
from nasforge.spaces.choice import ChoiceSpace, Choices

#: what separates the architecture from the hyperparameters in a configuration's string
SEPARATOR = " @ "


class JointConfig(tuple):
    """One configuration of a :class:`JointSpace`: ``(arch, hp)``."""

    __slots__ = ()

    def __new__(cls, arch: Any, hp: Choices) -> JointConfig:
        return super().__new__(cls, (arch, hp))

    @property
    def arch(self) -> Any:
        return self[0]

    @property
    def hp(self) -> Choices:
        return self[1]


class JointSpace(SearchSpace):
    """The product of an architecture space and a hyperparameter :class:`ChoiceSpace`.

    ``hyperparameters`` is a ``ChoiceSpace`` or the dict of choices to build one from (name ->
    allowed values). ``arch_choices`` is how many independent choices the architecture part
    counts for when a mutation picks which part to change (default: the length of the space's
    ``index`` encoding where it has one, else 1).
    """

    def __init__(self, space: SearchSpace, hyperparameters: Mapping[str, Sequence[Any]] | ChoiceSpace,
                 name: str | None = None, arch_choices: int | None = None) -> None:
        if not isinstance(space, SearchSpace):
            raise NasforgeError(f"a joint space needs an architecture space, got {shorten(space)}")
        if isinstance(space, JointSpace):
            raise NasforgeError("the architecture part of a joint space cannot itself be a joint space")
        hp = hyperparameters if isinstance(hyperparameters, ChoiceSpace) else ChoiceSpace(hyperparameters, name="hp")
        self.space, self.hp_space = space, hp
        self.name = name or f"{space.name}+hp"
        if arch_choices is None:
            try:
                arch_choices = len(space.encode(space.sample(np.random.default_rng(0)), "index"))
            except Exception:  # noqa: BLE001 - a space without an index encoding counts as one choice
                arch_choices = 1
        if int(arch_choices) < 1:
            raise NasforgeError(f"bad arch_choices {arch_choices!r}: expected a whole number >= 1")
        self.arch_choices = int(arch_choices)
        self.encodings = tuple(k for k in ("onehot", "index") if k in space.encodings) or ("onehot",)
        self._settle_params(hyperparameters={k: list(v) for k, v in zip(hp.keys, hp.values)})

    # --- the set ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.space) * len(self.hp_space)

    def __iter__(self) -> Iterator[JointConfig]:
        return (JointConfig(a, h) for a, h in itertools.product(self.space, self.hp_space))

    def sample(self, rng: np.random.Generator) -> JointConfig:
        return JointConfig(self.space.sample(rng), self.hp_space.sample(rng))

    def mutate(self, arch: Any, rng: np.random.Generator) -> JointConfig:
        cfg = self.coerce(arch)
        hp_moves = sum(len(v) > 1 for v in self.hp_space.values)
        if hp_moves and rng.random() < hp_moves / (hp_moves + self.arch_choices):
            return JointConfig(cfg.arch, self.hp_space.mutate(cfg.hp, rng))
        return JointConfig(self.space.mutate(cfg.arch, rng), cfg.hp)

    def neighbors(self, arch: Any) -> list[JointConfig]:
        cfg = self.coerce(arch)
        return ([JointConfig(a, cfg.hp) for a in self.space.neighbors(cfg.arch)]
                + [JointConfig(cfg.arch, h) for h in self.hp_space.neighbors(cfg.hp)])

    # --- text -----------------------------------------------------------------------------------
    def format(self, arch: Any) -> str:
        if not isinstance(arch, tuple) or len(arch) != 2:
            raise NasforgeError(f"{shorten(arch)} is not a configuration of space {self.name!r}: expected "
                                f"(architecture, hyperparameters)")
        return f"{self.space.format(arch[0])}{SEPARATOR}{self.hp_space.format(arch[1])}"

    def parse(self, text: str) -> JointConfig:
        left, sep, right = str(text).rpartition(SEPARATOR.strip())
        if not sep:
            raise NasforgeError(f"bad configuration {shorten(text)}: expected '<architecture> @ <key=value,...>'")
        return JointConfig(self.space.coerce(left.strip()), self.hp_space.parse(right.strip()))

    def coerce(self, arch: Any) -> JointConfig:
        if isinstance(arch, str):
            return self.parse(arch)
        if not isinstance(arch, tuple) or len(arch) != 2:
            raise NotAnArchitecture(f"{shorten(arch)} is not a configuration of space {self.name!r}")
        return JointConfig(self.space.coerce(arch[0]), self.hp_space.coerce(arch[1]))

    def hyperparameters(self, arch: Any) -> dict[str, Any]:
        """The configuration's hyperparameters as a plain dict."""
        return self.hp_space.config_of(self.coerce(arch).hp)

    def canonical_key(self, arch: Any) -> Any:
        cfg = self.coerce(arch)
        return (self.space.canonical_key(cfg.arch), cfg.hp)

    # --- numbers --------------------------------------------------------------------------------
    def encode(self, arch: Any, kind: str = "onehot") -> np.ndarray:
        if kind not in self.encodings:
            raise NasforgeError(f"unknown encoding {kind!r} for space {self.name!r}; allowed: {', '.join(self.encodings)}")
        cfg = self.coerce(arch)
        return np.concatenate([np.asarray(self.space.encode(cfg.arch, kind), dtype=np.float64).ravel(),
                               self.hp_space.encode(cfg.hp, kind)])

    def graph(self, arch: Any) -> tuple[np.ndarray, list[str]]:
        """The architecture's graph, its output followed by a chain of ``key=value`` nodes (one per
        hyperparameter) that ends in a new output node."""
        cfg = self.coerce(arch)
        adj, labels = self.space.graph(cfg.arch)
        _, hp_labels = self.hp_space.graph(cfg.hp)
        extra = hp_labels[1:]  # key=value nodes and the new output
        n0, n = len(labels), len(labels) + len(extra)
        out = np.zeros((n, n), dtype=np.int64)
        out[:n0, :n0] = adj
        for i in range(n0 - 1, n - 1):
            out[i, i + 1] = 1
        return out, list(labels[:-1]) + ["arch_output"] + extra

    def build(self, arch: Any, **kwargs: Any) -> Any:
        return self.space.build(self.coerce(arch).arch, **kwargs)

    def __contains__(self, arch: object) -> bool:
        try:
            self.coerce(arch)
        except (NasforgeError, TypeError, ValueError):
            return False
        return True

