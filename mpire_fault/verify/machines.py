"""Hypothesis state machines that check the guarantees of API.md §4 on any pool.

A machine drives one pool (through an adapter) with random submissions,
deaths, external kills and maps, and records every broken promise under the
name of the guarantee it breaks. ``guarantee`` picks the one a run enforces,
so a conformance table can grade each separately.

A hang fails every run, whatever guarantee it grades: the first call that
does not answer within ``bound`` seconds raises ``PoolHang`` (an
``AssertionError``), the machine's rules are switched off by their
preconditions and ``teardown`` closes the pool within the adapter's bound.
The state is the machine instance's own, so one hung example never changes
what the next one sees. From the moment a pool stops answering, a hang is
reported within about ``bound`` + the adapter's close bound (under 10 s).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from .adapters import Adapter, Hang, MpireFaultAdapter, bounded
from .tasks import DEATHS, ends, executions, starts, work

GUARANTEES = {
    "apply-isolation": "apply: only the task whose worker died fails; every other task succeeds",
    "apply-death-error": "apply: the task whose worker died gets an error (not a value, not silence)",
    "idle-kill": "a worker killed from outside while idle fails no task and is replaced; later calls work",
    "exactly-once": "every task ran at most once; each success ran exactly once",
    "map-abort": ("map: a death aborts the call with an error, promptly (within 1.5 s of the death); "
                  "its running items are stopped, no later one starts"),
    "map-reuse": "map: the next call after an aborted one works",
    "no-orphans": "closing the pool leaves no process behind",
    "resolved-once": "each result resolves once and its callback or error_callback runs once, "
                     "even when terminate() runs during a slow callback",
    "map-error-abort": "map: an exception in a task aborts the call with that exception; no later item starts",
    "head-only": ("apply: of the tasks a dead worker held, only the one it was running fails; "
                  "those queued behind it succeed"),
    "timeout-fires": ("apply: a task that overruns its task_timeout fails with a TimeoutError in bounded time; "
                      "others succeed"),
    "right-item": "map: the item a death error names is the item that died",
    "exit-zero": "a task that calls os._exit(0) is a death of that task (an error), not a clean exit or a hang",
}
# Guarantees that need something beyond submit/get/map/terminate (see adapters.FEATURES).
REQUIRES: dict[str, frozenset[str]] = {
    "timeout-fires": frozenset({"task_timeout"}),
    "right-item": frozenset({"names_item"}),
}
SLOW_CALLBACK = 1.8  # seconds: longer than AsyncResult's "supervisor gone" fallback (about 1.25 s)
TASK_TIMEOUT = 0.5
LATE = 50_000_000  # ns: a start or end this long after the call answered counts as "after"


class PoolHang(AssertionError):
    """The pool did not answer within the bound: it would have kept its caller waiting forever."""


class BrokenBeforeHang(AssertionError):
    """The pool broke the graded promise (a task already ran twice) and then stopped answering.

    A verdict "fail" rather than "hang": the broken promise is a fact the
    markers prove, whatever the pool would have done after the bound. Not
    shrunk, like a hang (each replay would wait out the bound again).
    """


def unsupported(adapter_cls: type[Adapter], guarantee: str | None) -> frozenset[str]:
    """The features ``guarantee`` needs that the adapter does not have."""
    return REQUIRES.get(guarantee or "", frozenset()) - adapter_cls.features


def _live(self: "PoolMachine") -> bool:
    return self.hung is None


def _grading(*guarantees: str):
    """Precondition: the machine is live and grades all guarantees or one of these."""
    return precondition(lambda self: self.hung is None and self.guarantee in (None, *guarantees))


def _can(feature: str):
    return precondition(lambda self: feature in self.adapter_cls.features)


class PoolMachine(RuleBasedStateMachine):
    """Random submissions, deaths and kills against one pool; see ``GUARANTEES``."""

    adapter_cls: type[Adapter] = MpireFaultAdapter
    guarantee: str | None = None  # None: enforce them all
    bound = 3.0
    # Set by ``conformance.check`` on the fresh class it grades with: every failure message of that
    # grading, so a failure Hypothesis can only call "flaky" is still reported by what it was.
    failures_seen: list[str] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.hung: str | None = None  # what did not answer, once something did not
        self.markers = tempfile.mkdtemp(prefix="mpire-fault-verify-")
        try:
            self.adapter = self.adapter_cls()
        except BaseException:
            shutil.rmtree(self.markers, ignore_errors=True)
            raise
        self.pending: dict[int, tuple[str, object, str | None]] = {}
        self.next_index = 0
        self.after_idle_kill = False
        self.map_aborted = False
        self.violations: list[tuple[str, str]] = []
        self.succeeded: set[int] = set()

    # ------------------------------------------------------------------ helpers
    def violate(self, guarantee: str, message: str) -> None:
        self.violations.append((guarantee, message))

    def hang(self, what: str) -> None:
        """Stop here: a call that never answers breaks §4 whatever guarantee is graded."""
        self.hung = f"{self.adapter.name}: {what}"
        if self.guarantee in (None, "exactly-once"):  # a rerun the pool started while we waited is still a rerun
            twice = {i: n for i, n in executions(self.markers).items() if n > 1}
            if twice:
                self.fail(BrokenBeforeHang(f"[exactly-once] tasks ran more than once: {twice} "
                                           f"(then: {what})"))
        self.fail(PoolHang(f"[hang] {self.hung}"))

    def fail(self, error: AssertionError) -> None:
        if self.failures_seen is not None:
            self.failures_seen.append(str(error))
        raise error

    def new_index(self) -> int:
        index = self.next_index
        self.next_index += 1
        return index

    def enqueue(self, kind: str, nap: float, blame: str | None = None, **extra) -> int:
        """Submit one task; its answer is judged by ``wait_for_results``, charged to ``blame``."""
        index = self.new_index()
        if blame is None and kind == "ok" and self.after_idle_kill:
            blame = "idle-kill"
        try:
            handle = self.adapter.submit(work, (kind, self.markers, index, nap), **extra)
        except Exception as exc:  # a broken pool refuses work: that is this task's answer
            handle = _Refused(exc)
        self.pending[index] = (kind, handle, blame)
        return index

    def answer(self, handle, bound: float, what: str):
        """``(value, error)`` of one task, or a hang."""
        try:
            if isinstance(handle, _Refused):
                raise handle.error
            return self.adapter.get(handle, bound), None
        except Hang:
            self.hang(what)
        except (Exception, SystemExit) as exc:  # the pool's answer (a pool may re-raise a task's SystemExit)
            return None, exc

    def worker_pids(self) -> list[int]:
        """The pool's worker pids, or a hang if the pool cannot say within the bound."""
        try:
            return bounded(self.adapter.worker_pids, self.bound, "listing the worker processes")
        except Hang as exc:
            self.hang(str(exc))
            raise  # not reached: hang() raises

    def run_map(self, items: list, what: str):
        """``(values, error, answered_at_ns)`` of one map call, or a hang."""
        try:
            values = self.adapter.map(work, items, self.bound)
            return values, None, time.monotonic_ns()
        except Hang:
            self.hang(f"{what} (waited {self.bound} s)")
        except (Exception, SystemExit) as exc:
            return None, exc, time.monotonic_ns()

    # ------------------------------------------------------------------ opening
    @initialize()
    def start_with_the_fault_under_test(self) -> None:
        """Every example opens with the situation its guarantee is about; random steps follow."""
        g = self.guarantee
        if g in ("map-abort", "map-reuse"):
            self.map_with_a_death(2, 1, "sigkill")
            self.map_that_works(1)
        elif g == "idle-kill":
            self.kill_an_idle_worker()
            self.submit("ok", 0.0)
            self.wait_for_results()
        elif g in ("apply-isolation", "apply-death-error", "exactly-once"):
            self.submit("sigkill", 0.0)
            self.submit("ok", 0.02)
            self.wait_for_results()
        elif g == "resolved-once":
            self.terminate_during_a_slow_callback(["raise"])
        elif g == "map-error-abort":
            self.map_with_an_error(1, 5)
        elif g == "head-only":
            self.burst_behind_a_dying_head("sigkill", 3)
        elif g == "timeout-fires":
            self.a_task_that_overruns_its_timeout(1)
        elif g == "right-item":
            self.map_with_a_death(4, 2, "sigkill")
        elif g == "exit-zero":
            self.a_task_exits_with_code_zero("apply")
            self.a_task_exits_with_code_zero("map")

    # ------------------------------------------------------------------ apply
    @precondition(_live)
    @rule(kind=st.sampled_from(["ok", "ok", "raise", "exit", "sigkill"]), nap=st.sampled_from([0.0, 0.02]))
    def submit(self, kind: str, nap: float) -> None:
        self.enqueue(kind, nap)

    @precondition(_live)
    @rule()
    def wait_for_results(self) -> None:
        for index, (kind, handle, blame) in sorted(self.pending.items()):
            never = f"task {index} ({kind}) never answered (waited {self.bound} s)"
            value, error = self.answer(handle, self.bound, never)
            self.judge(index, kind, value, error, blame)
            del self.pending[index]

    def judge(self, index: int, kind: str, value, error, blame: str | None) -> None:
        if error is None:
            self.succeeded.add(index)
        if kind == "ok" and (error is not None or value != index * 2):
            self.violate(blame or "apply-isolation", f"task {index} (ok) got {_show(value, error)}")
        elif kind == "raise" and not isinstance(error, ValueError):
            self.violate(blame or "apply-isolation",
                         f"task {index} (raise) got {_show(value, error)}, not its ValueError")
        elif kind in DEATHS:
            blame = blame or ("exit-zero" if kind == "exit0" else "apply-death-error")
            if error is None:
                self.violate(blame, f"task {index} ({kind}) returned {value!r} instead of an error")
            elif self.adapter.death_error != "an exception" and type(error).__name__ != self.adapter.death_error:
                self.violate(blame, f"task {index} ({kind}) got {_show(value, error)}")

    @_grading("head-only", "apply-isolation", "exactly-once")
    @rule(kind=st.sampled_from(["sigkill", "exit"]), behind=st.integers(2, 5))
    def burst_behind_a_dying_head(self, kind: str, behind: int) -> None:
        """Quick tasks first (so the pool may queue several per worker), then a dying task and a burst behind it."""
        self.wait_for_results()
        for _ in range(8):  # a pool that measures task durations learns these are short
            self.enqueue("ok", 0.0)
        self.wait_for_results()
        # the burst takes longer than the head lives, so some of it is still queued when the head dies
        self.enqueue(kind, 0.15, blame="head-only")
        for _ in range(behind):
            self.enqueue("ok", 0.05, blame="head-only")
        self.wait_for_results()

    @_grading("exit-zero")
    @rule(where=st.sampled_from(["apply", "map"]))
    def a_task_exits_with_code_zero(self, where: str) -> None:
        if where == "apply":
            self.enqueue("exit0", 0.0, blame="exit-zero")
            self.enqueue("ok", 0.02, blame="exit-zero")
            self.wait_for_results()
        else:
            self.map_with_a_death(3, 1, "exit0")

    @_grading("timeout-fires")
    @_can("task_timeout")
    @rule(others=st.integers(0, 3))
    def a_task_that_overruns_its_timeout(self, others: int) -> None:
        index = self.new_index()
        try:
            handle = self.adapter.submit(work, ("ok", self.markers, index, 30.0), timeout=TASK_TIMEOUT)
        except Exception as exc:
            handle = _Refused(exc)
        for _ in range(others):
            self.enqueue("ok", 0.02, blame="timeout-fires")
        started = time.monotonic()
        value, error = self.answer(handle, TASK_TIMEOUT + self.bound,
                                   f"task {index} (sleeps 30 s, task_timeout={TASK_TIMEOUT}) never answered "
                                   f"(waited {TASK_TIMEOUT + self.bound} s)")
        took = time.monotonic() - started
        if not isinstance(error, TimeoutError):
            self.violate("timeout-fires", f"task {index} (sleeps 30 s, task_timeout={TASK_TIMEOUT}) got "
                                          f"{_show(value, error)} after {took:.1f} s, not a TimeoutError")
        self.wait_for_results()

    # ------------------------------------------------------------------ kills
    @precondition(_live)
    @rule()
    def kill_an_idle_worker(self) -> None:
        self.wait_for_results()
        pids = self.worker_pids()
        if not pids:  # pools that start workers lazily: give them work first
            self.submit("ok", 0.0)
            self.wait_for_results()
            pids = self.worker_pids()
        if not pids:
            return
        try:
            os.kill(pids[0], signal.SIGKILL)
        except OSError:
            return
        self.after_idle_kill = True
        deadline = time.monotonic() + self.bound
        while time.monotonic() < deadline:
            now = self.worker_pids()
            if pids[0] not in now and len(now) >= len(pids):
                return
            time.sleep(0.02)
        self.violate("idle-kill", f"worker pid {pids[0]}, killed while idle, was not replaced within {self.bound} s "
                                  f"(live workers: {self.worker_pids()}, before: {pids})")

    # ------------------------------------------------------------------ map
    @precondition(_live)
    @rule(size=st.integers(1, 6))
    def map_that_works(self, size: int) -> None:
        items = [("ok", self.markers, self.new_index(), 0.0) for _ in range(size)]
        values, error, _ = self.run_map(items, f"map of {size} plain items never returned")
        where = "map-reuse" if self.map_aborted else ("idle-kill" if self.after_idle_kill else "apply-isolation")
        if error is not None:
            self.violate(where, f"map of {size} plain items raised {type(error).__name__}: {error}")
        elif values != [item[2] * 2 for item in items]:
            self.violate(where, f"map returned {values!r}")
        else:
            self.succeeded.update(item[2] for item in items)

    @precondition(_live)
    @rule(size=st.integers(2, 6), at=st.integers(0, 5), kind=st.sampled_from(["exit", "sigkill"]))
    def map_with_a_death(self, size: int, at: int, kind: str) -> None:
        """Item ``at`` dies a moment after it starts; the others take long enough to be running then."""
        at = at % size
        blame = "exit-zero" if kind == "exit0" else "map-abort"
        items = [(kind, self.markers, self.new_index(), 0.05) if i == at
                 else ("ok", self.markers, self.new_index(), 0.3)
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
        self.check_stopped(items, at, answered, blame, what)
        if "names_item" in self.adapter.features:
            self.check_named_item(items, kind, error, what)

    def check_stopped(self, items: list, at: int, answered: int, blame: str, what: str) -> None:
        """After the call raised, none of its items may start, and none may still be running to its end."""
        time.sleep(0.35)  # an item the pool failed to stop would start or finish in this window
        began, finished = starts(self.markers), ends(self.markers)
        late_start = [i for i, item in enumerate(items) if any(t > answered + LATE for t in began.get(item[2], ()))]
        late_end = [i for i, item in enumerate(items) if any(t > answered + LATE for t in finished.get(item[2], ()))]
        if late_start:
            self.violate(blame, f"{what}: items {late_start} started after the call had raised")
        if late_end:
            self.violate(blame, f"{what}: items {late_end} ran to their end after the call had raised "
                                "(running items were not stopped)")

    def check_named_item(self, items: list, kind: str, error: BaseException, what: str) -> None:
        text = getattr(error, "task", None) or str(error)
        named = re.search(r"map item (\d+)", text or "")
        if named is None:
            self.violate("right-item", f"{what}: the error names no map item: {_show(None, error)}")
            return
        n = int(named.group(1))
        began = executions(self.markers)
        if not (0 <= n < len(items)) or items[n][0] != kind or not began.get(items[n][2]):
            truth = [i for i, item in enumerate(items) if item[0] == kind]
            self.violate("right-item", f"{what}: the error names map item {n}, but the item that died is {truth}")

    @_grading("map-error-abort")
    @rule(at=st.integers(0, 3), after=st.integers(5, 8))
    def map_with_an_error(self, at: int, after: int) -> None:
        """Quick items, one that raises at once, then slow ones: most of those must never start."""
        items = ([("ok", self.markers, self.new_index(), 0.0) for _ in range(at)]
                 + [("raise", self.markers, self.new_index(), 0.0)]
                 + [("ok", self.markers, self.new_index(), 0.2) for _ in range(after)])
        what = f"map of {len(items)} items with a raise at item {at}"
        values, error, answered = self.run_map(items, f"{what} never returned")
        if error is None:
            self.violate("map-error-abort", f"{what} returned {values!r} instead of raising")
            return
        self.map_aborted = True
        if not isinstance(error, ValueError):
            self.violate("map-error-abort", f"{what} raised {_show(None, error)}, not the task's ValueError")
        self.check_stopped(items, at, answered, "map-error-abort", what)
        began = executions(self.markers)
        behind = [item[2] for item in items[at + 1:]]
        if all(began.get(index) for index in behind):
            self.violate("map-error-abort", f"{what}: every item after the error ran; the call was not aborted")

    # ------------------------------------------------------------------ terminate
    @_grading()
    @rule(others=st.lists(st.sampled_from(["ok", "raise", "sigkill"]), max_size=3))
    def terminate_during_a_slow_callback(self, others: list[str]) -> None:
        """A slow callback runs, terminate() comes, every result must resolve once; then a fresh pool."""
        calls: dict[int, list[tuple[str, object]]] = {}
        lock = threading.Lock()
        in_slow_callback = threading.Event()

        def hooks(index: int, slow: bool):
            def callback(value):
                with lock:
                    calls.setdefault(index, []).append(("callback", value))
                if slow:
                    in_slow_callback.set()
                    time.sleep(SLOW_CALLBACK)

            def error_callback(error):
                with lock:
                    calls.setdefault(index, []).append(("error_callback", error))

            return {"callback": callback, "error_callback": error_callback}

        # the first answers at once (its callback is the slow one); the second is still running at terminate()
        plan = [("ok", 0.0), ("ok", 5.0)] + [(kind, 0.02) for kind in others]
        # terminate() ends the pool: use ours, then start a fresh one (two live pools could not tell
        # their worker processes apart, which no-orphans needs)
        self.wait_for_results()
        pool = self.adapter
        handles: dict[int, tuple[str, object]] = {}
        answers: dict[int, tuple[object, BaseException | None]] = {}
        try:
            for n, (kind, nap) in enumerate(plan):
                index = self.new_index()
                try:
                    handle = pool.submit(work, (kind, self.markers, index, nap), **hooks(index, slow=n == 0))
                except Exception as exc:
                    handle = _Refused(exc)
                handles[index] = (kind, handle)
            if not in_slow_callback.wait(self.bound):
                self.hang(f"the callback of task {min(handles)} did not run within {self.bound} s")
            stopper = threading.Thread(target=pool.terminate, args=(SLOW_CALLBACK + self.bound,), daemon=True)
            stopper.start()
            for index, (kind, handle) in handles.items():
                try:
                    if isinstance(handle, _Refused):
                        raise handle.error
                    answers[index] = (pool.get(handle, SLOW_CALLBACK + self.bound), None)
                except Hang:
                    self.hang(f"task {index} ({kind}) was not answered within {SLOW_CALLBACK + self.bound} s "
                              "of terminate()")
                except (Exception, SystemExit) as exc:
                    answers[index] = (None, exc)
            stopper.join(SLOW_CALLBACK + self.bound)
            time.sleep(0.3)  # a second callback for an answered task would come now
        finally:
            if self.hung is None:  # a hang leaves the pool to teardown's close
                left = pool.close()
                self.adapter = self.adapter_cls()
                self.after_idle_kill = self.map_aborted = False
        if left:
            self.violate("no-orphans", f"processes left after terminate() and close: {left}")
        with lock:
            seen = {index: list(made) for index, made in calls.items()}
        for index, (kind, _) in handles.items():
            made = seen.get(index, [])
            value, error = answers[index]
            if len(made) != 1:
                self.violate("resolved-once", f"task {index} ({kind}): {len(made)} callback calls "
                                              f"{[name for name, _ in made]}, answer {_show(value, error)}")
            elif (made[0][0] == "callback") != (error is None):
                self.violate("resolved-once", f"task {index} ({kind}): {made[0][0]} got {made[0][1]!r} "
                                              f"but get() gave {_show(value, error)}")
            elif made[0][0] == "callback" and made[0][1] != value:
                self.violate("resolved-once", f"task {index} ({kind}): callback got {made[0][1]!r}, get() {value!r}")

    # ------------------------------------------------------------------ checks
    @precondition(_live)
    @invariant()
    def promises_hold(self) -> None:
        broken = [(g, m) for g, m in self.violations if self.guarantee in (None, g)]
        if broken:
            self.fail(AssertionError("; ".join(f"[{g}] {m}" for g, m in broken)))

    @precondition(_live)
    @invariant()
    def nothing_ran_twice(self) -> None:
        if self.guarantee not in (None, "exactly-once"):
            return
        twice = {i: n for i, n in executions(self.markers).items() if n > 1}
        if twice:
            self.fail(AssertionError(f"[exactly-once] tasks ran more than once: {twice}"))

    def teardown(self) -> None:
        # Called in a ``finally``: when the example already failed (a broken
        # promise, a hang), only clean up; a second error would mask the first.
        failing = sys.exc_info()[1] is not None
        try:
            if not failing and self.hung is None:
                self.wait_for_results()  # every submitted task must answer, whatever is graded
                self.promises_hold()
                self.nothing_ran_twice()
                if self.guarantee in (None, "exactly-once"):
                    counts = executions(self.markers)
                    lost = sorted(i for i in self.succeeded if counts.get(i, 0) != 1)
                    if lost:
                        self.fail(AssertionError(
                            f"[exactly-once] tasks that succeeded without running exactly once: {lost}"))
        finally:
            left = self.adapter.close()
            shutil.rmtree(self.markers, ignore_errors=True)
        if left and not failing and self.hung is None and self.guarantee in (None, "no-orphans"):
            self.fail(AssertionError(f"[no-orphans] processes left after closing the pool: {left}"))


class _Refused:
    """Stands for a task the pool refused at submission."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _show(value, error) -> str:
    return f"{type(error).__name__}: {error}" if error is not None else f"value {value!r}"


def machine_for(adapter_cls: type[Adapter], guarantee: str | None = None) -> type[PoolMachine]:
    """A machine class that drives ``adapter_cls`` and enforces ``guarantee`` (or all it can express)."""
    if guarantee is not None and guarantee not in GUARANTEES:
        raise ValueError(f"unknown guarantee {guarantee!r}; choose from {', '.join(GUARANTEES)}")
    name = f"{adapter_cls.__name__}_{(guarantee or 'all').replace('-', '_')}"
    machine = type(name, (PoolMachine,), {"adapter_cls": adapter_cls, "guarantee": guarantee})
    # Pools are slow to drive: no deadline, and the first broken promise found is the one shrunk and reported.
    machine.TestCase.settings = settings(deadline=None, report_multiple_bugs=False,
                                         suppress_health_check=list(HealthCheck))
    return machine
