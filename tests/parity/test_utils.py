"""``mpire_fault.utils`` against ``mpire.utils`` (2.10.2): the same chunks, the same errors, the same reads.

Also the import paths MPIRE code uses: ``cpu_count`` from the package,
``mpire_fault.utils`` and ``mpire_fault.async_result``.
"""
from __future__ import annotations

import inspect
import itertools
import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mpire_fault
from mpire_fault import WorkerPool
from mpire_fault.utils import chunk_tasks, make_single_arguments

mpire_utils = pytest.importorskip("mpire.utils")
try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy comes with the test extra
    np = None

needs_numpy = pytest.mark.skipif(np is None, reason="numpy is not installed")


def _plain(chunks: list) -> list:
    """Chunks in a comparable form: numpy slices become (type, dtype, shape, rows); tuples stay as they are."""
    if np is not None:
        return [(type(c), c.dtype, c.shape, c.tolist()) if isinstance(c, np.ndarray) else c for c in chunks]
    return chunks


def _outcome(func: Callable, make_input: Callable[[], Any], **kwargs: Any) -> tuple:
    """``("ok", chunks, what is left of the input)`` or ``("error", exception type)``."""
    source = make_input()
    try:
        chunks = _plain(list(func(source, **kwargs)))
    except Exception as error:  # noqa: BLE001 - the type is what is compared
        return "error", type(error)
    left = list(source) if isinstance(source, Iterator) else None
    return "ok", chunks, left


def _same(make_input: Callable[[], Any], **kwargs: Any) -> tuple:
    ours = _outcome(chunk_tasks, make_input, **kwargs)
    theirs = _outcome(mpire_utils.chunk_tasks, make_input, **kwargs)
    assert ours == theirs, f"chunk_tasks(..., {kwargs}): ours {ours} != MPIRE's {theirs}"
    return ours


INPUTS: dict[str, Callable[[int], Callable[[], Any]]] = {
    "list": lambda n: lambda: list(range(n)),
    "tuple of tuples": lambda n: lambda: tuple((i, -i) for i in range(n)),
    "range": lambda n: lambda: range(n),
    "generator": lambda n: lambda: (i * 10 for i in range(n)),
    "string": lambda n: lambda: "abcdefghijklmnopqrstuvwxyz"[:n],
    "dict": lambda n: lambda: {f"k{i}": i for i in range(n)},
}
if np is not None:
    INPUTS["ndarray 1-d"] = lambda n: lambda: np.arange(n, dtype=np.int32)
    INPUTS["ndarray 2-d"] = lambda n: lambda: np.arange(n * 3, dtype=float).reshape(n, 3)
    INPUTS["ndarray of zeros"] = lambda n: lambda: np.zeros((n, 2))

SIZES = [0, 1, 2, 5, 10, 17]
CHUNK_SIZES = [1, 2, 3, 2.5, 0.3, 1.7, 4, 100]
N_SPLITS = [1, 2, 3, 4, 7, 20]


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_chunk_size_gives_mpires_chunks(kind, n, chunk_size):
    _same(INPUTS[kind](n), chunk_size=chunk_size)


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("n_splits", N_SPLITS)
def test_n_splits_gives_mpires_chunks(kind, n, n_splits):
    iterable_len = n if kind == "generator" else None
    _same(INPUTS[kind](n), n_splits=n_splits, iterable_len=iterable_len)


@pytest.mark.parametrize("kind", ["list", "range", "generator", "string", "dict", "tuple of tuples"])
@pytest.mark.parametrize("iterable_len", [0, 1, 4, 5, 9, 10, 11, 30])
@pytest.mark.parametrize("split", [{"chunk_size": 3}, {"chunk_size": 2.5}, {"n_splits": 3}, {"n_splits": 1},
                                   {"chunk_size": 4, "n_splits": 2}])
def test_iterable_len_shorter_or_longer_than_the_input(kind, iterable_len, split):
    """Ten items, ``iterable_len`` from 0 to 30: same chunks, and a generator is left at the same item."""
    _same(INPUTS[kind](10), iterable_len=iterable_len, **split)


