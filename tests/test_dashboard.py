"""The dashboard without a browser: what it reads and computes, its HTTP surface (read-only,
escaping, path traversal, missing and corrupt databases), the diagrams, and the CLI faces."""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the dashboard extra is not installed (pip install 'nasforge[dashboard]')")
pytest.importorskip("uvicorn", reason="the dashboard extra is not installed (pip install 'nasforge[dashboard]')")
pytest.importorskip("plotly", reason="the dashboard extra is not installed (pip install 'nasforge[dashboard]')")

from dashboard_studies import XSS_NAME, XSS_VALUE, build  # noqa: E402

from nasforge.analysis.correlation import spearman  # noqa: E402
from nasforge.dashboard.cells import layered_layout, render_svg  # noqa: E402
from nasforge.dashboard.data import Reader  # noqa: E402
from nasforge.dashboard.server import Server  # noqa: E402
from nasforge.spaces import get_space  # noqa: E402
from nasforge.study import TrialState, load_study  # noqa: E402


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("dash") / "studies.db"
    url = f"sqlite:///{path}"
    counts = build(url)
    return url, path, counts


@pytest.fixture(scope="module")
def server(db):
    with Server(db[0]) as srv:
        yield srv


def get(srv, path, method="GET", headers=None):
    """(status, headers, body text) of a raw request (the path is sent exactly as given)."""
    u = urllib.parse.urlsplit(srv.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def q(name):
    return urllib.parse.quote(name, safe="")


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- what the pages read ---------------------------------------------------------------------------
def test_snapshot_agrees_with_the_library(db):
    url, _, counts = db
    reader = Reader(url)
    try:
        rows = {s["name"]: s for s in reader.summaries()}
        assert set(rows) == set(counts)
        for name, n in counts.items():
            study = load_study(name, url)
            s = rows[name]
            assert s["n_trials"] == n == len(study.trials)
            assert s["states"] == {st: sum(t.state.value == st for t in study.trials) for st in s["states"]}
            assert s["best"]["number"] == study.best_trial.number and s["best"]["value"] == study.best_trial.value
            assert s["state"] == "idle" and s["space"] == study.config["space"]
        assert rows["nb201-random"]["states"]["failed"] > 0  # the toy estimator fails some cells
        mo = reader.snapshot("darts-mo")
        assert [t.number for t in mo.front] == [t.number for t in load_study("darts-mo", url).pareto_front]
    finally:
        reader.close()


def test_curve_is_the_incumbent_of_complete_trials(db):
    url = db[0]
    reader = Reader(url)
    try:
        fig = reader.snapshot("nb201-random").curve("trials")
        study = load_study("nb201-random", url)
        done = sorted((t for t in study.trials if t.state.finished), key=lambda t: t.tell_seq)
        markers, best = fig["data"][0], fig["data"][-1]
        complete = [(i + 1, t.value) for i, t in enumerate(done) if t.state is TrialState.COMPLETE]
        assert list(zip(markers["x"], markers["y"])) == complete
        running, expect_x, expect_y = -math.inf, [], []
        for x, v in complete:
            if v > running:
                running = v
                expect_x.append(x)
                expect_y.append(v)
        assert best["x"][:-1] == expect_x and best["y"][:-1] == expect_y
        assert best["x"][-1] == len(done) and best["y"][-1] == max(v for _, v in complete)
        cost = reader.snapshot("nb201-random").curve("cost")
        assert cost["data"][-1]["x"][-1] == pytest.approx(sum(t.cost for t in done))
    finally:
        reader.close()


def test_table_pages_sort_filter_and_csv(db):
    url = db[0]
    reader = Reader(url)
    try:
        snap = reader.snapshot("nb201-random")
        page = snap.page(sort="value", descending=True, limit=5)
        values = [r["value"] for r in page["rows"]]
        assert values == sorted(values, reverse=True) and values[0] == snap.best.value
        failed = snap.page(state="failed", limit=100)
        assert failed["matching"] == snap.states["failed"] and all(r["state"] == "failed" for r in failed["rows"])
        by_value = snap.page(sort="value", limit=100)["rows"]
        assert all(r["value"] is None for r in by_value[-failed["matching"]:])  # missing values sort last
        part = snap.page(query="NOR_CONV_3X3~0", limit=100)
        assert part["matching"] == sum("nor_conv_3x3~0" in t.arch for t in snap.trials) > 0
        assert snap.page(query="#7")["rows"][0]["number"] == 7
        second = snap.page(offset=10, limit=10)
        assert [r["number"] for r in second["rows"]] == list(range(10, 20))
        rows = list(csv.DictReader(io.StringIO("".join(snap.csv_lines(state="complete")))))
        assert len(rows) == snap.states["complete"] and {"number", "arch", "acc", "params"} <= set(rows[0])
        with pytest.raises(ValueError, match="unknown column 'bogus'"):
            snap.page(sort="bogus")
        with pytest.raises(ValueError, match="unknown trial state 'done'"):
            snap.page(state="done")
    finally:
        reader.close()


def test_op_frequency_pareto_and_rank_scatter(db):
    url = db[0]
    reader = Reader(url)
    try:
        snap = reader.snapshot("nb201-random")
        ops = snap.op_frequency(reader.space(snap))
        top, everyone = ops["data"]
        done = snap.top_fidelity_complete()
        assert ops["meta"]["all"] == len(done)
        for op, freq in zip(everyone["x"], everyone["y"]):  # NB201 labels are the 6 edge operations
            assert freq == pytest.approx(sum(t.arch.count(op + "~") for t in done) / len(done))
        assert sum(top["y"]) == pytest.approx(6.0) and sum(everyone["y"]) == pytest.approx(6.0)
        assert snap.pareto() is None and snap.rank_scatter() is None  # single objective, no proxies

        mo = reader.snapshot("darts-mo")
        fig = mo.pareto()
        front = fig["data"][1]
        assert sorted(front["customdata"]) == sorted(t.number for t in mo.front) and len(front["x"]) >= 1

        px = reader.snapshot("proxies")
        rank = px.rank_scatter()
        stats = {s["proxy"]: s for s in rank["meta"]["stats"]}
        # the parameter count (a baseline proxy) is shown beside the real proxies
        assert rank["meta"]["reference"] == "acc" and set(stats) == {"naswot", "synflow", "params"}
        done = [t for t in px.trials if t.state is TrialState.COMPLETE]
        expect = spearman([t.metrics["naswot"] for t in done], [t.metrics["acc"] for t in done])
        assert stats["naswot"]["spearman"] == pytest.approx(expect) and expect > 0.5
        assert len(rank["layout"]["updatemenus"][0]["buttons"]) == 3
    finally:
        reader.close()


@pytest.mark.parametrize("where", ["memory", "sqlite"])
def test_progress_changes_with_every_ask_tell_and_state(where, tmp_path):
    from dashboard_studies import Toy

    from nasforge.study import Trial, create_study

    space = get_space("nb201")
    st = create_study("p", space, "acc", storage=None if where == "memory" else f"sqlite:///{tmp_path / 'p.db'}")
    seen = [st.storage.progress(st._id)]
    trial = st.ask()
    seen.append(st.storage.progress(st._id))
    st.tell(trial, Toy(space).estimate(trial.suggestion.arch))
    seen.append(st.storage.progress(st._id))
    st.storage.add_trial(st._id, Trial(-1, trial.arch, state=TrialState.RUNNING))  # outside the log
    seen.append(st.storage.progress(st._id))
    hand = st.trials[-1]
    hand.state, hand.value = TrialState.COMPLETE, 1.0
    st.storage.finish_trial(st._id, hand)
    seen.append(st.storage.progress(st._id))
    assert [(p.seq, p.n_trials) for p in seen] == [(0, 0), (1, 1), (2, 1), (2, 2), (2, 2)]
    assert seen[-1].states == {"complete": 2} and seen[-2].states == {"complete": 1, "running": 1}
    assert len({p.token for p in seen}) == len(seen)


# --- diagrams ------------------------------------------------------------------------------------
def test_layered_layout_of_an_nb201_cell():
    space = get_space("nb201")
    adj, labels = space.graph(space.parse("|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+"
                                          "|none~0|nor_conv_1x1~1|skip_connect~2|"))
    lay = layered_layout(adj, labels)
    assert lay.layer[0] == 0 and lay.layer[-1] == max(lay.layer)
    for i, j in lay.edges:  # every edge goes right, to a later layer
        assert lay.layer[j] > lay.layer[i] and lay.x[j] > lay.x[i]
    # node 1 (edge 0->1) feeds nodes 3 (edge 1->2) and 5 (edge 1->3), which then sit one layer further
    assert lay.layer[1] == 1 and lay.layer[3] == 2 and lay.layer[5] == 2 and lay.layer[6] == 3
    svg = render_svg([(adj, labels)])
    assert svg.count('class="node"') == 8 and svg.count('class="edge"') == int(np.count_nonzero(adj))


def test_diagrams_escape_labels_and_draw_each_darts_cell():
    adj = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    svg = render_svg([(adj, ["input", XSS_VALUE, "output"])], ["<b>title</b>"])
    assert "<img" not in svg and "<b>" not in svg and "&lt;img src=x onerror=alert(1)&gt;" in svg
    assert "&lt;b&gt;title&lt;/b&gt;" in svg and "script" not in svg.lower()
    darts = get_space("darts")
    arch = darts.sample(np.random.default_rng(0))
    svg = render_svg(darts.cells(arch), darts.cell_names)
    assert ">normal</text>" in svg and ">reduce</text>" in svg and svg.count('class="node"') == 22
    nbg = get_space("nbgraph")
    wiring = nbg.parse("0-0-1-2|gcn,gat,sage,fc")
    adj, labels = nbg.graph(wiring)
    lay = layered_layout(adj, labels)
    links = wiring[0]  # node i + 1 reads node links[i]: one layer after it; the output is last
    assert [lay.layer[i + 1] for i in range(4)] == [lay.layer[src] + 1 for src in links]
    assert lay.layer[5] == max(lay.layer) > max(lay.layer[1:5])


# --- HTTP: read-only, escaped, no traversal, clear errors -----------------------------------------------
def test_pages_and_json_endpoints(server, db):
    status, headers, body = get(server, "/")
    assert status == 200 and "text/html" in headers["content-type"]
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"
    status, _, body = get(server, "/api/studies")
    data = json.loads(body)
    assert status == 200 and {s["name"] for s in data["studies"]} == set(db[2])
    status, _, body = get(server, "/api/study/trials?name=nb201-random&sort=acc&desc=1&limit=3")
    page = json.loads(body)
    assert status == 200 and page["matching"] == 40 and len(page["rows"]) == 3
    status, headers, body = get(server, "/api/study/trials.csv?name=darts-mo")
    assert status == 200 and "attachment" in headers["content-disposition"] and body.count("\n") == 25
    status, _, body = get(server, "/api/study/trial?name=darts-mo&trial=3")
    rec = json.loads(body)
    assert status == 200 and rec["svg"].startswith("<svg") and ">reduce</text>" in rec["svg"]
    status, headers, _ = get(server, "/static/plotly.min.js")
    assert status == 200 and "javascript" in headers["content-type"]
    status, _, body = get(server, "/api/study/progress?name=nb201-random")
    assert status == 200 and json.loads(body)["n_trials"] == 40
    for bad in ("/api/study/trials?name=nb201-random&limit=100000", "/api/study/curve?name=nb201-random&x=bogus",
                "/api/study/trials?name=nb201-random&offset=-1", "/api/study/trial?name=nb201-random&trial=x"):
        status, _, body = get(server, bad)
        assert status == 400 and "detail" in json.loads(body) and "Traceback" not in body


def test_html_and_js_payloads_are_escaped(server):
    status, _, body = get(server, "/study?name=" + q(XSS_NAME))
    assert status == 200
    assert '<script>alert("study")' not in body and "&lt;script&gt;alert(&#34;study&#34;)&lt;/script&gt;&amp;amp;" in body
    assert len(re.findall(r"<script", body)) == 1  # only the page's own script tag
    status, _, body = get(server, "/api/study/trial?name=" + q(XSS_NAME) + "&trial=0")
    rec = json.loads(body)
    assert rec["arch"].startswith("act=") and "<img" not in (rec["svg"] or "")
    status, _, body = get(server, "/api/study/curve?name=" + q(XSS_NAME))
    texts = json.loads(body)["data"][0]["text"]
    assert any("&lt;img src=x onerror=alert(1)&gt;" in t for t in texts) and not any("<img" in t for t in texts)
    status, _, body = get(server, "/study?name=" + q("<b>nope</b>"))
    assert status == 404 and "<b>nope</b>" not in body and "&lt;b&gt;nope&lt;/b&gt;" in body


def test_no_write_endpoints_and_no_path_traversal(server, db):
    before = digest(db[1])
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", "/study?name=nb201-random", "/api/studies", "/api/study/trials?name=nb201-random",
                     "/static/dashboard.js"):
            status, headers, _ = get(server, path, method=method)
            assert status == 405, (method, path)
    for path in ("/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                 "/static/..%2f..%2fdata.py", "/static/%2e%2e%2fapp.py", "/../../etc/passwd",
                 "/static/templates/../../data.py", "/static//etc/passwd"):
        status, _, body = get(server, path)
        assert status in (400, 404), path
        assert "root:" not in body and "import" not in body
    status, _, body = get(server, "/study?name=" + q("../../../etc/passwd"))
    assert status == 404 and "no study &#39;../../../etc/passwd&#39;" in body
    status, _, body = get(server, "/", headers={"Host": "attacker.example"})
    assert status == 400  # a loopback server answers loopback host names only (DNS rebinding)
    assert digest(db[1]) == before


