"""A scheduler that stops answering (SIGSTOP) or dies (SIGKILL) mid-call fails the call, naming the scheduler.

Issue 25 item 3: the map waited for ever on a stopped scheduler, and said
"the pool was terminated" after 31 s when it was killed. Each test starts a
``dask scheduler`` and two ``dask worker`` of its own (they break), and the
watch's bounds are shortened so the test takes seconds; the defaults
(``liveness.SILENT_AFTER``, 15 s) only make it slower.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

distributed = pytest.importorskip("distributed")

import dask_suite  # noqa: E402  (tests/dask is not a package: a package named "dask" would shadow the real one)
import dask_tasks as tasks  # noqa: E402

from mpire_fault.dask_backend import DaskPool, liveness  # noqa: E402
from mpire_fault.errors import PoolTerminatedError, SchedulerLostError  # noqa: E402

pytestmark = pytest.mark.timeout(90)
SILENT = 3.0


@pytest.fixture
def cli_cluster(tmp_path, monkeypatch):
    monkeypatch.setattr(liveness, "SILENT_AFTER", SILENT)
    monkeypatch.setattr(liveness, "PING_BOUND", 1.0)
    monkeypatch.setattr(liveness, "SCHEDULER_BOUND", 3.0)
    before = dask_suite.children()
    with open(tmp_path / "cluster.log", "w") as log:
        address, procs = dask_suite.start_cli_cluster(log, 2)
        try:
            yield address, procs[0]
        finally:
            dask_suite.stop_cli_cluster(procs, graceful=False)  # it is broken anyway
    left = dask_suite.wait_for_no_children(before, 10.0)
    assert not left, f"the CLI-started cluster left processes behind: {left}"


@pytest.mark.parametrize("how", [signal.SIGSTOP, signal.SIGKILL], ids=["stopped", "killed"])
def test_a_lost_scheduler_fails_the_pending_calls_by_name(cli_cluster, how):
    address, scheduler = cli_cluster
    pool = DaskPool(address=address)
    assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]
    pending = pool.apply_async(tasks.block, (30,))
    items = pool.imap(tasks.block_and_square, [(0.5, x) for x in range(200)], chunk_size=1)
    assert next(items) == 0
    os.kill(scheduler.pid, how)
    began = time.monotonic()
    with pytest.raises(SchedulerLostError) as info:
        list(items)
    elapsed = time.monotonic() - began
    assert elapsed < SILENT + 10, f"the map noticed after {elapsed:.1f} s"
    assert address in str(info.value) and info.value.address == address
    assert str(info.value).startswith(f"lost the scheduler at {address}: ")
    if how == signal.SIGSTOP:
        assert "it has not answered for" in str(info.value)
    with pytest.raises(SchedulerLostError):  # the apply task pending meanwhile fails too, in bounded time
        pending.get(timeout=10)
    with pytest.raises(SchedulerLostError):  # and a new call fails at once instead of waiting
        pool.apply_async(tasks.square, (2,))
    assert isinstance(info.value, PoolTerminatedError)  # code that caught the old error still catches it
    began = time.monotonic()
    pool.terminate()
    assert time.monotonic() - began < 10
