"""How a map call's input becomes chunks: lists of items, ranges, or slices of a numpy array (as MPIRE)."""
from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from typing import Any


def is_ndarray_type(kind: type) -> bool:
    """Whether ``kind`` is numpy's ``ndarray`` or a subclass (``memmap``, masked arrays), as MPIRE's isinstance.

    No array exists unless numpy was imported, so numpy's absence from
    ``sys.modules`` answers without importing it.
    """
    numpy = sys.modules.get("numpy")
    return numpy is not None and issubclass(kind, numpy.ndarray)


def is_ndarray(value: Any) -> bool:
    return is_ndarray_type(type(value))


def chunk_ndarray(array: Any, n_jobs: int, chunk_size: int | None, n_splits: int | None) -> Iterator[tuple[int, list]]:
    """MPIRE's numpy input: slices along axis 0, each passed whole as one argument (a view, not rows).

    Without a ``chunk_size`` the slices are ``len / n_splits`` rows on
    average, the remainder spread as MPIRE spreads it (20 rows in 8 splits:
    3, 2, 3, 2, ...), so a function sees the same shapes under both.
    """
    n_rows = len(array)
    size = float(chunk_size) if chunk_size is not None else n_rows / (n_splits or n_jobs * 4)
    start, ordinal, carry = 0, 0, size
    while start < n_rows:
        stop = start + max(1, math.ceil(carry))
        yield ordinal, [array[start:stop]]
        carry = carry - (min(stop, n_rows) - start) + size
        start, ordinal = stop, ordinal + 1


def chunk_iterable(iterable: Iterable, chunk_size: int, iterable_len: int | None) -> Iterator[tuple[int, list]]:
    """Yield ``(first_index, items)`` lazily; a generator is never materialized."""
    iterator = iter(iterable)
    if iterable_len is not None:
        iterator = itertools.islice(iterator, iterable_len)
    first = 0
    while True:
        items = list(itertools.islice(iterator, chunk_size))
        if not items:
            return
        yield first, items
        first += len(items)


def chunk_range(numbers: range, chunk_size: int, iterable_len: int | None) -> Iterator[tuple[int, range]]:
    """``chunk_iterable`` for a range (and MPIRE's ``map(f, n)``): each chunk is a range, not a list of ints.

    A range pickles in a few bytes and needs no check of its items' types in
    the worker (every item is one int argument), where a list of 12 500 ints
    costs about 0.7 ms to build, pickle, unpickle and check.
    """
    stop = len(numbers) if iterable_len is None else min(len(numbers), iterable_len)
    for first in range(0, stop, chunk_size):
        yield first, numbers[first:min(first + chunk_size, stop)]


def choose_chunk_size(iterable: Iterable, n_jobs: int, chunk_size: int | None, n_splits: int | None,
                      iterable_len: int | None) -> int:
    if chunk_size is not None:
        return chunk_size
    if iterable_len is None and isinstance(iterable, Sized):
        iterable_len = len(iterable)
    if iterable_len is None:
        return 1
    return max(1, math.ceil(iterable_len / (n_splits or n_jobs * 4)))


def _chunk_rows(items: Sequence) -> int:
    return len(items[0])


def plan_chunks(args: Any, n_jobs: int, chunk_size: int | None, n_splits: int | None,
                iterable_len: int | None) -> tuple[Iterator[tuple[int, Sequence]], int, int | None,
                                                   Callable[[Sequence], int]]:
    """The chunks of a map's input, their size, the number of items if known, and the rows in a chunk.

    A numpy array is sliced along axis 0, each slice passed whole (MPIRE);
    a range travels as ranges; anything else is pulled lazily into lists.
    """
    if is_ndarray(args):
        array = args if iterable_len is None else args[:iterable_len]
        size = choose_chunk_size(array, n_jobs, chunk_size, n_splits, None)
        return chunk_ndarray(array, n_jobs, chunk_size, n_splits), size, len(array), _chunk_rows
    size = choose_chunk_size(args, n_jobs, chunk_size, n_splits, iterable_len)
    chunks: Iterator[tuple[int, Sequence]] = (
        chunk_range(args, size, iterable_len) if type(args) is range else chunk_iterable(args, size, iterable_len))
    total = iterable_len if iterable_len is not None else (len(args) if isinstance(args, Sized) else None)
    return chunks, size, total, len
