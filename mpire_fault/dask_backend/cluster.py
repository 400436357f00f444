"""DaskPool's ownership of its cluster: the client it connects (or the LocalCluster it starts), and what it reads back.

``ClusterOwner`` is DaskPool's base: connecting on first use, the shared
objects scattered to the workers, the statistics and the chaos journal the
scheduler keeps. The calls themselves (apply, the map family, the lifecycle)
are in ``pool``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from typing import Any

import dask
from distributed import Client, LocalCluster

from ..chaos import JournalEntry
from ..chaos import journal as journal_file
from ..errors import Death, SchedulerLostError
from ..statistics import PoolStatistics
from .chaos import ChaosStore, chaos_snapshot, register_chaos
from .exits import ExitReporter
from .ledger import Ledger, ledger_report
from .liveness import CLOSE_BOUND, SchedulerWatch, bounded, register

log = logging.getLogger("mpire_fault.dask")


def _close_cluster(client: Client | None, cluster: LocalCluster | None, close_client: bool,
                   lost: list | None = None) -> None:
    try:
        if client is not None and close_client:
            client.close(timeout=CLOSE_BOUND if lost else 10)
    except Exception:  # closing is best effort; the cluster below is what owns processes
        log.debug("closing the Dask client failed", exc_info=True)
    if cluster is not None:
        try:
            cluster.close(timeout=20)
        except Exception:
            log.debug("closing the LocalCluster failed", exc_info=True)


STOP_NOW = 0.5  # seconds terminate() lets an owned cluster's workers stop before their nannies kill them


async def _close_nannies(nannies: list, timeout: float) -> None:
    await asyncio.gather(*(nanny.close(timeout=timeout, reason="mpire-fault-terminate") for nanny in nannies),
                         return_exceptions=True)


def stop_workers_now(cluster: LocalCluster) -> None:
    """Close an owned cluster's nannies with a short timeout: their workers stop within ``STOP_NOW`` (killed
    after it), where the cluster's own close waits up to 5 s for each worker's running task to finish."""
    try:
        cluster.sync(_close_nannies, list(cluster.workers.values()), STOP_NOW,
                     callback_timeout=STOP_NOW * 4 + CLOSE_BOUND)
    except Exception:  # noqa: BLE001 - the cluster's own close below still ends them, only later
        log.debug("stopping the workers of the LocalCluster failed", exc_info=True)


_WARM_START = "mpire_fault.dask_backend.warm_start"


def _at_default(key: str, default: Any) -> bool:
    """Whether Dask's setting ``key`` still has Dask's ``default``, and no environment variable names it
    (a value a user set to the default in a file is indistinguishable from it)."""
    variable = "DASK_" + key.upper().replace(".", "__").replace("-", "_")
    return dask.config.get(key) == default and variable not in os.environ


def _fast_worker_starts() -> None:
    """Owned clusters start (and restart) workers from a forkserver that preloaded distributed.

    Dask's default, spawn, takes seconds per worker; a worker that a task
    killed is then back in a fraction of a second, as in the local pool.
    Only Dask's default is replaced: a method set in Dask's configuration
    (file or environment) is kept. The setting is process-wide, as Dask's
    configuration is.
    """
    key = "distributed.worker.multiprocessing-method"
    if _at_default(key, "spawn"):
        dask.config.set({key: "forkserver"})
    if dask.config.get(key) == "forkserver":
        # Our worker side too (importing it costs a new worker about as much as distributed itself, at
        # its first task), and what a worker looks up to register (``warm_start``); effective unless the
        # process's forkserver is already running.
        from multiprocessing import forkserver

        from distributed.utils import get_mp_context

        context = get_mp_context()  # sets Dask's own preload list first
        modules = list(getattr(getattr(forkserver, "_forkserver", None), "_preload_modules", ["distributed"]))
        # Dask reseeds numpy's random state in each new worker, which imports numpy.random there (7% of a
        # worker's CPU from its start to its first task) when the forkserver preloaded numpy only.
        missing = [module for module in (_WARM_START, *(["numpy.random"] if "numpy" in modules else []))
                   if module not in modules]
        if missing:
            context.set_forkserver_preload([*modules, *missing])


# Dask's diagnostics that cost an owned cluster CPU and tell the pool nothing: each worker's statistical
# profiler samples its threads every 10 ms, and every server (scheduler, nannies, workers) times its event
# loop every 20 ms. Off and once a second, they halve what an idle or busy worker spends besides its tasks.
_LEAN_DIAGNOSTICS = {"distributed.worker.profile.enabled": (True, False),
                     "distributed.admin.tick.interval": ("20ms", "1s")}


def _lean_diagnostics() -> dict[str, Any]:
    """The settings an owned cluster starts with: the diagnostics above, where they still have Dask's defaults."""
    return {key: lean for key, (default, lean) in _LEAN_DIAGNOSTICS.items() if _at_default(key, default)}


