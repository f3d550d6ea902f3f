"""BOHB (Falkner et al., ICML 2018): Hyperband whose new configurations come from a
tree-structured Parzen estimator (TPE) instead of uniform sampling.

Each new configuration of a bracket is, with probability ``random_fraction``, a uniform sample
(so the search never stops exploring); otherwise it is chosen by a model of the largest rung
that holds at least ``min_points`` results (default: the encoding's length + 1, as BOHB): the
top ``top_fraction`` of that rung's configurations (at least ``min_points``) are "good", the
rest (at least ``min_points``) "bad"; each gets a product of per-dimension categorical kernels
(Aitchison-Aitken: the observed value with weight ``1 - bandwidth``, the others sharing
``bandwidth``) over the space's ``index`` encoding (``onehot`` where it has none); of
``n_candidates`` candidates drawn near good configurations the one with the largest ratio
l(x) / g(x) is taken.

Our reading, stated: BOHB samples candidates from its good KDE directly, which needs a way back
from a vector to a configuration; a space here only gives the forward encoding, so a candidate is
a good configuration changed by 1 + Binomial(d - 1, ``bandwidth``) of the space's own mutations
(each changes one choice), and the bandwidth is a fixed setting rather than BOHB's
normal-reference estimate per dimension.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Suggestion
from nasforge.strategies.multifidelity import Hyperband


class BOHB(Hyperband):
    """Hyperband with TPE-guided new configurations (see the module's description)."""

    name = "bohb"

    def __init__(self, space: SearchSpace, random_fraction: float = 1 / 3, top_fraction: float = 0.15,
                 n_candidates: int = 64, bandwidth: float = 0.2, min_points: int | None = None,
                 **kwargs: Any) -> None:
        if kwargs.get("base", "random") != "random":
            raise NasforgeError(f"bohb draws its own configurations; base sampler {kwargs['base']!r} has no "
                                "place in it (allowed: random)")
        super().__init__(space, **kwargs)
        checks = {"random_fraction": (random_fraction, 0.0, 1.0), "top_fraction": (top_fraction, 0.0, 1.0),
                  "bandwidth": (bandwidth, 0.0, 1.0)}
        for key, (value, lo, hi) in checks.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= float(value) <= hi:
                raise NasforgeError(f"bad {key} {value!r}: expected a number in [{lo:g}, {hi:g}]")
        if not isinstance(n_candidates, int) or isinstance(n_candidates, bool) or n_candidates < 1:
            raise NasforgeError(f"bad n_candidates {n_candidates!r}: expected a whole number >= 1")
        if min_points is not None and (not isinstance(min_points, int) or isinstance(min_points, bool)
                                       or min_points < 2):
            raise NasforgeError(f"bad min_points {min_points!r}: expected a whole number >= 2")
        self.random_fraction, self.top_fraction = float(random_fraction), float(top_fraction)
        self.n_candidates, self.bandwidth, self.min_points = n_candidates, float(bandwidth), min_points
        self.encoding = "index" if "index" in getattr(space, "encodings", ()) else "onehot"
        self._model_rng = np.random.default_rng([0 if self.seed is None else int(self.seed), 0xB0B])
        self._codes: dict[Any, np.ndarray] = {}
        self.n_model = 0  # configurations the model chose

    def _code(self, arch: Any) -> np.ndarray:
        code = self._codes.get(arch)
        if code is None:
            code = np.asarray(self.space.encode(arch, self.encoding), dtype=np.float64).ravel()
            self._codes[arch] = code
        return code

    def _model_rung(self) -> tuple[list[Any], int] | None:
        """The configurations of the largest rung with enough finite results, best first."""
        for rung in range(len(self.levels) - 1, -1, -1):
            ranked = [key[2] for key in self._ranked[rung] if math.isfinite(key[0])]
            if not ranked:
                continue
            need = self.min_points or len(self._code(ranked[0])) + 1
            if len(ranked) >= need:
                return ranked, need
        return None

    def _density(self, points: np.ndarray, x: np.ndarray, n_values: np.ndarray) -> np.ndarray:
        """Mean over ``points`` of the product over dimensions of the categorical kernel, at each row of ``x``."""
        same = x[:, None, :] == points[None, :, :]  # candidates, points, dims
        other = self.bandwidth / np.maximum(n_values - 1, 1)
        k = np.where(same, 1.0 - self.bandwidth, other[None, None, :])
        return np.exp(np.log(np.maximum(k, 1e-12)).sum(axis=2)).mean(axis=1)

    def _new_config(self, rung: int = 0, **info: Any) -> Suggestion:
        model = self._model_rung()
        if model is None or self._model_rng.random() < self.random_fraction:
            return super()._new_config(rung, **info)
        ranked, need = model
        n = len(ranked)
        n_good = max(need, int(math.floor(self.top_fraction * n)))
        n_bad = max(need, n - n_good)
        good, bad = ranked[:n_good], ranked[-n_bad:]
        g_codes = np.stack([self._code(a) for a in good])
        b_codes = np.stack([self._code(a) for a in bad])
        all_codes = np.stack([self._code(a) for a in ranked])
        n_values = np.array([len(np.unique(all_codes[:, j])) for j in range(all_codes.shape[1])], dtype=np.float64)
        d = max(1, int(np.sum(n_values > 1)))
        candidates: list[Any] = []
        keys: set[Any] = set()
        for _ in range(4 * self.n_candidates):
            if len(candidates) >= self.n_candidates:
                break
            arch = good[int(self._model_rng.integers(len(good)))]
            for _ in range(1 + int(self._model_rng.binomial(d - 1, self.bandwidth)) if d > 1 else 1):
                arch = self.space.mutate(arch, self._model_rng)
            key = self._key(arch)
            if key not in keys and self.base.is_new(arch):
                keys.add(key)
                candidates.append(arch)
        if not candidates:
            return super()._new_config(rung, **info)
        x = np.stack([self._code(a) for a in candidates])
        ratio = self._density(g_codes, x, n_values) / np.maximum(self._density(b_codes, x, n_values), 1e-300)
        arch = candidates[int(np.argmax(ratio))]
        self.base._claim(arch)  # the uniform sampler will not propose it again
        self.n_model += 1
        return Suggestion(arch, self.levels[rung], {"rung": rung, "model": True, **info})


__all__ = ["BOHB"]
