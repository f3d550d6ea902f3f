"""An ensemble of predictors: several models (e.g. GPs on different architecture kernels) fitted
on the same data, their predictions averaged."""

from __future__ import annotations

from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.estimation.predictors.base import Predictor
from nasforge.spaces.base import SearchSpace


class EnsemblePredictor(Predictor):
    """The mean of several predictors' predictions (``members``: a list of predictor names or
    ``[name, settings]`` pairs, e.g. ``[["gp", {"kernel": "hamming"}], ["gp", {"kernel": "wl"}]]``).

    Its standard deviation is that of the equal-weight mixture of the members' predictive
    distributions: ``sqrt(mean(std_i^2) + var(mean_i))``, so disagreement between members counts
    as uncertainty. Each member gets its own seed, drawn from the ensemble's.
    """

    name = "ensemble"
    probabilistic = True

    def __init__(self, space: SearchSpace, members: list[Any] | tuple[Any, ...] = (("gp", {"kernel": "hamming"}),
                                                                                    ("gp", {"kernel": "wl"})),
                 **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        from nasforge.estimation.predictors.registry import get_predictor

        if isinstance(members, (str, bytes)) or not isinstance(members, (list, tuple)) or not members:
            raise NasforgeError(f"ensemble members must be a non-empty list of predictor names or [name, settings] "
                                f"pairs, got {members!r}")
        specs: list[list[Any]] = []
        for m in members:
            if isinstance(m, str):
                name, params = m, {}
            elif isinstance(m, (list, tuple)) and len(m) == 2 and isinstance(m[0], str) and isinstance(m[1], dict):
                name, params = m[0], dict(m[1])
            else:
                raise NasforgeError(f"ensemble member {m!r} must be a predictor name or a [name, settings] pair")
            if name == "ensemble":
                raise NasforgeError("an ensemble cannot contain another ensemble")
            specs.append([name, params])
        rng = np.random.default_rng(self.seed)
        self.members = [get_predictor(name, space, **{"seed": int(rng.integers(2**31 - 1)), **params})
                        for name, params in specs]
        self.min_train = max(m.min_train for m in self.members)
        self._settle_params(members=specs)

    def _fit(self, archs: list[Any], z: np.ndarray) -> None:
        for m in self.members:
            m.fit(archs, z)

    def _predict(self, archs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        means, stds = zip(*(m.predict(archs, return_std=True) for m in self.members))
        M, S = np.asarray(means), np.asarray(stds)
        return M.mean(axis=0), np.sqrt((S**2).mean(axis=0) + M.var(axis=0))
