"""Bézier-curve learning-curve surrogate (EA-HAS-Bench's BSC, Dou et al., ICLR 2023).

A learning curve of any length ``E`` is drawn on a normalised time axis ``u = (e - 1) / (E - 1)``
and described by the ``degree + 1`` control points of a Bézier curve. We fix the control points'
abscissae evenly spaced on ``[0, 1]`` (so the curve's x(t) is t itself and its y(t) a Bernstein
polynomial); the paper also learns the interior abscissae, which bends the curve further but
makes the per-curve fit non-linear. With fixed abscissae each curve's control points are a
linear least-squares fit (with a small penalty on their second differences, so curves shorter
than the degree are still determined). A small MLP ensemble maps a configuration's encoding to
the control points (as logits, so every predicted curve stays within 0..100 %: a Bézier curve
lies in the convex hull of its control points) of its validation and test curves; the prediction is then the Bézier curve
sampled at the configuration's own ``E`` epochs, which is what lets one model serve curves of
any length. The energy per epoch is predicted by ridge regression on the log energy.

:class:`SurrogateBenchmark` turns a fitted surrogate into an estimator (fidelity = epochs,
cost = predicted energy of the epochs trained by the call), so strategies can be compared on it
the way EA-HAS-Bench compares them.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from nasforge.errors import NasforgeError, check_int
from nasforge.estimation.base import Estimator, Measurement


def bernstein(degree: int, u: np.ndarray) -> np.ndarray:
    """The Bernstein basis of ``degree`` at points ``u`` in [0, 1]: shape (len(u), degree + 1)."""
    u = np.asarray(u, dtype=np.float64)[:, None]
    k = np.arange(degree + 1)[None, :]
    coef = np.array([math.comb(degree, int(i)) for i in range(degree + 1)], dtype=np.float64)[None, :]
    return coef * u ** k * (1.0 - u) ** (degree - k)


def curve_axis(epochs: int) -> np.ndarray:
    """The normalised time of epochs 1..``epochs`` (0 for a one-epoch curve)."""
    return np.zeros(1) if epochs == 1 else np.linspace(0.0, 1.0, epochs)


def fit_bezier(curve: Sequence[float], degree: int = 5, smooth: float = 1e-3) -> np.ndarray:
    """Control points (ordinates, length ``degree + 1``) of the Bézier curve closest to ``curve``."""
    y = np.asarray(curve, dtype=np.float64)
    if y.ndim != 1 or len(y) == 0 or not np.all(np.isfinite(y)):
        raise NasforgeError(f"a learning curve must be a non-empty list of finite numbers, got {len(y)} values")
    b = bernstein(degree, curve_axis(len(y)))
    d = np.diff(np.eye(degree + 1), 2, axis=0)
    lhs = b.T @ b + smooth * d.T @ d + 1e-9 * np.eye(degree + 1)
    return np.linalg.solve(lhs, b.T @ y)


def bezier_curve(control: np.ndarray, epochs: int) -> np.ndarray:
    """The curve of ``control`` points sampled at epochs 1..``epochs``."""
    control = np.asarray(control, dtype=np.float64)
    return bernstein(len(control) - 1, curve_axis(epochs)) @ control


class BezierCurveSurrogate:
    """Predicts a configuration's validation and test learning curves (and energy per epoch).

    ``fit(X, valid_curves, test_curves, epoch_energy)``: ``X`` the configurations' encodings (one
    row each), curves in percent of any lengths, ``epoch_energy`` the mean energy per epoch of
    each run. ``ensemble`` MLPs (``hidden`` units, ``steps`` full-batch Adam steps) average their
    control points; all seeded by ``seed``.
    """

    def __init__(self, degree: int = 5, hidden: int = 64, steps: int = 1500, ensemble: int = 3,
                 weight_decay: float = 1e-3, ridge: float = 1.0, seed: int = 0) -> None:
        self.degree = check_int(degree, "degree", 1)
        self.hidden, self.steps = check_int(hidden, "hidden", 1), check_int(steps, "steps", 1)
        self.ensemble = check_int(ensemble, "ensemble", 1)
        self.weight_decay, self.ridge, self.seed = float(weight_decay), float(ridge), int(seed)
        self._nets: list[Any] = []

    def fit(self, x: np.ndarray, valid_curves: Sequence[Sequence[float]], test_curves: Sequence[Sequence[float]],
            epoch_energy: Sequence[float]) -> BezierCurveSurrogate:
        import torch

        x = np.asarray(x, dtype=np.float64)
        n = len(x)
        if not (n == len(valid_curves) == len(test_curves) == len(epoch_energy)) or n < 2:
            raise NasforgeError(f"fit needs one encoding, two curves and one energy per run (at least 2 runs); got "
                                f"{n}, {len(valid_curves)}, {len(test_curves)}, {len(epoch_energy)}")
        cps = np.array([np.concatenate([fit_bezier(np.asarray(v) / 100.0, self.degree),
                                        fit_bezier(np.asarray(t) / 100.0, self.degree)])
                        for v, t in zip(valid_curves, test_curves)])
        # control points are regressed as logits: a Bézier curve lies in the convex hull of its
        # control points, so predicted curves stay within 0..100 %
        cps = np.clip(cps, 1e-3, 1 - 1e-3)
        targets = np.log(cps / (1 - cps))
        self._mu, self._sd = x.mean(0), x.std(0) + 1e-6
        z = (x - self._mu) / self._sd
        self._tmu, self._tsd = targets.mean(0), targets.std(0) + 1e-6
        zt = torch.tensor((targets - self._tmu) / self._tsd, dtype=torch.float32)
        zx = torch.tensor(z, dtype=torch.float32)
        self._nets = []
        for k in range(self.ensemble):
            gen = torch.Generator().manual_seed(self.seed * 1009 + k)
            net = _mlp(z.shape[1], self.hidden, targets.shape[1], gen)
            opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=self.weight_decay)
            for _ in range(self.steps):
                opt.zero_grad()
                loss = torch.mean((net(zx) - zt) ** 2)
                loss.backward()
                opt.step()
            net.eval()
            self._nets.append(net)
        # energy per epoch: ridge regression on the log, in the standardised encoding
        le = np.log(np.maximum(np.asarray(epoch_energy, dtype=np.float64), 1e-12))
        a = np.hstack([z, np.ones((n, 1))])
        reg = self.ridge * np.eye(a.shape[1])
        reg[-1, -1] = 0.0
        self._energy_w = np.linalg.solve(a.T @ a + reg, a.T @ le)
        return self

    def control_points(self, x: np.ndarray) -> np.ndarray:
        """Predicted control points (accuracy fractions in 0..1), shape (n, 2 * (degree + 1)):
        validation then test."""
        import torch

        if not self._nets:
            raise NasforgeError("the surrogate is not fitted yet; call fit(...) first")
        z = torch.tensor((np.atleast_2d(np.asarray(x, dtype=np.float64)) - self._mu) / self._sd, dtype=torch.float32)
        with torch.no_grad():
            out = np.mean([net(z).numpy() for net in self._nets], axis=0)
        return 1.0 / (1.0 + np.exp(-(out * self._tsd + self._tmu)))

    def predict_curves(self, x: np.ndarray, epochs: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(validation, test) curves in percent, each configuration at its own number of epochs."""
        cps = self.control_points(x)
        d = self.degree + 1
        return [(100.0 * bezier_curve(c[:d], int(e)), 100.0 * bezier_curve(c[d:], int(e))) for c, e in zip(cps, epochs)]

    def predict_epoch_energy(self, x: np.ndarray) -> np.ndarray:
        """Predicted energy per epoch (same unit as fitted)."""
        z = (np.atleast_2d(np.asarray(x, dtype=np.float64)) - self._mu) / self._sd
        return np.exp(np.hstack([z, np.ones((len(z), 1))]) @ self._energy_w)


