"""The pool's chunks against MPIRE 2.10.2's: float ``chunk_size``, ``n_splits``, unknown and wrong lengths, huge ranges.

MPIRE's pool cuts ``chunk_tasks(items, n_tasks, chunk_size, n_splits)``
with ``n_tasks`` from ``iterable_len`` or ``len()``; ``chunking.plan_chunks``
must give the same chunk lengths. One difference is deliberate: without
``chunk_size`` and ``n_splits`` we make ``n_jobs * 4`` chunks (MPIRE:
``n_jobs * 64``).
"""
from __future__ import annotations

import inspect
import io
import itertools
import math
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mpire_fault.pool
from mpire_fault import WorkerPool
from mpire_fault._core.chunking import chunk_lengths, default_splits, plan_chunks

from . import tasks

mpire = pytest.importorskip("mpire")
mpire_utils = pytest.importorskip("mpire.utils")
try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy comes with the test extra
    np = None

pytestmark = pytest.mark.timeout(60)

UNKNOWN = "Failed to obtain length of iterable"


def _ours(args: Any, n_jobs: int = 2, chunk_size: float | None = None, n_splits: int | None = None,
          iterable_len: int | None = None) -> list[list]:
    chunks, _, _, _ = plan_chunks(args, n_jobs, chunk_size, n_splits, iterable_len)
    return [list(items) for _, items in chunks]


def _mpires(items: list, chunk_size: float | None = None, n_splits: int | None = None,
            iterable_len: int | None = None) -> list[list]:
    """The chunks MPIRE's pool makes of ``items`` (its map gives chunk_tasks the number of tasks)."""
    n_tasks = iterable_len if iterable_len is not None else len(items)
    return [list(chunk) for chunk in mpire_utils.chunk_tasks(iter(items), n_tasks, chunk_size, n_splits)]


def _generator(n: int) -> Iterator[int]:
    yield from range(n)


class Spy:
    """Records the chunk lengths the pool hands out (the chunks are cut in the caller's process)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lengths: list[int] = []
        self.kinds: set[type] = set()
        monkeypatch.setattr(mpire_fault.pool, "plan_chunks", self._plan)

    def _plan(self, *args: Any) -> tuple:
        chunks, size, total, rows = plan_chunks(*args)
        return self._record(chunks), size, total, rows

    def _record(self, chunks: Iterator) -> Iterator:
        for first, items in chunks:
            self.lengths.append(len(items))
            self.kinds.add(type(items))
            yield first, items


# ---------------------------------------------------------------- the same chunk lengths as MPIRE
@pytest.mark.parametrize("kind", ["list", "range", "generator"])
@pytest.mark.parametrize("options,expected", [
    ({"chunk_size": 2.5}, [3, 2, 3, 2]),
    ({"chunk_size": 3}, [3, 3, 3, 1]),
    ({"chunk_size": 1.1}, [2, 1, 1, 1, 1, 1, 1, 1, 1]),
    ({"n_splits": 3}, [4, 3, 3]),
    ({"n_splits": 4}, [3, 2, 3, 2]),
    ({"n_splits": 20}, [1] * 10),
])
def test_ten_items_are_chunked_as_mpire_chunks_them(kind, options, expected):
    make = {"list": lambda: list(range(10)), "range": lambda: range(10), "generator": lambda: _generator(10)}[kind]
    iterable_len = 10 if kind == "generator" else None
    ours = _ours(make(), iterable_len=iterable_len, **options)
    assert [len(chunk) for chunk in ours] == expected
    assert ours == _mpires(list(range(10)), **options)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 300), kind=st.sampled_from(["list", "range", "generator"]),
       chunk_size=st.one_of(st.none(), st.integers(1, 40), st.floats(1, 40)),
       n_splits=st.one_of(st.none(), st.integers(1, 60)), shorter=st.one_of(st.none(), st.integers(0, 300)))
def test_any_chunking_matches_mpires(n, kind, chunk_size, n_splits, shorter):
    """Every chunk_size (int or float) and n_splits, with the input's length or a shorter iterable_len."""
    if chunk_size is None and n_splits is None:
        n_splits = 7  # the one deliberate difference (n_jobs * 4 against n_jobs * 64) has its own test
    iterable_len = min(shorter, n) if shorter else (n if kind == "generator" else None)
    make = {"list": lambda: list(range(n)), "range": lambda: range(n), "generator": lambda: _generator(n)}[kind]
    ours = _ours(make(), chunk_size=chunk_size, n_splits=n_splits, iterable_len=iterable_len)
    assert ours == _mpires(list(range(n)), chunk_size, n_splits, iterable_len)


