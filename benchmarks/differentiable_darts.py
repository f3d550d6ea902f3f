"""Differentiable NAS on the DARTS space at CPU scale, every found cell retrained from scratch.

Search: DARTS-V1, GDAS, DrNAS and Λ-DARTS (``--methods``) on the DARTS supernet
(``nasforge.oneshot.differentiable``, C=4, 5 cells) with real CIFAR-10 images (``--search-images``
of the 25k training set, half update the weights and half update α, average-pooled to
``--search-size``), ``--epochs`` x ``--steps`` bilevel steps for every method (equal weight steps),
batch 64, the DARTS optimiser defaults and each method's defaults. Logged per epoch: the derived
genotype and the number of ``skip_connect`` edges of its normal cell.

Retraining (one protocol for every cell, ``nasforge.oneshot.differentiable.retrain``): the DARTS
evaluation network (C=8, 5 cells, no auxiliary head, no drop-path) trained from scratch for
``--retrain-epochs`` epochs on 2,000 CIFAR-10 training images at 16x16 (SGD Nesterov 0.05, cosine,
wd 5e-4, batch 32, the recipe of ``benchmarks/proxies_spaces.py``), validation on 1,000 other
training images, test on 1,000 images of the official test set (100 per class; reported only).
The found cell of search seed ``s`` is trained with seed ``s``. Baselines under the same protocol:
a random genotype per seed (the space's sampler) and DARTS-V2's published cell (trained with the
seeds of ``--v2-seeds``, which also measures the training noise).

Everything runs in this one process, one torch thread, in seed-major order, and every search
(checkpointed per epoch) and every training writes its JSON under ``--out`` as it finishes, so a
re-run resumes and ``--report`` prints the tables of what is done:

    nice -n 10 python benchmarks/differentiable_darts.py --seeds 0,1,2
    python benchmarks/differentiable_darts.py --report
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
OUT = HERE / "out" / "differentiable_darts"
METHODS = ["darts", "gdas", "drnas", "lambda-darts"]
LABELS = {"darts": "DARTS-V1", "darts2": "DARTS-V2", "gdas": "GDAS", "drnas": "DrNAS", "lambda-darts": "Λ-DARTS",
          "idarts": "iDARTS", "lambda-darts-exact": "Λ-DARTS, exact alignment gradient (not the paper's)",
          "random": "random genotype", "darts_v2": "DARTS-V2 published cell"}
#: benchmark variants of a method: name -> (method, method settings)
VARIANTS = {"lambda-darts-exact": ("lambda-darts", {"exact": True})}
#: the papers' CIFAR-10 test error (%) of their DARTS-space cell, full scale (C=36, 20 cells, 600
#: epochs, cutout, auxiliary head, drop-path; search on 50k 32x32 images)
PAPER_ERR = {"darts": "3.00 ± 0.14", "darts2": "2.76 ± 0.09", "gdas": "2.93", "drnas": "2.46 ± 0.03",
             "lambda-darts": "not retrieved", "idarts": "not retrieved", "darts_v2": "2.76 ± 0.09"}


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"search": {"C": 4, "layers": 5, "images": args.search_images, "size": args.search_size,
                       "epochs": args.epochs, "steps": args.steps, "batch": 64},
            "retrain": {"C": 8, "layers": 5, "n_train": 2000, "n_val": 1000, "n_test": 1000, "size": 16,
                        "epochs": args.retrain_epochs}}


def normal_skips(space: Any, genotype: str) -> int:
    return sum(op == "skip_connect" for op, _ in space.parse(genotype).normal)


def cached(path: Path, ident: dict[str, Any]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    rec = json.loads(path.read_text())
    if rec.get("settings") != ident:
        raise SystemExit(f"{path} was made with other settings; use another --out or the same settings")
    return rec


def write(path: Path, rec: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1))
    tmp.replace(path)


def run_search(method: str, seed: int, st: dict[str, Any], out: Path) -> dict[str, Any]:
    from nasforge.oneshot.differentiable.search import DifferentiableSearch, load_search_data
    from nasforge.spaces import get_space

    path = out / f"search-{method}-s{seed}.json"
    rec = cached(path, st)
    if rec is not None:
        return rec
    s = st["search"]
    ds = load_search_data("cifar10", n_train=s["images"], image_size=s["size"], data_dir=str(DATA))
    base, params = VARIANTS.get(method, (method, {}))
    run = DifferentiableSearch(ds, base, "darts", net={"C": s["C"], "layers": s["layers"]}, seed=seed,
                               method_params=params,
                               epochs=s["epochs"], steps_per_epoch=s["steps"], batch_size=s["batch"],
                               checkpoint=out / "ckpt" / f"{method}-s{seed}.ckpt")
    space = get_space("darts")
    init = space.format(run.layout.arch(run.current()[0])) if run.epoch == 0 else None
    c0 = time.process_time()
    res = run.run()
    hist = res.history
    rec = {"settings": st, "method": method, "seed": seed, "genotype": res.genotype, "init_genotype": init,
           "genotypes": [h["genotype"] for h in hist],
           "normal_skips": [normal_skips(space, h["genotype"]) for h in hist],
           "skips_all": [h["skip_count"] for h in hist],
           "sec_per_step": float(np.median([h["seconds"] / s["steps"] for h in hist])),
           "cpu_per_step_this_process": (time.process_time() - c0) / max(1, len(hist)) / s["steps"],
           "layer_corr": [h.get("layer_corr") for h in hist], "lambda": [h.get("lambda") for h in hist],
           "val_loss": [h["val_loss"] for h in hist], "train_acc": [h["train_acc"] for h in hist]}
    write(path, rec)
    return rec


def run_retrain(key: str, genotype: str, seed: int, st: dict[str, Any], out: Path, data: Any) -> dict[str, Any]:
    from nasforge.oneshot.differentiable.retrain import retrain
    from nasforge.spaces import get_space

    from nasforge.oneshot.differentiable.retrain import resolve_genotype

    path = out / f"retrain-{key}-s{seed}.json"
    r = st["retrain"]
    rec = cached(path, r)  # the protocol; the cell itself is checked too (a new search may find another)
    if rec is not None and rec["genotype"] == resolve_genotype(genotype):
        return rec
    c0 = time.process_time()
    m = retrain(genotype, data, "darts", epochs=r["epochs"], net={"C": r["C"], "layers": r["layers"]}, seed=seed)
    space = get_space("darts")
    rec = {"settings": r, "key": key, "seed": seed, **m, "cpu_seconds": time.process_time() - c0,
           "normal_skips": normal_skips(space, m["genotype"]),
           "params_full": space.param_count(m["genotype"], C=36, layers=20)}
    write(path, rec)
    return rec


def kept_from_init(space: Any, rec: dict[str, Any]) -> int | None:
    """How many of the found cells' 16 edges (operation, input, node) the genotype of α at
    initialisation (before any step) already had."""
    if not rec.get("init_genotype"):
        return None
    a, b = space.parse(rec["init_genotype"]), space.parse(rec["genotype"])
    out = 0
    for ca, cb in ((a.normal, b.normal), (a.reduce, b.reduce)):
        for node in range(len(ca) // 2):
            pa = list(ca[2 * node: 2 * node + 2])
            for e in cb[2 * node: 2 * node + 2]:
                if e in pa:
                    pa.remove(e)
                    out += 1
    return out


def mean_se(v: list[float], nd: int = 2) -> str:
    a = np.asarray(v, dtype=float)
    if len(a) == 0:
        return ""
    if len(a) < 2:
        return f"{a.mean():.{nd}f}"
    return f"{a.mean():.{nd}f} ± {a.std(ddof=1) / math.sqrt(len(a)):.{nd}f}"


def report(st: dict[str, Any], out: Path, methods: list[str], seeds: list[int]) -> None:
    from nasforge.spaces import get_space

    space = get_space("darts")

    def load(name: str) -> dict[str, Any] | None:
        rec = cached(out / name, st["retrain"] if name.startswith("retrain-") else st)
        if rec is not None and name.startswith("retrain-") and name[len("retrain-"):name.rindex("-s")] in methods:
            found = cached(out / name.replace("retrain-", "search-", 1), st)  # retrained the cell this search found
            if found is None or found["genotype"] != rec["genotype"]:
                return None
        return rec

    s, r = st["search"], st["retrain"]
    print(f"Search: DARTS supernet C={s['C']}, {s['layers']} cells, CIFAR-10 {s['images']} images "
          f"({s['images'] // 2} weights / {s['images'] // 2} α) at {s['size']}x{s['size']}, {s['epochs']} epochs x "
          f"{s['steps']} steps, batch {s['batch']}. Retraining: DARTS network C={r['C']}, {r['layers']} cells, "
          f"{r['n_train']} train / {r['n_val']} val / {r['n_test']} test images at {r['size']}x{r['size']}, "
          f"{r['epochs']} epochs. Seeds {','.join(map(str, seeds))}.\n")
    print("| cell | runs | normal-cell skips (epoch 1 → last) | retrained valid acc | retrained test acc "
          "| params (ours) | params (C=36, 20 cells) | search s/step (× DARTS-V1) | paper C10 test error |")
    print("|---|---|---|---|---|---|---|---|---|")
    # cost relative to DARTS-V1 of the same seed (the runs of one seed follow each other, so they
    # share the machine's load more closely than runs of different seeds)
    v1 = {k: x["sec_per_step"] for k in seeds if (x := cached(out / f"search-darts-s{k}.json", st))}
    for m in methods:
        ss = [x for x in (load(f"search-{m}-s{k}.json") for k in seeds) if x]
        rr = [x for x in (load(f"retrain-{m}-s{k}.json") for k in seeds) if x]
        sps = float(np.median([x["sec_per_step"] for x in ss])) if ss else float("nan")
        ratios = [x["sec_per_step"] / v1[x["seed"]] for x in ss if x["seed"] in v1]
        skips = (f"{np.mean([x['normal_skips'][0] for x in ss]):.1f} → {np.mean([x['normal_skips'][-1] for x in ss]):.1f}"
                 if ss else "")
        rel = f" ({np.median(ratios):.2f}×)" if ratios else ""
        print(f"| {LABELS[m]} | {len(rr)} | {skips} | {mean_se([x['valid_acc'] for x in rr])} "
              f"| {mean_se([x['test_acc'] for x in rr])} | {mean_se([x['params'] / 1e3 for x in rr], 1)}k "
              f"| {mean_se([x['params_full'] / 1e6 for x in rr])}M | {sps:.2f}{rel} | {PAPER_ERR.get(m, '')} |")
    kept = [kept_from_init(space, x) for m in methods for x in (load(f"search-{m}-s{k}.json") for k in seeds) if x]
    kept = [v for v in kept if v is not None]
    if kept:
        rng = np.random.default_rng(0)
        chance = np.mean([kept_from_init(space, {"init_genotype": space.format(space.sample(rng)),
                                                 "genotype": space.format(space.sample(rng))}) for _ in range(2000)])
        print(f"\nEdges of the found cells already chosen by α at initialisation (before any step): "
              f"{mean_se(kept, 1)} of 16 over {len(kept)} searches (two independent random genotypes share "
              f"{chance:.1f} of 16 on average).\n")
    for key in ("random", "darts_v2"):
        rr = [x for x in (load(f"retrain-{key}-s{k}.json") for k in seeds) if x]
        print(f"| {LABELS[key]} | {len(rr)} | {mean_se([x['normal_skips'] for x in rr], 1)} "
              f"| {mean_se([x['valid_acc'] for x in rr])} | {mean_se([x['test_acc'] for x in rr])} "
              f"| {mean_se([x['params'] / 1e3 for x in rr], 1)}k | {mean_se([x['params_full'] / 1e6 for x in rr])}M "
              f"| | {PAPER_ERR.get(key, '')} |")
    print("\nPer run (normal-cell skips per epoch; retrained valid / test):")
    for m in methods:
        for k in seeds:
            sr, rt = load(f"search-{m}-s{k}.json"), load(f"retrain-{m}-s{k}.json")
            if sr is None:
                continue
            acc = f"{rt['valid_acc']:.1f} / {rt['test_acc']:.1f}" if rt else "not retrained"
            extra = ""
            if any(v is not None for v in sr["layer_corr"]):
                extra = " layer corr " + " ".join(f"{v:.2f}" for v in sr["layer_corr"] if v is not None)
            kept = kept_from_init(space, sr)
            extra += f"; {kept}/16 edges as at initialisation" if kept is not None else ""
            print(f"  {LABELS[m]} seed {k}: skips {sr['normal_skips']} → {acc}{extra}\n    {sr['genotype']}")
    for key in ("random", "darts_v2"):
        for k in seeds:
            rt = load(f"retrain-{key}-s{k}.json")
            if rt:
                print(f"  {LABELS[key]} seed {k}: normal skips {rt['normal_skips']} → {rt['valid_acc']:.1f} / "
                      f"{rt['test_acc']:.1f}\n    {rt['genotype']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=5, help="search epochs")
    ap.add_argument("--steps", type=int, default=6, help="bilevel steps per search epoch")
    ap.add_argument("--search-images", type=int, default=2000)
    ap.add_argument("--search-size", type=int, default=8)
    ap.add_argument("--retrain-epochs", type=int, default=3)
    ap.add_argument("--v2-seeds", default="0,1,2", help="training seeds of DARTS-V2's published cell")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--report", action="store_true", help="only print the tables of what is done")
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    seeds = [int(k) for k in args.seeds.split(",") if k]
    st = settings(args)
    out = Path(args.out)
    if args.report:
        report(st, out, methods, seeds)
        return 0
    if not (DATA / "cifar10" / "train25k.npz").is_file():
        print(f"skipped: CIFAR-10 is not in {DATA}")
        return 0
    import torch

    torch.set_num_threads(1)
    from nasforge.oneshot.differentiable.retrain import load_retrain_data
    from nasforge.spaces import get_space

    (out / "ckpt").mkdir(parents=True, exist_ok=True)
    r = st["retrain"]
    data = load_retrain_data("cifar10", n_train=r["n_train"], n_val=r["n_val"], n_test=r["n_test"],
                             image_size=r["size"], data_dir=str(DATA))
    space = get_space("darts")
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.0f}s {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    v2_seeds = [int(k) for k in args.v2_seeds.split(",") if k]
    for k in seeds:
        rand = space.format(space.sample(np.random.default_rng(1000 + k)))
        base = [("random", rand)] + ([("darts_v2", "darts_v2")] if k in v2_seeds else [])
        for key, geno in base:
            rec = run_retrain(key, geno, k, st, out, data)
            log(f"{key} seed {k}: valid {rec['valid_acc']:.1f} test {rec['test_acc']:.1f} ({rec['cpu_seconds']:.0f} CPU-s)")
        for m in methods:
            sr = run_search(m, k, st, out)
            log(f"search {m} seed {k}: normal skips {sr['normal_skips']} {sr['sec_per_step']:.2f} s/step")
            rec = run_retrain(m, sr["genotype"], k, st, out, data)
            log(f"retrain {m} seed {k}: valid {rec['valid_acc']:.1f} test {rec['test_acc']:.1f} "
                f"({rec['cpu_seconds']:.0f} CPU-s)")
    report(st, out, methods, seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
