"""Handing queued tasks to workers, and running graceful stops.

The dispatcher reads the pending queue of the shared ``PoolState`` and
appends each task it hands out to a worker's ledger. It never blocks: a
worker's new tasks are pickled into its slot's outgoing buffer and written
once at the end of a pass; what the pipe does not take at once is written
when the selector says the pipe has room.
"""
from __future__ import annotations

import pickle
import selectors
import time
from collections.abc import Callable
from typing import Any

from .jobs import ApplyJob, Barrier, MapJob, Task, WorkerExits, WorkerSession
from .slots import WorkerSlot
from .state import Mode, PoolState
from .watchdog import exit_grace
from .wire.protocol import stop, task_message, update

# How many tasks a worker is handed at once: the running one, plus others
# waiting in its pipe so it never idles while the supervisor catches up.
# A task waits behind others only while the expected wait (the tasks ahead
# times the function's mean duration) stays under QUEUE_BUDGET: a task queued
# behind a long one would sit there while another worker idles (head-of-line
# blocking), and a queued message cannot be taken back from a pipe without
# risking it running twice. Tiny tasks get a deep queue (up to PREFETCH_MAX,
# so a worker never waits for a round trip through the supervisor); tasks of
# 5 ms or more, or of a function not seen yet, get none.
PREFETCH_MAX = 16
QUEUE_BUDGET = 0.005


