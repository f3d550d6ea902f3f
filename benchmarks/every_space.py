"""Every strategy, 100 trials, on every space; and chi-square checks of random sampling.

Part 1 (search). Each registered strategy (random, RE, LS, BO, BANANAS, the multi-fidelity
schedulers SH/Hyperband/ASHA/PASHA, the multi-objective NSGA-II/MO-RE/Chebyshev/MO-random) runs
``--trials`` trials with its default settings on each space: NB201 (C=8, N=1), DARTS (C=8,
5 layers), NAS-Bench-101 (stem 16, 1 cell per stack), NAS-Bench-Macro, the MobileNetV3-like
space, a user's ``ChoiceSpace`` (small CNNs as in the README, 144 architectures) and NAS-Bench-Graph. The estimator:

- image spaces and the user's space: the SNIP zero-cost proxy (sum |theta * dL/dtheta|; finite for
  every network, unlike NASWOT, which is -inf for cells that cut the input off and needs ReLUs)
  and ``params`` (millions) of the untrained network on one fixed batch of 32 digits images (8x8, 1 channel), :class:`~nasforge.estimation.proxies.
  ProxyEstimator`, one thread. The multi-fidelity schedulers get the same proxy with the batch
  as the fidelity: rungs 1, 3, 9 score on 8, 24 and 72 images. Proxy scores are deterministic
  per architecture (weights seeded by the architecture), so they are cached across strategies.
- NAS-Bench-Graph (no networks to build): its Cora table (``nbgraph:cora``). The table has one
  fidelity, so the multi-fidelity schedulers do not apply there (not run; they are exercised on
  NAS-Bench-Graph with a synthetic multi-fidelity objective in tests/test_every_space.py).

The objective is SNIP (higher is better); the multi-objective strategies also minimise
``params``. Reported per space and strategy: completed/failed trials, distinct architectures,
the best objective found, and the strategy's own CPU seconds per ask. One seed per cell of the
table (``--seed``): the best-found column is an illustration, not a comparison of strategies.

Part 2 (uniformity). ``--draws`` random architectures per space (``space.sample`` with a fixed
seed); per position (NB201 edge, DARTS cell edge, NB101 interior vertex, macro layer, MBV3 block,
user choice, NAS-Bench-Graph node) the counts of each operation are compared with what the
sampler promises (uniform; for NAS-Bench-Graph the table's own mix, since it samples the
26,206 architectures uniformly) by a chi-square test: the smallest per-position p-value times the
number of positions (Bonferroni) and the p-value of the summed statistic.

    nice -n 10 python benchmarks/every_space.py                 # both parts (about 25 min, 1 thread)
    python benchmarks/every_space.py --part uniformity          # part 2 only (seconds)

Results are written per space and strategy under ``--out`` (a re-run resumes); the tables are
printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

SPACES = ("nb201", "darts", "nb101", "macro", "mbv3", "user", "nbgraph")
#: network settings: small networks, as a CPU search would use them
NETS: dict[str, dict[str, Any]] = {
    "nb201": {"C": 8, "N": 1},
    "darts": {"C": 8, "layers": 5},
    "nb101": {"stem_channels": 16, "cells_per_stack": 1},
    "macro": {},
    "mbv3": {},
    "user": {},
}
RUNGS = [1, 3, 9]
BATCH = 32


def make_cnn(cfg: dict[str, Any], num_classes: int, in_channels: int, **_: Any) -> Any:
    """A user's space (the README's, with more choices: 144 architectures, so 100 distinct trials
    fit): a stack of conv-BN-activation layers and a linear classifier."""
    from torch import nn

    act = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}[cfg["act"]]
    layers: list[Any] = []
    c = in_channels
    for _ in range(cfg["depth"]):
        layers += [nn.Conv2d(c, cfg["width"], cfg["kernel"], padding=cfg["kernel"] // 2),
                   nn.BatchNorm2d(cfg["width"]), act()]
        c = cfg["width"]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


def space_of(name: str) -> Any:
    from nasforge.spaces import ChoiceSpace, get_space

    if name == "user":
        return ChoiceSpace({"depth": [1, 2, 3, 4], "width": [8, 16, 24, 32], "kernel": [1, 3, 5],
                            "act": ["relu", "gelu", "silu"]}, builder=make_cnn, name="user-cnn")
    return get_space(name)


class CachedProxy:
    """SNIP and params of the untrained network; the fidelity (1, 3, 9) scales the batch (8,
    24, 72 images); without a fidelity the batch is ``BATCH``. Scores are cached per
    (architecture, batch)."""

    fidelities = tuple(float(r) for r in RUNGS)

    def __init__(self, space: Any, name: str, data: Any) -> None:
        from nasforge.estimation.proxies.estimator import ProxyEstimator

        self.space = space
        self._est = {b: ProxyEstimator(space, data, proxies=["snip", "params"], batch_size=b, net=NETS[name],
                                       threads=1) for b in (BATCH, *(8 * r for r in RUNGS))}
        self.cache: dict[tuple[str, int], Any] = {}
        self.evaluated = 0

    @property
    def metric_names(self) -> list[str]:
        return ["snip", "params"]

    def estimate(self, arch: Any, fidelity: float | None = None) -> Any:
        b = BATCH if fidelity is None else 8 * int(round(fidelity))
        key = (self.space.format(arch), b)
        if key not in self.cache:
            self.cache[key] = self._est[b].estimate(arch)
            self.evaluated += 1
        return self.cache[key]


def wrap(cached: CachedProxy) -> Any:
    """The cache as a library :class:`Estimator` (the study checks the type)."""
    from nasforge.estimation import Estimator

    class _Est(Estimator):
        fidelities = cached.fidelities

        @property
        def metric_names(self) -> list[str]:
            return cached.metric_names

        def estimate(self, arch: Any, fidelity: float | None = None) -> Any:
            return cached.estimate(arch, fidelity)

    return _Est()


# --- part 1 -------------------------------------------------------------------------------------
def run_search(args: argparse.Namespace, out: Path) -> None:
    import torch

    from nasforge.data import load_dataset
    from nasforge.estimation import load_benchmark
    from nasforge.strategies import MULTI_FIDELITY, MULTI_OBJECTIVE, STRATEGIES, get_strategy
    from nasforge.study import Study, TrialState

    torch.set_num_threads(1)
    data = load_dataset("digits")
    for name in args.spaces.split(","):
        space = space_of(name)
        if name == "nbgraph":
            table = load_benchmark("nbgraph:cora")
            est, objective, space = table, table.default_metric, table.space
        else:
            cached = CachedProxy(space, name, data)
            est, objective = wrap(cached), "snip"
        for strategy in args.strategies.split(",") if args.strategies else list(STRATEGIES):
            f = out / name / f"{strategy}.json"
            if f.is_file() or (name == "nbgraph" and strategy in MULTI_FIDELITY):
                continue
            f.parent.mkdir(parents=True, exist_ok=True)
            multi = strategy in MULTI_OBJECTIVE
            study = Study(f"{name}-{strategy}", space, [objective, "params"] if multi else objective,
                          [True, False] if multi else True)
            kw: dict[str, Any] = {"rungs": RUNGS} if strategy in MULTI_FIDELITY else {}
            st = get_strategy(strategy, space, seed=args.seed, **kw)
            ask_cpu = [0.0]
            ask = st.ask

            def timed_ask(*a: Any, _ask: Any = ask, **k: Any) -> Any:
                t = time.process_time()
                try:
                    return _ask(*a, **k)
                finally:
                    ask_cpu[0] += time.process_time() - t

            st.ask = timed_ask  # type: ignore[method-assign]
            t0 = time.perf_counter()
            study.optimize(st, est, n_trials=args.trials)
            wall = time.perf_counter() - t0
            done = [t for t in study.trials if t.state is TrialState.COMPLETE]
            top = [t for t in done if t.fidelity is None or t.fidelity == max(RUNGS)] if strategy in MULTI_FIDELITY \
                else done
            best = max((t.metrics[objective] for t in top), default=float("nan"))
            errors = sorted({str(t.error)[:120] for t in study.trials if t.state is not TrialState.COMPLETE})
            res = {"space": name, "strategy": strategy, "trials": len(study.trials), "complete": len(done),
                   "failed": len(study.trials) - len(done), "distinct": len({t.arch for t in study.trials}),
                   "best": float(best), "objective": objective, "ask_cpu_s": ask_cpu[0] / max(1, len(study.trials)),
                   "wall_s": wall, "errors": errors}
            if multi:
                res["params_of_best_tradeoffs"] = sorted(float(t.metrics["params"]) for t in done)[:3]
            tmp = f.with_suffix(".tmp")
            tmp.write_text(json.dumps(res))
            os.replace(tmp, f)
            print(f"{name:8s} {strategy:10s} {len(done)}/{len(study.trials)} complete, {res['distinct']} distinct, "
                  f"best {objective} {best:.2f}, {res['ask_cpu_s'] * 1e3:.1f} ms/ask, {wall:.0f} s", flush=True)


def report_search(args: argparse.Namespace, out: Path) -> None:
    from nasforge.strategies import STRATEGIES

    strategies = args.strategies.split(",") if args.strategies else list(STRATEGIES)
    spaces = [s for s in args.spaces.split(",") if (out / s).is_dir()]
    if not spaces:
        return
    print(f"\n{args.trials} trials per strategy and space, seed {args.seed}: completed/trials, distinct architectures, "
          "best objective (SNIP on 32 digits images; NAS-Bench-Graph: Cora table), ms of strategy CPU per ask")
    print("| strategy | " + " | ".join(spaces) + " |")
    print("|---|" + "---|" * len(spaces))
    for strategy in strategies:
        cells = []
        for s in spaces:
            f = out / s / f"{strategy}.json"
            if not f.is_file():
                cells.append("—")
                continue
            r = json.loads(f.read_text())
            cells.append(f"{r['complete']}/{r['trials']}, {r['distinct']}, {r['best']:.4g}, {r['ask_cpu_s'] * 1e3:.1f}")
        print(f"| {strategy} | " + " | ".join(cells) + " |")
    errors = [(s, st, e) for s in spaces for st in strategies if (out / s / f"{st}.json").is_file()
              for e in json.loads((out / s / f"{st}.json").read_text())["errors"]]
    for s, st, e in errors:
        print(f"failed trials: {s} {st}: {e}")


# --- part 2 -------------------------------------------------------------------------------------
def observations(name: str, space: Any, archs: list[Any]) -> tuple[dict[Any, list[Any]], dict[Any, dict[Any, float]]]:
    """Per position, the observed choices and the probabilities the sampler promises."""
    def uniform(values: Any) -> dict[Any, float]:
        values = list(values)
        return {v: 1.0 / len(values) for v in values}

    if name == "nb201":
        obs = {e: [a[e] for a in archs] for e in range(len(archs[0]))}
        return obs, {e: uniform(space.ops) for e in obs}
    if name == "darts":
        from nasforge.spaces.darts import CELLS, OPS, STEPS

        obs = {(c, k): [a.cell(c)[k][0] for a in archs] for c in CELLS for k in range(2 * STEPS)}
        return obs, {p: uniform(OPS) for p in obs}
    if name == "nb101":
        from nasforge.spaces.nb101 import OPS

        return {"interior op": [op for a in archs for op in a.ops[1:-1]]}, {"interior op": uniform(OPS)}
    if name == "macro":
        from nasforge.spaces.macro import LAYERS, OPS

        obs = {layer: [a[layer] for a in archs] for layer in range(LAYERS)}
        return obs, {p: uniform(range(len(OPS))) for p in obs}
    if name == "mbv3":
        from nasforge.spaces.macro import BLOCK_CHOICES

        obs = {s: [b for a in archs for b in a[s]] for s in range(len(archs[0]))}
        return obs, {p: uniform(BLOCK_CHOICES) for p in obs}
    if name == "user":
        obs = {k: [a[i] for a in archs] for i, k in enumerate(space.keys)}
        return obs, {k: uniform(space.values[i]) for i, k in enumerate(space.keys)}
    if name == "nbgraph":
        every = list(space)
        n_nodes = len(every[0].ops)
        probs = {}
        for i in range(n_nodes):
            counts = Counter(a.ops[i] for a in every)
            probs[i] = {op: c / len(every) for op, c in counts.items()}
        return {i: [a.ops[i] for a in archs] for i in range(n_nodes)}, probs
    raise ValueError(name)


def chi2_test(obs: dict[Any, list[Any]], probs: dict[Any, dict[Any, float]]) -> dict[str, Any]:
    from scipy.stats import chi2

    stats, dfs, ps = [], [], []
    for pos, values in obs.items():
        counts = Counter(values)
        outcomes = list(probs[pos])
        assert set(counts) <= set(outcomes), (pos, set(counts) - set(outcomes))
        n = len(values)
        exp = np.array([probs[pos][o] * n for o in outcomes])
        got = np.array([counts.get(o, 0) for o in outcomes], dtype=float)
        s = float(((got - exp) ** 2 / exp).sum())
        stats.append(s)
        dfs.append(len(outcomes) - 1)
        ps.append(float(chi2.sf(s, len(outcomes) - 1)))
    return {"positions": len(obs), "outcomes_per_position": sorted({len(p) for p in probs.values()}),
            "observations_per_position": int(np.mean([len(v) for v in obs.values()])),
            "bonferroni_p": min(1.0, min(ps) * len(ps)), "pooled_stat": sum(stats), "pooled_df": sum(dfs),
            "pooled_p": float(chi2.sf(sum(stats), sum(dfs)))}


def run_uniformity(args: argparse.Namespace) -> None:
    print(f"\nRandom sampling, {args.draws} draws per space (seed {args.seed}): chi-square per position")
    print("| space | positions | outcomes per position | draws per position | Bonferroni p (smallest p x positions) "
          "| pooled χ² (df) | pooled p |")
    print("|---|---|---|---|---|---|---|")
    for name in args.spaces.split(","):
        if name == "nbgraph":
            from nasforge.estimation import load_benchmark

            space = load_benchmark("nbgraph:cora").space
        else:
            space = space_of(name)
        rng = np.random.default_rng(args.seed)
        archs = [space.sample(rng) for _ in range(args.draws)]
        r = chi2_test(*observations(name, space, archs))
        print(f"| {name} | {r['positions']} | {', '.join(map(str, r['outcomes_per_position']))} | "
              f"{r['observations_per_position']:,} | {r['bonferroni_p']:.3f} | {r['pooled_stat']:.1f} ({r['pooled_df']}) "
              f"| {r['pooled_p']:.3f} |", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("all", "search", "uniformity", "report"), default="all")
    p.add_argument("--spaces", default=",".join(SPACES))
    p.add_argument("--strategies", default="", help="comma-separated (default: every registered strategy)")
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--draws", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/out/every_space")
    args = p.parse_args()
    bad = sorted(set(args.spaces.split(",")) - set(SPACES))
    if bad:
        sys.exit(f"unknown space {bad[0]!r}; allowed: {', '.join(SPACES)}")
    out = Path(args.out) / f"trials{args.trials}-seed{args.seed}"
    if args.part in ("all", "search"):
        run_search(args, out)
    if args.part in ("all", "search", "report"):
        report_search(args, out)
    if args.part in ("all", "uniformity"):
        run_uniformity(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
