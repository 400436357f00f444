"""Hypothesis state machines that check the guarantees of API.md §4 on any pool.

A machine drives one pool (through an adapter) with random submissions,
deaths, external kills and maps, and records every broken promise under the
name of the guarantee it breaks. ``guarantee`` picks the one a run enforces,
so a conformance table can grade each separately. A hang is never allowed to
become a stuck run: it is recorded in ``HANGS`` and the machine stops acting.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from .adapters import Adapter, Hang, MpireFaultAdapter
from .tasks import executions, work

GUARANTEES = {
    "apply-isolation": "apply: only the task whose worker died fails; every other task succeeds",
    "apply-death-error": "apply: the task whose worker died gets an error (not a value, not silence)",
    "idle-kill": "a worker killed from outside while idle fails no task; later calls work",
    "exactly-once": "every task ran at most once; each success ran exactly once",
    "map-abort": "map: a death aborts the call with an error, promptly",
    "map-reuse": "map: the next call after an aborted one works",
    "no-orphans": "closing the pool leaves no process behind",
}
HANGS: list[str] = []  # filled when a pool does not answer within the bound




class PoolMachine(RuleBasedStateMachine):
    """Random submissions, deaths and kills against one pool; see ``GUARANTEES``."""

    adapter_cls: type[Adapter] = MpireFaultAdapter
    guarantee: str | None = None  # None: enforce them all
    bound = 3.0

    def __init__(self) -> None:
        super().__init__()
        self.hung = bool(HANGS)  # this run already saw the pool hang: every rule is a no-op from here
        self.adapter = None if self.hung else self.adapter_cls()
        self.markers = tempfile.mkdtemp(prefix="mpire-fault-verify-")
        self.pending: dict[int, tuple[str, object, bool]] = {}
        self.expected: dict[int, str] = {}
        self.next_index = 0
        self.after_idle_kill = False
        self.map_aborted = False
        self.violations: list[tuple[str, str]] = []
        self.succeeded: set[int] = set()

    # ------------------------------------------------------------------ helpers
    def violate(self, guarantee: str, message: str) -> None:
        self.violations.append((guarantee, message))

    def hang(self, what: str) -> None:
        # Recorded, not raised: shrinking a hang would rerun it (seconds each) for nothing.
        self.hung = True
        HANGS.append(f"{self.adapter.name}: {what}")

    def new_index(self, kind: str) -> int:
        index = self.next_index
        self.next_index += 1
        self.expected[index] = kind
        return index

    # ------------------------------------------------------------------ rules
    @initialize()
    def start_with_the_fault_under_test(self) -> None:
        """Every example opens with the situation its guarantee is about; random steps follow."""
        if self.guarantee in ("map-abort", "map-reuse"):
            self.map_with_a_death(2, 1, "sigkill")
            self.map_that_works(1)
        elif self.guarantee == "idle-kill":
            self.kill_an_idle_worker()
            self.submit("ok", 0.0)
            self.wait_for_results()
        elif self.guarantee in ("apply-isolation", "apply-death-error", "exactly-once"):
            self.submit("sigkill", 0.0)
            self.submit("ok", 0.02)
            self.wait_for_results()

    @rule(kind=st.sampled_from(["ok", "ok", "raise", "exit", "sigkill"]), nap=st.sampled_from([0.0, 0.02]))
    def submit(self, kind: str, nap: float) -> None:
        if self.hung:
            return
        index = self.new_index(kind)
        try:
            handle = self.adapter.submit(work, (kind, self.markers, index, nap))
        except Exception as exc:  # a broken pool refuses work: that is this task's answer
            handle = _Refused(exc)
        self.pending[index] = (kind, handle, self.after_idle_kill)

    @rule()
    def wait_for_results(self) -> None:
        if self.hung:
            return
        for index, (kind, handle, after_kill) in sorted(self.pending.items()):
            started = time.monotonic()
            try:
                if isinstance(handle, _Refused):
                    raise handle.error
                value = self.adapter.get(handle, self.bound)
                error = None
            except Hang:
                self.hang(f"task {index} ({kind}) never answered")
                return
            except BaseException as exc:  # noqa: B902 - classifying the pool's answer
                value, error = None, exc
            self.judge(index, kind, value, error, after_kill, time.monotonic() - started)
        self.pending.clear()

    def judge(self, index: int, kind: str, value, error, after_kill: bool, took: float) -> None:
        if error is None:
            self.succeeded.add(index)
        if kind == "ok" and (error is not None or value != index * 2):
            where = "idle-kill" if after_kill else "apply-isolation"
            self.violate(where, f"task {index} (ok) got {_show(value, error)}")
        elif kind == "raise" and not isinstance(error, ValueError):
            self.violate("apply-isolation", f"task {index} (raise) got {_show(value, error)}, not its ValueError")
        elif kind in ("exit", "sigkill"):
            if error is None:
                self.violate("apply-death-error", f"task {index} ({kind}) returned {value!r} instead of an error")
            elif self.adapter.death_error != "an exception" and type(error).__name__ != self.adapter.death_error:
                self.violate("apply-death-error", f"task {index} ({kind}) got {_show(value, error)}")

    @rule()
    def kill_an_idle_worker(self) -> None:
        if self.hung:
            return
        self.wait_for_results()
        if self.hung:
            return
        pids = self.adapter.worker_pids()
        if not pids:  # pools that start workers lazily: give them work first
            self.submit("ok", 0.0)
            self.wait_for_results()
            pids = [] if self.hung else self.adapter.worker_pids()
        if pids:
            try:
                os.kill(pids[0], signal.SIGKILL)
            except OSError:
                pass
            self.after_idle_kill = True
            time.sleep(0.05)

    @rule(size=st.integers(1, 6))
    def map_that_works(self, size: int) -> None:
        if self.hung:
            return
        items = [("ok", self.markers, self.new_index("ok"), 0.0) for _ in range(size)]
        try:
            values = self.adapter.map(work, items, self.bound)
        except Hang:
            self.hang(f"map of {size} plain items never returned")
            return
        except BaseException as exc:  # noqa: B902
            where = "map-reuse" if self.map_aborted else ("idle-kill" if self.after_idle_kill else "apply-isolation")
            self.violate(where, f"map of {size} plain items raised {type(exc).__name__}: {exc}")
            return
        if values != [item[2] * 2 for item in items]:
            self.violate("map-reuse" if self.map_aborted else "apply-isolation", f"map returned {values!r}")
        else:
            self.succeeded.update(item[2] for item in items)

    @rule(size=st.integers(2, 6), at=st.integers(0, 5), kind=st.sampled_from(["exit", "sigkill"]))
    def map_with_a_death(self, size: int, at: int, kind: str) -> None:
        if self.hung:
            return
        at = at % size
        items = [(kind if i == at else "ok", self.markers, self.new_index(kind if i == at else "ok"), 0.0)
                 for i in range(size)]
        started = time.monotonic()
        try:
            values = self.adapter.map(work, items, self.bound)
        except Hang:
            self.hang(f"map of {size} items with a {kind} at item {at} never returned")
            return
        except BaseException:  # noqa: B902 - an error is what we want
            self.map_aborted = True
            if time.monotonic() - started > self.bound / 2:
                self.violate("map-abort", f"map with a {kind} at item {at} took {time.monotonic() - started:.1f} s")
            return
        self.violate("map-abort", f"map with a {kind} at item {at} returned {values!r} instead of raising")

    # ------------------------------------------------------------------ checks
    @invariant()
    def promises_hold(self) -> None:
        broken = [(g, m) for g, m in self.violations if self.guarantee in (None, g)]
        if broken:
            raise AssertionError("; ".join(f"[{g}] {m}" for g, m in broken))

    @invariant()
    def nothing_ran_twice(self) -> None:
        if self.guarantee not in (None, "exactly-once"):
            return
        twice = {i: n for i, n in executions(self.markers).items() if n > 1}
        assert not twice, f"[exactly-once] tasks ran more than once: {twice}"

    def teardown(self) -> None:
        try:
            if not self.hung and self.guarantee in (None, "exactly-once"):
                self.wait_for_results()
                counts = executions(self.markers)
                lost = sorted(i for i in self.succeeded if counts.get(i, 0) != 1)
                assert not lost, f"[exactly-once] tasks that succeeded without running exactly once: {lost}"
        finally:
            left = self.adapter.close() if self.adapter is not None else []
            shutil.rmtree(self.markers, ignore_errors=True)
        if left and not self.hung and self.guarantee in (None, "no-orphans"):
            raise AssertionError(f"[no-orphans] processes left after closing the pool: {left}")


class _Refused:
    """Stands for a task the pool refused at submission."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _show(value, error) -> str:
    return f"{type(error).__name__}: {error}" if error is not None else f"value {value!r}"


def machine_for(adapter_cls: type[Adapter], guarantee: str | None = None) -> type[PoolMachine]:
    """A machine class that drives ``adapter_cls`` and enforces ``guarantee`` (or all)."""
    name = f"{adapter_cls.__name__}_{(guarantee or 'all').replace('-', '_')}"
    return type(name, (PoolMachine,), {"adapter_cls": adapter_cls, "guarantee": guarantee})
