"""Datasets as in-memory arrays with deterministic train/validation/test splits.

Shipped: scikit-learn's ``digits`` (8x8 grey images), ``mnist1d`` (generated offline by the
``mnist1d`` package). From files: ``cifar10`` (the ``.npz`` pair of the reference data folder),
any ``.npz`` with ``x``/``y`` (images N,H,W[,C] uint8/float or vectors N,D), and an image folder
with one sub-folder per class. Nothing is downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.errors import NasforgeError

SHIPPED = ("digits", "mnist1d")
_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class Dataset:
    """Arrays ready for a network: images as float32 NCHW, vectors as float32 (N, D).

    Inputs are normalised with per-channel (images) or per-feature (vectors) statistics of the
    training split only. ``augment`` names the training augmentation that suits the data
    (``"crop_flip"`` for natural images such as CIFAR, ``None`` otherwise).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    kind: str  # "image" or "vector"
    mean: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(1, np.float32))
    std: np.ndarray = field(repr=False, default_factory=lambda: np.ones(1, np.float32))
    augment: str | None = None
    classes: list[str] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input: (C, H, W) or (D,)."""
        return tuple(self.x_train.shape[1:])

    @property
    def in_channels(self) -> int:
        return self.input_shape[0] if self.kind == "image" else 1

    @property
    def input_size(self) -> int:
        return self.input_shape[-1]

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, {self.kind} {self.input_shape}, {self.num_classes} classes, "
                f"train/val/test = {len(self.y_train)}/{len(self.y_val)}/{len(self.y_test)})")


# --- validation helpers ------------------------------------------------------------------------
def _check_xy(x: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if y.ndim != 1:
        raise NasforgeError(f"{where}: labels y must be 1-D, got shape {y.shape}")
    if len(x) != len(y):
        raise NasforgeError(f"{where}: x has {len(x)} samples but y has {len(y)}")
    if len(y) == 0:
        raise NasforgeError(f"{where}: no samples")
    if x.ndim not in (2, 3, 4):
        raise NasforgeError(
            f"{where}: x must be vectors (N, D) or images (N, H, W) / (N, H, W, C) / (N, C, H, W); got shape {x.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise NasforgeError(f"{where}: labels must be whole numbers 0..K-1, got dtype {y.dtype}")
    if y.min() < 0:
        raise NasforgeError(f"{where}: label {int(y.min())} is out of range; labels must be 0..K-1")
    if not np.all(np.isfinite(x.astype(np.float32, copy=False))):
        raise NasforgeError(f"{where}: x holds NaN or infinite values")
    return x, y.astype(np.int64)


def _to_nchw(x: np.ndarray) -> np.ndarray:
    """Images to float32 NCHW in [0, 1] for uint8 input (channels-last detected by size)."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    x = x.astype(np.float32)
    if x.max(initial=0) > 1.5:  # 0..255 pixels
        x /= 255.0
    return np.ascontiguousarray(x)


