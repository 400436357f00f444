"""The kit's adapters for the peers it grades against: multiprocessing, concurrent.futures, loky, mpire,
pebble and dask."""
from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

from .adapter_base import CLOSE_BOUND, Adapter, Hang, async_result
from .our_adapters import MpireFaultAdapter


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


def _routed(future, callback: Callable | None, error_callback: Callable | None) -> Any:
    """``future``, its outcome routed by ``_route`` once done (if there is a hook to route it to)."""
    if callback is not None or error_callback is not None:
        future.add_done_callback(lambda done: _route(done, callback, error_callback))
    return future


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
        return async_result(handle, timeout)

    features = frozenset({"chunk_size", "worker_init", "terminate", "lifespan"})

    def run_map(self, fn, items):
        return self.run_map_chunked(fn, items, 1)

    def run_map_chunked(self, fn, items, chunk_size):
        return self.pool.starmap(fn, items, chunksize=chunk_size)

    def run_map_input(self, fn, iterable, chunk_size, n_splits):
        return self.pool.map(fn, iterable, chunksize=chunk_size)


class FuturesAdapter(Adapter):
    name = "concurrent.futures"
    features = frozenset({"chunk_size", "worker_init", "lifespan"})

    @staticmethod
    def create(**options: Any) -> Any:
        import multiprocessing

        return concurrent.futures.ProcessPoolExecutor(2, **{"mp_context": multiprocessing.get_context("fork"),
                                                           **options})

    def submit(self, fn, args, callback=None, error_callback=None, timeout=None):
        if timeout is not None:
            raise NotImplementedError(f"{self.name} has no per-task timeout")
        return _routed(self.pool.submit(fn, *args), callback, error_callback)

    def get(self, handle, timeout):
        return _future_result(handle, timeout)

    def run_map(self, fn, items):
        return list(self.pool.map(fn, *zip(*items, strict=True)))

    def run_map_input(self, fn, iterable, chunk_size, n_splits):
        return list(self.pool.map(fn, iterable, chunksize=chunk_size or 1))

    def lifespan_options(self, lifespan):
        import multiprocessing

        # the executor refuses max_tasks_per_child with fork (a replacement would fork a threaded parent)
        return {"max_tasks_per_child": lifespan, "mp_context": multiprocessing.get_context("forkserver")}

    shutdown_returns_early = True  # wait=False: the running tasks end, then the workers, after it returned

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class LokyAdapter(FuturesAdapter):
    name = "loky"
    features = (FuturesAdapter.features - {"lifespan"}) | {"terminate"}  # shutdown(kill_workers=True); no per-worker
    # task limit in loky's executor

    @staticmethod
    def create(**options: Any) -> Any:
        from loky import ProcessPoolExecutor

        return ProcessPoolExecutor(2, **options)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, kill_workers=True)


class MpireAdapter(MpireFaultAdapter):
    name = "mpire"
    death_error = "an exception"
    features = frozenset({"task_timeout", "chunk_size", "n_splits", "mpire_items", "worker_init", "start_methods",
                          "terminate", "lifespan"})

    @staticmethod
    def create(**options: Any) -> Any:
        from mpire import WorkerPool

        return WorkerPool(2, **{"keep_alive": True, **options})

    def worker_pids(self) -> list[int]:
        return Adapter.worker_pids(self)


class PebbleAdapter(Adapter):
    name = "pebble"
    features = frozenset({"task_timeout", "chunk_size", "worker_init", "terminate", "lifespan"})  # shutdown: stop()

    @staticmethod
    def create(**options: Any) -> Any:
        from pebble import ProcessPool

        return ProcessPool(max_workers=2, **options)

    def submit(self, fn, args, callback=None, error_callback=None, timeout=None):
        return _routed(self.pool.schedule(fn, args=args, timeout=timeout), callback, error_callback)

    def get(self, handle, timeout):
        return _future_result(handle, timeout)

    def run_map(self, fn, items):
        return list(self.pool.map(fn, *zip(*items, strict=True)).result())

    def run_map_input(self, fn, iterable, chunk_size, n_splits):
        return list(self.pool.map(fn, iterable, chunksize=chunk_size or 1).result())

    def lifespan_options(self, lifespan):
        return {"max_tasks": lifespan}

    def shutdown(self) -> None:
        self.pool.stop()
        self.pool.join(CLOSE_BOUND)


class DaskAdapter(Adapter):
    """Plain ``distributed``: ``Client.submit``/``map`` on a LocalCluster with Dask's defaults (nannies,
    ``allowed-failures``); a death surfaces as ``KilledWorker`` once Dask gives up rerunning the task."""

    name = "dask"
    side_by_side = 4  # each grading starts a LocalCluster of five processes
    features = frozenset({"terminate"})  # shutdown() closes the client and its cluster

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

    def run_map_input(self, fn, iterable, chunk_size, n_splits):
        return self.pool.gather(self.pool.map(fn, list(iterable), pure=False))

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
