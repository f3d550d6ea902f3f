"""``nasforge equivariance search``: search the symmetry group of each layer (Maile et al.,
ICLR 2023) from the command line. A thin face over :mod:`nasforge.study.equivariance`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from nasforge.cli.examples import section
from nasforge.cli.options import finite_float
from nasforge.errors import NasforgeError, check_float, check_output_file, check_seed

EXAMPLES = [
    "nasforge equivariance search --method re --groups C4,C2,C1 --trials 12 --compare",
    "nasforge equivariance search --dataset rotated-flipped-digits --method equinas-e --groups D4,C4,D2,C2,D1,C1 "
    "--planes 48",
    "nasforge equivariance search --method equinas-d --groups D4,C4,C1 --dataset rotated-flipped-digits --out d.json",
]


def add_parser(sub: Any) -> None:
    """Add ``equivariance`` with its ``search`` sub-command."""
    from nasforge.study.equivariance import DATASETS, METHODS

    ep = sub.add_parser("equivariance", help="search the symmetry group (D4, C4, ..., C1) of each layer",
                        description="Equivariance-aware architecture search (Maile et al., ICLR 2023): group "
                                    "convolutions with a symmetry group per layer, rotations and flips (D4) and "
                                    "their subgroups.",
                        epilog=section(EXAMPLES[:2]), formatter_class=argparse.RawDescriptionHelpFormatter)
    esub = ep.add_subparsers(dest="equivariance_command", metavar="{search}", parser_class=type(ep))
    esub.required = True
    s = esub.add_parser(
        "search", help="search the group of each layer of a group CNN",
        description="Search the symmetry group of each layer of a group CNN on rotated (and flipped) digits. "
                    "re/rs train every candidate from scratch in a study (resumed by the same command); "
                    "equinas-e relaxes the largest group layer by layer (relaxation morphisms, weights inherited); "
                    "equinas-d trains [G]-mixed layers and takes each layer's strongest group. The chosen network "
                    "is retrained from scratch and its validation (selects) and test (reported) accuracy printed; "
                    "--compare also trains the network of each group throughout. Groups: D4 (turns and flips), "
                    "C4 (quarter turns), D2 (half turns and left-right flip), C2 (half turns), D1 (left-right "
                    "flip), C1 (a plain convolution).",
        epilog=section(EXAMPLES), formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--method", required=True, choices=list(METHODS), help="the search method")
    s.add_argument("--dataset", default="rotated-digits", choices=list(DATASETS),
                   help="digits turned by random angles, or also mirrored with probability 1/2 "
                        "(default rotated-digits)")
    s.add_argument("--groups", default="C4,C2,C1",
                   help="comma-separated groups a layer may have, of D4, C4, D2, C2, D1, C1 (default C4,C2,C1)")
    s.add_argument("--max-degrees", dest="max_degrees", type=finite_float, default=90.0,
                   help="images are turned by angles in [-x, x] degrees (default 90)")
    s.add_argument("--layers", type=int, default=4, help="group convolutions (default 4; the first lifts the image)")
    s.add_argument("--planes", type=int, default=None,
                   help="feature planes per layer, a multiple of 4 (8 with a flip group; default 32, 48 with one)")
    s.add_argument("--epochs", type=int, default=20, help="training epochs of every network (default 20)")
    s.add_argument("--lr", type=finite_float, default=0.05, help="SGD learning rate, cosine (default 0.05)")
    s.add_argument("--batch-size", dest="batch_size", type=int, default=32, help="default 32")
    s.add_argument("--trials", type=int, default=12, help="re/rs: networks trained (default 12)")
    s.add_argument("--population", type=int, default=2, help="equinas-e: members kept (default 2)")
    s.add_argument("--generations", type=int, default=4, help="equinas-e: generations (default 4)")
    s.add_argument("--search-epochs", dest="search_epochs", type=int, default=10,
                   help="equinas-d: epochs of the mixture (default 10)")
    s.add_argument("--compare", action="store_true", help="also train the network of each group throughout")
    s.add_argument("--seed", type=int, default=0, help="data split, initial weights, data order, search (default 0)")
    s.add_argument("--study", default=None, help="re/rs: study name (default equi-<method>-<seed>)")
    s.add_argument("--storage", default=None,
                   help="re/rs: where the study is kept (default sqlite:///nasforge.db)")
    s.add_argument("--out", default=None, help="write the result (JSON) to this file")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    import torch

    from nasforge.cli.main import DEFAULT_STORAGE
    from nasforge.spaces.equivariant import base_of, parse_groups
    from nasforge.study.equivariance import check_settings, load_equivariance_data, run_equivariance_search

    groups = parse_groups(args.groups)
    planes = args.planes if args.planes is not None else (48 if base_of(groups) == "D4" else 32)
    settings = check_settings(args.method, groups, args.layers, planes, args.epochs, args.lr, args.batch_size,
                              args.trials, args.population, args.generations, args.search_epochs, args.seed)
    check_float(args.max_degrees, "--max-degrees", 0, 180)
    check_seed(args.seed)
    if args.out is not None:
        check_output_file(args.out, "--out")
    study_based = args.method in ("re", "rs")
    if not study_based and (args.study is not None or args.storage is not None):
        raise NasforgeError(f"--study and --storage apply to re and rs (a study per search); {args.method} keeps "
                            "no study: use --out to keep its result")
    torch.set_num_threads(1)
    data = load_equivariance_data(args.dataset, seed=args.seed, max_degrees=args.max_degrees)
    storage = (args.storage or DEFAULT_STORAGE) if study_based else None
    def say(line: str) -> None:  # --quiet keeps only the note that a study is resumed
        if not args.quiet or line.startswith("resuming"):
            print(f"  {line}", flush=True)

    print(f"{args.method} on {data.name} ({len(data.y_train)} train / {len(data.y_val)} val / {len(data.y_test)} "
          f"test images): groups {','.join(settings['groups'])}, {settings['layers']} layers of "
          f"{settings['planes']} planes, {settings['epochs']} epochs per network, seed {settings['seed']}", flush=True)
    out = run_equivariance_search(data, args.method, settings["groups"], settings["layers"], settings["planes"],
                                  settings["epochs"], settings["lr"], settings["batch_size"], settings["trials"],
                                  settings["population"], settings["generations"], settings["search_epochs"],
                                  settings["seed"], compare=args.compare, storage=storage, study_name=args.study,
                                  progress=not args.quiet and study_based, log=say)
    c = out["chosen"]
    rows = [(f"{args.method} (chosen)", c)] + [(f"all {g}", r) for g, r in out.get("uniform", {}).items()]
    print(f"\n  {'network':20s} {'groups (layer 0 -> last)':28s} {'valid acc':>9s} {'test acc':>9s} {'params':>8s}")
    for label, r in rows:
        print(f"  {label:20s} {'/'.join(r['groups']):28s} {r['valid_acc']:8.2f}% {r['test_acc']:8.2f}% "
              f"{r['params']:8,d}")
    if study_based:
        from nasforge.cli.notes import where_written

        print(where_written(out["search"]["study"], storage))
    else:
        print(f"search: {out['search']['cpu_seconds']:.0f} s CPU; the chosen network retrained from scratch")
    if args.out is not None:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)
        print(f"result written to {args.out}")
    return 0
