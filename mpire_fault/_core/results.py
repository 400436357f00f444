"""What callers hold: ``AsyncResult`` (and the thread its callbacks run on), and numpy output joined as MPIRE does.

Every wait here is bounded by a poll of the supervisor's health: if the
supervisor thread has ended, a caller gets an error instead of waiting
forever for an answer nobody will send.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ..errors import SupervisorError
from .chunking import is_ndarray
from .remote import RESULT, PickledError, with_boundary

T = TypeVar("T")
log = logging.getLogger("mpire_fault")
_POLL = 0.25


class CallbackRunner:
    """Runs callbacks on one thread of their own, so a slow or raising callback never blocks the supervisor."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mpire_fault-callbacks", daemon=True)
                self._thread.start()
        self._queue.put(fn)

    def _run(self) -> None:
        while True:
            fn = self._queue.get()
            if fn is None:
                return
            fn()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait (bounded) until every callback submitted so far has run."""
        if self._thread is None or not self._thread.is_alive():
            return  # nothing was ever submitted, or the thread already ended
        done = threading.Event()
        self.submit(done.set)
        done.wait(timeout)

    def stop(self) -> None:
        """End the thread once what is queued has run; a later submit starts a new one."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
            self._thread = None


class _Flag:
    """A one-shot ``threading.Event`` built on a single lock (an Event builds a Condition: five times the cost)."""

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        if not self._set:
            self._set = True
            try:
                self._lock.release()
            except RuntimeError:  # two threads raced to set it: once is enough
                pass

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        if self._set:
            return True
        if self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            self._lock.release()
            return True
        return self._set


def _AN_ERROR(data: Any) -> Any:
    """The ``loads`` of an ``AsyncResult`` resolved with a ``PickledError``: a marker, never called."""
    raise AssertionError("a pickled error is loaded by PickledError.load")


class AsyncResult(Generic[T]):
    """The pending result of ``apply_async``; resolved exactly once, with a value or an error."""

    def __init__(self, callback=None, error_callback=None, runner: CallbackRunner | None = None,
                 supervisor_gone: Callable[[], bool] = lambda: False) -> None:
        self._event = _Flag()
        self._lock = threading.Lock()
        self._resolved = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._callback = callback
        self._error_callback = error_callback
        self._runner = runner
        self._supervisor_gone = supervisor_gone
        self._pickled: tuple[Any, Callable[[Any], Any]] | None = None
        self._load_lock = threading.Lock()
        self._job: Any = None  # a weakref to the engine's job behind it (WorkerPool._apply), for _stop_applies

    def _resolve_pickled(self, data: Any, loads: Callable[[Any], Any]) -> bool:
        """Resolve with a value still pickled, so the supervisor never runs user code to rebuild it.

        A slow (or blocking) reconstructor would otherwise stall the loop that
        notices deaths. The value is unpickled once: by the callback thread if
        there is a callback, else by the first caller that asks for it.
        """
        with self._lock:
            if self._resolved:
                return False
            self._resolved = True
            self._pickled = (data, loads)
        if (self._callback is None and self._error_callback is None) or self._runner is None:
            self._event.set()
        else:
            self._runner.submit(self._load_then_hook)
        return True

    def _resolve_error(self, error: BaseException | PickledError) -> bool:
        if isinstance(error, PickledError):
            return self._resolve_pickled(error, _AN_ERROR)
        return self._resolve(error=error)

    def _load(self) -> None:
        with self._load_lock:
            if self._pickled is None:
                return
            data, loads = self._pickled
            if loads is _AN_ERROR:
                self._error = data.load()
                self._pickled = None
                return
            try:
                self._value = loads(data)
            except KeyboardInterrupt:
                raise  # Ctrl-C while the caller waits: not this task's outcome
            except BaseException as exc:  # noqa: BLE001 - even SystemExit: it belongs to this task's caller
                self._error = with_boundary(exc, RESULT)
            self._pickled = None

    def _load_then_hook(self) -> None:
        try:
            self._load()
        finally:
            hook = self._callback if self._error is None else self._error_callback
            if hook is None:
                self._event.set()
            else:
                self._run_hook(hook, self._value if self._error is None else self._error)

    def _resolve(self, value: Any = None, error: BaseException | None = None) -> bool:
        with self._lock:
            if self._resolved:
                return False
            self._resolved = True
            self._value, self._error = value, error
        hook = self._callback if error is None else self._error_callback
        if hook is None or self._runner is None:
            self._event.set()
        else:
            self._runner.submit(lambda: self._run_hook(hook, value if error is None else error))
        return True

    def _run_hook(self, hook: Callable, arg: Any) -> None:
        try:
            hook(arg)
        except Exception:
            log.exception("a callback of mpire_fault.AsyncResult raised; the pool is unaffected")
        finally:
            self._event.set()

    def ready(self) -> bool:
        return self._event.is_set()

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError("the result is not ready yet")
        self._load()
        return self._error is None

    def wait(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._event.is_set():
            remaining = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
            if remaining <= 0:
                return
            if self._event.wait(remaining):
                return
            if self._supervisor_gone() and not self._event.wait(1.0):
                self._resolve(error=SupervisorError("the pool's supervisor ended without answering this task"))

    def get(self, timeout: float | None = None) -> T:
        # pytest leaves this frame out of a failing test's report: the user's line and the error are what count
        __tracebackhide__ = True
        self.wait(timeout)
        if not self._event.is_set():
            raise TimeoutError(f"the result was not ready within {timeout} seconds")
        self._load()
        if self._error is not None:
            raise self._error
        return self._value


def maybe_concatenate(results: list[Any]) -> Any:
    """MPIRE's concatenate_numpy_output: one array when every result is a numpy array."""
    if results and is_ndarray(results[0]):
        import numpy

        try:
            return numpy.concatenate(results)
        except ValueError:
            return results
    return results
