"""``ProcessPoolExecutor``: the API of ``concurrent.futures.ProcessPoolExecutor`` on our engine.

The standard library's executor turns one dead worker into ``BrokenProcessPool``
for every pending future and for the executor itself. Here a death fails only
the future the dead worker ran (``ExecutorWorkerDiedError``, which is also a
``BrokenProcessPool``), the worker is replaced, and the executor goes on.

How a future travels::

    submit() -> Future + work item -> backlog (cancellable) --feed--> WorkerPool._apply
                                                                        |
    Future.set_result / set_exception <-- callback thread <-- AsyncResult answered

The backlog holds work items the pool has not been handed yet; as in the
standard library, a future can be cancelled until it leaves the backlog, and
only a window of a few tasks per worker is handed over ahead (the stdlib's
call queue holds ``max_workers + 1``). Each answer frees a place in the window
and feeds the next item, on the pool's callback thread.
"""
from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Executor, Future
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any

from ._core.backoff import RestartBackoff
from ._core.results import AsyncResult
from ._engine.jobs import WorkerSession
from .errors import RemoteTraceback, WorkerDiedError, WorkerInitError, also_as
from .pool import WorkerPool
from .statistics import PoolStatistics

__all__ = ["ExecutorWorkerDiedError", "ProcessPoolExecutor"]

# Tasks handed to the pool ahead of their answers, per worker: enough that a
# worker finds its next task waiting when it answers, few enough that most of
# a long backlog stays cancellable (the stdlib keeps max_workers + 1).
_AHEAD_PER_WORKER = 4

_STOP_WAIT = 60.0  # a second shutdown(wait=True) waits this long for the first one to stop the workers
_global_shutdown = False  # the interpreter is exiting: no new futures (as the stdlib's executor)
_live_backlogs: weakref.WeakSet[_Backlog] = weakref.WeakSet()


class ExecutorWorkerDiedError(WorkerDiedError, BrokenProcessPool):
    """A worker died while it ran this future of ``mpire_fault.ProcessPoolExecutor``.

    The same record as ``WorkerDiedError`` (worker id, pid, exit code, signal,
    task), and also a ``concurrent.futures.process.BrokenProcessPool``, so an
    ``except BrokenProcessPool:`` written for the standard library's executor
    still catches it. Unlike that executor's error, it fails this future only:
    the worker is replaced and the executor stays usable.
    """

    @classmethod
    def from_death(cls, error: WorkerDiedError) -> ExecutorWorkerDiedError:
        """The same death, as this class (cause and notes kept)."""
        made = cls(error.worker_id, error.pid, error.exitcode, error.task, error.oom, error.deaths, error.detail)
        made.__cause__ = error.__cause__
        notes = getattr(error, "__notes__", None)
        if notes:
            made.__notes__ = list(notes)
        return made

    def __reduce__(self):
        return (ExecutorWorkerDiedError,
                (self.worker_id, self.pid, self.exitcode, self.task, self.oom, self.deaths, self.detail))



class _WorkItem:
    __slots__ = ("future", "fn", "args", "kwargs", "result")

    def __init__(self, future: Future, fn: Callable, args: tuple, kwargs: dict) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.result: AsyncResult | None = None  # set once handed to the pool


def _as_executor_error(error: BaseException) -> BaseException:
    """What the stdlib's executor would raise: a death or a failed initializer is also a BrokenProcessPool."""
    if type(error) is WorkerDiedError and not isinstance(error.__cause__, RemoteTraceback):
        # the engine's own death record (a task that raised a WorkerDiedError of its own keeps it)
        return ExecutorWorkerDiedError.from_death(error)
    if isinstance(error, WorkerInitError) and not isinstance(error, BrokenProcessPool):
        made = also_as(type(error), BrokenProcessPool)(*error.args)
        made.__dict__.update(error.__dict__)
        made.__cause__ = error.__cause__
        return made
    return error


