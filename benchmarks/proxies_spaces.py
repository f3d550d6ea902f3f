"""Zero-cost proxies on the DARTS and NAS-Bench-101 spaces, against short real training on CIFAR-10.

No NAS-Bench-101 or NAS-Bench-301 accuracy table is available here (no package on PyPI ships one
without a run-time download), so the ground truth is measured: every sampled architecture is
trained with one fixed recipe on real CIFAR-10 images and scored by its accuracy on a held-out
validation split. The recipe is tiny (a CPU budget of about an hour for everything), far below the
benchmarks' own (NAS-Bench-101: 108 epochs; NAS-Bench-301: a surrogate of 100-epoch training); its
seed-to-seed rank agreement is measured and reported as the ceiling of any correlation with it.

Phases (each resumable; rows are appended to CSV files under --out as they are computed):

    # everything below, in order (what a background run does)
    nice -n 10 python benchmarks/proxies_spaces.py all
    # 1. ground truth: train the fixed sample of each space (seed 0), then retrain its first 30 (seed 1)
    nice -n 10 python benchmarks/proxies_spaces.py train --space darts --n 200
    nice -n 10 python benchmarks/proxies_spaces.py train --space darts --n 30 --seed 1
    # 2. every proxy of the registry on the same architectures (one CIFAR-10 batch, the proxy's own init),
    #    then again with another batch and initialisation (proxy seed 1)
    nice -n 10 python benchmarks/proxies_spaces.py score --space darts --n 200
    nice -n 10 python benchmarks/proxies_spaces.py score --space darts --n 200 --proxy-seed 1
    # 2b. NB101's zen as it was before the fix (features read after global pooling), for comparison
    nice -n 10 python benchmarks/proxies_spaces.py zen-pooled --n 200
    # 3. tables: correlations with bootstrap errors, published NAS-Bench-Suite-Zero values beside
    python benchmarks/proxies_spaces.py report

Data: ``train25k.npz`` gives a stratified 3,000 images, split (stratified, seed 0) into 2,000 for
training and 1,000 for validation; 1,000 images of the official test set (100 per class) are kept
for a test accuracy (reported only). All images are normalised with the training statistics and
average-pooled 2x2 to 16x16 (``--side 32`` keeps the full resolution). The proxies' batch is 64
training images (NAS-Bench-Suite-Zero's batch size), the same batch for every architecture.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path("benchmarks/out/proxies_spaces")

#: network settings and epochs of the training recipe, per space
SPACES: dict[str, dict[str, Any]] = {
    "darts": {"net": {"C": 8, "layers": 5}, "epochs": 1,
              "label": "DARTS evaluation network, C=8, 5 cells (2 reduction), no auxiliary head, no drop-path"},
    "nb101": {"net": {"stem_channels": 16, "num_stacks": 3, "cells_per_stack": 1}, "epochs": 3,
              "label": "NAS-Bench-101 network, stem 16 channels, 3 stacks x 1 cell"},
}
#: the recipe shared by both spaces (TrainingEstimator arguments)
RECIPE = {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4, "batch_size": 32, "augment": None}
N_TRAIN, N_VAL, N_TEST = 2000, 1000, 1000

#: NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022 D&B), Figure 2: Spearman rho of each proxy
#: with the benchmark's validation accuracy over 1,000 random architectures, (NB101-CF10, NB301-CF10).
#: The same figure's NB201 columns are the values of benchmarks/proxies_nb201.py (all 26 agree).
#: knas is not in the suite.
PUBLISHED: dict[str, tuple[float | None, float | None]] = {
    "nwot": (0.31, 0.47), "naswot": (0.31, 0.47), "flops": (0.36, 0.42), "jacov": (-0.29, -0.04),
    "zen": (0.59, 0.43), "params": (0.37, 0.46), "l2_norm": (0.50, 0.45), "synflow": (0.31, 0.18),
    "snip": (-0.19, -0.05), "grad_norm": (-0.25, -0.04), "epe_nas": (0.00, 0.00), "fisher": (-0.28, -0.28),
    "grasp": (0.27, 0.34), "plain": (-0.32, -0.32),
}

TRAIN_FIELDS = ["arch", "valid_acc", "valid_loss", "test_acc", "test_loss", "train_acc", "train_loss", "params",
                "diverged", "train_seconds", "cpu_seconds"]


# --- data ---------------------------------------------------------------------------------------------
def load_data(data_dir: str | None, side: int):
    """CIFAR-10: 2,000 training / 1,000 validation images (from train25k) and 1,000 test images,
    normalised, pooled to ``side`` x ``side``."""
    import dataclasses

    import torch
    import torch.nn.functional as F

    from nasforge.data import load_cifar10

    ds = load_cifar10(data_dir, seed=0, n_train=N_TRAIN + N_VAL, val_fraction=N_VAL / (N_TRAIN + N_VAL))
    keep = np.sort(np.concatenate([np.flatnonzero(ds.y_test == c)[: N_TEST // 10] for c in range(10)]))
    factor = 32 // side

    def pool(x: np.ndarray) -> np.ndarray:
        if factor == 1:
            return np.ascontiguousarray(x)
        return F.avg_pool2d(torch.from_numpy(x), factor).numpy()

    return dataclasses.replace(ds, x_train=pool(ds.x_train), x_val=pool(ds.x_val), x_test=pool(ds.x_test[keep]),
                               y_test=ds.y_test[keep])


def sample(space_name: str, n: int, sample_seed: int) -> list[Any]:
    """The fixed sample: ``n`` architectures drawn uniformly with the space's own sampler, distinct up
    to the space's canonical key; a smaller ``n`` is a prefix of a larger one."""
    from nasforge.estimation.proxies import sample_archs
    from nasforge.spaces import get_space

    return sample_archs(get_space(space_name), n, seed=sample_seed)


