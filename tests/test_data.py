import numpy as np
import pytest

from nasforge import NasforgeError
from nasforge.data import from_arrays, load_dataset, load_image_folder, load_npz


def test_digits_splits_are_seeded_stratified_and_normalised():
    a, b, c = load_dataset("digits", seed=0), load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10 and a.kind == "image"
    assert np.array_equal(a.x_val, b.x_val) and not np.array_equal(a.y_val, c.y_val)
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797
    assert abs(float(a.x_train.mean())) < 1e-4 and abs(float(a.x_train.std()) - 1) < 1e-3
    # stratified: every class in every split, in proportion
    for y in (a.y_train, a.y_val, a.y_test):
        counts = np.bincount(y, minlength=10)
        assert counts.min() > 0.7 * counts.mean()


def test_mnist1d_is_generated_offline():
    d = load_dataset("mnist1d")
    assert d.kind == "vector" and d.input_shape == (40,) and len(d.y_test) == 1000


def test_cifar10_from_reference_npz(data_dir):
    d = load_dataset("cifar10", data_dir=data_dir, n_train=1000)
    assert d.input_shape == (3, 32, 32) and d.augment == "crop_flip" and len(d.y_test) == 10000
    assert len(d.y_train) + len(d.y_val) == 1000 and d.classes[0] == "airplane"


def test_user_npz_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(60, 12, 12, 3), dtype=np.uint8)
    y = np.arange(60) % 3
    np.savez(tmp_path / "ok.npz", x=x, y=y)
    d = load_npz(tmp_path / "ok.npz")
    assert d.input_shape == (3, 12, 12) and d.num_classes == 3
    np.savez(tmp_path / "noy.npz", x=x)
    with pytest.raises(NasforgeError, match="no array 'y'"):
        load_npz(tmp_path / "noy.npz")
    with pytest.raises(NasforgeError, match="x has 60 samples but y has 59"):
        from_arrays(x, y[:59])
    with pytest.raises(NasforgeError, match="label -1 is out of range"):
        from_arrays(x, y - 1)
    with pytest.raises(NasforgeError, match="label 2 is out of range for 2 classes"):
        from_arrays(x, y, num_classes=2)
    with pytest.raises(NasforgeError, match="x must be vectors"):
        from_arrays(np.zeros(60), y)
    with pytest.raises(NasforgeError, match="not found"):
        load_npz(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(NasforgeError, match="cannot read"):
        load_npz(tmp_path / "junk.npz")
    with pytest.raises(NasforgeError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / "pets" / c).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "pets" / c / f"{i}.png")
    d = load_image_folder(tmp_path / "pets")
    assert d.classes == ["cat", "dog"] and d.input_shape == (3, 16, 16) and d.num_classes == 2
    (tmp_path / "pets" / "bird").mkdir()
    with pytest.raises(NasforgeError, match="bird holds no images"):
        load_image_folder(tmp_path / "pets")
