"""After terminate() (or leaving ``with``), an unfinished imap raises, as MPIRE's does, instead of yielding on."""
from __future__ import annotations

import gc
import os
import stat
import threading
import time

import pytest

from mpire_fault import PoolTerminatedError, WorkerPool
from mpire_fault._core.start_methods import START_METHODS

from . import tasks

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("start_method", START_METHODS)
def test_an_imap_left_unfinished_by_with_raises(start_method):
    with WorkerPool(1, start_method=start_method) as pool:
        iterator = pool.imap(tasks.square, range(13))
        assert next(iterator) == 0
    with pytest.raises(PoolTerminatedError, match="terminated"):
        list(iterator)
    assert isinstance(PoolTerminatedError("x"), RuntimeError)  # MPIRE raises a RuntimeError here


def test_terminate_from_another_thread_stops_an_imap_at_once():
    with WorkerPool(2, start_method="fork") as pool:
        iterator = pool.imap(tasks.pid_of, range(10_000), chunk_size=1)
        next(iterator)
        threading.Timer(0.2, pool.terminate).start()
        began = time.monotonic()
        with pytest.raises(PoolTerminatedError):
            for _ in iterator:
                pass
        assert time.monotonic() - began < 5.0


def test_the_wake_up_pipe_outlives_the_loop_until_the_supervisor_is_collected():
    """A caller may post to a finished supervisor: its wake-up descriptor must not be a number another file reuses."""
    pool = WorkerPool(1, start_method="fork")
    assert pool.map(tasks.square, range(3)) == [0, 1, 4]
    supervisor = pool._supervisor
    pool.terminate()
    assert supervisor.finished.is_set()
    fd = supervisor._wake_w
    pipe = os.fstat(fd)
    assert stat.S_ISFIFO(pipe.st_mode)
    supervisor.abort(object(), False)  # a late command: harmless, nobody reads it
    del pool, supervisor
    gc.collect()
    try:
        now = os.fstat(fd)
    except OSError:
        return  # closed with the supervisor
    assert (now.st_dev, now.st_ino) != (pipe.st_dev, pipe.st_ino)  # the number went to another file since