# --- ground truth -------------------------------------------------------------------------------------
def train_path(out: Path, space: str, seed: int, side: int) -> Path:
    return out / f"{space}_train_s{seed}_{side}px.csv"


def read_rows(path: Path) -> dict[str, dict[str, float]]:
    if not path.exists():
        return {}
    rows: dict[str, dict[str, float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                rows[row["arch"]] = {k: float(v) for k, v in row.items() if k != "arch"}
            except (TypeError, ValueError):  # a row cut short by a killed process
                continue
    return rows


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from nasforge.estimation.training import TrainingDiverged, TrainingEstimator
    from nasforge.spaces import get_space

    torch.set_num_threads(args.threads)
    cfg = SPACES[args.space]
    space = get_space(args.space)
    data = load_data(args.data_dir, args.side)
    path = train_path(Path(args.out), args.space, args.seed, args.side)
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = {"space": args.space, "net": cfg["net"], "epochs": cfg["epochs"], **RECIPE, "seed": args.seed,
                "side": args.side, "n_train": N_TRAIN, "n_val": N_VAL, "n_test": N_TEST,
                "sample_seed": args.sample_seed, "threads": args.threads}
    meta = path.with_name(path.name + ".json")
    if meta.exists() and json.loads(meta.read_text()) != settings:
        raise SystemExit(f"{path} was made with other settings ({meta}); use another --out")
    meta.write_text(json.dumps(settings, indent=1))
    done = read_rows(path)
    archs = sample(args.space, args.n, args.sample_seed)
    todo = [a for a in archs if space.format(a) not in done]
    print(f"{path}: {len(archs) - len(todo)} of {len(archs)} trained; {len(todo)} to go "
          f"({cfg['epochs']} epoch(s), {args.threads} thread(s))", flush=True)
    est = TrainingEstimator(space, data, max_epochs=cfg["epochs"], net=cfg["net"], seed=args.seed,
                            threads=args.threads, keep=1, **RECIPE)
    new = not path.exists() or path.stat().st_size == 0
    t_start = time.perf_counter()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=TRAIN_FIELDS)
        if new:
            w.writeheader()
        for i, arch in enumerate(todo):
            text = space.format(arch)
            c0, t0 = time.process_time(), time.perf_counter()
            try:
                m = est.estimate(arch).metrics
                row = {k: m.get(k, math.nan) for k in TRAIN_FIELDS[1:8]} | {"diverged": 0}
            except TrainingDiverged:  # ranked as chance: the network did not train
                row = {"valid_acc": 10.0, "test_acc": 10.0, "diverged": 1}
            row |= {"arch": text, "train_seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
            w.writerow({k: row.get(k, math.nan) for k in TRAIN_FIELDS})
            f.flush()
            if (i + 1) % 10 == 0 or i + 1 == len(todo):
                el = time.perf_counter() - t_start
                print(f"  {i + 1}/{len(todo)} trained, {el:.0f} s, {el / (i + 1):.1f} s/arch, last valid_acc "
                      f"{row['valid_acc']:.1f}, load {os.getloadavg()[0]:.1f}", flush=True)


# --- proxies ------------------------------------------------------------------------------------------
def proxy_path(out: Path, space: str, seed: int, side: int) -> Path:
    return out / f"{space}_proxies_s{seed}_{side}px.csv"


def cmd_score(args: argparse.Namespace) -> None:
    import torch

    from nasforge.estimation.proxies import PROXIES, ProxyEstimator, ProxyResults, score_archs
    from nasforge.estimation.proxies.base import GROUPS
    from nasforge.spaces import get_space

    torch.set_num_threads(args.threads)
    cfg = SPACES[args.space]
    space = get_space(args.space)
    data = load_data(args.data_dir, args.side)
    proxies = list(PROXIES)
    est = ProxyEstimator(space, data, proxies, batch_size=args.batch_size, seed=args.proxy_seed, net=cfg["net"])
    path = proxy_path(Path(args.out), args.space, args.proxy_seed, args.side)
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = {**est.settings(), "side": args.side, "sample_seed": args.sample_seed, "threads": args.threads}
    groups = ["build"] + [g for g in GROUPS if any(PROXIES[p].group == g for p in proxies) and g != "forward"]
    results = ProxyResults(path, proxies, settings, groups=groups)
    archs = sample(args.space, args.n, args.sample_seed)
    print(f"{path}: {sum(space.format(a) in results.done for a in archs)} of {len(archs)} scored", flush=True)
    c0, t0 = time.process_time(), time.perf_counter()
    n = score_archs(est, archs, results, progress=False)
    print(f"  {n} new in {time.perf_counter() - t0:.0f} s ({time.process_time() - c0:.0f} CPU-s)", flush=True)


def cmd_zen_pooled(args: argparse.Namespace) -> None:
    """NB101's zen as computed before the network pooled with a module: the features read after
    global average pooling (the classifier's input) instead of before it. Written to
    ``nb101_zen_pooled_s0_<side>px.csv`` for the report."""
    import torch

    import nasforge.estimation.proxies.measures as measures
    from nasforge.estimation.proxies import ProxyEstimator
    from nasforge.spaces import get_space

    torch.set_num_threads(args.threads)
    space = get_space("nb101")
    est = ProxyEstimator(space, load_data(args.data_dir, args.side), ["zen"], batch_size=args.batch_size, seed=0,
                         net=SPACES["nb101"]["net"])

    def after_pooling(net: Any) -> tuple[Any, str]:
        return net.classifier, "pre-classifier"

    path = Path(args.out) / f"nb101_zen_pooled_s0_{args.side}px.csv"
    rows = []
    original = measures._feature_module
    measures._feature_module = after_pooling
    try:
        for arch in sample("nb101", args.n, args.sample_seed):
            rows.append((space.format(arch), est.estimate(arch).metrics["zen"]))
    finally:
        measures._feature_module = original
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "zen_pooled"])
        w.writerows(rows)
    print(f"{path}: {len(rows)} architectures")


