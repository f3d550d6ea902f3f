import numpy as np
import pytest
import torch

from nasforge import NasforgeError
from nasforge.data import from_arrays, load_dataset
from nasforge.estimation.training import TrainingEstimator, crop_flip
from nasforge.spaces import NB201Space
from nasforge.strategies import get_strategy
from nasforge.study import Study, TrialState

SPACE = NB201Space()
ARCH = SPACE.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|")
TINY = {"C": 4, "N": 1}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_training_measures_and_learns(digits):
    est = TrainingEstimator(SPACE, digits, max_epochs=4, net=TINY, seed=0)
    m = est.estimate(ARCH)
    assert m.fidelity == 4 and m.info["epochs_trained"] == 4
    assert {"valid_acc", "valid_loss", "test_acc", "train_loss", "params", "train_seconds"} <= set(m.metrics)
    assert m.metrics["valid_acc"] > 60  # 10 classes: chance is 10 %
    assert m.metrics["params"] == sum(p.numel() for p in est.build(ARCH).parameters())
    assert est.fidelities == (1.0, 2.0, 3.0, 4.0)


def test_continuation_equals_training_straight_through(digits, tmp_path):
    a = TrainingEstimator(SPACE, digits, max_epochs=4, net=TINY, seed=1)
    a.estimate(ARCH, 1)
    m2 = a.estimate(ARCH, 3)
    assert m2.info["epochs_trained"] == 2
    b = TrainingEstimator(SPACE, digits, max_epochs=4, net=TINY, seed=1)
    assert b.estimate(ARCH, 3).metrics["valid_loss"] == pytest.approx(m2.metrics["valid_loss"], rel=1e-6)
    # from a checkpoint on disk, in a new estimator (as after a crash)
    c = TrainingEstimator(SPACE, digits, max_epochs=4, net=TINY, seed=1, checkpoint_dir=tmp_path)
    c.estimate(ARCH, 2)
    d = TrainingEstimator(SPACE, digits, max_epochs=4, net=TINY, seed=1, checkpoint_dir=tmp_path)
    m = d.estimate(ARCH, 3)
    assert m.info["epochs_trained"] == 1
    assert m.metrics["valid_loss"] == pytest.approx(m2.metrics["valid_loss"], rel=1e-6)


def test_divergence_fails_the_trial_and_the_study_goes_on(digits):
    est = TrainingEstimator(SPACE, digits, max_epochs=1, net=TINY, lr=1e12, seed=0)
    st = Study("nan", SPACE, "valid_acc")
    st.optimize(get_strategy("random", SPACE, seed=0), est, n_trials=3)
    states = [t.state for t in st.trials]
    assert len(states) == 3
    failed = [t for t in st.trials if t.state is TrialState.FAILED]
    assert failed and all("TrainingDiverged" in t.error for t in failed)


def test_bad_settings(digits):
    with pytest.raises(NasforgeError, match="unknown optimizer 'adam'"):
        TrainingEstimator(SPACE, digits, optimizer="adam")
    est = TrainingEstimator(SPACE, digits, max_epochs=3, net=TINY)
    with pytest.raises(NasforgeError, match="fidelity 5 is not a whole number of epochs in 1..3"):
        est.estimate(ARCH, 5)
    vec = from_arrays(np.random.default_rng(0).normal(size=(50, 6)), np.arange(50) % 2)
    with pytest.raises(NasforgeError, match="holds vectors"):
        TrainingEstimator(SPACE, vec, augment=None).estimate(ARCH)


def test_crop_flip_is_seeded_and_keeps_shape():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    a = crop_flip(x, torch.Generator().manual_seed(0))
    b = crop_flip(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    # every output pixel is either padding (0) or a pixel of the same image and channel
    for i in range(2):
        for c in range(3):
            vals = set(a[i, c].flatten().tolist()) - {0.0}
            assert vals <= set(x[i, c].flatten().tolist())
