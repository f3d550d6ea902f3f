"""Where evaluations run: in this process, on threads, on a process pool, on Ray, or on a
simulated clock. The study loop (``Study.optimize``) submits one job per trial and takes results
as they arrive; executors know nothing of studies or strategies."""

from __future__ import annotations

import heapq
import os
import pickle
import time
from abc import ABC, abstractmethod
from collections import deque
from concurrent import futures as cf
from dataclasses import dataclass
from typing import Any

from nasforge.errors import NasforgeError, unknown
from nasforge.estimation.base import Estimator, Measurement

EXECUTORS = ("serial", "thread", "process", "ray", "simulated")


@dataclass(slots=True)
class Result:
    """The outcome of one job: a measurement, or an error message; ``lost`` when the worker
    itself died (the trial is re-queued, not failed); simulated start/end times when simulated."""

    key: int
    measurement: Measurement | None = None
    error: str | None = None
    seconds: float = 0.0
    lost: bool = False
    sim_start: float | None = None
    sim_end: float | None = None


def _message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:2000]


def _timed(estimator: Estimator, arch: Any, fidelity: float | None) -> tuple[Measurement | None, str | None, float]:
    """Run one estimate where it is sent; exceptions come back as messages (they may not pickle)."""
    t0 = time.perf_counter()
    try:
        return estimator.estimate(arch, fidelity), None, time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - the trial fails with the message; the study goes on
        return None, _message(exc), time.perf_counter() - t0


