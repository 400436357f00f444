"""``mpire.utils``' public helpers: ``make_single_arguments`` and ``chunk_tasks``.

Code written for MPIRE imports them from ``mpire.utils``; with these, changing
that import to ``mpire_fault.utils`` is enough. Both give the same values as
MPIRE 2.10.2's (a parity test compares them), with three exceptions, all for
input that MPIRE mishandles:

* a ``chunk_size`` or ``n_splits`` of zero or less, and a negative
  ``iterable_len``, raise ``ValueError`` (MPIRE hands out one-item chunks,
  divides by zero, or cuts chunks at odd places);
* a numpy array with an ``iterable_len`` shorter than the array is chunked as
  ``array[:iterable_len]`` would be (MPIRE raises "The truth value of an
  array ... is ambiguous" or drops the last rows when they are all zero).

The pool does not use this module: its chunks come from ``chunking.py``.
"""
from __future__ import annotations

import itertools
from collections.abc import Collection, Generator, Iterable
from typing import Any, Literal, TypeVar, overload

from ._core.chunking import ChunkSize, average_size, chunk_lengths, is_ndarray

__all__ = ["chunk_tasks", "make_single_arguments"]

T = TypeVar("T")


@overload
def make_single_arguments(iterable_of_args: Iterable[T],
                          generator: Literal[True] = ...) -> Generator[tuple[T], None, None]: ...


@overload
def make_single_arguments(iterable_of_args: Iterable[T], generator: Literal[False]) -> list[tuple[T]]: ...


@overload
def make_single_arguments(iterable_of_args: Iterable[T],
                          generator: bool = ...) -> Generator[tuple[T], None, None] | list[tuple[T]]: ...


def make_single_arguments(iterable_of_args: Iterable[T],
                          generator: bool = True) -> Generator[tuple[T], None, None] | list[tuple[T]]:
    """Put each item in a tuple of its own, so a ``map`` passes it to your function as one argument.

    A pool's ``map`` unpacks an item that is a tuple (or a dict) into several
    arguments. To hand such items over whole, wrap them:
    ``pool.map(f, make_single_arguments(pairs))`` calls ``f((a, b))`` where
    ``pool.map(f, pairs)`` would call ``f(a, b)``.

    :param iterable_of_args: the items; anything iterable. Something that is
        not iterable raises ``TypeError`` at once, even with ``generator=True``.
    :param generator: ``True`` (the default) returns a generator that reads
        the input only as it is consumed (it has no ``len()``, so a ``map``
        over it may want ``iterable_len``); ``False`` returns a list.
    :return: ``(item,)`` for every item, in input order.
    """
    wrapped = ((item,) for item in iterable_of_args)
    return wrapped if generator else list(wrapped)


def _target_size(iterable_of_args: Iterable[Any], iterable_len: int | None,
                 chunk_size: float | None, n_splits: float | None) -> ChunkSize:
    """The average chunk size asked for: ``chunk_size`` if given, else the number of items over ``n_splits``."""
    if iterable_len is not None and iterable_len < 0:
        raise ValueError(f"chunk_tasks: iterable_len must be 0 or more, got {iterable_len!r}")
    if chunk_size is not None:
        if not chunk_size > 0:
            raise ValueError(f"chunk_tasks: chunk_size must be greater than 0, got {chunk_size!r}")
        return chunk_size
    if n_splits is None:
        raise ValueError("chunk_tasks: give chunk_size or n_splits (both are None)")
    if not n_splits > 0:
        raise ValueError(f"chunk_tasks: n_splits must be greater than 0, got {n_splits!r}")
    if iterable_len is not None:
        n_items = iterable_len
    elif hasattr(iterable_of_args, "__len__"):
        n_items = len(iterable_of_args)  # type: ignore[arg-type]
    else:
        raise ValueError("chunk_tasks: splitting into n_splits chunks needs the number of items; pass "
                         "iterable_len, or an iterable that has a len() (a generator has none), or use chunk_size")
    return average_size(n_items, n_splits)


def chunk_tasks(iterable_of_args: Iterable[T], iterable_len: int | None = None,
                chunk_size: float | None = None,
                n_splits: float | None = None) -> Generator[Collection[T], None, None]:
    """Cut the input into consecutive chunks, as a ``map`` hands them to its workers.

    Items are read from the input only as chunks are asked for, so a
    generator is never held in memory whole. Each chunk is a tuple of items;
    a numpy array is cut along its first axis instead, and each chunk is a
    slice of it (a view, not a copy).

    ``chunk_size`` may be a float: the chunks then alternate between the
    sizes around it so that they average out, e.g. ``chunk_size=2.5`` over
    10 items gives chunks of 3, 2, 3 and 2. Without a ``chunk_size``, the
    size is the number of items divided by ``n_splits``, spread the same way
    (10 items, ``n_splits=3``: 4, 3, 3). Every chunk holds at least one item,
    so asking for more splits than there are items gives one-item chunks.

    Like ``mpire.utils.chunk_tasks``, this is a generator: nothing is checked
    and nothing is read until the first chunk is asked for, and that is when
    a ``ValueError`` for bad arguments is raised. After ``iterable_len``
    items it stops, having read up to one chunk more of a generator than it
    hands out (as MPIRE does).

    :param iterable_of_args: the items (or a numpy array).
    :param iterable_len: hand out at most this many items; also the count
        ``n_splits`` divides when the input has no ``len()``.
    :param chunk_size: the (average) number of items per chunk, greater than
        0. Takes precedence over ``n_splits``.
    :param n_splits: the number of chunks to aim for, greater than 0, used
        when ``chunk_size`` is ``None``.
    :return: a generator of chunks, in input order.
    :raises ValueError: when ``chunk_size`` and ``n_splits`` are both ``None``;
        when ``n_splits`` is used but neither ``iterable_len`` nor ``len()`` of
        the input gives the number of items; when ``chunk_size`` or
        ``n_splits`` is not greater than 0, or ``iterable_len`` is negative.
    """
    size = _target_size(iterable_of_args, iterable_len, chunk_size, n_splits)
    array: Any = iterable_of_args if is_ndarray(iterable_of_args) else None
    items = iter(iterable_of_args)
    handed_out = 0
    for take in chunk_lengths(size):
        chunk: Any = (array[handed_out:handed_out + take] if array is not None
                      else tuple(itertools.islice(items, take)))
        if len(chunk) == 0:
            return
        if iterable_len is not None and handed_out + len(chunk) > iterable_len:
            chunk = chunk[:iterable_len - handed_out]
            if len(chunk):
                yield chunk
            return
        yield chunk
        handed_out += len(chunk)
