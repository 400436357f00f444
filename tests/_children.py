"""The suite's view of leftover child processes (one copy: ``mpire_fault.testing.children``).

Test modules and conftests import from here (``from _children import children``):
``tests/`` is on ``sys.path`` because it has no ``__init__.py``, and ``tests/dask``
(not a package: a package named ``dask`` would shadow the real one) uses it too.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import psutil

from mpire_fault.testing.children import HELPERS, is_helper, live_children

__all__ = ["HELPERS", "children", "is_helper", "kill", "wait_for_no_children"]


def children() -> set[int]:
    """Pids of this process's live descendants, less multiprocessing's long-lived helpers."""
    return live_children()


def wait_for_no_children(allowed: set[int] | Callable[[], set[int]], timeout: float) -> list[int]:
    """Wait (at most ``timeout`` s) until every child is in ``allowed``; the pids still left over."""
    deadline = time.monotonic() + timeout
    while True:
        extra = allowed() if callable(allowed) else allowed
        left = sorted(children() - extra)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def kill(pids: list[int]) -> list[tuple[int, str]]:
    """SIGKILL these processes; their (pid, name) for the failure message."""
    named = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            named.append((pid, proc.name()))
            proc.kill()
        except psutil.Error:
            named.append((pid, "?"))
    return named
