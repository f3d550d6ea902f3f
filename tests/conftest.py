from __future__ import annotations

import glob
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import NoReturn

# Ray turns a loopback node address into the machine's network address unless its multi-node
# mode is off; off, the test cluster and its clients stay on 127.0.0.1 (a single node is all the
# tests use). Ray reads this when first imported, so it is set before any test module loads.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Token authentication with a token of this session's own: the test cluster then neither accepts
# work from other local users nor depends on whatever token ~/.ray/auth_token holds.
os.environ["RAY_AUTH_MODE"] = "token"
os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)

import pytest  # noqa: E402

from nasforge.estimation.tabular import find_data_dir  # noqa: E402

DATA = find_data_dir()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if DATA is None or not (DATA / "nb201" / "cifar10.csv").is_file():
        pytest.skip("reference data folder (../shared/data) is absent")
    return DATA


@pytest.fixture(scope="session")
def nb201_c10(data_dir):
    from nasforge.estimation import load_benchmark

    return load_benchmark("nb201:cifar10", data_dir=data_dir)


# ---------------------------------------------------------------------------------------------
# External services: a PostgreSQL server and a local Ray cluster, both on 127.0.0.1 only.
# Without them the tests that need them are skipped; under CI (CI set) they fail instead, so
# that CI cannot pass while silently not running them.

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
# set by .ci/run: a folder it removes on exit, where we leave what it must clean up after us
SERVICES_DIR = os.environ.get("NASFORGE_TEST_SERVICES_DIR")
STARTUP: dict[str, float] = {}  # service -> seconds it took to start here


class _NoService(Exception):
    pass


def _unavailable(service: str, why: str) -> NoReturn:
    msg = f"{service} not available: {why}"
    if IN_CI:
        pytest.fail(f"{msg} (CI is set: failing rather than skipping)", pytrace=False)
    pytest.skip(msg)


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports that are free on 127.0.0.1 now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def _short_tmpdir(prefix: str) -> Path:
    # directly under /tmp, whatever TMPDIR says: unix socket paths inside must stay < 108 bytes
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp" if os.path.isdir("/tmp") else None))


# --- PostgreSQL ----------------------------------------------------------------------------------

def _pg_problem(url: str) -> str | None:
    """Why ``url`` cannot be connected to, or None when it can."""
    if importlib.util.find_spec("psycopg") is None:
        return "psycopg is not installed (pip install 'nasforge[postgres]')"
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any reason is reported
        return f"{type(exc).__name__}: {_tail(str(exc), 3)}"
    finally:
        engine.dispose()
    return None


class _Postgres:
    """A throwaway PostgreSQL server: its own data folder, 127.0.0.1 and a free port, trust
    authentication, a CREATEDB user ``nasforge`` owning a database ``nasforge``. As root it runs
    as the ``postgres`` system user (the server refuses to run as root)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                       key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()])
        initdb = found[-1] if found else shutil.which("initdb")
        if initdb is None:
            raise _NoService("no server binaries (initdb) found; apt-get install postgresql")
        self.bin = Path(initdb).parent
        self.as_user: dict = {}
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise _NoService("running as root and no 'postgres' user to run the server as") from None
            self.as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        self.tmp = _short_tmpdir("nfpg-")
        if self.as_user:
            os.chown(self.tmp, self.as_user["user"], self.as_user["group"])
        self.data = self.tmp / "data"
        self.port = _free_ports(1)[0]
        self.url = f"postgresql+psycopg://nasforge@127.0.0.1:{self.port}/nasforge"
        try:
            self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                      "--locale=C", "--no-sync")
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.tmp}"
                    " -c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            self._run("pg_ctl", "-D", self.data, "-l", self.tmp / "server.log", "-w", "-t", "60", "-o", opts,
                      "start")
            client = ("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres")
            self._run("createuser", *client, "--createdb", "nasforge")
            self._run("createdb", *client, "-O", "nasforge", "nasforge")
        except BaseException:
            self.stop()
            raise

    def _run(self, tool: str, *args: object) -> None:
        try:
            res = subprocess.run([str(self.bin / tool), *map(str, args)], cwd="/", stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=120, **self.as_user)
        except (OSError, subprocess.SubprocessError) as exc:
            raise _NoService(f"{tool}: {exc}") from None
        if res.returncode != 0:
            log = self.tmp / "server.log"
            extra = log.read_text(errors="replace") if tool == "pg_ctl" and log.is_file() else ""
            raise _NoService(f"{tool} failed ({res.returncode}):\n{_tail(res.stdout + res.stderr + extra)}")

    def stop(self) -> None:
        pidfile = self.data / "postmaster.pid"
        if pidfile.is_file():
            try:
                self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30", "stop")
            except _NoService:
                try:
                    os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
                except (OSError, ValueError, IndexError):
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url():
    """URL (``postgresql+psycopg://...``) of a PostgreSQL server: ``NASFORGE_TEST_PG_URL`` (which
    .ci/run sets), else a throwaway server started here and stopped at the end of the session."""
    url = os.environ.get("NASFORGE_TEST_PG_URL")
    if url:
        problem = _pg_problem(url)
        if problem:
            _unavailable("PostgreSQL", f"NASFORGE_TEST_PG_URL={url!r}: {problem}")
        yield url
        return
    if importlib.util.find_spec("psycopg") is None:
        _unavailable("PostgreSQL", "psycopg is not installed (pip install 'nasforge[postgres]')")
    start = time.monotonic()
    try:
        server = _Postgres()
    except _NoService as exc:
        _unavailable("PostgreSQL", f"NASFORGE_TEST_PG_URL is unset and a server could not be started: {exc}")
    try:
        STARTUP["PostgreSQL"] = time.monotonic() - start
        problem = _pg_problem(server.url)
        if problem:
            _unavailable("PostgreSQL", f"started a server but cannot connect: {problem}")
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def pg_storage_url(pg_url):
    """URL of a fresh, empty database on the ``pg_url`` server, dropped after the test."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    name = f"nf_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
            force = " WITH (FORCE)" if conn.dialect.server_version_info >= (13,) else ""
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"{force}'))
        admin.dispose()