@needs_numpy
@pytest.mark.parametrize("iterable_len", [10, 11, 30])
@pytest.mark.parametrize("split", [{"chunk_size": 3}, {"chunk_size": 2.5}, {"n_splits": 3}, {"n_splits": 4}])
def test_numpy_with_iterable_len_at_least_the_rows(iterable_len, split):
    _same(lambda: np.arange(20.0).reshape(10, 2), iterable_len=iterable_len, **split)


@needs_numpy
@pytest.mark.parametrize("iterable_len", [0, 1, 4, 5, 6, 9])
@pytest.mark.parametrize("split", [{"chunk_size": 3}, {"chunk_size": 2.5}, {"n_splits": 3}])
def test_numpy_with_a_shorter_iterable_len_is_chunked_as_the_cut_array(iterable_len, split):
    """MPIRE raises here (or drops rows of zeros); we give what it gives for ``array[:iterable_len]``."""
    array = np.zeros((10, 2))
    ours = _plain(list(chunk_tasks(array, iterable_len=iterable_len, **split)))
    theirs = _plain(list(mpire_utils.chunk_tasks(array[:iterable_len], iterable_len=iterable_len, **split)))
    assert ours == theirs
    assert sum(shape[0] for _, _, shape, _ in ours) == iterable_len


@needs_numpy
def test_numpy_chunks_are_views_and_subclasses_are_sliced():
    array = np.arange(12).reshape(6, 2)
    first = next(chunk_tasks(array, chunk_size=4))
    assert np.shares_memory(first, array)

    class Tagged(np.ndarray):
        pass

    tagged = array.view(Tagged)
    assert _plain(list(chunk_tasks(tagged, n_splits=4))) == _plain(list(mpire_utils.chunk_tasks(tagged, n_splits=4)))
    assert all(type(chunk) is Tagged for chunk in chunk_tasks(tagged, n_splits=4))


def test_the_documented_examples():
    assert list(chunk_tasks(range(10), n_splits=3)) == [(0, 1, 2, 3), (4, 5, 6), (7, 8, 9)]
    assert list(chunk_tasks(range(10), chunk_size=2.5)) == [(0, 1, 2), (3, 4), (5, 6, 7), (8, 9)]
    assert list(chunk_tasks((x for x in range(10)), iterable_len=10, n_splits=6)) == [
        (0, 1), (2, 3), (4,), (5, 6), (7, 8), (9,)]


def test_chunk_size_wins_over_n_splits():
    assert _same(lambda: range(4), chunk_size=4, n_splits=4)[1] == [(0, 1, 2, 3)]
    # n_splits is not even looked at when chunk_size is given, as in MPIRE
    assert _same(lambda: range(4), chunk_size=2, n_splits=0)[1] == [(0, 1), (2, 3)]


@pytest.mark.parametrize("make_input, kwargs", [
    (list, {"n_splits": 5}),
    (list, {"chunk_size": 3}),
    (lambda: iter([]), {"iterable_len": 0, "n_splits": 5}),
    (lambda: iter([]), {"chunk_size": 2}),
    (lambda: iter([]), {"iterable_len": 7, "n_splits": 5}),
    (lambda: iter([1, 2]), {"iterable_len": 0, "n_splits": 5}),
    (tuple, {"iterable_len": 3, "chunk_size": 1}),
], ids=["list-n_splits", "list-chunk_size", "iter-len0", "iter-chunk_size", "iter-len7", "iter-items-len0",
        "tuple-len3"])
def test_empty_inputs_give_no_chunks(make_input, kwargs):
    assert _same(make_input, **kwargs)[1] == []


@needs_numpy
def test_empty_numpy_array_gives_no_chunks():
    assert _same(lambda: np.empty((0, 3)), n_splits=4)[1] == []


