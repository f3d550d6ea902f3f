"""MDL-NAS at CPU scale: one multi-domain ViT supernet + joint search under a storage budget, against
separately trained per-task ViTs; then incremental learning of a third task without forgetting.

    nice -n 10 python benchmarks/mdl_nas.py [--seeds 3] [--steps 600] [--finetune F]

Tasks: CIFAR-10 (5,000 stratified training images, average-pooled to 16x16, 4x4 patches, first
2,000 test images), scikit-learn digits (8x8 upscaled to 16x16, 4x4 patches, 60/20/20 split), and,
added afterwards, mnist1d (40-sample signals as 1x40 images, 1x4 patches). Space: depth {1,2,3},
width {16,24,32}, heads {1,2,4} (8 wide), MLP ratio {1,2}; per block a shared fraction {0, 0.5, 1}
by sequential or mask sharing (4 masks). Budget: half the storage of two separate largest ViTs.
One torch thread, AdamW (lr 2e-3, wd 0.05, cosine), batch 64, no augmentation. Per seed:

1. supernet: ``steps`` joint steps (each step every task draws a subnet; the largest with p=1/4);
2. joint search: regularised evolution (population 16, 64 cycles) on validation accuracy with
   inherited weights, storage <= budget; the chosen joint subnet is finetuned ``--finetune``
   joint steps (default ``steps // 3``); test accuracy reported;
3. baselines, trained from scratch for the same number of steps per task (``steps + finetune``):
   (a) separate ViTs of the searched coarse architectures (equal architecture: storage saved),
   (b) separate ViTs of the largest common architecture that fits the same budget (equal storage),
   (c) separate largest ViTs (the reference at twice the budget);
4. incremental: mnist1d is added; only its own parts train (``steps`` steps on sampled
   subnets, then a search of its architecture alone with the old ones fixed under an increment of
   a quarter of the budget, then ``finetune`` steps); the old tasks' test logits
   before and after are compared bit for bit. Baseline: a separate ViT of its searched coarse
   architecture, same steps.

Per-seed results are cached in benchmarks/out/mdl18/seed_<s>_steps<S>[_ft<F>].json (delete to rerun).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

from nasforge.data import load_cifar10, load_digits, load_mnist1d  # noqa: E402
from nasforge.oneshot.mdl import (accuracy, add_task, finetune, joint_search, largest_within,  # noqa: E402
                                  model_accuracy, outputs, task_data, train_separate, train_supernet, train_task)
from nasforge.spaces.vit_multidomain import MDLSpace  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "mdl18"

PAPER = ("MDL-NAS (CVPR 2023, ViT/Swin supernets on ImageNet, COCO, ADE20K and fine-grained datasets): one "
         "supernet holding all tasks' models stores far fewer parameters than separate per-task models, with "
         "equal or better accuracy per task, and a new task is learnt without forgetting the old ones. "
         "Exact per-table numbers could not be read here (only the abstract was retrievable).")


def load_tasks(seed: int) -> dict:
    c10 = task_data(load_cifar10(seed=seed, n_train=5000), "cifar10", size=16, patch=4, n_test=2000)
    dig = task_data(load_digits(seed=seed), "digits", size=16, patch=4)
    m1d = task_data(load_mnist1d(seed=seed), "mnist1d", patch=4)
    return {"cifar10": c10, "digits": dig, "mnist1d": m1d}


def one_seed(seed: int, steps: int, fine: int | None = None) -> dict:
    t0 = time.process_time()
    data = load_tasks(seed)
    old = {n: data[n] for n in ("cifar10", "digits")}
    space = MDLSpace([old["cifar10"].spec, old["digits"].spec])
    big = {n: space.largest(0.0) for n in old}
    budget = space.storage(big)["total"] // 2
    fine = steps // 3 if fine is None else fine
    res: dict = {"seed": seed, "steps": steps, "finetune_steps": fine, "budget": budget}

    net = space.supernet(seed)
    train_supernet(net, old, steps, seed=seed)
    t_super = time.process_time() - t0
    found = joint_search(net, old, budget, seed=seed)
    finetune(net, old, found.arch, fine, seed=seed + 1)
    arch = found.arch
    st = space.storage(arch)
    res["joint"] = {"arch": space.format(arch), "storage": st, "search_val": found.val_acc,
                    "val": {n: accuracy(net, n, arch[n], old[n], "val") for n in old},
                    "test": {n: accuracy(net, n, arch[n], old[n], "test") for n in old},
                    "evaluations": found.evaluations, "supernet_cpu_s": t_super}

    per_task = steps + fine
    eq_store = largest_within(space, budget)
    for key, archs in (("sep_same", arch), ("sep_budget", {n: eq_store for n in old}), ("sep_largest", big)):
        r = {"test": {}, "val": {}, "params": {}, "arch": {}}
        for n, d in old.items():
            m = train_separate(space, n, archs[n], d, per_task, seed=seed)
            r["test"][n] = model_accuracy(m, d, "test")
            r["val"][n] = model_accuracy(m, d, "val")
            r["params"][n] = space.task_params(n, archs[n])
            r["arch"][n] = space.format_task(space.check_task_arch(n, archs[n]))
        r["storage"] = sum(r["params"].values())
        res[key] = r

    # incremental learning: a third task
    new = data["mnist1d"]
    probe = {n: old[n].x_test[:500] for n in old}
    before = {n: outputs(net, n, arch[n], probe[n]).clone() for n in old}
    add_task(net, new, seed=seed + 100)
    space3 = net.space
    train_task(net, "mnist1d", new, steps, seed=seed + 2)
    budget3 = st["total"] + budget // 4
    found3 = joint_search(net, {**old, "mnist1d": new}, budget3, fixed=arch, seed=seed + 3)
    arch3 = found3.arch
    train_task(net, "mnist1d", new, fine, archs=arch3["mnist1d"], seed=seed + 4)
    after = {n: outputs(net, n, arch[n], probe[n]) for n in old}
    st3 = space3.storage(arch3)
    sep3 = train_separate(space3, "mnist1d", arch3["mnist1d"], new, steps + fine, seed=seed)
    res["incremental"] = {
        "arch": space3.format_task(arch3["mnist1d"]), "storage": st3, "budget": budget3,
        "added_storage": st3["total"] - st["total"],
        "test": accuracy(net, "mnist1d", arch3["mnist1d"], new, "test"),
        "old_identical": {n: bool(torch.equal(before[n], after[n])) for n in old},
        "old_test_after": {n: accuracy(net, n, arch[n], old[n], "test") for n in old},
        "sep_test": model_accuracy(sep3, new, "test"),
        "sep_params": space3.task_params("mnist1d", arch3["mnist1d"]),
    }
    res["cpu_s"] = time.process_time() - t0
    return res


def mse(vals) -> str:
    v = np.asarray(vals, float)
    se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return f"{v.mean():.1f} ± {se:.1f}"


def report(results: list[dict]) -> None:
    n = len(results)
    tasks = ("cifar10", "digits")
    print(f"\n### MDL-NAS at CPU scale ({n} seed(s), {results[0]['steps']} supernet steps + "
          f"{results[0]['finetune_steps']} finetuning; budget {results[0]['budget']:,} parameters)\n")
    print("| models | CIFAR-10 test (%) | digits test (%) | mean (%) | storage (parameters) |")
    print("|---|---|---|---|---|")
    rows = [("joint supernet, searched (MDL-NAS)", "joint"),
            ("separate ViTs, same searched architectures", "sep_same"),
            ("separate ViTs, largest fitting the budget", "sep_budget"),
            ("separate ViTs, largest (2x budget)", "sep_largest")]
    for label, key in rows:
        accs = [[r[key]["test"][t] for r in results] for t in tasks]
        mean = [np.mean([r[key]["test"][t] for t in tasks]) for r in results]
        store = [r[key]["storage"]["total"] if key == "joint" else r[key]["storage"] for r in results]
        print(f"| {label} | {mse(accs[0])} | {mse(accs[1])} | {mse(mean)} | {np.mean(store):,.0f} |")
    saved = [1 - r["joint"]["storage"]["total"] / r["joint"]["storage"]["separate"] for r in results]
    print(f"\nStorage saved by sharing vs separate models of the same architectures: {mse(np.array(saved) * 100)} %"
          f" (shared part {np.mean([r['joint']['storage']['shared'] for r in results]):,.0f} parameters).")
    print("\nSearched joint architectures:")
    for r in results:
        print(f"- seed {r['seed']}: `{r['joint']['arch']}` (storage {r['joint']['storage']['total']:,}; "
              f"{r['joint']['evaluations']} evaluations); equal-storage separate: {r['sep_budget']['arch']['cifar10']}")
    print("\n**Incremental learning** (mnist1d added; only its own parts train):\n")
    print("| | mnist1d test (%) | added storage | old tasks' logits bit-identical | old tasks' test after (%) |")
    print("|---|---|---|---|---|")
    inc = [r["incremental"] for r in results]
    same = all(all(i["old_identical"].values()) for i in inc)
    old_after = [np.mean(list(i["old_test_after"].values())) for i in inc]
    print(f"| added to the joint supernet | {mse([i['test'] for i in inc])} | "
          f"{np.mean([i['added_storage'] for i in inc]):,.0f} | {'yes' if same else 'NO'} ({n}/{n} seeds) | "
          f"{mse(old_after)} |")
    print(f"| separate ViT, same architecture | {mse([i['sep_test'] for i in inc])} | "
          f"{np.mean([i['sep_params'] for i in inc]):,.0f} | - | - |")
    for r in results:
        print(f"- seed {r['seed']}: mnist1d `{r['incremental']['arch']}`")
    print(f"\nCPU time per seed: {mse([r['cpu_s'] / 60 for r in results])} min.")
    print(f"\nPaper: {PAPER}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--finetune", type=int, default=None, help="finetuning steps of the chosen subnets (default steps/3)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in range(args.seeds):
        tag = "" if args.finetune is None else f"_ft{args.finetune}"
        path = OUT / f"seed_{seed}_steps{args.steps}{tag}.json"
        if path.is_file():
            r = json.loads(path.read_text())
        else:
            t = time.time()
            r = one_seed(seed, args.steps, args.finetune)
            path.write_text(json.dumps(r, indent=1))
            print(f"seed {seed} done in {time.time() - t:.0f} s wall, {r['cpu_s']:.0f} s CPU", flush=True)
        results.append(r)
    report(results)


if __name__ == "__main__":
    main()
