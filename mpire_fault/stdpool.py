"""``mpire_fault.Pool``: the API and argument rules of ``multiprocessing.Pool``, on our engine.

``from mpire_fault import Pool`` is the one-import switch for code written
against ``multiprocessing.Pool``. Same methods, same argument rules (``map``
passes each item whole, ``starmap`` unpacks it), same errors for misuse,
same result objects. What changes is what a dead worker does: the stdlib's
``get()``, ``map()`` and ``join()`` wait forever for the task it owned; here
that task fails with ``WorkerDiedError`` (a map call aborts naming the item)
and the worker is replaced. docs/migrating.md lists every difference.

The pool is a front door: it holds a ``WorkerPool(keep_alive=True)`` and
drives it through the same internals WorkerPool's own calls use
(``_apply``, ``_chunks`` with the payload kind of the stdlib's rule), so the
engine's guarantees and its batched path come along unchanged. The stdlib's
asynchronous calls (``map_async``, ``imap``) get a thread each that drives
the call and hands the results over, since our map engine runs in its
caller's thread.
"""
from __future__ import annotations

import functools
import itertools
import math
import multiprocessing
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from multiprocessing.pool import MaybeEncodingError  # type: ignore[attr-defined]
from multiprocessing.pool import RemoteTraceback as StdRemoteTraceback  # type: ignore[attr-defined]
from typing import Any

from ._core.arguments import STAR, WHOLE
from ._core.backoff import RestartBackoff
from ._core.chunking import is_ndarray
from ._core.remote import RESULT
from ._core.results import AsyncResult
from ._engine.jobs import WorkerSession
from .errors import RemoteTraceback
from .pool import WorkerPool
from .statistics import PoolStatistics

__all__ = ["ApplyResult", "Context", "IMapIterator", "MapResult", "Pool", "ResultTimeoutError", "get_context"]

# The stdlib's state names (multiprocessing.pool.RUN, ...), so code that compares them keeps working.
RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"
_JOIN_POLL = 0.25
_TERMINATE_WAIT = 5.0  # how long terminate() waits for the calls it ended to hand over their errors
_START_METHODS = ("fork", "spawn", "forkserver")


class ResultTimeoutError(multiprocessing.TimeoutError, TimeoutError):
    """``get(timeout)`` or ``next(timeout)`` ran out of time: ``multiprocessing.TimeoutError``, and a builtin
    ``TimeoutError`` too (what ``WorkerPool``'s results raise)."""


def _stdlib_error(error: BaseException) -> BaseException:
    """An error as ``multiprocessing.Pool`` hands it over.

    A task's exception keeps its type, with the worker's traceback as a
    ``multiprocessing.pool.RemoteTraceback`` cause (the stdlib's class, same
    text). A result that cannot cross back becomes the stdlib's
    ``MaybeEncodingError``, with our error (it names the boundary) as its cause.
    """
    cause = error.__cause__
    if type(cause) is RemoteTraceback:
        error.__cause__ = StdRemoteTraceback(cause.tb)
    if RESULT in getattr(error, "__notes__", ()):
        wrapped = MaybeEncodingError(error, None)
        wrapped.value = "<the task's result>"  # the value itself stayed in the worker (or would not load)
        wrapped.args = (wrapped.exc, wrapped.value)
        wrapped.__cause__ = error
        return wrapped
    return error


