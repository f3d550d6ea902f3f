"""``nasforge transfer emt``: evolutionary multi-task search (EMT-NAS) over several datasets at once,
one weight-sharing supernet per task (:class:`nasforge.transfer.emt.EMTNAS`)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from nasforge.cli.options import finite_float, parse_key_values
from nasforge.errors import NasforgeError, shorten

EXAMPLES = """examples:
  nasforge transfer emt --task cifar10:0-4 --task cifar10:5-9 --image-size 16 --n-train 5000 --out runs/emt
  nasforge transfer emt --task digits:0-4 --task digits:5-9 --generations 4 --steps 20 --rmp 0.5
  nasforge transfer emt --task digits --task photos/ --rmp 0   # tasks evolve independently (no transfer)

A task is DATASET[:CLASSES]: digits, cifar10, a .npz file or an image folder (one sub-folder per
class), optionally cut to some classes (0-4 or 0,2,7; renumbered from 0). With --out the run is
recorded after every generation and the same command continues an interrupted run."""


def add_emt_parser(tsub: Any) -> None:
    e = tsub.add_parser("emt", help="search several datasets at once: multifactorial evolution, one supernet per task",
                        description="EMT-NAS: a unified population with skill factors, cross-task crossover with "
                                    "random mating probability --rmp, fitness re-evaluated with each task's supernet "
                                    "every generation.",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--task", dest="tasks", action="append", required=True, metavar="DATASET[:CLASSES]",
                   help="a task, repeatable (at least 2): dataset name or path, optionally :classes")
    e.add_argument("--space", default="nb201", help="search space with a supernet: nb201, darts, macro (default nb201)")
    e.add_argument("--population", type=int, default=10, help="individuals per task (default 10)")
    e.add_argument("--generations", type=int, default=10, help="generations (default 10)")
    e.add_argument("--steps", type=int, default=100, help="supernet training steps per task per generation (default 100)")
    e.add_argument("--rmp", type=finite_float, default=0.3,
                   help="random mating probability of two parents of different tasks, 0..1 (default 0.3)")
    e.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="default 64")
    e.add_argument("--lr", type=finite_float, default=None, help="peak learning rate, cosine schedule (default 0.05)")
    e.add_argument("--n-eval", dest="n_eval", type=int, default=500,
                   help="validation images that score an individual (default 500; 0 = all)")
    e.add_argument("--n-train", dest="n_train", type=int, default=None, help="training images per task (default all)")
    e.add_argument("--image-size", dest="image_size", type=int, default=None,
                   help="average-pool images to this side (must divide it)")
    e.add_argument("--net", action="append", metavar="KEY=VALUE",
                   help="supernet setting, repeatable (default the space's small CPU network, NB201: C=8, N=1)")
    e.add_argument("--seed", type=int, default=None, help="population, mating, weights, data order (default 0)")
    e.add_argument("--out", default=None, help="folder recording the run after every generation (resumable)")
    e.add_argument("--data-dir", default=None, help="reference data folder (default: $NASFORGE_DATA or ../shared/data)")
    e.set_defaults(func=cmd_emt)


def parse_task(text: str) -> tuple[str, list[int] | None]:
    """``DATASET[:CLASSES]`` -> (dataset, classes or None). Classes: ``0-4``, ``0,2,7`` or both mixed."""
    name, sep, spec = text.rpartition(":") if ":" in text else (text, "", "")
    if not sep or not spec or not all(c.isdigit() or c in ",-" for c in spec):
        return text, None
    classes: list[int] = []
    for part in spec.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise NasforgeError(f"bad classes {shorten(spec)} in --task {shorten(text)}: expected e.g. 0-4 or 0,2,7")
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a:
            raise NasforgeError(f"bad class range {part!r} in --task {shorten(text)}: the end is below the start")
        classes.extend(range(a, b + 1))
    return name, classes


def cmd_emt(args: argparse.Namespace) -> int:
    from nasforge.data import load_dataset
    from nasforge.errors import check_int
    from nasforge.oneshot.train import downsample
    from nasforge.transfer.emt import EMTNAS, class_subset

    import torch

    torch.set_num_threads(1)
    if len(args.tasks) < 2:
        raise NasforgeError(f"EMT-NAS needs at least 2 --task, got {len(args.tasks)}")
    seed = 0 if args.seed is None else args.seed
    cache: dict[str, Any] = {}
    tasks: dict[str, Any] = {}
    for text in args.tasks:
        name, classes = parse_task(text)
        if name not in cache:
            data = load_dataset(name, seed=0, data_dir=args.data_dir)
            if args.image_size is not None:
                data = downsample(data, check_int(args.image_size, "--image-size", 4))
            cache[name] = data
        data = cache[name]
        if classes is not None or args.n_train is not None:
            data = class_subset(data, classes if classes is not None else range(data.num_classes), name=text,
                                n_train=None if args.n_train is None else min(args.n_train, len(data.y_train)))
        if text in tasks:
            raise NasforgeError(f"--task {shorten(text)} is given twice")
        tasks[text] = data
    net = parse_key_values(args.net, "--net", "C=16")
    opts: dict[str, Any] = {}
    if args.batch_size is not None:
        opts["batch_size"] = args.batch_size
    if args.lr is not None:
        opts["lr"] = args.lr
    emt = EMTNAS(tasks, args.space, population=args.population, generations=args.generations, steps=args.steps,
                 rmp=args.rmp, n_eval=None if args.n_eval == 0 else args.n_eval, net=net or None, seed=seed,
                 out_dir=args.out, **opts)
    for name, d in tasks.items():
        print(f"task {name}: {d.num_classes} classes, train/val/test = {len(d.y_train)}/{len(d.y_val)}/{len(d.y_test)}, "
              f"{'x'.join(map(str, d.input_shape))}")
    print(repr(emt) + (f"; recorded in {args.out}" if args.out else ""))
    t0 = time.perf_counter()

    def show(h: dict[str, Any]) -> None:
        parts = ", ".join(f"{n} {f:.1f}%" for n, f in zip(tasks, h["best_fitness"]))
        print(f"generation {h['generation'] + 1}/{args.generations}: best fitness {parts}; cross-task children "
              f"{sum(h['cross_children'])} ({sum(h['cross_survivors'])} kept); {h['seconds']:.0f} s", flush=True)

    res = emt.run(test=True, callback=show)
    print(f"\ndone in {time.perf_counter() - t0:.1f} s in this run; {res.cross_task_children} cross-task children "
          "over the run")
    print("best architecture per task (chosen by validation accuracy with inherited weights; test for reporting):")
    for name, arch, fit, test in zip(res.tasks, res.best, res.best_fitness, res.test_acc or []):
        print(f"  {name}: {arch}  valid {fit:.2f}%  test {test:.2f}%")
    return 0


__all__ = ["add_emt_parser", "parse_task", "cmd_emt"]
