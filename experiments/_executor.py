"""Where a sweep's units run: in this process (``local``, the default) or on Dask distributed.

:func:`experiments._common.run_sweep` asks :func:`current_executor` for the executor
that the command line (or the caller) activated, so no experiment's ``run`` needs an
extra argument::

    with DaskExecutor(workers=2):          # starts a LocalCluster of 2 processes
        conditions.run(config)             # its units run on the cluster

    with DaskExecutor(scheduler="tcp://host:8786"):   # an existing cluster
        ...

Who writes the cache: the **client** (the process that called ``run_sweep``) writes
each finished unit atomically, once, as its result arrives. Workers only compute; they
need the project installed but no access to the results folder (a remote cluster
works without a shared file system). Each result comes back with the fingerprint of the
code that computed it on its worker; a unit from a worker that runs other code than the
client (another version of ``twolayer``, or of the experiment's module) is not cached but
reported as failed (:class:`CodeMismatchError`), so no record is ever labelled with code
that did not compute it. A killed worker loses only the units it was
computing: Dask reschedules them on another worker (after
``distributed.scheduler.allowed-failures`` worker deaths a unit is reported as failed,
the other units still finish and are written, and ``run_sweep`` then raises
:class:`SweepError`). A killed client loses only the units not yet returned; a rerun
computes exactly the missing ones.

``distributed`` is an optional dependency: ``pip install -e '.[dask]'``.
"""

from __future__ import annotations

import contextvars
import time
from typing import Callable, Iterator

__all__ = ["Executor", "LocalExecutor", "DaskExecutor", "SweepError", "CodeMismatchError",
           "current_executor", "make_executor", "EXECUTORS"]

EXECUTORS = ("local", "dask")

_CURRENT: contextvars.ContextVar["Executor | None"] = contextvars.ContextVar("twolayer_executor",
                                                                             default=None)


class SweepError(RuntimeError):
    """Some units of a sweep failed; every unit that finished was written to the cache."""


class CodeMismatchError(RuntimeError):
    """A worker computed a unit with other code than the client's (its ``twolayer`` package,
    or the module that defines ``compute``, differs): the unit is not cached."""


def compute_unit(compute: Callable[[dict], list], unit: dict, fingerprint: bool = False) -> tuple:
    """Run one unit (on whichever process executes it); returns (JSON-able records, seconds),
    and with ``fingerprint`` also what code computed them there
    (:func:`experiments._common.code_parts`, with the host and process), for the client to
    compare with its own (a remote worker may have another version installed)."""
    from twolayer.provenance import jsonable

    from ._code import code_parts
    t0 = time.perf_counter()
    recs = compute(unit)
    out = (jsonable(recs), time.perf_counter() - t0)
    if fingerprint:
        import os
        import socket
        out += (dict(code_parts(compute), host=socket.gethostname(), pid=os.getpid()),)
    return out


class Executor:
    """Runs ``compute`` on units; a context manager that also makes itself the current executor."""

    name = "abstract"

    def map_unordered(self, compute: Callable[[dict], list], items: list[tuple[str, dict]]
                      ) -> Iterator[tuple[str, tuple[list, float] | BaseException]]:
        """Yield ``(key, (records, seconds))`` per finished unit, or ``(key, exception)``; an
        executor whose units run in other processes adds the code that ran there
        (``(records, seconds, code)``, see :func:`compute_unit`)."""
        raise NotImplementedError

    def start(self) -> "Executor":
        return self

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        self.start()
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *exc) -> None:
        _CURRENT.reset(self._token)
        self.close()


class LocalExecutor(Executor):
    """Units one after another in this process (the default; exceptions propagate at once)."""

    name = "local"

    def map_unordered(self, compute, items):
        for key, unit in items:
            yield key, compute_unit(compute, unit)

    def __repr__(self) -> str:
        return "LocalExecutor()"


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the install
        from twolayer.errors import TwoLayerInputError
        raise TwoLayerInputError(
            "executor", "'dask' needs the optional package 'distributed', which is not installed",
            "install it with `pip install -e '.[dask]'` (or `pip install \"dask[distributed]\"`), "
            "or use --executor local") from exc
    return distributed


