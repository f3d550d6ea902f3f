"""How fast the dashboard opens a large study: a 20,000-trial random search on NAS-Bench-Graph
(arxiv; the table ships with the nas-bench-graph package, so no data folder is needed).

The study is written once into benchmarks/out/ (git-ignored; reused on later runs). Each repeat
starts a fresh dashboard server and a fresh headless Chromium (the system's, /usr/bin/chromium)
and measures, from navigation to the moment the page marks itself ready (summary, curve, first
page of the trial table, op-frequency view and the best cell's diagram all drawn):

* ``first visit``: a new browser (empty cache) right after the server has read the study in
  the background (what a user gets who opens the front page and then the study);
* ``cold server``: the same, but the server has read nothing yet (its first request reads the
  20,000 trials and builds the space);
* ``repeat visit``: the same page opened again in that browser (plotly.js cached);
* ``new result``: another process adds a trial; the seconds until the open page shows it
  (polled every --refresh seconds, then every study view re-read).

Also the server-side time of each JSON endpoint on a warm cache. Prints a Markdown table with
means and standard errors, and the machine's load average (the numbers are wall-clock times on a
shared 2-core machine).

    python benchmarks/dashboard_load.py --trials 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
CHROMIUM = "/usr/bin/chromium"


def make_study(path: Path, n: int) -> str:
    """The benchmark study (random search on nbgraph:arxiv, seed 0), written if absent."""
    from nasforge.estimation import load_benchmark
    from nasforge.strategies import get_strategy
    from nasforge.study import create_study, get_storage

    url = f"sqlite:///{path}"
    name = f"random-nbgraph-arxiv-{n}"
    if path.exists():
        store = get_storage(url, create=False)
        found = store.study_id(name)
        if found is not None and store.progress(found[0]).n_trials >= n:
            store.close()
            return name
        store.close()
    bench = load_benchmark("nbgraph:arxiv")
    study = create_study(name, bench.space, bench.default_metric, storage=url, load_if_exists=True,
                         config={"search": {"benchmark": "nbgraph:arxiv", "strategy": "random", "seed": 0}})
    t0 = time.perf_counter()
    # no progress bar: a log of one line rather than thousands of redraws
    print(f"writing {n} trials to {path} ...", file=sys.stderr)
    study.optimize(get_strategy("random", bench.space, seed=0), bench, n_trials=n, progress=False)
    print(f"wrote {n} trials in {time.perf_counter() - t0:.0f} s to {path}", file=sys.stderr)
    study.storage.close()
    return name


def add_trial(url: str, name: str) -> None:
    code = ("import sys\nfrom nasforge.estimation import load_benchmark\nfrom nasforge.strategies import get_strategy\n"
            "from nasforge.study import load_study\n"
            "b = load_benchmark('nbgraph:arxiv')\nst = load_study(sys.argv[1], sys.argv[2], space=b.space)\n"
            "t = st.ask(get_strategy('random', b.space, seed=0))\nst.tell(t, b.estimate(t.suggestion.arch))\n")
    subprocess.run([sys.executable, "-c", code, name, url], check=True)


def page_load(browser, url: str, page=None) -> tuple[float, object]:
    page = page or browser.new_page(viewport={"width": 1400, "height": 1000})
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=120_000)
    return time.perf_counter() - t0, page


def mean_se(xs: list[float]) -> str:
    if len(xs) < 2:
        return f"{xs[0]:.2f}"
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs) / len(xs) ** 0.5:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--refresh", type=float, default=2.0, help="the page's polling interval (seconds)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from nasforge.dashboard.server import Server

    OUT.mkdir(exist_ok=True)
    db = OUT / f"dashboard-{args.trials}.db"
    name = make_study(db, args.trials)
    url = f"sqlite:///{db}"
    path = "study?name=" + urllib.parse.quote(name, safe="")
    res: dict[str, list[float]] = {"first visit": [], "cold server": [], "repeat visit": [], "new result": []}
    api: dict[str, list[float]] = {}
    loads = []
    with sync_playwright() as pw:
        for rep in range(args.repeats):
            loads.append(os.getloadavg()[0])
            for kind in ("cold server", "first visit"):
                srv = Server(url, refresh=args.refresh, warm=False)
                srv.start()
                if kind == "first visit":
                    srv.app.state.reader.warm()  # what the server does in the background when it starts
                browser = pw.chromium.launch(executable_path=CHROMIUM)
                seconds, page = page_load(browser, srv.url + path)
                res[kind].append(seconds)
                if kind == "first visit":
                    res["repeat visit"].append(page_load(browser, srv.url + path, page)[0])
                    before = page.get_attribute("body", "data-trials")
                    t0 = time.perf_counter()
                    add_trial(url, name)
                    page.wait_for_function(f"() => document.body.dataset.trials !== '{before}'", timeout=120_000)
                    res["new result"].append(time.perf_counter() - t0)
                    q = "?name=" + urllib.parse.quote(name, safe="")
                    for ep in ("/api/study", "/api/study/progress", "/api/study/curve", "/api/study/trials",
                               "/api/study/trials?sort=valid_perf&desc=1", "/api/study/figures",
                               "/api/study/trial"):
                        extra = "&trial=0" if ep.endswith("trial") else ""
                        full = srv.url.rstrip("/") + ep + (q if "?" not in ep else q.replace("?", "&")) + extra
                        t0 = time.perf_counter()
                        with urllib.request.urlopen(full) as r:
                            r.read()
                        api.setdefault(ep, []).append(time.perf_counter() - t0)
                browser.close()
                srv.stop()
            print(f"repeat {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in res.items()), file=sys.stderr)
    print(f"\nstudy {name}: {args.trials:,} trials; {args.repeats} repeats; load average at the start of each "
          f"repeat {', '.join(f'{x:.1f}' for x in loads)} (2 cores)\n")
    print("| page load | seconds (mean ± s.e.) | min | max |\n|---|---|---|---|")
    for k, v in res.items():
        print(f"| {k} | {mean_se(v)} | {min(v):.2f} | {max(v):.2f} |")
    print("\n| endpoint (warm cache) | milliseconds (mean ± s.e.) |\n|---|---|")
    for ep, v in api.items():
        ms = [x * 1000 for x in v]
        print(f"| `{ep}` | {statistics.mean(ms):.0f} ± {statistics.stdev(ms) / len(ms) ** 0.5 if len(ms) > 1 else 0:.0f} |")


if __name__ == "__main__":
    main()
