"""Errors that cross a process boundary: the boundary notes, and a worker's exception rebuilt in the caller.

Every backend uses these rules: a failure while arguments or results cross
is the original exception with a note naming the boundary (``task-args`` or
``result``), and a task's own exception reaches the caller with its type and
the worker's traceback chained as ``__cause__`` (see ``dump_exception``).
"""
from __future__ import annotations

import pickle
import traceback
import types
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import RemoteTraceback

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

    def __init__(self, data: bytes, serializer: Codec, boundary: str | None = None,
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