class _Answer(AsyncResult):
    """The pool's result of one future: it hands its value to the future and keeps none of it."""

    def _run_hook(self, hook: Callable, arg: Any) -> None:
        self._value = None  # the future holds the value now: a caller that drops it frees it
        super()._run_hook(hook, arg)


class _Backlog:
    """The executor's state, shared with the pool's callbacks, so pending work outlives a dropped executor.

    The stdlib's executor finishes its pending work when it is garbage
    collected without ``shutdown()``; callbacks in flight hold this object
    (not the executor), and a finalizer of the executor shuts it down.
    """

    def __init__(self, pool: WorkerPool, session: WorkerSession, window: int) -> None:
        self.pool = pool
        self.session = session
        self.window = window
        self.lock = threading.RLock()  # a submit from a pickling __reduce__ must not deadlock
        self.changed = threading.Condition(self.lock)
        self.waiting: deque[_WorkItem] = deque()
        self.in_flight: set[_WorkItem] = set()
        self.closed = False
        self.finished = False  # every future answered: the workers are being stopped
        self.stopped = threading.Event()
        self.callback_thread: int | None = None

    # ------------------------------------------------------------------ work
    def submit(self, item: _WorkItem) -> None:
        with self.lock:
            if self.closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _global_shutdown:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            self.waiting.append(item)
            self.feed()

    def feed(self) -> None:
        """Hand waiting items to the pool while the window has room (under the lock: FIFO, as the stdlib)."""
        with self.lock:
            while self.waiting and len(self.in_flight) < self.window:
                item = self.waiting.popleft()
                if not item.future.set_running_or_notify_cancel():
                    continue  # cancelled while it waited: it never runs
                self.in_flight.add(item)
                try:
                    item.result = self.pool._apply(
                        item.fn, item.args, item.kwargs, self.session, None, _Answer,
                        partial(self.settle, item, False), partial(self.settle, item, True))
                except BaseException as exc:  # noqa: BLE001 - the pool refused it: this future fails, not the feed
                    self.in_flight.discard(item)
                    item.future.set_exception(exc)
                item.fn = item.args = item.kwargs = None  # type: ignore[assignment] # the pool holds them now

    def settle(self, item: _WorkItem, failed: bool, outcome: Any) -> None:
        """An answer, on the pool's callback thread: feed the next item, then resolve the future.

        Feeding first keeps the worker busy sooner, and once the future is
        resolved this thread lets go of the value at once: a caller that drops
        a result frees it (CPython's issue 14406 tests that of map).
        """
        self.callback_thread = threading.get_ident()
        future = item.future
        item.future = item.result = None  # type: ignore[assignment] # the caller holds the future
        with self.lock:
            self.in_flight.discard(item)
            self.feed()
            if not self.in_flight and not self.waiting:
                self.changed.notify_all()
        if failed:
            future.set_exception(_as_executor_error(outcome))
        else:
            future.set_result(outcome)

    def stop(self, items: list[_WorkItem], futures: list[Future]) -> None:
        """The rest of a map call nobody will read: cancel what waits, stop what runs (``map``'s end)."""
        for future in futures:
            future.cancel()  # the items still waiting: they never start (feed skips them)
        with self.lock:
            running = [item.result for item in items if item in self.in_flight and item.result is not None]
        if running:
            self.pool._stop_applies(running, "the executor's map call stopped",
                                    CancelledError("the rest of an executor map call was stopped"))

    # ------------------------------------------------------------------ shutdown
    def close(self, cancel_futures: bool) -> None:
        with self.lock:
            self.closed = True
            if cancel_futures:
                while self.waiting:
                    future = self.waiting.popleft().future
                    future.cancel()
                    future.set_running_or_notify_cancel()  # wakes wait()/as_completed() at once
                self.changed.notify_all()

    def finish(self) -> None:
        """Wait until every handed future is answered, then stop the workers (the stdlib's shutdown(wait=True))."""
        while True:
            with self.lock:
                if self.finished:
                    handed = None
                elif not self.waiting and not self.in_flight:
                    self.finished = True
                    break
                else:
                    handed = next((item.result for item in self.in_flight if item.result is not None), None)
                    if handed is None:  # being handed over right now
                        self.changed.wait(0.05)
                        continue
            if handed is None:  # another caller stops the workers: wait for it (not under the lock), as a join would
                self.stopped.wait(_STOP_WAIT)
                return
            # AsyncResult.wait checks the supervisor's health while it waits: never forever
            handed.wait()
        try:
            self.pool.stop_and_join()
            self.pool.terminate()  # ends the supervisor and callback threads too
        finally:
            self.stopped.set()

    def finish_later(self) -> None:
        threading.Thread(target=self.finish, name="mpire_fault-executor-shutdown", daemon=True).start()


