"""A range travels as ranges (chunking.chunk_range): same results, same item indices, deaths named exactly."""
from __future__ import annotations

import math
import sys
import time

import pytest

from mpire_fault import WorkerDiedError, WorkerPool
from mpire_fault._core.chunking import LARGEST_DEFAULT_CHUNK, chunk_range, plan_chunks

from . import tasks


@pytest.mark.parametrize("numbers", [range(0), range(1), range(10), range(5, 100, 7), range(100, 0, -3),
                                     range(-50, 50)])
@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_chunks_of_a_range_cover_it_in_order(numbers, chunk_size):
    chunks = list(chunk_range(numbers, chunk_size, None))
    assert [first for first, _ in chunks] == list(range(0, len(numbers), chunk_size))
    assert [x for _, chunk in chunks for x in chunk] == list(numbers)
    assert all(type(chunk) is range and len(chunk) <= chunk_size for _, chunk in chunks)


def test_iterable_len_cuts_a_range_short():
    assert [x for _, c in chunk_range(range(100), 7, 20) for x in c] == list(range(20))
    assert [x for _, c in chunk_range(range(5), 7, 20) for x in c] == list(range(5))


def test_maps_over_ranges_give_what_python_gives(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        assert pool.map(tasks.square, range(5, 100, 7)) == [x * x for x in range(5, 100, 7)]
        assert pool.map(tasks.square, range(100, 0, -3), chunk_size=4) == [x * x for x in range(100, 0, -3)]
        assert pool.map(tasks.square, range(1000), iterable_len=10) == [x * x for x in range(10)]
        assert pool.map(tasks.square, 6) == [x * x for x in range(6)]  # MPIRE: an int n is range(n)
        assert sorted(pool.imap_unordered(tasks.square, range(50), chunk_size=3)) == [x * x for x in range(50)]
        assert pool.map(tasks.square, range(0)) == []


def test_a_death_mid_batch_names_its_exact_item():
    """Item 37 sits in a batch of fast items (run_batches grows batches to 32 by then): the store per item names it."""
    with WorkerPool(2, start_method="fork") as pool:
        with pytest.raises(WorkerDiedError) as raised:
            pool.map(tasks.sigkill_at, range(200), chunk_size=100)
        assert raised.value.task.startswith("map item 37 "), raised.value.task
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
def test_the_first_result_of_a_huge_range_with_default_chunking_comes_at_once(method):
    """Default chunks are bounded (LARGEST_DEFAULT_CHUNK): the first chunk is not an eighth of 10**30 items."""
    with WorkerPool(2, start_method="fork") as pool:
        started = time.monotonic()
        results = getattr(pool, method)(tasks.square, range(int(1e30)))
        first = next(results)
        assert time.monotonic() - started < 10
        results.close()
    assert first == 0 if method == "imap" else math.isqrt(first) ** 2 == first


def test_default_chunks_are_bounded_but_given_sizes_are_not():
    """Only the default chunking is bounded: chunk_size, n_splits and a numpy array's rows are the caller's."""
    huge = range(10**30)
    for options, largest in [({}, LARGEST_DEFAULT_CHUNK), ({"chunk_size": 10**6}, 10**6),
                             ({"n_splits": 8}, sys.maxsize)]:
        chunks, *_ = plan_chunks(huge, 2, options.get("chunk_size"), options.get("n_splits"), None,
                                 None if options else LARGEST_DEFAULT_CHUNK)
        assert len(next(chunks)[1]) == largest
    assert plan_chunks(range(100), 2, None, 8, None, LARGEST_DEFAULT_CHUNK)[1] == 12.5  # small inputs: as before