# --- report -------------------------------------------------------------------------------------------
def _md(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}".replace("-", "−")


def cmd_report(args: argparse.Namespace) -> None:
    from nasforge.analysis.correlation import bootstrap, kendall_tau, spearman
    from nasforge.estimation.proxies import PROXIES, read_results
    from nasforge.spaces import get_space

    out = Path(args.out)
    report: dict[str, Any] = {"recipe": RECIPE, "spaces": {}}
    lines: list[str] = []
    for col, name in enumerate(("nb101", "darts")):
        space = get_space(name)
        archs = [space.format(a) for a in sample(name, args.n, args.sample_seed)]
        gt = read_rows(train_path(out, name, 0, args.side))
        pr_path = proxy_path(out, name, 0, args.side)
        if not gt or not pr_path.exists():
            print(f"{name}: no results yet under {out}")
            continue
        scores = read_results(pr_path)
        common = [a for a in archs if a in gt and a in scores.index]
        # the same proxies with another batch and initialisation (proxy seed 1), where scored
        pr1 = proxy_path(out, name, 1, args.side)
        scores1 = read_results(pr1) if pr1.exists() else None
        if scores1 is not None and not all(a in scores1.index for a in common):
            scores1 = None
        y = np.array([gt[a]["valid_acc"] for a in common])
        yt = np.array([gt[a]["test_acc"] for a in common])
        rep: dict[str, Any] = {"archs": len(common), "settings": SPACES[name]}
        cpu = sum(gt[a]["cpu_seconds"] for a in common)
        rep["ground_truth"] = {"mean": float(y.mean()), "sd": float(y.std(ddof=1)), "min": float(y.min()),
                               "max": float(y.max()), "diverged": int(sum(gt[a]["diverged"] for a in common)),
                               "train_cpu_s": cpu, "valid_vs_test": bootstrap(spearman, y, yt, args.boot)}
        # seed-to-seed agreement of the ground truth itself
        gt1 = read_rows(train_path(out, name, 1, args.side))
        twice = [a for a in archs if a in gt and a in gt1]
        noise: dict[str, Any] = {"archs": len(twice)}
        if len(twice) >= 5:
            a0 = np.array([gt[a]["valid_acc"] for a in twice])
            a1 = np.array([gt1[a]["valid_acc"] for a in twice])
            noise["spearman"] = bootstrap(spearman, a0, a1, args.boot)
            noise["kendall"] = bootstrap(kendall_tau, a0, a1, args.boot)
            noise["mean_abs_diff"] = float(np.mean(np.abs(a0 - a1)))
            noise["train_cpu_s"] = sum(gt1[a]["cpu_seconds"] for a in twice)
        rep["seed_to_seed"] = noise
        rows = []
        rep["proxies"] = {}
        for p in PROXIES:
            s = scores.loc[common, p].to_numpy(float)
            r = bootstrap(spearman, s, y, args.boot)
            t = bootstrap(kendall_tau, s, y, args.boot)
            rt = spearman(s, yt)
            pub = PUBLISHED.get(p, (None, None))[col]
            n_inf = int(np.sum(np.isinf(s)))
            rep["proxies"][p] = {"spearman": r, "kendall": t, "spearman_test": rt, "published": pub,
                                 "infinite": n_inf}
            r1 = stab = math.nan
            if scores1 is not None:
                s1 = scores1.loc[common, p].to_numpy(float)
                r1, stab = spearman(s1, y), spearman(s, s1)
                rep["proxies"][p] |= {"spearman_proxy_seed1": r1, "proxy_seed0_vs_seed1": stab}
            rows.append([p, f"{_fmt(r['value'])} ± {_fmt(r['se'])}", f"{_fmt(t['value'])} ± {_fmt(t['se'])}",
                         _fmt(rt), "– (not in the suite)" if p not in PUBLISHED else
                         "not found" if pub is None else _fmt(pub, 2), _fmt(r1), _fmt(stab),
                         str(n_inf) if n_inf else ""])
        rows.sort(key=lambda r: -float(r[1].split(" ")[0].replace("−", "-")) if r[1][0] != "–" else 9)
        rep["proxy_cpu_s"] = float(scores.loc[common, "seconds"].sum())
        # does our ordering of the proxies follow the published one?
        both = [p for p in PROXIES if PUBLISHED.get(p, (None, None))[col] is not None]
        ours_rho = [rep["proxies"][p]["spearman"]["value"] for p in both]
        pub_rho = [PUBLISHED[p][col] for p in both]
        rep["agreement_with_published"] = {"proxies": len(both), "spearman": spearman(ours_rho, pub_rho),
                                           "mean_abs_diff": float(np.mean(np.abs(np.subtract(ours_rho, pub_rho))))}
        report["spaces"][name] = rep
        g = rep["ground_truth"]
        bench = "NB101" if name == "nb101" else "NB301 (DARTS space)"
        lines += [f"## {name}: {len(common)} architectures ({SPACES[name]['label']}; {SPACES[name]['epochs']} "
                  f"epoch(s), {args.side}x{args.side})", "",
                  f"Ground truth (validation accuracy %, seed 0): mean {g['mean']:.2f}, sd {g['sd']:.2f}, "
                  f"range {g['min']:.1f}–{g['max']:.1f}; diverged {g['diverged']}; training {g['train_cpu_s']:.0f} "
                  f"CPU-s; rho(valid, test) {_fmt(g['valid_vs_test']['value'])} ± "
                  f"{_fmt(g['valid_vs_test']['se'])}.", ""]
        if "spearman" in noise:
            ceiling = math.sqrt(max(noise["spearman"]["value"], 0.0))
            lines += [f"Seed-to-seed (the first {noise['archs']} retrained with seed 1): Spearman "
                      f"{_fmt(noise['spearman']['value'])} ± {_fmt(noise['spearman']['se'])}, Kendall "
                      f"{_fmt(noise['kendall']['value'])} ± {_fmt(noise['kendall']['se'])}, mean |difference| "
                      f"{noise['mean_abs_diff']:.2f} points; ceiling for a proxy ≈ sqrt(rho) = {ceiling:.2f}.", ""]
        lines += [_md(["proxy", "rho vs valid_acc (± bootstrap se)", "Kendall tau (± se)", "rho vs test_acc",
                       f"published rho (Suite-Zero {bench}, CIFAR-10)", "rho vs valid_acc, proxy seed 1",
                       "rho(proxy seed 0, seed 1)", "infinite scores"], rows), ""]
        zp = out / f"nb101_zen_pooled_s0_{args.side}px.csv"
        if name == "nb101" and zp.exists():
            pooled = {r["arch"]: float(r["zen_pooled"]) for r in csv.DictReader(open(zp))}
            if all(a in pooled for a in common):
                zs = np.array([pooled[a] for a in common])
                rz = bootstrap(spearman, zs, y, args.boot)
                rep["zen_read_after_pooling"] = {"spearman": rz, "vs_fixed_zen": spearman(
                    zs, scores.loc[common, "zen"].to_numpy(float))}
                lines += [f"zen with the features read after global pooling (before the fix): rho vs valid_acc "
                          f"{_fmt(rz['value'])} ± {_fmt(rz['se'])}; rho with the fixed zen "
                          f"{_fmt(rep['zen_read_after_pooling']['vs_fixed_zen'])}.", ""]
        ag = rep["agreement_with_published"]
        lines += [f"Across the {ag['proxies']} proxies with a published value: Spearman between our rho and the "
                  f"published rho {_fmt(ag['spearman'], 2)}; mean |ours - published| {ag['mean_abs_diff']:.2f}. "
                  f"Proxy scoring: {rep['proxy_cpu_s']:.0f} s over {len(common)} architectures.", ""]
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(text + "\n")
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    print(text)


