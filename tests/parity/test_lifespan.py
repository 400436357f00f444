"""worker_lifespan and get_exit_results() as in MPIRE 2.10.2: items counted, one exit value per worker life.

The expected values are MPIRE 2.10.2's own, measured by running the same
calls on it (its worker adds ``len(results)`` per chunk and restarts after the
chunk that reaches the lifespan; its exit results hold one value per worker
life that ran a task, kept until the workers are started again).
"""
from __future__ import annotations

import collections

import pytest

from mpire_fault import WorkerPool
from mpire_fault.start_methods import START_METHODS

from . import tasks

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=START_METHODS)
def start_method(request) -> str:
    return request.param


def _lives(pool: WorkerPool, n_items: int, chunk_size: int, lifespan: int) -> list[int]:
    """How many items each worker life ran, sorted."""
    tokens = pool.map(tasks.life_token, range(n_items), chunk_size=chunk_size, worker_lifespan=lifespan)
    return sorted(collections.Counter(tokens).values())


# ---------------------------------------------------------------- counting items
def _check_lives(lives: list[int], full: int, total: int, n_jobs: int) -> None:
    """Every life ran ``full`` items, but at most one per worker that the end of the call cut short."""
    assert sum(lives) == total, lives
    short = [n for n in lives if n != full]
    assert len(short) <= n_jobs and all(n < full for n in short), lives


@pytest.mark.parametrize(("chunk_size", "lifespan", "full"), [
    (3, 3, 3),  # MPIRE: 20 lives of one chunk each
    (3, 2, 3),  # the chunk that passes the lifespan still runs whole, then the worker goes
    (3, 4, 6),  # MPIRE: 10 lives of two chunks each
    (1, 4, 4),
])
def test_lifespan_counts_items_not_chunks(start_method, chunk_size, lifespan, full):
    with WorkerPool(2, start_method=start_method, use_worker_state=True) as pool:
        _check_lives(_lives(pool, 60, chunk_size, lifespan), full, 60, 2)
        assert pool.statistics()["deaths"] == ()  # retirement is not a death


def test_numpy_chunk_is_one_item():
    """MPIRE passes a numpy chunk whole: one call, one result, one item of the lifespan."""
    numpy = pytest.importorskip("numpy")
    with WorkerPool(2, use_worker_state=True) as pool:
        tokens = pool.map(tasks.life_token, numpy.arange(20).reshape(10, 2), chunk_size=2, worker_lifespan=2,
                          concatenate_numpy_output=False)
    _check_lives(sorted(collections.Counter(tokens).values()), 2, 5, 2)  # a chunk of two rows is one item
