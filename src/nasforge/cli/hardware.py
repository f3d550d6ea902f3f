"""Hardware-aware commands: ``nasforge mosearch`` (multi-objective search), ``nasforge front STUDY``
(Pareto front, hypervolume, plot, search energy) and ``nasforge cost ARCH`` (parameters, FLOPs,
latency of one architecture)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from nasforge.errors import NasforgeError
from nasforge.cli.options import finite_float, positive_int

DEFAULT_STORAGE = "sqlite:///nasforge.db"
DEFAULT_OBJECTIVES = ("valid_acc:max", "latency_ms[pixel3]:min")


def _objective(text: str) -> tuple[str, bool | None]:
    name, sep, direction = text.rpartition(":")
    if not sep:
        return text.strip(), None
    if direction not in ("max", "min"):
        raise NasforgeError(f"bad --objective {text!r}: expected METRIC[:max|min], e.g. latency_ms[pixel3]:min")
    return name.strip(), direction == "max"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --- the front of a study ------------------------------------------------------------------------
def true_front(bench: Any, metrics: list[str], directions: list[bool], fidelity: float | None = None,
               constraints: Any = None) -> Any:
    """The table's own Pareto front over ``metrics`` (feasible architectures only): an (n, m) array."""
    import numpy as np

    from nasforge.analysis.pareto import pareto_mask

    Y = np.column_stack([bench.values(m, fidelity) for m in metrics])
    if constraints is not None:
        Y = Y[np.array(constraints.feasible_mask(bench.archs))]
    return Y[pareto_mask(Y, directions)], Y


def print_front(study: Any, bench: Any = None, report: str | None = None, plot: str | None = None,
                constraints: Any = None) -> None:
    """Print a multi-objective study's Pareto front; with a table, the true front's hypervolume
    fraction (objectives normalised by the table's range, reference point 1.1; only architectures
    feasible under ``constraints``, default the study's); optionally plot."""
    import numpy as np

    from nasforge.analysis.pareto import hypervolume_fraction, plot_front

    front = study.pareto_front
    metrics, dirs = study.metrics, study.directions
    objs = ", ".join(f"{m} ({'max' if d else 'min'})" for m, d in zip(metrics, dirs))
    print(f"\nPareto front over {objs}: {len(front)} trial(s)")
    if not front:
        return
    cols = ["#"] + metrics + ([report] if report and report not in metrics else []) + ["architecture"]
    rows = [[t.number] + [float(t.metrics[m]) for m in metrics]
            + ([float(t.metrics.get(report, float("nan")))] if len(cols) > len(metrics) + 2 else []) + [t.arch]
            for t in front]
    print(_table(cols, rows))
    points = np.array([[float(t.metrics[m]) for m in metrics] for t in study.trials
                       if t.state.value == "complete" and t.info.get("feasible", True)
                       and all(m in t.metrics for m in metrics)])
    truth, everything = None, None
    if bench is not None and all(m in bench.metrics_at(None) for m in metrics):
        fid = front[0].fidelity if front[0].fidelity in (bench.fidelities or ()) else None
        cons = constraints if constraints is not None else getattr(study, "constraints", None)
        truth, everything = true_front(bench, metrics, dirs, fid, cons)
        lo, hi = everything.min(axis=0), everything.max(axis=0)
        frac = hypervolume_fraction(points, truth, dirs, lo, hi)
        print(f"hypervolume: {frac:.4f} of the true front's ({len(truth)} architectures on it; objectives normalised "
              f"by the table's range, reference point 1.1)")
    if plot:
        if len(metrics) != 2:
            raise NasforgeError(f"--plot draws two objectives; this study has {len(metrics)}")
        # latency-like (minimised) objective on the x axis reads naturally
        order = [1, 0] if dirs[0] and not dirs[1] else [0, 1]
        sel = lambda A: None if A is None else A[:, order]  # noqa: E731
        plot_front(sel(points), plot, [metrics[i] for i in order], [dirs[i] for i in order], sel(truth),
                   sel(everything), title=study.name)
        print(f"front plot written to {plot}")


