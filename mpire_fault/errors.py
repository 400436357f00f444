"""The error hierarchy of the public contract (API.md §3).

Each error derives from the builtin a user already catches (MPIRE code that
catches ``RuntimeError`` keeps working) and keeps structured fields, so tests
and callers never have to parse a message.
"""
from __future__ import annotations

import signal
from dataclasses import dataclass


def describe_exitcode(exitcode: int | None) -> str:
    """``SIGKILL(-9)`` for a signal death, ``exit code 3`` otherwise."""
    if exitcode is None:
        return "no exit code"
    if exitcode < 0:
        return f"{signal_name(exitcode) or 'signal'}({exitcode})"
    return f"exit code {exitcode}"


def signal_name(exitcode: int | None) -> str | None:
    if exitcode is None or exitcode >= 0:
        return None
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Death:
    """One death of a worker that owned a task (an entry of ``deaths``)."""

    worker_id: int
    pid: int | None
    exitcode: int | None
    oom: bool = False
    phase: str | None = None

    @property
    def signal_name(self) -> str | None:
        return signal_name(self.exitcode)

    def __str__(self) -> str:
        text = f"worker {self.worker_id} (pid {self.pid}) {describe_exitcode(self.exitcode)}"
        if self.oom:
            text += " [out of memory]"
        return text


class WorkerDiedError(RuntimeError):
    """A worker process ended while it owned a task."""

    def __init__(
        self,
        worker_id: int,
        pid: int | None,
        exitcode: int | None,
        task: str | None = None,
        oom: bool = False,
        deaths: list[Death] | None = None,
        detail: str | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.pid = pid
        self.exitcode = exitcode
        self.signal_name = signal_name(exitcode)
        self.task = task
        self.oom = oom
        self.deaths = list(deaths) if deaths else [Death(worker_id, pid, exitcode, oom)]
        self.detail = detail
        super().__init__(self._message())

    def _message(self) -> str:
        how = describe_exitcode(self.exitcode)
        text = f"worker {self.worker_id} (pid {self.pid}) died with {how}"
        if self.oom:
            text += ", killed for exceeding its memory limit (out of memory)"
        text += f" while it owned {self.task}" if self.task else " while it owned no described task"
        if self.detail:
            text += f" ({self.detail})"
        if len(self.deaths) > 1:
            text += f"; the task killed {len(self.deaths)} workers: " + ", ".join(map(str, self.deaths))
        return text

    def __reduce__(self):  # keep the fields across pickling (e.g. to a test's subprocess)
        return (
            _rebuild_worker_died,
            (self.worker_id, self.pid, self.exitcode, self.task, self.oom, self.deaths, self.detail),
        )


def _rebuild_worker_died(*args) -> WorkerDiedError:
    return WorkerDiedError(*args)


class TaskTimeoutError(TimeoutError):
    """``task_timeout`` passed; the worker running the task was killed and replaced."""

    def __init__(self, timeout: float, worker_id: int | None = None, task: str | None = None) -> None:
        self.timeout = timeout
        self.worker_id = worker_id
        self.task = task
        where = f" on worker {worker_id}" if worker_id is not None else ""
        super().__init__(f"{task or 'task'} exceeded task_timeout={timeout}s{where}; the worker was killed and replaced")

    def __reduce__(self):
        return (TaskTimeoutError, (self.timeout, self.worker_id, self.task))


class WorkerInitError(RuntimeError):
    """``worker_init`` raised, crashed or timed out repeatedly; the original is ``__cause__``."""


class WorkerExitError(RuntimeError):
    """``worker_exit`` raised, crashed or timed out."""


class PoolTerminatedError(RuntimeError):
    """The pool was terminated while the task was pending."""


class SupervisorError(RuntimeError):
    """A bug in mpire_fault's own supervisor; the pending tasks fail with it instead of hanging."""


class ChaosSpecError(ValueError):
    """A malformed chaos spec; ``spec`` and ``position`` point at the offending text."""

    def __init__(self, message: str, spec: str = "", position: int = 0) -> None:
        self.spec = spec
        self.position = position
        self.reason = message
        if spec:
            pointer = " " * (position + 2) + "^"
            message = f"{message} at position {position}:\n  {spec}\n{pointer}"
        super().__init__(message)

    def __reduce__(self):
        return (ChaosSpecError, (self.reason, self.spec, self.position))


class RemoteTraceback(Exception):
    """Carries a worker's formatted traceback; chained as ``__cause__`` of a task's exception."""

    def __init__(self, tb: str) -> None:
        self.tb = tb
        super().__init__(tb)

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'
