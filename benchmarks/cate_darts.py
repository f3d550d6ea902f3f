"""CATE pre-training on the DARTS space (sampled cells), timed and cached.

The DARTS space has about 10^18 cells, so CATE samples ``--n-archs`` distinct cells (seeded) and
pairs them by parameter count (``pair_by="params"``: the analytic count is instant, while the
FLOPs count builds each network). Prints the wall and CPU seconds of pre-training, the final
masked-operation loss of a pair against chance (2 ln 7: seven operations), a held-out check (the
masked-op accuracy on 2,000 other sampled cells, with their partners, against the frequency of
the most common operation), and the time to load the cached model again. One JSON line per
setting in benchmarks/out/cate_darts.jsonl.

    nice -n 10 python benchmarks/cate_darts.py --n-archs 5000 --epochs 10
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "cate_darts.jsonl"


def held_out(enc, n: int = 2000, seed: int = 12345) -> tuple[float, float]:
    """Masked-op accuracy of the pre-trained model on new sampled cells (each paired with its
    nearest cell in parameter count among them, one op masked per cell), and the majority rate."""
    import torch

    rng = np.random.default_rng(seed)
    pool = list(dict.fromkeys(enc.space.sample(rng) for _ in range(n)))
    cost = np.array([enc._cost(a) for a in pool])
    order = np.argsort(cost, kind="stable")
    partner = np.empty(len(pool), dtype=np.int64)
    partner[order[:-1]] = order[1:]
    partner[order[-1]] = order[-2]
    tok, forbid, ops = (torch.from_numpy(t) for t in enc._tokens(pool))
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(ops.shape, generator=gen)
    first = torch.where(ops, r, torch.full_like(r, 2.0)).argmin(dim=1)
    mask = torch.zeros_like(ops)
    mask[torch.arange(len(pool)), first] = True
    ta = tok.clone()
    ta[mask] = enc.mask_token
    pb = torch.from_numpy(partner)
    with torch.no_grad():
        la, _ = enc.net(ta, forbid, tok[pb], forbid[pb])
    pred = la[mask].argmax(-1)
    truth = tok[mask]
    acc = float((pred == truth).float().mean())
    majority = float(np.bincount(truth.numpy()).max() / len(truth))
    return acc, majority


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-archs", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--window", type=int, default=50)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from nasforge.estimation.predictors.cate import CATEEncoder
    from nasforge.spaces import get_space

    space = get_space("darts")
    settings = {"pair_by": "params", "n_archs": args.n_archs, "epochs": args.epochs, "window": args.window}
    enc = CATEEncoder(space, **settings)
    w0, c0 = time.perf_counter(), time.process_time()
    enc.pretrain()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    acc, majority = held_out(enc)
    w1 = time.perf_counter()
    again = CATEEncoder(space, **settings).pretrain()
    load_s = time.perf_counter() - w1
    rec = {"settings": settings, "from_cache": enc.loaded_from_cache, "pretrain_wall_s": round(wall, 1),
           "pretrain_cpu_s": round(cpu, 1), "final_loss": getattr(enc, "final_loss", None),
           "chance_loss": round(2 * math.log(len(enc.vocab) - 2), 3), "held_out_acc": round(acc, 3),
           "majority_rate": round(majority, 3), "reload_s": round(load_s, 2), "reloaded": again.loaded_from_cache,
           "cache": str(enc.path())}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec))


if __name__ == "__main__":
    main()
