"""How a map call's input becomes chunks: lists of items, ranges, or slices of a numpy array (as MPIRE).

Chunk lengths follow MPIRE's ``chunk_tasks``: an average size that may be a
fraction (a float ``chunk_size``, or the number of items over ``n_splits``),
each chunk taking the rounded-up size still owed, so that 10 items in chunks
of 2.5 are 3, 2, 3, 2 and 10 items in 3 splits are 4, 3, 3.
"""
from __future__ import annotations

import itertools
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from fractions import Fraction
from typing import Any, TypeVar

# An average chunk size: an int or float as given, or a Fraction when the
# number of items over the number of splits is too large for a float.
ChunkSize = int | float | Fraction

# MPIRE's chunk size when the number of items is unknown and no chunk_size is given.
UNKNOWN_LENGTH_CHUNK_SIZE = 4

S = TypeVar("S", bound=Sequence)

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # mpire_fault/


def is_ndarray_type(kind: type) -> bool:
    """Whether ``kind`` is numpy's ``ndarray`` or a subclass (``memmap``, masked arrays), as MPIRE's isinstance.

    No array exists unless numpy was imported, so numpy's absence from
    ``sys.modules`` answers without importing it.
    """
    numpy = sys.modules.get("numpy")
    return numpy is not None and issubclass(kind, numpy.ndarray)


def is_ndarray(value: Any) -> bool:
    return is_ndarray_type(type(value))


def chunk_lengths(size: ChunkSize) -> Iterator[int]:
    """The lengths of consecutive chunks of average ``size``, without end: MPIRE's arithmetic, step for step.

    Each chunk takes the size still owed, rounded up (at least 1); what the
    rounding took too much is owed less by the next. The sum is computed as
    ``(owed + size) - ceil(owed)``, in that order, so float sizes round as
    MPIRE's do (10 / 3 gives 4, 3, 3, not 4, 3, 4 nor 4, 4, 2). An int size
    stays exact at any magnitude, and so does a ``Fraction``.
    """
    owed = size
    while True:
        ceiling = math.ceil(owed)
        yield max(1, ceiling)
        owed = owed + size - ceiling


