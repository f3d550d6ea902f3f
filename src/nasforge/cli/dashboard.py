"""``nasforge dashboard``: the read-only web page of a storage's studies."""

from __future__ import annotations

import argparse
from typing import Any

EXAMPLES = """examples:
  nasforge dashboard                                  # the studies in ./nasforge.db, at http://127.0.0.1:8080/
  nasforge dashboard --storage sqlite:///runs.db --port 8050
  nasforge dashboard --storage postgresql+psycopg://user@db-host/nasforge
  nasforge dashboard --port 0                         # any free port (the address is printed)

The page only reads: it never creates, changes or locks a database, and it answers GET requests
only. It listens on 127.0.0.1 (this machine) unless --host says otherwise; it shows every study's
settings and architectures to whoever can reach it, so only use --host 0.0.0.0 on a network you
trust. Needs the dashboard extra: pip install "nasforge[dashboard]"."""


#: = nasforge.dashboard.server.DEFAULT_HOST / DEFAULT_PORT (not imported: parsing stays light)
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080


def add_parser(sub: Any) -> None:
    p = sub.add_parser("dashboard", help="serve a read-only web page of the studies (trials, curves, cells)",
                       description="Serve a read-only web dashboard of the studies in a storage: the list of "
                                   "studies, and per study the trial table, anytime curve, operation frequencies, "
                                   "Pareto front, proxy rank scatter and architecture diagrams, refreshed live.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storage", default="sqlite:///nasforge.db",
                   help="database URL to read (default sqlite:///nasforge.db)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", default=DEFAULT_PORT, type=_port,
                   help=f"port to listen on, 0 for any free one (default {DEFAULT_PORT})")
    p.add_argument("--refresh", default=2.0, type=_seconds,
                   help="seconds between the page's checks for new results (default 2)")
    p.add_argument("--quiet", action="store_true", help="do not log each request")
    p.set_defaults(func=run)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected a whole number in 0..65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected a whole number in 0..65535")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.25 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"invalid --refresh {text!r}: expected seconds in 0.25..3600")
    return value


def run(args: argparse.Namespace) -> int:
    from nasforge.dashboard.data import Reader, StorageUnavailable
    from nasforge.dashboard.server import serve

    reader = Reader(args.storage)
    try:
        names = reader.study_names()
        note = f"{len(names)} stud{'y' if len(names) == 1 else 'ies'} in {reader.describe()}"
    except StorageUnavailable as exc:
        names, note = [], f"note: {exc} (the page will say so until the database can be read)"
    finally:
        reader.close()

    def ready(url: str) -> None:
        print(f"nasforge dashboard at {url} (read-only; Ctrl-C to stop)", flush=True)
        print(note, flush=True)
        if args.host not in ("127.0.0.1", "localhost", "::1") and not args.host.startswith("127."):
            print(f"warning: listening on {args.host}: anyone who can reach this machine can read the studies",
                  flush=True)

    serve(args.storage, host=args.host, port=args.port, refresh=args.refresh, quiet=args.quiet, on_ready=ready)
    return 0