# --- Ray -----------------------------------------------------------------------------------------

def _session_members(sid: int) -> list[int]:
    """Processes in session ``sid`` (Linux /proc; empty elsewhere)."""
    pids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:  # state ppid pgrp session ...
            pids.append(int(stat.split("/")[2]))
    return pids


def _stop_ray_head(proc: subprocess.Popen, tmp: Path) -> None:
    """Stop the ``ray start --block`` process and everything it started: it leads a session of
    its own, which Ray's workers stay in (they get process groups of their own)."""
    if proc.poll() is None:
        proc.terminate()  # `ray start --block` stops the node's processes on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    for _ in range(50):  # whatever is left; the session id stays ours while any member lives
        left = _session_members(proc.pid)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.1)
    proc.wait()
    shutil.rmtree(tmp, ignore_errors=True)
    if SERVICES_DIR:
        Path(SERVICES_DIR, "ray.sid").unlink(missing_ok=True)


@pytest.fixture(scope="session")
def ray_address():
    """Address (``127.0.0.1:PORT``) of a local single-node Ray cluster (2 CPUs, no dashboard)
    started for this session and stopped at its end."""
    if importlib.util.find_spec("ray") is None:
        _unavailable("Ray", "ray is not installed (pip install 'nasforge[ray]')")
    consts = sys.modules.get("ray._private.ray_constants")
    if consts is not None and getattr(consts, "ENABLE_RAY_CLUSTER", False):
        _unavailable("Ray", "ray was imported before RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set "
                            "(tests/conftest.py), so it would not stay on 127.0.0.1")
    tmp = _short_tmpdir("nfray-")
    port, client_port = _free_ports(2)
    cmd = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()",
           "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
           "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tmp}",
           f"--ray-client-server-port={client_port}", "--dashboard-agent-listen-port=0"]
    # the workers unpickle what the tests send them, classes defined in test modules included:
    # they must import those modules as pytest did (tests/ on the path; no package)
    env = dict(os.environ)
    paths = (str(Path(__file__).resolve().parent), env.get("PYTHONPATH"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    log = tmp / "ray-start.log"
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp, env=env, start_new_session=True)
    if SERVICES_DIR:  # for .ci/run, should this session end without stopping it
        Path(SERVICES_DIR, "ray.sid").write_text(f"{proc.pid} {tmp}\n")
    try:
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() - start > 180:
                what = f"exited ({proc.returncode})" if proc.poll() is not None else "did not start in 180 s"
                _unavailable("Ray", f"`ray start --head` {what}:\n{_tail(log.read_text(errors='replace'))}")
            time.sleep(0.1)
        STARTUP["Ray"] = time.monotonic() - start
        yield f"127.0.0.1:{port}"
    finally:
        ray = sys.modules.get("ray")
        if ray is not None and getattr(ray, "is_initialized", lambda: False)():
            ray.shutdown()  # a test left its driver connected
        _stop_ray_head(proc, tmp)


def pytest_terminal_summary(terminalreporter):
    if STARTUP:
        terminalreporter.write_line(
            "test services started in: " + ", ".join(f"{k} {v:.1f} s" for k, v in STARTUP.items()))
