"""What the pool tests read in the parent: marker-file counts and bounded waits on a pool's state.

Kept apart from ``tasks.py``, whose functions run in the workers: nothing here
is ever pickled to a worker.
"""
from __future__ import annotations

import collections
import os
import time

from mpire_fault.testing.markers import started


def runs(directory) -> collections.Counter:
    """How often each item started, from the marker files."""
    return started(directory)


def marker_pids(directory, i: int) -> list[int]:
    return [int(name.split(".")[1]) for name in os.listdir(directory)
            if name.split(".")[0] == str(i) and not name.endswith(".init")]


def init_calls(directory) -> int:
    return sum(1 for name in os.listdir(directory) if name.endswith(".init"))


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_recovered(pool, timeout: float = 10.0) -> dict:
    """Wait until every slot has a live, ready worker; return the statistics."""
    def recovered():
        stats = pool.statistics()
        return stats if stats["live_workers"] == pool.n_jobs and len(stats["worker_pids"]) == pool.n_jobs else None

    return wait_until(recovered, timeout, what=f"{pool.n_jobs} live workers")


def wait_handed(pool, n: int, timeout: float = 10.0):
    """Wait until some worker holds ``n`` tasks in its ledger (one running, the rest queued in its pipe).

    White-box on purpose: it is the only way to know a task was handed to a
    worker that has not started it, which is the case the requeue guarantee
    is about.
    """
    def handed():
        return any(len(slot.ledger) >= n for slot in pool._supervisor.slots)

    return wait_until(handed, timeout, what=f"a worker holding {n} tasks")


def pid_gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
