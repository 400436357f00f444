"""Hypothesis state machines that check the guarantees of docs/guarantees.md on any pool.

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

import glob
import os
import shutil
import sys
import tempfile
import time

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ..testing.children import kill_own
from .adapters import Adapter, Hang, MpireFaultAdapter, bounded
from .callback_rules import CallbackRules
from .guarantees import (
    GUARANTEES,
    LATE,
    REQUIRES,
    RETRIES,
    SLOW_CALLBACK,
    TASK_TIMEOUT,
    BrokenBeforeHang,
    Guarantee,
    PoolHang,
    Refused,
    can,
    grading,
    live,
    show,
    unsupported,
)
from .lifecycle_rules import LifecycleRules
from .map_rules import MapRules
from .outcome_rules import HARD_GRACE, INPUT_KINDS, OutcomeRules, has_numpy
from .resource_rules import SHM_DIR, ResourceRules, segments
from .tasks import DEATHS, executions, work

__all__ = ["GUARANTEES", "LATE", "REQUIRES", "SLOW_CALLBACK", "TASK_TIMEOUT", "PoolHang", "PoolMachine", "machine_for",
           "unsupported"]


def marker_root() -> str | None:
    """Where an example's marker directory goes: /dev/shm (a tmpfs) where it is a writable directory, else
    the system's temp directory (None). Gradings create and delete thousands of marker files a minute; on
    ext4 each new file searched the inode bitmap past recently deleted inodes, 9% of the machine's CPU in a
    ``verify`` run (perf)."""
    return SHM_DIR if os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK) else None


def marker_prefix(pid: int | None = None) -> str:
    """The name every marker directory of the grading process ``pid`` (this one by default) starts with."""
    return f"mpire-fault-verify-{os.getpid() if pid is None else pid}-"


def remove_markers(pid: int | None = None) -> None:
    """Remove the marker directories of the grading process ``pid``: a grading killed (its timeout, or the
    verify command ended from outside) never reaches its examples' teardown, and /dev/shm is memory."""
    root = marker_root() or tempfile.gettempdir()
    for path in glob.glob(os.path.join(glob.escape(root), glob.escape(marker_prefix(pid)) + "*")):
        shutil.rmtree(path, ignore_errors=True)