class ApplyResult(AsyncResult):
    """What ``apply_async`` returns: the stdlib's ``get/wait/ready/successful``, resolved exactly once."""

    def get(self, timeout: float | None = None) -> Any:
        """The value, or the task's error raised; ``multiprocessing.TimeoutError`` if not ready in ``timeout``."""
        self.wait(timeout)
        if not self.ready():
            raise ResultTimeoutError(f"the result was not ready within {timeout} seconds")
        return super().get()

    def successful(self) -> bool:
        """Whether the task returned (``ValueError`` while it is not ready, as the stdlib)."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return super().successful()

    def _load(self) -> None:
        super()._load()
        if self._error is not None:
            self._error = _stdlib_error(self._error)


class MapResult(ApplyResult):
    """What ``map_async``/``starmap_async`` return: ``get()`` gives the whole list; ``callback`` gets it too."""


class IMapIterator:
    """What ``imap``/``imap_unordered`` return: results one by one; ``next(timeout)`` as the stdlib's.

    The call's driver thread puts each chunk's results (a list) here; this
    side takes items from the current chunk, so no lock is taken per item.
    """

    def __init__(self) -> None:
        self._chunks: queue.SimpleQueue = queue.SimpleQueue()
        self._current: Iterator[Any] = iter(())
        self._finished = False

    def _put(self, entry: tuple[str, Any]) -> None:
        self._chunks.put(entry)

    def __iter__(self) -> IMapIterator:
        return self

    def next(self, timeout: float | None = None) -> Any:
        """The next result; ``StopIteration`` at the end, ``multiprocessing.TimeoutError`` after ``timeout``."""
        for value in self._current:
            return value
        while True:
            if self._finished:
                raise StopIteration
            try:
                what, payload = self._chunks.get(timeout=timeout)
            except queue.Empty:
                raise ResultTimeoutError(f"no result within {timeout} seconds") from None
            if what == "values":
                self._current = iter(payload)
                for value in self._current:
                    return value
                continue
            self._finished = True
            if what == "error":
                raise payload
            raise StopIteration

    __next__ = next


def _whole_chunks(iterable: Iterable, size: int, failures: list[BaseException]) -> Iterator[Any]:
    """The items of ``iterable``, released a chunk of ``size`` at a time, the chunk the input failed in dropped.

    The stdlib pulls the input a chunk at a time, and a chunk whose reading
    raised is the error: the results of the chunks before it still come out
    first. Our chunks are cut at the same places, so only whole chunks are
    let through and the error is kept in ``failures`` for after the results.
    """
    try:
        iterator = iter(iterable)
        while True:
            group = list(itertools.islice(iterator, size))
            if not group:
                return
            yield from group
    except Exception as exc:  # noqa: BLE001 - whatever the user's iterable raised is this call's error
        failures.append(exc)


def _start_method(context: Any) -> str:
    if context is None:
        # multiprocessing's default context, as the stdlib's Pool uses it: set_start_method() counts, and
        # without it the platform's default (listed first) applies, without fixing it for the process.
        return multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]
    get = getattr(context, "get_start_method", None)
    if get is None:
        raise TypeError(f"context must be a multiprocessing context (multiprocessing.get_context()) or None, "
                        f"got {context!r}")
    method = get()
    if method not in _START_METHODS:
        raise ValueError(f"context's start method must be one of {', '.join(_START_METHODS)}, got {method!r}")
    return method


def _run_initializer(initializer: Callable[..., Any], initargs: tuple) -> None:
    """worker_init of a Pool with an initializer: called with the initargs the worker process got at its start."""
    initializer(*initargs)


def _check_chunksize(chunksize: Any) -> None:
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive int or None, got {chunksize!r}")


class Pool:
    """``multiprocessing.Pool`` on mpire_fault's engine: the same API; a worker's death fails only what it owned.

    ``apply_async``: a death fails that task with ``WorkerDiedError`` and the
    worker is replaced. ``map``, ``imap``, ``starmap`` and their async forms:
    the call fails promptly with ``WorkerDiedError`` naming the item. The
    pool stays usable either way. Keyword-only extras are ``WorkerPool``'s.
    """

    def __init__(self, processes: int | None = None, initializer: Callable[..., Any] | None = None,
                 initargs: Iterable[Any] = (), maxtasksperchild: int | None = None, context: Any = None, *,
                 chaos: Any = None, chaos_seed: int | None = None,
                 event_log: str | os.PathLike[str] | Callable[[dict[str, Any]], None] | None = None,
                 max_worker_memory: int | None = None, max_task_retries: int = 0,
                 restart_backoff: RestartBackoff | int | None = None) -> None:
        self._state = None  # set once every check passed: __del__ of a refused pool says nothing
        if processes is None:
            processes = os.cpu_count() or 1
        if isinstance(processes, bool) or not isinstance(processes, int):
            raise TypeError(f"processes must be an int or None, got {processes!r}")
        if processes < 1:
            raise ValueError(f"Number of processes must be at least 1, got {processes!r}")
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be a callable, got {initializer!r}")
        if maxtasksperchild is not None and (not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0):
            raise ValueError(f"maxtasksperchild must be a positive int or None, got {maxtasksperchild!r}")
        initargs = tuple(initargs)
        start_method = _start_method(context)
        self._processes = processes
        self._engine = WorkerPool(processes, start_method=start_method, keep_alive=True, chaos=chaos,
                                  chaos_seed=chaos_seed, event_log=event_log, max_worker_memory=max_worker_memory,
                                  max_task_retries=max_task_retries, restart_backoff=restart_backoff)
        init = None
        if initializer is not None:
            # initargs travel as the engine's shared objects, which every worker gets as its process starts
            # (multiprocessing pickles them then, under spawn too: Locks, Queues and Values go through, as
            # with the stdlib's initargs); they are the initializer's alone, tasks never see them.
            self._engine._shared_objects = initargs
            self._engine._hooks_only_objects = True
            init = functools.partial(_run_initializer, initializer)
        # One session for every call: the workers run the initializer once per life, and maxtasksperchild is
        # their lifespan; a call never brings other hooks, so no call restarts them.
        self._session = WorkerSession(init, None, maxtasksperchild)
        self._calls: set[threading.Thread] = set()  # the async calls' driver threads still running
        self._calls_lock = threading.Lock()
        self._state = RUN
        # As the stdlib: the workers start now, and run the initializer even if no task ever comes.
        self._engine._start_workers(self._session)

    # ------------------------------------------------------------------ checks
    def _check_running(self) -> None:
        if self._state != RUN:
            raise ValueError("Pool not running")

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} state={self._state} pool_size={self._processes}>"

    # ------------------------------------------------------------------ apply
    def apply(self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: Mapping[str, Any] | None = None) -> Any:
        """``func(*args, **kwds)`` in a worker, waited for."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: Mapping[str, Any] | None = None,
                    callback: Callable[[Any], Any] | None = None,
                    error_callback: Callable[[BaseException], Any] | None = None) -> ApplyResult:
        """Run ``func(*args, **kwds)`` in a worker; a death fails this task only, with ``WorkerDiedError``."""
        self._check_running()
        if not isinstance(args, tuple):
            try:
                args = tuple(args)
            except TypeError:
                pass  # as the stdlib: func(*args) raises the TypeError in the worker, and get() reports it
        result = self._engine._apply(func, args, {} if kwds is None else kwds, self._session,  # type: ignore[arg-type]
                                     None, ApplyResult, callback, error_callback)
        assert isinstance(result, ApplyResult)
        return result

    # ------------------------------------------------------------------ map family
    def _map_input(self, iterable: Iterable[Any], chunksize: int | None) -> tuple[Any, int]:
        """The input and the chunk size as the stdlib's ``map`` takes them: a list, 4 chunks per worker."""
        if is_ndarray(iterable) or not hasattr(iterable, "__len__"):
            iterable = list(iterable)  # an array is iterated row by row, as the stdlib does
        if chunksize is None:
            chunksize = max(1, math.ceil(len(iterable) / (self._processes * 4)))  # type: ignore[arg-type]
        else:
            _check_chunksize(chunksize)
        return iterable, chunksize

    def _chunks(self, func: Callable[..., Any], iterable: Any, chunksize: int, ordered: bool,
                rule: str) -> Iterator[list]:
        return self._engine._chunks(func, iterable, None, None, chunksize, None, self._session.worker_lifespan, False,
                                    self._session.worker_init, None, None, None, None, None, None, ordered, rule=rule)

    def _collect(self, func: Callable[..., Any], iterable: Any, chunksize: int, rule: str) -> list[Any]:
        results: list[Any] = []
        try:
            for values in self._chunks(func, iterable, chunksize, True, rule):
                results.extend(values)
        except Exception as exc:
            error = _stdlib_error(exc)
            if error is exc:
                raise
            raise error from exc
        return results

    def map(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None) -> list[Any]:
        """``[func(item) for item in iterable]`` in the workers (a tuple item is one argument)."""
        self._check_running()
        iterable, chunksize = self._map_input(iterable, chunksize)
        return self._collect(func, iterable, chunksize, WHOLE)

    def starmap(self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]],
                chunksize: int | None = None) -> list[Any]:
        """``[func(*item) for item in iterable]`` in the workers."""
        self._check_running()
        iterable, chunksize = self._map_input(iterable, chunksize)
        return self._collect(func, iterable, chunksize, STAR)

    def map_async(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None,
                  callback: Callable[[list[Any]], Any] | None = None,
                  error_callback: Callable[[BaseException], Any] | None = None) -> MapResult:
        """``map`` in the background; ``callback`` gets the whole list."""
        return self._map_async(func, iterable, chunksize, callback, error_callback, WHOLE)

    def starmap_async(self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]], chunksize: int | None = None,
                      callback: Callable[[list[Any]], Any] | None = None,
                      error_callback: Callable[[BaseException], Any] | None = None) -> MapResult:
        """``starmap`` in the background; ``callback`` gets the whole list."""
        return self._map_async(func, iterable, chunksize, callback, error_callback, STAR)

    def _map_async(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None,
                   callback: Callable[[list[Any]], Any] | None,
                   error_callback: Callable[[BaseException], Any] | None, rule: str) -> MapResult:
        self._check_running()
        iterable, chunksize = self._map_input(iterable, chunksize)
        engine = self._engine
        supervisor = engine._running_supervisor()
        result = MapResult(callback, error_callback, engine._callbacks, supervisor.finished.is_set)

        def drive() -> None:
            try:
                values = self._collect(func, iterable, chunksize, rule)
            except BaseException as exc:  # noqa: BLE001 - every outcome of the call belongs to its result
                result._resolve(error=exc)
            else:
                result._resolve(value=values)

        self._run_call(drive)
        return result

    def imap(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> IMapIterator:
        """Results in input order, as they come (``next(timeout)`` waits at most ``timeout``)."""
        return self._imap(func, iterable, chunksize, True)

    def imap_unordered(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> IMapIterator:
        """Results in the order they finish."""
        return self._imap(func, iterable, chunksize, False)

    def _imap(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int,
              ordered: bool) -> IMapIterator:
        self._check_running()
        _check_chunksize(chunksize)
        failures: list[BaseException] = []
        if is_ndarray(iterable):
            iterable = list(iterable)
        elif type(iterable) not in (list, tuple, range):  # their iteration cannot raise: no need to guard it
            iterable = _whole_chunks(iterable, chunksize, failures)
        results = IMapIterator()

        def drive() -> None:
            try:
                for values in self._chunks(func, iterable, chunksize, ordered, WHOLE):
                    results._put(("values", values))
            except BaseException as exc:  # noqa: BLE001 - every outcome of the call belongs to its iterator
                results._put(("error", _stdlib_error(exc)))
                return
            if failures:  # the input raised: after the results of the chunks before it, as the stdlib
                results._put(("error", failures[0]))
            else:
                results._put(("end", None))

        self._run_call(drive)
        return results

    def _run_call(self, drive: Callable[[], None]) -> None:
        """Run an asynchronous call on a thread of its own, known to ``join()`` until it ends."""

        def run() -> None:
            try:
                drive()
            finally:
                with self._calls_lock:
                    self._calls.discard(thread)

        thread = threading.Thread(target=run, name="mpire_fault-Pool-call", daemon=True)
        with self._calls_lock:
            self._calls.add(thread)
        thread.start()

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """No more work will be submitted; ``join()`` then waits for what was."""
        if self._state == RUN:
            self._state = CLOSE

    def terminate(self) -> None:
        """Kill the workers now; whatever is pending fails with ``PoolTerminatedError``."""
        self._state = TERMINATE
        self._engine.terminate()
        self._wait_for_calls(time.monotonic() + _TERMINATE_WAIT)

    def join(self) -> None:
        """Wait for the submitted work (after ``close()``) and for the workers to exit."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        self._wait_for_calls(None)
        if self._state == CLOSE:
            self._engine.stop_and_join()  # every task submitted, then each worker exits
        self._engine.terminate()  # no worker is left: this ends the supervisor thread

    def _wait_for_calls(self, deadline: float | None) -> None:
        while True:
            with self._calls_lock:
                calls = list(self._calls)
            if not calls:
                return
            for thread in calls:
                remaining = _JOIN_POLL if deadline is None else min(_JOIN_POLL, deadline - time.monotonic())
                if remaining <= 0:
                    return
                thread.join(remaining)

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.terminate()

    def __del__(self) -> None:
        if getattr(self, "_state", None) == RUN:
            warnings.warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning, stacklevel=2,
                          source=self)

    # ------------------------------------------------------------------ observation
    def statistics(self) -> PoolStatistics:
        """A snapshot of the pool's health: live workers, pids, restarts, deaths, task counts."""
        return self._engine.statistics()

    def chaos_journal(self) -> list[Any]:
        """Faults the chaos layer injected into this pool's workers so far."""
        return self._engine.chaos_journal()

    @property
    def _pool(self) -> list[Any]:
        """The worker processes by slot (None for a slot between lives), for code that reads the stdlib's ``_pool``."""
        return self._engine._workers


class Context:
    """``mpire_fault.get_context(method)``: a multiprocessing context whose ``Pool`` is ours."""

    def __init__(self, method: str | None = None) -> None:
        self._context = multiprocessing.get_context(method)

    def Pool(self, processes: int | None = None, initializer: Callable[..., Any] | None = None,  # noqa: N802
             initargs: Iterable[Any] = (), maxtasksperchild: int | None = None, **extras: Any) -> Pool:
        """``mpire_fault.Pool`` with this context's start method."""
        return Pool(processes, initializer, initargs, maxtasksperchild, self._context, **extras)

    def get_start_method(self, allow_none: bool = False) -> str | None:
        return self._context.get_start_method(allow_none)

    def __getattr__(self, name: str) -> Any:
        # Everything else (Process, Queue, Lock, Manager, ...) is the multiprocessing context's own.
        return getattr(self._context, name)


def get_context(method: str | None = None) -> Context:
    """Like ``multiprocessing.get_context``, with ``.Pool`` giving ``mpire_fault.Pool``."""
    return Context(method)
