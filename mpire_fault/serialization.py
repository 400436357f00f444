"""Serialization at the four process boundaries.

Arguments are pickled in the parent (``task-args``), unpickled in the worker
(``task-args``), results pickled in the worker (``result``) and unpickled in
the parent (``result``). A failure at any of them fails that one task with
the original exception and a note naming the boundary; it never fails the
pool. ``use_dill=True`` swaps pickle for dill so lambdas and closures work.
"""
from __future__ import annotations

import pickle
import traceback
from typing import Any, Callable

from .errors import RemoteTraceback

TASK_ARGS = "task-args"
RESULT = "result"


class Serializer:
    """``dumps``/``loads`` for user payloads, backed by pickle or dill."""

    __slots__ = ("use_dill", "dumps", "loads")

    def __init__(self, use_dill: bool = False) -> None:
        self.use_dill = use_dill
        if use_dill:
            import dill

            self.dumps: Callable[[Any], bytes] = lambda obj: dill.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            self.loads: Callable[[bytes], Any] = dill.loads
        else:
            self.dumps = lambda obj: pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            self.loads = pickle.loads

    def __reduce__(self):
        return (Serializer, (self.use_dill,))


def with_boundary(exc: BaseException, boundary: str) -> BaseException:
    """Mark ``exc`` with the boundary it was raised at (once)."""
    if boundary not in getattr(exc, "__notes__", ()):
        exc.add_note(boundary)
    return exc


def dump_exception(exc: BaseException, serializer: Serializer) -> bytes:
    """Pickle an exception raised in a worker together with its formatted traceback.

    An exception that cannot itself be pickled (a common trap: a custom
    ``__init__`` signature, or an unpicklable attribute) is replaced by a
    RuntimeError that names the original type, so the task still fails with
    a readable error instead of the result path breaking.
    """
    tb = "".join(traceback.format_exception(exc))
    try:
        data = serializer.dumps((exc, tb))
        serializer.loads(data)  # an exception that pickles but cannot be rebuilt is just as fatal
        return data
    except Exception as problem:
        substitute = RuntimeError(
            f"{type(exc).__module__}.{type(exc).__qualname__}: {exc} "
            f"(the original exception could not be sent to the parent: {problem!r})"
        )
        for note in getattr(exc, "__notes__", ()):
            substitute.add_note(note)
        return pickle.dumps((substitute, tb), protocol=pickle.HIGHEST_PROTOCOL)


def load_exception(data: bytes, serializer: Serializer) -> BaseException:
    """Rebuild a worker's exception with its traceback chained as ``__cause__``."""
    exc, tb = serializer.loads(data)
    exc.__cause__ = RemoteTraceback(tb)
    return exc
