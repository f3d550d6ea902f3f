"""The dashboard's web application (Starlette): read-only pages and JSON endpoints.

Every route answers GET (and HEAD) only; there is no endpoint that writes. Studies are named in
query strings (``/study?name=...``), never in paths, so a study name cannot reach the file
system. Pages are Jinja2 templates with autoescaping; the data arrives as JSON and the script
puts it into the page as text. Responses carry a Content-Security-Policy that allows scripts
from this server only, so even an injected tag could not run.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
from pathlib import Path
from typing import Any

from nasforge import __version__
from nasforge.dashboard.data import (CURVE_AXES, MAX_PAGE, Reader, StorageUnavailable, StudyNotFound, clean)
from nasforge.errors import NasforgeError, shorten
from nasforge.study.storage import Storage

log = logging.getLogger("nasforge.dashboard")

HERE = Path(__file__).resolve().parent
#: seconds between the page's polls for new results (the page slows down on a slow server)
DEFAULT_REFRESH = 2.0

CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def plotly_js() -> Path:
    """plotly.js as bundled with the ``plotly`` Python package (nothing is fetched from a CDN)."""
    try:
        path = Path(str(importlib.resources.files("plotly") / "package_data" / "plotly.min.js"))
    except ModuleNotFoundError:
        raise NasforgeError("the dashboard needs plotly: pip install 'nasforge[dashboard]'") from None
    if not path.is_file():
        raise NasforgeError(f"plotly.js is missing from the plotly package ({path}); reinstall plotly")
    return path


def _need_web_stack() -> None:
    missing = []
    for mod in ("starlette", "jinja2", "plotly"):
        try:
            __import__(mod)
        except ModuleNotFoundError:
            missing.append(mod)
    if missing:
        raise NasforgeError(f"the dashboard needs {', '.join(missing)}: pip install 'nasforge[dashboard]'")


class _Headers:
    """ASGI middleware: security headers on every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                         (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
                if b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = headers + [(k, v) for k, v in extra if k not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _int(value: str | None, name: str, default: int, low: int = 0, high: int | None = None) -> int:
    if value is None or value == "":
        return default
    try:
        v = int(value)
    except ValueError:
        raise NasforgeError(f"bad {name} {shorten(value)}: expected a whole number") from None
    if v < low or (high is not None and v > high):
        raise NasforgeError(f"bad {name} {v}: expected {low}..{high}" if high is not None else
                            f"bad {name} {v}: expected a whole number >= {low}")
    return v


def create_app(storage: str | Storage, refresh: float = DEFAULT_REFRESH, allowed_hosts: list[str] | None = None,
               warm: bool = True) -> Any:
    """The dashboard application for ``storage`` (a database URL or a Storage), read-only.

    ``refresh``: seconds between the page's polls for new trials. ``allowed_hosts``: the host
    names the server answers to (a guard against DNS rebinding; default: any). ``warm``: read the
    most recent studies in a background thread at once, so the first page opens quickly.
    """
    _need_web_stack()
    import jinja2
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    if not refresh > 0:
        raise NasforgeError(f"bad refresh {refresh!r}: expected seconds > 0")
    reader = Reader(storage)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True))
    plotly_path = plotly_js()

    def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(storage=reader.describe(), version=__version__,
                                                 refresh_ms=int(refresh * 1000), **context)
        return HTMLResponse(html, status_code=status)

    class Json(JSONResponse):
        def render(self, content: Any) -> bytes:
            import json

            return json.dumps(clean(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()

    def failure(request: Request, exc: Exception) -> Response:
        """An error as a page (or as JSON under /api/): what went wrong, never a traceback."""
        if isinstance(exc, StorageUnavailable):
            status, title = 503, "The database cannot be read"
        elif isinstance(exc, StudyNotFound):
            status, title = 404, "No such study"
        elif isinstance(exc, NasforgeError):
            status, title = 400, "Bad request"
        elif isinstance(exc, HTTPException):
            status = exc.status_code
            title = {404: "Not found", 405: "Method not allowed"}.get(status, "Error")
        else:
            log.exception("dashboard error on %s", request.url.path)
            status, title = 500, "Internal error"
        message = str(exc) if isinstance(exc, NasforgeError) else (
            str(exc.detail) if isinstance(exc, HTTPException) else "the server failed to answer; see its log")
        if status == 405:
            message = "this dashboard is read-only: it answers GET requests only"
        headers = {"Allow": "GET, HEAD"} if status == 405 else None
        if request.url.path.startswith("/api/"):
            return Json({"error": title, "detail": message}, status_code=status, headers=headers)
        resp = page("error.html", status=status, title=title, message=message)
        if headers:
            resp.headers.update(headers)
        return resp

    # --- pages ------------------------------------------------------------------------------
    def index(request: Request) -> Response:
        reader.study_names()  # a missing or broken database shows its error page, not an empty list
        return page("index.html")

    def study_page(request: Request) -> Response:
        name = request.query_params.get("name")
        if not name:
            raise NasforgeError("which study? open /study?name=STUDY (or pick one on the front page)")
        reader.exists(name)  # the page is a shell: its data comes from /api/study, while plotly.js loads
        return page("study.html", name=name)

    # --- JSON ---------------------------------------------------------------------------------
    def api_studies(request: Request) -> Response:
        return Json({"storage": reader.describe(), "studies": reader.summaries()})

    def _name(request: Request) -> str:
        name = request.query_params.get("name")
        if not name:
            raise NasforgeError("missing the query parameter name=STUDY")
        return name

    def api_study(request: Request) -> Response:
        snap = reader.snapshot(_name(request))
        return Json({**snap.summary(), "columns": snap.columns(), "curve_axes": snap.curve_axes()})

    def api_progress(request: Request) -> Response:
        prog = reader.progress(_name(request))
        return Json({"token": prog.token, "seq": prog.seq, "n_trials": prog.n_trials, "states": prog.states})

    def _table_args(request: Request) -> dict[str, Any]:
        q = request.query_params
        return {"sort": q.get("sort") or "number", "descending": q.get("desc", "") in ("1", "true", "yes"),
                "state": q.get("state") or None, "query": q.get("q") or None}

    def api_trials(request: Request) -> Response:
        q = request.query_params
        snap = reader.snapshot(_name(request))
        return Json(snap.page(offset=_int(q.get("offset"), "offset", 0),
                              limit=_int(q.get("limit"), "limit", 50, 1, MAX_PAGE), **_table_args(request)))

    def api_csv(request: Request) -> Response:
        snap = reader.snapshot(_name(request))
        args = _table_args(request)
        lines = snap.csv_lines(**args)
        first = next(lines)  # checks the arguments before the response starts
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", snap.name).strip("._") or "study"

        def body() -> Any:
            yield first
            yield from lines

        return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{safe[:80]}-trials.csv"'})

    def api_curve(request: Request) -> Response:
        x = request.query_params.get("x") or "trials"
        if x not in CURVE_AXES:
            raise NasforgeError(f"unknown x axis {shorten(x)}; allowed: {', '.join(CURVE_AXES)}")
        return Json(reader.snapshot(_name(request)).curve(x))

    def api_figures(request: Request) -> Response:
        return Json(reader.figures(_name(request)))

    def api_trial(request: Request) -> Response:
        number = _int(request.query_params.get("trial"), "trial", -1, 0)
        if number < 0:
            raise NasforgeError("missing the query parameter trial=NUMBER")
        return Json(reader.cell(_name(request), number))

    def plotly(request: Request) -> Response:
        return FileResponse(plotly_path, media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    get = ["GET"]
    routes = [
        Route("/", index, methods=get),
        Route("/study", study_page, methods=get),
        Route("/api/studies", api_studies, methods=get),
        Route("/api/study", api_study, methods=get),
        Route("/api/study/progress", api_progress, methods=get),
        Route("/api/study/trials", api_trials, methods=get),
        Route("/api/study/trials.csv", api_csv, methods=get),
        Route("/api/study/curve", api_curve, methods=get),
        Route("/api/study/figures", api_figures, methods=get),
        Route("/api/study/trial", api_trial, methods=get),
        Route("/static/plotly.min.js", plotly, methods=get),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(_Headers)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    handlers = {NasforgeError: failure, HTTPException: failure, Exception: failure}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)  # type: ignore[arg-type]
    app.state.reader = reader
    if warm:
        import threading

        threading.Thread(target=reader.warm, name="nasforge-dashboard-warm", daemon=True).start()
    return app


def loopback_hosts(host: str, port: int) -> list[str] | None:
    """The Host header values a server bound to ``host`` accepts: for a loopback address only
    loopback names (so a web page elsewhere cannot reach it by DNS rebinding); None (any) for a
    server bound to another address."""
    if host in ("127.0.0.1", "localhost", "::1", "[::1]") or host.startswith("127."):
        return ["127.0.0.1", "localhost", "[::1]", "::1", host]
    return None


__all__ = ["create_app", "plotly_js", "loopback_hosts", "DEFAULT_REFRESH", "CSP"]
