"""The restart budget a pool is given (``restart_backoff=``): how often a worker may fail at start-up in a row,
and how long to wait between tries. Every backend reads the same record.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartBackoff:
    """The restart budget: start-up failures in a row before a call fails, and the delays between."""

    max_failures: int = 3
    initial_delay: float = 0.05
    max_delay: float = 2.0

    def delay(self, failures: int) -> float:
        if failures <= 1:
            return 0.0
        return min(self.max_delay, self.initial_delay * 2 ** (failures - 2))