def cmd_all(args: argparse.Namespace) -> None:
    for name in ("nb101", "darts"):
        for seed, n in ((0, args.n), (1, args.retrain)):
            cmd_train(argparse.Namespace(**{**vars(args), "space": name, "seed": seed, "n": n}))
        for proxy_seed in (0, 1):
            cmd_score(argparse.Namespace(**{**vars(args), "space": name, "proxy_seed": proxy_seed}))
    cmd_zen_pooled(args)
    cmd_report(args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="phase", required=True)
    t = sub.add_parser("train", help="train the fixed sample (resumable): the ground truth")
    t.add_argument("--space", choices=sorted(SPACES), required=True)
    t.add_argument("--n", type=int, default=200)
    t.add_argument("--seed", type=int, default=0, help="training seed (weights, data order)")
    t.set_defaults(func=cmd_train)
    s = sub.add_parser("score", help="every proxy on the fixed sample (resumable)")
    s.add_argument("--space", choices=sorted(SPACES), required=True)
    s.add_argument("--n", type=int, default=200)
    s.add_argument("--proxy-seed", type=int, default=0, help="batch and initialisation seed of the proxies")
    s.set_defaults(func=cmd_score)
    r = sub.add_parser("report", help="correlations and tables")
    r.add_argument("--n", type=int, default=200)
    r.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    r.set_defaults(func=cmd_report)
    z = sub.add_parser("zen-pooled", help="NB101 zen read after global pooling (the behaviour before the fix)")
    z.add_argument("--n", type=int, default=200)
    z.set_defaults(func=cmd_zen_pooled)
    a = sub.add_parser("all", help="train, retrain, score both spaces, then report")
    a.add_argument("--n", type=int, default=200)
    a.add_argument("--retrain", type=int, default=30, help="architectures retrained with seed 1")
    a.add_argument("--boot", type=int, default=1000)
    a.set_defaults(func=cmd_all)
    for sp in (t, s, r, z, a):
        sp.add_argument("--out", default=str(OUT))
        sp.add_argument("--sample-seed", type=int, default=0)
        sp.add_argument("--side", type=int, default=16, choices=(8, 16, 32), help="image side after pooling")
        sp.add_argument("--batch-size", type=int, default=64, help="proxy batch")
        sp.add_argument("--threads", type=int, default=1)
        sp.add_argument("--data-dir", default=None)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
