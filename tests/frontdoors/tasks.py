"""Task functions for the front-door tests (module level, so spawn workers import them)."""
from __future__ import annotations

import os
import signal
import time
import uuid


def touch(directory: str, i: int) -> None:
    """A start marker (see mpire_fault.testing.markers): the count survives the worker dying right after."""
    with open(os.path.join(directory, f"{i}.{os.getpid()}.{uuid.uuid4().hex}"), "w"):
        pass


def marked(directory: str, i: int, doomed: int, how: str) -> int:
    """Mark the start, die in the way ``how`` says if ``i`` is doomed, else return ``i * i``."""
    touch(directory, i)
    if i == doomed:
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)
    return i * i


def marked_item(item: tuple) -> int:
    """``marked`` for ``map``, which passes each item whole."""
    return marked(*item)


def square(x):
    return x * x


def echo(*args, **kwargs):
    return args, kwargs


def whole(item):
    return item


def pid(_=None) -> int:
    return os.getpid()


def sleep_then(seconds: float, value=None):
    time.sleep(seconds)
    return value


def fail(x):
    raise KeyError(f"task {x} failed on purpose")


def set_env(name: str, value: str) -> None:
    os.environ[name] = value


def get_env(name: str) -> str | None:
    return os.environ.get(name)


def broken_init() -> None:
    raise ZeroDivisionError("the initializer fails on purpose")


_LOCK = None


def init_with_lock(lock, name: str, value: str) -> None:
    """An initializer as the stdlib's docs write them: a Lock from initargs kept in a global."""
    global _LOCK
    _LOCK = lock
    os.environ[name] = value


def get_env_locked(name: str) -> str | None:
    with _LOCK:
        return os.environ.get(name)
