"""MPIRE's ``mpire.exception`` names, so ``from mpire_fault.exception import ...`` works as a drop-in.

MPIRE raises ``StopWorker`` or ``InterruptWorker`` inside a task it stops
(a timeout, or an error elsewhere in a map), and task code that catches
everything re-raises them so the stop goes through::

    try:
        work()
    except (InterruptWorker, StopWorker):
        raise
    except Exception:
        log()

Our pool stops a running task the same two ways: a ``task_timeout`` raises
``TaskInterrupted`` inside the task, which is a ``TaskTimeoutError`` and
also both of these, so such code keeps working; a map call that aborts
stops its running items by replacing their workers, which no ``except``
can swallow.
"""
from __future__ import annotations

import re
from typing import Any

from .errors import TaskTimeoutError

__all__ = ["CannotPickleExceptionError", "InterruptWorker", "StopWorker", "TaskInterrupted", "highlight_traceback",
           "populate_exception", "remove_highlighting"]

_ANSI_SEQUENCE = re.compile(r"\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])")


class StopWorker(Exception):
    """MPIRE's signal to a task that its worker stops; re-raise it if you catch everything."""


class InterruptWorker(Exception):
    """MPIRE's signal to a task that it is interrupted (a timeout); re-raise it if you catch everything."""


class CannotPickleExceptionError(Exception):
    """An exception raised in a worker that could not travel to the parent (MPIRE's name).

    Our pool rebuilds such exceptions as their own class instead (see
    ``serialization.dump_exception``); the name exists for code that catches it.
    """


class TaskInterrupted(TaskTimeoutError, InterruptWorker, StopWorker):
    """What a ``task_timeout`` raises inside the task: a ``TaskTimeoutError`` that MPIRE-style code also re-raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (TaskInterrupted, (self.timeout, self.worker_id, self.task, self.killed))


def highlight_traceback(traceback_str: str) -> str:
    """The traceback coloured for a terminal when pygments is installed (as MPIRE does), else as it is."""
    try:
        from pygments import highlight
        from pygments.formatters import TerminalFormatter
        from pygments.lexers import Python3TracebackLexer
    except ImportError:
        return traceback_str
    return highlight(traceback_str, Python3TracebackLexer(), TerminalFormatter())


def remove_highlighting(traceback_str: str) -> str:
    """``traceback_str`` without ANSI colour and cursor sequences."""
    return _ANSI_SEQUENCE.sub("", traceback_str)


def populate_exception(err_type: type[BaseException], err_args: Any, err_state: dict,
                       traceback_str: str) -> tuple[BaseException, Exception]:
    """An instance of ``err_type`` made without calling its ``__init__``, and the traceback as an exception.

    MPIRE's way to rebuild an exception whose ``__init__`` takes other
    arguments than its ``args``; the second value is meant as its ``__cause__``.
    """
    err = err_type.__new__(err_type)
    err.args = err_args
    err.__dict__.update(err_state)
    return err, Exception(highlight_traceback(traceback_str))