def test_a_float_chunk_size_keeps_a_range_in_ranges_of_alternating_lengths():
    chunks, _, _, _ = plan_chunks(range(100, 0, -3), 2, 2.5, None, None)
    chunks_list = [items for _, items in chunks]
    assert all(type(items) is range for items in chunks_list)
    assert [len(items) for items in chunks_list] == [3, 2] * 6 + [3, 1]
    assert [x for items in chunks_list for x in items] == list(range(100, 0, -3))


@pytest.mark.skipif(np is None, reason="numpy is not installed")
@pytest.mark.parametrize("options", [{}, {"chunk_size": 2.5}, {"chunk_size": 4}, {"n_splits": 3},
                                     {"iterable_len": 13}, {"iterable_len": 50}])
def test_numpy_slices_stay_mpires(options):
    """MPIRE's numpy path: chunk_tasks(array[:iterable_len], n, chunk_size, n_splits or n_jobs * 4)."""
    array = np.arange(20 * 3).reshape(20, 3)
    chunks, _, _, _ = plan_chunks(array, 2, options.get("chunk_size"), options.get("n_splits"),
                                  options.get("iterable_len"))
    ours = [items[0].tolist() for _, items in chunks]
    cut = array[:options["iterable_len"]] if "iterable_len" in options else array
    theirs = [chunk.tolist() for chunk in mpire_utils.chunk_tasks(
        cut, len(cut), options.get("chunk_size"), options.get("n_splits") or 2 * 4)]
    assert ours == theirs


# ---------------------------------------------------------------- through the pool
@pytest.mark.parametrize("options", [{"chunk_size": 2.5}, {"chunk_size": 1.5, "max_tasks_active": 3},
                                     {"n_splits": 3}, {"iterable_len": 7, "chunk_size": 2.5}])
def test_the_pool_hands_out_mpires_chunks_and_the_same_results(monkeypatch, options):
    spy = Spy(monkeypatch)
    with WorkerPool(2, start_method="threading") as pool:
        ours = pool.map(tasks.square, range(10), **options)
        assert sorted(pool.map_unordered(tasks.square, list(range(10)), **options)) == sorted(ours)
    n_items = options.get("iterable_len", 10)
    expected = [len(chunk) for chunk in _mpires(list(range(n_items)), options.get("chunk_size"),
                                                options.get("n_splits"))]
    assert spy.lengths == expected * 2
    assert spy.kinds == {range, list}
    with mpire.WorkerPool(2, start_method="fork") as theirs:
        assert ours == theirs.map(tasks.square, range(10), **options)


def test_chunk_size_takes_ints_and_floats_of_one_or_more():
    with WorkerPool(1, start_method="threading") as pool:
        assert pool.map(tasks.square, range(5), chunk_size=1.0) == [0, 1, 4, 9, 16]
        assert pool.map(tasks.square, range(5), chunk_size=1e300) == [0, 1, 4, 9, 16]  # MPIRE: islice's ValueError
        for bad in (0, 0.5, -2, float("nan"), float("inf"), "3", True):
            with pytest.raises(ValueError, match="chunk_size"):  # MPIRE: ValueError, TypeError for "3"
                pool.map(tasks.square, range(5), chunk_size=bad)
        with pytest.raises(ValueError, match="n_splits"):  # MPIRE: TypeError, n_splits must be an int
            pool.map(tasks.square, range(5), n_splits=2.0)
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


# ---------------------------------------------------------------- unknown length: warn, chunks of 4
@pytest.mark.parametrize("call", ["map", "map_unordered", "imap", "imap_unordered"])
def test_an_unknown_length_warns_at_the_callers_line(call):
    with WorkerPool(2, start_method="threading") as pool:
        with pytest.warns(RuntimeWarning, match=UNKNOWN) as caught:
            line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
            results = getattr(pool, call)(tasks.square, _generator(10))  # imap warns at the call
        assert [(w.filename, w.lineno) for w in caught if UNKNOWN in str(w.message)] == [(__file__, line)]
        assert sorted(results) == [x * x for x in range(10)]


