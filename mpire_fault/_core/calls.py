"""The call forms of MPIRE's API that every backend derives the same way.

``apply`` is ``apply_async(...).get()``; ``imap``, ``imap_unordered``,
``map`` and ``map_unordered`` all read one engine, ``_chunks(..., ordered)``,
which yields the results of one chunk (a list) at a time. A backend defines
``apply_async`` and ``_chunks``; the signatures below, MPIRE's, are written
once.
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .results import maybe_concatenate


def _collect(chunks: Iterator[list]) -> list[Any]:
    """map's results: each chunk's list appended in C, no Python frame per item."""
    # pytest leaves this frame out of a failing test's report: the user's line and the error are what count
    __tracebackhide__ = True
    results: list[Any] = []
    for values in chunks:
        results.extend(values)
    return results


def _flatten(chunks: Iterator[list]) -> Iterator[Any]:
    """imap's results item by item, as a generator (callers may ``close()`` it, as MPIRE's)."""
    __tracebackhide__ = True
    try:
        for values in chunks:
            yield from values
    finally:
        close = getattr(chunks, "close", None)  # a generator: let its finally clauses run now
        if close is not None:
            close()


class CallForms(abc.ABC):
    """``apply`` and the map family over a backend's ``apply_async`` and ``_chunks``."""

    @abc.abstractmethod
    def apply_async(self, func: Callable, args: Any = (), kwargs: dict | None = None,
                    callback: Callable[[Any], Any] | None = None,
                    error_callback: Callable[[BaseException], Any] | None = None,
                    worker_init: Callable | None = None, worker_exit: Callable | None = None,
                    task_timeout: float | None = None, worker_init_timeout: float | None = None,
                    worker_exit_timeout: float | None = None) -> Any:
        """Run ``func`` once in a worker; a death fails this task only."""

    @abc.abstractmethod
    def _chunks(self, func: Callable, iterable_of_args: Iterable | int, iterable_len: int | None,
                max_tasks_active: int | None, chunk_size: float | None, n_splits: int | None,
                worker_lifespan: int | None, progress_bar: bool, worker_init: Callable | None,
                worker_exit: Callable | None, task_timeout: float | None, worker_init_timeout: float | None,
                worker_exit_timeout: float | None, progress_bar_options: dict | None,
                progress_bar_style: str | None, ordered: bool) -> Iterator[list]:
        """The map family's engine: the results of one chunk at a time; a death aborts the call."""

    def apply(self, func: Callable, args: Any = (), kwargs: dict | None = None,
              callback: Callable[[Any], Any] | None = None,
              error_callback: Callable[[BaseException], Any] | None = None,
              worker_init: Callable | None = None, worker_exit: Callable | None = None,
              task_timeout: float | None = None, worker_init_timeout: float | None = None,
              worker_exit_timeout: float | None = None) -> Any:
        """Blocking ``apply_async(...).get()``."""
        __tracebackhide__ = True
        return self.apply_async(func, args, kwargs, callback, error_callback, worker_init, worker_exit,
                                task_timeout, worker_init_timeout, worker_exit_timeout).get()

    def imap(self, func: Callable, iterable_of_args: Iterable | int, iterable_len: int | None = None,
             max_tasks_active: int | None = None, chunk_size: float | None = None, n_splits: int | None = None,
             worker_lifespan: int | None = None, progress_bar: bool = False, worker_init: Callable | None = None,
             worker_exit: Callable | None = None, task_timeout: float | None = None,
             worker_init_timeout: float | None = None, worker_exit_timeout: float | None = None,
             progress_bar_options: dict | None = None, progress_bar_style: str | None = None) -> Iterator[Any]:
        """Results in input order, as they become available; a death aborts the whole call."""
        return _flatten(self._chunks(
            func, iterable_of_args, iterable_len, max_tasks_active, chunk_size, n_splits, worker_lifespan,
            progress_bar, worker_init, worker_exit, task_timeout, worker_init_timeout, worker_exit_timeout,
            progress_bar_options, progress_bar_style, ordered=True))

    def imap_unordered(self, func: Callable, iterable_of_args: Iterable | int, iterable_len: int | None = None,
                       max_tasks_active: int | None = None, chunk_size: float | None = None,
                       n_splits: int | None = None, worker_lifespan: int | None = None, progress_bar: bool = False,
                       worker_init: Callable | None = None, worker_exit: Callable | None = None,
                       task_timeout: float | None = None, worker_init_timeout: float | None = None,
                       worker_exit_timeout: float | None = None, progress_bar_options: dict | None = None,
                       progress_bar_style: str | None = None) -> Iterator[Any]:
        """Results as they come, in any order; a death aborts the whole call."""
        return _flatten(self._chunks(
            func, iterable_of_args, iterable_len, max_tasks_active, chunk_size, n_splits, worker_lifespan,
            progress_bar, worker_init, worker_exit, task_timeout, worker_init_timeout, worker_exit_timeout,
            progress_bar_options, progress_bar_style, ordered=False))

    def map(self, func: Callable, iterable_of_args: Iterable | int, iterable_len: int | None = None,
            max_tasks_active: int | None = None, chunk_size: float | None = None, n_splits: int | None = None,
            worker_lifespan: int | None = None, progress_bar: bool = False, concatenate_numpy_output: bool = True,
            worker_init: Callable | None = None, worker_exit: Callable | None = None,
            task_timeout: float | None = None, worker_init_timeout: float | None = None,
            worker_exit_timeout: float | None = None, progress_bar_options: dict | None = None,
            progress_bar_style: str | None = None) -> Any:
        """``list(imap(...))``: results in input order (numpy outputs concatenated, as MPIRE does)."""
        __tracebackhide__ = True
        results = _collect(self._chunks(func, iterable_of_args, iterable_len, max_tasks_active, chunk_size, n_splits,
                                        worker_lifespan, progress_bar, worker_init, worker_exit, task_timeout,
                                        worker_init_timeout, worker_exit_timeout, progress_bar_options,
                                        progress_bar_style, ordered=True))
        return maybe_concatenate(results) if concatenate_numpy_output else results

    def map_unordered(self, func: Callable, iterable_of_args: Iterable | int, iterable_len: int | None = None,
                      max_tasks_active: int | None = None, chunk_size: float | None = None,
                      n_splits: int | None = None, worker_lifespan: int | None = None, progress_bar: bool = False,
                      worker_init: Callable | None = None, worker_exit: Callable | None = None,
                      task_timeout: float | None = None, worker_init_timeout: float | None = None,
                      worker_exit_timeout: float | None = None, progress_bar_options: dict | None = None,
                      progress_bar_style: str | None = None) -> list[Any]:
        """``list(imap_unordered(...))``."""
        __tracebackhide__ = True
        return _collect(self._chunks(func, iterable_of_args, iterable_len, max_tasks_active, chunk_size, n_splits,
                                     worker_lifespan, progress_bar, worker_init, worker_exit, task_timeout,
                                     worker_init_timeout, worker_exit_timeout, progress_bar_options,
                                     progress_bar_style, ordered=False))
