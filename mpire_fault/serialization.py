"""Serialization at the four process boundaries.

Arguments are pickled in the parent (``task-args``), unpickled in the worker
(``task-args``), results pickled in the worker (``result``) and unpickled in
the parent (``result``). A failure at any of them fails that one task with
the original exception and a note naming the boundary; it never fails the
pool. ``use_dill=True`` swaps pickle for dill so lambdas and closures work.
"""
from __future__ import annotations

import copyreg
import io
import pickle
import traceback
import types
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
            try:
                return codec.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001 - retried as multiprocessing pickles, else this error
                return as_multiprocessing(codec, obj, pickle.HIGHEST_PROTOCOL, None, exc)

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
            try:
                data = codec_dumps(obj, protocol=5, buffer_callback=buffers.append)  # every buffer out of band
            except Exception as exc:  # noqa: BLE001 - retried as multiprocessing pickles, else this error
                buffers.clear()
                data = as_multiprocessing(codec, obj, 5, buffers.append, exc)
            if buffers or len(data) >= threshold:
                return out_of_band(obj, data, buffers, codec, segments)
            return data  # the common case: no buffer at all, small

        self.dumps = dumps

    def __reduce__(self):
        # Segments stay behind: they name (and may own) segments of the process that made them.
        return (Serializer, (self.use_dill,))


_DICT_VIEWS = tuple(type(getattr({}, name)()) for name in ("items", "keys", "values"))


def _as_list(view: Any) -> tuple[Any, tuple]:
    return list, (list(view),)


def as_multiprocessing(codec: Any, obj: Any, protocol: int, buffer_callback: Callable | None,
                       error: Exception) -> bytes:
    """``obj`` pickled with the reducers multiprocessing's queues add, or ``error`` if that fails too.

    MPIRE sends through those queues, so what they can send must go here too:
    a dict view (``d.items()`` as a result) arrives as a list, as
    ``multiprocessing.managers`` makes it; sockets and connections travel as
    multiprocessing hands them over. Only a failed plain pickling pays for it.
    """
    from multiprocessing.reduction import ForkingPickler

    table = dict(copyreg.dispatch_table)
    table.update(ForkingPickler._extra_reducers)  # type: ignore[attr-defined]
    for view in _DICT_VIEWS:
        table.setdefault(view, _as_list)
    buffer = io.BytesIO()
    try:
        pickler = codec.Pickler(buffer, protocol=protocol, buffer_callback=buffer_callback)
        pickler.dispatch_table = table
        pickler.dump(obj)
    except Exception:  # noqa: BLE001 - the first error is the one that explains
        raise error from None
    return buffer.getvalue()


def with_boundary(exc: BaseException, boundary: str) -> BaseException:
    """Mark ``exc`` with the boundary it was raised at (once)."""
    if boundary not in getattr(exc, "__notes__", ()):
        exc.add_note(boundary)
    return exc


def dump_exception(exc: BaseException, serializer: Codec, context: str = "") -> bytes:
    """Pickle an exception raised in a worker together with its formatted traceback.

    An exception that does not survive a pickle round trip (a common trap: a
    custom ``__init__`` signature, so unpickling's ``cls(*args)`` fails; a
    ``__reduce__`` that raises; an unpicklable attribute) is sent as its
    parts instead and rebuilt in the parent without calling ``__init__``
    (``rebuild_exception``): same class, ``args``, notes and the attributes
    that pickle; a dropped attribute is named in a note. Only when even that
    fails (the class itself cannot be pickled, say) is it replaced by a
    RuntimeError that names the original type and text, so the task still
    fails with a readable error instead of the result path breaking.
    ``context`` goes before the traceback (which worker, which arguments).
    """
    tb = context + "".join(traceback.format_exception(exc))
    dumps = getattr(serializer, "inband_dumps", serializer.dumps)  # the error message itself stays in band
    loads = serializer.loads
    try:
        data = dumps((exc, tb))
        loads(data)  # an exception that pickles but cannot be rebuilt is just as fatal
        return data
    except Exception:  # noqa: BLE001 - whatever pickling the exception raised, the task still fails readably
        pass
    try:
        data = dumps((_ExceptionParts.of(exc, dumps, loads), tb))
        loads(data)
        return data
    except Exception as problem:  # noqa: BLE001 - not even the parts travel: say what it was
        cls = type(exc)
        module = "__main__" if cls.__module__ == "__mp_main__" else cls.__module__  # spawn's name for __main__
        substitute = RuntimeError(
            f"{module}.{cls.__qualname__}: {_text(exc)} "
            f"(the original exception could not be sent to the parent: {problem!r})"
        )
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, str):
            substitute.add_note(note)
    return pickle.dumps((substitute, tb), protocol=pickle.HIGHEST_PROTOCOL)


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not fail the task a second time
        return "<unprintable>"


