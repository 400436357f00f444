"""Every wait on the scheduler has a bound, and a silent or dead scheduler fails what waits on it, by name.

Dask's client waits for its scheduler without a limit: a scheduler that is
stopped (SIGSTOP, a frozen VM, a partition that drops packets) keeps its TCP
connection open and never answers, so a map waited for ever; a scheduler
that died made the client reconnect for half a minute and then cancel every
future, which read as "the pool was terminated". Here each request to the
scheduler goes through ``bounded`` (``SCHEDULER_BOUND``), and while the pool
has work pending, ``SchedulerWatch`` pings the scheduler; after
``SILENT_AFTER`` seconds without an answer the pending calls fail with
``SchedulerLostError`` naming the scheduler's address.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from distributed.diagnostics.plugin import NannyPlugin, SchedulerPlugin, WorkerPlugin

from ..errors import SchedulerLostError

log = logging.getLogger("mpire_fault.dask")

SCHEDULER_BOUND = 20.0  # seconds for one request to the scheduler
PING_EVERY = 1.0
PING_BOUND = 5.0
SILENT_AFTER = 15.0  # seconds without any answer from the scheduler before the pending calls fail
CLOSE_BOUND = 2.0  # closing a client whose scheduler is lost: there is nobody to say goodbye to


def scheduler_address(client: Any) -> str:
    address = getattr(getattr(client, "scheduler", None), "address", None)
    return str(address or getattr(client, "_start_arg", None) or "an unknown address")


def bounded(client: Any, func: Callable[..., Any], *args: Any, what: str, bound: float | None = None,
            **kwargs: Any) -> Any:
    """``client.sync(func, *args, **kwargs)``, failing with SchedulerLostError after ``bound`` seconds
    (``SCHEDULER_BOUND`` if None) or on a broken connection (``func`` is a coroutine function of the
    client's, e.g. ``client._run_on_scheduler``)."""
    from distributed.comm import CommClosedError

    bound = SCHEDULER_BOUND if bound is None else bound
    try:
        return client.sync(func, *args, callback_timeout=bound, **kwargs)
    except TimeoutError as exc:  # also asyncio's, and distributed's
        raise SchedulerLostError(scheduler_address(client), f"{what} got no answer within {bound:g} s") from exc
    except (OSError, CommClosedError) as exc:
        raise SchedulerLostError(scheduler_address(client), f"{what} failed: {exc!r}") from exc


def register(client: Any, plugin: Any, name: str | None = None) -> Any:
    """``client.register_plugin``, bounded."""
    name = name or getattr(plugin, "name", None) or type(plugin).__name__
    idempotent = bool(getattr(plugin, "idempotent", False))
    if isinstance(plugin, SchedulerPlugin):
        func = client._register_scheduler_plugin
    elif isinstance(plugin, NannyPlugin):
        func = client._register_nanny_plugin
    elif isinstance(plugin, WorkerPlugin):
        func = client._register_worker_plugin
    else:
        raise TypeError(f"not a Dask plugin: {plugin!r}")
    return bounded(client, func, plugin=plugin, name=name, idempotent=idempotent, what=f"registering {name}")


class SchedulerWatch:
    """Pings the scheduler while ``busy()``; calls ``lost(error)`` once it has been silent ``SILENT_AFTER`` s.

    The thread runs only while there is work pending (``poke`` starts it),
    so an idle pool sends nothing and holds no thread.
    """

    def __init__(self, client: Any, busy: Callable[[], bool], lost: Callable[[SchedulerLostError], None]) -> None:
        self._client = client
        self._busy = busy
        self._lost = lost
        self._lock = threading.Lock()
        self._running = False
        self._stop = threading.Event()

    def poke(self) -> None:
        with self._lock:
            if self._running or self._stop.is_set():
                return
            self._running = True
        threading.Thread(target=self._run, name="mpire-fault-dask-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        answered = time.monotonic()
        while True:
            with self._lock:  # checked under the lock ``poke`` takes: work that just came is never left unwatched
                if self._stop.is_set() or not self._busy():
                    self._running = False
                    return
            try:
                bounded(self._client, self._client.scheduler.identity, n_workers=0, what="a ping",
                        bound=PING_BOUND)
                answered = time.monotonic()
            except BaseException as exc:  # noqa: BLE001 - whatever the client raised, the scheduler did not answer
                silent = time.monotonic() - answered
                if silent >= SILENT_AFTER:
                    self._stop.set()
                    detail = exc.detail if isinstance(exc, SchedulerLostError) else repr(exc)
                    self._lost(SchedulerLostError(scheduler_address(self._client),
                                                  f"it has not answered for {silent:.0f} s (last: {detail})"))
            self._stop.wait(PING_EVERY)
