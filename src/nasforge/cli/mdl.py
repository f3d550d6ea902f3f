"""``nasforge mdl``: MDL-NAS, one ViT supernet shared by several datasets, searched jointly under a
total parameter budget; optionally a further dataset learnt incrementally (no forgetting)."""

from __future__ import annotations

import json
from typing import Any

from nasforge.cli.options import positive_int
from nasforge.errors import NasforgeError, check_int, check_seed


def add_parser(sub: Any) -> None:
    m = sub.add_parser(
        "mdl", help="MDL-NAS: a multi-domain ViT supernet searched jointly under a parameter budget",
        description="Train one ViT supernet on several datasets at once (each task: its own stem and head; "
                    "per block, sequential or mask sharing of the shared weights), search every task's "
                    "architecture and sharing jointly under a total parameter budget, finetune, and report "
                    "accuracy and storage against separate models. --add learns one more dataset afterwards "
                    "training only its own parameters and checks that the old tasks' outputs are unchanged. "
                    "Example: nasforge mdl --tasks digits,mnist1d --steps 300 --add cifar10")
    m.add_argument("--tasks", default="digits,mnist1d",
                   help="comma-separated datasets sharing the supernet: digits, mnist1d, cifar10, .npz files "
                        "(default digits,mnist1d)")
    m.add_argument("--add", default=None, help="a dataset learnt afterwards as a new task (incremental learning)")
    m.add_argument("--steps", type=int, default=300,
                   help="supernet training steps, each training every task once (default 300; a third as many "
                        "finetune the chosen subnets)")
    m.add_argument("--budget", type=positive_int, default=None,
                   help="total parameters of all tasks' models together (default: half of separate largest ViTs)")
    m.add_argument("--seed", type=int, default=0, help="weights, data order, subnet draws and search (default 0)")
    m.add_argument("--json", action="store_true", help="print the result as JSON")
    m.add_argument("--data-dir", default=None, help="reference data folder (default: $NASFORGE_DATA or ../shared/data)")
    m.set_defaults(func=cmd_mdl)


def _task(name: str, seed: int, data_dir: Any) -> Any:
    from nasforge.data import load_cifar10, load_dataset
    from nasforge.oneshot.mdl import task_data

    if name == "cifar10":
        return task_data(load_cifar10(data_dir, seed=seed, n_train=5000), "cifar10", n_test=2000)
    ds = load_dataset(name, seed=seed, data_dir=data_dir)
    label = "".join(c if c.isalnum() or c in "_-" else "_" for c in ds.name) or "task"
    return task_data(ds, label)


def cmd_mdl(args: Any) -> int:
    import torch

    from nasforge.oneshot.mdl import run_mdl

    seed = check_seed(args.seed, "--seed")
    steps = check_int(args.steps, "--steps", 1)
    names = [t.strip() for t in str(args.tasks).split(",") if t.strip()]
    if not names:
        raise NasforgeError(f"--tasks {args.tasks!r} names no dataset; e.g. --tasks digits,mnist1d")
    if len(set(names)) != len(names):
        raise NasforgeError(f"--tasks {args.tasks!r} names a dataset twice")
    if args.add is not None and args.add in names:
        raise NasforgeError(f"--add {args.add!r} is already one of --tasks")
    torch.set_num_threads(1)
    tasks = {}
    for n in names:
        d = _task(n, seed, args.data_dir)
        tasks[d.spec.name] = d
    add = _task(args.add, seed, args.data_dir) if args.add is not None else None
    res = run_mdl(tasks, steps=steps, budget=args.budget, seed=seed, add=add)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    st = res["storage"]
    print(f"joint architecture: {res['arch']}")
    for n in tasks:
        print(f"  {n}: valid {res['val_acc'][n]:.1f} %, test {res['test_acc'][n]:.1f} %")
    print(f"storage: {st['total']:,} parameters (shared {st['shared']:,}, own {st['own']:,}; budget "
          f"{res['budget']:,}); separate models of the same architectures: {st['separate']:,} "
          f"({100 * (1 - st['total'] / st['separate']):.0f} % saved)")
    if "added" in res:
        a = res["added"]
        same = all(a["old_identical"].values())
        print(f"added {a['task']}: {a['arch']}, test {a['test_acc']:.1f} %, +{a['added_storage']:,} parameters; "
              f"old tasks' outputs {'unchanged (bit-identical)' if same else 'CHANGED'}")
    return 0
