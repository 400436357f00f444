"""Settlement.abort kills the worker running an item of the aborted call, wherever it sits in the ledger.

A worker may answer task A and begin task B before the supervisor reads
A's answer: then B, not the ledger's head, is what runs. The abort must
kill it all the same (the kit's map-error-abort caught an item of an
aborted call running to its end this way, about once in 300 examples).
These tests build the few parts of the pool state abort reads, so the
race is set up exactly instead of hoped for.
"""
from __future__ import annotations

from collections import deque
from types import SimpleNamespace

from mpire_fault._engine.jobs import Task
from mpire_fault._engine.settlement import Settlement
from mpire_fault._engine.wire.protocol import CANCEL_SLOTS, IDLE, PHASE, PROGRESS_FIELDS, RUNNING, TASK_ID, KillReason


class FakeSlot:
    def __init__(self, worker_id: int, ledger: list[Task]) -> None:
        self.worker_id = worker_id
        self.ledger = deque(ledger)
        self.alive = True
        self.process = SimpleNamespace(exitcode=None)
        self.killed: list[KillReason] = []

    def kill(self, reason: KillReason) -> None:
        self.killed.append(reason)


class FakeJob:
    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.done = False
        self.errors: list = []

    def on_error(self, task, error) -> None:
        self.errors.append(error)


def _state(slots: list[FakeSlot], running: dict[int, tuple[int, float]]):
    progress = [0.0] * (PROGRESS_FIELDS * len(slots))
    for worker_id, (task_id, phase) in running.items():
        progress[worker_id * PROGRESS_FIELDS + TASK_ID] = task_id
        progress[worker_id * PROGRESS_FIELDS + PHASE] = phase
    shared = SimpleNamespace(progress=progress, cancelled=[0] * CANCEL_SLOTS)
    return SimpleNamespace(recorder=None, shared=shared, pending=deque(), slots=slots)


def _task(task_id: int, job) -> Task:
    return Task(task_id=task_id, job=job, first_index=task_id, n_items=1, payload=b"")


def test_abort_kills_a_running_task_behind_an_unread_answer():
    job = FakeJob(7)
    answered, running = _task(1, job), _task(2, job)
    slot = FakeSlot(0, [answered, running])  # task 1's answer is still in the pipe
    state = _state([slot], {0: (2, RUNNING)})
    Settlement(state, serializer=None, restarts=None).abort(job, kill_running=True, error=ValueError("boom"))
    assert slot.killed == [KillReason.ABORT]
    assert state.shared.cancelled[job.job_id % CANCEL_SLOTS] == job.job_id
    assert job.done and len(job.errors) == 1


def test_abort_spares_workers_of_other_calls_and_idle_ones():
    job, other = FakeJob(7), FakeJob(8)
    busy_elsewhere = FakeSlot(0, [_task(1, job), _task(3, other)])  # runs the other call's task
    idle = FakeSlot(1, [_task(4, job)])  # handed a task of the call, not begun
    state = _state([busy_elsewhere, idle], {0: (3, RUNNING), 1: (4, IDLE)})
    Settlement(state, serializer=None, restarts=None).abort(job, kill_running=True)
    assert busy_elsewhere.killed == [] and idle.killed == []


def test_abort_leaves_a_worker_that_already_died_to_its_own_settlement():
    job = FakeJob(7)
    slot = FakeSlot(0, [_task(1, job)])
    slot.process.exitcode = -9
    state = _state([slot], {0: (1, RUNNING)})
    Settlement(state, serializer=None, restarts=None).abort(job, kill_running=True)
    assert slot.killed == []
