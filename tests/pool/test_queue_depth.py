"""How deep a worker's queue gets: deep for tiny tasks, none for slow or unseen ones (Dispatcher.has_room)."""
from __future__ import annotations

import time
from collections import deque
from types import SimpleNamespace

import pytest

from mpire_fault import WorkerPool
from mpire_fault._engine.dispatch import PREFETCH_MAX, QUEUE_BUDGET, Dispatcher

from . import tasks


def _dispatcher(durations: dict[str, float]) -> Dispatcher:
    dispatcher = Dispatcher.__new__(Dispatcher)
    dispatcher.state = SimpleNamespace(durations=durations)
    return dispatcher


def _slot(func_name: str, n: int):
    job = SimpleNamespace(func_name=func_name)
    return SimpleNamespace(ledger=deque(SimpleNamespace(job=job) for _ in range(n)))


def _depth(dispatcher: Dispatcher, func_name: str) -> int:
    slot = _slot(func_name, 0)
    while dispatcher.has_room(slot):
        slot.ledger.append(SimpleNamespace(job=SimpleNamespace(func_name=func_name)))
        assert len(slot.ledger) <= PREFETCH_MAX
    return len(slot.ledger)


def test_tiny_tasks_fill_the_queue_up_to_its_cap():
    assert _depth(_dispatcher({"tiny": 50e-6}), "tiny") == PREFETCH_MAX


def test_the_expected_wait_bounds_the_depth():
    mean = QUEUE_BUDGET / 4.5  # four tasks ahead wait 4 * mean < budget; five would not
    assert _depth(_dispatcher({"medium": mean}), "medium") == 5


def test_slow_and_unseen_functions_never_wait_behind_another_task():
    assert _depth(_dispatcher({"slow": QUEUE_BUDGET * 2}), "slow") == 1
    assert _depth(_dispatcher({}), "unseen") == 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("keep_alive", [False, True])
def test_every_worker_gets_work_in_every_call(keep_alive):
    """A call's first chunks never wait in a pipe: queue depth is learned per call, so workers that
    start late still get chunks (each worker's first item waits at a barrier for all the others)."""
    import multiprocessing

    n_jobs, rounds = 3, 6
    barrier, counter = multiprocessing.Barrier(n_jobs), multiprocessing.Value("i", 0)
    with WorkerPool(n_jobs, shared_objects=(barrier, counter), use_worker_state=True, keep_alive=keep_alive,
                    start_method="fork") as pool:
        for _ in range(rounds if not keep_alive else 1):
            assert pool.map(tasks.meet_once, range(13)) == [x * 2 for x in range(13)]
            barrier.reset()
    assert counter.value == n_jobs * (rounds if not keep_alive else 1)


@pytest.mark.timeout(120)
def test_a_function_fast_in_one_call_and_slow_in_the_next_is_spread():
    with WorkerPool(4, start_method="fork") as pool:
        pool.map(tasks.nap_pid, [0.0] * 64)  # the function looks tiny here
        began = time.monotonic()
        pids = pool.map(tasks.nap_pid, [0.25] * 16, chunk_size=1)
        spent = time.monotonic() - began
    assert max(pids.count(pid) for pid in set(pids)) <= 6  # 4 each when all start together; before: 10 to 12
    assert spent < 3.0  # 1 s of naps per worker; 16 behind one worker would take 4 s