class Dispatcher:
    """Moves tasks from the pending queue into workers' ledgers and pipes."""

    def __init__(self, state: PoolState, selector: selectors.BaseSelector, dumps: Callable[[Any], Any],
                 start_workers: Callable[[], None]) -> None:
        self.state = state
        self.selector = selector
        self.dumps = dumps  # the pool's serializer: hooks sent to live workers
        self.start_workers = start_workers
        self._unflushed: set[WorkerSlot] = set()  # slots handed tasks in this pass, written once at its end
        self.recorder = state.recorder  # fixed for the supervisor's life

    def dispatch(self) -> None:
        """Hand pending tasks to workers; each worker's new tasks go out in one write."""
        self._dispatch()
        for slot in self._unflushed:
            self.flush(slot)
        self._unflushed.clear()

    def _dispatch(self) -> None:
        state = self.state
        while state.pending and state.mode is not Mode.FINISHING or state.front_barrier() is not None:
            head = state.pending[0]
            if isinstance(head, Barrier):
                if not self.run_barrier(head):
                    return
                continue
            if head.job.done:
                state.pending.popleft()
                continue
            if state.mode is Mode.STOPPED:
                if not self.begin(head.job.session):
                    return  # an earlier graceful stop is still finishing
            elif head.job.session != state.session:
                if (isinstance(head.job, ApplyJob) and state.mode is Mode.RUNNING and not state.gave_up
                        and state.session is not None):
                    # As MPIRE: an apply call's hooks count only when it starts the workers; while
                    # workers run (or start) it runs under theirs, whatever hooks it names.
                    head.job.session = state.session
                elif not self.update_session(head.job.session):
                    state.pending.appendleft(Barrier(implicit=True))
                    continue
            slot = self.pick_slot(head)
            if slot is None:
                return
            state.pending.popleft()
            self.hand(slot, head)

    def begin(self, session: WorkerSession) -> bool:
        """Start the workers of ``session`` from none; False while an earlier graceful stop is still finishing."""
        state = self.state
        if any(s.alive for s in state.slots):
            return False
        state.session, state.mode, state.gave_up = session, Mode.RUNNING, False
        if state.exits.closed:  # as MPIRE: starting workers from none empties get_exit_results()
            state.exits = WorkerExits()
        self.start_workers()
        return True

    def update_session(self, wanted: WorkerSession) -> bool:
        """A call brings other hooks while workers live: keep the workers, as MPIRE does.

        The live workers (and their replacements) keep the ``worker_init``
        they ran, so the state it built survives the call (MPIRE's "worker
        state with keep_alive" recipe); the call's ``worker_exit``,
        ``worker_lifespan`` and ``worker_exit_timeout`` take effect, sent to
        each worker behind the tasks it already holds. False when there are
        no live workers to keep, or the new ``worker_exit`` cannot be
        pickled: the workers are then restarted with the call's hooks.
        """
        state = self.state
        current = state.session
        if (current is None or state.mode is not Mode.RUNNING or state.gave_up
                or not any(s.alive and s.ready for s in state.slots)):
            return False
        merged = WorkerSession(current.worker_init, wanted.worker_exit, wanted.worker_lifespan,
                               current.worker_init_timeout, wanted.worker_exit_timeout)
        if (merged.worker_exit, merged.worker_lifespan) != (current.worker_exit, current.worker_lifespan):
            live = [slot for slot in state.slots if slot.alive and not slot.stopping]
            try:  # once per worker: a thread's serializer hands each reference over once
                messages = [pickle.dumps(update(self.dumps((merged.worker_exit, merged.worker_lifespan))),
                                         protocol=pickle.HIGHEST_PROTOCOL) for _ in live]
            except Exception:  # noqa: BLE001 - a hook that will not pickle can still reach new workers by fork
                return False
            for slot, message in zip(live, messages, strict=True):
                slot.queue_bytes(message)
                self._unflushed.add(slot)
        state.session = merged
        return True

    def pick_slot(self, task: Task) -> WorkerSlot | None:
        state = self.state
        if state.settings.order_tasks:  # MPIRE's order_tasks: task k of a call goes to worker k % n_jobs
            slot = state.slots[task.ordinal % len(state.slots)]
            return slot if slot.takes_work and self.has_room(slot) else None
        best, full = None, None
        for slot in state.roomy:  # not every slot: see PoolState.roomy
            if not (slot.takes_work and self.has_room(slot)):
                full = [slot] if full is None else full + [slot]
            elif not slot.ledger:
                best = slot  # an idle worker: nobody can be better
                break
            elif best is None or len(slot.ledger) < len(best.ledger):
                best = slot
        for slot in full or ():
            del state.roomy[slot]
        return best

    def has_room(self, slot: WorkerSlot) -> bool:
        ahead = len(slot.ledger)
        if not ahead:
            return True
        if ahead >= PREFETCH_MAX:
            return False
        job = slot.ledger[-1].job
        duration = job.duration if isinstance(job, MapJob) else self.state.durations.get(job.func_name)
        return ahead * (1.0 if duration is None else duration) < QUEUE_BUDGET

    def record_duration(self, slot: WorkerSlot, task: Task) -> None:
        """Keep a moving average of task durations (for ``has_room``): per map call, per apply function."""
        now = time.monotonic()
        spent = now - max(task.handed_at, slot.last_answer)
        slot.last_answer = now
        job = task.job
        if isinstance(job, MapJob):
            job.duration = spent if job.duration is None else 0.8 * job.duration + 0.2 * spent
            return
        name, durations = job.func_name, self.state.durations
        previous = durations.get(name)
        durations[name] = spent if previous is None else 0.8 * previous + 0.2 * spent

    def hand(self, slot: WorkerSlot, task: Task) -> None:
        task.handed_at = time.monotonic()
        slot.ledger.append(task)
        job = task.job
        if job.task_timeout is not None:
            self.state.watched.add(slot)
        message = task_message(task.task_id, job.job_id, task.first_index, task.attempt, task.payload,
                           job.task_timeout is not None, job.chaos_call)
        slot.queue_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        self._unflushed.add(slot)
        if self.recorder is not None:
            self.recorder.task_dispatched(slot, task)

    def flush(self, slot: WorkerSlot) -> None:
        if slot.task_fd is None:
            return
        done = slot.flush()
        if done and slot.write_registered:
            self.selector.unregister(slot.task_fd)
            slot.write_registered = False
        elif not done and not slot.write_registered:
            self.selector.register(slot.task_fd, selectors.EVENT_WRITE, ("write", slot))
            slot.write_registered = True

    def run_barrier(self, barrier: Barrier) -> bool:
        """Advance a graceful stop; True once it is complete and popped."""
        state = self.state
        if any(s.ledger for s in state.slots):
            return False
        if barrier.keep_workers:  # every task queued before it is answered, and every retiring worker reported
            if any(s.retiring and s.alive for s in state.slots):
                return False
            state.pending.popleft()
            barrier.exits = state.exits
            barrier.event.set()
            return True
        if not barrier.started:
            barrier.started = True
            if state.mode is Mode.RUNNING:  # a blocked pool stays blocked until new work arrives
                state.mode = Mode.STOPPED
            grace = exit_grace(state.session)
            for slot in state.slots:
                slot.restart_at = None
                if slot.alive:
                    slot.ask_to_stop(grace)
                    state.watched.add(slot)
                    slot.queue_bytes(pickle.dumps(stop()))
                    self.flush(slot)
        if any(s.alive for s in state.slots):
            return False
        state.pending.popleft()
        if not barrier.implicit:  # new hooks only restart the workers: their lives' values stay in the list
            barrier.exits = state.exits
            state.exits.closed = True
        barrier.event.set()
        return True