def _python_exit() -> None:
    # As the stdlib's executor: at interpreter exit, futures already submitted
    # still run (its atexit hook joins its manager threads). This runs in
    # threading's exit hooks, before the atexit hook that stops every pool.
    global _global_shutdown
    _global_shutdown = True
    for backlog in list(_live_backlogs):
        backlog.close(cancel_futures=False)
        backlog.finish()


threading._register_atexit(_python_exit)  # type: ignore[attr-defined] # what concurrent.futures itself uses
# A forked worker runs threading's exit hooks too when it ends: the parent's executors are not its to finish.
os.register_at_fork(after_in_child=_live_backlogs.clear)


def _result_or_cancel(future: Future, end_time: float | None) -> Any:
    """The future's value within the map's deadline; cancelled if it has not started (a timeout, an error)."""
    try:
        return future.result(None if end_time is None else end_time - time.monotonic())
    finally:
        future.cancel()
        del future  # no reference cycle through a stored exception


def _map_chunk(fn: Callable, chunk: tuple) -> list:
    """One chunk of ``map``, run in a worker: a raising item fails its chunk (as the stdlib's ``_process_chunk``)."""
    return [fn(*args) for args in chunk]


def _chunks(iterables: tuple[Iterable, ...], chunksize: int) -> Iterator[tuple]:
    zipped = zip(*iterables, strict=False)  # the shortest ends it, as builtin map
    while True:
        chunk = tuple(itertools.islice(zipped, chunksize))
        if not chunk:
            return
        yield chunk


