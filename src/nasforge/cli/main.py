"""The ``nasforge`` command line: search, show, bench."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from nasforge import __version__
from nasforge.errors import NasforgeError, check_int, check_output_file, check_seed, check_work_dir, shorten, unknown
from nasforge.cli.options import finite_float, parse_key_values, positive_int

DEFAULT_STORAGE = "sqlite:///nasforge.db"
DEFAULT_WORKDIR = "nasforge_runs"
DEFAULT_DATASET = "digits"  # = nasforge.study.task.DEFAULT_DATASET (not imported: parsing stays light)


# --- small helpers ---------------------------------------------------------------------------
def _parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    return parse_key_values(items, "--param", "population_size=20")


def _int_list(text: str, what: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise NasforgeError(f"bad {what} {text!r}: expected comma-separated whole numbers") from None
    if not vals or any(v < 1 for v in vals):
        raise NasforgeError(f"bad {what} {text!r}: expected positive whole numbers")
    return vals


def _float_list(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise NasforgeError(f"bad {what} {text!r}: expected comma-separated numbers") from None
    if not vals or any(not v > 0 for v in vals):
        raise NasforgeError(f"bad {what} {text!r}: expected positive numbers")
    return vals


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[f"{c:.4f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _maximize(bench: Any, metric: str, direction: str | None) -> bool:
    if direction is not None:
        return direction == "max"
    return bench.higher_is_better(metric)


# --- search -----------------------------------------------------------------------------------
#: how a search runs its evaluations (not stored: processes sharing a study may differ)
EXECUTORS = ("thread", "process", "ray")


def _given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The search settings the command line gives (``None``: not given)."""
    from nasforge.study.task import SEARCH_KEYS

    given = {k: getattr(args, k, None) for k in SEARCH_KEYS}
    given["params"] = _parse_params(args.param) if args.param else None
    if getattr(args, "kernel", None) is not None:  # --kernel K is short for --param kernel=K (strategy bo)
        if (given["params"] or {}).get("kernel", args.kernel) != args.kernel:
            raise NasforgeError(f"--kernel {args.kernel} conflicts with --param kernel={given['params']['kernel']}")
        given["params"] = {**(given["params"] or {}), "kernel": args.kernel}
    if given["benchmark"] is not None and given["dataset"] is not None:
        raise NasforgeError("give either --benchmark (a table) or --dataset (real training), not both")
    return given


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """How evaluations run: workers, executor and Ray address (``Study.optimize`` keywords)."""
    executor, address = args.executor, args.ray_address
    if address is not None:
        if executor not in (None, "ray"):
            raise NasforgeError(f"--ray-address needs --executor ray, not --executor {executor}")
        executor = "ray"
    if executor is None and args.workers > 1:
        executor = "process"
    return {"n_workers": args.workers, "executor": executor, "ray_address": address}


