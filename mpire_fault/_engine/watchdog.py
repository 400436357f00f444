"""The supervisor's clocks: timeouts, start-up and exit deadlines, memory limits.

Deaths are seen through sentinels, never by polling; only these limits need
a clock. ``next_timeout`` tells the selector how long it may sleep.
"""
from __future__ import annotations

import time

from .jobs import WorkerSession
from .slots import WorkerSlot
from .state import PoolState
from .wire.protocol import (
    EXIT_TARGET,
    EXITING,
    INIT_TARGET,
    INITIALIZING,
    ITEM,
    PHASE,
    PHASE_START,
    PROGRESS_FIELDS,
    RUNNING,
    TASK_ID,
    KillReason,
)

MEMORY_POLL = 0.05
_USS_EVERY = 1.0  # seconds between full readings of a worker's own memory (see poll_memory)
DEFAULT_EXIT_GRACE = 30.0  # worker_exit's bound when the call sets no worker_exit_timeout


def exit_grace(session: WorkerSession | None) -> float:
    """How long a worker's ``worker_exit`` may run before the kill: the session's timeout, or the default."""
    return (session.worker_exit_timeout if session is not None else None) or DEFAULT_EXIT_GRACE
DEFAULT_TIMEOUT_GRACE = 5.0  # after a soft timeout, how long the code may take to stop before the kill
START_UP_ALLOWANCE = 30.0  # a worker that has not reached worker_init by then is stuck starting
_INIT, _EXIT = (INIT_TARGET, -1.0), (EXIT_TARGET, -1.0)  # soft-timeout targets of the hooks


