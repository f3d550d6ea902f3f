"""Rotated digits: each image turned by its own random angle, optionally mirrored (a task with a
partial rotation, or rotation and flip, symmetry, for equivariance-aware search)."""

from __future__ import annotations

import numpy as np

from nasforge.data import Dataset, from_arrays
from nasforge.errors import NasforgeError, check_float, check_int


def rotate_images(x: np.ndarray, max_degrees: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each image of ``x`` (N, C, H, W) rotated about its centre by an angle drawn uniformly from
    [-max_degrees, max_degrees] (bilinear, zero outside); returns (images, angles in degrees)."""
    from scipy.ndimage import rotate

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise NasforgeError(f"rotate_images needs images of shape (N, C, H, W), got shape {x.shape}")
    max_degrees = check_float(max_degrees, "max_degrees", 0, 180)
    angles = np.random.default_rng(seed).uniform(-max_degrees, max_degrees, len(x))
    out = np.empty_like(x)
    for i, a in enumerate(angles):
        out[i] = rotate(x[i], a, axes=(1, 2), reshape=False, order=1, mode="constant", cval=0.0)
    return out, angles


def load_rotated_digits(seed: int = 0, max_degrees: float = 90.0, n_train: int | None = None,
                        rotation_seed: int = 0, size: int = 8, flip: bool = False) -> Dataset:
    """scikit-learn's digits (8x8), each turned by a random angle in [-max_degrees, max_degrees]
    (the angles fixed by ``rotation_seed``; ``seed`` splits the data). ``n_train`` keeps that many
    training images and splits the rest evenly between validation and test (as the default task
    does); otherwise 60/20/20. ``size`` > 8 enlarges the images (bilinear) before turning them, so
    that the turn loses less of the 8x8 originals. ``flip``: each image is first mirrored
    left-right with probability 1/2 (also fixed by ``rotation_seed``), so the task's symmetry is
    (part of) D4 rather than C4."""
    from sklearn.datasets import load_digits as _ld

    d = _ld()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    size = check_int(size, "size", 8)
    if size != 8:
        from scipy.ndimage import zoom

        x = np.stack([zoom(img, (1, size / 8, size / 8), order=1) for img in x]).astype(np.float32)
    if flip:
        mirrored = np.random.default_rng([rotation_seed, 1]).random(len(x)) < 0.5
        x = np.where(mirrored[:, None, None, None], x[..., ::-1], x).astype(np.float32)
    x, _ = rotate_images(x, max_degrees, rotation_seed)
    if n_train is None:
        val = test = 0.2
    else:
        n_train = check_int(n_train, "n_train", 20)
        if n_train > len(x) - 200:
            raise NasforgeError(f"bad n_train {n_train}: the digits have {len(x)} images; expected 20..{len(x) - 200}")
        val = test = (len(x) - n_train) / len(x) / 2.0
    name = f"digits-rot{max_degrees:g}{'-flip' if flip else ''}-{size}px"
    ds = from_arrays(x, d.target, name=name, seed=seed, val_fraction=val, test_fraction=test)
    return ds


__all__ = ["rotate_images", "load_rotated_digits"]
