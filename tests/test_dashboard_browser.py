"""The dashboard in a real browser: headless Chromium (the system's, /usr/bin/chromium) driven by
Playwright. One server and one browser for the whole module. Screenshots are written under the
test's tmp folder (or ``$NASFORGE_TEST_ARTEFACTS`` when set) and their paths printed."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the dashboard extra is not installed (pip install 'nasforge[dashboard]')")
pytest.importorskip("uvicorn", reason="the dashboard extra is not installed (pip install 'nasforge[dashboard]')")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")

from dashboard_studies import XSS_NAME, build  # noqa: E402
from test_dashboard import add_trial  # noqa: E402

from nasforge.dashboard.server import Server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _no_browser(why: str) -> None:
    reason = os.environ.get("NASFORGE_TEST_NO_CHROMIUM")
    if IN_CI and not reason:  # CI installs Chromium (.ci/run); only a failed install may skip
        pytest.fail(f"{why} (CI is set and .ci/run did not report a failed install)", pytrace=False)
    pytest.skip(f"{why}{f' ({reason})' if reason else ''}; install it with: apt-get install -y chromium")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not os.access(CHROMIUM, os.X_OK):
        _no_browser(f"headless Chromium not found at {CHROMIUM}")
    path = tmp_path_factory.mktemp("dash-browser") / "studies.db"
    url = f"sqlite:///{path}"
    counts = build(url)
    with Server(url, refresh=0.5) as srv, playwright_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
        except Exception as exc:  # noqa: BLE001 - a Chromium that cannot start here
            _no_browser(f"Chromium at {CHROMIUM} does not start: {str(exc).splitlines()[0]}")
        context = browser.new_context(viewport={"width": 1300, "height": 1000})
        yield {"url": srv.url, "db": url, "counts": counts, "context": context}
        context.close()
        browser.close()


@pytest.fixture
def page(site):
    pg = site["context"].new_page()
    dialogs, errors = [], []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # (a page answered 404 on purpose logs "Failed to load resource"; script errors still count)
    pg.on("console", lambda m: errors.append(m.text)
          if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    pg.set_default_timeout(30_000)
    yield pg
    pg.close()
    assert not dialogs, f"a script ran: {dialogs}"  # no payload ever runs (alert)
    assert not errors, f"errors in the page: {errors}"


def artefact(tmp_path: Path, name: str) -> Path:
    out = Path(os.environ.get("NASFORGE_TEST_ARTEFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out / name


def open_study(page, site, name):
    page.goto(site["url"] + "study?name=" + urllib.parse.quote(name, safe=""))
    page.wait_for_selector("body[data-ready='1']")


def curve_points(page) -> int:
    """Data points in the curve's Plotly graph div: the markers of its trial traces."""
    return page.evaluate("""() => document.getElementById('curve').data
        .filter(t => t.mode === 'markers').reduce((n, t) => n + t.x.length, 0)""")


def test_front_page_lists_the_studies(page, site, tmp_path):
    page.goto(site["url"])
    page.wait_for_selector("body[data-ready='1']")
    names = page.locator("#studies tbody tr td:first-child").all_inner_texts()
    assert sorted(names) == sorted(site["counts"])
    assert XSS_NAME in names  # the payload shows as text
    row = page.locator("#studies tbody tr", has_text="nb201-random")
    assert "nb201" in row.inner_text() and "idle" in row.inner_text()
    shot = artefact(tmp_path, "dashboard-studies.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000


def test_study_page_curve_cell_and_table(page, site, tmp_path):
    open_study(page, site, "nb201-random")
    complete = int(page.evaluate("""fetch('/api/study?name=nb201-random').then(r => r.json())
        .then(s => s.states.complete)"""))
    assert curve_points(page) == complete > 0
    best_line = page.evaluate("document.getElementById('curve').data.find(t => t.mode === 'lines').y")
    assert best_line == sorted(best_line)  # the incumbent of a maximised metric never drops
    # the best trial's cell is drawn as an image of the SVG DAG
    page.wait_for_function("() => document.querySelector('#cell-img') && document.querySelector('#cell-img').naturalWidth > 0")
    best = page.evaluate("fetch('/api/study?name=nb201-random').then(r => r.json()).then(s => s.best.number)")
    assert page.get_attribute("#cell", "data-trial") == str(best)
    assert page.locator("#trials tbody tr").count() == 40
    # sort by value, descending: the first row is the best trial; clicking a row draws its cell
    page.click("#trials thead th[data-col='value']")
    page.wait_for_function("() => document.querySelector('#trials thead th[data-col=value]').textContent.includes('▼')")
    assert page.locator("#trials tbody tr").first.get_attribute("data-trial") == str(best)
    page.locator("#trials tbody tr").nth(3).click()
    third = page.locator("#trials tbody tr").nth(3).get_attribute("data-trial")
    page.wait_for_function(f"() => document.querySelector('#cell').dataset.trial === '{third}'")
    page.select_option("#f-state-filter", "failed")
    page.wait_for_function("() => [...document.querySelectorAll('#trials tbody tr')].every(r => r.classList.contains('state-failed'))")
    assert "matching" in page.inner_text("#table-status")
    ops = page.evaluate("document.getElementById('ops').data.map(t => t.y.reduce((a, b) => a + b, 0))")
    assert ops == pytest.approx([6.0, 6.0])  # six operations per NB201 cell
    shot = artefact(tmp_path, "dashboard-nb201-study.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def test_darts_cells_and_pareto_front(page, site, tmp_path):
    open_study(page, site, "darts-mo")
    assert page.is_visible("#pareto-panel")
    front = page.evaluate("document.getElementById('pareto').data[1].x.length")
    assert front >= 1
    page.wait_for_function("() => document.querySelector('#cell-img') && document.querySelector('#cell-img').naturalWidth > 0")
    size = page.evaluate("[document.querySelector('#cell-img').naturalWidth, document.querySelector('#cell-img').naturalHeight]")
    assert size[0] > 300 and size[1] > 150  # two cells, stacked
    shot = artefact(tmp_path, "dashboard-darts-study.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def test_proxy_rank_scatter(page, site):
    open_study(page, site, "proxies")
    assert page.is_visible("#rank-panel")
    title = page.evaluate("document.getElementById('rank').layout.title.text")
    assert "Spearman" in title and "Kendall" in title


def test_payloads_in_names_and_architectures_stay_text(page, site):
    open_study(page, site, XSS_NAME)
    assert page.inner_text("#study-name") == XSS_NAME
    assert page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
    arch_cells = page.locator("#trials tbody td.arch").all_inner_texts()
    assert any("<img src=x onerror=alert(1)>" in a for a in arch_cells)
    assert "choice</td><b>x" in page.inner_text("#f-space")


def test_live_refresh_picks_up_a_trial_from_another_process(page, site):
    open_study(page, site, "nb201-random")
    before = int(page.get_attribute("body", "data-trials"))
    points = curve_points(page)
    add_trial(site["db"], "nb201-random", 99.5)  # a new best, from another process
    page.wait_for_function(f"() => document.body.dataset.trials === '{before + 1}'", timeout=60_000)
    page.wait_for_function(f"() => document.getElementById('curve').dataset.points === '{points + 1}'")
    assert page.inner_text("#f-trials") == str(before + 1)
    assert page.inner_text("#f-best").startswith("99.5")
    assert curve_points(page) == points + 1


def test_missing_study_page(page, site):
    resp = page.goto(site["url"] + "study?name=" + urllib.parse.quote("nope<b>", safe=""))
    assert resp.status == 404
    assert "no study 'nope<b>'" in page.inner_text("#error-message")
