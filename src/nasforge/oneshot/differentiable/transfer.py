"""Transferability-encouraging DARTS (method ``transfer-darts``).

After Sheth & Xie, "Improving Differentiable Neural Architecture Search by Encouraging
Transferability" (ICLR 2023): a three-level optimisation in which the architecture α of the main
model (the supernet, weights ``W``) is chosen so that what the main model learns *transfers well* to
an auxiliary model of fixed architecture (weights ``V``):

1. ``W*(α) = argmin_W L_train(W, α)``: the main model's weights (the loop's weight step);
2. ``V*(W*) = argmin_V L_train(V) + γ QRS(W*, V)``: the auxiliary model learns the task while matching
   the main model's *quadruple relative similarities* of features: for random quadruples ``(i, j, k,
   l)`` of training images, ``r = cos(f_i, f_j) - cos(f_k, f_l)`` computed on the main model's
   features should equal the same quantity on the auxiliary model's (squared difference, averaged
   over ``quadruples`` quadruples per batch);
3. ``min_α L_val(W*(α), α) + λ L_val(V*(W*(α)))``.

Per bilevel step, as DARTS-V2 approximates a bilevel problem by one unrolled step, each inner
argmin is one virtual SGD step (learning rate ξ = the current weight learning rate, weight decay
as the weight optimiser's; momentum left out): ``W' = W - ξ ∇_W L_train(W, α)``, then ``V' = V -
ξ ∇_V [L_train(V) + γ QRS(W', V)]``; the α gradient of ``L_val(W', α) + λ L_val(V')`` is then exact
(automatic differentiation through both virtual steps, with second derivatives). The real updates
are the loop's weight step for ``W`` and one SGD step (momentum 0.9, the same learning rate) of ``V``
on the level-2 loss with the main model's features of that step.

Features: the input of the main model's last linear layer (the pooled features, e.g. NB201's
classifier input) and of the auxiliary model's classifier. The auxiliary model is a small
convolutional network (three 3x3 convolutions of ``aux_C``, ``2 aux_C``, ``2 aux_C`` channels with
batch norm and ReLU, the second strided, global pooling, a linear classifier); the paper uses a
ResNet-50, out of reach here. ``lam`` (λ, default 1), ``gamma`` (γ, default 1) and ``quadruples``
(default 256) are our reading of the paper, not checked against its code.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from nasforge.errors import NasforgeError
from nasforge.oneshot.differentiable.methods import METHODS, Method, StepContext
from nasforge.spaces.supernet import Supernet

__all__ = ["TransferDarts", "AuxNet", "qrs_loss"]


class AuxNet(nn.Module):
    """The auxiliary model: 3 convolutions (BN, ReLU; the second strided), pooling, a linear layer."""

    def __init__(self, in_channels: int, num_classes: int, C: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C), nn.ReLU(),
            nn.Conv2d(C, 2 * C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * C), nn.ReLU(),
            nn.Conv2d(2 * C, 2 * C, 3, padding=1, bias=False), nn.BatchNorm2d(2 * C), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(2 * C, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits and features."""
        f = self.features(x)
        return self.classifier(f), f


def qrs_loss(fa: Tensor, fb: Tensor, quads: Tensor) -> Tensor:
    """Mean squared difference of the quadruple relative similarities ``cos(f_i, f_j) - cos(f_k, f_l)``
    of two feature sets (rows: the same images) over the quadruples ``quads`` (q x 4 indices)."""
    def rel(f: Tensor) -> Tensor:
        u = F.normalize(f.flatten(1), dim=1)
        i, j, k, l_ = quads.unbind(1)
        return (u[i] * u[j]).sum(1) - (u[k] * u[l_]).sum(1)

    return ((rel(fa) - rel(fb)) ** 2).mean()


