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
from mpire_fault._engine.child.runners import run_batches
from mpire_fault._engine.wire.protocol import (
    BATCH,
    CANCEL_SLOTS,
    ITEM,
    MAX_BATCH,
    NOT_BATCHED,
    PROGRESS_FIELDS,
    flag_offset,
    running_item,
)

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


# ---------------------------------------------------------------- the flags, in-process
def _fields(n_workers: int = 2):
    progress = multiprocessing.RawArray("d", n_workers * PROGRESS_FIELDS)
    view = memoryview(progress).cast("B").cast("d")
    flags = memoryview(progress).cast("B")
    return progress, view, flags


def _positions(base: int) -> tuple[list[int], list[int]]:
    first, second = (list(range(flag_offset(base, a), flag_offset(base, a) + MAX_BATCH)) for a in (0, 1))
    return first, second


@pytest.mark.parametrize("n", [1, 2, 3, 4095, 4096, 4097, 12_500])
@pytest.mark.parametrize("worker", [0, 1])
def test_every_item_reads_as_running_while_it_runs(n, worker):
    """Inside the function, the fields a death would leave name exactly the item being run."""
    progress, view, flags = _fields()
    base = worker * PROGRESS_FIELDS
    view[base + BATCH] = NOT_BATCHED
    seen: list[int] = []

    def probe(x):
        seen.append(running_item(progress, base))
        return x

    results: list = []
    first = 1000
    outcome = run_batches(probe, range(first, first + n), first, 7, 0, results, view, flags, _positions(base),
                          base, [0] * CANCEL_SLOTS)
    assert outcome is None
    assert seen == list(range(first, first + n))
    assert running_item(progress, base) == first + n - 1  # after the chunk: its last item
    other = (1 - worker) * PROGRESS_FIELDS
    assert progress[other + ITEM] == 0.0 and progress[other + BATCH] == 0.0  # the other worker's fields untouched


def test_an_exception_leaves_its_item_and_batch_mode_off():
    progress, view, flags = _fields()
    view[BATCH] = NOT_BATCHED

    def fail_at(x):
        if x == 5000:
            raise ValueError(x)
        return x

    results: list = []
    outcome = run_batches(fail_at, range(10_000), 0, 7, 0, results, view, flags, _positions(0), 0, [0] * CANCEL_SLOTS)
    assert isinstance(outcome, ValueError) and len(results) == 5000
    assert progress[BATCH] == NOT_BATCHED and running_item(progress, 0) == 5000


def test_a_system_exit_names_its_item_before_it_ends_the_worker():
    progress, view, flags = _fields()
    view[BATCH] = NOT_BATCHED

    def leave_at(x):
        if x == 77:
            raise SystemExit(3)
        return x

    with pytest.raises(SystemExit):
        run_batches(leave_at, range(200), 0, 7, 0, [], view, flags, _positions(0), 0, [0] * CANCEL_SLOTS)
    assert running_item(progress, 0) == 77


def test_between_batches_the_last_started_item_is_read():
    """The switch to a fresh flag area is one store: before it the old area, after it one before the new batch."""
    progress, view, flags = _fields()
    first_area, second_area = _positions(0)
    for at in first_area[:8]:
        flags[at] = 1  # a batch of 8 from item 40, all started
    view[BATCH] = 2 * 40 + 0
    assert running_item(progress, 0) == 47
    flags[second_area[0]:second_area[0] + 17] = bytes(17)  # the next area cleared: nothing changes
    assert running_item(progress, 0) == 47
    view[BATCH] = 2 * 48 + 1  # switched: no item of the new batch started yet
    assert running_item(progress, 0) == 47
    flags[second_area[0]] = 1
    assert running_item(progress, 0) == 48