def cmd_front(args: argparse.Namespace) -> int:
    from nasforge.estimation import load_benchmark
    from nasforge.estimation.constraints import bind_constraints
    from nasforge.estimation.hardware import search_energy
    from nasforge.study import load_study

    from nasforge.errors import check_float, check_output_file
    from nasforge.study import get_storage

    if args.plot is not None:
        check_output_file(args.plot, "--plot")
    if args.power_watts is not None:
        check_float(args.power_watts, "--power-watts", 0, low_open=True)
    study = load_study(args.study, get_storage(args.storage, create=False))
    if not study.is_multi_objective:
        raise NasforgeError(f"study {args.study!r} has one objective ({study.metric}); a Pareto front needs two or "
                            f"more (nasforge show {args.study} lists its best trials)")
    cfg = study.config
    search = cfg.get("search", {})
    bench = None
    spec = args.benchmark or search.get("benchmark")
    if spec:
        bench = load_benchmark(spec, data_dir=args.data_dir)
    cons = (bind_constraints(cfg.get("constraints"), bench.space, bench, None, args.data_dir)
            if bench is not None else None)
    print(study.summary())
    print_front(study, bench, args.report or (bench.report_metric if bench is not None else None), args.plot,
                constraints=cons)
    power = args.power_watts if args.power_watts is not None else cfg.get("power_watts")
    if power is not None:
        e = search_energy(study.trials, float(power), clock="wall")
        print(f"search energy: {e['joules']:.1f} J ({e['wh']:.4f} Wh) = {e['seconds']:.1f} s of trials x "
              f"{e['power_watts']:g} W declared")
        if bench is None or getattr(bench, "cost_metric", None) is not None or search.get("dataset"):
            c = search_energy(study.trials, float(power), clock="cost")
            print(f"  by the trials' cost clock: {c['joules']:.1f} J ({c['wh']:.4f} Wh)")
    measured = cfg.get("energy_measured_j")
    if measured is not None:
        print(f"measured (RAPL) energy of the search: {measured:.1f} J")
    return 0


# --- multi-objective search ------------------------------------------------------------------------
def cmd_mosearch(args: argparse.Namespace) -> int:
    from nasforge.cli.main import _parse_params
    from nasforge.estimation import load_benchmark
    from nasforge.estimation.constraints import bind_constraints
    from nasforge.estimation.hardware import EnergyMeter, search_energy
    from nasforge.strategies import ALIASES, MULTI_OBJECTIVE, get_strategy
    from nasforge.study import create_study, get_storage, load_study

    storage = get_storage(args.storage)
    stored: dict[str, Any] = {}
    if args.study and args.study in storage.study_names():
        stored = load_study(args.study, storage).config.get("mosearch", {})
    given = {"benchmark": args.benchmark, "objectives": args.objective, "strategy": args.strategy, "seed": args.seed,
             "params": _parse_params(args.param) if args.param else None, "constraints": args.constraints,
             "power_watts": args.power_watts}
    settings = {"benchmark": "nb201:cifar10+hw", "objectives": list(DEFAULT_OBJECTIVES), "strategy": "nsga2",
                "seed": 0, "params": {}, "constraints": [], "power_watts": None}
    for k, v in given.items():
        if v is not None:
            if k in stored and stored[k] != v and k != "power_watts":
                raise NasforgeError(f"study {args.study!r} was created with {k}={stored[k]!r}; it cannot resume with "
                                    f"{k}={v!r} (omit the option, or pick a new --study)")
            settings[k] = v
        elif k in stored:
            settings[k] = stored[k]
    strategy_name = ALIASES.get(settings["strategy"], settings["strategy"])
    bench = load_benchmark(settings["benchmark"], data_dir=args.data_dir)
    available = bench.metrics_at(None)
    metrics, dirs = [], []
    for text in settings["objectives"]:
        m, d = _objective(text)
        if m not in available:
            raise NasforgeError(f"unknown objective {m!r} for {bench.name}; available: {', '.join(available)}")
        metrics.append(m)
        dirs.append(bench.higher_is_better(m) if d is None else d)
    if len(metrics) < 2:
        raise NasforgeError(f"a multi-objective search needs two or more --objective, got {metrics}")
    cons = bind_constraints(settings["constraints"], bench.space, bench, None, args.data_dir)
    strategy = get_strategy(strategy_name, bench.space, seed=settings["seed"], feasible=cons, **settings["params"])
    name = args.study or f"{strategy.name}-{bench.name.split('+')[0].replace(':', '-')}-{'-'.join(metrics)}-seed{settings['seed']}"
    config = {"mosearch": settings, "search": {"benchmark": settings["benchmark"]}}
    if settings["power_watts"] is not None:
        config["power_watts"] = settings["power_watts"]
    study = create_study(name, bench.space, metrics, maximize=dirs, storage=storage, config=config, constraints=cons,
                         load_if_exists=True)
    if strategy_name not in MULTI_OBJECTIVE:
        print(f"note: {strategy.name!r} is a single-objective strategy; it optimises {metrics[0]} only")
    done = len(study.finished_trials)
    print(f"study {name!r} ({args.storage}): {strategy!r}")
    print(f"benchmark {bench.name}: objectives " + ", ".join(f"{m} ({'max' if d else 'min'})" for m, d in zip(metrics, dirs))
          + (f"; constraints: {', '.join(cons.strings())}" if cons else "") + f"; budget {args.budget} trials")
    if done:
        print(f"resuming: {done} trial(s) already done")
    t0 = time.perf_counter()
    with EnergyMeter() as meter:
        study.optimize(strategy, bench, n_trials=args.budget, progress=not args.quiet)
    print(f"{len(study.finished_trials) - done} new trial(s) in {time.perf_counter() - t0:.2f} s")
    if meter.joules is not None:
        study.config["energy_measured_j"] = float(study.config.get("energy_measured_j", 0.0)) + meter.joules
        study.storage.update_config(study._id, study.config)
    print_front(study, bench, args.report or bench.report_metric, args.plot)
    if settings["power_watts"] is not None:
        e = search_energy(study.trials, float(settings["power_watts"]))
        print(f"search energy: {e['joules']:.1f} J ({e['wh']:.4f} Wh) = {e['seconds']:.2f} s x "
              f"{e['power_watts']:g} W declared")
    if meter.joules is not None:
        print(f"measured (RAPL) energy of this run: {meter.joules:.1f} J")
    from nasforge.cli.notes import where_written

    print("\n" + where_written(name, args.storage))
    return 0