class TransferDarts(Method):
    """Transferability-encouraging DARTS (see the module docstring)."""

    name = "transfer-darts"
    defaults = {"lam": 1.0, "gamma": 1.0, "quadruples": 256, "aux_C": 16}

    def __init__(self, model: Supernet, **params: Any) -> None:
        super().__init__(model, **params)
        for key in ("quadruples", "aux_C"):
            v = self.params[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise NasforgeError(f"transfer-darts {key} must be a whole number >= 1, got {v!r}")
        cfg = model.net_config()
        if "in_channels" not in cfg or "num_classes" not in cfg:
            raise NasforgeError(f"transfer-darts needs the {model.layout.name} supernet's in_channels and num_classes")
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise NasforgeError(f"transfer-darts reads the features entering the last linear layer; the "
                                f"{model.layout.name} supernet has none")
        self.aux = AuxNet(int(cfg["in_channels"]), int(cfg["num_classes"]), int(self.params["aux_C"]))
        self.aux_opt = torch.optim.SGD(self.aux.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
        self._feat: Tensor | None = None
        linears[-1].register_forward_hook(self._keep)

    def _keep(self, _m: nn.Module, inputs: tuple[Tensor, ...], _out: Tensor) -> None:
        self._feat = inputs[0]

    def _quads(self, n: int) -> Tensor:
        return torch.randint(n, (int(self.params["quadruples"]), 4))

    def _main(self, x: Tensor, params: dict[str, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Logits and features of the main model (with ``params`` in place of its weights)."""
        if params is None:
            logits = self.model(x, weights=self.mixture())
        else:
            buffers = {k: v.clone() for k, v in self.model.named_buffers()}  # virtual: running stats untouched
            logits = functional_call(self.model, (params, buffers), (x,), {"weights": self.mixture()})
        assert self._feat is not None
        return logits, self._feat

    def weight_backward(self, x: Tensor, y: Tensor, ctx: StepContext) -> tuple[float, Tensor]:
        logits, feat = self._main(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        # level 2: one real step of the auxiliary model, matching the main model's similarities
        for group in self.aux_opt.param_groups:
            group["lr"] = ctx.lr
        self.aux_opt.zero_grad(set_to_none=True)
        aux_logits, aux_feat = self.aux(x)
        q = qrs_loss(feat.detach(), aux_feat, self._quads(len(x)))
        (F.cross_entropy(aux_logits, y) + float(self.params["gamma"]) * q).backward()
        self.aux_opt.step()
        self.note("qrs", q.item())
        return loss.item(), logits

    def arch_backward(self, xt: Tensor, yt: Tensor, xv: Tensor, yv: Tensor, ctx: StepContext) -> float:
        xi, wd = ctx.lr, ctx.weight_decay
        names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        w = [p for p in self.model.parameters() if p.requires_grad]
        logits_t, _ = self._main(xt)
        g = torch.autograd.grad(F.cross_entropy(logits_t, yt), w, create_graph=True, allow_unused=True)
        w1 = {n: p - xi * ((torch.zeros_like(p) if gi is None else gi) + wd * p) for n, p, gi in zip(names, w, g)}
        _, feat1 = self._main(xt, w1)
        aux_names = [n for n, _ in self.aux.named_parameters()]
        v = list(self.aux.parameters())
        aux_buffers = {k: b.clone() for k, b in self.aux.named_buffers()}
        aux_logits, aux_feat = functional_call(self.aux, (dict(zip(aux_names, v)), aux_buffers), (xt,))
        inner = F.cross_entropy(aux_logits, yt) + float(self.params["gamma"]) * qrs_loss(feat1, aux_feat,
                                                                                          self._quads(len(xt)))
        gv = torch.autograd.grad(inner, v, create_graph=True)
        v1 = {n: p - xi * (gi + wd * p) for n, p, gi in zip(aux_names, v, gv)}
        main_val, _ = self._main(xv, w1)
        aux_val, _ = functional_call(self.aux, (v1, {k: b.clone() for k, b in self.aux.named_buffers()}), (xv,))
        l_main = F.cross_entropy(main_val, yv)
        l_aux = F.cross_entropy(aux_val, yv)
        self.alpha.grad = torch.autograd.grad(l_main + float(self.params["lam"]) * l_aux, self.alpha)[0]
        self.note("aux_val_loss", l_aux.item())
        return l_main.item()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "aux": self.aux.state_dict(), "aux_opt": self.aux_opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.aux.load_state_dict(state["aux"])
        self.aux_opt.load_state_dict(state["aux_opt"])


METHODS[TransferDarts.name] = TransferDarts
