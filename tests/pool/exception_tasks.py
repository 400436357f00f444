"""Exception classes that plain pickling cannot carry back from a worker, and tasks raising them.

They live in a module (not in a test file's namespace) so spawn and forkserver
workers can import them, and so the parent finds the same classes.
"""
from __future__ import annotations

import threading


class TwoArgError(Exception):
    """The classic trap: ``__init__`` takes two arguments, ``args`` holds one message."""

    def __init__(self, a, b):
        super().__init__(f"{a}: {b}")
        self.a, self.b = a, b


class KeywordOnlyError(ValueError):
    """A required keyword-only argument: ``cls(*args)`` cannot supply it."""

    def __init__(self, message, *, code):
        super().__init__(message)
        self.code = code


class TextFromAttributesError(Exception):
    """``__init__`` never calls the base and ``__str__`` reads attributes: ``args`` is ``(a, b)`` but misleads."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __str__(self):
        return f"{self.a} went wrong with {self.b}"


class ReduceRaisesError(Exception):
    """A ``__reduce__`` that raises: pickle cannot even start."""

    def __init__(self, message):
        super().__init__(message)
        self.detail = "kept"

    def __reduce__(self):
        raise TypeError("ReduceRaisesError refuses to be pickled")


class LockedError(Exception):
    """A two-argument ``__init__`` and an attribute that cannot be pickled (a lock)."""

    def __init__(self, a, b):
        super().__init__(f"{a}: {b}")
        self.a = a
        self.lock = threading.Lock()


class FileGoneError(OSError):
    """An OSError subclass with its own ``__init__``: errno, strerror and filename must come back."""

    def __init__(self, path, why):
        super().__init__(2, why, path)
        self.why = why


def make(kind: str, i: int) -> BaseException:
    """The exception ``raise_kind`` raises (also built in the parent, to compare)."""
    if kind == "two-args":
        return TwoArgError(i, "bad value")
    if kind == "keyword-only":
        return KeywordOnlyError(f"item {i}", code=i * 10)
    if kind == "text-from-attributes":
        return TextFromAttributesError(i, "the widget")
    if kind == "reduce-raises":
        return ReduceRaisesError(f"item {i}")
    if kind == "locked":
        return LockedError(i, "locked")
    if kind == "oserror":
        return FileGoneError(f"/nowhere/{i}", "gone")
    if kind == "local-class":
        class LocalError(Exception):
            pass
        return LocalError(f"item {i}")
    raise AssertionError(kind)


def raise_kind(kind: str, i: int, doomed: int = 0, note: str | None = None):
    """Raise the ``kind`` exception for item ``doomed`` (with ``note`` added); return ``i`` otherwise."""
    if i != doomed:
        return i
    exc = make(kind, i)
    if note is not None:
        exc.add_note(note)
    raise exc


def raise_chained(i: int):
    """A TwoArgError raised from a KeyError: the worker's traceback shows both."""
    try:
        {}["missing"]
    except KeyError as inner:
        raise TwoArgError(i, "chained") from inner