@pytest.mark.parametrize("make_input, kwargs, error", [
    (lambda: [1, 2], {}, ValueError),
    (lambda: iter([1, 2]), {}, ValueError),
    (lambda: iter([1, 2]), {"n_splits": 2}, ValueError),
    (lambda: (x for x in "ab"), {"n_splits": 1}, ValueError),
    (lambda: 5, {"chunk_size": 2}, TypeError),
    (lambda: None, {"n_splits": 2, "iterable_len": 3}, TypeError),
    (lambda: [1, 2], {"chunk_size": "2"}, TypeError),
    (lambda: [1, 2], {"chunk_size": float("inf")}, OverflowError),
    (lambda: [1, 2], {"chunk_size": float("nan")}, ValueError),
], ids=["neither", "generator-neither", "generator-no-len", "genexpr-no-len", "not-iterable", "none",
        "str-chunk_size", "inf", "nan"])
def test_same_errors_as_mpire(make_input, kwargs, error):
    assert _same(make_input, **kwargs) == ("error", error)


def test_errors_come_on_the_first_chunk_not_at_the_call():
    for func in (chunk_tasks, mpire_utils.chunk_tasks):
        chunks = func(iter([1]))
        assert inspect.isgenerator(chunks)
        with pytest.raises(ValueError):
            next(chunks)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "give chunk_size or n_splits"),
    ({"n_splits": 2, "source": iter([1])}, "pass iterable_len"),
    ({"chunk_size": 0}, "chunk_size must be greater than 0, got 0"),
    ({"chunk_size": -1.5}, "chunk_size must be greater than 0"),
    ({"n_splits": 0}, "n_splits must be greater than 0, got 0"),
    ({"n_splits": -3}, "n_splits must be greater than 0"),
    ({"chunk_size": 2, "iterable_len": -1}, "iterable_len must be 0 or more, got -1"),
])
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    """Non-positive sizes are refused (MPIRE gives one-item chunks, divides by zero, or cuts at odd places)."""
    source = kwargs.pop("source", [1, 2, 3])
    with pytest.raises(ValueError, match=message):
        next(chunk_tasks(source, **kwargs))


class _Counting:
    """An iterator that counts the items read from it."""

    def __init__(self, limit: int | None = None) -> None:
        self.items = itertools.count() if limit is None else iter(range(limit))
        self.read = 0

    def __iter__(self) -> _Counting:
        return self

    def __next__(self) -> int:
        item = next(self.items)
        self.read += 1
        return item


@pytest.mark.parametrize("kwargs", [{"chunk_size": 3}, {"chunk_size": 2.5}, {"iterable_len": 100, "n_splits": 7}])
def test_a_generator_is_read_only_as_chunks_are_asked_for(kwargs):
    ours, theirs = _Counting(), _Counting()
    mine, mpires = chunk_tasks(ours, **kwargs), mpire_utils.chunk_tasks(theirs, **kwargs)
    assert ours.read == theirs.read == 0
    for _ in range(4):
        assert next(mine) == next(mpires)
        assert ours.read == theirs.read


def test_an_endless_generator_with_iterable_len_stops():
    ours, theirs = itertools.count(), itertools.count()
    assert list(chunk_tasks(ours, iterable_len=7, n_splits=2)) == [(0, 1, 2, 3), (4, 5, 6)]
    assert list(mpire_utils.chunk_tasks(theirs, iterable_len=7, n_splits=2)) == [(0, 1, 2, 3), (4, 5, 6)]
    assert next(ours) == next(theirs) == 11  # both read one chunk past iterable_len before stopping


@st.composite
def _chunk_calls(draw):
    n = draw(st.integers(0, 120))
    kind = draw(st.sampled_from(["list", "generator", "range"] + (["ndarray"] if np is not None else [])))
    chunk_size = draw(st.none() | st.integers(1, 40) | st.floats(0.05, 40.0))
    n_splits = draw(st.none() | st.integers(1, 50))
    iterable_len = draw(st.none() | st.integers(0, 150))
    return n, kind, {"chunk_size": chunk_size, "n_splits": n_splits, "iterable_len": iterable_len}


