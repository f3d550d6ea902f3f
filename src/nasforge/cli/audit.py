"""``nasforge audit ARCH``: how prone an architecture is to backdoors (EVAS's NTK score, and
optionally a short training measuring the attack success rate: ``--train`` / ``--train poisoned``
trains the network and the trigger together on poisoned data, ``--train clean`` is EVAS's protocol,
clean training and then a trigger fitted against the frozen network)."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from nasforge.errors import NasforgeError, check_float, check_int, check_seed


def add_parser(sub: Any) -> None:
    a = sub.add_parser(
        "audit", help="backdoor proneness of one architecture (EVAS NTK score; --train: attack success rate)",
        description="Score ARCH's backdoor proneness: the condition number of the NTK of an input-aware trigger "
                    "generator through the untrained network (EVAS; lower = the trigger is learnt more easily), "
                    "placed among random architectures of the space; with --train (= --train poisoned), train the "
                    "network and the trigger together on poisoned data; with --train clean (EVAS's protocol), train "
                    "the network on clean data only, freeze it, then fit the trigger against it; either way report "
                    "clean accuracy and attack success rate.")
    a.add_argument("arch", help="the architecture, in the space's text form")
    a.add_argument("--space", default="nb201", help="search space of ARCH (default nb201)")
    a.add_argument("--dataset", default="digits", help="digits, cifar10, a .npz file or an image folder (default digits)")
    a.add_argument("--C", type=int, default=None, help="NB201: channels of the first stage (default 8)")
    a.add_argument("--N", type=int, default=None, help="cells per stage (default 1)")
    a.add_argument("--repeats", type=int, default=3, help="initialisations scored, median taken (default 3)")
    a.add_argument("--reference", type=int, default=10,
                   help="random architectures scored for comparison (default 10; 0: none)")
    a.add_argument("--train", nargs="?", const="poisoned", default=None, choices=("poisoned", "clean"),
                   help="also train and measure attack success: poisoned (the default when no value is given: "
                        "network and trigger trained together on poisoned data) or clean (EVAS: clean training, "
                        "then the trigger fitted against the frozen network)")
    a.add_argument("--trigger-epochs", dest="trigger_epochs", type=int, default=None,
                   help="--train clean: epochs fitting the trigger against the trained network (default 10)")
    a.add_argument("--epochs", type=int, default=None, help="epochs of the poisoned training (default 10)")
    a.add_argument("--poison-rate", dest="poison_rate", type=float, default=0.1,
                   help="share of each training batch carrying the trigger (default 0.1)")
    a.add_argument("--mask-area", dest="mask_area", type=float, default=0.1,
                   help="share of each image the trigger covers (default 0.1)")
    a.add_argument("--target", type=int, default=0, help="the attack's target class (default 0)")
    a.add_argument("--seed", type=int, default=0, help="seed of the batch, the weights and the data order (default 0)")
    a.add_argument("--json", action="store_true", help="print the result as JSON")
    a.add_argument("--data-dir", default=None, help="reference data folder (default: $NASFORGE_DATA or ../shared/data)")
    a.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    seed = check_seed(args.seed, "--seed")
    repeats = check_int(args.repeats, "--repeats", 1)
    n_ref = check_int(args.reference, "--reference", 0)
    epochs = check_int(args.epochs if args.epochs is not None else 10, "--epochs", 1)
    poison = check_float(args.poison_rate, "--poison-rate", 0, 1, low_open=True, high_open=True)
    area = check_float(args.mask_area, "--mask-area", 0, 1, low_open=True)
    trigger_epochs = check_int(args.trigger_epochs if args.trigger_epochs is not None else 10, "--trigger-epochs", 1)
    if args.train != "clean" and args.trigger_epochs is not None:
        raise NasforgeError("--trigger-epochs applies to --train clean only")
    import numpy as np
    import torch

    from nasforge.data import load_dataset
    from nasforge.estimation.backdoor import BackdoorEstimator, clean_training_attack, poisoned_training
    from nasforge.spaces import get_space

    space = get_space(args.space)
    arch = space.parse(args.arch)
    data = load_dataset(args.dataset, data_dir=args.data_dir)
    if data.kind != "image":
        raise NasforgeError(f"audit needs image data; dataset {args.dataset!r} holds vectors")
    if not 0 <= args.target < data.num_classes:
        raise NasforgeError(f"bad --target {args.target}: dataset {data.name!r} has classes 0..{data.num_classes - 1}")
    net: dict[str, Any] = {"C": 8, "N": 1} if space.name == "nb201" else {}
    if args.C is not None:
        net["C"] = check_int(args.C, "--C", 1)
    if args.N is not None:
        net["N"] = check_int(args.N, "--N", 1)
    torch.set_num_threads(1)
    est = BackdoorEstimator(space, data, repeats=repeats, seed=seed, net=net)
    m = est.estimate(arch).metrics
    out: dict[str, Any] = {"arch": space.format(arch), "space": space.name, "dataset": data.name, "net": net,
                           "kappa_trigger": m["kappa_trigger"], "kappa_clean": m["kappa_clean"]}
    if n_ref:
        rng = np.random.default_rng(seed)
        ref = [est.estimate(space.sample(rng)).metrics["kappa_trigger"] for _ in range(n_ref)]
        out["reference_kappa_trigger"] = ref
        out["more_prone_than"] = float(np.mean([r > m["kappa_trigger"] for r in ref]))
    if args.train == "poisoned":
        model = est.build(arch, 0)
        out["poisoned_training"] = {"epochs": epochs, "poison_rate": poison, "mask_area": area, "target": args.target,
                                    **poisoned_training(model, data, epochs=epochs, poison_rate=poison,
                                                        target=args.target, mask_budget=area, seed=seed)}
    elif args.train == "clean":
        model = est.build(arch, 0)
        out["clean_training"] = {"epochs": epochs, "trigger_epochs": trigger_epochs, "mask_area": area,
                                 "target": args.target,
                                 **clean_training_attack(model, data, epochs=epochs, trigger_epochs=trigger_epochs,
                                                         target=args.target, mask_budget=area, seed=seed)}
    if args.json:
        def finite(v: Any) -> Any:  # an infinite condition number (a singular NTK) is written as null
            if isinstance(v, float):
                return v if math.isfinite(v) else None
            if isinstance(v, dict):
                return {k: finite(x) for k, x in v.items()}
            return [finite(x) for x in v] if isinstance(v, list) else v

        print(json.dumps(finite(out), indent=2))
        return 0
    print(f"architecture  {out['arch']}  ({space.name}, {data.name}, net {net})")
    print(f"kappa_trigger {m['kappa_trigger']:.4g}   NTK condition number through the trigger generator "
          f"(median of {repeats}; lower = more backdoor-prone)")
    print(f"kappa_clean   {m['kappa_clean']:.4g}   NTK condition number on clean inputs (lower = trains more easily)")
    if n_ref:
        ref = sorted(out["reference_kappa_trigger"])
        print(f"more prone than {100 * out['more_prone_than']:.0f}% of {n_ref} random architectures "
              f"(their kappa_trigger: median {float(np.median(ref)):.4g}, range {ref[0]:.4g}..{ref[-1]:.4g})")
    if args.train == "poisoned":
        p = out["poisoned_training"]
        print(f"poisoned training ({epochs} epochs, {100 * poison:g}% poisoned, trigger on {100 * area:g}% of each "
              f"image, target {args.target}): clean accuracy {p['clean_acc']:.2f}%, attack success rate "
              f"{p['asr']:.2f}%")
    elif args.train == "clean":
        p = out["clean_training"]
        print(f"clean training ({epochs} epochs, nothing poisoned), then the trigger fitted {trigger_epochs} epochs "
              f"against the frozen network (trigger on {100 * area:g}% of each image, target {args.target}): "
              f"clean accuracy {p['clean_acc']:.2f}%, attack success rate {p['asr']:.2f}%")
    return 0
