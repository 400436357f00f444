"""The kit's adapter interface, and the bounds every adapter's waits and teardown keep (see ``adapters``)."""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil

from ..testing.children import age, live_children


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
#   lifespan       - map_with_lifespan: a map on a fresh pool whose workers are replaced after N tasks each
#   item_in_chunk  - map_chunked: a death inside a chunk of several items names that item, not the chunk
FEATURES = ("task_timeout", "names_item", "chunk_size", "n_splits", "mpire_items", "error_fields", "timeout_grace",
            "task_retries", "worker_init", "shared_memory", "start_methods", "terminate", "lifespan", "item_in_chunk")
CLOSE_BOUND = 2.0  # how long the pool's own shutdown may take before we stop waiting for it
SETTLE_BOUND = 1.0  # after a shutdown that returned: how long workers get to leave on their own before SIGKILL
SETTLE_CAP = 5.0  # the most settle_bound() stretches it to on a loaded machine
QUIET = 0.2  # a pool whose shutdown returns early: how long no child may be seen before it counts as settled
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
    shutdown_returns_early = False  # shutdown() returns while the pool still stops its workers (see settle)
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
        self.left_behind = ""  # what close() found still running, described (see describe)

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

    def map_chunked(self, fn: Callable, items: list, chunk_size: int, timeout: float) -> list:
        """``map`` with the items sent ``chunk_size`` at a time (feature ``item_in_chunk``: a death must still name
        its exact item inside a chunk)."""
        return bounded(lambda: self.run_map_chunked(fn, items, chunk_size), timeout, "map")

    def run_map_chunked(self, fn: Callable, items: list, chunk_size: int) -> list:
        raise NotImplementedError

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
        with self.fresh(initializer=init) as probe:
            return probe.get(probe.submit(fn, args), timeout)

    @contextlib.contextmanager
    def fresh(self, **options: Any) -> Iterator[Adapter]:
        """A fresh pool of this adapter with ``options`` over this one's, closed when the block ends."""
        probe = type(self)(**{**self.options, **options})
        try:
            yield probe
        finally:
            probe.close()

    def lifespan_options(self, lifespan: int) -> dict[str, Any]:
        """The create() keywords of a pool whose workers are replaced after ``lifespan`` tasks each."""
        return {"maxtasksperchild": lifespan}

    def map_with_lifespan(self, fn: Callable, items: list, lifespan: int, timeout: float) -> list:
        """``map`` (one item per task) on a fresh pool whose workers each run at most ``lifespan`` tasks; the
        fresh pool is closed after. Feature ``lifespan``; the default suits pools that take it at creation
        (``lifespan_options``)."""
        with self.fresh(**self.lifespan_options(lifespan)) as probe:
            return probe.map(fn, items, timeout)

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
        began, bound = time.monotonic(), settle_bound()
        if self.terminate(CLOSE_BOUND):
            self.settle(time.monotonic() + bound)
        left = sorted(live_children() - self.before)
        if left:
            self.left_behind = describe(left, time.monotonic() - began) + f" (settle bound {bound:.1f} s)"
        kill_and_wait(left, REAP_BOUND)
        return left

    def settle(self, deadline: float) -> None:
        """Give the workers until ``deadline`` to leave on their own, the way this pool's shutdown works.

        After a shutdown that returns only once the pool has stopped, one
        look at the children suffices. One that returns at once
        (``shutdown_returns_early``) goes on in the pool's threads: a worker
        that died a moment ago may still be replaced before the pool stops
        them all, so no children must be seen for ``QUIET`` in a row (a
        replacement's fork, slow on a loaded machine, fell into a single look's
        gap and was called an orphan).
        """
        quiet_since = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            if live_children() - self.before:
                quiet_since = None
            elif not self.shutdown_returns_early:
                return
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= QUIET:
                return
            time.sleep(0.02)

    def _quiet_shutdown(self) -> None:
        try:
            self.shutdown()
        except BaseException:  # noqa: BLE001 - whatever the pool raises on the way out, the kill follows
            pass


def settle_bound() -> float:
    """``SETTLE_BOUND`` stretched by the machine's load, at most ``SETTLE_CAP``.

    A pool whose shutdown is asynchronous (the executor's
    ``shutdown(wait=False)``) has workers that were still starting
    leave on their own; at a load of 20 per core that took 1.4 s where it
    takes 50 ms idle, and the kit called them orphans. A process that never
    leaves is still caught: the cap only moves the moment it is looked at.
    """
    per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    return min(SETTLE_CAP, SETTLE_BOUND * max(1.0, per_core))


def describe(pids: list[int], closing: float) -> str:
    """What each left-behind process is, for a verdict: its parent, state, age, threads and command line.

    ``closing`` is how long ago the close began: a process younger than that
    was started by the pool after it was asked to shut down.
    """
    parts = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                seconds = age(pid)
                when = "" if seconds is None else (f", started {seconds:.2f} s ago, "
                                                 f"{'after' if seconds < closing else 'before'} the close began")
                parts.append(f"pid {pid} (parent {proc.ppid()}, {proc.status()}{when}, {proc.num_threads()} threads, "
                             f"{' '.join(proc.cmdline())[:80]!r})")
        except psutil.Error:
            parts.append(f"pid {pid} (gone)")
    return "; ".join(parts)


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
