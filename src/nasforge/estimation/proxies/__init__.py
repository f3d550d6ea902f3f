"""Zero-cost proxies: score an untrained network from one minibatch.

* :data:`PROXIES` — every proxy with its declared direction and the pass it needs
  (naswot, knas, synflow, snip, grasp, fisher, grad_norm, jacov, epe_nas, plain, zen, l2_norm,
  params, flops).
* :func:`score_network` — any set of proxies for one ``nn.Module`` and one batch, sharing passes.
* :class:`ProxyEstimator` — proxies of ``space.build(arch)`` on a fixed batch of a dataset, as an
  :class:`~nasforge.estimation.Estimator`.
* :class:`RankEnsemble`, :class:`EnsembleEstimator` — mean of per-proxy ranks (optionally
  learned weights); :func:`proxy_warm_start` — the top of N proxy-ranked samples, to seed
  regularised evolution (NASWOT's AREA).
* :class:`ProxyResults`, :func:`read_results`, :class:`ProxyTable` — resumable score files.

The registry, ensembles and result files need no torch; the scoring modules import it when used.
"""

from __future__ import annotations

from typing import Any

from nasforge.estimation.proxies.base import PROXIES, SELECTIONS, ProxySpec, arch_seed, higher_is_better, resolve_proxies

_LAZY = {
    "score_network": "measures",
    "ProxyEstimator": "estimator",
    "RankEnsemble": "ensemble",
    "EnsembleEstimator": "ensemble",
    "proxy_warm_start": "ensemble",
    "WarmStart": "ensemble",
    "ProxyResults": "results",
    "read_results": "results",
    "sample_archs": "results",
    "score_archs": "results",
    "ProxyTable": "results",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = ["PROXIES", "SELECTIONS", "ProxySpec", "arch_seed", "higher_is_better", "resolve_proxies", *_LAZY]