def cmd_search(args: argparse.Namespace) -> int:
    from nasforge.estimation.constraints import bind_constraints
    from nasforge.strategies import get_strategy
    from nasforge.study import create_study, get_storage, load_study
    from nasforge.study.task import build_task, merge_settings, strategy_settings, study_dir

    given = _given_settings(args)
    run = _run_options(args)
    if args.budget is not None:
        check_int(args.budget, "--budget", 1)
    if args.max_cost is not None:
        from nasforge.errors import check_float

        check_float(args.max_cost, "--max-cost", 0, low_open=True)
    storage = get_storage(args.storage)
    name = args.study
    stored: dict[str, Any] = {}
    if name is not None:
        from nasforge.study.study import check_study_name

        check_study_name(name)
        names = storage.study_names()
        if name in names:
            stored = load_study(name, storage).config.get("search", {})
        elif given["benchmark"] is None and given["dataset"] is None:  # a typo must not start a new search
            raise NasforgeError(f"no study {shorten(name)} in {args.storage}; studies: "
                                f"{', '.join(map(shorten, names)) or 'none'}. To start a new study of that name, "
                                "give --benchmark or --dataset")
        else:  # a new study's name is a folder name too (WORKDIR/<name> when it trains), whatever it searches
            study_dir(".", name)
    settings = merge_settings(given, stored, name)
    label = settings.get("benchmark") or settings.get("dataset")
    if name is None:
        name = f"{settings['strategy']}-{str(label).replace(':', '-').replace('/', '_')}-seed{settings['seed']}"
    training = not settings.get("benchmark")
    workdir = None
    if training:  # checkpoints and the best network: WORKDIR/<study>
        check_work_dir(args.workdir or DEFAULT_WORKDIR, "--workdir")
        workdir = study_dir(args.workdir or DEFAULT_WORKDIR, name)
    elif args.workdir is not None:
        raise NasforgeError(f"--workdir {shorten(args.workdir)} is for searches that train (--dataset); "
                            "a table search writes no files")
    task = build_task(settings, args.data_dir, workdir)
    report = task.check_metric(args.report, "--report metric") if args.report else task.report
    cons = bind_constraints(settings.get("constraints"), task.space, task.table, task.estimator, args.data_dir)
    strategy = get_strategy(settings["strategy"], task.space, seed=settings["seed"], fidelity=settings.get("fidelity"),
                            feasible=task.strategy_feasible(cons), **strategy_settings(settings, task))
    if settings.get("warm_start") and "initial" not in settings["params"]:  # a new study: rank the sample once
        from nasforge.study.task import zero_cost_warm_start

        n_top = getattr(strategy, "n_init", None) or getattr(strategy, "population_size", 10)
        ws = zero_cost_warm_start(settings, task, n_top, args.data_dir)
        print(f"warm start ({settings['warm_start']}): the top {len(ws.archs)} of {len(ws.sampled)} random "
              f"architectures by zero-cost proxies, {ws.seconds:.1f} s")
        settings["params"] = {**settings["params"], "initial": ws.archs}
        strategy = get_strategy(settings["strategy"], task.space, seed=settings["seed"],
                                fidelity=settings.get("fidelity"), feasible=task.strategy_feasible(cons),
                                **strategy_settings(settings, task))
    settings.update(metric=task.metric, direction="max" if task.maximize else "min")
    study = create_study(name, task.space, task.metric, maximize=task.maximize, storage=storage,
                         config={"search": settings}, constraints=cons, load_if_exists=True)
    done = len(study.finished_trials)
    budget = args.budget if args.budget is not None else (100 if task.table is not None else 40)
    threads = ""
    if training:
        import torch

        from nasforge.estimation.training import LAST_CORES

        seen = (f": {LAST_CORES['usable']:g} core(s), {LAST_CORES['busy']:.1f} busy with other work"
                if LAST_CORES else "")
        threads = f", {torch.get_num_threads()} torch thread(s){seen}"
    print(f"study {name!r} ({args.storage}){threads}")
    print(f"strategy {strategy!r}")
    print(f"{task.description}; selecting by {task.metric} ({'max' if task.maximize else 'min'}), reporting "
          f"{report}; budget {budget} trials" + (f" or cost {args.max_cost:g}" if args.max_cost else "")
          + (f"; {run['n_workers']} worker(s) ({run['executor']})" if run["executor"] else ""))
    if done:
        print(f"resuming: {done} trial(s) already done" + (
            f", {study.n_interrupted} interrupted trial(s) will be re-run" if study.n_interrupted else ""))
    t0 = time.perf_counter()
    study.optimize(strategy, task.estimator, n_trials=budget, max_cost=args.max_cost, progress=not args.quiet, **run)
    seconds = time.perf_counter() - t0
    print(f"{len(study.finished_trials) - done} new trial(s) in {seconds:.2f} s")
    _print_result(study, task.table, report)
    if training and study.best_trial is not None:
        from nasforge.estimation.export import save_trained

        best = study.best_trial
        model = task.estimator.trained_model(best.arch, int(best.fidelity or task.estimator.max_epochs))
        paths = save_trained(model, workdir / "best", best.arch, task.estimator)
        print(f"best network saved: {paths['state_dict']} (state dict + build settings) and {paths['program']} "
              "(torch.export program: torch.export.load(path).module(), no nasforge needed)")
    from nasforge.cli.notes import where_written

    print("\n" + where_written(name, args.storage, workdir if training else None))
    return _all_failed(study)


def _all_failed(study: Any) -> int:
    """0, or 1 with a one-line message when the study has finished trials and every one failed."""
    from nasforge.study import TrialState

    finished = study.finished_trials
    if finished and not any(t.state is TrialState.COMPLETE for t in finished):
        first = next((t.error for t in finished if t.error), "no result")
        print(f"nasforge: error: all {len(finished)} trial(s) of study {study.name!r} failed; the first error: "
              f"{shorten(first, 300)}", file=sys.stderr)
        return 1
    return 0