def _with_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Dask's whole configuration with ``{"a.b": value, ...}`` set: what a nanny hands to each worker it
    starts (the worker replaces its configuration with it). New dicts along each key's path, so the
    global configuration is not changed."""
    tree: dict[str, Any] = {}
    for key, value in settings.items():
        *path, leaf = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return dask.config.merge(dask.config.config, tree)


class ClusterOwner:
    """The cluster half of DaskPool (whose ``__init__`` sets every attribute below)."""

    n_jobs: int | None
    address: str | Client | None
    _shared_objects: Any
    _max_worker_memory: int | None
    _lock: threading.RLock
    _client: Client | None
    _cluster: LocalCluster | None
    _shared_future: Any
    _counts: dict[str, int]
    _finalizer: Any
    _chaos: Any
    _local_chaos: Any
    _chaos_kept: tuple[dict, list[dict]]
    _mirrored: int
    _lost: list  # the SchedulerLostError, once the scheduler is lost (a list: the finalizer reads it too)
    _watch: SchedulerWatch | None

    def _busy(self) -> bool:  # work is pending: the watch pings the scheduler
        raise NotImplementedError

    def _scheduler_lost(self, error: Any) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ cluster
    @property
    def client(self) -> Client:
        """The ``distributed.Client`` the pool submits through (connecting, or starting its cluster, on first use)."""
        with self._lock:
            if self._lost:  # a call now would wait for a scheduler that does not answer
                raise SchedulerLostError(self._lost[0].address, self._lost[0].detail)
            if self._client is None:
                self._connect()
            return self._client  # type: ignore[return-value]

    def _connect(self) -> None:
        if self.address is None:
            n = self.n_jobs or os.cpu_count() or 1
            _fast_worker_starts()
            lean = _lean_diagnostics()
            # The scheduler and the nannies (in this process) read the settings once, as they start; the
            # workers get them from their nanny, as ``config``: a nanny shares the global configuration's
            # dicts, which ``dask.config.set`` restores on leaving, and its later restarts would not have them.
            with dask.config.set(lean):
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=logging.CRITICAL, memory_limit=self._max_worker_memory or "auto",
                                       config=_with_settings(lean))
            client, owns_client = Client(cluster, set_as_default=False), True
            self._cluster = cluster
        elif isinstance(self.address, Client):
            client, owns_client = self.address, False
        else:
            client, owns_client = Client(self.address, set_as_default=False), True
        try:
            register(client, Ledger())
            if self._chaos is not None:
                register(client, ChaosStore())
                bounded(client, client._run_on_scheduler, register_chaos, self._chaos.key, self._chaos.spec,
                        self._chaos.seed, *self._chaos_kept, what="opening the chaos run")
            workers = bounded(client, client.scheduler.identity, what="listing the workers").get("workers", {})
            if workers:
                register(client, ExitReporter())
        except BaseException:
            _close_cluster(client, self._cluster, owns_client)
            self._cluster = None
            raise
        if self.n_jobs is None:
            self.n_jobs = max(1, len(workers))
        self._client = client
        self._lost = []
        self._watch = SchedulerWatch(client, self._busy, self._scheduler_lost)
        self._finalizer = weakref.finalize(self, _close_cluster, client, self._cluster, owns_client, self._lost)

    def _shared(self) -> Any:
        if self._shared_objects is None:
            return None
        future = self._shared_future
        if future is None or future.status in ("lost", "error", "cancelled"):
            client = self.client
            future = bounded(client, client._scatter, [self._shared_objects], broadcast=True, hash=False,
                             what="sending the shared objects")[0]
            self._shared_future = future
        return future

    # ------------------------------------------------------------------ chaos
    def _keep_chaos(self, drop: bool = False) -> None:
        """Copy the chaos run's state and journal from the scheduler (it may close, or be shared)."""
        client = self._client
        if self._chaos is None or client is None:
            return
        try:
            if self._lost:
                return  # nobody to ask: what was kept last stays
            self._chaos_kept = bounded(client, client._run_on_scheduler, chaos_snapshot, self._chaos.key, drop,
                                       what="reading the chaos journal")
        except Exception:
            log.debug("reading the chaos journal from the scheduler failed", exc_info=True)
            return
        extra = getattr(self._local_chaos, "extra_journal", None)
        entries = self._chaos_kept[1]
        if extra:  # the pytest plugin's per-test journal file (MP_CHAOS_JOURNAL), on this machine
            for data in entries[self._mirrored:]:
                journal_file.append(extra, JournalEntry.from_dict(data))
        self._mirrored = len(entries)

    def chaos_journal(self) -> list[JournalEntry]:
        """Faults the chaos layer injected into this pool's Dask workers so far (kept by the scheduler)."""
        self._keep_chaos()
        return [JournalEntry.from_dict(data) for data in self._chaos_kept[1]]


def cluster_statistics(n_jobs: int, client: Client | None, counts: dict[str, int]) -> PoolStatistics:
    """``DaskPool.statistics()``: the ledger's view of the workers and their deaths, and the pool's task counts."""
    if client is None:
        return PoolStatistics(n_jobs, tasks_completed=counts["tasks_completed"], tasks_failed=counts["tasks_failed"])
    report = bounded(client, client._run_on_scheduler, ledger_report, what="reading the statistics")
    pids = report["pids"]
    deaths = tuple(Death(death["worker_id"], None, death["exitcode"], task=None) for death in report["deaths"])
    return PoolStatistics(n_jobs, live_workers=len(pids),
                          worker_pids={report["slots"].get(address, -1): pid for address, pid in pids.items()},
                          restarts=len(deaths), deaths=deaths, tasks_completed=counts["tasks_completed"],
                          tasks_failed=counts["tasks_failed"])
