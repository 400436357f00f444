"""What the supervisor does when a worker process ends: settle its ledger.

The head of the ledger is the task the worker was running, if the worker's
progress slot says it began it; it fails (or is retried, for apply with
``max_task_retries``). The rest were never started and go back to the front
of the queue. A map call whose task failed is aborted as a whole. A worker
that dies before it is ready counts against the restart budget.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from .errors import Death, TaskTimeoutError, WorkerDiedError, WorkerExitError, WorkerInitError
from .jobs import Barrier, Job, Task
from .slots import WorkerSlot
from .watchdog import DEFAULT_EXIT_GRACE
from .worker import CANCEL_SLOTS, IDLE, PHASE_NAMES, PROGRESS_FIELDS


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


class Settlement:
    """Mixin of ``Supervisor``: deaths, requeues and failures."""

    def on_exit(self, slot: WorkerSlot) -> None:
        """A worker process ended: settle its ledger, then replace it."""
        self.read_results(slot)
        # Not ready from here on: a caller woken by this death must not see
        # the dead pid among statistics()' live workers.
        was_ready, slot.ready = slot.ready, False
        slot.reap(1.0)
        exitcode = slot.process.exitcode
        base = slot.worker_id * PROGRESS_FIELDS
        began_id, item, phase = self.progress[base], int(self.progress[base + 1]), self.progress[base + 2]
        oom = slot.kill_reason == "oom" or (
            exitcode == -9 and bool(self.settings.max_worker_memory) and slot.rss > self.settings.max_worker_memory
        )
        ledger = list(slot.ledger)
        slot.ledger.clear()
        head = ledger.pop(0) if ledger and began_id == ledger[0].task_id and phase != IDLE else None
        planned = (slot.stopping and slot.exit_reported) or (slot.retiring and head is None)
        # Workers we stopped ourselves because their map call was aborted are
        # replacements, not deaths: the death that aborted the call is recorded.
        if (not planned or head is not None) and slot.kill_reason != "abort":
            self.stats["deaths"].append(
                {"worker_id": slot.worker_id, "pid": slot.pid, "exitcode": exitcode, "oom": oom,
                 "reason": slot.kill_reason, "task": head.job.describe(head, item) if head else None}
            )
        self.requeue(ledger)
        if head is not None:
            self.settle_head(slot, head, exitcode, oom, item, phase)
        reason, init_error = slot.kill_reason, slot.init_error
        stopping = slot.stopping
        if stopping and reason == "exit-timeout" and self.pending and isinstance(self.pending[0], Barrier):
            grace = (self.session and self.session.worker_exit_timeout) or DEFAULT_EXIT_GRACE
            self.pending[0].errors.append(
                WorkerExitError(f"worker_exit on worker {slot.worker_id} exceeded worker_exit_timeout={grace}s; killed")
            )
        self.release(slot)
        if stopping or self.finishing:
            return
        self.stats["restarts"] += 1
        if was_ready:
            # A worker that keeps dying idle soon after start-up (a time bomb
            # left by worker_init, say) is replaced with growing delays, not
            # in a tight respawn loop; answering a task resets the count.
            if head is None and not planned and reason is None:
                slot.idle_deaths += 1
            slot.restart_at = time.monotonic() + self.settings.backoff.delay(slot.idle_deaths)
            return
        # Died during start-up: count it against the restart budget.
        if reason == "init-timeout":
            init_error = TimeoutError(
                f"worker_init on worker {slot.worker_id} exceeded worker_init_timeout={self.session.worker_init_timeout}s"
            )
        elif init_error is None:
            init_error = WorkerDiedError(slot.worker_id, slot.pid, exitcode, task=None, detail="died during start-up")
        slot.failures += 1
        budget = self.settings.backoff
        if slot.failures >= budget.max_failures:
            error = WorkerInitError(
                f"worker {slot.worker_id} failed to start {slot.failures} times in a row; "
                f"last failure: {init_error!r}"
            )
            self.fail_pending(error, init_error)
            self.blocked = True
            for other in self.slots:
                other.restart_at = None
            return
        slot.restart_at = time.monotonic() + budget.delay(slot.failures)

    def settle_head(self, slot: WorkerSlot, task: Task, exitcode, oom: bool, item: int, phase: float) -> None:
        job = task.job
        if job.done:
            return
        if slot.kill_reason == "timeout":
            self.fail_task(task, TaskTimeoutError(job.task_timeout, slot.worker_id, job.describe(task, item)))
            return
        task.deaths.append(Death(slot.worker_id, slot.pid, exitcode, oom, PHASE_NAMES.get(phase)))
        if job.kind == "apply" and task.attempt < self.settings.max_task_retries:
            task.attempt += 1
            self.stats["tasks_requeued"] += 1
            self.pending.appendleft(task)
            return
        detail = f"while {PHASE_NAMES.get(phase, 'running')}"
        if slot.kill_reason == "external":
            detail += "; killed from outside"
        error = WorkerDiedError(slot.worker_id, slot.pid, exitcode, job.describe(task, item), oom, task.deaths, detail)
        self.fail_task(task, error)

    def requeue(self, tasks: list[Task]) -> None:
        for task in reversed(tasks):
            if not task.job.done:
                self.stats["tasks_requeued"] += 1
                self.pending.appendleft(task)

    # ------------------------------------------------------------------ failing
    def fail_task(self, task: Task, exc: BaseException) -> None:
        self.stats["tasks_failed"] += 1
        if task.job.done:
            return
        task.job.on_error(task, exc)
        if task.job.kind == "map":
            self.abort(task.job, True)

    def abort(self, job: Job, kill_running: bool, exc: BaseException | None = None) -> None:
        """Stop a map call: no further item starts, running items are killed if asked."""
        if exc is not None:
            job.on_error(None, exc)
        job.done = True
        self.cancelled[job.job_id % CANCEL_SLOTS] = job.job_id
        self.pending = deque(t for t in self.pending if isinstance(t, Barrier) or t.job is not job)
        if not kill_running:
            return
        for slot in self.slots:
            if slot.alive and slot.ledger and slot.ledger[0].job is job:
                base = slot.worker_id * PROGRESS_FIELDS
                if self.progress[base] == slot.ledger[0].task_id and self.progress[base + 2] != IDLE:
                    slot.kill("abort")

    def fail_pending(self, exc: BaseException, cause: BaseException | None) -> None:
        exc.__cause__ = cause
        jobs = {id(t.job): t.job for t in self.pending if isinstance(t, Task)}
        for job in jobs.values():
            if not job.done:
                job.on_error(None, exc)
                if job.kind == "map":
                    self.abort(job, True)
        self.pending = deque(t for t in self.pending if isinstance(t, Barrier))

    def fail_everything(self, exc: BaseException, cause: BaseException | None = None) -> None:
        for slot in self.slots:
            self.pending.extend(slot.ledger)
            slot.ledger.clear()
        self.fail_pending(exc, cause)
        for item in self.pending:
            item.event.set()
        self.pending.clear()