def test_missing_and_corrupt_databases_give_a_clear_page(tmp_path):
    missing = tmp_path / "none.db"
    with Server(f"sqlite:///{missing}") as srv:
        status, _, body = get(srv, "/")
        assert status == 503 and "The database cannot be read" in body and "Traceback" not in body
        assert "none.db" in body
        status, _, body = get(srv, "/api/studies")
        assert status == 503 and json.loads(body)["error"] == "The database cannot be read"
    assert not missing.exists()  # reading never creates a database
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    with Server(f"sqlite:///{corrupt}") as srv:
        for path in ("/", "/study?name=x", "/api/study?name=x"):
            status, _, body = get(srv, path)
            assert status == 503 and "Traceback" not in body and "corrupt.db" in body
    plain = tmp_path / "notes.txt"
    plain.write_text("not a database\n")
    with Server(f"sqlite:///{plain}") as srv:
        status, _, body = get(srv, "/")
        assert status == 503 and "Traceback" not in body


def test_live_progress_sees_another_process(server, db):
    url = db[0]
    _, _, body = get(server, "/api/study/progress?name=nb201-random")
    token = json.loads(body)["token"]
    add_trial(url, "nb201-random", 42.0)
    _, _, body = get(server, "/api/study/progress?name=nb201-random")
    prog = json.loads(body)
    assert prog["token"] != token and prog["n_trials"] == 41
    _, _, body = get(server, "/api/study?name=nb201-random")
    assert json.loads(body)["n_trials"] == 41


