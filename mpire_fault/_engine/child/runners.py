"""Running the items of one task inside a worker.

Two ways, with the same outcome and the same progress-slot writes:

* ``run_batches``, for plain map chunks (no chaos, timeout or preamble, one
  argument style for every item), runs whole batches at the speed of C;
* ``run_items`` goes item by item, with the chaos sites, the preamble
  (worker id, shared objects, worker state), apply's keyword arguments and
  per-item start times (the watchdog times each item from those).

Either way the payload's kind says how an item becomes arguments (see
``_core.arguments``): MPIRE's rule, multiprocessing's whole items, or its
``starmap``.

Both read the cancel table between items or batches, so no item of an
aborted map call starts after a bounded delay, and both return None when
done, ``CALL_ABORTED`` when the call was aborted, or the exception of item
``first_index + len(results)``.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from itertools import repeat, starmap
from operator import itemgetter, setitem
from typing import Any

from ..._core.arguments import APPLY, CALLERS, MPIRE, ONE
from ...chaos.vocabulary import TASK_END, TASK_START
from ..wire.protocol import BATCH, CANCEL_SLOTS, FLAG_AREA, ITEM, MAX_BATCH, NOT_BATCHED, PHASE, PHASE_START, PICKLING

_FIRST = itemgetter(0)
CALL_ABORTED = object()  # run_batches / run_items: the call was aborted before this chunk finished
_BATCH_SECONDS = 0.001
_CLEAR = memoryview(bytes(FLAG_AREA))


def run_batches(func: Callable, items: list | range, first_index: int, job_id: int, style: int, results: list,
                view: Any, flags: Any, positions: tuple[list[int], list[int]], base: int, cancelled: Any) -> Any:
    """A plain map chunk (no chaos, timeout or preamble) at the speed of C.

    Each batch runs as ``results.extend(map(func, ...))`` with no Python
    frame per item; a C-level byte store threaded through ``zip`` sets the
    item's flag before it starts, so a death names its exact item (see
    protocol.BATCH; ``flags`` is the progress array as bytes, ``positions``
    the byte offsets of this worker's two flag areas). Between batches the
    cancel table is read; a batch doubles only while it takes under
    ``_BATCH_SECONDS`` (and shrinks after a slow one), so no item of an
    aborted call starts more than about two batch-times (2 ms of uniform
    work) after the abort. Returns None when done, ``CALL_ABORTED`` when the call
    was aborted, or the exception of item ``first_index + len(results)``.
    """
    call: Callable = map if style == ONE else starmap
    item_at, phase_at, batch_at = base + ITEM, base + PHASE, base + BATCH
    slot, monotonic = job_id % CANCEL_SLOTS, time.monotonic
    pos, size, n, area = 0, 1, len(items), 0
    try:
        while pos < n:
            if cancelled[slot] == job_id:
                view[item_at] = first_index + pos - 1 if pos else first_index
                view[batch_at] = NOT_BATCHED
                view[phase_at] = PICKLING
                return CALL_ABORTED
            began = monotonic()
            area = 1 - area  # the area not in use: clearing it changes nothing a death would read
            at = positions[area][0]
            flags[at:at + size + 1] = _CLEAR[:size + 1]
            view[batch_at] = 2 * (first_index + pos) + area  # one store switches to it
            stores = map(setitem, repeat(flags), positions[area], repeat(1))
            results.extend(call(func, map(_FIRST, zip(items[pos:pos + size], stores, strict=False))))
            pos += size
            spent = monotonic() - began
            if spent < _BATCH_SECONDS:
                size = min(size * 2, MAX_BATCH)
            elif spent > 4 * _BATCH_SECONDS:
                size = max(1, size // 4)
        # Still inside the try: see run_items.
        view[item_at] = first_index + n - 1
        view[batch_at] = NOT_BATCHED
        view[phase_at] = PICKLING
    except BaseException as exc:  # noqa: BLE001 - re-raised below unless it is the item's error
        # Whatever the user's function raised is this item's error. ITEM
        # names it before BATCH is reset; SystemExit and the like end the
        # worker after that (the parent reads ITEM then).
        view[item_at] = first_index + len(results)
        view[batch_at] = NOT_BATCHED
        if not isinstance(exc, Exception):
            raise
        view[phase_at] = PICKLING
        return exc
    return None


def run_items(func: Callable, kind: str, items: list, first_index: int, job_id: int, attempt: int, timed: bool,
              results: list, call: int, progress: Any, base: int, cancelled: Any, preamble: tuple,
              visit: Callable[..., None] | None) -> Any:
    """Item by item, with the chaos sites, the preamble and per-item start times; returns as run_batches."""
    slot = job_id % CANCEL_SLOTS
    item_at, time_at, phase_at = base + ITEM, base + PHASE_START, base + PHASE
    monotonic = time.monotonic
    append = results.append
    call_with = CALLERS.get(kind, CALLERS[MPIRE])  # the map rule of this payload (unused for apply)
    index = first_index
    timed = timed or visit is not None  # item start times also order deaths seen together (supervisor.run)
    try:
        for item in items:
            if cancelled[slot] == job_id:
                progress[phase_at] = PICKLING
                return CALL_ABORTED
            progress[item_at] = index
            if timed:
                progress[time_at] = monotonic()
            if visit is not None:
                visit(TASK_START, index, attempt, call)
            if kind == APPLY:
                args, kwargs = item
                append(func(*preamble, *args, **kwargs))
            else:
                append(call_with(func, preamble, item))
            if visit is not None:
                visit(TASK_END, index, attempt, call)
            index += 1
        # Still inside the try: a soft timeout aimed at the last item that
        # lands now is that item's error, not a crash of the worker.
        progress[phase_at] = PICKLING
    except Exception as exc:  # noqa: BLE001 - whatever the user's function raised is this item's error
        progress[phase_at] = PICKLING
        return exc
    return None
