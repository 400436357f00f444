"""The guarantees the kit grades, and what the machines' rules share.

``GUARANTEES`` names every promise of docs/guarantees.md the state machines check,
``REQUIRES`` the pool features a guarantee needs; the rest is the small
vocabulary the rule mixins (``map_rules``, ``callback_rules``) and the core
machine (``machines``) have in common: preconditions, bounds, and how an
answer is shown in a message.
"""
from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from hypothesis.stateful import precondition

from .adapters import Adapter

if TYPE_CHECKING:
    from .machines import PoolMachine

class Guarantee(enum.StrEnum):
    """The promises the kit grades; the value is the id users type (``verify --guarantee apply-isolation``).

    Rules name a guarantee by member, never by string, so a misspelt id is an
    AttributeError at import instead of a rule that silently grades nothing.
    """

    APPLY_ISOLATION = "apply-isolation"
    APPLY_DEATH_ERROR = "apply-death-error"
    IDLE_KILL = "idle-kill"
    EXACTLY_ONCE = "exactly-once"
    MAP_ABORT = "map-abort"
    MAP_REUSE = "map-reuse"
    NO_ORPHANS = "no-orphans"
    RESOLVED_ONCE = "resolved-once"
    MAP_ERROR_ABORT = "map-error-abort"
    HEAD_ONLY = "head-only"
    TIMEOUT_FIRES = "timeout-fires"
    RIGHT_ITEM = "right-item"
    EXIT_ZERO = "exit-zero"
    MAP_COMPLETE = "map-complete"
    OWN_EXCEPTION = "own-exception"
    ERROR_FIELDS = "error-fields"
    HARD_TIMEOUT = "hard-timeout"
    CLOCK_AT_START = "clock-at-start"
    INIT_GIVES_UP = "init-gives-up"
    NO_SHM_LEAK = "no-shm-leak"
    PARENT_DEATH = "parent-death"
    LIFESPAN = "lifespan"
    RETRIES = "retries"


GUARANTEES: dict[str, str] = {
    Guarantee.APPLY_ISOLATION: "apply: only the task whose worker died fails; every other task succeeds",
    Guarantee.APPLY_DEATH_ERROR: "apply: the task whose worker died gets an error (not a value, not silence)",
    Guarantee.IDLE_KILL: "a worker killed from outside while idle fails no task and is replaced; later calls work",
    Guarantee.EXACTLY_ONCE: "every task ran at most once; each success ran exactly once",
    Guarantee.MAP_ABORT: ("map: a death aborts the call with an error, promptly (within 1.5 s of the death); "
                  "its running items are stopped, "
                  "no later one starts"),
    Guarantee.MAP_REUSE: "map: the next call after an aborted one works",
    Guarantee.NO_ORPHANS: "closing the pool leaves no process behind",
    Guarantee.RESOLVED_ONCE: "each result resolves once and its callback or error_callback runs once, with "
                     "the value or the error get() gives, even when terminate() runs during a slow callback; a "
                     "callback that raises breaks nothing",
    Guarantee.MAP_ERROR_ABORT: "map: an exception in a task aborts the call with that exception; no later item starts",
    Guarantee.HEAD_ONLY: ("apply: of the tasks a dead worker held, only the one it was running fails; "
                  "those queued behind it succeed"),
    Guarantee.TIMEOUT_FIRES: ("apply: a task that overruns its task_timeout fails with a TimeoutError in bounded time; "
                      "others succeed"),
    Guarantee.RIGHT_ITEM: "map: the item a death error names is the item that died",
    Guarantee.EXIT_ZERO: "a task that calls os._exit(0) is a death of that task (an error), not a clean exit or a hang",
    Guarantee.MAP_COMPLETE: ("map: one result per item, in order, whatever the input (list, generator, range, dicts, "
                             "numpy) and however it is cut (chunk_size, n_splits, a last chunk that is not full)"),
    Guarantee.OWN_EXCEPTION: ("a task's own exception reaches the caller with its class and args, the worker's "
                              "traceback chained as __cause__ (apply and map)"),
    Guarantee.ERROR_FIELDS: ("a death's WorkerDiedError names the worker (worker_id, pid of the process that died), "
                             "its exitcode (-9 for SIGKILL, the sys.exit code) and the task"),
    Guarantee.HARD_TIMEOUT: ("a task still running past task_timeout + the grace period fails with a TimeoutError "
                             "(not as a death), runs once (never retried as a death), and the pool goes on"),
    Guarantee.CLOCK_AT_START: ("a task's task_timeout counts from the moment it starts: time spent queued behind a "
                               "slow task is not the task's"),
    Guarantee.INIT_GIVES_UP: ("a worker_init that always fails ends the call within a bounded time with an error "
                              "(WorkerInitError, also of the hook's own class); the pool does not respawn forever"),
    Guarantee.NO_SHM_LEAK: ("big arguments (1 MiB or more of bytes or numpy) leave no segment in /dev/shm once their "
                            "tasks are answered, failed by a death or dropped by an abort, nor after close"),
    Guarantee.PARENT_DEATH: ("when the parent is SIGKILLed, every process it started for the pool (busy or idle "
                             "workers) exits within 3 s"),
    Guarantee.LIFESPAN: ("a pool told to replace its workers after N tasks (worker_lifespan, maxtasksperchild, "
                         "max_tasks_per_child) runs at most N tasks in each worker process, and every item still "
                         "answers, once and in order"),
    Guarantee.RETRIES: ("with max_task_retries=R, a task whose worker died runs again, at most R more times: killed "
                        "in its first R runs it still succeeds, killed in R+1 it fails with the death error"),
}
# Guarantees that need something beyond submit/get/map/terminate (see adapters.FEATURES).
REQUIRES: dict[str, frozenset[str]] = {
    Guarantee.TIMEOUT_FIRES: frozenset({"task_timeout"}),
    Guarantee.RIGHT_ITEM: frozenset({"names_item"}),
    Guarantee.ERROR_FIELDS: frozenset({"error_fields"}),
    Guarantee.HARD_TIMEOUT: frozenset({"task_timeout"}),
    Guarantee.CLOCK_AT_START: frozenset({"task_timeout"}),
    Guarantee.INIT_GIVES_UP: frozenset({"worker_init"}),
    Guarantee.NO_SHM_LEAK: frozenset({"shared_memory"}),
    Guarantee.RESOLVED_ONCE: frozenset({"terminate"}),
    Guarantee.LIFESPAN: frozenset({"lifespan"}),
    Guarantee.RETRIES: frozenset({"task_retries"}),
}
RETRIES = 2  # the max_task_retries a pool graded on ``retries`` gets
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


def live(self: PoolMachine) -> bool:
    return self.hung is None


def grading(*guarantees: str):
    """Precondition: the machine is live and grades all guarantees or one of these."""
    wanted = (None, *(Guarantee(name) for name in guarantees))  # an unknown id fails here, at import
    return precondition(lambda self: self.hung is None and self.guarantee in wanted)


def can(feature: str):
    return precondition(lambda self: feature in self.adapter_cls.features)


class Refused:
    """Stands for a task the pool refused at submission."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def show(value, error) -> str:
    return f"{type(error).__name__}: {error}" if error is not None else f"value {value!r}"
