"""``nasforge oneshot search``: differentiable architecture search from the command line.

A thin face over :mod:`nasforge.oneshot.differentiable`: the run folder holds the checkpoint
(``search.ckpt``, written every epoch; the same command resumes from it) and, once done,
``result.json`` (the genotype, the per-epoch log and, on NB201, the table's metrics of the cell).
``nasforge oneshot retrain`` trains a found cell (a run folder, a genotype or a published cell)
from scratch with the space's evaluation network (:mod:`nasforge.oneshot.differentiable.retrain`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nasforge.cli.options import finite_float, parse_key_values
from nasforge.errors import NasforgeError


def add_parser(sub: Any) -> None:
    """Add ``oneshot`` with its ``search`` sub-command."""
    from nasforge.oneshot.differentiable.methods import METHODS

    op = sub.add_parser("oneshot", help="differentiable architecture search (DARTS and its repairs)",
                        description="Differentiable NAS on a space's supernet: a bilevel loop (weights on the "
                                    "train split, architecture parameters on the validation split).")
    osub = op.add_subparsers(dest="oneshot_command", metavar="{search,retrain}", parser_class=type(op))
    osub.required = True
    s = osub.add_parser("search", help="search a cell with a differentiable method",
                        description="Run (or resume) a differentiable search. Logs the genotype, the skip-connection "
                                    "count and the method's numbers every epoch.")
    s.add_argument("--method", required=True, choices=list(METHODS), help="the search method")
    s.add_argument("--space", default="nb201", help="space of the supernet: nb201, darts, macro or mbv3 (default nb201)")
    s.add_argument("--dataset", default="digits", help="digits, cifar10, a .npz file or an image folder (default digits)")
    s.add_argument("--run", required=True, help="run folder (checkpoint, result.json)")
    s.add_argument("--n-train", dest="n_train", type=int, default=None,
                   help="cifar10: images to load (half update the weights, half α)")
    s.add_argument("--image-size", dest="image_size", type=int, default=None,
                   help="average-pool images to this side (e.g. 16 for CIFAR-10 on a CPU)")
    s.add_argument("--data-seed", dest="data_seed", type=int, default=0, help="seed of the data split (default 0)")
    s.add_argument("--C", type=int, default=None, help="channels of the first stage")
    s.add_argument("--N", type=int, default=None, help="nb201: cells per stage")
    s.add_argument("--layers", type=int, default=None, help="darts: cells")
    s.add_argument("--partial", type=int, default=None,
                   help="nb201: partial channels, C/k channels through the operations (DrNAS's NB201 search: 4)")
    s.add_argument("--width", type=finite_float, default=None, help="mbv3: channel multiplier (default 0.25)")
    s.add_argument("--epochs", type=int, default=None, help="default 10")
    s.add_argument("--steps-per-epoch", dest="steps_per_epoch", type=int, default=None,
                   help="default: one pass over the training half")
    s.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="default 64")
    s.add_argument("--lr", type=finite_float, default=None, help="weight learning rate, cosine (default 0.025)")
    s.add_argument("--arch-lr", dest="arch_lr", type=finite_float, default=None, help="Adam lr of α (default 3e-4)")
    s.add_argument("--warmup-epochs", dest="warmup_epochs", type=int, default=None,
                   help="first epochs train the weights only, α frozen (default 0)")
    s.add_argument("--seed", type=int, default=None, help="initial weights, α, data order, draws (default 0)")
    s.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="method setting, e.g. K=5 (idarts), lam=0.25 or exact=true (lambda-darts), reg=l2 (drnas); hardcore and "
                        "latency-penalty: target=<ms> latency=<device of the space's tables, e.g. fpga on nb201, "
                        "or a lookup-table file, e.g. the mbv3 one of benchmarks/mbv3_latency_lut.py>")
    s.add_argument("--lookup", action="store_true", help="nb201: print the found cell's NB201 table accuracies")
    s.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    s.add_argument("--data-dir", dest="data_dir", default=None, help="reference data folder")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_search)

    r = osub.add_parser(
        "retrain", help="train a found cell from scratch and report its accuracy",
        description="Train a cell from scratch with the space's evaluation network (DARTS: C channels, --layers "
                    "cells; SGD Nesterov, cosine, the CPU-scale recipe) and print its validation accuracy (what a "
                    "comparison may select by) and test accuracy (report only). Writes retrain.json into a run folder.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("arch", help="a run folder of `oneshot search` (or its result.json), a genotype in the space's "
                                "notation, or a published cell (darts: darts_v1, darts_v2, pc_darts, drnas)")
    r.add_argument("--space", default="darts", help="space of the cell (default darts)")
    r.add_argument("--dataset", default="digits", help="digits, cifar10, a .npz file or an image folder (default digits)")
    r.add_argument("--n-train", dest="n_train", type=int, default=2000, help="cifar10: training images (default 2000)")
    r.add_argument("--n-val", dest="n_val", type=int, default=1000,
                   help="cifar10: validation images, other training images (default 1000)")
    r.add_argument("--n-test", dest="n_test", type=int, default=1000,
                   help="cifar10: test images, per class equally (default 1000; 0: all 10,000)")
    r.add_argument("--image-size", dest="image_size", type=int, default=None, help="average-pool images to this side")
    r.add_argument("--data-seed", dest="data_seed", type=int, default=0, help="seed of the data split (default 0)")
    r.add_argument("--C", type=int, default=8, help="darts: channels of the first cells (default 8; papers 36)")
    r.add_argument("--layers", type=int, default=5, help="darts: cells (default 5; papers 20)")
    r.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    r.add_argument("--lr", type=finite_float, default=None, help="peak learning rate, cosine (default 0.05)")
    r.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="default 32")
    r.add_argument("--seed", type=int, default=0, help="initial weights and data order (default 0)")
    r.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    r.add_argument("--data-dir", dest="data_dir", default=None, help="reference data folder")
    r.set_defaults(func=cmd_retrain)


def _method_params(args: argparse.Namespace) -> dict[str, Any]:
    """``--param`` settings; a method that reads device tables gets ``--data-dir`` too."""
    from nasforge.oneshot.differentiable.methods import METHODS

    params = parse_key_values(args.param, "--param", "K=5")
    if "data_dir" in METHODS[args.method].defaults and args.data_dir is not None:
        params.setdefault("data_dir", args.data_dir)
    return params


def cmd_search(args: argparse.Namespace) -> int:
    import torch

    from nasforge.oneshot.differentiable.search import DifferentiableSearch, load_search_data, lookup_nb201

    torch.set_num_threads(max(1, args.threads))
    folder = Path(args.run)
    if folder.exists() and not folder.is_dir():
        raise NasforgeError(f"run folder {folder} is a file, not a folder")
    ds = load_search_data(args.dataset, n_train=args.n_train, image_size=args.image_size, data_seed=args.data_seed,
                          data_dir=args.data_dir)
    net = {k: v for k, v in {"C": args.C, "N": args.N, "layers": args.layers, "width": args.width,
                             "partial": args.partial}.items() if v is not None}
    settings = {k: getattr(args, k) for k in ("epochs", "steps_per_epoch", "batch_size", "lr", "arch_lr", "seed",
                                              "warmup_epochs")}
    folder.mkdir(parents=True, exist_ok=True)
    run = DifferentiableSearch(ds, args.method, args.space, net=net,
                               method_params=_method_params(args),
                               checkpoint=folder / "search.ckpt", **settings)
    if run.epoch:
        print(f"resuming after epoch {run.epoch} of {run.settings['epochs']}")
    result = run.run(progress=not args.quiet, log=print)
    out: dict[str, Any] = {"method": args.method, "space": run.layout.name, "genotype": result.genotype,
                           "skip_count": result.skip_count, "history": result.history}
    print(f"genotype: {result.genotype}")
    if run.layout.name != "nb201":
        print(f"  train it from scratch: nasforge oneshot retrain {folder} --space {run.layout.name} "
              f"--dataset {args.dataset}")
    lat = getattr(run.method, "lat", None)
    if lat is not None:
        out["latency_ms"] = lat.of_indices(result.indices)
        print(f"  latency: {out['latency_ms']:.4g} ms (target {run.method.target:.4g} ms; {lat.source})")
    if args.lookup:
        if run.layout.name != "nb201":
            raise NasforgeError(f"--lookup reads the NB201 tables; the {run.layout.name} space has none")
        out["nb201"] = lookup_nb201(result.genotype, data_dir=args.data_dir)
        for k, v in out["nb201"].items():
            print(f"  {k}: {v:.2f}")
    (folder / "result.json").write_text(json.dumps(out, indent=1))
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from nasforge.oneshot.differentiable.retrain import load_retrain_data, resolve_genotype, retrain

    genotype = resolve_genotype(args.arch, args.space)  # a bad cell is one error before any data is read
    ds = load_retrain_data(args.dataset, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test or None,
                           image_size=args.image_size, data_seed=args.data_seed, data_dir=args.data_dir)
    net = {"C": args.C, "layers": args.layers} if args.space == "darts" else {}
    training = {k: getattr(args, k) for k in ("lr", "batch_size") if getattr(args, k) is not None}
    m = retrain(genotype, ds, args.space, epochs=args.epochs, net=net, seed=args.seed, threads=max(1, args.threads),
                **training)
    print(f"genotype: {m['genotype']}")
    print(f"  {ds.name}: {len(ds.y_train)} train / {len(ds.y_val)} val / {len(ds.y_test)} test images, "
          f"{args.epochs} epochs, net {net or 'default'}, seed {args.seed}")
    print(f"  valid_acc {m['valid_acc']:.2f}  test_acc {m['test_acc']:.2f}  params {int(m['params']):,}  "
          f"train {m['train_seconds']:.0f} s")
    try:
        folder = Path(args.arch) if Path(args.arch).is_dir() else None
    except OSError:  # a genotype, longer than a file name may be
        folder = None
    if folder is not None:
        (folder / "retrain.json").write_text(json.dumps(m, indent=1))
        print(f"  written to {folder / 'retrain.json'}")
    return 0
