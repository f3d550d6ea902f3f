"""The main job beside a CPU-bound neighbour (issue 19).

Runs ``nasforge search`` on the embedded default task (no benchmark, no dataset: what a new
user runs first) with ``--budget B``, once without and once beside one CPU-bound neighbour
process (a Python busy loop at the same priority), and reports wall time, CPU time and the
slowdown. Two thread policies:

- ``chosen``: what ``nasforge search`` does (threads from the cores other processes leave free,
  idle OpenMP threads sleep rather than spin);
- ``all-cores``: the former behaviour, forced for comparison (one thread per core, OpenMP's
  default waiting).

Goal: at most 2.5x the time without the neighbour, on 2 cores. The machine is not reserved for
this: the load average before each run is printed, and "without the neighbour" means only
without the one this script starts.

    python benchmarks/busy_neighbour.py --budget 10
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

#: forces one torch thread per core and leaves OpenMP's waiting policy at its default
ALL_CORES = (
    "import os, sys\n"
    "os.environ.pop('OMP_WAIT_POLICY', None)\n"
    "import torch\n"  # OpenMP reads its settings when torch loads: before main() sets PASSIVE
    "import nasforge.estimation.training as t\n"
    "t.free_cores = lambda sample=0.2: os.cpu_count() or 1\n"
    "from nasforge.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
NEIGHBOUR = "while True:\n    pass\n"


def run_search(policy: str, budget: int, folder: str) -> dict[str, float | str]:
    """One search in a child process: wall seconds, CPU seconds, search seconds, threads line."""
    run = f"{policy}-{time.monotonic_ns()}"  # a new database each time: the default study name is fixed
    args = ["search", "--budget", str(budget), "--storage", "sqlite:///" + os.path.join(folder, f"{run}.db"),
            "--workdir", os.path.join(folder, run), "--quiet"]
    if policy == "chosen":
        cmd = [sys.executable, "-m", "nasforge", *args]
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    else:
        cmd = [sys.executable, "-c", ALL_CORES, *args]
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"search failed ({policy}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    m = re.search(r"new trial\(s\) in ([0-9.]+) s", proc.stdout)
    first = proc.stdout.splitlines()[0]
    return {"wall": wall, "cpu": cpu, "search": float(m.group(1)) if m else float("nan"), "first": first}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=10, help="trials per search (default 10; the default search: 40)")
    ap.add_argument("--policies", default="chosen,all-cores")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPU(s), affinity {len(os.sched_getaffinity(0))}; nasforge search "
          f"(the embedded default task) --budget {args.budget}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="busy-neighbour-") as folder:
        for policy in args.policies.split(","):
            for rep in range(args.repeats):
                res = {}
                for label in ("without", "beside"):
                    neighbour = None
                    if label == "beside":
                        neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR])
                        time.sleep(2.0)  # let it show in the load the search reads
                    load = os.getloadavg()[0]
                    try:
                        r = run_search(policy, args.budget, folder)
                    finally:
                        if neighbour is not None:
                            neighbour.kill()
                            neighbour.wait()
                    r["load"] = load
                    res[label] = r
                    print(f"  {policy:9s} {label:7s} neighbour: wall {r['wall']:6.1f} s, search {r['search']:6.1f} s, "
                          f"CPU {r['cpu']:6.1f} s, load before {load:.2f} | {r['first']}", flush=True)
                slow = res["beside"]["wall"] / res["without"]["wall"]
                slow_s = res["beside"]["search"] / res["without"]["search"]
                rows.append((policy, rep, slow, slow_s))
                print(f"  {policy}: slowdown beside one busy neighbour: {slow:.2f}x wall, {slow_s:.2f}x search "
                      f"(goal <= 2.5x)", flush=True)
    print("\npolicy     slowdown (wall)  slowdown (search loop)")
    for policy, rep, slow, slow_s in rows:
        print(f"{policy:10s} {slow:15.2f}x {slow_s:20.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
