"""How well Λ-DARTS's central difference estimates the weight gradient of its alignment term.

For one training batch, the weight gradient that ``lambda-darts`` adds (``-λ (∇_w L(A + εv) -
∇_w L(A - εv)) / 2ε``, ``ε = eps0 / ||v||``, λ = 1) is compared with the exact ``-∇_w`` of the
mean pairwise cosine of the per-cell gradients (double back-propagation): cosine and norm ratio,
for several ``eps0`` (the authors' code uses 1e-4), in float32 and float64, on the CPU-scale
supernets of the NB201 (C=8, N=1) and DARTS (C=4, 5 cells) benchmarks, CIFAR-10 at 8x8, batch 32,
(``--pc``) the partial-channel NB201 supernet of the longer protocol (C=16, N=1, k=4, 16x16), and
(``--full``) the same supernet without partial channels (C=16, N=1, 16x16).

    nice -n 10 python benchmarks/lambda_darts_fd.py [--pc] [--full]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"


def check(ds, space: str, net: dict, eps0: float, dtype: torch.dtype) -> tuple[float, float]:
    from nasforge.oneshot.differentiable.core import layer_gradient_correlation
    from nasforge.oneshot.differentiable.methods import StepContext
    from nasforge.oneshot.differentiable.search import DifferentiableSearch

    run = DifferentiableSearch(ds, "lambda-darts", space, net=net, seed=0, epochs=1, steps_per_epoch=1,
                               batch_size=32, method_params={"lam": 1.0, "ramp": 0.0, "eps0": eps0})
    m, model = run.method, run.model.to(dtype)
    with torch.no_grad():
        m.alpha.data = m.alpha.data.to(dtype)
    x, y = run.xt[:32].to(dtype), run.yt[:32]
    ctx = StepContext(lr=0.025, momentum=0.9, weight_decay=0.0, optimizer=run.w_opt, epoch=0, epochs=1)
    w = list(model.parameters())
    model.zero_grad(set_to_none=True)
    m.weight_backward(x, y, ctx)
    with_reg = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in w]
    copies = m.mixture().detach().unsqueeze(0).repeat(model.n_cells, 1, 1).requires_grad_(True)
    loss = F.cross_entropy(model(x, weights=copies), y)
    gc = torch.autograd.grad(loss, copies, create_graph=True)[0]
    _, pairs = layer_gradient_correlation(list(gc.detach()))
    flat = gc.reshape(model.n_cells, -1)
    corr = sum(F.cosine_similarity(flat[i], flat[j], dim=0) for i, j in pairs) / len(pairs)
    plain = torch.autograd.grad(loss, w, retain_graph=True, allow_unused=True)
    exact = torch.autograd.grad(corr, w, allow_unused=True)
    reg = torch.cat([(r - (torch.zeros_like(r) if p is None else p)).flatten() for r, p in zip(with_reg, plain)])
    ex = torch.cat([(torch.zeros_like(q) if e is None else -e).flatten() for q, e in zip(w, exact)])
    return float(F.cosine_similarity(reg, ex, dim=0)), float(reg.norm() / ex.norm())


def main() -> int:
    if not (DATA / "cifar10" / "train25k.npz").is_file():
        print(f"skipped: CIFAR-10 is not in {DATA}")
        return 0
    torch.set_num_threads(1)
    from nasforge.oneshot.differentiable.search import load_search_data

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pc", action="store_true", help="the NB201 C=16 partial-channel (k=4) supernet instead of the small default set")
    parser.add_argument("--full", action="store_true", help="the NB201 C=16 supernet without partial channels instead of the small default set")
    args = parser.parse_args()
    configs = []
    if args.pc:
        configs.append(("nb201", {"C": 16, "N": 1, "partial": 4}, 16, (torch.float32,)))
    if args.full:
        configs.append(("nb201", {"C": 16, "N": 1}, 16, (torch.float32,)))
    if not configs:
        configs = [("nb201", {"C": 8, "N": 1}, 8, (torch.float32, torch.float64)),
                   ("darts", {"C": 4, "layers": 5}, 8, (torch.float32, torch.float64))]
    print("| supernet | dtype | eps0 | cosine (FD, exact) | norm ratio FD / exact |")
    print("|---|---|---|---|---|")
    for space, net, size, dtypes in configs:
        ds = load_search_data("cifar10", n_train=200, image_size=size, data_dir=str(DATA))
        for dtype in dtypes:
            for eps0 in (1e-3, 1e-4, 1e-5, 1e-6):
                cos, ratio = check(ds, space, net, eps0, dtype)
                print(f"| {space} {net} | {str(dtype).replace('torch.', '')} | {eps0:g} | {cos:.3f} | {ratio:.3g} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
