"""A map's function reaches each worker once per call, as in MPIRE.

Under fork the workers started for the call inherit it, so it need not pickle
(lambdas, closures, bound methods) and it is the very object worker_init and
worker_exit see; workers already running get it pickled once per call. State
kept on a bound method's instance so lasts the call in each worker.
"""
from __future__ import annotations

import threading

import pytest

from mpire_fault import WorkerDiedError, WorkerPool
from mpire_fault._engine.wire.inherit import _BY_KEY

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


class _Counter:
    """State on the instance: how many items this copy of the object has seen."""

    pickled = 0  # in the parent: how often an instance was pickled

    def __init__(self) -> None:
        self.n = 0
        self.model: str | None = None

    def __getstate__(self) -> dict:
        _Counter.pickled += 1
        return self.__dict__

    def add(self, x: int) -> int:
        self.n += 1
        return self.n

    def report(self) -> int:
        return self.n

    def load(self) -> None:
        self.model = "loaded"

    def predict(self, x: int) -> str:
        return f"{self.model}:{x}"


def test_a_bound_method_keeps_its_state_for_the_call_and_shares_it_with_the_hooks():
    counter = _Counter()
    _Counter.pickled = 0
    with WorkerPool(2, start_method="fork") as pool:
        counts = pool.map(counter.add, range(20), chunk_size=2, worker_exit=counter.report)
        # 20 items on 2 workers: one worker saw at least 10, counted on one object across its chunks
        assert max(counts) >= 10
        assert sum(pool.get_exit_results()) == 20  # worker_exit reads the same object the task wrote
        service = _Counter()
        assert pool.map(service.predict, range(4), worker_init=service.load) == [f"loaded:{x}" for x in range(4)]
    assert _Counter.pickled == 0  # workers forked for the call inherit the function: nothing was pickled
    assert counter.n == 0  # the parent's object is untouched


def test_workers_already_running_get_the_function_pickled_once_per_call():
    with WorkerPool(2, start_method="fork", keep_alive=True) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]  # the workers start here
        for _ in range(2):
            _Counter.pickled = 0
            counts = pool.map(_Counter().add, range(20), chunk_size=2)
            assert max(counts) >= 10  # unpickled once per worker, kept for the call's other chunks
            assert _Counter.pickled == 1  # once for the call, not once per chunk
            assert min(counts) == 1  # each call starts from its own, fresh object
    assert not _BY_KEY


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_other_start_methods_unpickle_the_function_once_per_worker_and_call(start_method):
    """As MPIRE's map parameters: the function and the hooks arrive in one pickle, so they share objects."""
    counter, service = _Counter(), _Counter()
    with WorkerPool(2, start_method=start_method) as pool:
        counts = pool.map(counter.add, range(20), chunk_size=2, worker_exit=counter.report)
        assert max(counts) >= 10 and counts.count(1) <= 2
        assert sum(pool.get_exit_results()) == 20
        assert pool.map(service.predict, range(4), worker_init=service.load) == [f"loaded:{x}" for x in range(4)]


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_other_start_methods_still_refuse_by_pickling(start_method):
    with WorkerPool(1, start_method=start_method) as pool:
        with pytest.raises(Exception, match="pickle") as info:
            pool.map(lambda x: x, range(2))
        assert "task-args" in getattr(info.value, "__notes__", [])