class PoolMachine(MapRules, CallbackRules, OutcomeRules, ResourceRules, LifecycleRules, RuleBasedStateMachine):
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
        self.markers = tempfile.mkdtemp(prefix=marker_prefix(), dir=marker_root())
        try:
            self.adapter = self.new_adapter()
        except BaseException:
            shutil.rmtree(self.markers, ignore_errors=True)
            raise
        self.pending: dict[int, tuple[str, object, str | None]] = {}
        self.next_index = 0
        self.after_idle_kill = False
        self.parents_killed = 0  # parent-death probes this example ran
        self.map_aborted = False
        self.violations: list[tuple[str, str]] = []
        self.succeeded: set[int] = set()
        self.hook_calls: dict[int, list[tuple[str, object]]] = {}  # tasks sent with recording hooks (CallbackRules)

    # ------------------------------------------------------------------ helpers
    def new_adapter(self) -> Adapter:
        """A pool as this grading wants it: a short grace period where the pool takes one (hard-timeout would
        wait out 5 s per example otherwise), and a retry after a death when hard-timeout is graded (a hard
        timeout must not be retried as a death)."""
        if self.guarantee in (None, Guarantee.NO_SHM_LEAK, Guarantee.MAP_COMPLETE) and has_numpy():
            # Numpy items are drawn: import it before the pool forks, or every new worker imports it (a
            # second or more on a busy machine) while the kit's bound runs, and a slow import is no hang.
            import numpy  # noqa: F401
        features, options = self.adapter_cls.features, {}
        if "timeout_grace" in features:
            options["timeout_grace"] = HARD_GRACE
        if "task_retries" in features and self.guarantee == Guarantee.HARD_TIMEOUT:
            options["max_task_retries"] = 1
        if "task_retries" in features and self.guarantee == Guarantee.RETRIES:
            options["max_task_retries"] = RETRIES
        return self.adapter_cls(**options)

    def violate(self, guarantee: str, message: str) -> None:
        self.violations.append((Guarantee(guarantee), message))  # an unknown id raises instead of grading nothing

    def hang(self, what: str) -> None:
        """Stop here: a call that never answers breaks §4 whatever guarantee is graded."""
        self.hung = f"{self.adapter.name}: {what}"
        # a rerun the pool started while we waited is still a rerun
        if self.guarantee in (None, Guarantee.EXACTLY_ONCE):
            twice = {i: n for i, n in executions(self.markers).items() if n > 1}
            if twice:
                self.fail(BrokenBeforeHang(f"[exactly-once] tasks ran more than once: {twice} "
                                           f"(then: {what})"))
        self.fail(PoolHang(f"[hang] {self.hung}"))

    def worker_pids(self) -> list[int]:
        """The pool's worker pids, or a hang if the pool cannot say within the bound."""
        try:
            return bounded(self.adapter.worker_pids, self.bound, "listing the worker processes")
        except Hang as exc:
            self.hang(str(exc))
            raise  # not reached: hang() raises

    def fail(self, error: AssertionError) -> None:
        if self.failures_seen is not None:
            self.failures_seen.append(str(error))
        raise error

    def new_index(self) -> int:
        index = self.next_index
        self.next_index += 1
        return index

    def enqueue(self, kind: str, nap: float, blame: str | None = None, hooks: str | None = None,
                raise_after: float = 0.0, **extra) -> int:
        """Submit one task; its answer is judged by ``wait_for_results``, charged to ``blame``; with ``hooks``
        ("record", or "raise": hooks that raise ``raise_after`` seconds after they recorded), its callback and
        error_callback too."""
        index = self.new_index()
        if blame is None and kind == "ok" and self.after_idle_kill:
            blame = Guarantee.IDLE_KILL
        if hooks:
            extra.update(self.recording_hooks(index, raising=hooks == "raise", after=raise_after))
        try:
            handle = self.adapter.submit(work, (kind, self.markers, index, nap), **extra)
        except Exception as exc:  # noqa: BLE001 - a broken pool refuses work: that is this task's answer
            handle = Refused(exc)
            self.hook_calls.pop(index, None)  # refused: no hook is owed
        self.pending[index] = (kind, handle, blame)
        return index

    def answer(self, handle, bound: float, what: str):
        """``(value, error)`` of one task, or a hang."""
        try:
            if isinstance(handle, Refused):
                raise handle.error
            return self.adapter.get(handle, bound), None
        except Hang:
            self.hang(what)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the pool's answer (a pool may re-raise a task's SystemExit)
            return None, exc

    def run_map(self, items: list, what: str):
        """``(values, error, answered_at_ns)`` of one map call, or a hang."""
        try:
            values = self.adapter.map(work, items, self.bound)
            return values, None, time.monotonic_ns()
        except Hang:
            self.hang(f"{what} (waited {self.bound} s)")
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the map raised is the pool's answer
            return None, exc, time.monotonic_ns()

    # ------------------------------------------------------------------ opening
    @initialize()
    def start_with_the_fault_under_test(self) -> None:
        """Every example opens with the situation its guarantee is about; random steps follow."""
        g = self.guarantee
        if g in (Guarantee.MAP_ABORT, Guarantee.MAP_REUSE):
            self.map_with_a_death(2, 1, "sigkill")
            self.map_that_works(1)
        elif g == Guarantee.IDLE_KILL:
            self.kill_an_idle_worker()
            self.submit("ok", 0.0)
            self.wait_for_results()
        elif g in (Guarantee.APPLY_ISOLATION, Guarantee.APPLY_DEATH_ERROR, Guarantee.EXACTLY_ONCE):
            self.submit("sigkill", 0.0)
            self.submit("ok", 0.02)
            self.wait_for_results()
        elif g == Guarantee.RESOLVED_ONCE:
            self.terminate_during_a_slow_callback(["raise"])
        elif g == Guarantee.MAP_ERROR_ABORT:
            self.map_with_an_error(1, 5)
        elif g == Guarantee.HEAD_ONLY:
            self.burst_behind_a_dying_head("sigkill", 3)
        elif g == Guarantee.TIMEOUT_FIRES:
            self.a_task_that_overruns_its_timeout(1)
        elif g == Guarantee.RIGHT_ITEM:
            self.map_with_a_death(4, 2, "sigkill")
        elif g == Guarantee.EXIT_ZERO:
            self.a_task_exits_with_code_zero("apply")
            self.a_task_exits_with_code_zero("map")
        elif g == Guarantee.MAP_COMPLETE:
            for kind in INPUT_KINDS:  # each kind once, 7 items in chunks of 3: the last one is not full
                self.map_of_any_input(kind, 7, 3, None)
        elif g == Guarantee.OWN_EXCEPTION:
            self.a_task_raises_its_own_exception("apply", 0)
        elif g == Guarantee.ERROR_FIELDS:
            self.a_death_names_its_worker("sigkill", "apply", 0)
        elif g == Guarantee.HARD_TIMEOUT:
            self.a_task_that_will_not_stop(1)
        elif g == Guarantee.CLOCK_AT_START:
            self.a_timed_task_queued_behind_slow_ones(2)
        elif g == Guarantee.INIT_GIVES_UP:
            self.a_worker_init_that_always_fails()
        elif g == Guarantee.NO_SHM_LEAK:
            self.big_arguments("bytes", ["sigkill", "echo"], "raise", 5)
        elif g == Guarantee.PARENT_DEATH:
            self.the_parent_is_sigkilled("fork", 1)
        elif g == Guarantee.LIFESPAN:
            self.a_map_on_workers_with_a_lifespan(1, 3)
        elif g == Guarantee.RETRIES:
            self.a_task_killed_in_its_first_runs(RETRIES)

    # ------------------------------------------------------------------ apply
    @precondition(live)
    @rule(kind=st.sampled_from(["ok", "ok", "raise", "exit", "sigkill"]), nap=st.sampled_from([0.0, 0.02]),
          hooks=st.sampled_from([None, "record", "raise"]))
    def submit(self, kind: str, nap: float, hooks: str | None = None) -> None:
        self.enqueue(kind, nap, hooks=hooks)

    @precondition(live)
    @rule()
    def wait_for_results(self) -> None:
        for index, (kind, handle, blame) in sorted(self.pending.items()):
            never = f"task {index} ({kind}) never answered (waited {self.bound} s)"
            value, error = self.answer(handle, self.bound, never)
            self.judge(index, kind, value, error, blame)
            self.hooks_agree(index, kind, value, error)
            del self.pending[index]

    def judge(self, index: int, kind: str, value, error, blame: str | None) -> None:
        if error is None:
            self.succeeded.add(index)
        if kind == "ok" and (error is not None or value != index * 2):
            self.violate(blame or Guarantee.APPLY_ISOLATION, f"task {index} (ok) got {show(value, error)}")
        elif kind == "raise" and not isinstance(error, ValueError):
            self.violate(blame or Guarantee.APPLY_ISOLATION,
                         f"task {index} (raise) got {show(value, error)}, not its ValueError")
        elif kind in DEATHS:
            blame = blame or (Guarantee.EXIT_ZERO if kind == "exit0" else Guarantee.APPLY_DEATH_ERROR)
            if error is None:
                self.violate(blame, f"task {index} ({kind}) returned {value!r} instead of an error")
            elif self.adapter.death_error != "an exception" and type(error).__name__ != self.adapter.death_error:
                self.violate(blame, f"task {index} ({kind}) got {show(value, error)}")

    @grading(Guarantee.HEAD_ONLY, Guarantee.APPLY_ISOLATION, Guarantee.EXACTLY_ONCE)
    @rule(kind=st.sampled_from(["sigkill", "exit"]), behind=st.integers(2, 5))
    def burst_behind_a_dying_head(self, kind: str, behind: int) -> None:
        """Quick tasks first (so the pool may queue several per worker), then a dying task and a burst behind it."""
        self.wait_for_results()
        for _ in range(8):  # a pool that measures task durations learns these are short
            self.enqueue("ok", 0.0)
        self.wait_for_results()
        # the burst takes longer than the head lives, so some of it is still queued when the head dies
        self.enqueue(kind, 0.15, blame=Guarantee.HEAD_ONLY)
        for _ in range(behind):
            self.enqueue("ok", 0.05, blame=Guarantee.HEAD_ONLY)
        self.wait_for_results()

    @grading(Guarantee.EXIT_ZERO)
    @rule(where=st.sampled_from(["apply", "map"]))
    def a_task_exits_with_code_zero(self, where: str) -> None:
        if where == "apply":
            self.enqueue("exit0", 0.0, blame=Guarantee.EXIT_ZERO)
            self.enqueue("ok", 0.02, blame=Guarantee.EXIT_ZERO)
            self.wait_for_results()
        else:
            self.map_with_a_death(3, 1, "exit0")

    @grading(Guarantee.TIMEOUT_FIRES)
    @can("task_timeout")
    @rule(others=st.integers(0, 3))
    def a_task_that_overruns_its_timeout(self, others: int) -> None:
        index = self.new_index()
        try:
            handle = self.adapter.submit(work, ("ok", self.markers, index, 30.0), timeout=TASK_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - whatever the pool raised is its answer
            handle = Refused(exc)
        for _ in range(others):
            self.enqueue("ok", 0.02, blame=Guarantee.TIMEOUT_FIRES)
        started = time.monotonic()
        value, error = self.answer(handle, TASK_TIMEOUT + self.bound,
                                   f"task {index} (sleeps 30 s, task_timeout={TASK_TIMEOUT}) never answered "
                                   f"(waited {TASK_TIMEOUT + self.bound} s)")
        took = time.monotonic() - started
        if not isinstance(error, TimeoutError):
            self.violate(Guarantee.TIMEOUT_FIRES, f"task {index} (sleeps 30 s, task_timeout={TASK_TIMEOUT}) got "
                                          f"{show(value, error)} after {took:.1f} s, not a TimeoutError")
        self.wait_for_results()

    # ------------------------------------------------------------------ kills
    @precondition(live)
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
        if not kill_own(pids[0]):  # gone already, or its number is another process's now
            return
        self.after_idle_kill = True
        deadline = time.monotonic() + self.bound
        while time.monotonic() < deadline:
            now = self.worker_pids()
            if pids[0] not in now and len(now) >= len(pids):
                return
            time.sleep(0.02)
        self.violate(Guarantee.IDLE_KILL,
                     f"worker pid {pids[0]}, killed while idle, was not replaced within {self.bound} s "
                     f"(live workers: {self.worker_pids()}, before: {pids})")

    # ------------------------------------------------------------------ checks
    @precondition(live)
    @invariant()
    def promises_hold(self) -> None:
        broken = [(g, m) for g, m in self.violations if self.guarantee in (None, g)]
        if broken:
            self.fail(AssertionError("; ".join(f"[{g}] {m}" for g, m in broken)))

    @precondition(live)
    @invariant()
    def nothing_ran_twice(self) -> None:
        if self.guarantee not in (None, Guarantee.EXACTLY_ONCE):
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
                self.no_hook_ran_twice()
                self.promises_hold()
                self.nothing_ran_twice()
                if self.guarantee in (None, Guarantee.EXACTLY_ONCE):
                    counts = executions(self.markers)
                    lost = sorted(i for i in self.succeeded if counts.get(i, 0) != 1)
                    if lost:
                        self.fail(AssertionError(
                            f"[exactly-once] tasks that succeeded without running exactly once: {lost}"))
        finally:
            prefix = self.adapter.shm_prefix()
            left = self.adapter.close()
            shutil.rmtree(self.markers, ignore_errors=True)
        kept = segments(prefix)
        if kept and not failing and self.hung is None and self.guarantee in (None, Guarantee.NO_SHM_LEAK):
            self.fail(AssertionError(f"[no-shm-leak] segments left in /dev/shm after closing the pool: {kept[:3]}"))
        if left and not failing and self.hung is None and self.guarantee in (None, Guarantee.NO_ORPHANS):
            self.fail(AssertionError(f"[no-orphans] processes left after closing the pool: {left}: "
                                     f"{self.adapter.left_behind}"))


def machine_for(adapter_cls: type[Adapter], guarantee: str | None = None) -> type[PoolMachine]:
    """A machine class that drives ``adapter_cls`` and enforces ``guarantee`` (or all it can express)."""
    if guarantee is not None and guarantee not in GUARANTEES:
        raise ValueError(f"unknown guarantee {guarantee!r}; choose from {', '.join(GUARANTEES)}")
    name = f"{adapter_cls.__name__}_{(guarantee or 'all').replace('-', '_')}"
    machine: type[PoolMachine] = type(name, (PoolMachine,), {"adapter_cls": adapter_cls, "guarantee": guarantee})
    # Pools are slow to drive: no deadline, and the first broken promise found is the one shrunk and reported.
    machine.TestCase.settings = settings(deadline=None, report_multiple_bugs=False,
                                         suppress_health_check=list(HealthCheck))
    return machine
