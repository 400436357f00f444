"""One small interface over each pool's own API, so the same machines grade them all.

Every wait has a bound: a call that does not answer in time raises ``Hang``,
and ``close()`` is bounded too (``CLOSE_BOUND`` for the pool's own shutdown,
however it blocks, then SIGKILL of every worker process still alive), so a
pool that hangs is a verdict, never a stuck run.

``features`` says what an adapter can express; a guarantee that needs a
feature the pool lacks is graded "unsupported", never "pass".
"""
from __future__ import annotations

import concurrent.futures
import importlib.util
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from ..children import live_children


class Hang(Exception):
    """A call on the pool did not answer within its bound."""


# What a guarantee may need beyond submit/get/map/terminate:
#   task_timeout - a per-task timeout on submission
#   names_item   - a death in a map says which item died
FEATURES = ("task_timeout", "names_item")
CLOSE_BOUND = 2.0  # how long the pool's own shutdown may take before we stop waiting for it
SETTLE_BOUND = 1.0  # after a shutdown that returned: how long workers get to leave on their own before SIGKILL
REAP_BOUND = 2.0  # how long a SIGKILLed worker may take to be gone (or a zombie)


def bounded(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    """``fn()`` in a daemon thread of its own; ``Hang`` if it has not returned after ``timeout`` seconds.

    For the adapter calls that are no submission (listing a pool's workers asks
    a Dask cluster over the network): a pool that stops answering there is a
    verdict too, never a stuck run.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"verify-{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise Hang(f"{what} did not answer within {timeout} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


class Adapter:
    """Start a pool of two workers; submit, get, map, list worker pids, close."""

    name = "?"
    death_error = "an exception"
    features: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = cls.features - set(FEATURES)
        if unknown:
            raise TypeError(f"{cls.__name__}.features names unknown features {sorted(unknown)}; known: {FEATURES}")

    def __init__(self) -> None:
        self.before = live_children()
        self.pool = self.start()
        self.closed = False

    def start(self) -> Any:
        return self.create()

    @staticmethod
    def create(**options: Any) -> Any:
        """A new pool of two workers, made as the kit grades it; ``options`` override its keywords.

        The benchmarks make their pools here too, so both compare the same peers."""
        raise NotImplementedError

    def submit(self, fn: Callable, args: tuple, callback: Callable | None = None,
               error_callback: Callable | None = None, timeout: float | None = None) -> Any:
        """Submit ``fn(*args)``; ``callback``/``error_callback`` run in this process with the value or the error."""
        raise NotImplementedError

    def get(self, handle: Any, timeout: float) -> Any:
        raise NotImplementedError

    def map(self, fn: Callable, items: list, timeout: float) -> list:
        """Run the pool's map in a thread, so a map that never returns is a Hang, not a stuck caller."""
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = self.run_map(fn, items)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise Hang(f"map did not return within {timeout} s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def run_map(self, fn: Callable, items: list) -> list:
        raise NotImplementedError

    def worker_pids(self) -> list[int]:
        return sorted(live_children() - self.before)

    def shutdown(self) -> None:
        """The pool's own way to stop now (terminate): pending work is dropped or failed."""
        self.pool.terminate()

    def terminate(self, timeout: float = CLOSE_BOUND) -> bool:
        """Call ``shutdown`` in a thread of its own; False if it had not returned after ``timeout``."""
        done = threading.Thread(target=self._quiet_shutdown, name=f"verify-shutdown-{self.name}", daemon=True)
        done.start()
        done.join(timeout)
        return not done.is_alive()

    def close(self) -> list[int]:
        """Tear down within a bound; returns the pids that had to be killed by force (left behind).

        A shutdown that blocks is left running in its daemon thread: the
        workers it should have stopped are killed from here, which is also
        what usually unblocks it.
        """
        if self.closed:
            return []
        self.closed = True
        if self.terminate(CLOSE_BOUND):
            deadline = time.monotonic() + SETTLE_BOUND  # pools that shut down asynchronously get a moment to reap
            while live_children() - self.before and time.monotonic() < deadline:
                time.sleep(0.02)
        left = sorted(live_children() - self.before)
        kill_and_wait(left, REAP_BOUND)
        return left

    def _quiet_shutdown(self) -> None:
        try:
            self.shutdown()
        except BaseException:  # noqa: BLE001 - whatever the pool raises on the way out, the kill follows
            pass


def kill_and_wait(pids: list[int], timeout: float) -> None:
    """SIGKILL these processes and wait (bounded) until each is gone or a zombie.

    Zombies are left for their parent (the pool's own bookkeeping) to reap:
    reaping them here would leave that bookkeeping waiting for a pid it can
    no longer collect.
    """
    procs = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.kill()
            procs.append(proc)
        except psutil.Error:
            pass
    deadline = time.monotonic() + timeout
    while procs and time.monotonic() < deadline:
        still = []
        for proc in procs:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    still.append(proc)
            except psutil.Error:
                pass
        procs = still
        if procs:
            time.sleep(0.02)


def _route(future, callback: Callable | None, error_callback: Callable | None) -> None:
    """A done future's outcome to callback or error_callback, the way apply_async hooks get it."""
    if future.cancelled():
        if error_callback is not None:
            error_callback(concurrent.futures.CancelledError())
        return
    error = future.exception()
    if error is None:
        if callback is not None:
            callback(future.result())
    elif error_callback is not None:
        error_callback(error)


def _route_dask(future, callback: Callable | None, error_callback: Callable | None) -> None:
    """``_route`` for a ``distributed.Future`` (its status says how it ended; nothing here blocks)."""
    if future.status == "finished":
        if callback is not None:
            callback(future.result(0))
    elif error_callback is not None:
        error = concurrent.futures.CancelledError() if future.status == "cancelled" else future.exception(0)
        error_callback(error)


def _future_result(future, timeout: float) -> Any:
    # Done first: a task's own TimeoutError (pebble's timeout) is an answer, not a Hang.
    concurrent.futures.wait([future], timeout)
    if not future.done():
        raise Hang(f"no answer within {timeout} s")
    return future.result(0)


def _async_result(handle, timeout: float) -> Any:
    # Ready first: a task_timeout makes get() raise a TimeoutError of the task's own, an answer, not a Hang.
    handle.wait(timeout)
    if not handle.ready():
        raise Hang(f"no answer within {timeout} s")
    return handle.get(0)


class MpireFaultAdapter(Adapter):
    name = "mpire_fault"
    death_error = "WorkerDiedError"
    features = frozenset({"task_timeout", "names_item"})

    @staticmethod
    def create(**options: Any) -> Any:
        from mpire_fault import WorkerPool

        return WorkerPool(2, **{"keep_alive": True, **options})

    def submit(self, fn, args, callback=None, error_callback=None, timeout=None):
        return self.pool.apply_async(fn, args, callback=callback, error_callback=error_callback,
                                     task_timeout=timeout)

    def get(self, handle, timeout):
        return _async_result(handle, timeout)

    def run_map(self, fn, items):
        return self.pool.map(fn, items, chunk_size=1)

    def worker_pids(self) -> list[int]:
        return sorted(self.pool.statistics()["worker_pids"].values())


class MultiprocessingAdapter(Adapter):
    name = "multiprocessing"

    @staticmethod
    def create(**options: Any) -> Any:
        import multiprocessing

        return multiprocessing.get_context("fork").Pool(2, **options)

    def submit(self, fn, args, callback=None, error_callback=None, timeout=None):
        if timeout is not None:
            raise NotImplementedError("multiprocessing.Pool has no per-task timeout")
        return self.pool.apply_async(fn, args, callback=callback, error_callback=error_callback)

    def get(self, handle, timeout):
        return _async_result(handle, timeout)

    def run_map(self, fn, items):
        return self.pool.starmap(fn, items, chunksize=1)


class FuturesAdapter(Adapter):
    name = "concurrent.futures"

    @staticmethod
    def create(**options: Any) -> Any:
        import multiprocessing

        return concurrent.futures.ProcessPoolExecutor(2, **{"mp_context": multiprocessing.get_context("fork"),
                                                           **options})

    def submit(self, fn, args, callback=None, error_callback=None, timeout=None):
        if timeout is not None:
            raise NotImplementedError(f"{self.name} has no per-task timeout")
        future = self.pool.submit(fn, *args)
        if callback is not None or error_callback is not None:
            future.add_done_callback(lambda done: _route(done, callback, error_callback))
        return future

    def get(self, handle, timeout):
        return _future_result(handle, timeout)

    def run_map(self, fn, items):
        return list(self.pool.map(fn, *zip(*items, strict=True)))

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class LokyAdapter(FuturesAdapter):
    name = "loky"

    @staticmethod
    def create(**options: Any) -> Any:
        from loky import ProcessPoolExecutor

        return ProcessPoolExecutor(2, **options)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, kill_workers=True)


class MpireAdapter(MpireFaultAdapter):
    name = "mpire"
    death_error = "an exception"
    features = frozenset({"task_timeout"})

    @staticmethod
    def create(**options: Any) -> Any:
        from mpire import WorkerPool

        return WorkerPool(2, **{"keep_alive": True, **options})

    def worker_pids(self) -> list[int]:
        return Adapter.worker_pids(self)


class PebbleAdapter(Adapter):
    name = "pebble"
    features = frozenset({"task_timeout"})

    @staticmethod
    def create(**options: Any) -> Any:
        from pebble import ProcessPool

        return ProcessPool(max_workers=2, **options)

    def submit(self, fn, args, callback=None, error_callback=None, timeout=None):
        future = self.pool.schedule(fn, args=args, timeout=timeout)
        if callback is not None or error_callback is not None:
            future.add_done_callback(lambda done: _route(done, callback, error_callback))
        return future

    def get(self, handle, timeout):
        return _future_result(handle, timeout)

    def run_map(self, fn, items):
        return list(self.pool.map(fn, *zip(*items, strict=True)).result())

    def shutdown(self) -> None:
        self.pool.stop()
        self.pool.join(CLOSE_BOUND)


class DaskAdapter(Adapter):
    """Plain ``distributed``: ``Client.submit``/``map`` on a LocalCluster with Dask's defaults (nannies,
    ``allowed-failures``); a death surfaces as ``KilledWorker`` once Dask gives up rerunning the task."""

    name = "dask"

    def start(self) -> Any:
        import logging

        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                    silence_logs=logging.CRITICAL)
        return Client(self.cluster, set_as_default=False)

    def submit(self, fn, args, callback=None, error_callback=None, timeout=None):
        if timeout is not None:
            raise NotImplementedError("distributed.Client.submit has no per-task timeout")
        future = self.pool.submit(fn, *args, pure=False)
        if callback is not None or error_callback is not None:
            future.add_done_callback(lambda done: _route_dask(done, callback, error_callback))
        return future

    def get(self, handle, timeout):
        from distributed import TimeoutError as DaskTimeout

        try:
            return handle.result(timeout)
        except (DaskTimeout, concurrent.futures.TimeoutError, TimeoutError):
            raise Hang(f"no answer within {timeout} s") from None

    def run_map(self, fn, items):
        return self.pool.gather(self.pool.map(fn, *zip(*items, strict=True), pure=False))

    def worker_pids(self) -> list[int]:
        # as the scheduler knows them: Client.run would wait on a dead worker for Dask's connect timeout
        try:
            return sorted(self.pool.run_on_scheduler(_scheduler_worker_pids))
        except Exception:  # noqa: BLE001 - a cluster in trouble has no pids to give; the kit goes on
            return []

    def shutdown(self) -> None:
        try:
            self.pool.close(timeout=3)
        finally:
            self.cluster.close(timeout=3)