def _travels(value: Any, dumps: Callable[[Any], Any], loads: Callable[[Any], Any]) -> BaseException | None:
    """None if ``value`` survives a round trip through ``dumps``/``loads``, else the error it raised."""
    try:
        loads(dumps(value))
    except Exception as problem:  # noqa: BLE001 - any failure means it stays behind
        return problem
    return None


class _ExceptionParts:
    """An exception taken apart in the worker: pickles as a call of ``rebuild_exception``."""

    __slots__ = ("cls", "args", "state", "members")

    def __init__(self, cls: type[BaseException], args: tuple, state: dict[str, Any],
                 members: dict[str, Any]) -> None:
        self.cls, self.args, self.state, self.members = cls, args, state, members

    @classmethod
    def of(cls, exc: BaseException, dumps: Callable[[Any], Any], loads: Callable[[Any], Any]) -> _ExceptionParts:
        """``exc``'s class, ``args`` and the instance attributes that travel; a note for each that does not."""
        dropped: list[str] = []
        args = exc.args
        if _travels(args, dumps, loads) is not None:
            kept = []
            for i, arg in enumerate(args):
                problem = _travels(arg, dumps, loads)
                if problem is not None:
                    dropped.append(f"mpire_fault: argument {i} ({type(arg).__qualname__}) of this exception was "
                                   f"replaced by its text: it could not be sent to the parent ({problem!r})")
                    arg = _text(arg) if len(args) == 1 else repr(arg)  # keeps str(exc) as it was
                kept.append(arg)
            args = tuple(kept)
        state: dict[str, Any] = {}
        members: dict[str, Any] = {}
        for kept_in, items in ((state, vars(exc).items()), (members, _members(exc))):
            for name, value in items:
                problem = _travels(value, dumps, loads)
                if problem is None:
                    kept_in[name] = value
                else:
                    dropped.append(f"mpire_fault: attribute {name!r} ({type(value).__qualname__}) of this "
                                   f"exception was dropped: it could not be sent to the parent ({problem!r})")
        if dropped:
            notes = state.get("__notes__")
            state["__notes__"] = (list(notes) if isinstance(notes, list) else []) + dropped
        return cls(type(exc), args, state, members)

    def __reduce__(self) -> tuple:
        return (rebuild_exception, (self.cls, self.args, self.state, self.members))


def _members(exc: BaseException) -> list[tuple[str, Any]]:
    """The attributes a built-in base keeps outside ``__dict__`` (``OSError.filename``, ``SystemExit.code``...)."""
    found = []
    for base in type(exc).__mro__:
        if base.__module__ != "builtins" or base in (BaseException, object):
            continue
        for name, attr in vars(base).items():
            if isinstance(attr, (types.MemberDescriptorType, types.GetSetDescriptorType)) and not name.startswith("_"):
                try:
                    value = getattr(exc, name)
                except Exception:  # noqa: BLE001 - an unset member: nothing to carry
                    continue
                if value is not None:  # None is unset: setting it would show (OSError: "-> None")
                    found.append((name, value))
    return found


def rebuild_exception(cls: type[BaseException], args: tuple, state: dict[str, Any],
                      members: dict[str, Any] | None = None) -> BaseException:
    """An instance of ``cls`` with ``args`` and the attributes in ``state``, made without calling its ``__init__``.

    The nearest built-in base's ``__init__`` still runs (``Exception.__init__`` sets ``args``;
    ``OSError.__init__`` also ``errno`` and ``strerror``), and the ``members`` a built-in base keeps outside
    ``__dict__`` (``OSError.filename``...) are set again, so ``str(exc)`` reads as it did in the worker.
    """
    try:
        exc = BaseException.__new__(cls)
    except TypeError:  # a built-in base with its own layout (OSError, ExceptionGroup...) needs its own __new__
        try:
            exc = cls.__new__(cls, *args)
        except Exception:  # noqa: BLE001 - a __new__ of its own that wants other arguments
            exc = cls.__new__(cls)
    base: Any = next(b for b in cls.__mro__ if b.__module__ == "builtins")
    try:
        base.__init__(exc, *args)
    except Exception:  # noqa: BLE001 - a built-in __init__ that wants other arguments: args alone will do
        pass
    exc.args = args
    for name, value in (members or {}).items():
        try:
            setattr(exc, name, value)
        except Exception:  # noqa: BLE001 - a read-only member: its value came from args already
            pass
    vars(exc).update(state)
    return exc


def summarize(exc: BaseException) -> str:
    """One line of text for an exception (``ValueError: bad input``), cut to 300 characters; never raises."""
    text = _text(exc)
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