class ProcessPoolExecutor(Executor):
    """``concurrent.futures.ProcessPoolExecutor``, where a worker's death fails only its own future.

    ``submit`` returns a real ``concurrent.futures.Future`` (``wait``,
    ``as_completed`` and asyncio's ``run_in_executor`` take it). A worker that
    dies fails the future it ran with ``ExecutorWorkerDiedError`` (a
    ``WorkerDiedError`` and a ``BrokenProcessPool``), is replaced, and the other
    futures run. The keyword-only extras are ``WorkerPool``'s.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple = (),
        *,
        max_tasks_per_child: int | None = None,
        chaos: Any = None,
        chaos_seed: int | None = None,
        event_log: str | os.PathLike[str] | Callable[[dict[str, Any]], None] | None = None,
        max_worker_memory: int | None = None,
        max_task_retries: int = 0,
        restart_backoff: RestartBackoff | int | None = None,
    ) -> None:
        # The standard library's checks, in its order and words.
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        elif max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if mp_context is None:
            mp_context = multiprocessing.get_context("spawn" if max_tasks_per_child is not None else None)
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        start_method = mp_context.get_start_method(allow_none=False)
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
            if start_method == "fork":
                # the stdlib's rule (https://github.com/python/cpython/issues/90622), kept so code stays portable
                raise ValueError("max_tasks_per_child is incompatible with the 'fork' multiprocessing start method;"
                                 " supply a different mp_context.")
        self._max_workers = max_workers
        self._mp_context = mp_context
        self._initializer = initializer
        self._initargs = initargs
        self._max_tasks_per_child = max_tasks_per_child
        pool = WorkerPool(max_workers, start_method=start_method, keep_alive=True,
                          max_worker_memory=max_worker_memory, max_task_retries=max_task_retries,
                          restart_backoff=restart_backoff, chaos=chaos, chaos_seed=chaos_seed, event_log=event_log)
        worker_init = partial(initializer, *initargs) if initializer is not None else None
        # max_tasks_per_child counts tasks (a map chunk is one), as the engine's lifespan counts an apply task
        session = WorkerSession(worker_init, None, max_tasks_per_child)
        self._backlog = _Backlog(pool, session, max_workers * _AHEAD_PER_WORKER)
        _live_backlogs.add(self._backlog)
        # Dropped without shutdown(): its pending futures still complete, then the workers stop (as the stdlib's).
        self._finalizer = weakref.finalize(self, _Backlog.finish_later, self._backlog)
        self._finalizer.atexit = False  # _python_exit does it at exit

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Schedule ``fn(*args, **kwargs)``; its ``Future`` fails alone if its worker dies."""
        return self._submit(fn, args, kwargs)[1]

    def _submit(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[_WorkItem, Future]:
        # the future apart from the item: an answer may come (and the item let go of it) before this returns
        future: Future = Future()
        item = _WorkItem(future, fn, args, kwargs)
        self._backlog.submit(item)
        return item, future

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Iterator[Any]:
        """Results of ``fn(*args)`` over the zipped iterables, in order, as the stdlib's.

        Every item is submitted now; an item whose task raised, or whose
        worker died, raises when the iteration reaches it, as does a
        ``timeout`` (counted from this call). Then the rest of the call
        stops: the items not started are cancelled (as the stdlib's), and the
        items still running are stopped, their workers replaced (the stdlib
        lets them run to the end for nothing). An iteration left early (a
        ``break``, a dropped iterator) stops the rest the same way.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        end_time = None if timeout is None else timeout + time.monotonic()
        if chunksize == 1:  # one task per item: no chunk to build, pickle and unpack
            submitted = [self._submit(fn, args, {}) for args in zip(*iterables, strict=False)]
        else:
            submitted = [self._submit(_map_chunk, (fn, chunk), {}) for chunk in _chunks(iterables, chunksize)]
        items = [item for item, _ in submitted]
        futures = [future for _, future in submitted]
        del submitted
        return self._results(self._backlog, futures, items, end_time, chunksize > 1)

    @staticmethod
    def _results(backlog: _Backlog, futures: list[Future], items: list[_WorkItem], end_time: float | None,
                 chunked: bool) -> Iterator[Any]:
        # Values are yielded straight from an expression, never held in a local while the generator
        # is suspended: a caller that drops a result frees it (CPython's issue 14406).
        futures.reverse()  # pop() from the end, so each future is let go once its value is out
        items.reverse()
        try:
            while futures:
                if not chunked:
                    yield _result_or_cancel(futures.pop(), end_time)
                    items.pop()
                    continue
                values = _result_or_cancel(futures.pop(), end_time)
                items.pop()
                values.reverse()
                while values:
                    yield values.pop()
        finally:
            # What the caller will not read: the futures left, and the item whose result raised (a timeout's
            # may still run); items holds no value, only what is needed to stop the tasks.
            backlog.stop(items, futures)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new futures; with ``cancel_futures`` the ones not started are cancelled; ``wait`` for the rest."""
        backlog = self._backlog
        backlog.close(cancel_futures)
        self._finalizer.detach()
        if wait and threading.get_ident() != backlog.callback_thread:
            backlog.finish()
        else:  # from a done-callback, waiting would wait for this very thread
            backlog.finish_later()

    @property
    def _processes(self) -> dict[int, Any]:
        """The live worker processes by pid, as the stdlib executor's private ``_processes`` (code peeks at it)."""
        return {process.pid: process for process in self._backlog.pool._workers
                if process is not None and process.pid is not None and process.is_alive()}

    def statistics(self) -> PoolStatistics:
        """A snapshot of the workers' health: live workers, pids, restarts, deaths, task counts."""
        return self._backlog.pool.statistics()

    def chaos_journal(self) -> list[Any]:
        """Faults the chaos layer injected into this executor's workers so far."""
        return self._backlog.pool.chaos_journal()
