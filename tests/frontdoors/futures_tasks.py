"""Functions the executor tests submit, importable by spawn workers (as ``frontdoors.futures_tasks``)."""
from __future__ import annotations

import os
import signal
import sys
import time

from mpire_fault.testing.markers import started

__all__ = ["started"]

INITIALIZED = "no"


def add(a, b=0):
    return a + b


def echo(*args, **kwargs):
    return args, kwargs


def fail(message: str):
    raise KeyError(message)


def fail_at(i: int, bad: int):
    if i == bad:
        raise ValueError(f"item {i} is bad")
    return i


def init(value: str) -> None:
    global INITIALIZED
    INITIALIZED = value


def init_status() -> tuple[str, int]:
    return INITIALIZED, os.getpid()


def init_fail() -> None:
    raise ValueError("error in initializer")


def touch(directory: str, i: int) -> None:
    with open(os.path.join(directory, f"{i}.{os.getpid()}"), "w"):
        pass


def die(how: str) -> None:
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "os_exit":
        os._exit(7)
    elif how == "sys_exit":
        sys.exit(3)
    time.sleep(10)  # a signal arrives asynchronously: never return from a death


def marked(directory: str, i: int, how: str | None = None, seconds: float = 0.0) -> int:
    """Touch the start marker of ``i``, then die ``how`` (if given) or sleep and return ``i``."""
    touch(directory, i)
    if how is not None and how != "none":
        die(how)
    time.sleep(seconds)
    return i


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def wait_for_file(path: str, timeout: float = 10.0) -> bool:
    """Block until ``path`` exists (a gate the test opens), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def start_sleep_end(directory: str, i: int, seconds: float, raises: bool = False) -> int:
    """Mark the start of ``i``; raise at once, or sleep ``seconds`` and mark its end."""
    with open(os.path.join(directory, f"start.{i}"), "w"):
        pass
    if raises:
        raise ValueError(f"item {i} raised")
    time.sleep(seconds)
    with open(os.path.join(directory, f"end.{i}"), "w"):
        pass
    return i