def _scheduler_worker_pids(dask_scheduler: Any = None) -> list[int]:
    """``Client.run_on_scheduler`` target: the pids of the workers the scheduler has now."""
    return [worker.pid for worker in dask_scheduler.workers.values()]


class MpireFaultDaskAdapter(MpireFaultAdapter):
    """Our ``DaskPool`` on a LocalCluster it owns (two workers, one thread each)."""

    name = "mpire_fault-dask"

    def start(self) -> Any:
        from mpire_fault.dask_backend import DaskPool

        pool = DaskPool(2)
        _ = pool.client  # start the cluster now, not inside the first bounded call
        return pool


ADAPTERS: dict[str, type[Adapter]] = {
    "mpire_fault": MpireFaultAdapter,
    "multiprocessing": MultiprocessingAdapter,
    "concurrent.futures": FuturesAdapter,
    "loky": LokyAdapter,
    "mpire": MpireAdapter,
    "pebble": PebbleAdapter,
    "dask": DaskAdapter,
    "mpire_fault-dask": MpireFaultDaskAdapter,
}
# pool name: (the module it needs, the extra of ours that installs it)
_NEEDS = {"loky": ("loky", "peers"), "mpire": ("mpire", "peers"), "pebble": ("pebble", "peers"),
          "dask": ("distributed", "dask"), "mpire_fault-dask": ("distributed", "dask")}


def available() -> list[str]:
    """Pool names whose package is installed here."""
    return [name for name in ADAPTERS if missing(name) is None]


def missing(name: str) -> str | None:
    """Why pool ``name`` cannot be graded here (its package is not installed, and how to install it), or None."""
    if name not in _NEEDS:
        return None
    module, extra = _NEEDS[name]
    if importlib.util.find_spec(module) is not None:
        return None
    return f"pool {name} needs the package {module}, which is not installed: pip install 'mpire_fault[{extra}]'"
