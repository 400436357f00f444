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
from collections.abc import Callable
from typing import Any, Protocol

from . import shm
from .errors import RemoteTraceback

TASK_ARGS = "task-args"
RESULT = "result"


class Codec(Protocol):
    """What ``dump_exception``/``load_exception`` need of a serializer: ``Serializer`` or the Dask backend's
    ``Pickler``. An ``inband_dumps`` (bytes, never shared memory) is used when the codec has one (read
    with ``getattr``, so it is optional); otherwise ``dumps`` must return bytes itself."""

    @property
    def dumps(self) -> Callable[[Any], Any]: ...

    @property
    def loads(self) -> Callable[[Any], Any]: ...


class Serializer:
    """``dumps``/``loads`` for user payloads, backed by pickle or dill.

    With ``segments``, ``dumps`` puts big buffers in shared memory and may
    return a ``shm.Shared`` instead of bytes; ``loads`` accepts bytes and
    every form ``shm`` produces. ``inband_dumps`` always returns bytes.
    """

    __slots__ = ("use_dill", "segments", "dumps", "loads", "inband_dumps")

    def __init__(self, use_dill: bool = False, segments: shm.Segments | None = None) -> None:
        self.use_dill = use_dill
        self.segments = segments
        codec: Any = pickle
        if use_dill:
            import dill

            codec = dill

        def inband_dumps(obj: Any) -> bytes:
            return codec.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

        plain_loads = codec.loads

        def loads(data: Any) -> Any:
            if type(data) is bytes:
                return plain_loads(data)
            return data.load(codec) if isinstance(data, (shm.Shared, shm.Mapped, shm.Inline)) else plain_loads(data)

        self.inband_dumps = inband_dumps
        self.loads: Callable[[Any], Any] = loads
        if segments is None:
            self.dumps: Callable[[Any], Any] = inband_dumps
            return
        codec_dumps, out_of_band, threshold = codec.dumps, shm.out_of_band, shm.THRESHOLD

        def dumps(obj: Any) -> Any:
            buffers: list = []
            data = codec_dumps(obj, protocol=5, buffer_callback=buffers.append)  # every buffer out of band
            if buffers or len(data) >= threshold:
                return out_of_band(obj, data, buffers, codec, segments)
            return data  # the common case: no buffer at all, small

        self.dumps = dumps

    def __reduce__(self):
        # Segments stay behind: they name (and may own) segments of the process that made them.
        return (Serializer, (self.use_dill,))


def with_boundary(exc: BaseException, boundary: str) -> BaseException:
    """Mark ``exc`` with the boundary it was raised at (once)."""
    if boundary not in getattr(exc, "__notes__", ()):
        exc.add_note(boundary)
    return exc


def dump_exception(exc: BaseException, serializer: Codec) -> bytes:
    """Pickle an exception raised in a worker together with its formatted traceback.

    An exception that cannot itself be pickled (a common trap: a custom
    ``__init__`` signature, or an unpicklable attribute) is replaced by a
    RuntimeError that names the original type, so the task still fails with
    a readable error instead of the result path breaking.
    """
    tb = "".join(traceback.format_exception(exc))
    dumps = getattr(serializer, "inband_dumps", serializer.dumps)  # the error message itself stays in band
    try:
        data = dumps((exc, tb))
        serializer.loads(data)  # an exception that pickles but cannot be rebuilt is just as fatal
        return data
    except Exception as problem:  # noqa: BLE001 - whatever pickling the exception raised, the task still fails readably
        substitute = RuntimeError(
            f"{type(exc).__module__}.{type(exc).__qualname__}: {exc} "
            f"(the original exception could not be sent to the parent: {problem!r})"
        )
        for note in getattr(exc, "__notes__", ()):
            substitute.add_note(note)
        return pickle.dumps((substitute, tb), protocol=pickle.HIGHEST_PROTOCOL)


def summarize(exc: BaseException) -> str:
    """One line of text for an exception (``ValueError: bad input``), cut to 300 characters; never raises."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not fail the task a second time
        text = "<unprintable>"
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line.splitlines()[0][:300] if line else type(exc).__name__


def load_exception(data: bytes, serializer: Codec) -> BaseException:
    """Rebuild a worker's exception with its traceback chained as ``__cause__``."""
    exc, tb = serializer.loads(data)
    exc.__cause__ = RemoteTraceback(tb)
    return exc


class PickledError:
    """An error a worker reported, kept pickled until someone reads it.

    The supervisor hands these on without unpickling them: a user
    exception with a slow (or blocking) reconstructor would otherwise stall
    the loop that notices deaths. The reader (the caller's thread, or the
    callback thread) calls ``load``; a failure to unpickle becomes the
    error itself, marked with the ``result`` boundary.
    """

    __slots__ = ("data", "serializer", "boundary", "rebuild")

    def __init__(self, data: bytes, serializer: Serializer, boundary: str | None = None,
                 rebuild: Callable[[BaseException], BaseException] | None = None) -> None:
        self.data = data
        self.serializer = serializer
        self.boundary = boundary  # the boundary note to add, if the error arose at one
        self.rebuild = rebuild  # turns the worker's exception into the one the caller gets

    def load(self) -> BaseException:
        try:
            exc = load_exception(self.data, self.serializer)
        except BaseException as problem:  # noqa: BLE001 - even SystemExit: it belongs to this task's caller
            exc = with_boundary(problem, RESULT)
        else:
            if self.rebuild is not None:
                exc = self.rebuild(exc)
        if self.boundary:
            with_boundary(exc, self.boundary)
        return exc


def loaded(error: BaseException | PickledError) -> BaseException:
    """The exception itself, unpickling it here if the supervisor passed it on pickled."""
    return error.load() if isinstance(error, PickledError) else error