@settings(max_examples=400, deadline=None)
@given(_chunk_calls())
def test_random_calls_give_mpires_chunks(call):
    n, kind, kwargs = call
    if kind == "ndarray":
        # MPIRE fails on an array longer than iterable_len; compare on the cut array, which it handles
        length = n if kwargs["iterable_len"] is None else min(n, kwargs["iterable_len"])
        ours = _outcome(chunk_tasks, lambda: np.arange(n), **kwargs)
        theirs = _outcome(mpire_utils.chunk_tasks, lambda: np.arange(n)[:length], **kwargs)
        assert ours == theirs
        return
    make = {"list": lambda: list(range(n)), "range": lambda: range(n), "generator": lambda: iter(range(n))}[kind]
    _same(make, **kwargs)


@pytest.mark.parametrize("make_input", [
    lambda: ["a", "c", "b"],
    lambda: [(1, 2), (3, 4)],
    lambda: [{"x": 1}, {"y": 2}],
    lambda: (i for i in range(5)),
    lambda: range(4),
    lambda: [],
    lambda: iter([]),
    lambda: "xyz",
])
@pytest.mark.parametrize("generator", [True, False])
def test_make_single_arguments_matches_mpire(make_input, generator):
    ours = make_single_arguments(make_input(), generator=generator)
    theirs = mpire_utils.make_single_arguments(make_input(), generator=generator)
    assert type(ours) is type(theirs)
    assert list(ours) == list(theirs)


@needs_numpy
def test_make_single_arguments_of_numpy_chunks():
    array = np.arange(10).reshape(5, 2)
    ours = make_single_arguments(chunk_tasks(array, chunk_size=2), generator=False)
    theirs = mpire_utils.make_single_arguments(mpire_utils.chunk_tasks(array, chunk_size=2), generator=False)
    assert [(a.tolist(),) for (a,) in ours] == [(a.tolist(),) for (a,) in theirs]


def test_make_single_arguments_is_lazy_but_rejects_a_non_iterable_at_once():
    source = _Counting(3)
    wrapped = make_single_arguments(source)
    assert source.read == 0
    assert next(wrapped) == (0,)
    assert source.read == 1
    for func in (make_single_arguments, mpire_utils.make_single_arguments):
        with pytest.raises(TypeError):
            func(5)


def test_make_single_arguments_passes_tuples_whole_to_our_pool():
    def echo(*args):
        return args

    pairs = [(1, 2), (3, 4)]
    with WorkerPool(n_jobs=2, start_method="threading") as pool:
        assert pool.map(echo, pairs) == [(1, 2), (3, 4)]
        assert pool.map(echo, make_single_arguments(pairs), iterable_len=2) == [((1, 2),), ((3, 4),)]
        assert pool.map(echo, make_single_arguments(pairs, generator=False)) == [((1, 2),), ((3, 4),)]


@pytest.mark.parametrize("name", ["chunk_tasks", "make_single_arguments"])
def test_signatures_match_mpire(name):
    ours = inspect.signature(getattr(mpire_fault.utils, name)).parameters
    theirs = inspect.signature(getattr(mpire_utils, name)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()]


def test_mpires_import_paths_work():
    import mpire

    from mpire_fault import cpu_count
    from mpire_fault.async_result import AsyncResult
    from mpire_fault.utils import chunk_tasks as imported_chunk_tasks
    from mpire_fault.utils import make_single_arguments as imported_make_single_arguments

    assert cpu_count is multiprocessing.cpu_count is mpire.cpu_count
    assert "cpu_count" in mpire_fault.__all__
    assert cpu_count() >= 1
    assert imported_chunk_tasks is chunk_tasks and imported_make_single_arguments is make_single_arguments
    assert AsyncResult is mpire_fault.AsyncResult is mpire_fault._core.results.AsyncResult


def test_apply_async_returns_the_async_result_class():
    from mpire_fault.async_result import AsyncResult

    with WorkerPool(n_jobs=1, start_method="threading") as pool:
        result = pool.apply_async(pow, (2, 5))
        assert type(result) is AsyncResult
        assert result.get(timeout=30) == 32