def _print_result(study: Any, bench: Any, report: str | None, top: int = 5) -> None:
    from nasforge.study import TrialState

    done = [t for t in study.trials if t.state is TrialState.COMPLETE]
    failed = sum(t.state is TrialState.FAILED for t in study.trials)
    print(f"\n{len(done)} complete trial(s)" + (f", {failed} failed" if failed else ""))
    if not done:
        return
    sign = -1.0 if study.maximize else 1.0
    best = sorted(done, key=lambda t: (sign * t.value, t.number))[:top]
    cols = ["#", study.metric] + ([report] if report and report != study.metric else []) + ["architecture"]
    rows = [[t.number, t.value] + ([t.metrics.get(report, float("nan"))] if len(cols) == 4 else []) + [t.arch]
            for t in best]
    print(f"top {len(best)} by {study.metric}:")
    print(_table(cols, rows))
    b = best[0]
    print(f"\nbest architecture: {b.arch}")
    if bench is not None:
        for m in dict.fromkeys([study.metric] + ([report] if report else [])):
            col = bench.column(m, b.fidelity) if m in bench.metrics_at(b.fidelity) else None
            if col is None:
                continue
            value = b.metrics[m]
            _, opt = bench.optimum(col, maximize=study.maximize)
            better = bench.fraction_better(col, value, maximize=study.maximize)
            print(f"  {m} = {value:.4f}  (table optimum {opt:.4f}; {better:.2f}% of the {len(bench):,} "
                  "architectures are better)")


# --- show -------------------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    from nasforge.estimation import load_benchmark
    from nasforge.study import get_storage, load_study

    check_int(args.top, "--top", 1)
    if args.csv is not None:
        check_output_file(args.csv, "--csv")
    storage = get_storage(args.storage, create=False)  # reading: create nothing, write nothing
    if args.study is None:
        names = storage.study_names()
        if not names:
            print(f"no studies in {args.storage}")
            return 0
        print(f"studies in {args.storage}:")
        for n in names:
            print(f"  {n}")
        return 0
    study = load_study(args.study, storage)
    cfg = study.config
    bench = None
    spec = cfg.get("search", {}).get("benchmark")
    if spec:
        try:
            bench = load_benchmark(spec, data_dir=args.data_dir)
        except NasforgeError as exc:
            print(f"(benchmark {spec} not available: {exc})")
    report = args.report or (bench.report_metric if bench is not None else None)
    if args.report:
        _check_report(study, bench, args.report)
    print(study.summary())
    search = cfg.get("search")
    if search:
        print("settings: " + ", ".join(f"{k}={v}" for k, v in search.items() if v not in (None, {})))
    if args.all:
        df = study.trials_dataframe()
        import pandas as pd

        with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
            print(df.drop(columns=["started"]).to_string(index=False))
    if args.csv:
        _write(lambda: study.trials_dataframe().to_csv(args.csv, index=False), args.csv, "--csv")
        print(f"trials written to {args.csv}")
    _print_result(study, bench, report, top=args.top)
    if study.is_multi_objective:  # nasforge front STUDY --plot draws it
        from nasforge.cli.hardware import print_front

        print_front(study, bench, report)
    return 0


def _check_report(study: Any, bench: Any, report: str) -> None:
    """``--report`` must name a metric the study's trials (or its table) carry."""
    names: dict[str, None] = {}
    if bench is not None:
        names.update(dict.fromkeys(bench.metrics_at(None)))
    for t in study.trials:
        names.update(dict.fromkeys(t.metrics))
    if report not in names:
        raise NasforgeError(f"unknown --report metric {shorten(report)} for study {study.name!r}; available: "
                            f"{', '.join(names) or 'none (no trial has finished)'}")


def _write(write: Any, path: str, what: str) -> None:
    """Run ``write()``; an OS error (disk full, permissions changed since the check) is one line."""
    try:
        write()
    except OSError as exc:
        raise NasforgeError(f"cannot write {what} {shorten(path)}: {exc.strerror or exc}") from None