# --- cost of one architecture -------------------------------------------------------------------------
def cmd_cost(args: argparse.Namespace) -> int:
    import inspect

    from nasforge.estimation.hardware import (FLOP_CONVENTIONS, count_flops, count_params, device_tables,
                                              load_device_table, measure_latency)
    from nasforge.spaces import get_space

    space = get_space(args.space)
    arch = space.parse(args.arch)
    given = {"C": args.C, "N": args.N, "num_classes": args.num_classes, "input_size": args.input_size}
    build = {**space.default_net(), **{k: v for k, v in given.items() if v is not None}}
    accepted = inspect.signature(space.build).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        bad = [k for k in build if k not in accepted]
        if bad:
            options = ", ".join(k for k in accepted if k != "arch")
            raise NasforgeError(f"space {space.name!r} builds networks without the setting(s) {', '.join(bad)}; "
                                f"its settings: {options}")
    model = space.build(arch, **build)
    shape = space.input_shape(**build)
    out: dict[str, Any] = {"arch": space.format(arch), "build": build, "params": count_params(model)}
    for conv in FLOP_CONVENTIONS:
        out[f"flops[{conv}]"] = count_flops(model, shape, conv).total
    for backend in [b.strip() for b in (args.latency or "").split(",") if b.strip()]:
        m = measure_latency(model, shape, batch_size=args.batch_size, backend=backend, threads=args.threads,
                            warmup=args.warmup, repeats=args.repeats)
        out[f"latency_ms[local-{backend}]"] = m.as_dict()
    # published device tables of the space, where they describe the network built here
    tables = [w for w, t in device_tables(space).items() if all(build.get(k) == v for k, v in t.net.items())]
    try:
        for which in tables:
            t = load_device_table(space, which, args.data_dir)
            out.update({c: float(t.columns[c][t.row(arch)]) for c in t.columns})
    except NasforgeError as exc:
        out["tables"] = f"not available: {exc}"
    if args.json:
        print(json.dumps(out, indent=1, default=str))
        return 0
    for k, v in out.items():
        if isinstance(v, dict) and "median_ms" in v:
            print(f"{k}: median {v['median_ms']:.3f} ms (p10 {v['p10_ms']:.3f}, p90 {v['p90_ms']:.3f}; batch "
                  f"{v['batch_size']}, {v['threads']} thread(s), {v['warmup']} warm-up + {v['repeats']} runs)")
        else:
            print(f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {v}")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``mosearch``, ``front`` and ``cost`` to the ``nasforge`` command line."""
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--storage", default=DEFAULT_STORAGE, help=f"database URL or :memory: (default {DEFAULT_STORAGE})")
        p.add_argument("--data-dir", default=None, help="reference data folder (default: $NASFORGE_DATA or ../shared/data)")

    m = sub.add_parser("mosearch", help="multi-objective search on a table (accuracy vs latency, energy, size)")
    m.add_argument("--benchmark", default=None, help="table with device metrics (default nb201:cifar10+hw)")
    m.add_argument("--objective", action="append", default=None, metavar="METRIC[:max|min]",
                   help="objective, repeatable (default valid_acc:max and latency_ms[pixel3]:min)")
    m.add_argument("--strategy", default=None, help="nsga2, mo-re, chebyshev, mo-random (default nsga2)")
    m.add_argument("--budget", type=positive_int, default=300, help="total trials of the study (default 300)")
    m.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    m.add_argument("--param", action="append", metavar="KEY=VALUE", help="strategy setting, e.g. population_size=30")
    m.add_argument("--constraint", dest="constraints", action="append", default=None, metavar="EXPR",
                   help="hard constraint, repeatable: 'latency_ms[pixel3] <= 20', 'params <= 0.5e6'")
    m.add_argument("--power-watts", type=finite_float, default=None,
                   help="declared power of this machine, to report the energy the search spent")
    m.add_argument("--study", default=None, help="study name (default <strategy>-<benchmark>-<objectives>-seed<seed>)")
    m.add_argument("--report", default=None, help="metric shown beside the front (never used to select)")
    m.add_argument("--plot", default=None, help="write the front (with the true front) to this PNG")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    common(m)
    m.set_defaults(func=cmd_mosearch)

    f = sub.add_parser("front", help="a study's Pareto front, hypervolume, plot and search energy")
    f.add_argument("study", help="name of a multi-objective study")
    f.add_argument("--benchmark", default=None, help="table for the true front (default: the study's own)")
    f.add_argument("--plot", default=None, help="write the front (with the true front) to this PNG")
    f.add_argument("--report", default=None, help="metric shown beside the front (never used to select)")
    f.add_argument("--power-watts", type=finite_float, default=None,
                   help="declared power: report the energy the search spent (time x power)")
    common(f)
    f.set_defaults(func=cmd_front)

    c = sub.add_parser("cost", help="parameters, FLOPs and latency of one architecture")
    c.add_argument("arch", help="architecture string, e.g. the official NB201 string")
    c.add_argument("--space", default="nb201", help="search space of ARCH (default nb201)")
    c.add_argument("--C", type=int, default=None, help="network width (default: the space's, e.g. 16 for nb201)")
    c.add_argument("--N", type=int, default=None, help="cells per stage (default: the space's, e.g. 5 for nb201)")
    c.add_argument("--num-classes", dest="num_classes", type=int, default=None, help="default: the space's (10)")
    c.add_argument("--input-size", dest="input_size", type=int, default=None, help="default: the space's (32)")
    c.add_argument("--latency", default=None, help="measure on this machine: torch, onnxruntime or both (comma)")
    c.add_argument("--batch-size", dest="batch_size", type=int, default=1, help="latency: batch size (default 1)")
    c.add_argument("--threads", type=int, default=1, help="latency: torch threads (default 1)")
    c.add_argument("--warmup", type=int, default=10, help="latency: untimed runs first (default 10)")
    c.add_argument("--repeats", type=int, default=30, help="latency: timed runs (default 30)")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.add_argument("--data-dir", default=None, help="reference data folder (default: $NASFORGE_DATA or ../shared/data)")
    c.set_defaults(func=cmd_cost)
