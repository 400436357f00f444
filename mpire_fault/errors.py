"""The error hierarchy of the public contract (docs/guarantees.md).

Each error derives from the builtin a user already catches (MPIRE code that
catches ``RuntimeError`` keeps working) and keeps structured fields, so tests
and callers never have to parse a message.
"""
from __future__ import annotations

import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any


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


class RecordMapping(Mapping):
    """Read a frozen record like the dict it used to be: ``stats["restarts"]``, ``dict(death)``."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Death(RecordMapping):
    """One death of a worker: in a ``WorkerDiedError``'s ``deaths``, and in ``statistics()["deaths"]``.

    ``reason`` says why we killed it (a ``protocol.KillReason`` value), or is
    None when it died on its own; ``task`` describes the task it was
    running, if any; ``phase`` is where in that task it was.
    """

    worker_id: int
    pid: int | None
    exitcode: int | None
    oom: bool = False
    phase: str | None = None
    reason: str | None = None
    task: str | None = None

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
    """``task_timeout`` passed.

    First it is raised inside the task (its ``finally`` blocks run and the
    worker lives on); ``killed`` says the task did not return within the grace
    period after that, so its worker was killed and replaced.
    """

    def __init__(self, timeout: float | None, worker_id: int | None = None, task: str | None = None,
                 killed: bool = True) -> None:
        self.timeout = timeout
        self.worker_id = worker_id
        self.task = task
        self.killed = killed
        where = f" on worker {worker_id}" if worker_id is not None else ""
        what = ("it did not stop when interrupted, so the worker was killed and replaced" if killed
                else "it was interrupted and the worker lives on")
        # MPIRE's words first, so code that matches on them still does
        mpire = f"Worker-{worker_id} task timed out (timeout={timeout}): " if worker_id is not None else ""
        super().__init__(f"{mpire}{task or 'task'} exceeded task_timeout={timeout}s{where}; {what}")

    def __reduce__(self):
        return (TaskTimeoutError, (self.timeout, self.worker_id, self.task, self.killed))


class WorkerInitError(RuntimeError):
    """``worker_init`` raised, crashed or timed out repeatedly; the original is ``__cause__``.

    Raised as ``also_as(WorkerInitError, type(cause))``, so MPIRE code that
    catches the hook's own exception type (or ``TimeoutError``) still does.
    """


class WorkerExitError(RuntimeError):
    """``worker_exit`` raised, crashed or timed out; raised like ``WorkerInitError``."""


_HYBRIDS: dict[tuple[type, type], type] = {}


def also_as(cls: type[BaseException], other: type[BaseException]) -> type[BaseException]:
    """``cls``, made also a subclass of ``other`` so that ``except other`` catches it.

    MPIRE hands a hook's own exception to the caller; we keep our class (and
    its fields) but must not break ``except ValueError:`` in MPIRE code.
    Falls back to ``cls`` when Python cannot combine the two (layout clash).
    """
    if issubclass(cls, other) or not issubclass(other, Exception):
        return cls
    key = (cls, other)
    hybrid = _HYBRIDS.get(key)
    if hybrid is None:
        try:
            hybrid = type(cls.__name__, (cls, other), {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__init__": cls.__init__,
                "__str__": cls.__str__,
                "__reduce__": _reduce_hybrid,
            })
        except TypeError:
            hybrid = cls
        _HYBRIDS[key] = hybrid
    return hybrid


def _reduce_hybrid(self: BaseException):
    base, other = type(self).__mro__[1], type(self).__bases__[1]
    return (_rebuild_hybrid, (base, other, self.args))


def _rebuild_hybrid(base: type[BaseException], other: type[BaseException], args: tuple) -> BaseException:
    return also_as(base, other)(*args)


def hook_error(cls: type[BaseException], message: str, cause: BaseException | None) -> BaseException:
    """A ``WorkerInitError``/``WorkerExitError`` that is also an instance of ``cause``'s type."""
    error = also_as(cls, type(cause))(message) if cause is not None else cls(message)
    error.__cause__ = cause
    return error


class PoolTerminatedError(RuntimeError):
    """The pool was terminated while the task was pending."""


class SchedulerLostError(PoolTerminatedError):
    """The Dask scheduler stopped answering, or went away: the pool can run nothing more.

    ``address`` is the scheduler's; pending tasks and calls fail with this
    error in bounded time instead of waiting for an answer that never comes.
    """

    def __init__(self, address: str, detail: str) -> None:
        super().__init__(f"lost the scheduler at {address}: {detail}")
        self.address = address
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.address, self.detail))


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
