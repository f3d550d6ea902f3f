"""BANANAS (White, Neiswanger & Savani, AAAI 2021): BO with an ensemble of neural predictors."""

from __future__ import annotations

import warnings
from collections import deque
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.spaces.base import SearchSpace
from nasforge.strategies.base import Suggestion
from nasforge.strategies.bo.encodings import ENCODINGS, default_encoding, encoder
from nasforge.strategies.bo.guided import ModelGuided

ACQUISITIONS = ("its", "ucb", "mean")


class Bananas(ModelGuided):
    """BANANAS: an ensemble of ``ensemble`` MLPs (scikit-learn ``MLPRegressor``, Adam) trained on
    the path encoding predicts the score; independent Thompson sampling (``its``: one draw per
    candidate from N(ensemble mean, ensemble spread)) ranks ``n_candidates`` mutations of the
    ``n_parents`` best architectures, and the ``k`` best are evaluated before the ensemble is
    retrained (the paper's k = 10).

    After ``n_init`` random architectures. ``encoding``: ``path``, ``trunc_path`` (paths of at
    most ``truncate`` operations) or ``adjacency``, computed from the space's graph view, or
    ``onehot``, the space's own encoding (any space; :mod:`nasforge.strategies.bo.encodings`),
    or ``cate``, the learnt CATE encoding (pre-trained once with ``cate_params`` and cached; it
    imports torch); ``auto`` (default) is ``path`` where the graph view has branching cells and ``onehot``
    elsewhere, and :meth:`config` stores the encoding it chose. Targets are standardised. Deterministic
    given the seed and the tells: each member's initial weights come from the strategy's
    generator.
    """

    name = "bananas"

    def __init__(
        self,
        space: SearchSpace,
        n_init: int = 10,
        k: int = 10,
        n_candidates: int = 100,
        n_parents: int = 10,
        ensemble: int = 5,
        hidden: tuple[int, ...] | list[int] = (32, 32, 32),
        epochs: int = 200,
        lr: float = 0.01,
        encoding: str = "auto",
        truncate: int = 2,
        acquisition: str = "its",
        cate_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(space, **kwargs)
        for key, val in (("n_init", n_init), ("k", k), ("n_candidates", n_candidates), ("n_parents", n_parents),
                         ("ensemble", ensemble), ("epochs", epochs), ("truncate", truncate)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
                raise NasforgeError(f"bananas setting {key} must be an integer >= 1, got {val!r}")
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise NasforgeError(f"bananas hidden must list positive layer widths, got {hidden!r}")
        if encoding != "auto" and encoding not in ENCODINGS:
            raise NasforgeError(f"unknown encoding {encoding!r}; allowed: auto, {', '.join(ENCODINGS)}")
        if encoding == "auto":
            encoding = default_encoding(space)
        if acquisition not in ACQUISITIONS:
            raise NasforgeError(f"unknown bananas acquisition {acquisition!r}; allowed: {', '.join(ACQUISITIONS)}")
        if not lr > 0:
            raise NasforgeError(f"bananas lr must be > 0, got {lr!r}")
        self.n_init, self.k, self.n_candidates, self.n_parents = int(n_init), int(k), int(n_candidates), int(n_parents)
        self.ensemble, self.hidden, self.epochs, self.lr = int(ensemble), hidden, int(epochs), float(lr)
        self.encoding, self.truncate, self.acquisition = encoding, int(truncate), acquisition
        self.cate_params = None if cate_params is None else dict(cate_params)
        self.encoder = encoder(space, encoding, truncate=self.truncate, cate_params=self.cate_params)
        self._archs: list[Any] = []
        self._y: list[float] = []
        self._queue: deque[Suggestion] = deque()
        self._n_asked = 0
        self._n_fits = 0
        self._settle_params(**{k: getattr(self, k) for k in (
            "n_init", "k", "n_candidates", "n_parents", "ensemble", "epochs", "lr", "truncate")},
            hidden=list(self.hidden), encoding=encoding)


    # --- internals -------------------------------------------------------------------------------
    def candidates(self) -> list[Any]:
        """Mutations of the best architectures (round robin over ``n_parents`` parents), topped up
        with random ones when mutation runs dry; all unseen and distinct."""
        out, take = self._mutants_of_best(self._archs, self._y, self.n_parents, self.n_candidates)
        tries = 0
        while len(out) < self.n_candidates and tries < 5 * self.n_candidates:
            take(self.space.sample(self.rng))
            tries += 1
        return out

    def predict(self, train: list[Any], y: np.ndarray, cands: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and standard deviation of the (standardised) score at ``cands``."""
        archs = list(train) + list(cands)
        paths = self.encoding in ("path", "trunc_path")
        X = self.encoder.matrix(archs, compact=True) if paths else self.encoder.matrix(archs)
        if X.shape[1] == 0:  # no architecture here has a (short enough) path: nothing to learn from
            X = np.zeros((len(archs), 1))
        Xtr, Xc = X[: len(train)], X[len(train):]
        sd = float(y.std())
        yt = (y - y.mean()) / (sd if sd > 0 else 1.0)
        self._n_fits += 1
        return mlp_ensemble(Xtr, yt, Xc, self.ensemble, self.hidden, self.epochs, self.lr, self.rng)

    def _select(self) -> list[Suggestion]:
        cands = self.candidates()
        if not cands:
            return [self._claim(self._unique(lambda: self.space.sample(self.rng)), phase="fallback")]
        mean, sd = self.predict(self._archs, np.asarray(self._y), cands)
        if self.acquisition == "its":
            scores = mean + sd * self.rng.standard_normal(len(mean))
        elif self.acquisition == "ucb":
            scores = mean + sd
        else:
            scores = mean
        order = np.argsort(-scores, kind="stable")[: self.k]
        return [self._claim(cands[j], phase="bananas", pred=round(float(mean[j]), 6)) for j in order]


def fit_mlps(Xtr: np.ndarray, yt: np.ndarray, ensemble: int, hidden: tuple[int, ...], epochs: int, lr: float,
             rng: np.random.Generator) -> list[Any]:
    """BANANAS' predictor: ``ensemble`` MLPs (scikit-learn, Adam, full ``epochs``, each seeded from
    ``rng``) fitted to ``(Xtr, yt)``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    nets = []
    for _ in range(ensemble):
        net = MLPRegressor(hidden_layer_sizes=hidden, learning_rate_init=lr, max_iter=epochs,
                           random_state=int(rng.integers(2**31 - 1)), tol=0.0,
                           n_iter_no_change=epochs + 1, alpha=1e-4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            net.fit(Xtr, yt)
        nets.append(net)
    return nets


def mlp_ensemble(Xtr: np.ndarray, yt: np.ndarray, Xc: np.ndarray, ensemble: int, hidden: tuple[int, ...],
                 epochs: int, lr: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation at ``Xc`` of the predictions of :func:`fit_mlps`' ensemble."""
    P = np.asarray([net.predict(Xc) for net in fit_mlps(Xtr, yt, ensemble, hidden, epochs, lr, rng)])
    return P.mean(axis=0), P.std(axis=0)
