"""Marker files: how a task that may die proves it started.

A task touches an empty file ``INDEX.PID.TAG`` in a directory the parent
chose, first thing when it starts, so the count survives the worker being
killed a moment later. Markers of other events carry a suffix and are not
starts: ``.end`` (the task finished its work) and ``.init`` (``worker_init``
ran). The kit, the scenario gate and the test suites all count them here.
"""
from __future__ import annotations

import collections
import os

NOT_STARTS = (".end", ".init")


def started(directory: str | os.PathLike[str]) -> collections.Counter[int]:
    """How many times each task index started: its number of start markers."""
    counter: collections.Counter[int] = collections.Counter()
    for name in os.listdir(directory):
        head = name.split(".", 1)[0]
        if head.isdigit() and not name.endswith(NOT_STARTS):
            counter[int(head)] += 1
    return counter
