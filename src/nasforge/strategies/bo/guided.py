"""The ask/observe loop shared by the model-guided strategies (BANANAS, predictor-guided search)."""

from __future__ import annotations

import math
from typing import Any

from nasforge.strategies.base import Strategy, Suggestion
from nasforge.strategies.bo.gp import blas_single_thread


class ModelGuided(Strategy):
    """``n_init`` random architectures, then batches chosen by a model (:meth:`_select`) once it
    has :meth:`_min_train` results; failed trials stay out of the model. A warm start
    (``_set_initial``) takes the first places of the initial design: its architectures come first,
    random ones fill up to ``n_init``. Subclasses set ``n_init``, ``_queue`` (a deque), ``_archs``,
    ``_y`` and ``_n_asked`` in their constructor."""

    def _min_train(self) -> int:
        return 2

    def _select(self) -> list[Suggestion]:
        raise NotImplementedError

    def ask(self) -> Suggestion:
        self._n_asked += 1
        if not self._queue:
            warm = self._initial_suggestion(self._n_asked)
            if warm is not None:
                return warm
            if self._n_asked <= self.n_init or len(self._y) < self._min_train():
                self._queue.append(self._claim(self._unique(lambda: self.space.sample(self.rng)), phase="init"))
            else:
                with blas_single_thread():
                    self._queue.extend(self._select())
        return self._queue.popleft()

    def _observe(self, suggestion: Suggestion, score: float, result: Any) -> None:
        if score == -math.inf:  # failed: stays out of the model
            return
        self._archs.append(suggestion.arch)
        self._y.append(score)


__all__ = ["ModelGuided"]
