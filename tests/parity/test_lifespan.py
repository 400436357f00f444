"""worker_lifespan and get_exit_results() as in MPIRE 2.10.2: items counted, one exit value per worker life.

The expected values are MPIRE 2.10.2's own, measured by running the same
calls on it (its worker adds ``len(results)`` per chunk and restarts after the
chunk that reaches the lifespan; its exit results hold one value per worker
life that ran a task, kept until the workers are started again).
"""
from __future__ import annotations

import collections
import functools
import os

import pytest

from mpire_fault import WorkerExitError, WorkerPool
from mpire_fault._core.start_methods import START_METHODS

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
# ---------------------------------------------------------------- exit values per life
_EXITS: dict[str, functools.partial] = {}


def _summing_map(pool: WorkerPool, marker_dir: str, n_items: int, lifespan: int) -> list:
    # One worker_exit object per directory: a new partial would be new hooks (and a RuntimeWarning, as MPIRE).
    worker_exit = _EXITS.setdefault(marker_dir, functools.partial(tasks.report_sum, marker_dir))
    pool.map(tasks.add_to_sum, range(n_items), chunk_size=1, worker_lifespan=lifespan, worker_init=tasks.start_sum,
             worker_exit=worker_exit)
    return pool.get_exit_results()


def _exits_run(marker_dir: str) -> int:
    return len(os.listdir(marker_dir))


def test_every_retired_life_reports_its_exit_value(start_method, tmp_path):
    with WorkerPool(3, start_method=start_method, use_worker_state=True) as pool:
        values = _summing_map(pool, str(tmp_path), 10, 1)
    assert sorted(values) == list(range(10))  # MPIRE: 10 values, one item each
    assert _exits_run(str(tmp_path)) == 10  # and worker_exit ran once per life that ran a task


@pytest.mark.parametrize(("n_items", "values"), [
    (10, [3, 12, 21, 9]),
    (9, [3, 12, 21]),  # the fourth life ran no task: MPIRE runs no worker_exit for it
])
def test_exit_values_come_in_life_order(start_method, tmp_path, n_items, values):
    with WorkerPool(1, start_method=start_method, use_worker_state=True) as pool:
        assert _summing_map(pool, str(tmp_path), n_items, 3) == values
    assert _exits_run(str(tmp_path)) == len(values)


def test_each_call_starts_a_fresh_list_without_keep_alive(start_method, tmp_path):
    with WorkerPool(1, start_method=start_method, use_worker_state=True) as pool:
        assert _summing_map(pool, str(tmp_path), 4, 3) == [3, 3]
        assert _summing_map(pool, str(tmp_path), 4, 3) == [3, 3]
        assert pool.get_exit_results() == [3, 3]  # kept until the workers start again


def test_keep_alive_collects_exit_values_across_calls(start_method, tmp_path):
    """MPIRE: [3] after the first call, [3, 4] after the second, [3, 4, 5] once the workers stop."""
    with WorkerPool(1, start_method=start_method, use_worker_state=True, keep_alive=True) as pool:
        assert _summing_map(pool, str(tmp_path), 4, 3) == [3]
        assert _summing_map(pool, str(tmp_path), 4, 3) == [3, 4]
        pool.stop_and_join()
        assert pool.get_exit_results() == [3, 4, 5]
    assert _exits_run(str(tmp_path)) == 3


def test_keep_alive_call_returns_after_its_retired_workers_reported(start_method, tmp_path):
    """Every life that retired during the call has reported when the call returns, with several workers too."""
    with WorkerPool(3, start_method=start_method, use_worker_state=True, keep_alive=True) as pool:
        values = _summing_map(pool, str(tmp_path), 10, 1)
        assert sorted(values) == list(range(10))
        pool.stop_and_join()  # the replacements ran no task: no worker_exit, no value (MPIRE: still 10)
        assert sorted(pool.get_exit_results()) == list(range(10))
    assert _exits_run(str(tmp_path)) == 10


def test_keep_alive_hook_change_keeps_the_worker_and_runs_the_new_exit(start_method, tmp_path):
    """As MPIRE: a new worker_exit on a keep_alive pool reaches the live worker, which goes on summing.

    The old worker_exit never runs (no marker), the lifespan of the first call
    no longer applies, and the one value is the new worker_exit's: MPIRE's [("tagged", 12)].
    """
    with WorkerPool(1, start_method=start_method, use_worker_state=True, keep_alive=True) as pool:
        assert _summing_map(pool, str(tmp_path), 4, 10) == []  # no worker has stopped yet
        with pytest.warns(RuntimeWarning, match="keep_alive"):
            pool.map(tasks.add_to_sum, range(4), chunk_size=1, worker_init=tasks.start_sum,
                     worker_exit=tasks.report_tagged_sum)
        assert pool.get_exit_results() == []
        pool.stop_and_join()
        assert pool.get_exit_results() == [("tagged", 12)]
    assert _exits_run(str(tmp_path)) == 0


def test_a_retired_lifes_worker_exit_error_fails_the_call(start_method):
    """MPIRE raises worker_exit's error from the call whose worker retired, keep_alive or not."""
    with WorkerPool(1, start_method=start_method, keep_alive=True) as pool:
        with pytest.raises(ValueError, match="exit says no") as info:
            pool.map(tasks.square, range(3), chunk_size=1, worker_lifespan=3, worker_exit=tasks.refuse_exit)
        assert isinstance(info.value, WorkerExitError)
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]  # reported once, and the pool goes on
