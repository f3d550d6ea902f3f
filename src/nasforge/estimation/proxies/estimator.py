"""Zero-cost proxies as an estimator: build the untrained network, score it on one fixed batch."""

from __future__ import annotations

import inspect
import os
import time
from typing import Any

import numpy as np
import torch

from nasforge.data import Dataset, load_dataset
from nasforge.errors import NasforgeError
from nasforge.estimation.base import Estimator, Measurement
from nasforge.estimation.proxies.base import PROXIES, arch_seed, resolve_proxies
from nasforge.estimation.proxies.measures import score_network
from nasforge.spaces.base import SearchSpace

def builds_images(space: SearchSpace) -> bool:
    """Whether ``space.build`` makes networks for images: it names an ``input_size`` keyword (NB201,
    DARTS, NB101, the macro spaces). A builder taking only ``**kwargs`` (a user's space) is not
    judged."""
    try:
        params = inspect.signature(space.build).parameters
    except (TypeError, ValueError):
        return False
    return "input_size" in params and params["input_size"].kind is not inspect.Parameter.VAR_KEYWORD


class ProxyEstimator(Estimator):
    """Scores ``space.build(arch)`` (untrained) with zero-cost proxies on one fixed minibatch.

    ``dataset`` is a :class:`~nasforge.data.Dataset` or a name for :func:`nasforge.data.load_dataset`
    (``digits``, ``cifar10``, ``mnist1d``, a ``.npz`` file, an image folder). The batch is
    ``batch_size`` examples of the ``split`` drawn with ``seed`` (the data's own train/val split
    is the loader's default), so the same seed gives the same batch. The network's weights are
    initialised from a seed derived from ``seed`` and the architecture's string: the same
    architecture always gets the same weights, different architectures different ones.

    A measurement carries every chosen proxy as a metric (directions: :meth:`higher_is_better`);
    its ``cost`` is the wall-clock seconds of building and scoring, and ``info["seconds"]`` the
    seconds per computation group. ``net`` holds extra ``build`` arguments (``C``, ``N`` for
    NB201; default: the space's own, i.e. the benchmark network ``C=16, N=5``).

    Spaces and data: spaces whose ``build`` takes an ``input_size`` (NB201, DARTS, NB101, the macro
    spaces) build convolutional networks, so they take image data (digits 8x8, CIFAR-10 32x32, any
    image ``.npz``/folder whose side suits the network); vector data such as ``mnist1d`` is refused
    for them with a clear error. The proxies themselves work on any
    ``nn.Module`` mapping a batch to logits (see :func:`~nasforge.estimation.proxies.score_network`),
    vectors included. ``threads`` sets ``torch.set_num_threads`` (one thread is usually fastest
    on a shared CPU). ``naswot_method`` selects the NASWOT kernel's GEMM (``int8``, default, or
    the former ``float32``) and ``naswot_prune`` (skip NB201 cell work that cannot change a code, pool
    few channels with exact shifted sums);
    neither changes a score, see :func:`~nasforge.estimation.proxies.score_network`.
    The network built for each measurement is scored in place (no deep copy for the last pass).
    """

    fidelities = None

    def __init__(
        self,
        space: SearchSpace,
        dataset: Dataset | str = "digits",
        proxies: str | list[str] | tuple[str, ...] = "all",
        batch_size: int = 128,
        seed: int = 0,
        net: dict[str, Any] | None = None,
        split: str = "train",
        data_dir: str | os.PathLike[str] | None = None,
        zen_bn: str = "batch",
        channels_last: bool = False,
        threads: int | None = None,
        naswot_method: str = "int8",
        naswot_prune: bool = True,
    ) -> None:
        self.space = space
        self.proxies = resolve_proxies(proxies)
        if isinstance(batch_size, bool) or int(batch_size) < 2:
            raise NasforgeError(f"batch_size must be at least 2, got {batch_size!r}")
        if split not in ("train", "val", "test"):
            raise NasforgeError(f"unknown split {split!r}; allowed: train, val, test")
        if zen_bn not in ("batch", "running"):
            raise NasforgeError(f"unknown zen_bn {zen_bn!r}; allowed: batch, running")
        self.dataset = load_dataset(dataset, data_dir=data_dir) if isinstance(dataset, str) else dataset
        d = self.dataset
        if builds_images(space) and d.kind != "image":
            raise NasforgeError(
                f"space {space.name!r} builds convolutional networks for images; dataset {d.name!r} holds vectors of "
                f"shape {d.input_shape} (use an image dataset: digits, cifar10, an image .npz or folder)"
            )
        self.batch_size, self.seed, self.split = int(batch_size), int(seed), split
        self.zen_bn, self.channels_last = zen_bn, bool(channels_last)
        self.naswot_method, self.naswot_prune = naswot_method, bool(naswot_prune)
        x = {"train": d.x_train, "val": d.x_val, "test": d.x_test}[split]
        y = {"train": d.y_train, "val": d.y_val, "test": d.y_test}[split]
        if self.batch_size > len(y):
            raise NasforgeError(f"batch_size {self.batch_size} exceeds the {len(y)} examples of the {split} split "
                                f"of {d.name!r}")
        idx = np.sort(np.random.default_rng(self.seed).choice(len(y), self.batch_size, replace=False))
        self.inputs = torch.from_numpy(np.ascontiguousarray(x[idx])).float()
        self.targets = torch.from_numpy(np.asarray(y[idx])).long()
        self.net = dict(net or {})
        self.build_kwargs: dict[str, Any] = {"num_classes": d.num_classes, **self.net}
        if d.kind == "image":
            self.build_kwargs = {"in_channels": d.in_channels, "input_size": d.input_size, **self.build_kwargs}
        if naswot_method not in ("int8", "float32"):
            raise NasforgeError(f"unknown naswot_method {naswot_method!r}; allowed: int8, float32")
        if threads is not None:
            if int(threads) < 1:
                raise NasforgeError(f"threads must be >= 1, got {threads}")
            torch.set_num_threads(int(threads))

    # --- the estimator interface ------------------------------------------------------------------
    @property
    def metric_names(self) -> list[str]:
        return list(self.proxies)

    def higher_is_better(self, metric: str) -> bool:
        """The proxy's declared direction (``params`` and ``flops`` too: more is predicted better)."""
        if metric in PROXIES:
            return PROXIES[metric].higher_is_better
        return super().higher_is_better(metric)

    def build(self, arch: Any) -> torch.nn.Module:
        """The untrained network of ``arch``, initialised from ``arch_seed(seed, arch string)``."""
        arch = self.space.coerce(arch)
        text = self.space.format(arch)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(arch_seed(self.seed, text))
            try:
                return self.space.build(arch, **self.build_kwargs)
            except NotImplementedError as exc:
                raise NasforgeError(f"space {self.space.name!r} cannot build networks: {exc}") from None

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        if fidelity is not None:
            raise NasforgeError(f"zero-cost proxies have no fidelity; got fidelity={fidelity!r}")
        arch = self.space.coerce(arch)
        t0 = time.perf_counter()
        net = self.build(arch)
        built = time.perf_counter() - t0
        seconds: dict[str, float] = {"build": built}
        scores = score_network(net, self.inputs, self.targets, self.proxies,
                               seed=arch_seed(self.seed + 1, self.space.format(arch)),
                               num_classes=self.dataset.num_classes, zen_bn=self.zen_bn,
                               channels_last=self.channels_last, timings=seconds, owned=True,
                               naswot_method=self.naswot_method, naswot_prune=self.naswot_prune)
        return Measurement(scores, time.perf_counter() - t0, None, {"seconds": seconds})

    def settings(self) -> dict[str, Any]:
        """What determines the scores (stored beside results files to refuse mixing runs)."""
        return {"space": self.space.name, "dataset": self.dataset.name, "split": self.split,
                "batch_size": self.batch_size, "seed": self.seed, "net": self.net, "zen_bn": self.zen_bn,
                "channels_last": self.channels_last}

    def __repr__(self) -> str:
        return (f"ProxyEstimator({self.space.name}, {self.dataset.name}, proxies={','.join(self.proxies)}, "
                f"batch_size={self.batch_size}, seed={self.seed}, net={self.net})")
