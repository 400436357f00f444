"""The map rules of the pool machine: maps that work, maps a death aborts, maps an error aborts.

A mixin of ``machines.PoolMachine``: it uses the machine's state (markers,
adapter, the ``violate``/``run_map`` helpers) and adds no state of its own
beyond ``map_aborted``, which tells ``map-reuse`` that a map was aborted.
"""
from __future__ import annotations

import re
import time

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .adapters import Hang
from .guarantees import LATE, Guarantee, grading, live, show
from .machine_parts import MachineParts
from .tasks import ends, executions, starts, work

SIBLING_NAP = 0.25  # seconds: the items of a map with a death, long enough to be running when it comes (0.05 s in)
DISTURBANCE_NAP = 0.1  # the same, when the map only disturbs the pool for another guarantee
ERROR_MAP_NAP = 0.2  # the items behind the one that raises, in a map with an error
STOP_MARGIN = 0.05  # after the call raised, the window is the longest nap of its items and this: an item not
# stopped has ended by then (0.35 s for every map cost map-error-abort, whose naps are 0.2 s, a tenth of its time)


class MapRules(MachineParts):
    """Rules that call the pool's map; see ``GUARANTEES`` map-abort, map-reuse, map-error-abort, right-item."""

    @precondition(live)
    @rule(size=st.integers(1, 6))
    def map_that_works(self, size: int) -> None:
        items = [("ok", self.markers, self.new_index(), 0.0) for _ in range(size)]
        values, error, _ = self.run_map(items, f"map of {size} plain items never returned")
        if self.map_aborted:
            where = Guarantee.MAP_REUSE
        else:
            where = Guarantee.IDLE_KILL if self.after_idle_kill else Guarantee.APPLY_ISOLATION
        if error is not None:
            self.violate(where, f"map of {size} plain items raised {type(error).__name__}: {error}")
        elif values != [item[2] * 2 for item in items]:
            self.violate(where, f"map returned {values!r}")
        else:
            self.succeeded.update(item[2] for item in items)

    @precondition(live)
    @rule(size=st.integers(2, 6), at=st.integers(0, 5), kind=st.sampled_from(["exit", "sigkill"]))
    def map_with_a_death(self, size: int, at: int, kind: str) -> None:
        """Item ``at`` dies a moment after it starts; the others take long enough to be running then."""
        at = at % size
        blame = Guarantee.EXIT_ZERO if kind == "exit0" else Guarantee.MAP_ABORT
        # Only a grading of ``blame`` needs the siblings still running when the death comes (to see them
        # stopped); for any other guarantee this map is a disturbance, and short siblings disturb as well.
        graded = self.guarantee in (None, blame)
        nap = SIBLING_NAP if graded else DISTURBANCE_NAP
        items = [(kind, self.markers, self.new_index(), 0.05) if i == at
                 else ("ok", self.markers, self.new_index(), nap)
                 for i in range(size)]
        what = f"map of {size} items with a {kind} at item {at}"
        started = time.monotonic_ns()
        values, error, answered = self.run_map(items, f"{what} never returned")
        if error is None:
            self.violate(blame, f"{what} returned {values!r} instead of raising")
            return
        self.map_aborted = True
        # Promptness is the time from the death to the error: how long the dying item waited for a
        # worker (behind its siblings, or a worker being replaced) is no part of the abort.
        began = starts(self.markers).get(items[at][2])
        died = min(began) + int(items[at][3] * 1e9) if began else started
        if (answered - died) / 1e9 > self.bound / 2:
            self.violate(blame, f"{what} took {(answered - died) / 1e9:.1f} s from the death to raise "
                                f"({(answered - started) / 1e9:.1f} s from the call)")
        if graded:
            self.check_stopped(items, answered, blame, what)
        if "names_item" in self.adapter.features:
            self.check_named_item(items, kind, error, what)

    def check_stopped(self, items: list, answered: int, blame: str, what: str) -> None:
        """After the call raised, none of its items may start, and none may still be running to its end.

        An item the pool failed to stop had started before the call raised, so it ends within its nap
        of that; one that starts late does so when a worker frees up, in the same window. The window
        is watched until it closes, and left early once a late marker shows.
        """
        indices = {item[2] for item in items}
        deadline = answered + int((max(item[3] for item in items) + STOP_MARGIN) * 1e9)
        while True:
            began, finished = starts(self.markers), ends(self.markers)
            late = any(t > answered + LATE for i in indices for t in began.get(i, []) + finished.get(i, []))
            if late or time.monotonic_ns() >= deadline:
                break
            time.sleep(min(0.02, max(0.0, (deadline - time.monotonic_ns()) / 1e9)))
        late_start = [i for i, item in enumerate(items) if any(t > answered + LATE for t in began.get(item[2], ()))]
        late_end = [i for i, item in enumerate(items) if any(t > answered + LATE for t in finished.get(item[2], ()))]
        if late_start:
            self.violate(blame, f"{what}: items {late_start} started after the call had raised")
        if late_end:
            self.violate(blame, f"{what}: items {late_end} ran to their end after the call had raised "
                                "(running items were not stopped)")

    @grading(Guarantee.RIGHT_ITEM)
    @precondition(lambda self: "item_in_chunk" in self.adapter_cls.features)
    @rule(chunk=st.integers(2, 12), at=st.integers(1, 23), kind=st.sampled_from(["exit", "sigkill"]))
    def a_death_inside_a_chunk(self, chunk: int, at: int, kind: str) -> None:
        """A map of quick items sent ``chunk`` at a time, whose item ``at`` dies at once after the items before
        it in its chunk ran: the error names item ``at``, not the chunk's first or an offset of it."""
        size = 2 * chunk
        at = at % size
        items = [(kind if i == at else "ok", self.markers, self.new_index(), 0.0) for i in range(size)]
        what = f"map of {size} items in chunks of {chunk} with a {kind} at item {at}"
        try:
            values = self.adapter.map_chunked(work, items, chunk, self.bound)
        except Hang:
            self.hang(f"{what} never returned (waited {self.bound} s)")
            return
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the map raised is the pool's answer
            self.map_aborted = True
            self.check_named_item(items, kind, exc, what)
            return
        self.violate(Guarantee.RIGHT_ITEM, f"{what} returned {values!r} instead of raising")

    def check_named_item(self, items: list, kind: str, error: BaseException, what: str) -> None:
        text = getattr(error, "task", None) or str(error)
        named = re.search(r"map item (\d+)", text or "")
        if named is None:
            self.violate(Guarantee.RIGHT_ITEM, f"{what}: the error names no map item: {show(None, error)}")
            return
        n = int(named.group(1))
        began = executions(self.markers)
        if not (0 <= n < len(items)) or items[n][0] != kind or not began.get(items[n][2]):
            truth = [i for i, item in enumerate(items) if item[0] == kind]
            self.violate(Guarantee.RIGHT_ITEM,
                         f"{what}: the error names map item {n}, but the item that died is {truth}")

    @grading(Guarantee.MAP_ERROR_ABORT)
    @rule(at=st.integers(0, 3), after=st.integers(5, 8))
    def map_with_an_error(self, at: int, after: int) -> None:
        """Quick items, one that raises at once, then slow ones: most of those must never start."""
        items = ([("ok", self.markers, self.new_index(), 0.0) for _ in range(at)]
                 + [("raise", self.markers, self.new_index(), 0.0)]
                 + [("ok", self.markers, self.new_index(), ERROR_MAP_NAP) for _ in range(after)])
        what = f"map of {len(items)} items with a raise at item {at}"
        values, error, answered = self.run_map(items, f"{what} never returned")
        if error is None:
            self.violate(Guarantee.MAP_ERROR_ABORT, f"{what} returned {values!r} instead of raising")
            return
        self.map_aborted = True
        if not isinstance(error, ValueError):
            self.violate(Guarantee.MAP_ERROR_ABORT, f"{what} raised {show(None, error)}, not the task's ValueError")
        self.check_stopped(items, answered, Guarantee.MAP_ERROR_ABORT, what)
        # Not aborted: every item after the error ran, and some began a nap after the error was raised (a pool
        # that aborts has stopped starting items by then). Items that began before it are no proof: the item
        # that raises can start last (on Dask it may wait for a worker that died just before).
        began = starts(self.markers)
        behind = [item[2] for item in items[at + 1:]]
        raised = min(ends(self.markers).get(items[at][2], [answered]))
        late = [i for i, item in enumerate(items[at + 1:], at + 1)
                if any(t > raised + int(ERROR_MAP_NAP * 1e9) for t in began.get(item[2], ()))]
        if all(began.get(index) for index in behind) and late:
            self.violate(Guarantee.MAP_ERROR_ABORT, f"{what}: every item after the error ran, items {late} more than "
                                                    f"{ERROR_MAP_NAP} s after it raised; the call was not aborted")
