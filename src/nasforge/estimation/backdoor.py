"""Backdoor proneness of an architecture: EVAS (Pang et al., "On the Security Risks of AutoML" /
"The Dark Side of AutoML: Towards Architectural Backdoor Search", ICLR 2023).

* :class:`TriggerGenerator` — an input-aware trigger (Nguyen & Tran, "Input-Aware Dynamic Backdoor
  Attack", NeurIPS 2020): two small convolutional nets give, for each input ``x``, a pattern ``p(x)``
  and a mask ``m(x)`` in (0, 1); the triggered input is ``x + m(x) * (p(x) - x)``.
* :func:`ntk_condition` — the condition number ``lambda_max / lambda_min`` of the empirical NTK
  (classes x classes, the mean over the batch of ``J_n J_n^T`` with ``J_n`` the Jacobian of the
  logits of sample ``n`` with respect to chosen parameters).
* :func:`evas_scores` — EVAS's score: the NTK condition number of *trigger generator -> network*
  with respect to the generator's parameters, both at initialisation (``kappa_trigger``: a small
  value means the trigger is easy to learn through this architecture, i.e. backdoor-prone), and the
  network's own NTK condition number on clean inputs with respect to its weights (``kappa_clean``:
  TE-NAS's trainability, which EVAS keeps low so that clean accuracy does not suffer). As in the
  reference code, the networks run in eval mode and the NTK reads one batch.
* :class:`BackdoorEstimator` — those scores for ``space.build(arch)`` as an estimator (so
  evolution can look for backdoor-prone cells, or avoid them), the median over ``repeats``
  initialisations.
* :func:`poisoned_training` — a short training of the network and the trigger generator together
  on data of which a fraction carries the trigger and the target label (the mask's mean area is
  kept under a budget); reports clean test accuracy and the attack success rate (the share of
  triggered test inputs of other classes that the network assigns to the target). This is the
  audit's stress test, not EVAS's threat model.
* :func:`clean_training_attack` — EVAS's own protocol: the network is trained on *clean* data
  only (nothing poisoned: the backdoor, if any, is in the architecture), then frozen, and only
  afterwards is the input-aware trigger generator fitted against it (images of the other classes
  pushed to the target class, the trigger covering a fixed share of each image); reports clean test
  accuracy and the attack success rate of the fitted trigger on the test split.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.data import Dataset
from nasforge.errors import NasforgeError, check_float, check_int
from nasforge.estimation.base import Estimator, Measurement
from nasforge.spaces.base import SearchSpace

__all__ = ["TriggerGenerator", "ntk_condition", "evas_scores", "BackdoorEstimator", "poisoned_training",
           "clean_training_attack", "TRAINING_PROTOCOLS"]

#: how an audit trains the network before measuring the attack success rate
TRAINING_PROTOCOLS = ("poisoned", "clean")


class TriggerGenerator(nn.Module):
    """An input-aware trigger ``x + m(x) * (p(x) - x)`` for images of ``in_channels`` channels.

    The pattern is ``amplitude * tanh(.)`` (inputs are normalised, so ``amplitude`` is in units of
    the data's standard deviation); the mask is ``tanh(10 tanh(.)) / 2 + 1/2`` as in the reference
    attack, nearly binary. With ``area`` (a share of the pixels) the mask is instead
    ``sigmoid(10 (r - q))`` with ``q`` each input's ``1 - area`` quantile of the mask net's output
    ``r`` (held constant for the gradient): the trigger covers about that share of every image,
    wherever the generator chooses to put it.
    """

    def __init__(self, in_channels: int, hidden: int = 8, amplitude: float = 2.0, area: float | None = None) -> None:
        super().__init__()
        self.pattern = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(hidden, in_channels, 3, padding=1))
        self.mask_net = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(hidden, 1, 3, padding=1))
        self.amplitude = float(amplitude)
        self.area = None if area is None else float(area)

    def mask(self, x: Tensor) -> Tensor:
        r = self.mask_net(x)
        if self.area is None:
            return torch.tanh(10.0 * torch.tanh(r)) / 2 + 0.5
        q = torch.quantile(r.detach().flatten(1), 1.0 - self.area, dim=1).reshape(-1, 1, 1, 1)
        return torch.sigmoid(10.0 * (r - q))

    def forward(self, x: Tensor) -> Tensor:
        p = self.amplitude * torch.tanh(self.pattern(x))
        return x + self.mask(x) * (p - x)


def ntk_condition(module: nn.Module, params: dict[str, Tensor], inputs: Tensor) -> float:
    """``lambda_max / lambda_min`` of the mean per-sample NTK of ``module`` on ``inputs`` with
    respect to ``params`` (a dict of some of its named parameters); ``inf`` when singular."""
    from torch.func import functional_call, jacrev

    names = list(params)

    def logits(*values: Tensor) -> Tensor:
        return functional_call(module, dict(zip(names, values)), (inputs,))

    jac = jacrev(logits, argnums=tuple(range(len(names))))(*[params[n].detach() for n in names])
    j = torch.cat([g.detach().reshape(g.shape[0], g.shape[1], -1) for g in jac], dim=2).double()  # N, C, D
    ntk = (j @ j.transpose(1, 2)).mean(0)
    eig = torch.linalg.eigvalsh(ntk)
    lo, hi = float(eig[0]), float(eig[-1])
    return hi / lo if lo > 0 and math.isfinite(hi / lo) else math.inf


def evas_scores(net: nn.Module, generator: TriggerGenerator, inputs: Tensor) -> dict[str, float]:
    """``kappa_trigger`` (NTK condition number of generator -> ``net`` w.r.t. the generator's
    parameters) and ``kappa_clean`` (of ``net`` w.r.t. its weight tensors) on ``inputs``, eval mode."""
    was = net.training, generator.training
    net.eval()
    generator.eval()
    try:
        chain = nn.Sequential(generator, net)
        g_params = {f"0.{n}": p for n, p in generator.named_parameters()}
        w_params = {n: p for n, p in net.named_parameters() if n.endswith("weight") and p.dim() > 1}
        return {"kappa_trigger": ntk_condition(chain, g_params, inputs),
                "kappa_clean": ntk_condition(net, w_params, inputs)}
    finally:
        net.train(was[0])
        generator.train(was[1])


def _seed(seed: int, text: str, salt: str) -> int:
    from nasforge.estimation.proxies.base import arch_seed

    return arch_seed(seed, f"{salt}|{text}")


class BackdoorEstimator(Estimator):
    """EVAS scores of untrained ``space.build(arch)`` networks on one batch of ``dataset``.

    Metrics: ``kappa_trigger`` (lower: the trigger is learnt more easily, i.e. more
    backdoor-prone), ``kappa_clean``, and ``log_kappa_trigger`` (its natural log). Each is the
    median over ``repeats`` initialisations of network and generator, seeded from ``seed`` and the
    architecture string. ``batch_size`` examples of the training split are drawn with ``seed``.
    """

    fidelities = None

    def __init__(self, space: SearchSpace, dataset: Dataset, batch_size: int = 16, repeats: int = 1, seed: int = 0,
                 net: dict[str, Any] | None = None) -> None:
        self.space, self.dataset = space, dataset
        self.batch_size = check_int(batch_size, "batch_size", 2)
        self.repeats = check_int(repeats, "repeats", 1)
        self.seed, self.net = int(seed), dict(net or {})
        if dataset.kind != "image":
            raise NasforgeError(f"the trigger generator needs image data; dataset {dataset.name!r} holds vectors")
        if self.batch_size > len(dataset.y_train):
            raise NasforgeError(f"batch_size {self.batch_size} exceeds the {len(dataset.y_train)} training examples")
        idx = np.sort(np.random.default_rng(self.seed).choice(len(dataset.y_train), self.batch_size, replace=False))
        self.inputs = torch.from_numpy(np.ascontiguousarray(dataset.x_train[idx])).float()

    @property
    def metric_names(self) -> list[str]:
        return ["kappa_trigger", "log_kappa_trigger", "kappa_clean"]

    def higher_is_better(self, metric: str) -> bool:
        return False

    def build(self, arch: Any, repeat: int = 0) -> nn.Module:
        from nasforge.spaces.base import settings_for

        d = self.dataset
        data = {"num_classes": d.num_classes, "in_channels": d.in_channels, "input_size": d.input_size}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(self.seed, self.space.format(arch), f"net{repeat}"))
            return self.space.build(arch, **{**settings_for(self.space.build, data), **self.net})

    def estimate(self, arch: Any, fidelity: float | None = None) -> Measurement:
        if fidelity is not None:
            raise NasforgeError(f"EVAS scores are training-free and have no fidelity; got fidelity={fidelity!r}")
        arch = self.space.coerce(arch)
        text = self.space.format(arch)
        t0 = time.perf_counter()
        trig, clean = [], []
        for r in range(self.repeats):
            net = self.build(arch, r)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_seed(self.seed, text, f"gen{r}"))
                gen = TriggerGenerator(self.dataset.in_channels)
            s = evas_scores(net, gen, self.inputs)
            trig.append(s["kappa_trigger"])
            clean.append(s["kappa_clean"])
        kt, kc = float(np.median(trig)), float(np.median(clean))
        return Measurement({"kappa_trigger": kt, "log_kappa_trigger": math.log(kt) if kt > 0 else -math.inf,
                            "kappa_clean": kc}, time.perf_counter() - t0, None, {})

    def __repr__(self) -> str:
        return (f"BackdoorEstimator({self.space.name}, {self.dataset.name}, batch_size={self.batch_size}, "
                f"repeats={self.repeats}, seed={self.seed}, net={self.net})")


def poisoned_training(model: nn.Module, dataset: Dataset, epochs: int = 10, poison_rate: float = 0.1,
                      target: int = 0, mask_budget: float = 0.1, lr: float = 0.1, batch_size: int = 64,
                      seed: int = 0) -> dict[str, float]:
    """Train ``model`` and an input-aware trigger generator together; return ``clean_acc`` and
    ``asr`` (%) on the test split, and ``mask_area`` (mean share of pixels the trigger covers).

    Each batch's first ``poison_rate`` share carries the trigger (covering ``mask_budget`` of each
    image, see :class:`TriggerGenerator`) and label ``target``; the loss is the cross-entropy of
    the whole batch, minimised by both the network and the generator. The network
    uses SGD (Nesterov momentum 0.9, weight decay 5e-4, cosine schedule), the generator Adam (lr
    1e-2). Data order and the generator's initial weights come from ``seed``.
    """
    epochs = check_int(epochs, "epochs", 1)
    poison_rate = check_float(poison_rate, "poison_rate", 0, 1, low_open=True, high_open=True)
    if not 0 <= int(target) < dataset.num_classes:
        raise NasforgeError(f"bad target class {target!r}: expected 0..{dataset.num_classes - 1}")
    mask_budget = _check_attack(dataset, int(target), mask_budget)
    gen_rng, generator, x_all, y_all, opt, sched = _attack_setup(model, dataset, epochs, batch_size, lr,
                                                                 mask_budget, seed)
    n = len(y_all)
    g_opt = torch.optim.Adam(generator.parameters(), lr=1e-2)
    k_frac = float(poison_rate)
    for _ in range(epochs):
        model.train()
        generator.train()
        perm = torch.randperm(n, generator=gen_rng)
        for i in range(0, n, batch_size):
            idx = perm[i: i + batch_size]
            x, y = x_all[idx], y_all[idx].clone()
            k = max(1, int(round(k_frac * len(idx))))
            xp = generator(x[:k])
            x = torch.cat([xp, x[k:]])
            y[:k] = int(target)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            g_opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            g_opt.step()
            sched.step()
            if not math.isfinite(float(loss.detach())):
                raise NasforgeError("poisoned training diverged (loss is not finite)")
    return _attack_eval(model, generator, dataset, int(target))


def _attack_setup(model: nn.Module, dataset: Dataset, epochs: int, batch_size: int, lr: float,
                  mask_budget: float, seed: int) -> tuple[torch.Generator, TriggerGenerator, Tensor, Tensor,
                                                          torch.optim.Optimizer, Any]:
    """What both attack protocols start from: the data-order generator (``seed``), the trigger
    generator (initialised from ``seed + 1``), the training tensors, and the network's SGD
    (Nesterov 0.9, weight decay 5e-4) with its cosine schedule over ``epochs``."""
    gen_rng = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) + 1)
        generator = TriggerGenerator(dataset.in_channels, area=mask_budget)
    x_all, y_all = torch.from_numpy(dataset.x_train).float(), torch.from_numpy(dataset.y_train).long()
    steps = epochs * math.ceil(len(y_all) / batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    return gen_rng, generator, x_all, y_all, opt, sched


def _attack_eval(model: nn.Module, generator: TriggerGenerator, dataset: Dataset, target: int) -> dict[str, float]:
    """Clean test accuracy, attack success rate (triggered test images of the other classes
    classified as ``target``) and the trigger's mean mask area, all on the test split."""
    model.eval()
    generator.eval()
    xt, yt = torch.from_numpy(dataset.x_test).float(), torch.from_numpy(dataset.y_test).long()
    with torch.no_grad():
        clean = float((model(xt).argmax(1) == yt).float().mean()) * 100
        other = yt != target
        asr = float((model(generator(xt[other])).argmax(1) == target).float().mean()) * 100
        area = float(generator.mask(xt).mean())
    return {"clean_acc": clean, "asr": asr, "mask_area": area}