@pytest.mark.parametrize("call", ["map", "map_unordered", "imap", "imap_unordered"])
@pytest.mark.parametrize("options", [{}, {"n_splits": 3}])
def test_an_unknown_length_uses_chunks_of_4(monkeypatch, call, options):
    """MPIRE 2.10.2's code (its docs say otherwise): RuntimeWarning, chunk size 4, also when n_splits is given."""
    spy = Spy(monkeypatch)
    with WorkerPool(2, start_method="threading") as pool:
        with pytest.warns(RuntimeWarning, match=UNKNOWN):
            results = getattr(pool, call)(tasks.square, _generator(10), **options)
        assert sorted(results) == [x * x for x in range(10)]
    assert spy.lengths == [4, 4, 2]


def test_mpire_warns_too():
    with mpire.WorkerPool(2, start_method="fork") as pool:
        with pytest.warns(RuntimeWarning, match=UNKNOWN):  # MPIRE names a line of its own pool.py
            assert pool.map(tasks.square, _generator(10)) == [x * x for x in range(10)]


def test_a_known_length_or_a_chunk_size_does_not_warn(recwarn):
    with WorkerPool(2, start_method="threading") as pool:
        pool.map(tasks.square, _generator(10), iterable_len=10)
        pool.map(tasks.square, _generator(10), chunk_size=3)
        pool.map(tasks.square, range(10))
    assert not [w for w in recwarn if UNKNOWN in str(w.message)]


# ---------------------------------------------------------------- iterable_len and the real length
@pytest.mark.parametrize("make", [list, range, _generator], ids=["list", "range", "generator"])
@pytest.mark.parametrize("pool_class", [WorkerPool, mpire.WorkerPool], ids=["ours", "mpire"])
def test_an_iterable_len_beyond_the_input_raises_and_a_shorter_one_cuts_it(make, pool_class):
    """As MPIRE: ValueError when the input runs out before iterable_len items; the pool goes on."""
    items = make(range(10)) if make is list else make(10)
    with pool_class(2, start_method="fork") as pool:
        with pytest.raises(ValueError):
            pool.map(tasks.square, items, iterable_len=15)
        with pytest.raises(ValueError):
            list(pool.imap(tasks.square, make(range(10)) if make is list else make(10), iterable_len=15,
                           chunk_size=1))
        shorter = make(range(10)) if make is list else make(10)
        assert pool.map(tasks.square, shorter, iterable_len=5) == [0, 1, 4, 9, 16]
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_imap_yields_what_came_in_before_the_short_input_ends():
    with WorkerPool(2, start_method="threading") as pool:
        got: list[int] = []
        with pytest.raises(ValueError, match="iterable_len is 150, but the input ended after 100 items"):
            for value in pool.imap(tasks.square, _generator(100), iterable_len=150, chunk_size=1):
                got.append(value)
        assert got == [x * x for x in range(len(got))]


@pytest.mark.skipif(np is None, reason="numpy is not installed")
def test_numpy_ignores_an_iterable_len_beyond_the_array_as_mpire():
    array = np.arange(10)
    with WorkerPool(2, start_method="threading") as ours, mpire.WorkerPool(2, start_method="fork") as theirs:
        assert (ours.map(len, array, iterable_len=15, concatenate_numpy_output=False)
                == theirs.map(len, array, iterable_len=15, concatenate_numpy_output=False)
                == [2, 1, 1, 1, 2, 1, 1, 1])


