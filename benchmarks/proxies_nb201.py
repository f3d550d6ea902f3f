"""Zero-cost proxies on NAS-Bench-201 (C=16, N=5, the benchmark's own network) with real CIFAR-10.

Phases (each resumable; scores are appended to CSV files under --out as they are computed):

    # 1. the cheap proxies (one shared forward/backward + synflow + static) on 1,000 random cells
    nice -n 10 python benchmarks/proxies_nb201.py score --proxies cheap --n 1000
    # 2. the multi-pass proxies on the first 200 cells of the same fixed sample
    nice -n 10 python benchmarks/proxies_nb201.py score --proxies zen,grasp --n 200
    # 3. NASWOT alone (no_grad forward, channels-last) on more cells, for NASWOT's own protocol
    nice -n 10 python benchmarks/proxies_nb201.py score --proxies naswot --n 3000 --channels-last
    # 3b. zen with NAS-Bench-Suite-Zero's BN term (running variance), to explain the difference
    nice -n 10 python benchmarks/proxies_nb201.py score --proxies zen --zen-bn running --n 200
    # 4. seconds per architecture of every proxy alone
    nice -n 10 python benchmarks/proxies_nb201.py timing --n 10
    # 5. correlations, ensembles, NASWOT protocol, AREA vs RE: tables to stdout and --out/report.json
    python benchmarks/proxies_nb201.py report
    # 6. NASWOT on all 15,625 cells, two worker processes x 1 thread; then rho/tau on all cells and best-of-N
    python benchmarks/proxies_nb201.py score --proxies naswot --channels-last --all --workers 2
    python benchmarks/proxies_nb201.py naswot-all

The sample is a prefix of one seeded permutation of the 15,625 cells (--sample-seed), so the
200-cell subset is the first 200 cells of the 1,000. The batch is 128 CIFAR-10 training images
drawn with --seed; each network's weights come from a seed derived from --seed and its string.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

OUT = Path("benchmarks/out")


def _results_path(out: Path, proxies: list[str], channels_last: bool, zen_bn: str = "batch") -> Path:
    from nasforge.estimation.proxies.base import SELECTIONS

    if proxies == list(SELECTIONS["cheap"]):
        tag = "cheap"
    else:
        tag = "-".join(proxies)
    suffix = ("_cl" if channels_last else "") + ("_zenrunning" if zen_bn == "running" else "")
    return out / f"proxies_nb201_c10_{tag}{suffix}.csv"


def tune_malloc() -> bool:
    """Keep freed memory in the heap (glibc): no ``mmap``/``munmap`` and page faults for every
    multi-megabyte activation of the batch. Changes no number; about 15% faster per cell here.
    Also moves the objects alive now out of Python's cyclic garbage collector (``gc.freeze``),
    whose full collections otherwise rescan torch's modules while networks are built (~2%).
    Returns whether glibc's ``mallopt`` accepted the settings."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    gc.freeze()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 2**31 - 1)
                    and libc.mallopt(m_top_pad, 64 << 20))
    except (OSError, AttributeError):
        return False


def _estimator(args: argparse.Namespace, proxies: list[str]):
    from nasforge.estimation.proxies import ProxyEstimator
    from nasforge.spaces import NB201Space

    return ProxyEstimator(NB201Space(), "cifar10", proxies, batch_size=args.batch_size, seed=args.seed,
                          net={"C": 16, "N": 5}, channels_last=args.channels_last, data_dir=args.data_dir,
                          zen_bn=args.zen_bn, naswot_method=args.naswot_method, naswot_prune=not args.no_prune)


def _shard_paths(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.stem}.shard*of*.csv"))


def _merge_shards(results, path: Path) -> int:
    """Append the rows of ``path``'s worker shards to ``results`` (shard by shard) and delete the shards."""
    from nasforge.estimation.proxies import read_results

    n = 0
    for shard in _shard_paths(path):
        df = read_results(shard)
        secs = [c for c in df.columns if c.startswith("sec_")]
        for arch, row in df.iterrows():
            if arch not in results.done:
                results.append(arch, {p: row[p] for p in results.proxies}, row["seconds"],
                               {c[4:]: row[c] for c in secs})
                n += 1
        shard.unlink()
        shard.with_name(shard.name + ".json").unlink(missing_ok=True)
    return n


