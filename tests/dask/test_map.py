"""map family on Dask: a death or an exception aborts the call promptly; the next call works."""
from __future__ import annotations

import io
import time

import pytest

pytest.importorskip("distributed")

import dask_tasks as tasks  # noqa: E402  (tests/dask is not a package: a package named "dask" would shadow the real one)

from mpire_fault import TaskTimeoutError, WorkerDiedError  # noqa: E402
from mpire_fault.dask_backend import DaskPool  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def test_map_in_order_and_unordered(dask_client):
    pool = DaskPool(address=dask_client)
    assert pool.map(tasks.square, range(50)) == [x * x for x in range(50)]
    assert sorted(pool.map_unordered(tasks.square, range(50))) == sorted(x * x for x in range(50))
    assert list(pool.imap(tasks.square, range(7), chunk_size=2)) == [x * x for x in range(7)]
    assert sorted(pool.imap_unordered(tasks.square, 7)) == sorted(x * x for x in range(7))
    assert pool.map(tasks.square, [(3,), (4,)]) == [9, 16]
    assert pool.map(tasks.square, [{"x": 5}]) == [25]


def test_a_numpy_array_is_cut_into_slices_as_the_local_pool_cuts_it(dask_client):
    """MPIRE's rule, on both backends: each chunk is a slice of rows passed whole (it was row by row on Dask)."""
    numpy = pytest.importorskip("numpy")
    from mpire_fault import WorkerPool

    array = numpy.arange(14, dtype=numpy.int64).reshape(7, 2)
    with WorkerPool(2, start_method="threading") as local:
        expected = local.map(tasks.shape_of, array, chunk_size=3)
    assert expected == [(3, 2), (3, 2), (1, 2)]
    assert DaskPool(address=dask_client).map(tasks.shape_of, array, chunk_size=3) == expected
    assert DaskPool(address=dask_client).map(tasks.shape_of, array, n_splits=2) == [(4, 2), (3, 2)]


def test_default_chunks_of_a_huge_range_are_bounded(dask_client):
    """range(int(1e30)) with default chunking: the first results come at once (unbounded, the first chunk
    alone would be a list of sys.maxsize items), and stopping early ends the call."""
    pool = DaskPool(address=dask_client)
    began = time.monotonic()
    results = pool.imap(tasks.square, range(int(1e30)))
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    results.close()
    assert time.monotonic() - began < 20
    assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_death_aborts_the_map_then_the_next_map_works(dask_client, markers):
    pool = DaskPool(address=dask_client)
    items = [(markers, i, 4) for i in range(40)]
    began = time.monotonic()
    with pytest.raises(WorkerDiedError) as info:
        pool.map(tasks.map_item, items, chunk_size=1)
    elapsed = time.monotonic() - began
    assert elapsed < 8, f"the abort took {elapsed:.1f}s"  # the 40 items alone would take ~6s
    assert info.value.exitcode == -9
    assert "map item 4 " in str(info.value)  # a chunk of one item names it as the local pool does
    assert "tcp://127.0.0.1:" in str(info.value)
    assert tasks.runs(markers, "item4") == 1
    started = sum(tasks.runs(markers, f"item{i}") for i in range(40))
    assert started < 40, "the aborted call went on starting items"
    assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]


def test_exception_aborts_the_map(dask_client, markers):
    pool = DaskPool(address=dask_client)
    with pytest.raises(ValueError, match="item 3 raised"):
        pool.map(tasks.map_item, [(markers, i, -1, 3) for i in range(30)], chunk_size=1)
    assert pool.map(tasks.square, range(5)) == [0, 1, 4, 9, 16]


def test_an_error_stops_the_call_on_its_worker_at_once(markers):
    """The worker that ran the failing item starts nothing more of the call, without waiting for the
    client's abort (one worker, one thread: every item queues there behind the error)."""
    with DaskPool(1) as pool:
        with pytest.raises(ValueError, match="item 0 raised"):
            pool.map(tasks.map_item, [(markers, i, -1, 0) for i in range(10)], chunk_size=1)
        assert [tasks.runs(markers, f"item{i}") for i in range(10)] == [1] + [0] * 9
        assert pool.statistics()["tasks_failed"] == 1
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_an_error_stops_the_items_beside_it_and_is_the_calls_error(markers):
    """On a worker with two threads the failing item's sibling is stopped there and then; the call raises
    the item's own error, not the sibling's 'stopped'."""
    import logging

    import distributed

    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0",
                                       silence_logs=logging.CRITICAL)
    try:
        with distributed.Client(cluster, set_as_default=False) as client:
            pool = DaskPool(address=client)
            for _ in range(3):
                began = time.monotonic()
                with pytest.raises(ValueError, match="item 1 raised"):
                    pool.map(tasks.spin_or_raise, [(markers, 0), (markers, 1)], chunk_size=1)
                assert time.monotonic() - began < 5
            deadline = time.monotonic() + 5  # the stopped sibling leaves its marker as it unwinds
            while tasks.runs(markers, "finally") < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert tasks.runs(markers, "finally") == 3
    finally:
        cluster.close()


def test_imap_yields_until_the_death(dask_client, markers):
    pool = DaskPool(address=dask_client)
    got = []
    with pytest.raises(WorkerDiedError):
        for value in pool.imap(tasks.map_item, [(markers, i, 6) for i in range(20)], chunk_size=1):
            got.append(value)
    assert got == list(range(len(got))) and len(got) <= 6


def test_map_timeout(dask_client, markers):
    pool = DaskPool(address=dask_client)
    with pytest.raises(TaskTimeoutError):
        pool.map(tasks.spin_forever, [markers] * 3, task_timeout=0.5)
    assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_progress_bar(dask_client, capsys):
    pool = DaskPool(address=dask_client)
    assert pool.map(tasks.square, range(20), progress_bar=True) == [x * x for x in range(20)]
    assert "20/20" in capsys.readouterr().err


def test_progress_bar_options_follow_mpires_rules(dask_client):
    pool = DaskPool(address=dask_client)
    out = io.StringIO()
    with pytest.warns(RuntimeWarning, match="'total'"):
        pool.map(tasks.square, range(6), progress_bar=True, progress_bar_options={"total": 99, "file": out})
    assert "6/6" in out.getvalue()
    with pytest.raises(TypeError, match="should be a dictionary"):
        pool.map(tasks.square, range(6), progress_bar_options="desc")


def test_map_arguments_read_as_workerpool_reads_them(dask_client):
    """The same checks and forms as WorkerPool's map: iterable_len=0 reads nothing, bad numbers are named."""
    pool = DaskPool(address=dask_client)
    assert pool.map(tasks.square, range(5), iterable_len=0) == []
    assert pool.map(tasks.square, range(5), iterable_len=2) == [0, 1]
    for keyword, value in (("n_splits", -1), ("max_tasks_active", 0), ("iterable_len", 1.5)):
        with pytest.raises(ValueError, match=keyword):
            pool.map(tasks.square, range(5), **{keyword: value})
    with pytest.raises(ValueError, match="task_timeout"):
        pool.map(tasks.square, range(5), task_timeout=-1)