def _mlp(n_in: int, hidden: int, n_out: int, gen: Any) -> Any:
    import torch
    from torch import nn

    net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out))
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim > 1:
                bound = 1.0 / math.sqrt(p.shape[1])
                p.copy_(torch.rand(p.shape, generator=gen) * 2 * bound - bound)
            else:
                p.zero_()
    return net


class SurrogateBenchmark(Estimator):
    """A fitted :class:`BezierCurveSurrogate` as an estimator over a joint space.

    ``estimate(config, fidelity)`` reads the predicted curves at ``min(fidelity, epochs)`` (the
    configuration's own ``epochs`` hyperparameter, or ``epochs``); the cost is the predicted energy
    of the epochs not yet trained for that configuration (training continues, as with real
    training); ``reset()`` forgets what was trained. Metrics: ``valid_acc``, ``test_acc``,
    ``train_energy_j``, ``full_train_energy_j``, ``energy_j``, ``config_epochs``.
    """

    def __init__(self, space: Any, surrogate: BezierCurveSurrogate, encoding: str = "onehot", epochs: int = 10) -> None:
        from nasforge.spaces.joint import JointSpace

        if not isinstance(space, JointSpace):
            raise NasforgeError("SurrogateBenchmark needs a JointSpace (architecture x hyperparameters)")
        self.space, self.surrogate, self.encoding = space, surrogate, encoding
        self.epochs = check_int(epochs, "epochs", 1)
        hp = space.hp_space
        top = max(hp.values[hp.keys.index("epochs")]) if "epochs" in hp.keys else self.epochs
        self.fidelities = tuple(float(e) for e in range(1, int(top) + 1))
        self._cache: dict[str, tuple[np.ndarray, np.ndarray, float, int]] = {}
        self._trained: dict[str, int] = {}

    def reset(self) -> None:
        self._trained.clear()

    def predict(self, config: Any) -> tuple[np.ndarray, np.ndarray, float, int]:
        """(validation curve, test curve, energy per epoch, epochs) of ``config``."""
        cfg = self.space.coerce(config)
        text = self.space.format(cfg)
        hit = self._cache.get(text)
        if hit is None:
            own = int(self.space.hyperparameters(cfg).get("epochs", self.epochs))
            x = self.space.encode(cfg, self.encoding)[None, :]
            (v, t), = self.surrogate.predict_curves(x, [own])
            hit = (v, t, float(self.surrogate.predict_epoch_energy(x)[0]), own)
            self._cache[text] = hit
        return hit

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        v, t, e_ep, own = self.predict(arch)
        top = int(self.fidelities[-1])
        if fidelity is not None and (float(fidelity) != int(float(fidelity)) or not 1 <= float(fidelity) <= top):
            raise NasforgeError(f"fidelity {fidelity!r} is not a whole number of epochs in 1..{top}")
        target = own if fidelity is None else min(int(float(fidelity)), own)
        text = self.space.format(self.space.coerce(arch))
        done = self._trained.get(text, 0)
        new = target - done if target > done else target  # fewer epochs than trained: retrained from scratch
        self._trained[text] = max(done, target)
        spent = e_ep * new
        metrics = {"valid_acc": float(v[target - 1]), "test_acc": float(t[target - 1]), "epochs": float(target),
                   "train_energy_j": e_ep * target, "full_train_energy_j": e_ep * own, "energy_j": spent,
                   "config_epochs": float(own)}
        return Measurement(metrics, spent, None if fidelity is None else float(fidelity), {"epochs_trained": new})

    @property
    def metric_names(self) -> list[str]:
        return ["valid_acc", "test_acc", "epochs", "train_energy_j", "full_train_energy_j", "energy_j", "config_epochs"]

    def higher_is_better(self, metric: str) -> bool:
        return super().higher_is_better(metric) and metric != "config_epochs"


__all__ = ["bernstein", "fit_bezier", "bezier_curve", "curve_axis", "BezierCurveSurrogate", "SurrogateBenchmark"]
