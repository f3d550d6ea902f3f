"""``nasforge energy search``: energy-aware joint architecture x hyperparameter search
(EA-HAS-Bench, Dou et al., ICLR 2023) from the command line. A thin face over
:mod:`nasforge.study.energy`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from nasforge.cli.examples import section
from nasforge.cli.options import finite_float
from nasforge.errors import check_float, check_int, check_output_file, check_seed

EXAMPLES = [
    "nasforge energy search --strategy re --energy-weight -0.3 --energy-budget 150",
    "nasforge energy search --strategy bohb --energy-weight -0.07 --energy-budget 300 --study ea-bohb",
    "nasforge energy search --strategy hb --energy-weight 0 --hp epochs=2,4,8 --hp batch_size=64 --energy-budget 60",
]


def add_parser(sub: Any) -> None:
    """Add ``energy`` with its ``search`` sub-command."""
    from nasforge.estimation.energy import POWER_METHODS
    from nasforge.study.energy import STRATEGIES

    ep = sub.add_parser("energy", help="energy-aware architecture x training-hyperparameter search",
                        description="EA-HAS-Bench-style search (Dou et al., ICLR 2023): an NB201 cell x training "
                                    "hyperparameters, every configuration trained for real with its training "
                                    "energy measured, searched under a search-energy budget.",
                        epilog=section(EXAMPLES[:2]), formatter_class=argparse.RawDescriptionHelpFormatter)
    esub = ep.add_subparsers(dest="energy_command", metavar="{search}", parser_class=type(ep))
    esub.required = True
    s = esub.add_parser(
        "search", help="search cells and training hyperparameters under an energy budget",
        description="Search an NB201 cell and its training hyperparameters on real training until the trials have "
                    "spent --energy-budget joules. Energy: RAPL package counters where readable, else a declared "
                    "power per busy core x CPU time (printed). --energy-weight w < 0 searches "
                    "ea_score = valid_acc x (E / target)^w, E the configuration's full training energy (the "
                    "energy-aware version); 0 searches valid_acc. Prints the chosen configuration (test accuracy "
                    "reported, not used to select), the search energy and the accuracy-energy front of the "
                    "configurations trained in full; the study is kept (resumed by the same command).",
        epilog=section(EXAMPLES), formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--strategy", required=True, choices=list(STRATEGIES),
                   help="rs (random), re (regularised evolution), hb (Hyperband), bohb (Hyperband + TPE)")
    s.add_argument("--energy-weight", dest="energy_weight", type=finite_float, default=-0.07,
                   help="exponent w of the energy-aware score, in [-5, 0] (default -0.07, MnasNet's; 0: plain)")
    s.add_argument("--energy-budget", dest="energy_budget", type=finite_float, default=150.0,
                   help="search energy budget in joules: training energy of all trials (default 150)")
    s.add_argument("--target-energy", dest="target_energy", type=finite_float, default=10.0,
                   help="energy (J) at which ea_score equals valid_acc (default 10)")
    s.add_argument("--hp", action="append", metavar="KEY=V1,V2",
                   help="a hyperparameter's values (repeatable): optimizer, lr or lr_scale, batch_size, epochs, "
                        "weight_decay, label_smoothing; default optimizer=sgd,adamw lr_scale=0.3,1,3 "
                        "batch_size=32,128 epochs=3,6,12; KEY= drops a default one")
    s.add_argument("--dataset", default="digits", help="digits, mnist1d, a .npz file or an image folder (default digits)")
    s.add_argument("--n-train", dest="n_train", type=int, default=None,
                   help="digits: training images, the rest split evenly between validation and test (default 200)")
    s.add_argument("--C", type=int, default=8, help="channels of the first NB201 stage (default 8)")
    s.add_argument("--N", type=int, default=1, help="NB201 cells per stage (default 1)")
    s.add_argument("--power", default="auto", choices=list(POWER_METHODS),
                   help="energy: RAPL counters, declared power x CPU time, or auto (RAPL where readable)")
    s.add_argument("--watts-per-core", dest="watts_per_core", type=finite_float, default=10.0,
                   help="declared power of a busy core, for cpu_time energy (default 10 W)")
    s.add_argument("--ref-energy", dest="ref_energy", type=finite_float, default=40.0,
                   help="reference energy (J) of the front's hypervolume, with 0 %% accuracy (default 40)")
    s.add_argument("--seed", type=int, default=0, help="strategy, data split and initial weights (default 0)")
    s.add_argument("--study", default=None, help="study name (default energy-<strategy>-w<weight>-<seed>)")
    s.add_argument("--storage", default=None, help="where the study is kept (default sqlite:///nasforge.db)")
    s.add_argument("--data-dir", dest="data_dir", default=None, help="reference data folder")
    s.add_argument("--out", default=None, help="write the result (JSON) to this file")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    import torch

    from nasforge.cli.main import DEFAULT_STORAGE
    from nasforge.study.energy import energy_task, load_energy_data, parse_hyperparameters, run_energy_search

    hp = parse_hyperparameters(args.hp)
    check_float(args.energy_weight, "--energy-weight", -5.0, 0.0)
    check_float(args.energy_budget, "--energy-budget", 0, low_open=True)
    check_float(args.target_energy, "--target-energy", 0, low_open=True)
    check_float(args.watts_per_core, "--watts-per-core", 0, low_open=True)
    check_float(args.ref_energy, "--ref-energy", 0, low_open=True)
    check_int(args.C, "--C", 1)
    check_int(args.N, "--N", 1)
    check_seed(args.seed)
    if args.out is not None:
        check_output_file(args.out, "--out")
    n_train = args.n_train if args.n_train is not None else (200 if args.dataset == "digits" else None)
    torch.set_num_threads(1)
    data = load_energy_data(args.dataset, n_train=n_train, seed=args.seed, data_dir=args.data_dir)
    space, est = energy_task(data, hp, C=args.C, N=args.N, seed=args.seed, power=args.power,
                             watts_per_core=args.watts_per_core)
    storage = args.storage or DEFAULT_STORAGE
    print(f"{args.strategy} (energy weight {args.energy_weight:g}) on {data.name}: NB201 C={args.C} N={args.N} x "
          + " x ".join(f"{k} {{{', '.join(map(str, v))}}}" for k, v in hp.items())
          + f" ({len(space):,} configurations); energy budget {args.energy_budget:g} J; energy: {est.meter.describe()}",
          flush=True)
    settings = {"dataset": data.name, "n_train": n_train, "C": args.C, "N": args.N, "hp": hp, "power": est.meter.method,
                "watts_per_core": args.watts_per_core}
    out = run_energy_search(space, est, args.strategy, args.energy_budget, weight=args.energy_weight,
                            target_j=args.target_energy, seed=args.seed, storage=storage, study_name=args.study,
                            ref_energy_j=args.ref_energy, progress=not args.quiet, settings=settings)
    b = out["best"]
    print(f"\nchosen (best {out['metric']}): {b['config']}")
    print(f"  valid_acc {b['valid_acc']:.2f} %  test_acc {b['test_acc']:.2f} %  full training energy "
          f"{b['full_train_energy_j']:.2f} J" + (f"  ea_score {b['ea_score']:.2f}" if b.get("ea_score") else "")
          + (f"  (trained {b['epochs']:g} of its {b['config_epochs']:g} epochs)"
             if b.get("epochs") is not None and b.get("epochs") != b.get("config_epochs") else ""))
    print(f"search: {out['trials']} trials, {out['search_energy_j']:.1f} J of training energy")
    print(f"accuracy-energy front of the configurations trained in full ({len(out['front'])}; hypervolume "
          f"{out['hypervolume']:.2f} up to (0 %, {args.ref_energy:g} J), %·J/100):")
    for r in out["front"]:
        print(f"  {r['full_train_energy_j']:7.2f} J  valid {r['valid_acc']:6.2f} %  test {r['test_acc']:6.2f} %  "
              f"{r['config']}")
    from nasforge.cli.notes import where_written

    print(where_written(out["study"], storage))
    if args.out is not None:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)
        print(f"result written to {args.out}")
    return 0
