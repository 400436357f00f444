"""Under fork, a map's function need not pickle (MPIRE's workers inherit it): lambdas, closures, bound methods."""
from __future__ import annotations

import threading

import pytest

from mpire_fault import WorkerDiedError, WorkerPool
from mpire_fault.inherit import _BY_KEY

pytestmark = pytest.mark.timeout(60)


class _Holder:
    """A bound method of an object that will not pickle (it holds a lock)."""

    def __init__(self, factor: int) -> None:
        self.lock = threading.Lock()
        self.factor = factor

    def scale(self, x: int) -> int:
        return x * self.factor


def test_lambdas_closures_and_bound_methods_run_under_fork():
    offset = 10
    with WorkerPool(2, start_method="fork") as pool:
        assert pool.map(lambda x: x + offset, range(6)) == list(range(10, 16))
        assert sorted(pool.imap_unordered(lambda x: x * x, range(5), chunk_size=1)) == [0, 1, 4, 9, 16]
        assert pool.map(_Holder(3).scale, range(4)) == [0, 3, 6, 9]
    assert not _BY_KEY  # each entry lives as long as its call


def test_after_a_death_the_next_call_reaches_the_new_workers():
    """A lambda that kills its worker aborts the call as any map; the workers started after it get the next lambda."""
    with WorkerPool(2, start_method="fork") as pool:
        with pytest.raises(WorkerDiedError):
            pool.map(lambda x: __import__("os")._exit(3) if x == 2 else x, range(4), chunk_size=1)
        assert pool.map(lambda x: -x, range(8), chunk_size=1) == [-x for x in range(8)]


def test_workers_started_before_the_call_say_what_to_do():
    with WorkerPool(2, start_method="fork", keep_alive=True) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]  # the workers start here, before the lambda exists
        with pytest.raises(RuntimeError, match="keep_alive=False, use_dill=True"):
            pool.map(lambda x: x, range(4))
        assert pool.map(abs, [-3]) == [3]  # and the pool goes on


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_other_start_methods_still_refuse_by_pickling(start_method):
    with WorkerPool(1, start_method=start_method) as pool:
        with pytest.raises(Exception, match="pickle") as info:
            pool.map(lambda x: x, range(2))
        assert "task-args" in getattr(info.value, "__notes__", [])
