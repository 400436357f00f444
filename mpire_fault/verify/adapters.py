"""One small interface over each pool's own API, so the same machines grade them all.

Every wait has a bound: a call that does not answer in time raises ``Hang``,
and ``close()`` tears the pool down by force (terminate, then SIGKILL of any
child process left), so a pool that hangs is a verdict, never a stuck run.
"""
from __future__ import annotations

import concurrent.futures
import importlib.util
import os
import signal
import threading
import time
from typing import Any, Callable

import psutil


class Hang(Exception):
    """A call on the pool did not answer within its bound."""


def worker_processes() -> set[int]:
    """Live child processes of this one, less the helpers pools keep (forkserver, resource trackers)."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "forkserver" not in command and "tracker" not in command:
            found.add(child.pid)
    return found


class Adapter:
    """Start a pool of two workers; submit, get, map, list worker pids, close."""

    name = "?"
    death_error = "an exception"

    def __init__(self) -> None:
        self.before = worker_processes()
        self.pool = self.start()

    def start(self) -> Any:
        raise NotImplementedError

    def submit(self, fn: Callable, args: tuple) -> Any:
        raise NotImplementedError

    def get(self, handle: Any, timeout: float) -> Any:
        raise NotImplementedError

    def map(self, fn: Callable, items: list, timeout: float) -> list:
        """Run the pool's map in a thread, so a map that never returns is a Hang, not a stuck caller."""
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = self.run_map(fn, items)
            except BaseException as exc:  # noqa: B902 - handed to the caller
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
        return sorted(worker_processes() - self.before)

    def shutdown(self) -> None:
        self.pool.terminate()

    def close(self) -> list[int]:
        """Tear down; returns the pids that had to be killed by force (left behind)."""
        done = threading.Thread(target=self._quiet_shutdown, daemon=True)
        done.start()
        done.join(5)
        deadline = time.monotonic() + 3.0  # pools that shut down asynchronously get a moment to reap
        while worker_processes() - self.before and time.monotonic() < deadline:
            time.sleep(0.05)
        left = []
        for pid in sorted(worker_processes() - self.before):
            left.append(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return left

    def _quiet_shutdown(self) -> None:
        try:
            self.shutdown()
        except Exception:
            pass


class MpireFaultAdapter(Adapter):
    name = "mpire_fault"
    death_error = "WorkerDiedError"

    def start(self) -> Any:
        from mpire_fault import WorkerPool

        return WorkerPool(2, keep_alive=True)

    def submit(self, fn, args):
        return self.pool.apply_async(fn, args)

    def get(self, handle, timeout):
        handle.wait(timeout)
        if not handle.ready():
            raise Hang(f"no answer within {timeout} s")
        return handle.get(0)

    def run_map(self, fn, items):
        return self.pool.map(fn, items, chunk_size=1)

    def worker_pids(self) -> list[int]:
        return sorted(self.pool.statistics()["worker_pids"].values())


class MultiprocessingAdapter(Adapter):
    name = "multiprocessing"

    def start(self) -> Any:
        import multiprocessing

        return multiprocessing.get_context("fork").Pool(2)

    def submit(self, fn, args):
        return self.pool.apply_async(fn, args)

    def get(self, handle, timeout):
        import multiprocessing

        try:
            return handle.get(timeout)
        except multiprocessing.TimeoutError:
            raise Hang(f"no answer within {timeout} s") from None

    def run_map(self, fn, items):
        return self.pool.starmap(fn, items, chunksize=1)


class FuturesAdapter(Adapter):
    name = "concurrent.futures"

    def start(self) -> Any:
        import multiprocessing

        return concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))

    def submit(self, fn, args):
        return self.pool.submit(fn, *args)

    def get(self, handle, timeout):
        try:
            return handle.result(timeout)
        except concurrent.futures.TimeoutError:
            raise Hang(f"no answer within {timeout} s") from None

    def run_map(self, fn, items):
        return list(self.pool.map(fn, *zip(*items)))

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class LokyAdapter(FuturesAdapter):
    name = "loky"

    def start(self) -> Any:
        from loky import ProcessPoolExecutor

        return ProcessPoolExecutor(2)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, kill_workers=True)


class MpireAdapter(MpireFaultAdapter):
    name = "mpire"
    death_error = "an exception"

    def start(self) -> Any:
        from mpire import WorkerPool

        return WorkerPool(2, keep_alive=True)

    def get(self, handle, timeout):
        try:
            return handle.get(timeout)
        except TimeoutError as exc:
            raise Hang(f"no answer within {timeout} s") from exc

    def worker_pids(self) -> list[int]:
        return Adapter.worker_pids(self)


class PebbleAdapter(Adapter):
    name = "pebble"

    def start(self) -> Any:
        from pebble import ProcessPool

        return ProcessPool(max_workers=2)

    def submit(self, fn, args):
        return self.pool.schedule(fn, args=args)

    def get(self, handle, timeout):
        try:
            return handle.result(timeout)
        except concurrent.futures.TimeoutError:
            raise Hang(f"no answer within {timeout} s") from None

    def run_map(self, fn, items):
        return list(self.pool.map(fn, *zip(*items)).result())

    def shutdown(self) -> None:
        self.pool.stop()
        self.pool.join(5)


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

    def submit(self, fn, args):
        return self.pool.submit(fn, *args, pure=False)

    def get(self, handle, timeout):
        from distributed import TimeoutError as DaskTimeout

        try:
            return handle.result(timeout)
        except (DaskTimeout, concurrent.futures.TimeoutError, TimeoutError):
            raise Hang(f"no answer within {timeout} s") from None

    def run_map(self, fn, items):
        return self.pool.gather(self.pool.map(fn, *zip(*items), pure=False))

    def worker_pids(self) -> list[int]:
        try:
            return sorted(self.pool.run(os.getpid, on_error="ignore").values())
        except Exception:
            return []

    def shutdown(self) -> None:
        try:
            self.pool.close(timeout=3)
        finally:
            self.cluster.close(timeout=3)


class MpireFaultDaskAdapter(MpireFaultAdapter):
    """Our ``DaskPool`` on a LocalCluster it owns (two workers, one thread each)."""

    name = "mpire_fault-dask"

    def start(self) -> Any:
        from mpire_fault.dask_backend import DaskPool

        pool = DaskPool(2)
        pool.client  # start the cluster now, not inside the first bounded call
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
_MODULES = {"loky": "loky", "mpire": "mpire", "pebble": "pebble", "dask": "distributed", "mpire_fault-dask": "distributed"}


def available() -> list[str]:
    """Pool names whose package is installed here."""
    return [name for name in ADAPTERS if name not in _MODULES or importlib.util.find_spec(_MODULES[name])]