def _split(n: int, fractions: tuple[float, ...], seed: int, y: np.ndarray | None = None) -> list[np.ndarray]:
    """Deterministic, stratified index split of ``range(n)`` into parts of the given fractions."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    groups = [np.arange(n)] if y is None else [np.flatnonzero(y == c) for c in np.unique(y)]
    for idx in groups:
        idx = idx[rng.permutation(len(idx))]
        bounds = np.round(np.cumsum((0.0,) + fractions) * len(idx)).astype(int)
        for i in range(len(fractions)):
            parts[i].append(idx[bounds[i]: bounds[i + 1]])
    return [np.sort(np.concatenate(p)) for p in parts]


def _finish(name: str, kind: str, tr: tuple, va: tuple, te: tuple, num_classes: int | None = None,
            augment: str | None = None, classes: list[str] | None = None) -> Dataset:
    (xtr, ytr), (xva, yva), (xte, yte) = tr, va, te
    k = int(max(ytr.max(), yva.max() if len(yva) else 0, yte.max() if len(yte) else 0)) + 1
    if num_classes is not None:
        if k > num_classes:
            raise NasforgeError(f"{name}: label {k - 1} is out of range for {num_classes} classes (0..{num_classes - 1})")
        k = num_classes
    if len(np.unique(ytr)) < 2:
        raise NasforgeError(f"{name}: the training split holds fewer than 2 classes")
    axes = (0, 2, 3) if kind == "image" else (0,)
    mean = xtr.mean(axis=axes, dtype=np.float64).astype(np.float32)
    std = xtr.std(axis=axes, dtype=np.float64).astype(np.float32)
    std[std < 1e-8] = 1.0
    shape = (1, -1, 1, 1) if kind == "image" else (1, -1)

    def norm(x: np.ndarray) -> np.ndarray:
        return ((x - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)

    return Dataset(name, norm(xtr), ytr, norm(xva), yva, norm(xte), yte, k, kind, mean, std, augment, classes)


def from_arrays(
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    name: str = "arrays",
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    num_classes: int | None = None,
    augment: str | None = None,
) -> Dataset:
    """A dataset from arrays: images (N,H,W[,C] or N,C,H,W) or vectors (N,D), integer labels.

    Without a separate test set, ``test_fraction`` of ``x`` is held out for testing; then
    ``val_fraction`` of the whole is held out for validation. Splits are stratified and fixed by
    ``seed``.
    """
    if not 0 < val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise NasforgeError(
            f"bad split fractions val={val_fraction}, test={test_fraction}: need 0 < val, 0 <= test, val + test < 1"
        )
    x, y = _check_xy(x, y, name)
    kind = "vector" if x.ndim == 2 else "image"
    x = x.astype(np.float32) if kind == "vector" else _to_nchw(x)
    if x_test is not None:
        if y_test is None:
            raise NasforgeError(f"{name}: x_test given without y_test")
        xt, yt = _check_xy(x_test, y_test, f"{name} (test)")
        xt = xt.astype(np.float32) if kind == "vector" else _to_nchw(xt)
        if xt.shape[1:] != x.shape[1:]:
            raise NasforgeError(f"{name}: test inputs have shape {xt.shape[1:]}, training inputs {x.shape[1:]}")
        tr, va = _split(len(y), (1 - val_fraction, val_fraction), seed, y)
        te_x, te_y = xt, yt
    else:
        tr, va, te = _split(len(y), (1 - val_fraction - test_fraction, val_fraction, test_fraction), seed, y)
        te_x, te_y = x[te], y[te]
    return _finish(name, kind, (x[tr], y[tr]), (x[va], y[va]), (te_x, te_y), num_classes, augment)


# --- loaders -----------------------------------------------------------------------------------
def load_digits(seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 1,797 handwritten digits, 8x8 grey images with 17 levels, 10 classes."""
    from sklearn.datasets import load_digits as _ld

    d = _ld()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return from_arrays(x, d.target, name="digits", seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)


