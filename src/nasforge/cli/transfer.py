"""``nasforge transfer bank`` (what a bank of finished studies holds) and ``nasforge transfer
search`` (a table search that learns from the bank: TNAS or an AutoTransfer design prior)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from nasforge.cli.options import positive_int
from nasforge.errors import NasforgeError, shorten

DEFAULT_STORAGE = "sqlite:///nasforge.db"
METHODS = ("tnas", "prior-re", "prior-random")

EXAMPLES = """a bank is finished studies, e.g.
  nasforge search --benchmark nb201:cifar10 --strategy random --budget 500 --study c10

examples:
  nasforge transfer bank                         # the studies a transfer search can learn from
  nasforge transfer search --benchmark nb201:cifar100 --bank-study c10 --budget 25
  nasforge transfer search --benchmark nbgraph:cora --method prior-re --budget 25   # every usable study
  nasforge transfer emt --task cifar10:0-4 --task cifar10:5-9 --image-size 16   # two tasks at once (EMT-NAS)"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("transfer", help="search a new task using finished studies (TNAS, AutoTransfer priors)",
                       description="Transfer across tasks: finished studies form a bank of meta-training data.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = p.add_subparsers(dest="transfer_command", required=True, metavar="{bank,search,emt}")

    def bank_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--bank", default=None, metavar="URL",
                        help="storage holding the bank's studies (default: --storage)")
        sp.add_argument("--bank-study", dest="bank_studies", action="append", default=None, metavar="NAME",
                        help="a finished study to learn from, repeatable (default: every usable study)")
        sp.add_argument("--storage", default=DEFAULT_STORAGE, help=f"database URL or :memory: (default {DEFAULT_STORAGE})")
        sp.add_argument("--data-dir", default=None, help="reference data folder (default: $NASFORGE_DATA or ../shared/data)")

    b = tsub.add_parser("bank", help="list the bank's tasks: space, benchmark or dataset, metric, trials, best",
                        epilog="examples:\n  nasforge transfer bank\n  nasforge transfer bank --bank-study c10",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    bank_options(b)
    b.add_argument("--metric", default=None, help="metric to optimise (default: the validation metric)")
    b.set_defaults(func=cmd_bank)

    s = tsub.add_parser("search", help="search a table with a meta-model or a prior learnt from the bank",
                        epilog="examples:\n"
                               "  nasforge transfer search --benchmark nb201:cifar100 --bank-study c10 --budget 25\n"
                               "  nasforge transfer search --benchmark nbgraph:cora --method prior-re --budget 25",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    bank_options(s)
    s.add_argument("--benchmark", required=True, help="search a table: nb201:<cifar10|cifar100|path.csv> or nbgraph:<dataset>")
    s.add_argument("--method", choices=METHODS, default="tnas",
                   help="tnas: meta-learned deep-kernel GP; prior-re / prior-random: AutoTransfer design prior "
                        "as the sampler of regularised evolution / random search (default tnas)")
    s.add_argument("--budget", type=positive_int, default=25, help="total trials of the study (default 25)")
    s.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    s.add_argument("--study", default=None, help="study name (default transfer-<method>-<benchmark>-seed<seed>)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_search)

    from nasforge.cli.transfer_emt import add_emt_parser

    add_emt_parser(tsub)


def _bank(args: argparse.Namespace, metric: str | None = None, names: list[str] | None = None) -> Any:
    """The bank (and its storage URL): the studies named by --bank-study (``names`` when none is
    given), read for ``metric``; with neither, every study with complete trials of one metric."""
    from nasforge.transfer import TaskBank

    url = args.bank or args.storage
    chosen = args.bank_studies if args.bank_studies is not None else names
    return TaskBank.from_storage(url, names=chosen, metric=metric if chosen is not None else None,
                                 skip_unusable=chosen is None), url


def cmd_bank(args: argparse.Namespace) -> int:
    bank, url = _bank(args, args.metric)
    if not len(bank):
        print(f"no usable finished studies in {url} (a bank task needs complete trials of one metric)")
        return 0
    from nasforge.cli.hardware import _table

    rows = bank.describe()
    print(f"task bank: {len(rows)} stud{'y' if len(rows) == 1 else 'ies'} in {url}")
    print(_table(list(rows[0]), [list(r.values()) for r in rows]))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from nasforge.cli.main import _print_result
    from nasforge.cli.notes import where_written
    from nasforge.study import create_study, get_storage
    from nasforge.study.study import check_study_name
    from nasforge.study.task import build_task
    from nasforge.transfer import TNAS, MetaSurrogate, PriorSearch

    seed = 0 if args.seed is None else args.seed
    settings = {"benchmark": args.benchmark, "seed": seed, "strategy": args.method}
    task = build_task(settings, args.data_dir, None)
    name = args.study or f"transfer-{args.method}-{task.label.replace(':', '-').replace('/', '_')}-seed{seed}"
    check_study_name(name)
    storage = get_storage(args.storage)
    stored_tasks = None
    if name in storage.study_names():  # resuming: learn from the same studies as before
        from nasforge.study import load_study

        stored_tasks = (load_study(name, storage).config.get("transfer") or {}).get("tasks")
    bank, url = _bank(args, task.metric, stored_tasks)
    tasks = bank.compatible(task.space, task.metric, exclude=[task.label])
    print(f"bank: {len(tasks)} task(s) from {url}: " + ", ".join(f"{t.name} ({t.label}, {len(t)} trials)"
                                                                  for t in tasks))
    t0 = time.perf_counter()
    if args.method == "tnas":
        import torch

        torch.set_num_threads(1)
        meta = MetaSurrogate(task.space, tasks, seed=seed).fit()
        print(f"meta-trained the deep-kernel GP on {len(tasks)} task(s) in {time.perf_counter() - t0:.1f} s")
        strategy: Any = TNAS(task.space, meta, seed=seed, feasible=task.strategy_feasible())
    else:
        strategy = PriorSearch(task.space, tasks, base=args.method.split("-", 1)[1], seed=seed,
                               feasible=task.strategy_feasible())
    settings.update(metric=task.metric, direction="max" if task.maximize else "min")
    study = create_study(name, task.space, task.metric, maximize=task.maximize, storage=storage,
                         config={"search": settings, "transfer": {"bank": url, "tasks": [t.name for t in tasks]}},
                         load_if_exists=True)
    stored = study.config.get("search", {})
    if stored.get("strategy") != args.method or stored.get("benchmark") != args.benchmark:
        raise NasforgeError(f"study {shorten(name)} exists with strategy={stored.get('strategy')!r}, "
                            f"benchmark={stored.get('benchmark')!r}; pick a new --study")
    done = len(study.finished_trials)
    print(f"study {name!r} ({args.storage})\nstrategy {strategy!r}")
    print(f"{task.description}; selecting by {task.metric} ({'max' if task.maximize else 'min'}), reporting "
          f"{task.report}; budget {args.budget} trials" + (f"; resuming after {done} trial(s)" if done else ""))
    t1 = time.perf_counter()
    study.optimize(strategy, task.estimator, n_trials=args.budget, progress=not args.quiet)
    print(f"{len(study.finished_trials) - done} new trial(s) in {time.perf_counter() - t1:.2f} s")
    if isinstance(strategy, PriorSearch) and strategy.neighbours:
        print("prior from: " + ", ".join(f"{n} (distance {d:.2f}, weight {w:.2f})" for n, d, w in strategy.neighbours))
    _print_result(study, task.table, task.report)
    print("\n" + where_written(name, args.storage))
    return 0


__all__ = ["add_parser"]