# --- bench ------------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    from nasforge.analysis import anytime_table, plot_anytime
    from nasforge.estimation import load_benchmark
    from nasforge.strategies import get_strategy
    from nasforge.study.compare import compare_strategies

    # validate the cheap arguments before loading a table
    at = _int_list(args.at, "--at")
    check_int(args.seeds, "--seeds", 1)
    first = check_seed(args.seed, "--seed")
    check_seed(first + args.seeds - 1, "--seed + --seeds - 1 (the last seed)")
    if args.budget is not None:
        check_int(args.budget, "--budget", 1)
        past = [q for q in at if q > args.budget]
        if past:
            raise NasforgeError(f"bad --at {args.at!r}: {', '.join(map(str, past))} is past --budget {args.budget} "
                                "(the anytime table reads each run at these query counts)")
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not names:
        raise NasforgeError(f"bad --strategies {shorten(args.strategies)}: expected comma-separated strategy names, "
                            "e.g. random,re,ls")
    for path, what in ((args.plot, "--plot"), (args.csv, "--csv")):
        if path is not None:
            check_output_file(path, what)
    at_time = _float_list(args.at_time, "--at-time") if args.at_time else None
    if at_time is not None and args.workers == 1:
        raise NasforgeError("--at-time reads the simulated clock of --workers W > 1")
    # settings that need no benchmark are checked before the table is read
    from nasforge.strategies import ALIASES, STRATEGIES

    for name in names:
        if ALIASES.get(name, name) not in STRATEGIES:
            raise unknown("strategy", name, sorted(STRATEGIES))
    params = _bench_params(args.param)
    unused = sorted(set(params) - set(names) - {ALIASES.get(n, n) for n in names})
    if unused:
        raise NasforgeError(f"--param names strategy {', '.join(map(repr, unused))}, which is not in --strategies "
                            f"({', '.join(names)})")
    bench = load_benchmark(args.benchmark, data_dir=args.data_dir)
    metric = args.metric or bench.default_metric
    report = args.report or bench.report_metric
    for m in (metric, report):
        if m not in bench.metrics_at(None):
            raise NasforgeError(f"unknown metric {shorten(m)} for {bench.name}; available: "
                                f"{', '.join(bench.metrics_at(None))}")
    maximize = _maximize(bench, metric, args.direction)
    budget = args.budget or max(at)
    strategies: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in names:
        st = get_strategy(name, bench.space, **params.get(name, {}))  # validates name and settings
        strategies[st.name] = (st.name, params.get(name, {}))
    seeds = list(range(first, first + args.seeds))
    total = len(strategies) * len(seeds)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="runs", disable=args.quiet, dynamic_ncols=True)
    t0 = time.perf_counter()
    times: dict[str, list[Any]] | None = {} if args.workers > 1 else None
    curves = compare_strategies(bench.space, bench, strategies, seeds, budget, metric, report, maximize,
                                on_run=lambda *_: bar.update(1), n_workers=args.workers, times=times)
    bar.close()
    seconds = time.perf_counter() - t0
    table = anytime_table(curves, at)
    workers = f", {args.workers} simulated workers" if args.workers > 1 else ""
    print(f"{bench.name}: select by {metric}, report {report}; {len(seeds)} seeds "
          f"({seeds[0]}..{seeds[-1]}), {budget} queries per run{workers}, {total} runs in {seconds:.1f} s")
    opt_arch, opt = bench.optimum(bench.column(report), maximize=maximize)
    print(f"table optimum of {report}: {opt:.2f}")
    order = "queries (in order of arrival)" if args.workers > 1 else "queries"
    rows = [[m, q, f"{r['mean']:.2f} ± {r['std']:.2f}", f"{r['se']:.3f}", int(r['n'])] for (m, q), r in table.iterrows()]
    print(_table(["strategy", order, f"{report} mean ± std", "s.e.", "runs"], rows))
    if times is not None:
        from nasforge.study.compare import curves_at_times

        if at_time is None:  # five points up to where every run still has results
            horizon = min(float(t[-1]) for runs in times.values() for t in runs if len(t))
            at_time = [horizon * k / 5 for k in range(1, 6)]
        timed = anytime_table(curves_at_times(curves, times, at_time), range(1, len(at_time) + 1))
        unit = "simulated seconds" if getattr(bench, "cost_metric", None) else "simulated cost (epochs)"
        rows = [[m, f"{at_time[i - 1]:,.0f}", f"{r['mean']:.2f} ± {r['std']:.2f}", f"{r['se']:.3f}", int(r['n'])]
                for (m, i), r in timed.iterrows()]
        print(f"\nby the simulated clock ({args.workers} workers; each trial occupies one for its tabulated cost):")
        print(_table(["strategy", unit, f"{report} mean ± std", "s.e.", "runs"], rows))
    if args.csv:
        _write(lambda: table.to_csv(args.csv), args.csv, "--csv")
        print(f"table written to {args.csv}")
    if args.plot:
        _write(lambda: plot_anytime(curves, args.plot, ylabel=report, title=f"{bench.name}, {len(seeds)} seeds",
                                    optimum=opt), args.plot, "--plot")
        print(f"plot written to {args.plot}")
    return 0


