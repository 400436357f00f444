"""The map family on Dask: a bounded window of chunk futures, results in order (or not), abort on the first error.

An error of any chunk (a death, an exception, a timeout) aborts the whole
call: its other futures are cancelled with ``Client.cancel`` and the items
already running are interrupted on their workers, so nothing of the call
goes on; the ``worker_exit`` of the call's session still runs.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from distributed import as_completed

from .._core.ordering import InputOrder
from .._core.remote import TASK_ARGS, with_boundary
from .remote import abort_call, run_on_live, run_task

if TYPE_CHECKING:
    from .pool import DaskPool

log = logging.getLogger("mpire_fault.dask")


def _describe(first: int, n_items: int, name: str) -> str:
    """The chunk an error names: its one item exactly (as the local pool does), or the range it held
    (which of its items a dead worker was running, the worker can no longer tell)."""
    if n_items == 1:
        return f"map item {first} ({name})"
    return f"map items {first}..{first + n_items - 1} ({name})"


def iterate_map(pool: DaskPool, client: Any, call_id: str, func: Callable, chunks: Iterator[tuple[int, list]],
             ordered: bool, max_chunks: int, task_timeout: float | None, hooks: tuple, bar: Any) -> Iterator[list]:
    name = getattr(func, "__qualname__", None) or repr(func)
    live: dict[Any, tuple[int, int]] = {}
    in_order = InputOrder()
    exhausted, failed = False, True
    session = pool._map_session(call_id, *hooks)
    pending = as_completed(loop=client.loop)
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
                live[future] = (first, len(items))
                pending.add(future)
            if not live:
                break
            future = next(pending)
            first, n_items = live.pop(future)
            try:
                values = pool._outcome(future, _describe(first, n_items, name), task_timeout)
            except BaseException as exc:
                if bar is not None:
                    bar.colour = "red"
                    bar.set_description(f"failed: {type(exc).__name__}", refresh=True)
                raise
            finally:
                future.release()
            if bar is not None:
                bar.update(n_items)
            if not ordered:
                pool._counts["tasks_completed"] += n_items
                yield values
                continue
            for due in in_order.release(first, values):
                pool._counts["tasks_completed"] += len(due)
                yield due
        failed = False
    finally:
        if live:  # aborted (an error, or the caller stopped iterating): nothing of this call may go on
            pool._counts["tasks_failed"] += 1 if failed else 0
            client.cancel(list(live), force=True)
            try:
                run_on_live(client, abort_call, call_id)
            except Exception:
                log.debug("aborting %s on the workers failed", call_id, exc_info=True)
            for future in live:
                future.release()
        pending.clear()
        if bar is not None:
            bar.close()
        errors = pool._end_map_session(session)
    if errors and not failed:
        raise errors[0]

