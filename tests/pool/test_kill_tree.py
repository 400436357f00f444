"""A worker the pool kills takes the processes its task started with it (as loky kills the whole tree)."""
from __future__ import annotations

import os
import time

import psutil
import pytest

from mpire_fault import TaskTimeoutError, WorkerDiedError, WorkerPool

from . import tasks


def _wait_for_pid(path: str, limit: float = 10.0) -> int:
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "the task never wrote its subprocess's pid"
        time.sleep(0.01)
    with open(path) as fh:
        return int(fh.read())


def _gone(pid: int, limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["terminate", "timeout", "map abort"])
def test_a_killed_workers_subprocess_dies_with_it(tmp_path, how):
    path = str(tmp_path / "child.pid")
    with WorkerPool(n_jobs=2, timeout_grace=0.2) as pool:
        if how == "terminate":
            result = pool.apply_async(tasks.start_subprocess_then_hang, (path,))
            child = _wait_for_pid(path)
            pool.terminate()
            with pytest.raises(Exception):  # noqa: B017 - PoolTerminatedError; the point is the child
                result.get(timeout=10)
        elif how == "timeout":
            # the task swallows the soft timeout, so the hard kill after timeout_grace ends it
            result = pool.apply_async(tasks.start_subprocess_then_hang, (path,), task_timeout=0.5)
            child = _wait_for_pid(path)
            with pytest.raises((TaskTimeoutError, WorkerDiedError)):
                result.get(timeout=20)
        else:
            with pytest.raises(WorkerDiedError):  # item 1 kills its worker once item 0 started its subprocess
                pool.map(tasks.start_or_die, [(path, 0), (path, 1)], chunk_size=1)
            child = _wait_for_pid(path)
        assert _gone(child), f"the task's subprocess {child} outlived its worker ({how})"