# --- entry point ------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nasforge", description="Neural architecture search: spaces, estimators, strategies.")
    p.add_argument("--version", action="version", version=f"nasforge {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    sub.required = True

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--storage", default=DEFAULT_STORAGE,
                        help=f"database URL or :memory: (default {DEFAULT_STORAGE})")
        sp.add_argument("--data-dir", default=None, help="reference data folder (default: $NASFORGE_DATA or ../shared/data)")

    s = sub.add_parser("search", help="run (or resume) a search study")
    s.add_argument("--benchmark", default=None,
                   help="search a table: nb201:<cifar10|cifar100|path.csv> or nbgraph:<dataset>")
    s.add_argument("--dataset", default=None,
                   help=f"search by real training on digits, mnist1d, cifar10, a .npz or an image folder "
                        f"(default when no --benchmark: {DEFAULT_DATASET})")
    s.add_argument("--space", default=None, help="search space for --dataset (default nb201)")
    s.add_argument("--strategy", default=None, help="random, re, ls, sh, hyperband, asha, pasha (default re)")
    s.add_argument("--budget", type=positive_int, default=None,
                   help="total trials of the study (default 100 on a table, 40 with training)")
    s.add_argument("--max-cost", type=finite_float, default=None,
                   help="total cost budget: simulated seconds/epochs on a table, training seconds with --dataset")
    s.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    s.add_argument("--metric", default=None, help="metric to optimise (default: the validation metric)")
    s.add_argument("--direction", choices=("max", "min"), default=None,
                   help="maximise or minimise --metric (default: the metric's own direction)")
    s.add_argument("--fidelity", type=finite_float, default=None, help="fidelity to query, e.g. 12 or 200 for NB201")
    s.add_argument("--report", default=None, help="metric to report for the best trial (never used to select)")
    s.add_argument("--param", action="append", metavar="KEY=VALUE", help="strategy setting, e.g. population_size=20")
    s.add_argument("--constraint", dest="constraints", action="append", default=None, metavar="EXPR",
                   help="hard constraint, repeatable: 'latency_ms[pixel3] <= 20', 'params <= 0.5e6', 'flops < 100M'")
    s.add_argument("--kernel", default=None,
                   help="architecture kernel of --strategy bo: hamming, path, wl, tw, tw2, hot (= --param kernel=...)")
    s.add_argument("--warm-start", dest="warm_start", default=None, metavar="PROXIES:N",
                   help="re, bo, predictor: start from the best of N random architectures by zero-cost proxies of "
                        "their untrained networks, e.g. synflow:1000 (scored once, stored with the study)")
    s.add_argument("--study", default=None, help="study name (default <strategy>-<benchmark|dataset>-seed<seed>)")
    t = s.add_argument_group("training (with --dataset)")
    t.add_argument("--epochs", type=int, default=None, help="epochs of a full evaluation (default 10)")
    t.add_argument("--C", type=int, default=None, help="channels of the first stage (default 8)")
    t.add_argument("--N", type=int, default=None, help="cells per stage (default 1)")
    t.add_argument("--optimizer", choices=("sgd", "adamw", "nero"), default=None,
                   help="optimiser (default sgd; nero: per-neuron normalised updates, lr 0.01)")
    t.add_argument("--lr", type=finite_float, default=None, help="peak learning rate, cosine schedule")
    t.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="minibatch size")
    t.add_argument("--weight-decay", dest="weight_decay", type=finite_float, default=None, help="weight decay")
    t.add_argument("--label-smoothing", dest="label_smoothing", type=finite_float, default=None,
                   help="label smoothing of the cross-entropy loss")
    t.add_argument("--n-train", dest="n_train", type=int, default=None, help="CIFAR-10: training images to use")
    r = s.add_argument_group("parallel evaluation (not stored: processes sharing a --study may differ)")
    r.add_argument("--workers", type=positive_int, default=1,
                   help="evaluations run at once (default 1: one at a time, in this process)")
    r.add_argument("--executor", choices=EXECUTORS, default=None,
                   help="where they run: threads, a process pool, or Ray (default with --workers > 1: process)")
    r.add_argument("--ray-address", dest="ray_address", default=None, metavar="ADDR",
                   help="Ray cluster to join, e.g. ray://head:10001 (implies --executor ray)")
    s.add_argument("--workdir", default=None,
                   help=f"with --dataset: checkpoints and the best network go to WORKDIR/STUDY (default {DEFAULT_WORKDIR})")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    common(s)
    s.set_defaults(func=cmd_search)

    sh = sub.add_parser("show", help="list studies, or show one study's trials and best architecture")
    sh.add_argument("study", nargs="?", default=None, help="study name (default: list the studies)")
    sh.add_argument("--top", type=positive_int, default=10, help="how many best trials to list (default 10)")
    sh.add_argument("--all", action="store_true", help="print every trial")
    sh.add_argument("--csv", default=None, help="write all trials to this CSV file")
    sh.add_argument("--report", default=None, help="metric to report beside the selection metric")
    common(sh)
    sh.set_defaults(func=cmd_show)

    b = sub.add_parser("bench", help="compare strategies over many seeds on a tabular benchmark")
    b.add_argument("--benchmark", default="nb201:cifar10", help="table to search (default nb201:cifar10)")
    b.add_argument("--strategies", default="random,re,ls",
                   help="comma-separated strategies, see nasforge list strategies (default random,re,ls)")
    b.add_argument("--seeds", type=positive_int, default=10, help="number of seeds (default 10)")
    b.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    b.add_argument("--at", default="25,50,100,200,300", help="query counts of the anytime table")
    b.add_argument("--budget", type=positive_int, default=None, help="queries per run (default: the largest --at)")
    b.add_argument("--metric", default=None, help="metric to optimise (default: the validation metric)")
    b.add_argument("--direction", choices=("max", "min"), default=None,
                   help="maximise or minimise --metric (default: the metric's own direction)")
    b.add_argument("--report", default=None, help="metric of the anytime table (never used to select)")
    b.add_argument("--param", action="append", metavar="STRATEGY.KEY=VALUE",
                   help="strategy setting, e.g. re.population_size=20")
    b.add_argument("--workers", type=positive_int, default=1,
                   help="simulated parallel workers: each trial occupies one for its tabulated cost (default 1)")
    b.add_argument("--at-time", dest="at_time", default=None,
                   help="with --workers: simulated times of the second table (default: five up to the shortest run)")
    b.add_argument("--plot", default=None, help="write the anytime plot to this PNG")
    b.add_argument("--csv", default=None, help="write the anytime table to this CSV")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--data-dir", default=None, help="reference data folder (default: $NASFORGE_DATA or ../shared/data)")
    b.set_defaults(func=cmd_bench)

    import importlib

    for module in EXTRA_COMMANDS:  # each module adds its own sub-command(s)
        importlib.import_module(f"nasforge.cli.{module}").add_parser(sub)
    from nasforge.cli.examples import add_examples

    add_examples(p)
    return p


#: modules under nasforge.cli with an ``add_parser(subparsers)`` function; each parser sets
#: ``func`` to a callable taking the parsed arguments and returning the exit code
EXTRA_COMMANDS: list[str] = ["export", "proxies", "hardware", "supernet", "dashboard", "listing", "oneshot_search",
                           "transfer", "audit", "predictors", "mdl", "equivariance", "energy"]


def _bench_params(items: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in _parse_params(items).items():
        strat, dot, setting = key.partition(".")
        if not dot or not setting:
            raise NasforgeError(f"bad --param {key!r}: expected STRATEGY.KEY=VALUE, e.g. re.population_size=20")
        out.setdefault(strat, {})[setting] = value
    return out


def _one_line_warning(message: Any, category: Any, *_: Any, **__: Any) -> None:
    print(f"nasforge: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    import os

    # OpenMP threads that wait for a busy core sleep rather than spin (read when torch loads, so
    # set before any command imports it); the user's own setting wins
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return args.func(args)
    except NasforgeError as exc:
        print(f"nasforge: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. head
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("nasforge: interrupted; completed trials are saved (run the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
