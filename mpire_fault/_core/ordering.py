"""Chunks of a map call finish in any order; ``imap`` and ``map`` hand them out in input order.

Every backend keeps the same window: a chunk that finished early waits here
until the chunks before it are out. Chunks are keyed by the index of their
first item, so the next chunk due starts where the last one released ended.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class InputOrder:
    """Results of chunks that came back out of order, released in input order."""

    __slots__ = ("_waiting", "_next")

    def __init__(self) -> None:
        self._waiting: dict[int, list[Any]] = {}
        self._next = 0  # the first item of the chunk due next

    def __len__(self) -> int:
        """Chunks that finished and wait for an earlier one."""
        return len(self._waiting)

    def release(self, first: int, values: list[Any]) -> Iterator[list[Any]]:
        """Add the results of the chunk starting at item ``first``; yield every chunk that is now due, in order."""
        waiting = self._waiting
        waiting[first] = values
        while self._next in waiting:
            values = waiting.pop(self._next)
            self._next += len(values)
            yield values