def add_trial(url: str, name: str, value: float) -> None:
    """Ask and tell one trial from another process (random search, seed 0: the study's strategy)."""
    code = ("import sys\nfrom nasforge.study import load_study\n"
            "st = load_study(sys.argv[1], sys.argv[2])\nt = st.ask()\n"
            "st.tell(t, {'acc': float(sys.argv[3]), 'params': 1.0})\n")
    subprocess.run([sys.executable, "-c", code, name, url, str(value)], check=True, timeout=120)


# --- the command line ----------------------------------------------------------------------------------
def test_cli_dashboard_serves_and_rejects_bad_options(db):
    from nasforge.cli import dashboard as cli_dashboard
    from nasforge.dashboard import server as dash_server

    assert (cli_dashboard.DEFAULT_HOST, cli_dashboard.DEFAULT_PORT) == (dash_server.DEFAULT_HOST,
                                                                        dash_server.DEFAULT_PORT)
    proc = subprocess.Popen([sys.executable, "-m", "nasforge", "dashboard", "--storage", db[0], "--port", "0",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        assert "4 studies" in proc.stdout.readline()
        deadline = time.time() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", int(m.group(1)), timeout=10)
                conn.request("GET", "/api/studies")
                assert conn.getresponse().status == 200
                break
            except ConnectionRefusedError:
                assert time.time() < deadline
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("args,msg", [(["--port", "70000"], "invalid port '70000'"),
                                      (["--refresh", "0"], "invalid --refresh"),
                                      (["--host", "no such host!"], "bad host 'no such host!'")])
def test_cli_dashboard_bad_options(db, args, msg, capsys):
    from nasforge.cli.main import main

    try:
        code = main(["dashboard", "--storage", db[0], *args])
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and msg in err and "Traceback" not in err


@pytest.mark.parametrize("kind,expect", [("spaces", ["nb201", "darts", "nbgraph"]),
                                         ("strategies", ["random", "asha", "nsga2", "multi-objective"]),
                                         ("proxies", ["naswot", "synflow", "higher"]),
                                         ("benchmarks", ["nb201:<dataset>", "nbgraph:<dataset>"])])
def test_cli_list(kind, expect, capsys):
    from nasforge.cli.main import main

    assert main(["list", kind]) == 0
    out = capsys.readouterr().out
    assert all(e in out for e in expect)
    lines = out.splitlines()
    assert all(len(line.split("  ", 1)) == 2 for line in lines[2:] if line and not line.startswith("use with"))
