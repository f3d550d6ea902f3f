"""``nasforge supernet train|rank|search``: weight-sharing supernets from the command line.

A *run directory* holds one supernet: ``run.json`` (its settings), trainer checkpoints
(``root.ckpt``, ``split/<node>.pt``), and ``final.pt`` once training is complete. Running the same
``train`` command again resumes where it stopped; ``rank`` and ``search`` read the finished run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Any

from nasforge.cli.options import parse_top_k
from nasforge.errors import NasforgeError

#: settings of a run and their defaults (None: chosen from the data)
TRAIN_DEFAULTS: dict[str, Any] = {
    "dataset": "digits", "n_train": None, "image_size": None, "C": 8, "N": 1, "sampler": "uniform", "steps": 2000,
    "batch_size": 64, "lr": 0.05, "weight_decay": 5e-4, "seed": 0, "split": "none", "levels": 1, "split_edge": None,
    "root_fraction": 0.5,
}
SPLIT_CHOICES = ("none", "fewshot", "lid", "gradient")


def add_parser(sub: Any) -> None:
    """Add ``supernet`` with its ``train``, ``rank`` and ``search`` sub-commands."""
    sp = sub.add_parser("supernet", help="train weight-sharing supernets; rank or search with inherited weights",
                        description="One-shot NAS on NB201: train a supernet (SPOS, FairNAS, PA&DA samplers; "
                                    "few-shot, NAS-LID or gradient-matching splits), rank cells against a benchmark "
                                    "table, or search with a strategy using inherited weights.")
    ssub = sp.add_subparsers(dest="supernet_command", metavar="{train,rank,search}", parser_class=type(sp))
    ssub.required = True

    def run_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--run", required=True, help="run directory (settings, checkpoints, final supernet)")
        p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: best on a shared CPU)")
        p.add_argument("--data-dir", default=None, help="reference data folder (default: $NASFORGE_DATA or ../shared/data)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    t = ssub.add_parser("train", help="train (or resume) a supernet",
                        description="Train a supernet for a fixed budget of path passes (one forward/backward of "
                                    "one path on one batch). Re-run the same command to resume.")
    run_arg(t)
    t.add_argument("--dataset", default=None, help="digits, cifar10, a .npz file or an image folder (default digits)")
    t.add_argument("--n-train", dest="n_train", type=int, default=None,
                   help="cifar10: images to load (5/6 train, 1/6 held back for ranking)")
    t.add_argument("--image-size", dest="image_size", type=int, default=None,
                   help="average-pool images to this side (e.g. 16 for CIFAR-10 on a CPU)")
    t.add_argument("--C", type=int, default=None, help="channels of the first stage (default 8)")
    t.add_argument("--N", type=int, default=None, help="cells per stage (default 1)")
    t.add_argument("--sampler", default=None, help="uniform (SPOS), fairnas, pada, pada-path, pada-data (default uniform)")
    t.add_argument("--steps", type=int, default=None, help="budget in path passes, splits included (default 2000)")
    t.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="default 64")
    t.add_argument("--lr", type=float, default=None, help="peak learning rate, cosine schedule (default 0.05)")
    t.add_argument("--weight-decay", dest="weight_decay", type=float, default=None, help="default 5e-4")
    t.add_argument("--seed", type=int, default=None, help="default 0")
    t.add_argument("--split", default=None, choices=SPLIT_CHOICES,
                   help="few-shot splitting after the root supernet: fewshot (one sub-supernet per op of one edge), "
                        "lid (NAS-LID), gradient (gradient matching); default none")
    t.add_argument("--levels", type=int, default=None, help="lid/gradient: 2-way split levels, 1 or 2 (default 1)")
    t.add_argument("--split-edge", dest="split_edge", type=int, default=None,
                   help="edge to split (0-5); default: fewshot edge 0, lid/gradient choose")
    t.add_argument("--root-fraction", dest="root_fraction", type=float, default=None,
                   help="share of the budget spent on the root supernet before splitting (default 0.5)")
    t.add_argument("--checkpoint-every", dest="checkpoint_every", type=int, default=200,
                   help="steps between checkpoints (default 200)")
    t.set_defaults(func=cmd_train)

    r = ssub.add_parser("rank", help="score random cells with inherited weights; correlate with a benchmark",
                        description="Score a fixed random sample of cells (BatchNorm recalibrated per cell, accuracy "
                                    "on held-back images). Rows are appended to --out as they are computed. With "
                                    "--benchmark, print Kendall tau, Spearman rho, top-k precision and the top-1 pick.")
    run_arg(r)
    r.add_argument("--n", type=int, default=200, help="random cells to score (default 200)")
    r.add_argument("--sample-seed", dest="sample_seed", type=int, default=0, help="seed of the sample (default 0)")
    r.add_argument("--benchmark", default=None, help="table to correlate with, e.g. nb201:cifar10")
    r.add_argument("--metrics", default="test_acc_200,valid_acc_200",
                   help="benchmark columns to correlate with (default test_acc_200,valid_acc_200)")
    r.add_argument("--top-k", dest="top_k", default="10%", help="top-k precision cut(s): counts or percentages")
    eval_args(r)
    r.add_argument("--out", default=None, help="scores CSV (default RUN/rank-n<N>-seed<S>.csv)")
    r.set_defaults(func=cmd_rank)

    s = ssub.add_parser("search", help="search cells with a strategy, scored by the supernet",
                        description="Run a search strategy whose estimator is the trained supernet (inherited "
                                    "weights, BatchNorm recalibrated per cell). The study persists in --storage.")
    run_arg(s)
    s.add_argument("--strategy", default="re", help="random, re, ls, bo, ... (default re)")
    s.add_argument("--budget", type=int, default=100, help="architectures to evaluate (default 100)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--param", action="append", metavar="KEY=VALUE", help="strategy setting, e.g. population_size=20")
    s.add_argument("--benchmark", default=None, help="report the pick's true metrics from this table")
    s.add_argument("--storage", default=":memory:", help="database URL or :memory: (default :memory:)")
    s.add_argument("--study", default=None, help="study name (default supernet-<run>-<strategy>-seed<seed>)")
    eval_args(s)
    s.set_defaults(func=cmd_search)


def eval_args(p: argparse.ArgumentParser) -> None:
    from nasforge.oneshot.evaluate import BN_BATCH_SIZE, BN_BATCHES

    p.add_argument("--bn-batches", dest="bn_batches", type=int, default=BN_BATCHES,
                   help=f"training batches for BatchNorm recalibration (default {BN_BATCHES})")
    p.add_argument("--bn-batch-size", dest="bn_batch_size", type=int, default=BN_BATCH_SIZE,
                   help=f"their size (default {BN_BATCH_SIZE})")
    p.add_argument("--n-eval", dest="n_eval", type=int, default=None, help="held-back images per cell (default all)")


# --- run directory ----------------------------------------------------------------------------
def _settings(args: argparse.Namespace, run: Path) -> dict[str, Any]:
    stored: dict[str, Any] = {}
    f = run / "run.json"
    if f.is_file():
        stored = json.loads(f.read_text())
    out: dict[str, Any] = {}
    for key, default in TRAIN_DEFAULTS.items():
        given = getattr(args, key, None)
        if given is not None and key in stored and stored[key] != given:
            raise NasforgeError(f"run {run} was created with --{key.replace('_', '-')} {stored[key]}; it cannot resume "
                                f"with {given} (omit the option, or choose another --run)")
        out[key] = given if given is not None else stored.get(key, default)
    return out


def _load_data(settings: dict[str, Any], data_dir: str | None) -> Any:
    from nasforge.data import load_dataset
    from nasforge.oneshot import downsample

    name = settings["dataset"]
    kwargs: dict[str, Any] = {}
    if name == "cifar10":
        kwargs["val_fraction"] = 1 / 6
        if settings.get("n_train"):
            kwargs["n_train"] = int(settings["n_train"])
    elif settings.get("n_train"):
        raise NasforgeError("--n-train applies to cifar10 only")
    ds = load_dataset(name, seed=int(settings["seed"]), data_dir=data_dir, **kwargs)
    if ds.kind != "image":
        raise NasforgeError(f"the NB201 supernet needs images; dataset {name!r} holds vectors")
    if settings.get("image_size"):
        ds = downsample(ds, int(settings["image_size"]))
    return ds


def _validate(st: dict[str, Any]) -> None:
    from nasforge.oneshot.samplers import SAMPLERS, _ALIASES

    if _ALIASES.get(st["sampler"], st["sampler"]) not in SAMPLERS:
        raise NasforgeError(f"unknown sampler {st['sampler']!r}; allowed: {', '.join(SAMPLERS)}")
    if st["split"] not in SPLIT_CHOICES:
        raise NasforgeError(f"unknown split {st['split']!r}; allowed: {', '.join(SPLIT_CHOICES)}")
    if st["levels"] not in (1, 2):
        raise NasforgeError(f"--levels must be 1 or 2, got {st['levels']}")
    if st["split"] == "fewshot" and st["levels"] != 1:
        raise NasforgeError("--split fewshot uses one level (one sub-supernet per operation)")
    if st["split"] != "none" and not 0.0 < float(st["root_fraction"]) < 1.0:
        raise NasforgeError(f"--root-fraction must lie in (0, 1), got {st['root_fraction']}")
    if st["split_edge"] is not None and not 0 <= int(st["split_edge"]) <= 5:
        raise NasforgeError(f"--split-edge must lie in 0..5, got {st['split_edge']}")
    for k in ("steps", "batch_size", "C", "N"):
        if int(st[k]) < 1:
            raise NasforgeError(f"--{k.replace('_', '-')} must be >= 1, got {st[k]}")


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from nasforge.estimation.training import arch_seed
    from nasforge.oneshot import SupernetTrainer, build_supernet, make_sampler
    from nasforge.oneshot.fewshot import grow_splits, split_steps

    torch.set_num_threads(max(1, args.threads))
    run = Path(args.run)
    st = _settings(args, run)
    _validate(st)
    run.mkdir(parents=True, exist_ok=True)
    tmp = run / "run.json.tmp"
    tmp.write_text(json.dumps(st, indent=1))
    os.replace(tmp, run / "run.json")
    if (run / "final.pt").is_file():
        print(f"{run}: training is complete (final.pt); rank or search with it")
        return 0
    ds = _load_data(st, args.data_dir)
    sampler = make_sampler(st["sampler"])
    group = sampler.group_size
    total = int(st["steps"])
    split = st["split"] != "none"
    root_passes = int(round(total * float(st["root_fraction"]))) if split else total
    if root_passes < group:
        raise NasforgeError(f"a budget of {total} path passes is too small for sampler {sampler.name!r}")
    model = build_supernet(ds, C=int(st["C"]), N=int(st["N"]), seed=int(st["seed"]))
    common = dict(batch_size=int(st["batch_size"]), lr=float(st["lr"]), weight_decay=float(st["weight_decay"]),
                  checkpoint_every=args.checkpoint_every)
    root_sched = (0.0, float(st["root_fraction"])) if split else (0.0, 1.0)
    trainer = SupernetTrainer(model, sampler, ds.x_train, ds.y_train, steps=root_passes // group, seed=int(st["seed"]),
                              schedule=root_sched, checkpoint=run / "root.ckpt", **common)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{ds!r}; NB201 supernet C={st['C']}, N={st['N']} ({n_params:,} weights)")
    print(f"sampler {sampler!r}: {trainer.steps} steps x {group} path(s) = {trainer.steps * group} path passes"
          + (f", then {st['split']} split ({st['levels']} level(s)) with the remaining {total - root_passes}" if split else ""))
    if (run / "root.ckpt").is_file():
        print(f"resuming from {run / 'root.ckpt'}")
    t0 = time.perf_counter()
    r = trainer.train(progress=not args.quiet, desc="supernet")
    print(f"root supernet: {int(r['step'])} steps, loss {r['loss']:.3f}, {r['seconds']:.1f} s of training")
    final: dict[str, Any]
    if split:
        parts = [5] if st["split"] == "fewshot" else [2, 4][: int(st["levels"])]
        per_part = split_steps(total - root_passes, parts)
        g = torch.Generator().manual_seed(arch_seed(int(st["seed"]), "split-batch"))
        pick = torch.randperm(len(ds.y_train), generator=g)[: min(128, len(ds.y_train))]
        xs, ys = torch.from_numpy(ds.x_train)[pick], torch.from_numpy(ds.y_train)[pick]

        def make(child: Any, passes: int, sched: tuple[float, float], node: str) -> Any:
            s = make_sampler(st["sampler"], allowed=child.allowed)
            return SupernetTrainer(child, s, ds.x_train, ds.y_train, steps=max(1, passes // s.group_size),
                                   seed=arch_seed(int(st["seed"]), node), schedule=sched,
                                   checkpoint=run / "split" / f"{node}.pt", **common)

        edge = st["split_edge"] if st["split_edge"] is not None else (0 if st["split"] == "fewshot" else None)
        fam, decisions = grow_splits(trainer.model, make, xs, ys, criterion=st["split"], levels=int(st["levels"]),
                                     steps=per_part, schedule_start=root_sched[1],
                                     root_optimizer=trainer.optimizer.state_dict(), edge=edge, seed=int(st["seed"]),
                                     workdir=run / "split", log=print)
        for line in fam.describe():
            print(f"  {line}")
        final = {"kind": "split", "supernets": fam.state_dict(), "decisions": json.dumps(decisions)}
    else:
        final = {"kind": "supernet", "config": model.config, "state": model.state_dict()}
    final["settings"] = json.dumps(st)
    tmpf = run / "final.pt.tmp"
    torch.save(final, tmpf)
    os.replace(tmpf, run / "final.pt")
    print(f"done in {time.perf_counter() - t0:.1f} s; supernet saved to {run / 'final.pt'}")
    return 0


def load_run(run: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """The trained supernet (or split supernet) of a run directory, and the run's settings."""
    import torch

    from nasforge.oneshot import NB201Supernet, SplitSupernet

    f = Path(run) / "final.pt"
    if not f.is_file():
        hint = " (training has not finished: run `nasforge supernet train` with it)" if Path(run).is_dir() else ""
        raise NasforgeError(f"no trained supernet in {run}{hint}")
    blob = torch.load(f, map_location="cpu", weights_only=True)
    settings = json.loads(blob["settings"])
    if blob["kind"] == "split":
        return SplitSupernet.from_state_dict(blob["supernets"]), settings
    net = NB201Supernet(**blob["config"])
    net.load_state_dict(blob["state"])
    return net, settings



