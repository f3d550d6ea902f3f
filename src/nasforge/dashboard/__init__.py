"""The web dashboard: a read-only view of a storage's studies in the browser.

``nasforge dashboard --storage sqlite:///nasforge.db`` serves it on http://127.0.0.1:8080/; in
Python, :func:`create_app` gives the ASGI application, :func:`serve` runs it in the foreground and
:class:`Server` in a background thread. The dashboard reads studies through :mod:`nasforge.study`
(opening the database without creating or changing anything) and needs the ``dashboard`` extra:
``pip install "nasforge[dashboard]"``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"create_app": "app", "loopback_hosts": "app", "DEFAULT_REFRESH": "app", "serve": "server",
         "Server": "server", "DEFAULT_HOST": "server", "DEFAULT_PORT": "server", "Reader": "data",
         "render_svg": "cells"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"nasforge.dashboard.{module}"), name)


__all__ = sorted(_LAZY)