def cmd_score(args: argparse.Namespace) -> None:
    import torch

    from nasforge.estimation.proxies import (PROXIES, ProxyResults, read_results, resolve_proxies, sample_archs,
                                             score_archs)
    from nasforge.estimation.proxies.base import GROUPS

    torch.set_num_threads(args.threads)
    proxies = resolve_proxies(args.proxies)
    est = _estimator(args, proxies)
    if args.tune_malloc:
        tune_malloc()
    space = est.space
    groups = ["build"] + [g for g in GROUPS if any(PROXIES[p].group == g for p in proxies)]
    if "naswot" in proxies and "gradient" in groups and "forward" in groups:
        groups.remove("forward")
    path = Path(args.file) if args.file else _results_path(Path(args.out), proxies, args.channels_last, args.zen_bn)
    settings = {**est.settings(), "sample_seed": args.sample_seed}
    n_cells = len(space) if args.all else args.n
    archs = sample_archs(space, n_cells, seed=args.sample_seed)[args.start:]
    if args.shard:  # a worker of --workers: its own resumable file, its share of the cells left
        w, k = (int(v) for v in args.shard.split("/"))
        done = set(read_results(path).index) if path.exists() else set()
        todo = [a for a in archs if space.format(a) not in done][w::k]
        shard = path.with_name(f"{path.stem}.shard{w}of{k}.csv")
        n = score_archs(est, todo, ProxyResults(shard, proxies, settings, groups=groups), progress=False)
        print(f"worker {w}/{k}: {n} new cells")
        return
    results = ProxyResults(path, proxies, settings, groups=groups)
    merged = _merge_shards(results, path)  # rows of an interrupted --workers run
    left = sum(space.format(a) not in results.done for a in archs)
    print(f"{path}: {len(archs) - left} of {len(archs)} cells already scored ({merged} merged from worker files); "
          f"proxies {','.join(proxies)}; {args.workers} process(es) x {args.threads} thread(s)")
    t0, load0, stamp0 = time.perf_counter(), os.getloadavg(), time.strftime("%Y-%m-%d %H:%M:%S %Z")
    cpu0 = _cpu_seconds()
    if args.workers <= 1:
        n = score_archs(est, archs, results, progress=not args.quiet)
    else:
        n = _run_workers(args, path, left, t0)
        n = _merge_shards(results, path)
    wall = time.perf_counter() - t0
    print(f"{n} new cells in {wall:.0f} s ({wall / max(n, 1):.4f} s per cell wall-clock)")
    run = {"started": stamp0, "wall_s": wall, "new_cells": n, "cells": len(results), "workers": args.workers,
           "threads": args.threads, "load_before": load0, "load_after": os.getloadavg(),
           "naswot_method": args.naswot_method, "prune": not args.no_prune, "tune_malloc": args.tune_malloc,
           "cpu_s": _cpu_seconds() - cpu0}
    with open(path.with_name(path.name + ".runs.jsonl"), "a") as f:
        f.write(json.dumps(run) + "\n")


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its finished worker processes."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def _run_workers(args: argparse.Namespace, path: Path, left: int, t0: float) -> int:
    """Start ``--workers`` copies of this script on interleaved shares of the cells; wait, showing progress."""
    import subprocess
    import sys

    argv = [a for a in sys.argv[1:]]
    for flag in ("--workers",):  # the children are single workers
        if flag in argv:
            i = argv.index(flag)
            del argv[i:i + 2]
    # each worker in its own session, as if started separately: on Linux with scheduler autogroups
    # the CPU is shared per session, so workers sharing this one would together get one session's share
    procs = [subprocess.Popen([sys.executable, sys.argv[0], *argv, "--quiet", "--shard", f"{w}/{args.workers}"],
                              start_new_session=True) for w in range(args.workers)]
    try:
        last = time.perf_counter()
        while any(p.poll() is None for p in procs):
            time.sleep(0.5)
            if time.perf_counter() - last < 60:
                continue
            last = time.perf_counter()
            done = sum(max(sum(1 for _ in open(s)) - 1, 0) for s in _shard_paths(path))
            el = time.perf_counter() - t0
            eta = el / done * (left - done) if done else float("nan")
            print(f"  {done}/{left} cells, {el:.0f} s, {done / el:.2f} cells/s, eta {eta:.0f} s, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
    bad = [p.returncode for p in procs if p.returncode]
    if bad:
        raise SystemExit(f"a worker failed (exit codes {bad}); rerun the same command to resume")
    return left


# --- timing -----------------------------------------------------------------------------------------
def cmd_timing(args: argparse.Namespace) -> None:
    """Seconds per architecture of every proxy computed alone (plus the shared cheap pass)."""
    import torch

    from nasforge.estimation.proxies import PROXIES, ProxyEstimator, sample_archs
    from nasforge.spaces import NB201Space

    if args.tune_malloc:
        tune_malloc()
    torch.set_num_threads(args.threads)
    space = NB201Space()
    archs = sample_archs(space, args.n, seed=args.sample_seed)
    out = Path(args.out)
    path = out / "proxies_nb201_timing.json"
    rows = json.loads(path.read_text()) if path.exists() else {}
    est = ProxyEstimator(space, "cifar10", "naswot", batch_size=args.batch_size, seed=args.seed,
                         net={"C": 16, "N": 5}, data_dir=args.data_dir)
    est.estimate(archs[0])  # warm-up: first-call allocations
    former = {"naswot_method": "float32", "naswot_prune": False}
    setups = [(p, p, False, {}) for p in PROXIES] + [("cheap (shared passes)", "cheap", False, {}),
                                                     ("naswot (channels-last)", "naswot", True, {}),
                                                     ("naswot (channels-last, float32 GEMM, no pruning)", "naswot",
                                                      True, former)]
    for label, proxies, cl, kw in setups:
        if args.only and args.only not in label:
            continue
        if args.tune_malloc and label.startswith("naswot (channels-last"):
            label += ", malloc tuned"
        if label in rows and len(rows[label]["seconds"]) >= len(archs):
            continue
        e = ProxyEstimator(space, est.dataset, proxies, batch_size=args.batch_size, seed=args.seed,
                           net={"C": 16, "N": 5}, channels_last=cl, **kw)
        secs = []
        for a in archs:
            secs.append(e.estimate(a).cost)
        rows[label] = {"seconds": secs, "threads": torch.get_num_threads(), "load": os.getloadavg()[0]}
        path.write_text(json.dumps(rows, indent=1))
        print(f"{label:26s} {np.mean(secs):7.3f} s/arch (sd {np.std(secs, ddof=1):.3f}, {len(secs)} cells, "
              f"load {os.getloadavg()[0]:.1f})")


# --- report -----------------------------------------------------------------------------------------
#: NAS-Bench-Suite-Zero (Krishnakumar et al., 2022): Spearman rho with validation accuracy on 1,000 random
#: NB201 cells, (CIFAR-10, CIFAR-100)
PUBLISHED = {"naswot": (0.77, 0.80), "jacov": (0.75, 0.71), "synflow": (0.73, 0.76), "params": (0.72, 0.73),
             "epe_nas": (0.70, 0.60), "flops": (0.69, 0.71), "l2_norm": (0.68, 0.72), "snip": (0.58, 0.63),
             "grad_norm": (0.58, 0.63), "grasp": (0.51, 0.54), "fisher": (0.50, 0.54), "zen": (0.35, 0.35),
             "plain": (-0.26, -0.21)}
#: NASWOT (Mellor et al., ICML 2021): CIFAR-10 test accuracy of the best-scored of N random cells
NASWOT_PUBLISHED = {100: (92.81, 0.99), 1000: (92.96, 0.81)}
#: the a-priori ensemble: the three best proxies of the published table (chosen without our labels)
ENSEMBLE = ("naswot", "synflow", "jacov")


def _md(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _best_of_n(scores: np.ndarray, valid: np.ndarray, test: np.ndarray,
               repeats: int) -> tuple[dict[int, dict[str, list[float]]], str]:
    """NASWOT's protocol: ``repeats`` draws of N cells (N = 10, 100, 1000, seeded), the test accuracy of
    the best-scored one, of a random one and of the best-validation one (trained). Returns
    ``{N: {"naswot"|"random"|"best_valid": [mean, sd]}}`` and the markdown table (published beside)."""
    rng = np.random.default_rng(0)
    protocol: dict[int, dict[str, list[float]]] = {}
    rows = []
    for n in (10, 100, 1000):
        if n > len(scores):
            continue
        picked, rand, oracle = [], [], []
        for _ in range(repeats):
            idx = rng.choice(len(scores), n, replace=False)
            picked.append(test[idx[np.argmax(scores[idx])]])
            rand.append(test[idx[0]])
            oracle.append(test[idx[np.argmax(valid[idx])]])
        protocol[n] = {k: [float(np.mean(v)), float(np.std(v))]
                       for k, v in (("naswot", picked), ("random", rand), ("best_valid", oracle))}
        pub = NASWOT_PUBLISHED.get(n)
        se = np.std(picked) / np.sqrt(len(picked))
        rows.append([str(n), f"{np.mean(picked):.2f} ± {np.std(picked):.2f} (s.e. {se:.2f})",
                     f"{pub[0]:.2f} ± {pub[1]:.2f}" if pub else "–", f"{np.mean(rand):.2f} ± {np.std(rand):.2f}",
                     f"{np.mean(oracle):.2f} ± {np.std(oracle):.2f}"])
    table = _md(["N", "NASWOT (ours): mean ± sd (s.e. of the mean)", "NASWOT (published): mean ± sd",
                 "a random cell", "best valid_acc of the N (trained)"], rows)
    return protocol, table


def _search_curves(bench, space, seeds, budget, initial_for):
    from nasforge.analysis.anytime import incumbent_curve
    from nasforge.strategies import RegularizedEvolution
    from nasforge.study import Study

    curves, seconds = [], []
    for seed in seeds:
        init, secs = initial_for(seed)
        seconds.append(secs)
        strategy = RegularizedEvolution(space, seed=int(seed), initial=init)
        study = Study(f"s{seed}", space, "valid_acc")
        study.optimize(strategy, bench, n_trials=budget)
        trials = study.finished_trials
        curves.append(incumbent_curve([t.metrics["valid_acc"] for t in trials],
                                      [t.metrics["test_acc_full"] for t in trials]))
    return curves, float(np.mean(seconds))


def cmd_report(args: argparse.Namespace) -> None:
    from nasforge.analysis.anytime import anytime_table
    from nasforge.analysis.correlation import bootstrap, kendall_tau, plot_score_vs_metric, spearman, top_k_precision
    from nasforge.estimation import load_benchmark
    from nasforge.estimation.proxies import PROXIES, ProxyTable, RankEnsemble, proxy_warm_start, read_results

    out = Path(args.out)
    bench = load_benchmark("nb201:cifar10", data_dir=args.data_dir)
    space = bench.space
    cheap = read_results(out / "proxies_nb201_c10_cheap.csv")
    files = {"cheap": cheap}
    exp_path = out / "proxies_nb201_c10_zen-grasp.csv"
    if exp_path.exists():
        files["zen-grasp"] = read_results(exp_path)
    zr_path = out / "proxies_nb201_c10_zen_zenrunning.csv"
    if zr_path.exists():
        files["zen-running"] = read_results(zr_path).rename(columns={"zen": "zen (running-variance BN term)"})
    nw_path = out / "proxies_nb201_c10_naswot_cl.csv"
    nw = read_results(nw_path) if nw_path.exists() else None

    def acc(index, metric):
        return np.array([bench.query(a, metric) for a in index])

    report: dict = {"settings": cheap.attrs.get("settings"), "correlations": {}, "ensembles": {}}
    lines = ["# Zero-cost proxies on NB201 / CIFAR-10 (generated by benchmarks/proxies_nb201.py report)", ""]

    # 1. rank correlations per proxy ------------------------------------------------------------------
    rows = []
    plots = out / "proxy_scatter"
    plots.mkdir(exist_ok=True)
    for label, df in files.items():
        yv, yt = acc(df.index, "valid_acc"), acc(df.index, "test_acc")
        for p in [c for c in df.columns if c in PROXIES or c.startswith("zen (")]:
            x = df[p].to_numpy(float)
            bv = bootstrap(spearman, x, yv, n_boot=args.boot, seed=0)
            bt = bootstrap(spearman, x, yt, n_boot=args.boot, seed=0)
            tau = kendall_tau(x, yv)
            top = top_k_precision(x, yv, 0.1)
            pub = PUBLISHED.get(p.split(" ")[0], (float("nan"),) * 2)[0]
            report["correlations"][p] = {"n": len(df), "file": label, "valid": bv, "test": bt, "kendall_valid": tau,
                                         "top10_valid": top, "published_valid": pub}
            plot_score_vs_metric(x, yv, str(plots / f"{p.split(' ')[0]}{'_running' if ' ' in p else ''}.png"), xlabel=f"{p} score", ylabel="valid_acc_200 (%)",
                                 title=f"NB201 C10, {len(df)} cells")
            rows.append([p, str(len(df)), f"{bv['value']:.3f} ± {bv['se']:.3f} [{bv['low']:.2f}, {bv['high']:.2f}]",
                         f"{pub:.2f}" if pub == pub else "–", f"{bv['value'] - pub:+.3f}" if pub == pub else "–",
                         f"{bt['value']:.3f} ± {bt['se']:.3f}", f"{tau:.3f}", f"{top:.2f}"])
    rows.sort(key=lambda r: -float(r[2].split()[0]))
    lines += ["## Spearman rho per proxy (bootstrap se and 95% interval over architectures)", "",
              _md(["proxy", "cells", "rho vs valid_acc_200", "published (Suite-Zero, C10)", "ours - published",
                   "rho vs test_acc_200", "Kendall tau (valid)", "top-10% precision (valid)"], rows), ""]

    # 2. ensembles ------------------------------------------------------------------------------------------
    yv, yt = acc(cheap.index, "valid_acc"), acc(cheap.index, "test_acc")
    cheap_members = [c for c in cheap.columns if c in PROXIES]
    ens_rows = []
    for name, members in (("mean rank: naswot+synflow+jacov (a priori)", list(ENSEMBLE)),
                          ("mean rank: naswot+synflow", ["naswot", "synflow"]),
                          ("mean rank: all cheap proxies", cheap_members)):
        score = RankEnsemble(members).score(cheap)
        bv = bootstrap(spearman, score, yv, n_boot=args.boot, seed=0)
        bt = bootstrap(spearman, score, yt, n_boot=args.boot, seed=0)
        report["ensembles"][name] = {"valid": bv, "test": bt, "members": members}
        ens_rows.append([name, str(len(cheap)), f"{bv['value']:.3f} ± {bv['se']:.3f} [{bv['low']:.2f}, {bv['high']:.2f}]",
                         f"{bt['value']:.3f} ± {bt['se']:.3f}", f"{kendall_tau(score, yv):.3f}",
                         f"{top_k_precision(score, yv, 0.1):.2f}"])
    # learned weights: fit on 100 labelled cells, evaluate on the other cells, 20 random splits
    rng = np.random.default_rng(0)
    rv, rt, weights = [], [], []
    for _ in range(20 if len(cheap) > 200 else 0):
        perm = rng.permutation(len(cheap))
        fit_i, ev_i = perm[:100], perm[100:]
        ens = RankEnsemble(cheap_members).fit(cheap.iloc[fit_i], yv[fit_i])
        score = ens.score(cheap.iloc[ev_i])
        rv.append(spearman(score, yv[ev_i]))
        rt.append(spearman(score, yt[ev_i]))
        weights.append([ens.weights[m] for m in cheap_members])
    mean_w: dict = {}
    if rv:
        mean_w = dict(zip(cheap_members, np.mean(weights, axis=0).round(3).tolist()))
        name = (f"learned weights over all cheap proxies (fit on 100 labelled cells, scored on the other "
                f"{len(cheap) - 100}; 20 splits)")
        report["ensembles"][name] = {"valid_mean": float(np.mean(rv)), "valid_sd": float(np.std(rv, ddof=1)),
                                     "test_mean": float(np.mean(rt)), "mean_weights": mean_w}
        ens_rows.append([name, f"{len(cheap) - 100}", f"{np.mean(rv):.3f} (sd {np.std(rv, ddof=1):.3f} over splits)",
                         f"{np.mean(rt):.3f}", "–", "–"])
    lines += ["## Rank ensembles", "", _md(["ensemble", "cells", "rho vs valid_acc_200", "rho vs test_acc_200",
                                            "Kendall tau (valid)", "top-10% (valid)"], ens_rows), ""]
    if mean_w:
        lines += ["Mean learned weights: " + ", ".join(f"{k} {v}" for k, v in mean_w.items() if v > 0.005), ""]

    # 3. NASWOT's protocol --------------------------------------------------------------------------------
    pool = cheap["naswot"].copy()
    if nw is not None:
        common = pool.index.intersection(nw.index)
        if len(common):
            a, b = pool.loc[common].to_numpy(), nw.loc[common, "naswot"].to_numpy()
            fin = np.isfinite(a) & np.isfinite(b)
            report["naswot_layout_agreement"] = {"cells": int(len(common)), "spearman": spearman(a, b),
                                                 "max_abs_diff": float(np.max(np.abs(a[fin] - b[fin])))}
        pool = pool.combine_first(nw["naswot"])
    scores = pool.to_numpy(float)
    test_full = acc(pool.index, "test_acc_full")
    valid = acc(pool.index, "valid_acc")
    protocol, table = _best_of_n(scores, valid, test_full, args.repeats)
    report["naswot_protocol"] = {"pool": int(len(pool)), **protocol}
    lines += [f"## NASWOT protocol: best-scored of N random cells, CIFAR-10 test_acc_200_full "
              f"({args.repeats} repeats, drawn from a pool of {len(pool)} scored cells)", "", table, ""]

    # 4. AREA-style warm start vs plain RE ------------------------------------------------------------------
    seeds = range(args.search_seeds)
    at = [25, 50, 100]
    curves = {}
    costs = {}
    curves["re"], costs["re"] = _search_curves(bench, space, seeds, max(at), lambda s: (None, 0.0))
    groups = ["build", "static", "gradient", "synflow"]
    table = ProxyTable(space, cheap, groups=groups)
    ens = RankEnsemble(list(ENSEMBLE))
    cands = list(cheap.index)

    def area_ens(seed):
        ws = proxy_warm_start(space, table, args.area_samples, 20, seed=seed, ensemble=ens, candidates=cands)
        return ws.archs, ws.seconds

    label_e = f"AREA: ensemble top-20 of N={args.area_samples}"
    curves[label_e], costs[label_e] = _search_curves(bench, space, seeds, max(at), area_ens)
    if nw is not None and len(pool) >= 1000:
        nw_cost = float(nw["seconds"].mean())
        nw_table = ProxyTable(space, pool.to_frame().assign(seconds=nw_cost))
        nw_cands = list(pool.index)
        n_nw = 1000 if len(pool) >= 2000 else args.area_samples

        def area_nw(seed):
            ws = proxy_warm_start(space, nw_table, n_nw, 20, seed=seed, ensemble=RankEnsemble(["naswot"]),
                                  candidates=nw_cands)
            return ws.archs, ws.seconds

        label_n = f"AREA: NASWOT top-20 of N={n_nw}"
        curves[label_n], costs[label_n] = _search_curves(bench, space, seeds, max(at), area_nw)
    tab = anytime_table(curves, at)
    search_rows = []
    report["search"] = {}
    for label in curves:
        cells = [f"{tab.loc[(label, q), 'mean']:.2f} ± {tab.loc[(label, q), 'std']:.2f} (se {tab.loc[(label, q), 'se']:.3f})"
                 for q in at]
        search_rows.append([label, *cells, f"{costs[label]:.0f} s"])
        report["search"][label] = {str(q): {k: float(tab.loc[(label, q), k]) for k in ("mean", "std", "se")} for q in at}
        report["search"][label]["proxy_seconds"] = costs[label]
    lines += [f"## AREA-style warm start vs regularised evolution (nb201:cifar10 table, select valid_acc, report "
              f"test_acc_full, {args.search_seeds} seeds, RE population 20 / tournament 10)", "",
              _md(["method", *(f"@{q} queries" for q in at), "proxy compute per search"], search_rows), ""]
    # 5. cost ------------------------------------------------------------------------------------------------
    tpath = out / "proxies_nb201_timing.json"
    if tpath.exists():
        timing = json.loads(tpath.read_text())
        cost_rows = [[label, f"{np.mean(v['seconds']):.3f}", f"{np.std(v['seconds'], ddof=1):.3f}",
                      str(len(v["seconds"])), str(v["threads"]), f"{v['load']:.1f}"] for label, v in timing.items()]
        lines += ["## Seconds per architecture (each proxy computed alone; C=16, N=5, batch 128, 32x32)", "",
                  _md(["proxy", "mean s", "sd", "cells", "torch threads", "load average when measured"], cost_rows), ""]
        report["timing"] = {k: float(np.mean(v["seconds"])) for k, v in timing.items()}
    for label, df in (("cheap file", cheap), *(((f"{k} file", v) for k, v in files.items() if k != "cheap")),
                      *((("naswot (channels-last) file", nw),) if nw is not None else ())):
        cols = [c for c in df.columns if c == "seconds" or c.startswith("sec_")]
        report.setdefault("recorded_seconds", {})[label] = {c: float(df[c].mean()) for c in cols}
    if nw is not None:
        per = float(nw["seconds"].mean())
        lines += [f"NASWOT alone (no_grad, channels-last, 1 thread): {per:.3f} s per cell over {len(nw)} cells; all "
                  f"15,625 cells: {per * 15625 / 3600:.2f} h on one core, {per * 15625 / 7200:.2f} h with two "
                  "processes on two free cores.", ""]
    text = "\n".join(lines)
    (out / "proxies_nb201_report.md").write_text(text + "\n")
    (out / "proxies_nb201_report.json").write_text(json.dumps(report, indent=1, default=float))
    print(text)


def cmd_naswot_all(args: argparse.Namespace) -> None:
    """NASWOT over the whole space: rank correlations on every scored cell and the best-of-N protocol."""
    from nasforge.analysis.correlation import kendall_tau, spearman
    from nasforge.estimation import load_benchmark
    from nasforge.estimation.proxies import read_results

    out = Path(args.out)
    path = Path(args.file) if args.file else out / "proxies_nb201_c10_naswot_cl.csv"
    # rows in a fixed order (by cell string): worker shards are merged in completion order, and the
    # protocol's draws index rows, so the same scores must give the same draws however the file was written
    nw = read_results(path).sort_index()
    bench = load_benchmark("nb201:cifar10", data_dir=args.data_dir)
    scores = nw["naswot"].to_numpy(float)
    metric = {m: np.array([bench.query(a, m) for a in nw.index]) for m in ("valid_acc", "test_acc", "test_acc_full")}
    n_inf = int(np.sum(np.isneginf(scores)))
    rep: dict = {"file": str(path), "cells": int(len(nw)), "neg_inf_cells": n_inf,
                 "seconds_per_cell": float(nw["seconds"].mean()), "correlations": {}, "protocol": {}}
    rows = []
    for m in ("valid_acc", "test_acc"):
        rho, tau = spearman(scores, metric[m]), kendall_tau(scores, metric[m])
        fin = np.isfinite(scores)
        rho_f, tau_f = spearman(scores[fin], metric[m][fin]), kendall_tau(scores[fin], metric[m][fin])
        rep["correlations"][m] = {"spearman": rho, "kendall": tau, "spearman_finite": rho_f, "kendall_finite": tau_f}
        rows.append([f"{m}_200", f"{rho:.4f}", f"{tau:.4f}", f"{rho_f:.4f}", f"{tau_f:.4f}"])
    lines = [f"## NASWOT over {len(nw)} NB201 cells (CIFAR-10; {n_inf} cells score -inf and rank lowest)", "",
             _md(["vs", "Spearman rho (all)", "Kendall tau (all)", "rho (finite scores only)", "tau (finite only)"],
                 rows), ""]
    rep["protocol"], table = _best_of_n(scores, metric["valid_acc"], metric["test_acc_full"], args.repeats)
    lines += [f"## NASWOT protocol: best-scored of N random cells, CIFAR-10 test_acc_200_full ({args.repeats} "
              f"repeats, drawn from {len(nw)} scored cells)", "", table, ""]
    runs = path.with_name(path.name + ".runs.jsonl")
    if runs.exists():
        rep["runs"] = [json.loads(line) for line in runs.read_text().splitlines() if line.strip()]
    text = "\n".join(lines)
    (out / "naswot_all_report.md").write_text(text + "\n")
    (out / "naswot_all_report.json").write_text(json.dumps(rep, indent=1, default=float))
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="phase", required=True)
    s = sub.add_parser("score", help="score a fixed random sample of cells (resumable)")
    s.add_argument("--proxies", default="cheap")
    s.add_argument("--n", type=int, default=1000, help="cells (prefix of the fixed permutation)")
    s.add_argument("--start", type=int, default=0, help="skip the first cells of the sample")
    s.add_argument("--channels-last", action="store_true")
    s.add_argument("--zen-bn", default="batch", choices=("batch", "running"),
                   help="zen's BN term: batch variance (the paper) or running variance (NAS-Bench-Suite-Zero code)")
    s.add_argument("--file", default=None, help="results CSV (default: derived from the proxies under --out)")
    s.add_argument("--all", action="store_true", help="every cell of the space (the whole fixed permutation)")
    s.add_argument("--workers", type=int, default=1,
                   help="processes (each --threads threads) sharing the cells; each writes its own resumable "
                        "shard, merged into the results file at the end")
    s.add_argument("--shard", default=None, help=argparse.SUPPRESS)  # W/K: run as worker W of K
    s.add_argument("--naswot-method", default="int8", choices=("int8", "float32"),
                   help="NASWOT kernel GEMM: int8 (default) or float32 (the former path); identical scores")
    s.add_argument("--no-prune", action="store_true",
                   help="NASWOT: run every NB201 cell edge (no skipping of work that cannot change a code)")
    s.add_argument("--no-tune-malloc", dest="tune_malloc", action="store_false",
                   help="leave glibc malloc at its defaults (see tune_malloc)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_score)
    t = sub.add_parser("timing", help="seconds per architecture of every proxy alone")
    t.add_argument("--n", type=int, default=10, help="cells (the first of the fixed sample)")
    t.add_argument("--only", default=None, help="time only the setups whose label contains this text")
    t.add_argument("--no-tune-malloc", dest="tune_malloc", action="store_false",
                   help="leave glibc malloc at its defaults (see tune_malloc)")
    t.set_defaults(func=cmd_timing)
    r = sub.add_parser("report", help="correlations, ensembles, NASWOT protocol, AREA vs RE")
    r.add_argument("--boot", type=int, default=1000, help="bootstrap resamples for the error bars")
    r.add_argument("--repeats", type=int, default=500, help="repeats of NASWOT's best-of-N protocol")
    r.add_argument("--search-seeds", type=int, default=100, help="seeds of RE / AREA")
    r.add_argument("--area-samples", type=int, default=200, help="AREA: cells scored per search (N)")
    r.set_defaults(func=cmd_report)
    a = sub.add_parser("naswot-all", help="NASWOT over all scored cells: correlations and best-of-N protocol")
    a.add_argument("--file", default=None, help="NASWOT results CSV (default: the channels-last one under --out)")
    a.add_argument("--repeats", type=int, default=500, help="repeats of NASWOT's best-of-N protocol")
    a.set_defaults(func=cmd_naswot_all)
    for sp in (s, t, r, a):
        sp.add_argument("--out", default=str(OUT))
        sp.add_argument("--seed", type=int, default=0, help="batch and weight-initialisation seed")
        sp.add_argument("--sample-seed", type=int, default=0, help="seed of the random cell sample")
        sp.add_argument("--batch-size", type=int, default=128)
        sp.add_argument("--threads", type=int, default=1)
        sp.add_argument("--data-dir", default=None)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
