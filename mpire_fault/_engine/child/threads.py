"""``start_method="threading"``: workers that are threads of the parent.

The supervisor does not change: a ``WorkerThread`` looks to a worker slot
like a ``multiprocessing.Process`` (a pid, a sentinel that becomes readable
when it ends, an exit code, ``kill()``), and the worker loop talks over the
same pipes. What differs:

* Nothing is copied. Arguments, results, shared objects and exceptions cross
  the pipes as references (``ReferenceSerializer``), as in MPIRE, so an
  unpicklable argument or a shared ``threading.Lock`` just works.
* A task calling ``sys.exit()`` ends its thread: that is a worker death, as
  it is for a process, and the slot gets a new thread.
* A thread cannot be killed. The soft timeout raises ``TaskTimeoutError`` in
  it (``PyThreadState_SetAsyncExc``, effective at its next Python bytecode);
  if it has not stopped after the grace period, the slot lets it go and
  starts a new thread. The old one is told to exit at its next bytecode and
  can no longer answer.
"""
from __future__ import annotations

import ctypes
import itertools
import multiprocessing
import os
import pickle
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from ...exception import TaskInterrupted


class ThreadingContext:
    """``pool.ctx`` for ``start_method="threading"``, as MPIRE offers it.

    Synchronization objects come from ``threading``; ``Value``, ``Array`` and
    ``JoinableQueue`` from multiprocessing (they are thread-safe too).
    """

    Barrier = threading.Barrier
    Condition = threading.Condition
    Event = threading.Event
    Lock = threading.Lock
    RLock = threading.RLock
    Semaphore = threading.Semaphore
    Thread = threading.Thread
    Array = staticmethod(multiprocessing.Array)
    Value = staticmethod(multiprocessing.Value)
    RawArray = staticmethod(multiprocessing.RawArray)
    RawValue = staticmethod(multiprocessing.RawValue)
    JoinableQueue: Any = staticmethod(multiprocessing.JoinableQueue)
    Queue: Any = staticmethod(multiprocessing.Queue)
    Process = multiprocessing.Process

    @staticmethod
    def get_start_method(allow_none: bool = False) -> str:
        return "threading"


class ThreadInterrupt(TaskInterrupted):
    """The soft timeout, as raised inside a worker thread (an async exception is made from a class)."""

    def __init__(self) -> None:
        super().__init__(None, killed=False)


def _raise_in(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type))


def _exit_code(code: Any) -> int:
    # sys.exit's own convention: None is 0, an int is itself, anything else is printed and 1.
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


class WorkerThread:
    """A worker run as a thread, with the part of ``multiprocessing.Process``'s interface a slot uses."""

    def __init__(self, target: Callable[..., None], args: tuple, name: str, daemon: bool = True) -> None:
        self._target, self._args = target, args
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.pid = os.getpid()
        self.exitcode: int | None = None
        self.abandoned = False
        self._lock = threading.Lock()
        self._sentinel_r: int | None
        self._sentinel_w: int | None
        self._sentinel_r, self._sentinel_w = os.pipe()

    @property
    def sentinel(self) -> int | None:
        """Readable once the thread ended (or was let go): the write end is closed then."""
        return self._sentinel_r

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        code = 0
        try:
            self._target(*self._args)
        except SystemExit as exc:  # sys.exit() in a task: this worker's death, as for a process
            code = _exit_code(exc.code)
        except BaseException:  # noqa: BLE001 - whatever the thread's target raised is its outcome
            if not self.abandoned:
                traceback.print_exc()
            code = 1
        finally:
            self._end(code)

    def _end(self, code: int | None) -> None:
        with self._lock:
            if self.exitcode is None and not self.abandoned:
                self.exitcode = code
            if self._sentinel_w is not None:
                os.close(self._sentinel_w)
                self._sentinel_w = None

    def interrupt(self) -> None:
        """The soft timeout: ``TaskTimeoutError`` inside the thread at its next bytecode."""
        _raise_in(self._thread, ThreadInterrupt)

    def kill(self) -> None:
        """Let the thread go: the slot sees it end now; it is told to exit when it next runs Python code."""
        if self.exitcode is not None:
            return
        self.abandoned = True
        _raise_in(self._thread, SystemExit)
        self._end(None)

    def is_alive(self) -> bool:
        return self._sentinel_w is not None

    def close(self) -> None:
        if self._sentinel_r is not None:
            os.close(self._sentinel_r)
            self._sentinel_r = None


_references: dict[int, Any] = {}
_reference_keys = itertools.count()


class Reference:
    """An object crossing a pipe between threads of one process: its pickle is a key, not a copy."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __reduce__(self) -> tuple:
        # Each pickling is unpickled once (one message, one reader), which
        # claims the entry; a task that is sent again is pickled again.
        key = next(_reference_keys)
        _references[key] = self.obj
        return (_claim, (key,))


def _claim(key: int) -> Reference:
    return Reference(_references.pop(key))


class ReferenceSerializer:
    """``Serializer`` for threads: ``dumps`` wraps, ``loads`` unwraps; nothing is copied."""

    use_dill = False

    @staticmethod
    def dumps(obj: Any) -> Any:
        return Reference(obj)

    @staticmethod
    def loads(data: Any) -> Any:
        if isinstance(data, Reference):
            return data.obj
        return pickle.loads(data)  # what dump_exception pickled when an exception could not travel as is

    def __reduce__(self) -> tuple:
        return (ReferenceSerializer, ())
