"""Exceptions that plain pickling cannot carry back from a worker still reach the caller as themselves.

Pickling an exception stores ``(cls, self.args)`` and unpickling calls
``cls(*args)``, which fails for a custom ``__init__`` whose arguments are not
``args``. Such an exception is rebuilt without its ``__init__``: the same
class, ``str``, attributes and notes, the worker's traceback as ``__cause__``.
An attribute that cannot travel is dropped and named in a note; only an
exception whose class itself cannot travel becomes a RuntimeError naming it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mpire_fault import RemoteTraceback, WorkerPool
from mpire_fault._core.remote import dump_exception, load_exception
from mpire_fault._engine.wire.codec import Serializer

from . import exception_tasks
from .exception_tasks import FileGoneError, LockedError, TwoArgError

pytestmark = pytest.mark.timeout(60)

SCRIPT = os.path.join(os.path.dirname(__file__), "exception_main_script.py")

KINDS = ["two-args", "keyword-only", "text-from-attributes", "reduce-raises", "locked", "oserror"]
ATTRIBUTES = {  # what each kind must bring back besides its type and text
    "two-args": {"a": 3, "b": "bad value"},
    "keyword-only": {"code": 30},
    "text-from-attributes": {"a": 3, "b": "the widget"},
    "reduce-raises": {"detail": "kept"},
    "locked": {"a": 3},
    "oserror": {"why": "gone", "errno": 2, "strerror": "gone", "filename": "/nowhere/3"},
}


def _check(exc: BaseException, kind: str, i: int = 3) -> None:
    expected = exception_tasks.make(kind, i)
    assert type(exc) is type(expected)
    assert str(exc) == str(expected)
    for name, value in ATTRIBUTES[kind].items():
        assert getattr(exc, name) == value, name
    assert isinstance(exc.__cause__, RemoteTraceback)
    assert "raise_kind" in exc.__cause__.tb
    assert type(expected).__name__ in exc.__cause__.tb


@pytest.mark.parametrize("kind", KINDS)
def test_apply_brings_back_the_original_exception(start_method, kind):
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(type(exception_tasks.make(kind, 3))) as info:
            pool.apply(exception_tasks.raise_kind, (kind, 3, 3))
        _check(info.value, kind)
        with pytest.raises(type(exception_tasks.make(kind, 3))) as info:
            pool.apply_async(exception_tasks.raise_kind, (kind, 3, 3)).get(timeout=30)
        _check(info.value, kind)
        assert pool.statistics()["deaths"] == ()


@pytest.mark.parametrize("kind", KINDS)
def test_map_brings_back_the_original_exception(start_method, kind):
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(type(exception_tasks.make(kind, 3))) as info:
            pool.map(exception_tasks.raise_kind, [(kind, i, 3) for i in range(8)], chunk_size=2)
        _check(info.value, kind)
        assert pool.map(exception_tasks.raise_kind, [(kind, i, -1) for i in range(4)]) == [0, 1, 2, 3]


def test_except_clause_catches_it_and_notes_survive(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        try:
            pool.map(exception_tasks.raise_kind, [("two-args", i, 2, "my note") for i in range(4)])
        except TwoArgError as exc:
            caught = exc
        else:
            pytest.fail("the TwoArgError did not reach the caller")
        assert (caught.a, caught.b) == (2, "bad value")
        assert caught.args == ("2: bad value",)
        assert "my note" in caught.__notes__


def test_unpicklable_attribute_is_dropped_with_a_note(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(LockedError) as info:
            pool.apply(exception_tasks.raise_kind, ("locked", 3, 3, "mine"))
        exc = info.value
        assert str(exc) == "3: locked"
        assert exc.a == 3
        assert not hasattr(exc, "lock")
        assert exc.__notes__[0] == "mine"
        assert any("'lock'" in note and "dropped" in note for note in exc.__notes__[1:])


def test_chained_exception_keeps_the_worker_traceback(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(TwoArgError) as info:
            pool.apply(exception_tasks.raise_chained, (5,))
        assert str(info.value) == "5: chained"
        tb = info.value.__cause__.tb
        assert "KeyError: 'missing'" in tb
        assert "direct cause" in tb


def test_class_that_cannot_travel_becomes_a_runtime_error(start_method):
    """A class defined inside a function cannot be pickled at all: the RuntimeError names it and its text."""
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(RuntimeError, match=r"make\.<locals>\.LocalError: item 1 \(the original exception could "
                                               r"not be sent") as info:
            pool.apply(exception_tasks.raise_kind, ("local-class", 1, 1, "kept note"))
        assert "kept note" in info.value.__notes__
        assert isinstance(info.value.__cause__, RemoteTraceback)
        assert pool.apply(exception_tasks.raise_kind, ("local-class", 1, 2)) == 1


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_classes_defined_in_main(method):
    """Under spawn the worker's classes are ``__mp_main__.X``: the parent still gets its ``__main__.X``."""
    proc = subprocess.run([sys.executable, SCRIPT, method], capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr
    seen = {line["task"]: line for line in map(json.loads, proc.stdout.splitlines())}
    assert seen["raise_two"] == {"task": "raise_two", "type": "__main__.TwoArgError", "caught": True,
                                 "str": "1: bad", "attrs": {"a": 1, "b": "bad"}}
    assert seen["raise_plain"]["type"] == "__main__.PlainError" and seen["raise_plain"]["caught"]
    dynamic = seen["raise_dynamic"]  # a class no module holds cannot travel: named, as __main__, in a RuntimeError
    assert dynamic["type"] == "builtins.RuntimeError"
    assert dynamic["str"].startswith("__main__.DynamicError: dynamic 1 (the original exception could not be sent")


# ---------------------------------------------------------------- the codec alone, in one process
@pytest.mark.parametrize("use_dill", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_dump_and_load_without_a_pool(kind, use_dill):
    serializer = Serializer(use_dill)
    try:
        exception_tasks.raise_kind(kind, 3, 3)
    except Exception as exc:  # noqa: BLE001
        data = dump_exception(exc, serializer)
    _check(load_exception(data, serializer), kind)


def test_plain_exceptions_still_take_the_plain_pickle_path():
    """An exception that pickles as is travels as pickle makes it (its own ``__reduce__``, ``__init__`` called)."""
    serializer = Serializer()
    data = dump_exception(ValueError("plain"), serializer)
    assert b"rebuild_exception" not in data
    assert b"rebuild_exception" in dump_exception(TwoArgError(1, 2), serializer)


def test_oserror_subclass_text_is_unchanged():
    serializer = Serializer()
    exc = load_exception(dump_exception(FileGoneError("/x", "gone"), serializer), serializer)
    assert str(exc) == "[Errno 2] gone: '/x'"
    assert (exc.errno, exc.filename, exc.filename2) == (2, "/x", None)
