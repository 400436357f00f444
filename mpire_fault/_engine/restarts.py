"""When a worker slot gets a new process, and how restarts are counted: the one owner of that policy.

Three counters, one meaning each:

* ``counters.restarts`` (the pool's): processes started again in a slot
  after one ended (a death, a kill, a retirement);
* ``slot.start_failures``: start-ups in a row that ended before the worker
  was ready (``worker_init`` raised, crashed or overran); at
  ``RestartBackoff.max_failures`` the pool gives up with ``WorkerInitError``
  instead of respawning forever;
* ``slot.idle_deaths``: deaths in a row of a ready worker that owned no task
  (a time bomb left by ``worker_init``, say), which space its restarts out.

Resets: a worker that becomes ready clears its start failures, one that
answers a task clears its idle deaths, and new work after the pool gave up
clears every slot's start failures (the budget starts afresh). The delays
between tries come from ``RestartBackoff.delay``.
"""
from __future__ import annotations

import time

from .slots import WorkerSlot
from .state import Mode, PoolState


class Restarts:
    """Counts restarts and plans when each slot starts again (the settlement and the answers report to it)."""

    def __init__(self, state: PoolState) -> None:
        self.state = state

    def after_end(self, slot: WorkerSlot, was_ready: bool, idle_death: bool) -> bool:
        """A worker ended and its slot wants a new process: count it and plan when.

        ``idle_death``: it died on its own while ready and owning no task.
        Returns False when it ended before it was ready and that used up the
        restart budget: the caller gives up (``Settlement.give_up``).
        """
        state = self.state
        state.counters.restarts += 1
        if was_ready:
            if idle_death:
                slot.idle_deaths += 1
            self._plan(slot, slot.idle_deaths)
            return True
        slot.start_failures += 1
        if slot.start_failures >= state.settings.backoff.max_failures:
            return False
        self._plan(slot, slot.start_failures)
        return True

    def _plan(self, slot: WorkerSlot, in_a_row: int) -> None:
        delay = self.state.settings.backoff.delay(in_a_row)
        slot.restart_at = time.monotonic() + delay
        if delay and self.state.recorder is not None:
            self.state.recorder.restart_backoff(slot, delay, in_a_row)

    @staticmethod
    def ready(slot: WorkerSlot) -> None:
        """The worker finished starting: its start-up failures are forgiven."""
        slot.start_failures = 0

    @staticmethod
    def answered(slot: WorkerSlot) -> None:
        """The worker answered a task: it is no time bomb."""
        slot.idle_deaths = 0

    def new_work(self) -> None:
        """Work arrived after the pool gave up: the restart budget starts afresh."""
        state = self.state
        if state.mode is Mode.BLOCKED:
            state.mode = Mode.RUNNING
            for slot in state.slots:
                slot.start_failures = 0

    def hold_all(self) -> None:
        """No slot starts again on its own (the pool gave up, or the workers are being stopped)."""
        for slot in self.state.slots:
            slot.restart_at = None
