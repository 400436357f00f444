"""What the supervisor tells an event log (``WorkerPool(event_log=...)``): one method per event kind.

Off by default: the supervisor and its collaborators hold ``None`` then and
test for it before each call, so a pool without a log pays one attribute
read per event site. Every call runs on the supervisor thread. The kinds and
their fields are documented in ``docs/events.md``; the chaos journal stays
where faults are recorded, and ``faults`` copies it into the log when the
supervisor ends, so nothing is recorded twice by the workers.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import describe_exitcode, signal_name
from ..events import EventLog

logger = logging.getLogger("mpire_fault")

if TYPE_CHECKING:
    from .jobs import Job, Task
    from .slots import WorkerSlot


class Recorder:
    """Turns the supervisor's facts into events of one pool."""

    __slots__ = ("log", "broken")

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.broken = False

    def _emit(self, kind: str, **fields: Any) -> None:
        """Write one event; a log that cannot be written (disk full, closed) is reported once, never the pool's end."""
        if self.broken:
            return
        try:
            self.log.emit(kind, **fields)
        except (OSError, ValueError):
            self.broken = True
            logger.exception("mpire_fault's event log cannot be written; the pool goes on without it")

    # ------------------------------------------------------------------ workers
    def worker_started(self, slot: WorkerSlot, start_method: str) -> None:
        self._emit("worker_started", worker_id=slot.worker_id, pid=slot.pid, start_method=start_method)

    def worker_ready(self, slot: WorkerSlot) -> None:
        self._emit("worker_ready", worker_id=slot.worker_id, pid=slot.pid)

    def worker_ended(self, slot: WorkerSlot, exitcode: int | None, oom: bool, planned: bool) -> None:
        if planned:
            self._emit("worker_exited", worker_id=slot.worker_id, pid=slot.pid, exit_code=exitcode)
            return
        if slot.kill_reason is not None:
            reason = f"killed by the pool ({slot.kill_reason.value})"
        else:
            reason = f"died on its own: {describe_exitcode(exitcode)}"
        self._emit("worker_died", worker_id=slot.worker_id, pid=slot.pid, exit_code=exitcode,
                      signal=signal_name(exitcode), oom=oom, reason=reason)

    def restart_backoff(self, slot: WorkerSlot, delay: float, failures: int) -> None:
        self._emit("restart_backoff", worker_id=slot.worker_id, delay=delay, failures=failures)

    # ------------------------------------------------------------------ tasks
    def task_dispatched(self, slot: WorkerSlot, task: Task) -> None:
        self._emit("task_dispatched", task_id=task.task_id, call=task.job.job_id, worker_id=slot.worker_id,
                      pid=slot.pid, items=[task.first_index, task.first_index + task.n_items - 1],
                      form=task.job.form)

    def task_started(self, slot: WorkerSlot, task: Task, began: float) -> None:
        """``began``: when the worker took the task up (it runs its ledger in order: after its last answer)."""
        self._emit("task_started", t=began, task_id=task.task_id, worker_id=slot.worker_id, pid=slot.pid,
                      item=task.first_index)

    def task_finished(self, slot: WorkerSlot, task: Task) -> None:
        self._emit("task_finished", task_id=task.task_id, worker_id=slot.worker_id, pid=slot.pid)

    def task_failed(self, task: Task, slot: WorkerSlot | None, item: int | None, error: str | None,
                    cause: str) -> None:
        self._emit("task_failed", task_id=task.task_id, worker_id=None if slot is None else slot.worker_id,
                      pid=None if slot is None else slot.pid, item=item, error=error, cause=cause)

    def task_requeued(self, task: Task, from_worker: int) -> None:
        self._emit("task_requeued", task_id=task.task_id, from_worker=from_worker)

    def task_retried(self, task: Task) -> None:
        self._emit("task_retried", task_id=task.task_id, attempt=task.attempt)

    def map_aborted(self, job: Job, reason: str, worker_id: int | None) -> None:
        self._emit("map_aborted", call=job.job_id, reason=reason, worker_id=worker_id)

    # ------------------------------------------------------------------ the rest
    def faults(self, entries: Iterable[Any]) -> None:
        """Copy the chaos journal's entries in (their wall-clock times moved onto the monotonic clock)."""
        shift = time.monotonic() - time.time()
        for entry in entries:
            self._emit("fault_injected", t=entry.time + shift, worker_id=entry.worker_id, pid=entry.pid,
                          site=entry.site, action=entry.action, term=entry.rule, task_id=None,
                          item=entry.task_index)

    def flush(self) -> None:
        try:
            self.log.flush()
        except OSError:
            self.broken = True
            logger.exception("mpire_fault's event log cannot be written; the pool goes on without it")

    def close(self) -> None:
        try:
            self.log.close()
        except OSError:
            logger.exception("mpire_fault's event log could not be closed cleanly")
