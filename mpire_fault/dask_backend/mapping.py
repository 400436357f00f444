"""The map family on Dask: a bounded window of chunk futures, results in order (or not), abort on the first error.

An error of any chunk (a death, an exception, a timeout) aborts the whole
call: its other futures are cancelled with ``Client.cancel`` and the items
already running are interrupted on their workers, so nothing of the call
goes on; the ``worker_exit`` of the call's session still runs.
"""
from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .._core.ordering import InputOrder
from .._core.remote import TASK_ARGS, with_boundary
from ..errors import SchedulerLostError
from .liveness import bounded
from .outcomes import CallStopped
from .remote import abort_call, run_on_live, run_task

if TYPE_CHECKING:
    from .pool import DaskPool

log = logging.getLogger("mpire_fault.dask")
_POLL = 0.25  # seconds between looks at the pool's scheduler watch while a map waits for its next chunk


def _describe(first: int, n_items: int, name: str) -> str:
    """The chunk an error names: its one item exactly (as the local pool does), or the range it held
    (which of its items a dead worker was running, the worker can no longer tell)."""
    if n_items == 1:
        return f"map item {first} ({name})"
    return f"map items {first}..{first + n_items - 1} ({name})"


def iterate_map(pool: DaskPool, client: Any, call_id: str, func: Callable, chunks: Iterator[tuple[int, Sequence]],
             ordered: bool, max_chunks: int, task_timeout: float | None, hooks: tuple, bar: Any,
             rows: Callable[[Sequence], int] = len) -> Iterator[list]:
    """The results of each chunk as it arrives (in input order if ``ordered``); ``rows`` counts a chunk's
    input rows for the progress bar (a numpy chunk is one slice of several rows)."""
    name = getattr(func, "__qualname__", None) or repr(func)
    live: dict[Any, tuple[int, int, int]] = {}
    in_order = InputOrder()
    exhausted, failed, chunk_failed = False, True, False
    session = pool._map_session(call_id, *hooks)
    finished: queue.SimpleQueue[Any] = queue.SimpleQueue()  # futures in the order they finish
    pool._maps_running += 1
    pool._watching()
    try:
        while True:
            while not exhausted and len(live) + len(in_order) < max_chunks:
                try:
                    first, items = next(chunks)
                except StopIteration:
                    exhausted = True
                    break
                try:
                    payload = pool._pickler.dumps((func, items))
                except BaseException as exc:  # noqa: BLE001 - whatever it raised is handed on
                    raise with_boundary(exc, TASK_ARGS)  # noqa: B904 - its cause is set by us
                key = f"{call_id}-{first}"
                description = _describe(first, len(items), name)
                spec = pool._spec(call_id, key, description, session, task_timeout, 0, is_map=True, first_index=first)
                future = client.submit(run_task, spec, payload, pool._shared(), key=key, pure=False, retries=0)
                live[future] = (first, len(items), rows(items))
                future.add_done_callback(finished.put)
            if not live:
                break
            future = _next_finished(pool, finished, live)
            first, n_items, n_rows = live.pop(future)
            try:
                try:
                    values = pool._outcome(future, _describe(first, n_items, name), task_timeout)
                except CallStopped as stopped:  # another chunk of this call failed on that worker: its error
                    raise _first_error(pool, finished, live, name, task_timeout) or stopped  # noqa: B904
            except BaseException as exc:
                chunk_failed = True
                if isinstance(exc, SchedulerLostError):  # Dask cancelled everything: the other calls fail too
                    pool._scheduler_lost(exc)
                if bar is not None:
                    bar.colour = "red"
                    bar.set_description(f"failed: {type(exc).__name__}", refresh=True)
                raise
            finally:
                future.release()
            if bar is not None:
                bar.update(n_rows)
            if not ordered:
                pool._counts["tasks_completed"] += n_items
                yield values
                continue
            for due in in_order.release(first, values):
                pool._counts["tasks_completed"] += len(due)
                yield due
        failed = False
    finally:
        pool._maps_running -= 1
        if chunk_failed:  # the chunk whose error ended the call counts, as locally
            pool._counts["tasks_failed"] += 1
        if live:  # aborted (an error, or the caller stopped iterating): nothing of this call may go on
            if not pool._lost:  # else nobody would answer: the workers stop on their own when it is gone
                try:
                    bounded(client, client._cancel, list(live), force=True, what=f"cancelling {call_id}")
                    answers = run_on_live(client, abort_call, call_id)
                    missed = {worker: answer for worker, answer in answers.items()
                              if isinstance(answer, BaseException)}
                    if missed:
                        log.debug("aborting %s missed workers %r", call_id, missed)
                except Exception:
                    log.debug("aborting %s on the workers failed", call_id, exc_info=True)
            for future in live:
                future.release()
        if bar is not None:
            bar.close()
        errors = pool._end_map_session(session)
    if errors and not failed:
        raise errors[0]



def _first_error(pool: DaskPool, finished: queue.SimpleQueue, live: dict, name: str,
                 task_timeout: float | None) -> BaseException | None:
    """After a chunk came back stopped, the error of the chunk that stopped it: the chunks still out finish
    soon (their worker stops them too), and the first that failed otherwise names the call's error."""
    while live:
        future = _next_finished(pool, finished, live)
        first, n_items, _ = live.pop(future)
        try:
            pool._outcome(future, _describe(first, n_items, name), task_timeout)
        except CallStopped:
            continue
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            return exc
        finally:
            future.release()
    return None


def _next_finished(pool: DaskPool, finished: queue.SimpleQueue, live: dict) -> Any:
    """The next of this call's futures to finish; SchedulerLostError if the pool's watch gave up first."""
    while True:
        try:
            future = finished.get(timeout=_POLL)
        except queue.Empty:
            if pool._lost:
                raise SchedulerLostError(pool._lost[0].address, pool._lost[0].detail) from None
            continue
        if future in live:  # not one released earlier (a done callback may come after the release)
            return future
