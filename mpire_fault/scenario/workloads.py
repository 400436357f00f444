"""Task functions for scenarios: ``function = "mpire_fault.scenario.workloads:NAME"``.

Real functions that misbehave on purpose, importable by fork, spawn and
forkserver workers. Each takes the task's value first (``0 .. n_tasks-1``
when the scenario gives ``n_tasks``); the ``*_on`` keywords name the task
values on which it misbehaves, as an int or a list of ints, so a scenario
can say ``kwargs = {exit_on = 2, raise_on = 5, kill_on = 7}``.
"""
from __future__ import annotations

import builtins
import multiprocessing
import os
import signal
import sys
import time
from typing import Any

from ..chaos.sizes import parse_size


class WorkloadError(Exception):
    """Raised by ``raise_on``/``misbehave`` unless the scenario names a builtin exception."""


def _hits(x: Any, on: int | list[int] | None) -> bool:
    if on is None:
        return False
    return x in on if isinstance(on, (list, tuple)) else x == on


def _error(name: str) -> type[BaseException]:
    if name == "WorkloadError":
        return WorkloadError
    error = getattr(builtins, name, None)
    if not (isinstance(error, type) and issubclass(error, BaseException)):
        raise TypeError(f"{name!r} is not a builtin exception (nor WorkloadError)")
    return error


def square(x: int | float, pause: float = 0.0) -> int | float:
    """``x * x``, after sleeping ``pause`` seconds (to spread tasks over workers)."""
    if pause:
        time.sleep(pause)
    return x * x


def identity(x: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Returns its arguments: ``x`` alone, or ``[x, *args]``, plus kwargs as a final table."""
    if not args and not kwargs:
        return x
    return [x, *args] + ([kwargs] if kwargs else [])


def slow(x: Any, seconds: float = 0.1) -> Any:
    """Sleeps, then returns ``x``."""
    time.sleep(seconds)
    return x


def allocate(x: Any, size: int | str = "32MiB", hold: float = 0.0, on: int | list[int] | None = None) -> Any:
    """Allocates and touches ``size`` of real memory (on every task, or only on the values ``on``)."""
    if on is None or _hits(x, on):
        block = bytearray(parse_size(size))
        for offset in range(0, len(block), 4096):  # touch each page so it counts in RSS
            block[offset] = 1
        if hold:
            time.sleep(hold)
        del block
    return x


def sys_exit_on(x: Any, on: int | list[int] | None = None, code: int = 1, pause: float = 0.0) -> Any:
    """``sys.exit(code)`` on the values ``on``; ``x * x`` otherwise."""
    if pause:
        time.sleep(pause)
    if _hits(x, on):
        sys.exit(code)
    return x * x


def os_exit_on(x: Any, on: int | list[int] | None = None, code: int = 0, pause: float = 0.0) -> Any:
    """``os._exit(code)`` (no cleanup; 0 is a silent death) on the values ``on``; ``x * x`` otherwise."""
    if pause:
        time.sleep(pause)
    if _hits(x, on):
        os._exit(code)
    return x * x


def kill_on(x: Any, on: int | list[int] | None = None, signal_name: str = "SIGKILL", pause: float = 0.0) -> Any:
    """The worker sends itself ``signal_name`` on the values ``on``; ``x * x`` otherwise."""
    if pause:
        time.sleep(pause)
    if _hits(x, on):
        os.kill(os.getpid(), getattr(signal, signal_name))
        time.sleep(10)  # a signal that is not fatal at once must not let the task succeed quietly
    return x * x


def raise_on(x: Any, on: int | list[int] | None = None, error: str = "WorkloadError", pause: float = 0.0) -> Any:
    """Raises ``error`` (a builtin exception name or WorkloadError) on the values ``on``; ``x * x`` otherwise."""
    if pause:
        time.sleep(pause)
    if _hits(x, on):
        raise _error(error)(f"task {x!r} raised on purpose")
    return x * x


def hang_on(x: Any, on: int | list[int] | None = None, seconds: float = 3600.0, pause: float = 0.0) -> Any:
    """Sleeps ``seconds`` on the values ``on`` (for task_timeout); ``x * x`` otherwise."""
    if pause:
        time.sleep(pause)
    if _hits(x, on):
        time.sleep(seconds)
    return x * x


def misbehave(x: Any, exit_on: int | list[int] | None = None, raise_on: int | list[int] | None = None,
              kill_on: int | list[int] | None = None, error: str = "ValueError", pause: float = 0.0) -> Any:
    """The original report in one function: ``sys.exit(1)``, a raise, or SIGKILL, on the given values."""
    if pause:
        time.sleep(pause)
    if _hits(x, exit_on):
        sys.exit(1)
    if _hits(x, raise_on):
        raise _error(error)(f"task {x!r} raised on purpose")
    if _hits(x, kill_on):
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
    return x * x


# A worker that began a task renames its process (Linux: /proc/self/comm, at most 15 bytes) so that
# its siblings can see it from outside without any shared file or object.
BEGAN_NAME = "mpf-began"
GATE_SECONDS = 20.0


def _rename_process(name: str) -> None:
    try:
        with open("/proc/self/comm", "w") as handle:
            handle.write(name)
    except OSError:
        pass  # not Linux: idle_gate cannot see it and says so


def square_named(x: int | float, pause: float = 0.0) -> int | float:
    """``square``, and the worker's process is renamed ``mpf-began`` (what ``idle_gate`` waits for)."""
    _rename_process(BEGAN_NAME)
    return square(x, pause)


def idle_gate(*args: Any) -> None:
    """A ``worker_init``: worker 0 starts at once; every other worker waits until a sibling began a task.

    With ``mode = "apply"`` (one task at a time) and ``square_named``, task
    0 then always runs on worker 0, and every later task too (the pool hands
    a task to the first idle worker, and worker 0 is always idle between
    two tasks). So the other workers become ready while the only task runs
    on worker 0 and are never handed anything: a fault at their ``idle``
    site kills a worker that holds nothing. The waiting worker reads its
    slot from its process name (``mpire_fault-worker-N``), and its siblings'
    names through ``/proc``; it gives up after 20 s with WorkloadError.
    """
    if multiprocessing.current_process().name.endswith("-0"):
        return
    import psutil

    parent, me = psutil.Process(os.getppid()), os.getpid()
    deadline = time.monotonic() + GATE_SECONDS
    while time.monotonic() < deadline:
        for sibling in parent.children():
            try:
                if sibling.pid != me and sibling.name() == BEGAN_NAME:
                    return
            except psutil.Error:
                continue
        time.sleep(0.005)
    raise WorkloadError(f"idle_gate: no sibling worker began a task (square_named) within {GATE_SECONDS:g} s")


def failing_init(*args: Any) -> None:
    """A ``worker_init`` that always raises."""
    raise WorkloadError("worker_init fails on purpose")


def quiet_init(*args: Any) -> None:
    """A ``worker_init`` that does nothing (to prove it runs again after restarts)."""
