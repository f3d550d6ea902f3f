"""The zero-cost proxy registry: names, directions, the pass each proxy needs (no torch here)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nasforge.errors import NasforgeError


@dataclass(frozen=True)
class ProxySpec:
    """What the library knows about one proxy.

    ``higher_is_better`` is the direction of the score as defined (the sign convention of the
    reference implementation): a user maximises it. ``group`` names the computation the proxy
    shares with others (see :mod:`nasforge.estimation.proxies.measures`); ``data`` says whether
    the score reads the real minibatch (inputs, labels) or not.
    """

    name: str
    higher_is_better: bool
    group: str
    data: str  # "batch" (inputs and labels), "inputs" (inputs only), "none"
    description: str
    reference: str


#: computation groups, cheapest first: proxies of one group share one pass over the network
GROUPS: tuple[str, ...] = ("static", "forward", "gradient", "synflow", "zen", "grasp")

_SPECS = (
    ProxySpec("naswot", True, "forward", "inputs",
              "log-determinant of the kernel K = N_A - Hamming(c_i, c_j) of the binary ReLU codes c of the batch",
              "Mellor et al., Neural Architecture Search without Training, ICML 2021"),
    ProxySpec("knas", True, "gradient", "batch",
              "mean of the Gram matrix of per-sample loss gradients (= squared norm of their mean)",
              "Xu et al., KNAS: Green Neural Architecture Search, ICML 2021"),
    ProxySpec("synflow", True, "synflow", "none",
              "sum |theta * dR/dtheta|, R = sum of outputs for an all-ones input, |theta| weights, float64, BN bypassed",
              "Tanaka et al., NeurIPS 2020; Abdelfattah et al., Zero-Cost Proxies, ICLR 2021"),
    ProxySpec("snip", True, "gradient", "batch", "sum |theta * dL/dtheta| over convolution and linear weights",
              "Lee et al., SNIP, ICLR 2019; Abdelfattah et al., ICLR 2021"),
    ProxySpec("grasp", True, "grasp", "batch", "sum -theta * (H g): Hessian-gradient product of the loss",
              "Wang et al., GraSP, ICLR 2020; Abdelfattah et al., ICLR 2021"),
    ProxySpec("fisher", True, "gradient", "batch",
              "sum over channels of 0.5 * mean_n (sum_xy act * dL/dact)^2, each weighted by the channel's weights",
              "Theis et al. 2018; Turner et al., BlockSwap, ICLR 2020; Abdelfattah et al., ICLR 2021"),
    ProxySpec("grad_norm", True, "gradient", "batch", "sum over layers of the Frobenius norm of dL/dW",
              "Abdelfattah et al., Zero-Cost Proxies, ICLR 2021"),
    ProxySpec("jacov", True, "gradient", "inputs",
              "-sum(log(v + k) + 1/(v + k)), v the eigenvalues of the correlation matrix of input Jacobians",
              "Mellor et al., arXiv:2006.04647v1 (2020)"),
    ProxySpec("epe_nas", True, "gradient", "batch",
              "sum over classes of |sum log(|corr| + k)| of the per-class Jacobian correlation matrices",
              "Lopes et al., EPE-NAS, ICANN 2021"),
    ProxySpec("plain", True, "gradient", "batch", "sum theta * dL/dtheta (no absolute value)",
              "Abdelfattah et al., Zero-Cost Proxies, ICLR 2021"),
    ProxySpec("zen", True, "zen", "none",
              "log E||f(x) - f(x + 0.01 e)||_1 + sum_BN log sqrt(mean var), Gaussian weights and inputs",
              "Lin et al., Zen-NAS, ICCV 2021"),
    ProxySpec("l2_norm", True, "static", "none", "sum over layers of the Frobenius norm of the weights at init",
              "NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022 D&B)"),
    ProxySpec("params", True, "static", "none", "number of parameters, in millions",
              "baseline"),
    ProxySpec("flops", True, "static", "none",
              "multiply-accumulates of convolution and linear layers for one input, in millions",
              "baseline"),
)

#: every proxy, by name
PROXIES: dict[str, ProxySpec] = {s.name: s for s in _SPECS}
ALIASES: dict[str, str] = {"nwot": "naswot", "jacob_cov": "jacov", "zen_score": "zen", "epe": "epe_nas",
                           "gradnorm": "grad_norm", "grad-norm": "grad_norm", "l2": "l2_norm", "flop": "flops",
                           "param": "params"}
#: named selections accepted wherever a proxy list is
SELECTIONS: dict[str, tuple[str, ...]] = {
    "all": tuple(PROXIES),
    # everything except the two multi-pass proxies (zen: two extra forwards; grasp: a Hessian product)
    "cheap": ("naswot", "knas", "synflow", "snip", "fisher", "grad_norm", "jacov", "epe_nas", "plain", "l2_norm",
              "params", "flops"),
    "baselines": ("params", "flops"),
}


def resolve_proxies(names: str | Iterable[str] | None) -> list[str]:
    """Canonical proxy names from a list or a comma-separated string (``all``/``cheap`` accepted).

    Order is kept and duplicates are dropped; an unknown name is a ``NasforgeError`` listing
    the allowed ones.
    """
    if names is None:
        names = "all"
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else [str(n).strip() for n in names]
    out: list[str] = []
    for item in items:
        if not item:
            continue
        key = item.lower()
        expanded: Sequence[str]
        if key in SELECTIONS:
            expanded = SELECTIONS[key]
        else:
            key = ALIASES.get(key, key)
            if key not in PROXIES:
                raise NasforgeError(
                    f"unknown proxy {item!r}; allowed: {', '.join(PROXIES)} (or {', '.join(SELECTIONS)})"
                )
            expanded = (key,)
        for name in expanded:
            if name not in out:
                out.append(name)
    if not out:
        raise NasforgeError(f"no proxy given; choose from {', '.join(PROXIES)}")
    return out


def higher_is_better(name: str) -> bool:
    """The declared direction of proxy ``name`` (aliases accepted)."""
    return PROXIES[resolve_proxies([name])[0]].higher_is_better


def arch_seed(seed: int, text: str) -> int:
    """A 63-bit seed from a base seed and an architecture string, stable across runs and machines."""
    h = hashlib.blake2b(f"proxies|{seed}|{text}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)