class DaskExecutor(Executor):
    """Units as tasks on Dask distributed.

    ``scheduler=None`` starts a ``distributed.LocalCluster`` on this machine with
    ``workers`` worker processes (default: the number of CPU cores) of one thread
    each; ``scheduler="tcp://HOST:PORT"`` connects to a running cluster instead
    (``workers`` must then be None). The cluster (if started here) is closed on exit.
    """

    name = "dask"

    def __init__(self, workers: int | None = None, scheduler: str | None = None, *,
                 threads_per_worker: int = 1, dashboard: bool = False):
        from twolayer.errors import TwoLayerInputError
        if scheduler is not None and workers is not None:
            raise TwoLayerInputError("workers", "is set together with a scheduler address; an "
                                     "existing cluster has its own workers",
                                     "give either workers (start a LocalCluster) or scheduler")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise TwoLayerInputError("workers", f"must be a positive integer, got {workers!r}",
                                     "pass e.g. workers=2")
        self.workers, self.scheduler = workers, scheduler
        self.threads_per_worker, self.dashboard = threads_per_worker, dashboard
        self.client = self.cluster = None

    def start(self) -> "DaskExecutor":
        if self.client is not None:
            return self
        distributed = _import_distributed()
        if self.scheduler is not None:
            self.client = distributed.Client(self.scheduler)
        else:
            import os
            n = self.workers or os.cpu_count() or 1
            # The scheduler always serves HTTP (health checks); a random port avoids clashes with
            # other clusters on the machine. The dashboard proper only on request (port 8787).
            # Several worker processes on one GPU: no process may grab 75% of its memory up
            # front (JAX's default), unless the user configured that explicitly.
            env = {} if "XLA_PYTHON_CLIENT_PREALLOCATE" in os.environ else {
                "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
            # simulate_batch's default threads: each worker process its share of the cores
            # (two threads per core), not two per core of the whole machine each.
            from twolayer._solve import THREADS_ENV, THREADS_PER_CORE, cpu_cores
            if THREADS_ENV not in os.environ:
                env[THREADS_ENV] = str(max(1, THREADS_PER_CORE * cpu_cores() // n))
            self.cluster = distributed.LocalCluster(
                n_workers=n, threads_per_worker=self.threads_per_worker, processes=True,
                dashboard_address=":8787" if self.dashboard else ":0",
                scheduler_kwargs={"dashboard": bool(self.dashboard)}, env=env)
            self.client = distributed.Client(self.cluster)
        return self

    def close(self) -> None:
        import logging
        # Worker processes that hold JAX's thread pools can take a few seconds to exit; the
        # nanny then kills them with a warning. That is our own shutdown: keep it quiet.
        nanny = logging.getLogger("distributed.nanny")
        level = nanny.level
        nanny.setLevel(logging.ERROR)
        try:
            if self.client is not None:
                self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        finally:
            nanny.setLevel(level)
            self.client = self.cluster = None

    def map_unordered(self, compute, items):
        if self.client is None:
            raise RuntimeError("DaskExecutor is not started: use it as a context manager "
                               "(`with DaskExecutor(...):`) or call .start()")
        distributed = _import_distributed()
        import uuid
        run_id = uuid.uuid4().hex[:8]
        futures = {}
        for key, unit in items:
            fut = self.client.submit(compute_unit, compute, unit, True, key=f"unit-{key}-{run_id}", pure=False)
            futures[fut.key] = (key, fut)
        try:
            for fut in distributed.as_completed([f for _, f in futures.values()]):
                key = futures[fut.key][0]
                if fut.status == "finished":
                    try:
                        yield key, fut.result()
                    except Exception as exc:  # noqa: BLE001 - lost between status and fetch
                        yield key, exc
                else:
                    try:
                        exc = fut.exception()
                    except BaseException as err:  # noqa: BLE001 - e.g. cancelled by the scheduler
                        exc = err
                    yield key, exc or RuntimeError(f"unit {key}: task {fut.status}")
                fut.release()
        finally:  # the client stops (error, Ctrl-C): cancel what is still queued
            pending = [f for _, f in futures.values() if not f.done()]
            if pending:
                self.client.cancel(pending)

    def __repr__(self) -> str:
        where = self.scheduler or f"LocalCluster(workers={self.workers or 'all cores'})"
        return f"DaskExecutor({where})"


def current_executor() -> Executor:
    """The executor activated by the innermost ``with executor:`` block, else a LocalExecutor."""
    return _CURRENT.get() or LocalExecutor()


def make_executor(kind: str = "local", workers: int | None = None,
                  scheduler: str | None = None) -> Executor:
    """``"local"`` or ``"dask"`` (see :class:`DaskExecutor`) by name, validated."""
    from twolayer.errors import TwoLayerInputError
    if kind not in EXECUTORS:
        raise TwoLayerInputError("executor", f"unknown executor {kind!r}", f"use one of {EXECUTORS}")
    if kind == "local":
        if workers is not None or scheduler is not None:
            raise TwoLayerInputError("executor", "workers/scheduler were given with the local executor",
                                     "add --executor dask (or drop --workers/--scheduler)")
        return LocalExecutor()
    return DaskExecutor(workers=workers, scheduler=scheduler)

