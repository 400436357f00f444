"""A worker's pipes hold a whole map chunk, and a pool's pipes stay within a share of the user's pipe budget."""
from __future__ import annotations

import fcntl

import pytest

from mpire_fault import WorkerPool
from mpire_fault._engine.slots import pipe_size

from . import tasks

pytestmark = pytest.mark.timeout(60)


def test_small_pools_get_a_megabyte_and_big_ones_share_sixteen():
    assert pipe_size(1) == pipe_size(8) == 1 << 20
    assert pipe_size(64) == 128 << 10
    assert pipe_size(128) == 64 << 10  # the kernel's default: never asked to shrink
    assert all(2 * n * pipe_size(n) <= 16 << 20 or pipe_size(n) == 64 << 10 for n in range(1, 1000))


def test_the_pipes_of_a_live_pool_are_widened():
    with WorkerPool(2, keep_alive=True) as pool:
        assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]
        for slot in pool._supervisor.slots:
            assert fcntl.fcntl(slot.task_fd, fcntl.F_GETPIPE_SZ) >= 1 << 20
            assert fcntl.fcntl(slot.result_conn.fileno(), fcntl.F_GETPIPE_SZ) >= 1 << 20
