"""Rules about a worker's life beyond one task: retries after a death (``retries``) and workers replaced
after N tasks (``lifespan``).

A mixin of ``machines.PoolMachine``. Both are read from the marker files:
a start marker names the task and the pid of the process that ran it, so
the kit counts how often a task ran and how many tasks each process ran.
"""
from __future__ import annotations

import collections

from hypothesis import strategies as st
from hypothesis.stateful import rule

from ..testing.markers import started
from .adapter_base import CLOSE_BOUND, REAP_BOUND, SETTLE_CAP, Hang, bounded
from .guarantees import Guarantee, Refused, can, grading, show
from .machine_parts import MachineParts
from .tasks import pids, work

LIFESPAN_ITEMS = 8  # the most items of a lifespan map: with a lifespan of 1, as many worker starts


class LifecycleRules(MachineParts):
    """retries, lifespan."""

    # ------------------------------------------------------------------ retries
    @grading(Guarantee.RETRIES)
    @can("task_retries")
    @rule(deaths=st.integers(0, 3))
    def a_task_killed_in_its_first_runs(self, deaths: int) -> None:
        """A task SIGKILLed in its first ``deaths`` runs: within the pool's max_task_retries it must succeed after
        exactly ``deaths`` + 1 runs, past them fail with the death error after max_task_retries + 1 runs."""
        retries = int(self.adapter.options.get("max_task_retries", 0))
        index = self.new_index()
        try:
            handle = self.adapter.submit(work, (f"dies{deaths}", self.markers, index, 0.0))
        except Exception as exc:  # noqa: BLE001 - a refusal is this task's answer
            handle = Refused(exc)
        runs_owed = min(deaths, retries) + 1
        what = f"task {index} (SIGKILLed in its first {deaths} runs, max_task_retries={retries})"
        value, error = self.answer(handle, self.bound * runs_owed, f"{what} never answered "
                                                                   f"(waited {self.bound * runs_owed:.0f} s)")
        runs = started(self.markers)[index]
        if deaths <= retries:
            if error is not None or value != index * 2 or runs != deaths + 1:
                self.violate(Guarantee.RETRIES, f"{what} got {show(value, error)} after {runs} runs; it should "
                                                f"succeed after {deaths + 1}")
        elif error is None or runs != retries + 1:
            self.violate(Guarantee.RETRIES, f"{what} got {show(value, error)} after {runs} runs; it should fail "
                                            f"with the death after {retries + 1}")
        elif self.adapter.death_error != "an exception" and type(error).__name__ != self.adapter.death_error:
            self.violate(Guarantee.RETRIES, f"{what} got {show(value, error)}, not a {self.adapter.death_error}")

    # ------------------------------------------------------------------ lifespan
    @grading(Guarantee.LIFESPAN)
    @can("lifespan")
    @rule(lifespan=st.integers(1, 3), items=st.integers(1, LIFESPAN_ITEMS))
    def a_map_on_workers_with_a_lifespan(self, lifespan: int, items: int) -> None:
        """A map of ``items`` tasks on a fresh pool whose workers are replaced after ``lifespan`` tasks each: every
        item answers once, in order, and no worker process runs more than ``lifespan`` of them."""
        indexes = [self.new_index() for _ in range(items)]
        what = f"a map of {items} items on a fresh pool whose workers live {lifespan} tasks"
        timeout = self.bound * 2  # the map, worker replacements included
        try:
            values = bounded(lambda: self.adapter.map_with_lifespan(
                work, [("ok", self.markers, index, 0.0) for index in indexes], lifespan, timeout),
                timeout + CLOSE_BOUND + SETTLE_CAP + REAP_BOUND, "map_with_lifespan")
        except Hang as exc:
            self.hang(f"{what}: no answer ({exc})")
            return
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the pool's answer
            self.violate(Guarantee.LIFESPAN, f"{what} raised {show(None, exc)}")
            return
        if list(values) != [index * 2 for index in indexes]:
            self.violate(Guarantee.LIFESPAN, f"{what} returned {list(values)!r}, not "
                                             f"{[index * 2 for index in indexes]!r}")
        ran = pids(self.markers)
        per_process = collections.Counter(pid for index in indexes for pid in ran.get(index, []))
        over = {pid: n for pid, n in per_process.items() if n > lifespan}
        if over:
            self.violate(Guarantee.LIFESPAN, f"{what}: processes ran more tasks than that: {over} (pid: tasks)")
        twice = {index: len(ran[index]) for index in indexes if len(ran.get(index, [])) > 1}
        if twice:
            self.violate(Guarantee.LIFESPAN, f"{what}: items ran more than once: {twice}")
