"""The map family's result iterator on the local engine: chunks in, each chunk's results out.

The caller's thread pulls the user's iterable and pickles arguments, so a
slow generator or a pickling error never stalls the supervisor.
"""
from __future__ import annotations

import queue
from collections.abc import Callable, Iterator, Sequence
from time import perf_counter
from typing import Any

from .._core.arguments import MPIRE
from .._core.ordering import InputOrder
from .._core.remote import RESULT, TASK_ARGS, loaded, with_boundary
from ..errors import PoolTerminatedError, SupervisorError
from .jobs import MapJob, Task, next_task_id

_POLL = 0.25
_SLOW_PICKLE = 0.0001  # a chunk that took this long to pickle: the next ones would keep the workers waiting
_SYNC_WAIT = 0.005


def run_map(supervisor, job: MapJob, func: Callable, chunks: Iterator[tuple[int, Sequence]], ordered: bool,
                max_chunks: int, dumps: Callable, loads: Callable, progress: Any = None,
                rows: Callable[[Sequence], int] = len, kind: str = MPIRE) -> Iterator[list]:
    """Feed chunks to the supervisor and yield each chunk's results (in input order if ``ordered``).

    Results come out a chunk (a list) at a time: ``map`` extends its list with
    them and ``imap`` flattens them in C, so no Python frame runs per item.
    ``kind`` is the front door's argument rule (``_core.arguments``), carried
    by every chunk: the worker applies it, no item is wrapped here.

    The caller's thread pulls the user's iterable and pickles arguments, so a
    slow generator or a pickling error never stalls the supervisor; an
    error of this call aborts it, and closing the iterator early cancels it.
    """
    # pytest leaves this frame out of a failing test's report: the user's line and the error are what count
    __tracebackhide__ = True
    outstanding, exhausted, ordinal, aborted = 0, False, 0, False
    n_workers = len(supervisor.slots)
    in_order = InputOrder()
    units: dict[int, int] = {}  # rows per chunk, for the progress bar
    submitted = 0  # rows sent, the bar's total once an input of unknown length runs out (as MPIRE)
    try:
        while True:
            while not exhausted and outstanding < max_chunks and not job.done:
                try:
                    first, items = next(chunks)
                except StopIteration:
                    exhausted = True
                    if progress is not None and progress.total is None:
                        progress.total = submitted
                        progress.refresh()
                    break
                except BaseException:
                    supervisor.abort(job, True)
                    raise
                began = perf_counter()
                try:
                    payload = dumps((func, kind, items))
                except BaseException as exc:  # noqa: BLE001 - any pickling error of the user's fails this call
                    supervisor.abort(job, True)
                    raise with_boundary(exc, TASK_ARGS)  # noqa: B904 - the same exception, marked
                supervisor.submit([Task(next_task_id(), job, first, len(items), payload, ordinal)])
                payload = None  # the task owns it now (a shared-memory segment must not outlive the task)
                if ordinal < n_workers and perf_counter() - began > _SLOW_PICKLE:
                    supervisor.sync(_SYNC_WAIT)  # the workers start now, not after every chunk is pickled
                ordinal += 1
                outstanding += 1
                if progress is not None:
                    units[first] = rows(items)
                    submitted += units[first]
            if outstanding == 0 and exhausted:
                # Every chunk answered: nothing to cancel, and no "aborted" line in the event log.
                job.done = True
                return
            event = _next_event(job, supervisor)
            if supervisor.terminated:  # as MPIRE: after terminate(), an unfinished imap yields nothing more
                event = ("error", PoolTerminatedError("the pool was terminated while this map call was running"))
            if event[0] == "error":
                error = loaded(event[1])
                if progress is not None:  # the bar shows the failure, as MPIRE's does
                    progress.colour = "red"
                    progress.set_description(f"failed: {type(error).__name__}", refresh=True)
                raise error
            _, first, n_items, data = event
            if not ordered:
                outstanding -= 1
            try:
                values = loads(data)
            except BaseException as exc:  # noqa: BLE001 - the user's unpickling error fails this call
                supervisor.abort(job, True)
                raise with_boundary(exc, RESULT)  # noqa: B904 - the same exception, marked
            if progress is not None:
                progress.update(units.pop(first, n_items))
            if not ordered:
                yield values
                continue
            # A chunk waiting here for an earlier, slower one still counts as
            # outstanding: otherwise the input would be pulled (and results
            # buffered) without bound behind a slow item.
            for due in in_order.release(first, values):
                outstanding -= 1
                yield due
    except BaseException as exc:
        # Ctrl-C (or any error) in the caller's thread aborts the call like a
        # death does: its running items are stopped now, not awaited. Only
        # closing the iterator early (GeneratorExit) lets them finish.
        if not job.done and not isinstance(exc, GeneratorExit):
            aborted = True
            supervisor.abort(job, True)
        raise
    finally:
        if not job.done and not aborted:
            supervisor.abort(job, False)
        if progress is not None:
            progress.close()


def _next_event(job: MapJob, supervisor) -> tuple:
    while True:
        try:
            return job.outbox.get(timeout=_POLL)
        except queue.Empty:
            if supervisor.finished.is_set():
                try:
                    return job.outbox.get(timeout=1.0)
                except queue.Empty:
                    if supervisor.terminated:
                        return ("error", PoolTerminatedError("the pool was terminated while this map call was running"))
                    return ("error", SupervisorError("the pool's supervisor ended while this map was running"))
