"""What happens when a worker process ends: its ledger is settled.

The head of the ledger is the task the worker was running, if the worker's
progress slot says it began it; it fails (or is retried, for apply with
``max_task_retries``). The rest were never started and go back to the front
of the queue. A map call whose task failed is aborted as a whole. A worker
that dies before it is ready counts against the restart budget.
"""
from __future__ import annotations

import functools
from collections import deque

from .._core.remote import PickledError
from ..errors import Death, TaskTimeoutError, WorkerDiedError, WorkerExitError, WorkerInitError, hook_error
from .jobs import Barrier, Job, Task
from .restarts import Restarts
from .slots import WorkerSlot
from .state import Mode, PoolState
from .watchdog import exit_grace
from .wire.codec import Serializer
from .wire.protocol import (
    CANCEL_SLOTS,
    IDLE,
    PHASE,
    PHASE_NAMES,
    PROGRESS_FIELDS,
    STRUCK,
    TASK_ID,
    KillReason,
    running_item,
)


def _init_failed(head: str, cause: BaseException) -> BaseException:
    """The error every waiting caller gets when workers cannot start: a WorkerInitError, also of cause's type."""
    return hook_error(WorkerInitError, head + repr(cause), cause)


class Settlement:
    """Settles deaths, requeues and failures on the shared ``PoolState``."""

    def __init__(self, state: PoolState, serializer: Serializer, restarts: Restarts) -> None:
        self.state = state
        self.serializer = serializer  # for worker_init's errors, which travel on pickled to the callers
        self.restarts = restarts  # counts restarts and plans them (restarts.py)

    def worker_ended(self, slot: WorkerSlot) -> None:
        """A worker process ended (its last answers already read): settle its ledger, plan its restart."""
        state = self.state
        # Not ready from here on: a caller woken by this death must not see
        # the dead pid among statistics()' live workers.
        was_ready = slot.ended()
        slot.reap(1.0)
        exitcode = slot.process.exitcode
        progress, base = state.shared.progress, slot.worker_id * PROGRESS_FIELDS
        began_id, item, phase = progress[base + TASK_ID], running_item(progress, base), progress[base + PHASE]
        limit = state.settings.max_worker_memory
        oom = slot.kill_reason is KillReason.OOM or (exitcode == -9 and limit is not None and 0 < limit < slot.rss)
        ledger = list(slot.ledger)
        slot.ledger.clear()
        head = ledger.pop(0) if ledger and began_id == ledger[0].task_id and phase != IDLE else None
        planned = (slot.stopping and slot.exit_reported) or (slot.retiring and head is None)
        # A chaos fault that ends the process was about to strike (the journal has it): a death, whoever's
        # SIGKILL landed first, so statistics() and the journal agree.
        struck = progress[base + STRUCK] == 1.0
        # Workers we stopped ourselves because their map call was aborted are
        # replacements, not deaths: the death that aborted the call is recorded.
        if struck or ((not planned or head is not None) and slot.kill_reason is not KillReason.ABORT):
            reason = slot.kill_reason.value if slot.kill_reason is not None and not struck else None
            state.counters.deaths.append(Death(slot.worker_id, slot.pid, exitcode, oom, PHASE_NAMES.get(phase),
                                               reason, head.job.describe(head, item) if head else None))
        recorder = state.recorder
        if recorder is not None:
            if head is not None:
                recorder.task_started(slot, head, max(head.handed_at, slot.last_answer))
            recorder.worker_ended(slot, exitcode, oom, planned and head is None)
        self.requeue(ledger, slot.worker_id)
        if head is not None:
            self.settle_head(slot, head, exitcode, oom, item, phase)
        if slot.kill_reason is KillReason.EXIT_TIMEOUT:  # a stop's or a retirement's worker_exit
            grace = exit_grace(state.session)
            message = f"worker_exit on worker {slot.worker_id} exceeded worker_exit_timeout={grace}s; killed"
            state.exits.errors.append(hook_error(WorkerExitError, message, TimeoutError(message)))
        if slot.stopping or state.finishing:
            return
        idle_death = head is None and not planned and slot.kill_reason is None
        if not self.restarts.after_end(slot, was_ready, idle_death):
            self.start_up_failed(slot, exitcode)

    def start_up_failed(self, slot: WorkerSlot, exitcode: int | None) -> None:
        """Workers keep dying before they are ready (the restart budget is used up): fail what waits."""
        state = self.state
        head = f"worker {slot.worker_id} failed to start {slot.start_failures} times in a row; last failure: "
        if slot.kill_reason is KillReason.INIT_TIMEOUT:
            timeout = state.session.worker_init_timeout if state.session else None
            ours: BaseException = TimeoutError(
                f"worker_init on worker {slot.worker_id} exceeded worker_init_timeout={timeout}s")
        elif slot.init_error is not None:  # what worker_init raised, unpickled by each caller that reads it
            self.give_up(PickledError(slot.init_error, self.serializer,
                                      rebuild=functools.partial(_init_failed, head)), None)
            return
        else:
            ours = WorkerDiedError(slot.worker_id, slot.pid, exitcode, task=None, detail="died during start-up")
        self.give_up(_init_failed(head, ours), ours)

    def give_up(self, error: BaseException | PickledError, cause: BaseException | None) -> None:
        """Workers cannot be started: fail what waits and stop respawning until new work arrives."""
        self.fail_pending(error, cause)
        self.state.gave_up = True
        if not self.state.finishing:
            self.state.mode = Mode.BLOCKED
        self.restarts.hold_all()

    def settle_head(self, slot: WorkerSlot, task: Task, exitcode: int | None, oom: bool, item: int,
                    phase: float) -> None:
        job, recorder = task.job, self.state.recorder
        if job.done:
            if recorder is not None:
                recorder.task_failed(task, slot, item, "its map call was aborted", "abort")
            return
        if slot.kill_reason is KillReason.TIMEOUT:
            error = TaskTimeoutError(job.task_timeout, slot.worker_id, job.describe(task, item), killed=True)
            if recorder is not None:
                recorder.task_failed(task, slot, item, str(error), "timeout")
            self.fail_task(task, error)
            return
        task.deaths.append(Death(slot.worker_id, slot.pid, exitcode, oom, PHASE_NAMES.get(phase)))
        if job.retries_after_death(task, self.state.settings.max_task_retries):
            task.attempt += 1
            self.state.counters.tasks_requeued += 1
            self.state.pending.appendleft(task)
            if recorder is not None:
                recorder.task_retried(task)
            return
        detail = f"while {PHASE_NAMES.get(phase, 'running')}"
        died = WorkerDiedError(slot.worker_id, slot.pid, exitcode, job.describe(task, item), oom, task.deaths, detail)
        if recorder is not None:
            recorder.task_failed(task, slot, item, str(died), "death")
        self.fail_task(task, died, slot.worker_id)

    def requeue(self, tasks: list[Task], from_worker: int) -> None:
        """Put tasks a worker was handed but never began back at the front of the queue, in order."""
        recorder = self.state.recorder
        for task in reversed(tasks):
            if not task.job.done:
                self.state.counters.tasks_requeued += 1
                self.state.pending.appendleft(task)
                if recorder is not None:
                    recorder.task_requeued(task, from_worker)

    # ------------------------------------------------------------------ failing
    def fail_task(self, task: Task, exc: BaseException | PickledError, worker_id: int | None = None) -> None:
        self.state.counters.tasks_failed += 1
        if task.job.done:
            return
        if task.job.aborts_on_failure:
            self.abort(task.job, True, reason=f"task {task.task_id} failed", worker_id=worker_id,
                       error=exc, failed=task)
        else:
            task.job.on_error(task, exc)

    def abort(self, job: Job, kill_running: bool, reason: str = "the caller stopped the call",
              worker_id: int | None = None, error: BaseException | PickledError | None = None,
              failed: Task | None = None) -> None:
        """Stop a map call: no further item starts, running items are killed if asked, then ``error`` goes out.

        In that order: a caller woken by the error must find no item of its
        call still running to its end (the kit's map-error-abort checks it).
        """
        state, recorder = self.state, self.state.recorder
        if recorder is not None and state.shared.cancelled[job.job_id % CANCEL_SLOTS] != job.job_id:
            recorder.map_aborted(job, reason, worker_id)
            for task in state.pending:
                if isinstance(task, Task) and task.job is job:
                    recorder.task_failed(task, None, None, "its map call was aborted before it began", "abort")
        state.shared.cancelled[job.job_id % CANCEL_SLOTS] = job.job_id
        state.pending = deque(t for t in state.pending if isinstance(t, Barrier) or t.job is not job)
        if kill_running:
            progress = state.shared.progress
            for slot in state.slots:
                if not (slot.alive and slot.ledger):
                    continue
                base = slot.worker_id * PROGRESS_FIELDS
                if progress[base + PHASE] == IDLE:
                    continue
                # The running task need not be the ledger's head: answers for
                # the tasks before it may still be unread in the pipe.
                began = progress[base + TASK_ID]
                running = any(task.task_id == began and task.job is job for task in slot.ledger)
                # A worker that already died on its own is a death of its own
                # (recorded), not one of ours: only kill the living.
                if running and slot.process.exitcode is None:
                    slot.kill(KillReason.ABORT)
        if error is not None and not job.done:
            job.on_error(failed, error)
        job.done = True

    def fail_pending(self, exc: BaseException | PickledError, cause: BaseException | None) -> None:
        state = self.state
        if isinstance(exc, BaseException):
            exc.__cause__ = cause
        name = type(exc).__name__ if isinstance(exc, BaseException) else "the error"
        jobs = {id(t.job): t.job for t in state.pending if isinstance(t, Task)}
        for job in jobs.values():
            if not job.done:
                job.on_error(None, exc)
                if job.aborts_on_failure:
                    self.abort(job, True, reason=f"{name}: the pool cannot run it")
        state.pending = deque(t for t in state.pending if isinstance(t, Barrier))

    def fail_everything(self, exc: BaseException, cause: BaseException | None = None) -> None:
        state = self.state
        for slot in state.slots:
            state.pending.extend(slot.ledger)
            slot.ledger.clear()
        self.fail_pending(exc, cause)
        for item in state.pending:  # only graceful stops are left: let their waiters go
            if isinstance(item, Barrier):
                item.event.set()
        state.pending.clear()
