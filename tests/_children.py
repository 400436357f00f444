"""Which child processes a test left behind: one filter for the suite-wide check and the Dask suite's.

A module (not conftest) so both ``tests/conftest.py`` and ``tests/dask`` (not
a package: a package named ``dask`` would shadow the real one) import the
same code; pytest puts ``tests`` on ``sys.path`` for the top-level conftest.
"""
from __future__ import annotations

import time
from typing import Callable

import psutil


def children() -> set[int]:
    """Live (not zombie) descendants of this process, less the helpers that outlive any single test
    on purpose: the multiprocessing forkserver and resource tracker."""
    out = set()
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        if "forkserver" in cmdline or "resource_tracker" in cmdline:
            continue
        out.add(child.pid)
    return out


def wait_for_no_children(allowed: "set[int] | Callable[[], set[int]]", timeout: float) -> list[int]:
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
