"""Differentiable architecture search methods: how each turns α into mixture weights and how it
computes the gradients of the weights and of α in one bilevel step.

Every method holds its architecture parameters (``alpha``: edges x width, one copy shared by all
cells, initialised ``1e-3 * randn`` as in the DARTS code; operations outside the supernet's
allowed mask are masked out) and implements

- :meth:`Method.weight_backward`: the gradient of the weights on a training batch (into ``.grad``);
- :meth:`Method.arch_backward`: the gradient of α (into ``alpha.grad``) from a validation batch
  (and the training batch, for the second-order methods);
- :meth:`Method.probs`: the per-edge operation weights the genotype is derived from.

Methods (``METHODS``):

- ``darts`` (DARTS-V1): first order, ``∇_α L_val(w, α)`` with softmax mixture weights;
- ``darts2`` (DARTS-V2): the unrolled step ``w' = w - ξ ∇_w L_train`` (momentum and weight decay
  as the optimiser would apply them, ξ = the current weight learning rate), gradient
  ``∇_α L_val(w', α) - ξ ∇²_{α,w} L_train(w, α) ∇_{w'} L_val(w', α)`` with the Hessian-vector
  product by central finite differences at ``w ± R v``, ``R = 0.01 / ||v||``;
- ``gdas``: Gumbel-softmax with a hard one-hot forward (straight-through gradient), one sample per
  forward shared by all cells, only the sampled operation of every edge computed
  (:class:`~nasforge.oneshot.differentiable.core.OnePath`); τ decays linearly from ``tau_max``
  (10) to ``tau_min`` (0.1) over the epochs; the weights train on the sampled paths too;
- ``drnas``: mixture weights drawn from ``Dirichlet(β)`` with the reparameterised (pathwise)
  gradient, ``β = ELU(α) + 1``, a fresh draw per forward; the α loss adds ``reg_scale`` (1e-3)
  times ``KL(Dir(β) || Dir(1))`` (``reg="kl"``) or ``0.5 ||β||²`` (``reg="l2"``, the default of
  the authors' NB201 script); ``keep=k`` adds their progressive learning: at ``prune_at`` (0.5)
  of the epochs each edge keeps its k strongest operations (their NB201 search: 5 → 3), and
  ``rewarm=r`` freezes α for the r epochs after the pruning, as their second stage starts (the
  partial-channel widening that goes with it there is not done here);
- ``lambda-darts`` (Λ-DARTS): first-order α updates; every cell gets its own copy of the mixture
  weights, the per-cell gradients ``g_l`` are compared by cosine similarity, and the weight
  gradient gets ``-λ ∇_w Σ_{i<j} cos(g_i, g_j) / P`` (``P`` pairs) by central finite differences
  along the direction ``v_l = ∂/∂g_l`` of that sum, ``ε = eps0 / ||v||``; λ ramps linearly from 0
  at the first epoch to ``lam`` at epoch ``ramp * (epochs - 1)``. Defaults as in the authors' code
  (``lambda_`` 0.125, ``epsilon_0`` 1e-4, ``λ_epoch = lambda_ * epoch / (epochs - 1)``, i.e.
  ``ramp`` 1.0: full λ only in the last epoch). Before this was checked the defaults were
  ``eps0`` 1e-5 and ``ramp`` 0.5; on the CPU-scale NB201 supernet (float32) the central
  difference agreed better with the exact double-backward gradient at 1e-5 (cosine 0.9995) than
  at 1e-4 (cosine < 0.2: ReLU kinks inside the step), so ``eps0=1e-5`` remains an option there;
  on the partial-channel NB201 supernet (C=16, k=4, 16x16) 1e-4 gives cosine -0.07 and 128x the
  exact norm (λ times noise on the weight gradient), 1e-5 cosine 0.99 (``benchmarks/lambda_darts_fd.py``);
  on the same supernet without partial channels 1e-4 gives cosine 0.04, 1e-5 cosine 0.00 and 503x
  the norm, 1e-6 cosine 0.94: which ε0 works depends on where the step meets a ReLU kink.
  Unlike the authors' code on the DARTS space, which regularises the normal cells only (and
  offers a sign-based variant), every pair of cells of one type is aligned here. The central
  difference is only as good as the network is smooth at the scale of ε: on the CPU-scale DARTS
  supernet (ReLU, max-pooling, batch statistics) it does not resolve the term at any ε0 from 1e-3
  to 1e-6 (cosine with the exact gradient below 0.1, in float64 too), so ``exact=True`` computes
  ``∇_w`` of the alignment by double back-propagation instead (not the paper's method; in our
  timings no dearer than the central difference, which needs two extra forward/backward passes);
- ``idarts`` (iDARTS): the implicit hypergradient ``∇_α L_val - γ ∇²_{α,w} L_train · Σ_{k=0}^{K}
  (I - γ ∇²_w L_train)^k ∇_w L_val`` with a truncated Neumann series of ``K`` terms (exact
  Hessian-vector products by double back-propagation on one training batch, hence stochastic), γ
  the current weight learning rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.oneshot.differentiable.core import OnePath, derive, layer_gradient_correlation
from nasforge.spaces.supernet import Supernet

__all__ = ["Method", "StepContext", "METHODS", "make_method", "Darts", "Darts2", "GDAS", "DrNAS", "LambdaDarts",
           "IDarts"]


@dataclass
class StepContext:
    """What a method may read about the weight optimiser at a step."""

    lr: float
    momentum: float
    weight_decay: float
    optimizer: torch.optim.Optimizer
    epoch: int
    epochs: int


def _grads(loss: Tensor, params: list[Tensor], **kw: Any) -> list[Tensor]:
    gs = torch.autograd.grad(loss, params, allow_unused=True, **kw)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)]


class Method:
    """Base class: the DARTS first-order step with softmax mixture weights."""

    name: ClassVar[str] = "darts"
    #: method settings and their defaults
    defaults: ClassVar[dict[str, Any]] = {}
    #: the method needs several search cells (per-cell gradients)
    needs_cells: ClassVar[int] = 1

    def __init__(self, model: Supernet, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            allowed = ", ".join(sorted(self.defaults)) or "none"
            raise NasforgeError(f"unknown setting {unknown[0]!r} for method {self.name!r}; allowed: {allowed}")
        self.params = {**self.defaults, **params}
        for k, v in self.params.items():
            d = self.defaults[k]
            if isinstance(d, (int, float)) and not isinstance(d, bool):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    raise NasforgeError(f"method {self.name!r} setting {k} must be a finite number >= 0, got {v!r}")
        if model.n_cells < self.needs_cells:
            raise NasforgeError(f"method {self.name!r} needs at least {self.needs_cells} search cells; the "
                                f"{model.layout.name} supernet has {model.n_cells}")
        self.model = model
        self.layout = model.layout
        self.mask = torch.as_tensor(model.allowed, dtype=torch.bool)
        self.alpha = nn.Parameter(1e-3 * torch.randn(self.layout.n_edges, self.layout.n_ops))
        self.epoch, self.epochs = 0, 1
        self.stats: dict[str, list[float]] = {}

    # --- mixture weights ----------------------------------------------------------------------
    def logits(self) -> Tensor:
        return self.alpha.masked_fill(~self.mask, float("-inf"))

    def mixture(self) -> Tensor:
        """Mixture weights for one forward (softmax of α here)."""
        return F.softmax(self.logits(), dim=-1)

    def probs(self) -> np.ndarray:
        """Per-edge operation weights the genotype is derived from."""
        with torch.no_grad():
            return F.softmax(self.logits(), dim=-1).numpy().astype(np.float64)

    def loss(self, x: Tensor, y: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Cross-entropy and logits of the mixture (``weights`` default: :meth:`mixture`)."""
        logits = self.model(x, weights=self.mixture() if weights is None else weights)
        return F.cross_entropy(logits, y), logits

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def discretize(self) -> tuple[int, ...]:
        """Per-edge operation indices of the architecture the search holds now (the DARTS rule on
        :meth:`probs`; constrained methods project instead)."""
        return derive(self.layout, self.probs(), self.model.allowed)

    # --- the bilevel step ---------------------------------------------------------------------
    def begin_epoch(self, epoch: int, epochs: int) -> None:
        """Called before each epoch (annealing, ramps)."""
        self.epoch, self.epochs = epoch, epochs

    def arch_frozen(self, epoch: int) -> bool:
        """Whether α stays fixed during ``epoch`` (the method's own warm-up phases; the search's
        ``warmup_epochs`` come on top)."""
        return False

    def weight_backward(self, x: Tensor, y: Tensor, ctx: StepContext) -> tuple[float, Tensor]:
        """Gradient of the weights on a training batch; returns the loss and the logits."""
        loss, logits = self.loss(x, y)
        loss.backward()
        return loss.item(), logits

    def arch_backward(self, xt: Tensor, yt: Tensor, xv: Tensor, yv: Tensor, ctx: StepContext) -> float:
        """Gradient of α (first order: the validation loss at the current weights)."""
        loss, _ = self.loss(xv, yv)
        self.alpha.grad = torch.autograd.grad(loss, self.alpha)[0]
        return loss.item()

    def arch_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Apply the α gradient (here: the loop's Adam step; Frank-Wolfe methods solve an LP)."""
        optimizer.step()

    # --- logging and state --------------------------------------------------------------------
    def note(self, key: str, value: float) -> None:
        self.stats.setdefault(key, []).append(float(value))

    def epoch_log(self) -> dict[str, float]:
        """Method-specific numbers of the epoch (means of what :meth:`note` recorded), then cleared."""
        out = {k: float(np.nanmean(v)) if v else float("nan") for k, v in self.stats.items()}
        self.stats = {}
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha.detach().clone(), "epoch": self.epoch, "epochs": self.epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
        self.epoch, self.epochs = state["epoch"], state["epochs"]


class Darts(Method):
    """DARTS-V1 (first order)."""

    name = "darts"


class Darts2(Method):
    """DARTS-V2: second order by finite differences (see the module docstring)."""

    name = "darts2"
    defaults = {"r": 0.01}

    def arch_backward(self, xt: Tensor, yt: Tensor, xv: Tensor, yv: Tensor, ctx: StepContext) -> float:
        w = [p for p in self.model.parameters() if p.requires_grad]
        xi = ctx.lr
        backup = [p.detach().clone() for p in w]
        loss_t, _ = self.loss(xt, yt)
        g = _grads(loss_t, w)
        with torch.no_grad():  # the virtual step w' = w - xi (momentum * buf + g + wd * w)
            for p, gi in zip(w, g):
                buf = ctx.optimizer.state.get(p, {}).get("momentum_buffer")
                step = gi + ctx.weight_decay * p
                if buf is not None:
                    step = step + ctx.momentum * buf
                p.sub_(xi * step)
        try:
            loss_v, _ = self.loss(xv, yv)
            gs = _grads(loss_v, [self.alpha, *w])
            d_alpha, dw = gs[0], gs[1:]
            norm = torch.sqrt(sum((d * d).sum() for d in dw))
            if not torch.isfinite(norm) or float(norm) == 0.0:
                self.alpha.grad = d_alpha
                return loss_v.item()
            r = float(self.params["r"]) / float(norm)
            hv = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for p, b, d in zip(w, backup, dw):
                        p.copy_(b + sign * r * d)
                lt, _ = self.loss(xt, yt)
                hv.append(torch.autograd.grad(lt, self.alpha)[0])
            self.alpha.grad = d_alpha - xi * (hv[0] - hv[1]) / (2 * r)
            return loss_v.item()
        finally:
            with torch.no_grad():
                for p, b in zip(w, backup):
                    p.copy_(b)


class GDAS(Method):
    """GDAS: hard Gumbel-softmax, one path per forward (see the module docstring)."""

    name = "gdas"
    defaults = {"tau_max": 10.0, "tau_min": 0.1}

    def __init__(self, model: Supernet, **params: Any) -> None:
        super().__init__(model, **params)
        self.tau = float(self.params["tau_max"])
        #: per-edge operation indices of the last sampled path
        self.last_path: tuple[int, ...] | None = None

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        super().begin_epoch(epoch, epochs)
        hi, lo = float(self.params["tau_max"]), float(self.params["tau_min"])
        self.tau = hi - (hi - lo) * epoch / max(epochs - 1, 1)

    def sample(self) -> tuple[Tensor, tuple[int, ...]]:
        """A straight-through hard Gumbel-softmax sample and its path."""
        logp = F.log_softmax(self.logits(), dim=-1)
        while True:
            u = torch.rand_like(logp).clamp_(1e-20, 1.0)
            gumbel = -torch.log(-torch.log(u))
            soft = F.softmax((logp + gumbel) / self.tau, dim=-1)
            if torch.isfinite(gumbel).all() and torch.isfinite(soft).all():
                break
        index = soft.argmax(dim=-1)
        hard = torch.zeros_like(soft).scatter_(-1, index[:, None], 1.0)
        path = tuple(int(k) for k in index)
        self.last_path = path
        return hard - soft.detach() + soft, path

    def loss(self, x: Tensor, y: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if weights is not None:
            return super().loss(x, y, weights)
        w, path = self.sample()
        with OnePath(self.model, path):
            logits = self.model(x, weights=w)
        return F.cross_entropy(logits, y), logits

    def epoch_log(self) -> dict[str, float]:
        return {**super().epoch_log(), "tau": self.tau}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tau": self.tau}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.tau = state["tau"]


class DrNAS(Method):
    """DrNAS: Dirichlet mixture weights with pathwise gradients (see the module docstring)."""

    name = "drnas"
    defaults = {"reg": "kl", "reg_scale": 1e-3, "keep": 0, "prune_at": 0.5, "rewarm": 0}

    def __init__(self, model: Supernet, **params: Any) -> None:
        super().__init__(model, **params)
        if self.params["reg"] not in ("kl", "l2"):
            raise NasforgeError(f"drnas reg must be 'kl' or 'l2', got {self.params['reg']!r}")
        keep = self.params["keep"]
        if keep != int(keep) or (keep and not 1 <= keep < self.layout.n_ops):
            raise NasforgeError(f"drnas keep must be 0 (no pruning) or a whole number in 1..{self.layout.n_ops - 1}, "
                                f"got {keep!r}")
        if not 0 < self.params["prune_at"] < 1:
            raise NasforgeError(f"drnas prune_at must lie in (0, 1), got {self.params['prune_at']!r}")
        if self.params["rewarm"] != int(self.params["rewarm"]) or (self.params["rewarm"] and not keep):
            raise NasforgeError(f"drnas rewarm (weight-only epochs after the pruning) must be a whole number and "
                                f"needs keep > 0, got rewarm={self.params['rewarm']!r} keep={keep!r}")
        self.pruned = False

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        """Progressive learning (DrNAS's NB201 search): at epoch ``round(prune_at * epochs)`` every
        edge keeps only its ``keep`` strongest operations (by the Dirichlet mean) for the rest of
        the search."""
        super().begin_epoch(epoch, epochs)
        keep = int(self.params["keep"])
        if keep and not self.pruned and epoch >= self.prune_epoch(epochs):
            probs = torch.as_tensor(self.probs())
            top = probs.argsort(dim=-1, descending=True, stable=True)[:, :keep]
            kept = torch.zeros_like(self.mask).scatter_(1, top, True)
            self.mask = self.mask & kept
            self.pruned = True

    def prune_epoch(self, epochs: int) -> int:
        return round(float(self.params["prune_at"]) * epochs)

    def arch_frozen(self, epoch: int) -> bool:
        """With ``keep`` and ``rewarm=r``: the r epochs after the pruning train the weights only,
        as the reference search warms up again at the start of its second stage."""
        start = self.prune_epoch(self.epochs)
        return bool(self.params["keep"]) and start <= epoch < start + int(self.params["rewarm"])

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "mask": self.mask.clone(), "pruned": self.pruned}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.mask, self.pruned = state["mask"].clone(), bool(state["pruned"])

    def concentration(self) -> Tensor:
        return F.elu(self.alpha) + 1.0

    def mixture(self) -> Tensor:
        beta = self.concentration()
        w = torch.distributions.Dirichlet(beta).rsample()
        if not bool(self.mask.all()):
            w = w * self.mask
            w = w / w.sum(dim=-1, keepdim=True)
        return w

    def probs(self) -> np.ndarray:
        """The Dirichlet mean ``β / Σβ`` over the allowed operations."""
        with torch.no_grad():
            beta = self.concentration() * self.mask
            return (beta / beta.sum(dim=-1, keepdim=True)).numpy().astype(np.float64)

    def regulariser(self) -> Tensor:
        beta = self.concentration()
        if self.params["reg"] == "kl":
            anchor = torch.distributions.Dirichlet(torch.ones_like(beta))
            reg = torch.distributions.kl_divergence(torch.distributions.Dirichlet(beta), anchor).sum()
        else:
            reg = 0.5 * (beta * beta).sum()
        return float(self.params["reg_scale"]) * reg

    def arch_backward(self, xt: Tensor, yt: Tensor, xv: Tensor, yv: Tensor, ctx: StepContext) -> float:
        loss, _ = self.loss(xv, yv)
        reg = self.regulariser()
        self.note("reg", reg.item())
        self.alpha.grad = torch.autograd.grad(loss + reg, self.alpha)[0]
        return loss.item()


class LambdaDarts(Method):
    """Λ-DARTS: the layer-alignment regulariser on the weights (see the module docstring)."""

    name = "lambda-darts"
    defaults = {"lam": 0.125, "eps0": 1e-4, "ramp": 1.0, "exact": False}
    needs_cells = 2

    def __init__(self, model: Supernet, **params: Any) -> None:
        super().__init__(model, **params)
        if not isinstance(self.params["exact"], bool):
            raise NasforgeError(f"lambda-darts exact must be true or false, got {self.params['exact']!r}")

    def lam(self) -> float:
        """λ of the current epoch: ``lam * epoch / (ramp * (epochs - 1))``, at most ``lam``."""
        span = float(self.params["ramp"]) * (self.epochs - 1)
        frac = 1.0 if span <= 0 else min(1.0, self.epoch / span)
        return float(self.params["lam"]) * frac

    def weight_backward(self, x: Tensor, y: Tensor, ctx: StepContext) -> tuple[float, Tensor]:
        copies = self.mixture().detach().unsqueeze(0).repeat(self.model.n_cells, 1, 1).requires_grad_(True)
        w = [p for p in self.model.parameters() if p.requires_grad]
        logits = self.model(x, weights=copies)
        loss = F.cross_entropy(logits, y)
        lam = self.lam()
        if self.params["exact"] and lam > 0:
            return self._exact(loss, logits, copies, w, lam)
        gs = _grads(loss, [copies, *w])
        g_cells, gw = gs[0], gs[1:]
        corr, pairs = layer_gradient_correlation(list(g_cells))
        self.note("layer_corr", corr)
        for p, g in zip(w, gw):
            p.grad = g if p.grad is None else p.grad + g
        if lam <= 0 or not pairs:
            return loss.item(), logits
        # v_l = d/dg_l of sum over pairs of cos(g_i, g_j), divided by the number of pairs
        flat = g_cells.reshape(self.model.n_cells, -1)
        norms = flat.norm(dim=1).clamp_min(1e-12)
        u = flat / norms[:, None]
        v = torch.zeros_like(flat)
        for i, j in pairs:
            v[i] += (u[j] - torch.dot(u[i], u[j]) * u[i]) / norms[i]
            v[j] += (u[i] - torch.dot(u[i], u[j]) * u[j]) / norms[j]
        v = v / len(pairs)
        vn = float(v.norm())
        if vn == 0.0 or not math.isfinite(vn):
            return loss.item(), logits
        eps = float(self.params["eps0"]) / vn
        v = v.reshape(g_cells.shape)
        base = self.mixture().detach().unsqueeze(0).repeat(self.model.n_cells, 1, 1)
        fd = []
        for sign in (1.0, -1.0):
            lp = F.cross_entropy(self.model(x, weights=base + sign * eps * v), y)
            fd.append(_grads(lp, w))
        with torch.no_grad():  # descend on -lam * d corr / dw: raise the alignment
            for p, gp, gm in zip(w, fd[0], fd[1]):
                p.grad.sub_(lam * (gp - gm) / (2 * eps))
        return loss.item(), logits

    def _exact(self, loss: Tensor, logits: Tensor, copies: Tensor, w: list[Tensor], lam: float
               ) -> tuple[float, Tensor]:
        """The weight gradient of ``loss - lam * alignment`` by double back-propagation."""
        g_cells = torch.autograd.grad(loss, copies, create_graph=True)[0]
        corr, pairs = layer_gradient_correlation(list(g_cells.detach()))
        self.note("layer_corr", corr)
        flat = g_cells.reshape(self.model.n_cells, -1)
        align = sum((F.cosine_similarity(flat[i], flat[j], dim=0, eps=1e-12) for i, j in pairs),
                    torch.zeros((), dtype=flat.dtype)) / max(len(pairs), 1)
        total = _grads(loss - lam * align, w) if pairs else _grads(loss, w)
        for p, g in zip(w, total):
            p.grad = g if p.grad is None else p.grad + g
        return loss.item(), logits.detach()

    def epoch_log(self) -> dict[str, float]:
        return {**super().epoch_log(), "lambda": self.lam()}


class IDarts(Method):
    """iDARTS: implicit hypergradient with a truncated Neumann series (see the module docstring)."""

    name = "idarts"
    defaults = {"K": 3}

    def __init__(self, model: Supernet, **params: Any) -> None:
        super().__init__(model, **params)
        k = self.params["K"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise NasforgeError(f"idarts K must be a whole number >= 0, got {k!r}")

    def arch_backward(self, xt: Tensor, yt: Tensor, xv: Tensor, yv: Tensor, ctx: StepContext) -> float:
        w = [p for p in self.model.parameters() if p.requires_grad]
        gamma = ctx.lr
        loss_v, _ = self.loss(xv, yv)
        gs = _grads(loss_v, [self.alpha, *w])
        d_alpha, dw = gs[0], gs[1:]
        loss_t, _ = self.loss(xt, yt)
        raw = torch.autograd.grad(loss_t, w, create_graph=True, allow_unused=True)
        used = [i for i, g in enumerate(raw) if g is not None and g.requires_grad]
        gw = [raw[i] for i in used]
        vec = [dw[i].detach() for i in used]
        acc = [t.clone() for t in vec]
        wu = [w[i] for i in used]
        for _ in range(int(self.params["K"])):
            hv = torch.autograd.grad(gw, wu, grad_outputs=vec, retain_graph=True, allow_unused=True)
            vec = [t - gamma * (torch.zeros_like(t) if h is None else h.detach()) for t, h in zip(vec, hv)]
            acc = [a + t for a, t in zip(acc, vec)]
        mixed = torch.autograd.grad(gw, self.alpha, grad_outputs=acc, allow_unused=True)[0]
        if mixed is None:
            mixed = torch.zeros_like(self.alpha)
        self.alpha.grad = d_alpha - gamma * mixed
        return loss_v.item()


#: method name -> class
METHODS: dict[str, type[Method]] = {c.name: c for c in (Darts, Darts2, GDAS, DrNAS, LambdaDarts, IDarts)}


def make_method(name: str, model: Supernet, **params: Any) -> Method:
    """A method by name (see :data:`METHODS`) on ``model``."""
    if name not in METHODS:
        raise NasforgeError(f"unknown method {name!r}; allowed: {', '.join(METHODS)}")
    return METHODS[name](model, **params)
