"""Serving the dashboard with uvicorn: in the foreground (the command line) or in a thread."""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from nasforge.errors import NasforgeError, check_int, shorten
from nasforge.study.storage import Storage

#: the dashboard listens on this machine only unless told otherwise
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port), or a one-line error."""
    port = check_int(port, "port", 0, 65535)
    if not isinstance(host, str) or not host.strip() or any(c.isspace() or c in "/\\@" for c in host):
        raise NasforgeError(f"bad host {shorten(host)}: expected an address to listen on, e.g. 127.0.0.1")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NasforgeError(f"bad host {shorten(host)}: {exc.strerror}; expected an address of this machine, "
                            "e.g. 127.0.0.1 or 0.0.0.0") from None
    family, kind, proto, _name, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise NasforgeError(f"port {port} on {host} is in use (another dashboard?); choose another with --port, "
                                "or --port 0 for any free port") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise NasforgeError(f"cannot listen on {host}:{port}: permission denied (ports below 1024 need "
                                "privileges); choose --port 1024 or above") from None
        raise NasforgeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    if host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/"


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ModuleNotFoundError:
        raise NasforgeError("the dashboard needs uvicorn: pip install 'nasforge[dashboard]'") from None
    return uvicorn


def _config(app: Any, quiet: bool) -> Any:
    uvicorn = _uvicorn()
    return uvicorn.Config(app, log_level="warning" if quiet else "info", access_log=not quiet, lifespan="off",
                          server_header=False, timeout_graceful_shutdown=2)


class Server:
    """The dashboard of ``storage`` served in a background thread (for tests and notebooks).

    The socket is bound at once (port 0: any free port; :attr:`url`); ``start()`` serves and
    returns the URL, ``stop()`` ends it. ``warm``: as for :func:`~nasforge.dashboard.create_app`.
    """

    def __init__(self, storage: str | Storage, host: str = DEFAULT_HOST, port: int = 0, refresh: float = 2.0,
                 quiet: bool = True, warm: bool = True) -> None:
        from nasforge.dashboard.app import create_app, loopback_hosts

        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.app = create_app(storage, refresh=refresh, allowed_hosts=loopback_hosts(host, port), warm=warm)
        self._server = _uvicorn().Server(_config(self.app, quiet))
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> str:
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]},
                                        name="nasforge-dashboard", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise NasforgeError(f"the dashboard did not start at {self.url}")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()
        self.app.state.reader.close()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(storage: str | Storage, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, refresh: float = 2.0,
          quiet: bool = False, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the dashboard of ``storage`` in the foreground until interrupted (Ctrl-C).
    ``on_ready(url)`` is called once the socket is bound, before serving."""
    from nasforge.dashboard.app import create_app, loopback_hosts

    app = create_app(storage, refresh=refresh, allowed_hosts=loopback_hosts(host, port))
    sock = bind(host, port)
    try:
        if on_ready is not None:
            on_ready(url_of(sock))
        _uvicorn().Server(_config(app, quiet)).run(sockets=[sock])
    finally:
        sock.close()
        app.state.reader.close()


__all__ = ["Server", "serve", "bind", "url_of", "DEFAULT_HOST", "DEFAULT_PORT"]
