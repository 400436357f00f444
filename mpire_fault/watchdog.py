"""The supervisor's clocks: timeouts, start-up and exit deadlines, memory limits.

Deaths are seen through sentinels, never by polling; only these limits need
a clock. ``next_timeout`` tells the selector how long it may sleep.
"""
from __future__ import annotations

import time

from .protocol import IDLE, PHASE, PHASE_START, PROGRESS_FIELDS, TASK_ID
from .state import PoolState

MEMORY_POLL = 0.05
DEFAULT_EXIT_GRACE = 30.0  # worker_exit's bound when the call sets no worker_exit_timeout


class Watchdog:
    """Everything that is checked against time, on the shared ``PoolState``."""

    def __init__(self, state: PoolState) -> None:
        self.state = state
        self.next_memory_poll = 0.0

    def next_timeout(self) -> float:
        state, now = self.state, time.monotonic()
        deadlines = [now + 1.0]
        for slot in state.slots:
            if slot.restart_at is not None:
                deadlines.append(slot.restart_at)
            if slot.stop_deadline is not None:
                deadlines.append(slot.stop_deadline)
            if slot.alive and not slot.ready and state.session and state.session.worker_init_timeout:
                deadlines.append(slot.started_at + state.session.worker_init_timeout)
            if slot.alive and slot.ledger and slot.ledger[0].job.task_timeout:
                deadlines.append(now + min(0.05, slot.ledger[0].job.task_timeout))
        if state.settings.max_worker_memory:
            deadlines.append(self.next_memory_poll)
        return max(0.0, min(deadlines) - now)

    def check_clocks(self) -> None:
        state, now = self.state, time.monotonic()
        session, progress = state.session, state.shared.progress
        for slot in state.slots:
            if not slot.alive:
                continue
            if slot.stop_deadline is not None and now > slot.stop_deadline:
                slot.kill("exit-timeout")
            if not slot.ready and session and session.worker_init_timeout:
                if now - slot.started_at > session.worker_init_timeout:
                    slot.kill("init-timeout")
            if slot.ledger and slot.ledger[0].job.task_timeout:
                base = slot.worker_id * PROGRESS_FIELDS
                head = slot.ledger[0]
                if progress[base + TASK_ID] == head.task_id and progress[base + PHASE] != IDLE:
                    if now - progress[base + PHASE_START] > head.job.task_timeout:
                        slot.kill("timeout")
        limit = state.settings.max_worker_memory
        if limit and now >= self.next_memory_poll:
            self.next_memory_poll = now + MEMORY_POLL
            self.poll_memory(limit)

    def poll_memory(self, limit: int) -> None:
        import psutil

        for slot in self.state.slots:
            if not slot.alive or slot.kill_reason:
                continue
            try:
                if slot.ps is None:
                    slot.ps = psutil.Process(slot.pid)
                slot.rss = slot.ps.memory_info().rss
            except psutil.Error:
                continue
            if slot.rss > limit:
                slot.kill("oom")