class Executor(ABC):
    """Runs up to ``n_workers`` evaluations at once."""

    name = ""
    simulated = False

    def __init__(self, n_workers: int = 1) -> None:
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
            raise NasforgeError(f"n_workers must be a whole number >= 1, got {n_workers!r}")
        self.n_workers = n_workers
        self.estimator: Estimator | None = None
        self.catch: tuple[type[BaseException], ...] = (Exception,)

    def start(self, estimator: Estimator, catch: tuple[type[BaseException], ...] = (Exception,)) -> None:
        self.estimator, self.catch = estimator, catch

    @property
    @abstractmethod
    def running(self) -> int:
        """Jobs submitted and not yet returned by :meth:`wait`."""

    @property
    def free(self) -> int:
        return self.n_workers - self.running

    @abstractmethod
    def submit(self, key: int, arch: Any, fidelity: float | None) -> None:
        """Start evaluating ``arch`` at ``fidelity``; ``key`` identifies the result."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> list[Result]:
        """Results that are ready (at least one unless ``timeout`` seconds pass), in a fixed order."""

    def shutdown(self) -> None:
        pass


class SerialExecutor(Executor):
    """In this process, one at a time (the job runs inside :meth:`wait`)."""

    name = "serial"

    def __init__(self, n_workers: int = 1) -> None:
        super().__init__(n_workers)
        self._jobs: deque[tuple[int, Any, float | None]] = deque()

    @property
    def running(self) -> int:
        return len(self._jobs)

    def submit(self, key: int, arch: Any, fidelity: float | None) -> None:
        self._jobs.append((key, arch, fidelity))

    def wait(self, timeout: float | None = None) -> list[Result]:
        key, arch, fidelity = self._jobs.popleft()
        t0 = time.perf_counter()
        try:
            m = self.estimator.estimate(arch, fidelity)  # type: ignore[union-attr]
        except self.catch as exc:
            return [Result(key, error=_message(exc), seconds=time.perf_counter() - t0)]
        return [Result(key, m, seconds=time.perf_counter() - t0)]


class SimulatedExecutor(Executor):
    """A simulated clock (as Syne Tune's simulator backend): each job runs at once in this
    process but occupies a simulated worker for its measured ``cost`` seconds; results come back
    in order of simulated finishing time (ties: submission order). Deterministic."""

    name = "simulated"
    simulated = True

    def __init__(self, n_workers: int = 1) -> None:
        super().__init__(n_workers)
        self.clock = 0.0
        self._heap: list[tuple[float, int, Result]] = []
        self._count = 0

    @property
    def running(self) -> int:
        return len(self._heap)

    def submit(self, key: int, arch: Any, fidelity: float | None) -> None:
        t0 = time.perf_counter()
        try:
            m = self.estimator.estimate(arch, fidelity)  # type: ignore[union-attr]
            r = Result(key, m)
        except self.catch as exc:
            r = Result(key, error=_message(exc))
        r.seconds = time.perf_counter() - t0
        r.sim_start = self.clock
        r.sim_end = self.clock + (float(r.measurement.cost) if r.measurement is not None else 0.0)
        self._count += 1
        heapq.heappush(self._heap, (r.sim_end, self._count, r))

    def wait(self, timeout: float | None = None) -> list[Result]:
        end, _, r = heapq.heappop(self._heap)
        self.clock = end
        return [r]


class _FutureExecutor(Executor):
    """Shared by the thread, process and Ray executors: jobs are concurrent futures."""

    def __init__(self, n_workers: int = 1) -> None:
        super().__init__(n_workers)
        self._futures: dict[cf.Future, tuple[int, int]] = {}
        self._count = 0

    @property
    def running(self) -> int:
        return len(self._futures)

    @abstractmethod
    def _submit(self, arch: Any, fidelity: float | None) -> cf.Future:
        ...

    def submit(self, key: int, arch: Any, fidelity: float | None) -> None:
        self._count += 1
        self._futures[self._submit(arch, fidelity)] = (self._count, key)

    def _lost(self, exc: BaseException) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> list[Result]:
        done, _ = cf.wait(list(self._futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out: list[tuple[int, Result]] = []
        for fut in done:
            order, key = self._futures.pop(fut)
            exc = fut.exception()
            if exc is None:
                m, err, seconds = fut.result()
                out.append((order, Result(key, m, err, seconds)))
            elif self._lost(exc):
                out.append((order, Result(key, error=f"worker died ({_message(exc)})", lost=True)))
            elif isinstance(exc, self.catch):
                out.append((order, Result(key, error=_message(exc))))
            else:
                raise exc
        out.sort(key=lambda x: x[0])  # several at once: in submission order
        return [r for _, r in out]


class ThreadExecutor(_FutureExecutor):
    """Threads of this process: for estimators that release the GIL (PyTorch) or wait on I/O."""

    name = "thread"

    def start(self, estimator: Estimator, catch: tuple[type[BaseException], ...] = (Exception,)) -> None:
        super().start(estimator, catch)
        self._pool = cf.ThreadPoolExecutor(self.n_workers, thread_name_prefix="nasforge-worker")

    def _submit(self, arch: Any, fidelity: float | None) -> cf.Future:
        return self._pool.submit(_timed, self.estimator, arch, fidelity)

    def shutdown(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


_WORKER_ESTIMATOR: Estimator | None = None


def _init_process(blob: bytes, threads: int) -> None:
    global _WORKER_ESTIMATOR
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    _WORKER_ESTIMATOR = pickle.loads(blob)


def _process_job(arch: Any, fidelity: float | None) -> tuple[Measurement | None, str | None, float]:
    return _timed(_WORKER_ESTIMATOR, arch, fidelity)  # type: ignore[arg-type]


class ProcessExecutor(_FutureExecutor):
    """A pool of ``n_workers`` processes on this machine (started fresh, "spawn"), each with the
    estimator unpickled once and ``threads`` PyTorch threads (default: cores / workers, so the
    cores are not oversubscribed). A worker that dies loses its job (re-queued by the study) and
    the pool is started again."""

    name = "process"

    def __init__(self, n_workers: int = 1, threads: int | None = None) -> None:
        super().__init__(n_workers)
        self.threads = threads if threads is not None else max(1, (os.cpu_count() or 1) // n_workers)
        self._pool: cf.ProcessPoolExecutor | None = None

    def start(self, estimator: Estimator, catch: tuple[type[BaseException], ...] = (Exception,)) -> None:
        super().start(estimator, catch)
        try:
            self._blob = pickle.dumps(estimator)
        except Exception as exc:  # noqa: BLE001 - lambdas, open files, ...
            raise NasforgeError(f"executor 'process' needs a picklable estimator; {type(estimator).__name__} is "
                                f"not ({_message(exc)}); use executor='thread'") from None

    def _pool_now(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing as mp

            self._pool = cf.ProcessPoolExecutor(self.n_workers, mp_context=mp.get_context("spawn"),
                                                initializer=_init_process, initargs=(self._blob, self.threads))
        return self._pool

    def _submit(self, arch: Any, fidelity: float | None) -> cf.Future:
        try:
            return self._pool_now().submit(_process_job, arch, fidelity)
        except cf.process.BrokenProcessPool:
            self._restart()
            return self._pool_now().submit(_process_job, arch, fidelity)

    def _lost(self, exc: BaseException) -> bool:
        if isinstance(exc, cf.process.BrokenProcessPool):
            self._restart()
            return True
        return False

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _ray_job(estimator: Estimator, arch: Any, fidelity: float | None) -> tuple[Measurement | None, str | None, float]:
    return _timed(estimator, arch, fidelity)


class RayExecutor(_FutureExecutor):
    """Ray tasks on a cluster (``address``: ``"127.0.0.1:6379"``, ``"ray://host:10001"``, or None
    for a local Ray started here). The estimator is put in the object store once; a task whose
    worker dies is retried once by Ray, then re-queued by the study."""

    name = "ray"

    def __init__(self, n_workers: int = 1, address: str | None = None, num_cpus: float = 1) -> None:
        super().__init__(n_workers)
        self.address, self.num_cpus = address, num_cpus
        self._own = False

    def start(self, estimator: Estimator, catch: tuple[type[BaseException], ...] = (Exception,)) -> None:
        super().start(estimator, catch)
        ray = _import_ray()
        if not ray.is_initialized():
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, log_to_driver=False, ignore_reinit_error=True,
                         **({} if self.address else {"include_dashboard": False}))
            except Exception as exc:  # noqa: BLE001 - unreachable address, bad cluster, ...
                raise NasforgeError(f"cannot connect to Ray at {self.address or 'a new local cluster'!r}: "
                                    f"{_message(exc)}") from None
            self._own = True
        self._ray = ray
        self._est = ray.put(estimator)
        self._remote = ray.remote(num_cpus=self.num_cpus, max_retries=1)(_ray_job)

    def _submit(self, arch: Any, fidelity: float | None) -> cf.Future:
        return self._remote.remote(self._est, arch, fidelity).future()

    def _lost(self, exc: BaseException) -> bool:
        ex = self._ray.exceptions
        return isinstance(exc, (ex.WorkerCrashedError, ex.NodeDiedError, ex.RaySystemError))

    def shutdown(self) -> None:
        for fut in list(self._futures):
            fut.cancel()
        if self._own:
            self._ray.shutdown()
            self._own = False


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on (Ray itself retries for minutes)."""
    if not address or address == "auto" or "://" in address:
        return
    import socket

    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise NasforgeError(f"bad Ray address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as exc:
        raise NasforgeError(f"cannot connect to Ray at {address!r}: {exc.strerror or exc}") from None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise NasforgeError("executor 'ray' needs Ray: pip install 'nasforge[ray]'") from None
    return ray


def make_executor(executor: str | Executor | None, n_workers: int = 1, ray_address: str | None = None) -> Executor:
    """An executor by name (``serial``, ``thread``, ``process``, ``ray``, ``simulated``) or the
    object itself; ``None`` is ``serial`` for one worker and ``process`` for several."""
    if isinstance(executor, Executor):
        return executor
    if executor is None:
        executor = "serial" if n_workers == 1 else "process"
    if executor not in EXECUTORS:
        raise unknown("executor", executor, EXECUTORS)
    if ray_address is not None and executor != "ray":
        raise NasforgeError(f"ray_address {ray_address!r} needs executor 'ray', not {executor!r}")
    if executor == "serial":
        if n_workers != 1:
            raise NasforgeError(f"executor 'serial' runs one trial at a time; n_workers={n_workers!r} needs "
                                "'thread', 'process', 'ray' or 'simulated'")
        return SerialExecutor(1)
    if executor == "ray":
        _import_ray()
        return RayExecutor(n_workers, ray_address)
    return {"thread": ThreadExecutor, "process": ProcessExecutor, "simulated": SimulatedExecutor}[executor](n_workers)
