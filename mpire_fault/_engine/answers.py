"""What the supervisor does with each answer a worker sends (see ``protocol`` for the kinds).

A worker answers the tasks of its ledger in order, so each task answer
settles the ledger's head. Nothing here unpickles what a user's code made:
results, exceptions and ``worker_exit`` values are passed on pickled and
loaded by whoever reads them.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from .._core.remote import PickledError
from ..errors import SupervisorError, TaskTimeoutError
from .dispatch import Dispatcher
from .jobs import Task
from .restarts import Restarts
from .settlement import Settlement
from .slots import WorkerSlot
from .state import PoolState
from .watchdog import exit_grace
from .wire.codec import Serializer
from .wire.protocol import (
    DONE,
    EXIT_FAILED,
    EXITED,
    FAILED,
    INIT_FAILED,
    READY,
    RETIRING,
    SKIPPED,
    SOFT_TIMEOUT,
    TOP_TASKS,
)
from .wire.shm import Shared


def _soft_timeout(timeout: float | None, worker_id: int, task: str, raised: BaseException) -> TaskTimeoutError:
    """The error a caller gets for a task our soft timeout interrupted (``raised`` is what the worker saw)."""
    error = TaskTimeoutError(timeout, worker_id, task, killed=False)
    error.__cause__ = raised.__cause__  # the worker's traceback: where the task was when it was stopped
    return error


class Answers:
    """One handler per answer kind, each named after it; parameters carry the message's field names."""

    def __init__(self, state: PoolState, settlement: Settlement, dispatcher: Dispatcher,
                 serializer: Serializer, restarts: Restarts) -> None:
        self.state = state
        self.restarts = restarts
        self.settlement = settlement
        self.dispatcher = dispatcher
        self.serializer = serializer
        self.recorder = state.recorder  # fixed for the supervisor's life
        self.handlers: dict[int, Callable[..., None]] = {
            READY: self.on_ready, INIT_FAILED: self.on_init_failed, DONE: self.on_done, FAILED: self.on_failed,
            SKIPPED: self.on_skipped, EXITED: self.on_exited, EXIT_FAILED: self.on_exit_failed,
            RETIRING: self.on_retiring, TOP_TASKS: self.on_top_tasks,
        }

    def on_ready(self, slot: WorkerSlot, pid: int) -> None:
        slot.became_ready()
        self.state.roomy[slot] = None
        self.restarts.ready(slot)
        if self.recorder is not None:
            self.recorder.worker_ready(slot)
        self.state.start_up_time[slot.worker_id] += time.monotonic() - slot.started_at

    def on_init_failed(self, slot: WorkerSlot, error: bytes) -> None:
        slot.init_error = error  # still pickled: the callers that get it unpickle it

    def answered(self, slot: WorkerSlot, task_id: int) -> Task:
        """Pop the ledger head the worker just answered for."""
        task = slot.ledger.popleft()
        self.state.roomy[slot] = None
        if task.task_id != task_id:
            raise SupervisorError(
                f"worker {slot.worker_id} answered task {task_id} but its ledger head is {task.task_id}")
        if self.recorder is not None:
            self.recorder.task_started(slot, task, max(task.handed_at, slot.last_answer))
        self.dispatcher.record_duration(slot, task)
        self.restarts.answered(slot)
        slot.interrupted = slot.hard_deadline = None  # a soft timeout, if any, has done its work
        return task

    def on_done(self, slot: WorkerSlot, task_id: int, data: bytes) -> None:
        task = self.answered(slot, task_id)
        if type(data) is Shared:  # in shared memory: map it and unlink its name now, whoever reads it later
            data = data.adopt()
        self.state.counters.tasks_completed += 1
        if self.recorder is not None:
            self.recorder.task_finished(slot, task)
        if not task.job.done:
            task.job.on_result(task, data)

    def on_failed(self, slot: WorkerSlot, task_id: int, offset: int, error: bytes, boundary: str | None,
                  summary: str) -> None:
        task = self.answered(slot, task_id)
        if self.recorder is not None:
            cause = "timeout" if boundary == SOFT_TIMEOUT else "exception"
            self.recorder.task_failed(task, slot, task.first_index + offset, summary, cause)
        if boundary == SOFT_TIMEOUT:  # our soft timeout, raised inside the task: the caller gets ours
            job = task.job
            rebuild = functools.partial(_soft_timeout, job.task_timeout, slot.worker_id,
                                        job.describe(task, task.first_index + offset))
            self.settlement.fail_task(task, PickledError(error, self.serializer, rebuild=rebuild))
        else:
            self.settlement.fail_task(task, PickledError(error, self.serializer, boundary))

    def on_skipped(self, slot: WorkerSlot, task_id: int) -> None:
        task = self.answered(slot, task_id)
        if self.recorder is not None:
            self.recorder.task_failed(task, slot, None, "its map call was aborted before it began", "abort")

    def on_exited(self, slot: WorkerSlot, data: Any) -> None:
        slot.exit_reported = True
        # MPIRE's get_exit_results() holds worker_exit's values only: the
        # worker sends None without a worker_exit (its own: a later call may
        # have changed it) and from a life that ran no task. Every life's
        # value is kept, whatever ended it: a stop, the worker's lifespan, a
        # restart for new hooks (an implicit barrier).
        if data is not None:
            if type(data) is Shared:
                data = data.adopt()
            self.state.exits.data.append(data)  # unpickled by the callers that read them

    def on_exit_failed(self, slot: WorkerSlot, error: bytes) -> None:
        slot.exit_reported = True
        self.state.exits.raised.append((slot.worker_id, error))  # raised by the next stop of the workers

    def on_retiring(self, slot: WorkerSlot, handled: int) -> None:
        # worker_exit runs next: on the clock as in a stop, so a stuck one cannot keep its slot forever.
        slot.retire(exit_grace(self.state.session))
        self.state.watched.add(slot)

    def on_top_tasks(self, slot: WorkerSlot, entries: list[tuple[float, str]]) -> None:
        offer = self.state.top_tasks.offer
        for seconds, args in entries:
            offer(seconds, args)