def _check_attack(dataset: Dataset, target: int, mask_budget: float) -> float:
    mask_budget = check_float(mask_budget, "mask_budget", 0, 1, low_open=True)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= int(target) < dataset.num_classes:
        raise NasforgeError(f"bad target class {target!r}: expected 0..{dataset.num_classes - 1}")
    if dataset.kind != "image":
        raise NasforgeError(f"the trigger generator needs image data; dataset {dataset.name!r} holds vectors")
    return mask_budget


def clean_training_attack(model: nn.Module, dataset: Dataset, epochs: int = 10, trigger_epochs: int = 5,
                          target: int = 0, mask_budget: float = 0.1, lr: float = 0.1, batch_size: int = 64,
                          trigger_lr: float = 1e-2, seed: int = 0) -> dict[str, float]:
    """EVAS's protocol: train ``model`` on clean data, freeze it, then fit an input-aware trigger
    generator against it; return ``clean_acc`` and ``asr`` (%) on the test split, ``mask_area``
    and ``trigger_loss`` (the generator's mean loss over its last epoch).

    Training: ``epochs`` epochs of cross-entropy on the unmodified training split, SGD (Nesterov
    momentum 0.9, weight decay 5e-4, cosine schedule from ``lr``), as :func:`poisoned_training`
    but with no trigger and no relabelled example. Attack: the network in eval mode with its
    weights fixed; a :class:`TriggerGenerator` covering ``mask_budget`` of each image is trained
    with Adam (``trigger_lr``) for ``trigger_epochs`` epochs over the training images of the other
    classes to make the network output ``target`` (cross-entropy). ASR: the share of triggered test
    images of the other classes classified as ``target``. Data order and the generator's initial
    weights come from ``seed``.
    """
    epochs = check_int(epochs, "epochs", 1)
    trigger_epochs = check_int(trigger_epochs, "trigger_epochs", 1)
    mask_budget = _check_attack(dataset, target, mask_budget)
    lr = check_float(lr, "lr", 0, None, low_open=True)
    trigger_lr = check_float(trigger_lr, "trigger_lr", 0, None, low_open=True)
    batch_size = check_int(batch_size, "batch_size", 1)
    target = int(target)
    gen_rng, generator, x_all, y_all, opt, sched = _attack_setup(model, dataset, epochs, batch_size, lr,
                                                                 mask_budget, seed)
    n = len(y_all)
    for _ in range(epochs):  # 1. clean training: no example carries a trigger
        model.train()
        perm = torch.randperm(n, generator=gen_rng)
        for i in range(0, n, batch_size):
            idx = perm[i: i + batch_size]
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if not math.isfinite(float(loss.detach())):
                raise NasforgeError("clean training diverged (loss is not finite)")
    # 2. the trained network is fixed; only the trigger generator learns
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x_src = x_all[y_all != target]
    if len(x_src) == 0:
        raise NasforgeError(f"every training example is of the target class {target}; nothing to attack")
    g_opt = torch.optim.Adam(generator.parameters(), lr=trigger_lr)
    aim = torch.full((batch_size,), target, dtype=torch.long)
    last = math.nan
    try:
        for _ in range(trigger_epochs):
            generator.train()
            perm = torch.randperm(len(x_src), generator=gen_rng)
            total, count = 0.0, 0
            for i in range(0, len(x_src), batch_size):
                xb = x_src[perm[i: i + batch_size]]
                loss = F.cross_entropy(model(generator(xb)), aim[: len(xb)])
                g_opt.zero_grad(set_to_none=True)
                loss.backward()
                g_opt.step()
                total += float(loss.detach()) * len(xb)
                count += len(xb)
            last = total / max(1, count)
            if not math.isfinite(last):
                raise NasforgeError("trigger fitting diverged (loss is not finite)")
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return {**_attack_eval(model, generator, dataset, target), "trigger_loss": last}
