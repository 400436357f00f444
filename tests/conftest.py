"""Suite-wide guards: no test may leave a child process behind."""
from __future__ import annotations

import time

import psutil
import pytest


def _children() -> set[int]:
    # Helper processes that outlive any single test on purpose: the
    # multiprocessing forkserver and resource tracker.
    out = set()
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "forkserver" in cmdline or "resource_tracker" in cmdline:
            continue
        out.add(child.pid)
    return out


@pytest.fixture(autouse=True)
def no_orphans():
    """Fail a test that leaves a child process running (checked with psutil)."""
    before = _children()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        left = _children() - before
        alive = []
        for pid in left:
            try:
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    assert not alive, f"the test left child processes behind: {[(p.pid, p.name()) for p in alive]}"