class Watchdog:
    """Everything that is checked against time, on the shared ``PoolState``."""

    def __init__(self, state: PoolState) -> None:
        self.state = state
        self.next_memory_poll = 0.0

    # next_timeout and check_clocks run on every pass of the supervisor's
    # loop, over the watched slots only (PoolState.watched): in a busy pool of
    # untimed tasks that set is empty, and a pass costs the same at 8 workers
    # as at 128.
    def next_timeout(self) -> float:
        state, now = self.state, time.monotonic()
        soonest = now + 1.0
        session = state.session
        init_poll = min(0.05, session.worker_init_timeout) if session and session.worker_init_timeout else None
        for slot in state.watched:  # the others have nothing on a clock: see PoolState.watched
            if slot.process is None:
                restart_at = slot.restart_at
                if restart_at is not None and restart_at < soonest:
                    soonest = restart_at
                continue
            for deadline in (slot.stop_deadline, slot.hard_deadline):
                if deadline is not None and deadline < soonest:
                    soonest = deadline
            if not slot.ready:
                if init_poll is not None and now + init_poll < soonest:
                    soonest = now + init_poll
            elif slot.ledger:
                timeout = slot.ledger[0].job.task_timeout
                if timeout and now + min(0.05, timeout) < soonest:
                    soonest = now + min(0.05, timeout)
        if state.settings.max_worker_memory and self.next_memory_poll < soonest:
            soonest = self.next_memory_poll
        return max(0.0, soonest - now)

    def check_clocks(self) -> None:
        state, now = self.state, time.monotonic()
        forget = None
        for slot in state.watched:
            if slot.off_the_clock():
                forget = [slot] if forget is None else forget + [slot]
                continue
            if slot.process is None or slot.kill_reason is not None:
                continue
            ready, stopping = slot.ready, slot.stop_deadline is not None
            if ready and not stopping and not (slot.ledger and slot.ledger[0].job.task_timeout):
                continue  # a timed task waits behind an untimed one: watched until it runs
            base = slot.worker_id * PROGRESS_FIELDS
            if stopping:  # being stopped, possibly while still in worker_init
                self.check_stop(slot, base, now)
            if not ready:
                self.check_init(slot, base, now)
            elif slot.ledger and slot.ledger[0].job.task_timeout:
                self.check_task(slot, base, now)
        for slot in forget or ():
            state.watched.discard(slot)
        limit = state.settings.max_worker_memory
        if limit and now >= self.next_memory_poll:
            self.next_memory_poll = now + MEMORY_POLL
            self.poll_memory(limit)

    # Each limit is enforced in two steps, as billiard does with its soft and
    # hard time limits: first an exception raised inside the overrunning code
    # (its finally blocks run, shared locks and Conditions stay balanced, the
    # worker lives on); then, if it still runs after the grace period (stuck
    # in C code, or it swallowed the exception), the kill.
    def check_task(self, slot: WorkerSlot, base: int, now: float) -> None:
        head, progress = slot.ledger[0], self.state.shared.progress
        timeout = head.job.task_timeout
        if timeout is None or progress[base + TASK_ID] != head.task_id:
            return  # untimed, or not begun yet
        grace = self.state.settings.timeout_grace
        if progress[base + PHASE] != RUNNING:
            # Loading the arguments (which imports the function's module) and
            # pickling the result are not the task's time, but they must end:
            # a stuck __setstate__ gets the timeout plus the grace period, then the kill.
            if now - progress[base + PHASE_START] > timeout + grace:
                slot.kill(KillReason.TIMEOUT)
            return
        target = (float(head.task_id), progress[base + ITEM])
        if slot.interrupted == target:
            if slot.past_hard_deadline(now):
                slot.kill(KillReason.TIMEOUT)
        elif now - progress[base + PHASE_START] > timeout:
            slot.interrupt(progress, *target, grace)

    def check_init(self, slot: WorkerSlot, base: int, now: float) -> None:
        session, progress = self.state.session, self.state.shared.progress
        timeout = session.worker_init_timeout if session else None
        if not timeout:
            return
        grace = self.state.settings.timeout_grace
        if slot.interrupted == _INIT:
            if slot.past_hard_deadline(now):
                slot.kill(KillReason.INIT_TIMEOUT)
        elif progress[base + PHASE] == INITIALIZING:
            # Timed from worker_init's start: booting an interpreter (spawn) is not init's time.
            if now - progress[base + PHASE_START] > timeout:
                slot.interrupt(progress, *_INIT, grace)
        elif slot.interrupted is None and now - slot.started_at > timeout + grace + START_UP_ALLOWANCE:
            slot.kill(KillReason.INIT_TIMEOUT)  # never even reached worker_init

    def check_stop(self, slot: WorkerSlot, base: int, now: float) -> None:
        progress, deadline = self.state.shared.progress, slot.stop_deadline
        if slot.interrupted == _EXIT:
            if slot.past_hard_deadline(now):
                slot.kill(KillReason.EXIT_TIMEOUT)
        elif deadline is not None and now > deadline and slot.kill_reason is None:
            if progress[base + PHASE] == EXITING:
                slot.interrupt(progress, *_EXIT, self.state.settings.timeout_grace)
            elif now > deadline + self.state.settings.timeout_grace:
                slot.kill(KillReason.EXIT_TIMEOUT)

    def poll_memory(self, limit: int) -> None:
        """Kill a worker whose own memory passed ``limit``.

        A worker's own memory is its resident pages not shared with another
        process (psutil's USS): a forked worker starts with every resident
        page of its parent in its RSS, so a parent of 2 GB would put every
        worker over a 1 GB limit before it ran anything. USS costs a walk of
        the page tables (about 0.5 ms), so each poll reads the cheap RSS and
        subtracts the shared part measured last; the full reading comes
        when that estimate passes the limit, and once a second (a worker that
        writes to pages it shared makes them its own).
        """
        import psutil

        now = time.monotonic()
        for slot in self.state.slots:
            if not slot.alive or slot.kill_reason:
                continue
            try:
                if slot.ps is None:
                    slot.ps = psutil.Process(slot.pid)
                own = slot.ps.memory_info().rss - slot.shared_rss
                if own > limit or now >= slot.next_uss:
                    full = slot.ps.memory_full_info()
                    slot.shared_rss = max(0, full.rss - full.uss)
                    slot.next_uss = now + _USS_EVERY
                    own = full.uss
            except psutil.Error:
                continue
            slot.rss = own
            if own > limit:
                slot.kill(KillReason.OOM)