def cmd_rank(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from nasforge.oneshot import PathEvaluator, sample_archs

    torch.set_num_threads(max(1, args.threads))
    top_k = parse_top_k(args.top_k)
    supernets, st = load_run(args.run)
    bench = None
    metrics: list[str] = []
    if args.benchmark is not None:
        from nasforge.estimation import load_benchmark

        bench = load_benchmark(args.benchmark, data_dir=args.data_dir)
        if bench.space.name != "nb201":
            raise NasforgeError(f"benchmark {bench.name} is on space {bench.space.name!r}; the supernet is NB201")
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        for m in metrics:
            bench.column(m)  # validates
    ds = _load_data(st, args.data_dir)
    ev = PathEvaluator(supernets, ds, bn_batches=args.bn_batches, bn_batch_size=args.bn_batch_size, n_eval=args.n_eval)
    archs = sample_archs(args.n, args.sample_seed)
    out = Path(args.out) if args.out else Path(args.run) / f"rank-n{args.n}-seed{args.sample_seed}.csv"
    header = ["arch", "acc", "loss", "seconds", "bn_batches", "bn_batch_size", "n_eval"]
    key = {"bn_batches": str(args.bn_batches), "bn_batch_size": str(args.bn_batch_size), "n_eval": str(len(ev.y))}
    done: dict[str, dict[str, str]] = {}
    if out.is_file():
        with out.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if all(row.get(k) == v for k, v in key.items()):
                    done[row["arch"]] = row
    todo = [a for a in archs if str(a) not in done]
    print(f"{out}: {len(archs) - len(todo)} of {len(archs)} cells already scored; BN recalibration on "
          f"{args.bn_batches} x {args.bn_batch_size} training images, accuracy on {len(ev.y)} held-back images")
    if todo:
        new_file = not out.is_file()
        bar = None
        if not args.quiet:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(archs), initial=len(archs) - len(todo), desc="rank", unit="cell", dynamic_ncols=True)
        with out.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=header)
            if new_file:
                w.writeheader()
            for a in todo:
                r = ev.score(a)
                row = {"arch": str(a), "acc": f"{r['acc']:.4f}", "loss": f"{r['loss']:.6f}", "seconds": f"{r['seconds']:.4f}",
                       **key}
                w.writerow(row)
                fh.flush()
                done[str(a)] = row
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
    acc = np.array([float(done[str(a)]["acc"]) for a in archs])
    loss = np.array([float(done[str(a)]["loss"]) for a in archs])
    secs = np.array([float(done[str(a)]["seconds"]) for a in archs])
    print(f"mean cost {secs.mean():.3f} s per cell; supernet accuracy {acc.mean():.2f}% (min {acc.min():.2f}, "
          f"max {acc.max():.2f})")
    best = int(np.argmax(acc - 1e-6 * loss))
    print(f"top-1 by the supernet: {archs[best]} ({acc[best]:.2f}%)")
    if bench is not None:
        from nasforge.analysis.correlation import kendall_tau, spearman, top_k_precision

        print(f"\n{bench.name}: supernet accuracy vs table, {len(archs)} cells")
        head = ["metric", "Kendall tau", "Spearman rho"] + [
            f"top-{k * 100:g}%" if k < 1 else f"top-{int(k)}" for k in top_k] + ["top-1 pick", "best of sample"]
        rows = []
        for m in metrics:
            t = np.array([bench.query(a, m) for a in archs])
            rows.append([m, f"{kendall_tau(acc, t):.3f}", f"{spearman(acc, t):.3f}"]
                        + [f"{top_k_precision(acc, t, k):.2f}" for k in top_k] + [f"{t[best]:.2f}", f"{t.max():.2f}"])
        widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
        for r in [head] + rows:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    import torch

    from nasforge.cli.main import _parse_params
    from nasforge.oneshot import SupernetEstimator
    from nasforge.spaces import NB201Space
    from nasforge.strategies import get_strategy
    from nasforge.study import Study, get_storage

    torch.set_num_threads(max(1, args.threads))
    supernets, st = load_run(args.run)
    ds = _load_data(st, args.data_dir)
    est = SupernetEstimator(supernets, ds, bn_batches=args.bn_batches, bn_batch_size=args.bn_batch_size,
                            n_eval=args.n_eval)
    space = NB201Space()
    strategy = get_strategy(args.strategy, space, seed=args.seed, **_parse_params(args.param))
    name = args.study or f"supernet-{Path(args.run).name}-{args.strategy}-seed{args.seed}"
    study = Study(name, space, "valid_acc", maximize=True, storage=get_storage(args.storage),
                  config={"supernet": {"run": str(Path(args.run).resolve()), "strategy": args.strategy,
                                      "seed": args.seed}})
    print(f"study {name!r}: {strategy!r} on {est!r}")
    t0 = time.perf_counter()
    study.optimize(strategy, est, n_trials=args.budget, progress=not args.quiet)
    best = study.best_trial
    print(f"{len(study.finished_trials)} trial(s), {time.perf_counter() - t0:.1f} s")
    if best is None:
        print("no complete trial")
        return 1
    print(f"best by supernet valid_acc: {best.arch} ({best.value:.2f}%)")
    if args.benchmark is not None:
        from nasforge.estimation import load_benchmark

        bench = load_benchmark(args.benchmark, data_dir=args.data_dir)
        for m in dict.fromkeys([bench.default_metric, bench.report_metric, "test_acc_200"]):
            if m is None:
                continue
            try:
                value = bench.query(best.arch, m)
            except NasforgeError:
                continue
            _, opt = bench.optimum(m, maximize=True)
            print(f"  {bench.name} {m} = {value:.2f} (table optimum {opt:.2f}; "
                  f"{bench.fraction_better(m, value):.2f}% of the cells are better)")
    return 0