def load_mnist1d(seed: int = 0, val_fraction: float = 0.2, n_samples: int = 5000) -> Dataset:
    """MNIST-1D (Greydanus, 2020): 40-sample 1-D signals of 10 digit templates, generated offline.

    The package's default generator settings give 4,000 training and 1,000 test signals; the
    generator's own seed is fixed so the data are the published ones, and ``seed`` only splits
    training from validation.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise NasforgeError("dataset 'mnist1d' needs the mnist1d package: pip install mnist1d") from None
    args = get_dataset_args()
    args.num_samples = n_samples
    d = make_dataset(args)
    return from_arrays(d["x"], d["y"], d["x_test"], d["y_test"], name="mnist1d", seed=seed, val_fraction=val_fraction)


def load_npz(path: str | os.PathLike[str], seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2,
             name: str | None = None) -> Dataset:
    """A user ``.npz`` with ``x`` and ``y`` (and optionally ``x_test``/``y_test``)."""
    p = Path(path)
    if not p.is_file():
        raise NasforgeError(f"dataset file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:  # noqa: BLE001 - zip errors, pickled arrays, ...
        raise NasforgeError(f"cannot read {p} as .npz: {exc}".splitlines()[0]) from None
    for key in ("x", "y"):
        if key not in arrays:
            raise NasforgeError(f"{p} has no array {key!r} (arrays: {', '.join(arrays) or 'none'}); "
                                "expected x (inputs) and y (integer labels)")
    looks_natural = arrays["x"].ndim == 4 and arrays["x"].shape[-1] == 3 and arrays["x"].shape[1] >= 32
    return from_arrays(arrays["x"], arrays["y"], arrays.get("x_test"), arrays.get("y_test"), name=name or p.stem,
                       seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
                       augment="crop_flip" if looks_natural else None)


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def load_cifar10(data_dir: str | os.PathLike[str] | None = None, seed: int = 0, val_fraction: float = 0.1,
                 n_train: int | None = None) -> Dataset:
    """CIFAR-10 from ``<data_dir>/cifar10/train25k.npz`` and ``test10k.npz`` (see the data README).

    ``n_train`` keeps a stratified subset of the 25k training images (before the validation
    split), for CPU-sized experiments. Augmentation: random crop with 4-pixel padding and
    horizontal flip.
    """
    from nasforge.estimation.tabular import find_data_dir

    root = find_data_dir(data_dir)
    folder = (root / "cifar10") if root is not None else None
    if folder is None or not (folder / "train25k.npz").is_file():
        raise NasforgeError("CIFAR-10 needs cifar10/train25k.npz and test10k.npz in the data folder: pass data_dir "
                            "or set NASFORGE_DATA (or load your own .npz with load_dataset('path.npz'))")
    with np.load(folder / "train25k.npz") as f:
        x, y = f["x"], f["y"]
    with np.load(folder / "test10k.npz") as f:
        xt, yt = f["x"], f["y"]
    if n_train is not None:
        if not 20 <= n_train <= len(y):
            raise NasforgeError(f"n_train={n_train} is out of range 20..{len(y)}")
        keep = _split(len(y), (n_train / len(y),), seed, y)[0]
        x, y = x[keep], y[keep]
    ds = from_arrays(x, y, xt, yt, name="cifar10", seed=seed, val_fraction=val_fraction, num_classes=10,
                     augment="crop_flip")
    ds.classes = list(CIFAR10_CLASSES)
    return ds


def load_image_folder(path: str | os.PathLike[str], seed: int = 0, val_fraction: float = 0.2,
                      test_fraction: float = 0.2, size: int | None = None) -> Dataset:
    """Images in ``path/<class>/*.png|jpg...``, one sub-folder per class (sorted names = labels).

    Images are converted to RGB (or kept grey when every image is grey) and resized to
    ``size`` x ``size`` (default: the size of the first image; all must match when not resizing).
    """
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise NasforgeError(f"image folder not found: {root}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise NasforgeError(f"image folder {root} needs one sub-folder per class (at least 2); found {len(classes)}")
    files: list[tuple[Path, int]] = []
    for label, c in enumerate(classes):
        imgs = sorted(f for f in (root / c).iterdir() if f.suffix.lower() in _IMAGE_EXT)
        if not imgs:
            raise NasforgeError(f"class folder {root / c} holds no images ({', '.join(_IMAGE_EXT)})")
        files += [(f, label) for f in imgs]
    images = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                images.append(im.copy())
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
            raise NasforgeError(f"cannot read image {f}: {exc}") from None
    grey = all(im.mode in ("L", "1", "I;16") for im in images)
    mode = "L" if grey else "RGB"
    target = (size, size) if size else images[0].convert(mode).size
    arrs = []
    for (f, _), im in zip(files, images):
        im = im.convert(mode)
        if im.size != target:
            if size is None:
                raise NasforgeError(f"image {f} is {im.size[0]}x{im.size[1]}, the first image is "
                                    f"{target[0]}x{target[1]}; pass size=... to resize all")
            im = im.resize(target)
        arrs.append(np.asarray(im, dtype=np.uint8))
    x = np.stack(arrs)
    y = np.array([label for _, label in files])
    ds = from_arrays(x, y, name=root.name, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
                     num_classes=len(classes), augment="crop_flip" if min(target) >= 16 else None)
    ds.classes = classes
    return ds


def load_dataset(name: str, seed: int = 0, data_dir: str | os.PathLike[str] | None = None, **kwargs: Any) -> Dataset:
    """A dataset by name (``digits``, ``mnist1d``, ``cifar10``) or path (``.npz`` file or image folder)."""
    if name == "digits":
        return load_digits(seed=seed, **kwargs)
    if name == "mnist1d":
        return load_mnist1d(seed=seed, **kwargs)
    if name == "cifar10":
        return load_cifar10(data_dir=data_dir, seed=seed, **kwargs)
    p = Path(name)
    if p.suffix == ".npz":
        return load_npz(p, seed=seed, **kwargs)
    if p.is_dir():
        return load_image_folder(p, seed=seed, **kwargs)
    raise NasforgeError(f"unknown dataset {name!r}; use digits, mnist1d, cifar10, a .npz file, or an image folder")


__all__ = ["Dataset", "load_dataset", "load_digits", "load_mnist1d", "load_cifar10", "load_npz",
           "load_image_folder", "from_arrays", "SHIPPED"]
