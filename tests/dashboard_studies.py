"""Small studies for the dashboard tests: written through the library, with a toy estimator."""

from __future__ import annotations

import zlib
from typing import Any

from nasforge.estimation.base import Estimator, Measurement
from nasforge.spaces import ChoiceSpace, get_space
from nasforge.strategies import get_strategy
from nasforge.study import create_study

#: a study name and architecture values that are HTML/JS payloads
XSS_NAME = '<script>alert("study")</script>&amp;'
XSS_VALUE = "<img src=x onerror=alert(1)>"


class Toy(Estimator):
    """A deterministic score from the architecture's string (some architectures fail)."""

    def __init__(self, space: Any, proxies: bool = False, fail_every: int = 0) -> None:
        self.space, self.proxies, self.fail_every = space, proxies, fail_every

    @property
    def metric_names(self) -> list[str]:
        return ["acc", "params"] + (["naswot", "synflow"] if self.proxies else [])

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        h = zlib.crc32(self.space.format(arch).encode("utf-8"))
        if self.fail_every and h % self.fail_every == 0:
            raise RuntimeError("diverged")
        acc = 50.0 + (h % 4000) / 100.0
        metrics = {"acc": acc, "params": 0.1 + (h >> 12) % 500 / 100.0}
        if self.proxies:
            metrics["naswot"] = acc + ((h >> 5) % 900) / 100.0  # correlated with acc
            metrics["synflow"] = float((h >> 9) % 1000)  # unrelated
        return Measurement(metrics, cost=1.0 + h % 5)


def build(url: str) -> dict[str, int]:
    """Write the test studies into ``url``; returns {study: number of trials}."""
    counts = {}
    nb201 = get_space("nb201")
    st = create_study("nb201-random", nb201, "acc", storage=url)
    st.optimize(get_strategy("random", nb201, seed=0), Toy(nb201, fail_every=11), n_trials=40)
    counts[st.name] = len(st.trials)

    darts = get_space("darts")
    st = create_study("darts-mo", darts, ["acc", "params"], maximize=[True, False], storage=url)
    st.optimize(get_strategy("mo-random", darts, seed=0), Toy(darts), n_trials=24)
    counts[st.name] = len(st.trials)

    st = create_study("proxies", nb201, "acc", storage=url)
    st.optimize(get_strategy("random", nb201, seed=1), Toy(nb201, proxies=True), n_trials=30)
    counts[st.name] = len(st.trials)

    evil = ChoiceSpace({"act": [XSS_VALUE, "relu"], "depth": [1, 2, 3]}, name="choice</td><b>x")
    st = create_study(XSS_NAME, evil, "acc", storage=url)
    st.optimize(get_strategy("random", evil, seed=0), Toy(evil), n_trials=5)
    counts[st.name] = len(st.trials)
    st.storage.close()
    return counts
