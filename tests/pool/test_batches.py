"""Plain map chunks run in C-level batches (issue 12): the guarantees must not notice.

A death still names its exact item, an exception still comes from its own
item, and an aborted call starts no item more than a bounded time after the
abort: batches grow only while a batch takes under 1 ms, so the bound is about
two batch-times of work; CANCEL_BOUND below gives it CI headroom.
"""
from __future__ import annotations

import multiprocessing
import time

import pytest

from mpire_fault import WorkerDiedError, WorkerPool

from . import tasks

CANCEL_BOUND = 0.25  # seconds; the design bound is ~2 ms of work, the rest is a loaded CI machine

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("doomed", [0, 1, 777, 4095, 9999])
def test_a_death_among_fast_items_names_the_exact_item(start_method, doomed):
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(WorkerDiedError) as info:
            pool.map(tasks.die_on, [(x, doomed) for x in range(10_000)])
        assert f"map item {doomed} " in info.value.task
        assert pool.map(tasks.square, range(5)) == [0, 1, 4, 9, 16]


def test_an_exception_among_fast_items_fails_the_call_at_its_item(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(ValueError):
            pool.map(tasks.raise_on, [(x, 4321) for x in range(10_000)])
        assert pool.map(tasks.square, range(5)) == [0, 1, 4, 9, 16]


def test_no_item_of_a_closed_imap_starts_after_the_bound():
    n, per_item = 4000, 0.0002
    starts = multiprocessing.RawArray("d", n)
    with WorkerPool(2, shared_objects=starts) as pool:
        results = pool.imap(tasks.stamped_spin, [(i, per_item) for i in range(n)], chunk_size=500)
        next(results)
        results.close()  # the running chunks are not killed; their remaining items must not start
        closed = time.monotonic()
        time.sleep(0.5)
        late = [i for i in range(n) if starts[i] > closed + CANCEL_BOUND]
        started = sum(1 for i in range(n) if starts[i] > 0)
    assert not late, f"{len(late)} items started more than {CANCEL_BOUND}s after the call was closed"
    assert started < n  # the call really was cut short
