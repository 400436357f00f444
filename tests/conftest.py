"""Suite-wide guards: no test may leave a child process behind."""
from __future__ import annotations

import time

import psutil
import pytest
from _children import children


@pytest.fixture(autouse=True)
def no_orphans():
    """Fail a test that leaves a child process running (checked with psutil)."""
    before = children()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        left = children() - before
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
