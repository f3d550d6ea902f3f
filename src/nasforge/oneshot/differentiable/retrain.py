"""Training a found cell from scratch: the last step of a differentiable search on a space without
a table (the DARTS space).

:func:`retrain` builds the space's own evaluation network for the genotype (on DARTS:
:class:`~nasforge.spaces.darts_net.DartsNetwork`, ``C`` channels, ``layers`` cells) and trains it
with :class:`~nasforge.estimation.training.TrainingEstimator` (SGD with Nesterov momentum, cosine
learning rate, weight decay on the weights only; nothing of the supernet is inherited), then
returns the estimator's metrics: ``valid_acc`` is what a comparison may select by, ``test_acc`` is
for reporting. :func:`load_retrain_data` gives the images of such a run (CIFAR-10: a training, a
validation and a test split, optionally average-pooled).

    from nasforge.oneshot.differentiable import search, retrain
    from nasforge.oneshot.differentiable.retrain import load_retrain_data
    found = search(search_data, "darts", "darts", epochs=10)
    metrics = retrain(found.genotype, load_retrain_data("cifar10", image_size=16), "darts",
                      epochs=10, net={"C": 8, "layers": 5})

The command line does the same with ``nasforge oneshot retrain <run folder | genotype>``.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.data import Dataset
from nasforge.errors import NasforgeError

__all__ = ["retrain", "load_retrain_data", "resolve_genotype", "RETRAIN_DEFAULTS"]

#: the training recipe of :func:`retrain` (TrainingEstimator arguments), the CPU-scale DARTS recipe
#: of ``benchmarks/proxies_spaces.py``
RETRAIN_DEFAULTS: dict[str, Any] = {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4, "batch_size": 32,
                                    "augment": None}


def resolve_genotype(arch: str, space: Any = "darts") -> str:
    """The genotype text of ``arch``: a genotype in the space's notation, a name of the space's
    published cells (DARTS: ``darts_v1``, ``darts_v2``, ``pc_darts``, ``drnas``), or a folder /
    ``result.json`` of ``nasforge oneshot search`` (its found genotype)."""
    from nasforge.spaces import get_space

    sp = get_space(space) if isinstance(space, str) else space
    text = str(arch)
    p = Path(text)
    try:
        if p.is_dir():
            p = p / "result.json"
        is_file = p.is_file()
    except OSError:  # a genotype longer than a file name may be
        is_file = False
    if p.suffix == ".json" and not is_file:
        raise NasforgeError(f"no search result at {p}: run `nasforge oneshot search` into that folder first")
    if is_file and p.suffix == ".json":
        try:
            found = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise NasforgeError(f"cannot read search result {p}: {exc}") from None
        if not isinstance(found, dict) or "genotype" not in found:
            raise NasforgeError(f"{p} holds no 'genotype': not a result.json of `nasforge oneshot search`")
        if found.get("space", sp.name) != sp.name:
            raise NasforgeError(f"{p} was searched on the {found['space']!r} space, not {sp.name!r}")
        text = str(found["genotype"])
    else:
        published = getattr(importlib.import_module(type(sp).__module__), "GENOTYPES", {})
        if text in published:
            return sp.format(published[text])
    return sp.format(sp.parse(text))


def load_retrain_data(name: str = "cifar10", *, n_train: int = 2000, n_val: int = 1000, n_test: int | None = 1000,
                      image_size: int | None = None, data_seed: int = 0,
                      data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """Images to train a found cell on. CIFAR-10: a stratified ``n_train + n_val`` of the 25k
    training images, split (stratified, ``data_seed``) into ``n_train`` for training and ``n_val``
    for validation, and the first ``n_test / 10`` test images of every class of the official test
    set (all 10,000 with ``n_test=None``); other datasets as :func:`~nasforge.data.load_dataset`
    splits them. Images average-pooled to ``image_size`` when given."""
    from nasforge.data import load_dataset
    from nasforge.oneshot.train import downsample

    if name == "cifar10":
        for key, v in (("n_train", n_train), ("n_val", n_val)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 10:
                raise NasforgeError(f"{key} must be a whole number >= 10, got {v!r}")
        total = int(n_train) + int(n_val)
        ds = load_dataset("cifar10", seed=int(data_seed), data_dir=data_dir, n_train=total,
                          val_fraction=int(n_val) / total)
        if n_test is not None:
            if isinstance(n_test, bool) or not isinstance(n_test, (int, np.integer)) or not 10 <= n_test <= len(ds.y_test):
                raise NasforgeError(f"n_test must be a whole number in 10..{len(ds.y_test)} or None, got {n_test!r}")
            keep = np.sort(np.concatenate([np.flatnonzero(ds.y_test == c)[: int(n_test) // ds.num_classes]
                                           for c in range(ds.num_classes)]))
            ds = replace(ds, x_test=ds.x_test[keep], y_test=ds.y_test[keep])
    else:
        ds = load_dataset(name, seed=int(data_seed), data_dir=data_dir)
    if ds.kind != "image":
        raise NasforgeError(f"a cell is trained on images; dataset {name!r} holds vectors")
    if image_size:
        ds = downsample(ds, int(image_size))
    return ds


def retrain(arch: Any, dataset: Dataset, space: Any = "darts", *, epochs: int = 10,
            net: Mapping[str, Any] | None = None, seed: int = 0, threads: int | None = 1,
            **training: Any) -> dict[str, Any]:
    """Train ``arch`` (a genotype, its text, a published name or a search run folder; see
    :func:`resolve_genotype`) from scratch on ``dataset`` for ``epochs`` epochs and return the
    metrics of :class:`~nasforge.estimation.training.TrainingEstimator` plus ``genotype``,
    ``space`` and the ``net`` settings. ``net``: the evaluation network's settings (DARTS: ``C``,
    ``layers``, ``auxiliary``, ``drop_path_prob``); ``training``: TrainingEstimator arguments over
    :data:`RETRAIN_DEFAULTS`; ``seed``: the initial weights and data order."""
    from nasforge.estimation.training import TrainingEstimator
    from nasforge.spaces import get_space

    sp = get_space(space) if isinstance(space, str) else space
    text = arch if isinstance(arch, str) else sp.format(sp.coerce(arch))
    genotype = resolve_genotype(text, sp)
    unknown = sorted(set(training) - {"optimizer", "lr", "weight_decay", "batch_size", "augment", "label_smoothing",
                                      "eval_batch_size", "checkpoint_dir"})
    if unknown:
        raise NasforgeError(f"unknown training setting {unknown[0]!r}; allowed: optimizer, lr, weight_decay, batch_size, "
                            "augment, label_smoothing, eval_batch_size, checkpoint_dir")
    recipe = {**RETRAIN_DEFAULTS, **training}
    est = TrainingEstimator(sp, dataset, max_epochs=epochs, net=dict(net or {}), seed=seed, threads=threads, keep=1,
                            **recipe)
    metrics = dict(est.estimate(sp.parse(genotype)).metrics)
    return {"genotype": genotype, "space": sp.name, "net": dict(net or {}), "epochs": int(epochs), "seed": int(seed),
            **{k: v for k, v in recipe.items() if k != "checkpoint_dir"}, **metrics}
