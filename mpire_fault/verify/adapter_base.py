"""The kit's adapter interface, and the bounds every adapter's waits and teardown keep (see ``adapters``)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from ..testing.children import live_children


class Hang(Exception):
    """A call on the pool did not answer within its bound."""


# What a guarantee (or a part of the space the machines draw from) may need beyond submit/get/map/terminate:
#   task_timeout   - a per-task timeout on submission
#   names_item     - a death in a map says which item died
#   chunk_size     - map_input takes a chunk size (the pool's own chunking of the input)
#   n_splits       - map_input takes a number of chunks instead (MPIRE's n_splits)
#   mpire_items    - MPIRE's map rule: a dict item is keyword arguments, a numpy array is cut into slices
#   error_fields   - a death's error carries worker_id, pid, exitcode and the task (WorkerDiedError)
#   timeout_grace  - the pool takes how long a timed-out task may take to stop before its worker is killed
#   task_retries   - the pool reruns a task whose worker died, when asked (max_task_retries)
#   worker_init    - call_with_init: a fresh pool whose workers run a worker_init first
#   shared_memory  - big arguments travel through /dev/shm under a name prefix the pool tells (shm_prefix)
#   start_methods  - create() takes start_method (fork, spawn, forkserver)
#   terminate      - shutdown() ends the pool while tasks run (a terminate); an executor's shutdown(wait=False)
#                    lets running tasks finish, so it has no call that resolved-once could grade
FEATURES = ("task_timeout", "names_item", "chunk_size", "n_splits", "mpire_items", "error_fields", "timeout_grace",
            "task_retries", "worker_init", "shared_memory", "start_methods", "terminate")
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
    side_by_side: int | None = None  # the most gradings of this pool to run at once by default (None: no limit)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = cls.features - set(FEATURES)
        if unknown:
            raise TypeError(f"{cls.__name__}.features names unknown features {sorted(unknown)}; known: {FEATURES}")

    def __init__(self, **options: Any) -> None:
        self.options = options  # keywords for create(): only those the adapter's features say it takes
        self.before = live_children()
        self.pool = self.start()
        self.closed = False

    def start(self) -> Any:
        return self.create(**self.options)

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
        return bounded(lambda: self.run_map(fn, items), timeout, "map")

    def run_map(self, fn: Callable, items: list) -> list:
        raise NotImplementedError

    def map_input(self, fn: Callable, iterable: Any, timeout: float, chunk_size: int | float | None = None,
                  n_splits: int | None = None) -> list:
        """``run_map_input`` in a thread of its own, bounded like ``map``."""
        return bounded(lambda: self.run_map_input(fn, iterable, chunk_size, n_splits), timeout, "map")

    def run_map_input(self, fn: Callable, iterable: Any, chunk_size: int | float | None,
                      n_splits: int | None) -> list:
        """The pool's map of a one-argument ``fn`` over ``iterable`` as given (a generator stays a generator),
        with ``chunk_size`` or ``n_splits`` when the adapter has those features (None: the pool's default)."""
        raise NotImplementedError

    def call_with_init(self, init: Callable, fn: Callable, args: tuple, timeout: float) -> Any:
        """``fn(*args)`` on a fresh pool whose workers run ``init`` first; the fresh pool is closed after.

        Feature ``worker_init``. The default suits pools that take an ``initializer`` keyword.
        """
        probe = type(self)(**{**self.options, "initializer": init})
        try:
            return probe.get(probe.submit(fn, args), timeout)
        finally:
            probe.close()

    def shm_prefix(self) -> str | None:
        """The prefix of the names of this pool's segments in /dev/shm (feature ``shared_memory``)."""
        return None

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


def async_result(handle, timeout: float) -> Any:
    # Ready first: a task_timeout makes get() raise a TimeoutError of the task's own, an answer, not a Hang.
    handle.wait(timeout)
    if not handle.ready():
        raise Hang(f"no answer within {timeout} s")
    return handle.get(0)