def range_length(numbers: range) -> int:
    """``len(numbers)`` for a range of any size (``len(range(10**30))`` raises ``OverflowError``)."""
    step = numbers.step
    return max(0, (numbers.stop - numbers.start + step - (1 if step > 0 else -1)) // step)


def input_length(iterable: Any) -> int | None:
    """The number of items ``len()`` gives, a range's at any size; ``None`` when the input has no ``len()``."""
    if type(iterable) is range:
        return range_length(iterable)
    return len(iterable) if isinstance(iterable, Sized) else None


def average_size(n_items: int, n_splits: float) -> ChunkSize:
    """``n_items / n_splits`` as MPIRE computes it (a float); a ``Fraction`` when that overflows a float."""
    try:
        return n_items / n_splits
    except OverflowError:
        return Fraction(n_items) / Fraction(n_splits)


def _caller_stacklevel() -> int:
    """The ``stacklevel`` naming the first frame outside mpire_fault, as seen from the function calling this."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def choose_chunk_size(iterable: Iterable, n_jobs: int, chunk_size: float | None, n_splits: int | None,
                      iterable_len: int | None, largest: int | None = None) -> ChunkSize:
    """The average chunk size of a map call, as MPIRE's ``check_map_parameters`` chooses it.

    ``chunk_size`` if given; else the number of items (``iterable_len``, or
    ``len()`` of the input) over ``n_splits``, or over ``n_jobs * 4`` (MPIRE:
    ``n_jobs * 64``; fewer, larger chunks cost less here), but no more than
    ``largest`` when that is given. When the number of items is unknown,
    warns with MPIRE's ``RuntimeWarning`` at the caller's line and uses
    MPIRE's chunk size of 4.
    """
    if chunk_size is not None:
        return chunk_size
    n_items = iterable_len if iterable_len is not None else input_length(iterable)
    if n_items is None:
        warnings.warn("Failed to obtain length of iterable when chunk size or number of splits is None. Chunk size "
                      f"is set to {UNKNOWN_LENGTH_CHUNK_SIZE}. Remedy: either provide an iterable with a len() "
                      "function or specify iterable_len in the function call", RuntimeWarning,
                      stacklevel=_caller_stacklevel())
        return UNKNOWN_LENGTH_CHUNK_SIZE
    size = average_size(n_items, n_splits or n_jobs * 4)
    return size if largest is None or size <= largest else largest


MPIRE_SPLITS_PER_WORKER = 64  # MPIRE's default: 64 chunks per worker
SPLITS_PER_WORKER = 4  # ours without a progress bar: multiprocessing.Pool's, a sixteenth of the round trips
# The longest chunk the default chunking makes (neither chunk_size nor n_splits
# given). A chunk's results come back only once all of it ran, so without a
# bound ``imap`` over ``range(10**12)`` would yield its first result after an
# eighth of the range, and over ``range(int(1e30))`` never. On 2 workers,
# 10 million trivial items took no longer in chunks of 10 000 than in 8
# chunks of 1.25 million (2.8-4.5 s either way on a loaded machine).
LARGEST_DEFAULT_CHUNK = 10_000


def default_splits(n_jobs: int, progress_bar: bool) -> int:
    """How many chunks a map makes when neither ``chunk_size`` nor ``n_splits`` is given.

    With a progress bar, MPIRE's count: the bar moves once per chunk, and
    with 4 chunks per worker a map of slow tasks would look stuck for a
    quarter of each worker's share (it also balances uneven tasks better).
    Without one, fewer and larger chunks: a map of trivial tasks spends its
    time on round trips otherwise (100 000 items on 2 workers: 128 chunks
    take twice as long as 8 here).
    """
    return n_jobs * (MPIRE_SPLITS_PER_WORKER if progress_bar else SPLITS_PER_WORKER)


def chunks_in_flight(max_tasks_active: int, size: ChunkSize) -> int:
    """How many chunks of average ``size`` keep at most ``max_tasks_active`` items handed out (at least one)."""
    return max(1, max_tasks_active // max(1, math.ceil(size)))


def chunk_ndarray(array: Any, size: ChunkSize) -> Iterator[tuple[int, list]]:
    """MPIRE's numpy input: slices along axis 0, each passed whole as one argument (a view, not rows).

    The slices are ``size`` rows on average (``choose_chunk_size``), the
    remainder spread as MPIRE spreads it (20 rows in 8 splits: 3, 2, 3, 2,
    ...), so a function sees the same shapes under both.
    """
    n_rows = len(array)
    start = 0
    for ordinal, length in enumerate(chunk_lengths(size)):
        if start >= n_rows:
            return
        stop = start + length
        yield ordinal, [array[start:stop]]
        start = stop


def chunk_iterable(iterable: Iterable, chunk_size: ChunkSize, iterable_len: int | None) -> Iterator[tuple[int, list]]:
    """Yield ``(first_index, items)`` lazily; a generator is never materialized.

    At most ``iterable_len`` items are read, and no chunk holds more than
    ``sys.maxsize`` items (``islice``'s limit; no list is that long).
    """
    if type(iterable) is list or type(iterable) is tuple:
        yield from _chunk_sequence(iterable, chunk_size, iterable_len)
        return
    iterator = iter(iterable)
    if iterable_len is not None and iterable_len <= sys.maxsize:
        iterator = itertools.islice(iterator, iterable_len)
    first = 0
    for length in chunk_lengths(chunk_size):
        items = list(itertools.islice(iterator, min(length, sys.maxsize)))
        if not items:
            return
        yield first, items
        first += len(items)


def _chunk_sequence(items: list | tuple, chunk_size: ChunkSize, iterable_len: int | None
                    ) -> Iterator[tuple[int, list]]:
    """``chunk_iterable`` for a list or a tuple: each chunk is one slice (a copy in C, ten times faster than
    pulling the items one by one: 0.5 ms of a 10 ms ``Pool.map`` of 100 000 ints). The length is read at each
    chunk, so a list that changes while it is mapped is read as an iterator would read it."""
    first = 0
    for length in chunk_lengths(chunk_size):
        stop = len(items) if iterable_len is None else min(len(items), iterable_len)
        if first >= stop:
            return
        chunk = items[first:min(first + length, stop)]
        yield first, chunk if type(chunk) is list else list(chunk)
        first += len(chunk)


def chunk_range(numbers: range, chunk_size: ChunkSize, iterable_len: int | None) -> Iterator[tuple[int, range]]:
    """``chunk_iterable`` for a range (and MPIRE's ``map(f, n)``): each chunk is a range, not a list of ints.

    A range pickles in a few bytes and needs no check of its items' types in
    the worker (every item is one int argument), where a list of 12 500 ints
    costs about 0.7 ms to build, pickle, unpickle and check. The chunks
    are those ``chunk_iterable`` makes (a float size gives ranges of
    alternating lengths), computed on Python ints, so a range of any size
    works (``len(range(10**30))`` would raise ``OverflowError``); no chunk
    holds more than ``sys.maxsize`` items, so ``len()`` works on each.
    """
    stop = range_length(numbers) if iterable_len is None else min(range_length(numbers), iterable_len)
    first = 0
    for length in chunk_lengths(chunk_size):
        if first >= stop:
            return
        end = min(first + min(length, sys.maxsize), stop)
        yield first, numbers[first:end]
        first = end


def expect_length(chunks: Iterator[tuple[int, S]], iterable_len: int) -> Iterator[tuple[int, S]]:
    """``chunks``, then ``ValueError`` if the input ended before ``iterable_len`` items (MPIRE raises one too).

    The error comes when the input runs out, as MPIRE's does: an ``imap`` has
    yielded the results that came in before it.
    """
    n_items = 0
    for first, items in chunks:
        n_items = first + len(items)
        yield first, items
    if n_items < iterable_len:
        raise ValueError(f"iterable_len is {iterable_len}, but the input ended after {n_items} items; pass the "
                         "number of items the input holds, or less to use only the first ones")


def _chunk_rows(items: Sequence) -> int:
    return len(items[0])


def plan_chunks(args: Any, n_jobs: int, chunk_size: float | None, n_splits: int | None,
                iterable_len: int | None, largest: int | None = None
                ) -> tuple[Iterator[tuple[int, Sequence]], ChunkSize, int | None, Callable[[Sequence], int]]:
    """The chunks of a map's input, their average size, the number of items if known, and the rows in a chunk.

    A numpy array is sliced along axis 0, each slice passed whole (MPIRE;
    an ``iterable_len`` beyond its length is ignored, as MPIRE ignores it);
    a range travels as ranges; anything else is pulled lazily into lists,
    in chunks of at most ``largest`` items when that is given (the rows a
    function sees of an array are left as MPIRE cuts them).
    """
    if is_ndarray(args):
        array = args if iterable_len is None else args[:iterable_len]
        size = choose_chunk_size(array, n_jobs, chunk_size, n_splits, None)
        return chunk_ndarray(array, size), size, len(array), _chunk_rows
    size = choose_chunk_size(args, n_jobs, chunk_size, n_splits, iterable_len, largest)
    chunks: Iterator[tuple[int, Sequence]] = (
        chunk_range(args, size, iterable_len) if type(args) is range else chunk_iterable(args, size, iterable_len))
    if iterable_len is not None:
        chunks = expect_length(chunks, iterable_len)
    total = iterable_len if iterable_len is not None else input_length(args)
    return chunks, size, total, len
