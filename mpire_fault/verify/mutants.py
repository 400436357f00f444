"""Broken variants of our own pool, to show the kit catches each kind of bug (``verify --self-test``).

Each mutant is one small monkeypatch of an ``mpire_fault`` internal,
applied from outside inside a context manager, in the parent process before
the pool is created (the kit's pools use the fork start method, so a patch
of worker-side code reaches the workers too). A patch replaces one method
on the class the pool actually uses (``Supervisor``, ``WorkerSlot``,
``MapJob``, ``AsyncResult``), wherever in its bases that method is defined,
so a patch keeps working when code moves between a class and its bases;
only the method's name (and, for a few, its first arguments) is assumed.

``catchers`` are the guarantees expected to catch the mutant, tried in
that order; the self-test stops at the first that does not pass.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .conformance import Verdict, check
from .guarantees import Guarantee
from .mutant_base import Mutant, MutantTargetMissing, assign, patched
from .mutants_planted import PLANTED
from .mutants_second import SECOND


# ---------------------------------------------------------------------- the patches
def _supervisor():
    from mpire_fault._engine.supervisor import Supervisor

    return Supervisor


def _settlement():
    from mpire_fault._engine.settlement import Settlement

    return Settlement


def no_requeue():
    """At a death, the tasks queued behind the one that was running are dropped, not requeued."""
    return patched(_settlement(), "requeue", lambda original: lambda self, tasks, from_worker: None)


def whole_ledger_failed():
    """At a death, every task the worker held fails, not only the one it was running."""
    from mpire_fault.errors import WorkerDiedError

    def make(original):
        def requeue(self, tasks, from_worker):
            for task in tasks:
                self.fail_task(task, WorkerDiedError(-1, None, None, task=task.job.describe(task),
                                                     detail="failed with the task ahead of it"))
        return requeue

    return patched(_settlement(), "requeue", make)


def head_requeued():
    """The task a dead worker was running is put back in the queue instead of failed."""
    def make(original):
        def settle_head(self, slot, task, *rest):
            if slot.kill_reason == "timeout":
                return original(self, slot, task, *rest)
            self.requeue([task], slot.worker_id)
        return settle_head

    return patched(_settlement(), "settle_head", make)


def _never_restart(only_idle: bool):
    def make(original):
        def on_exit(self, slot):
            idle, stopping = not slot.ledger, slot.stopping
            original(self, slot)
            if not stopping and not self.state.finishing and (idle or not only_idle):
                assign(slot, "restart_at", math.inf)
        return on_exit

    return patched(_supervisor(), "on_exit", make)


def no_restart():
    """A worker that died is never replaced."""
    return _never_restart(only_idle=False)


def idle_death_ignored():
    """A worker that died while idle (it held no task) is never replaced."""
    return _never_restart(only_idle=True)


def no_map_abort():
    """A death in a map fails the call, but its running items go on and nothing more is cancelled."""
    from mpire_fault.errors import WorkerDiedError

    def make(original):
        def fail_task(self, task, exc, *rest):
            if not task.job.aborts_on_failure or not isinstance(exc, WorkerDiedError):
                return original(self, task, exc, *rest)
            self.state.counters.tasks_failed += 1
            if not task.job.done:
                task.job.on_error(task, exc)
        return fail_task

    return patched(_settlement(), "fail_task", make)


def cancel_flag_left_on():
    """Every map gets the same job id, so the cancel flag an aborted map left set cancels the next one."""
    from mpire_fault._engine.jobs import MapJob

    def make(original):
        def __init__(self, *args, **kwargs):
            original(self, *args, **kwargs)
            assign(self, "job_id", 4093)
        return __init__

    return patched(MapJob, "__init__", make)


@contextlib.contextmanager
def double_resolve() -> Iterator[None]:
    """AsyncResult without its once-only guard (values and errors alike)."""
    from mpire_fault._core.results import AsyncResult

    def make(original):
        def resolve(self, *args, **kwargs):
            with self._lock:
                assign(self, "_resolved", False)
            return original(self, *args, **kwargs)
        return resolve

    with patched(AsyncResult, "_resolve", make), patched(AsyncResult, "_resolve_pickled", make):
        yield


@contextlib.contextmanager
def timeout_never_fires() -> Iterator[None]:
    """The watchdog neither interrupts nor kills a task that overran its task_timeout."""
    from mpire_fault._engine.slots import WorkerSlot

    def make(original):
        def kill(self, reason):
            if reason != "timeout":
                original(self, reason)
        return kill

    def make_interrupt(original):
        def interrupt(self, progress, target_task, target_item, grace):
            if target_task >= 0:  # a task's soft timeout (hooks have negative targets)
                return None
            return original(self, progress, target_task, target_item, grace)
        return interrupt

    with patched(WorkerSlot, "kill", make), patched(WorkerSlot, "interrupt", make_interrupt):
        yield


def wrong_item():
    """A death in a map names the item after the one that died."""
    from mpire_fault._engine.jobs import MapJob

    def make(original):
        def describe(self, task, index=None):
            return original(self, task, (task.first_index if index is None else index) + 1)
        return describe

    return patched(MapJob, "describe", make)


def workers_left_alive():
    """terminate() and shutdown leave the worker processes running."""
    return patched(_supervisor(), "kill_all", lambda original: lambda self, reason: None)


def exit_zero_is_clean():
    """A worker that exits with code 0 is taken to have left cleanly: the task it was running is not settled."""
    def make(original):
        def settle_head(self, slot, task, *rest):
            if slot.process is not None and slot.process.exitcode == 0:
                return None
            return original(self, slot, task, *rest)
        return settle_head

    return patched(_settlement(), "settle_head", make)


MUTANTS: dict[str, Mutant] = {m.name: m for m in [
    Mutant("no-requeue", no_requeue, (Guarantee.HEAD_ONLY, Guarantee.APPLY_ISOLATION)),
    Mutant("whole-ledger-failed", whole_ledger_failed, (Guarantee.HEAD_ONLY, Guarantee.APPLY_ISOLATION)),
    Mutant("head-requeued", head_requeued, (Guarantee.APPLY_DEATH_ERROR, Guarantee.EXACTLY_ONCE, Guarantee.HEAD_ONLY)),
    Mutant("no-restart", no_restart, (Guarantee.IDLE_KILL, Guarantee.APPLY_ISOLATION)),
    Mutant("idle-death-ignored", idle_death_ignored, (Guarantee.IDLE_KILL,)),
    Mutant("no-map-abort", no_map_abort, (Guarantee.MAP_ABORT,)),
    Mutant("cancel-flag-left-on", cancel_flag_left_on, (Guarantee.MAP_REUSE, Guarantee.MAP_ABORT)),
    Mutant("double-resolve", double_resolve, (Guarantee.RESOLVED_ONCE,)),
    Mutant("timeout-never-fires", timeout_never_fires, (Guarantee.TIMEOUT_FIRES,)),
    Mutant("wrong-item", wrong_item, (Guarantee.RIGHT_ITEM,)),
    Mutant("workers-left-alive", workers_left_alive, (Guarantee.NO_ORPHANS,)),
    Mutant("exit-zero-clean", exit_zero_is_clean, (Guarantee.EXIT_ZERO,)),
]}


# The catalogues by name: ``verify --self-test`` and ``python -m mpire_fault.verify.score`` report each apart.
CATALOGUES: dict[str, dict[str, Mutant]] = {"first": MUTANTS, "second": SECOND, "planted": PLANTED}
ALL_MUTANTS: dict[str, Mutant] = {name: m for catalogue in CATALOGUES.values() for name, m in catalogue.items()}
assert len(ALL_MUTANTS) == sum(map(len, CATALOGUES.values())), "a mutant name is in two catalogues"


def catalogue_of(name: str) -> str:
    return next(label for label, catalogue in CATALOGUES.items() if name in catalogue)


@dataclass(frozen=True)
class Outcome:
    mutant: str
    description: str
    caught: bool
    verdict: Verdict | None  # the one that caught it, else the last tried
    seconds: float
    error: str | None = None  # the mutant could not be applied (its target moved): the kit's own failure


@contextlib.contextmanager
def _announced(name: str) -> Iterator[None]:
    """The mutant's name in MPIRE_FAULT_MUTANT while it is applied: the programs the kit starts (the
    parent-death probe) apply it too."""
    before = os.environ.get(_ENV)
    os.environ[_ENV] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = before


_ENV = "MPIRE_FAULT_MUTANT"


def hunt(mutant: Mutant, examples: int) -> Outcome:
    """Grade our pool, with the mutant's patch applied, on its catchers until one fails.

    A patch whose target does not exist any more is an ``error`` outcome (never caught, never survived).
    """
    started = time.monotonic()
    last = None
    try:
        patch = mutant.patch()
        patch.__enter__()
    except MutantTargetMissing as exc:
        return Outcome(mutant.name, mutant.description, False, None, time.monotonic() - started, str(exc))
    try:
        with _announced(mutant.name):
            for guarantee in mutant.catchers:
                last = check("mpire_fault", guarantee, examples)
                if last.status in ("fail", "hang"):
                    return Outcome(mutant.name, mutant.description, True, last, time.monotonic() - started)
    finally:
        patch.__exit__(None, None, None)
    return Outcome(mutant.name, mutant.description, False, last, time.monotonic() - started)