# ---------------------------------------------------------------- huge ranges: Python ints, no len()
def test_a_huge_range_is_chunked_without_len():
    huge = range(int(1e30))  # len(huge) raises OverflowError
    chunks, _, total, _ = plan_chunks(huge, 2, 2.5, None, int(1e30))
    assert total == int(1e30)
    assert [list(next(chunks)[1]) for _ in range(3)] == [[0, 1, 2], [3, 4], [5, 6, 7]]
    chunks, _, total, _ = plan_chunks(range(10**400), 2, None, None, None)  # 10**400 / 8 overflows a float
    assert total == 10**400
    first, items = next(chunks)
    assert (first, items) == (0, range(sys.maxsize))  # no chunk longer than len() can count
    assert next(chunks) == (sys.maxsize, range(sys.maxsize, 2 * sys.maxsize))
    chunks, _, _, _ = plan_chunks(range(-(10**30), 10**30, 10**28), 2, None, 3, None)
    assert [len(items) for _, items in chunks] == [len(chunk) for chunk in _mpires(list(range(200)), n_splits=3)]
    assert list(itertools.islice(chunk_lengths(10**400 // 3), 2)) == [10**400 // 3] * 2  # an int size stays exact


@pytest.mark.parametrize("options", [{"chunk_size": 1}, {"chunk_size": 2.5},
                                     {"chunk_size": 1, "iterable_len": int(1e300)},
                                     {"chunk_size": int(1e5), "max_tasks_active": 4 * int(1e5),
                                      "iterable_len": int(1e300)}])
def test_imap_over_a_huge_range_yields_lazily(options):
    """MPIRE's docs (map.rst, max_tasks_active.rst) map over range(int(1e30)) and range(int(1e300))."""
    with WorkerPool(2, start_method="fork") as pool:
        results = pool.imap(tasks.square, range(int(1e300)), **options)
        assert [next(results) for _ in range(5)] == [0, 1, 4, 9, 16]
        results.close()
        assert pool.map(tasks.square, range(int(1e30)), iterable_len=4, chunk_size=1) == [0, 1, 4, 9]
        assert pool.map(tasks.square, 10**30, iterable_len=3) == [0, 1, 4]  # an int n is range(n)


def test_map_over_a_huge_range_with_a_progress_bar_knows_its_total():
    with WorkerPool(2, start_method="threading") as pool:
        assert pool.map(tasks.square, range(int(1e30)), iterable_len=3, progress_bar=True) == [0, 1, 4]


# ---------------------------------------------------------------- the one deliberate difference
@pytest.mark.parametrize("n_jobs", [1, 2, 3])
@pytest.mark.parametrize("n_items", [10, 100, 1000, 12_345])
@pytest.mark.parametrize("kind", ["list", "range"])
def test_the_default_is_n_jobs_times_4_chunks(n_jobs, n_items, kind):
    """MPIRE makes n_jobs * 64 chunks; we make n_jobs * 4 (fewer, larger chunks), spread as MPIRE spreads them."""
    items = list(range(n_items)) if kind == "list" else range(n_items)
    ours = _ours(items, n_jobs=n_jobs)
    assert len(ours) == min(n_items, n_jobs * 4)
    assert ours == _mpires(list(range(n_items)), n_splits=n_jobs * 4)
    assert max(map(len, ours)) == math.ceil(n_items / (n_jobs * 4))


def test_the_pool_makes_n_jobs_times_4_chunks_by_default(monkeypatch):
    spy = Spy(monkeypatch)
    with WorkerPool(3, start_method="threading") as pool:
        assert pool.map(tasks.square, range(1000)) == [x * x for x in range(1000)]
    assert len(spy.lengths) == 12 and sum(spy.lengths) == 1000


def test_a_progress_bar_gets_mpires_default_chunks(monkeypatch):
    """With a bar, 64 chunks per worker as MPIRE (the bar moves per chunk); without, 4 per worker."""
    import tqdm

    updates: list[int] = []
    original = tqdm.tqdm.update

    def counting(self, n=1):
        updates.append(n)
        return original(self, n)

    monkeypatch.setattr(tqdm.tqdm, "update", counting)
    with WorkerPool(2) as pool:
        assert pool.map(tasks.square, range(1000), progress_bar=True,
                        progress_bar_options={"file": io.StringIO()}) == [x * x for x in range(1000)]
    assert len(updates) == 128 and sum(updates) == 1000
    assert default_splits(2, progress_bar=False) == 8 and default_splits(3, progress_bar=True) == 192


def test_iterable_len_zero_reads_nothing_as_in_mpire():
    mpire = pytest.importorskip("mpire")
    consumed: list[int] = []

    def numbers():
        for x in range(10):
            consumed.append(x)
            yield x

    with WorkerPool(2) as ours, mpire.WorkerPool(2) as theirs:
        assert ours.map(tasks.square, range(10), iterable_len=0) == theirs.map(tasks.square, range(10),
                                                                              iterable_len=0) == []
        assert list(ours.imap(tasks.square, numbers(), iterable_len=0)) == []
        assert consumed == []
        with pytest.raises(ValueError, match="iterable_len"):
            ours.map(tasks.square, range(3), iterable_len=-1)
