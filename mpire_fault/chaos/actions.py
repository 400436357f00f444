"""What each chaos action does to the process it runs in."""
from __future__ import annotations

import builtins
import os
import signal
import sys
import time
from typing import Any

_STEP = 16 * 2**20  # oom grows by this much at a time
_PAGE = 4096
_HOLD = 5.0  # seconds oom holds the pool's memory limit for its watchdog to end the worker


def perform(action: str, arg: Any, where: str, memory_limit: int | None = None) -> None:
    """Carry out ``action`` here and now (most of them never return).

    ``memory_limit`` is the pool's ``max_worker_memory``, when known: ``oom``
    never grows past it (the pool's watchdog is meant to end the worker there).
    """
    if action == "exit":
        sys.exit(1 if arg is None else arg)
    elif action == "os_exit":
        os._exit(1 if arg is None else arg)
    elif action in ("sigkill", "sigsegv", "sigterm"):
        signum = {"sigkill": signal.SIGKILL, "sigsegv": signal.SIGSEGV, "sigterm": signal.SIGTERM}[action]
        if signum != signal.SIGKILL and callable(signal.getsignal(signum)):
            signal.signal(signum, signal.SIG_DFL)  # a Python handler would swallow the fault
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the signal is delivered on the way out of kill(); this is only a fence
        os._exit(128 + signum)
    elif action == "oom":
        _grow(arg, memory_limit)
    elif action == "raise":
        raise getattr(builtins, arg)(f"injected by mpire_fault chaos at {where}")
    elif action == "hang":
        deadline = None if arg is None else time.monotonic() + arg
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.1 if deadline is None else min(0.1, max(0.0, deadline - time.monotonic())))
    elif action == "sleep":
        time.sleep(arg)
    elif action != "off":
        raise ValueError(f"unknown chaos action {action!r}")


def _touched(size: int) -> bytearray:
    block = bytearray(size)
    block[::_PAGE] = b"\x01" * len(range(0, size, _PAGE))  # write every page so it counts in RSS
    return block


def oom_cap(size: int, memory_limit: int | None = None) -> int:
    """The most ``oom(size)`` may hold: ``size``x4, the pool's limit, half of the memory available now.

    The last bound is read when the fault strikes, so a fault meant for one
    worker can never push the machine into its OOM killer, whatever the
    spec says and whether or not the pool has a limit.
    """
    cap = 4 * size
    if memory_limit:
        cap = min(cap, memory_limit)
    import psutil

    try:
        cap = min(cap, int(psutil.virtual_memory().available) // 2)
    except (psutil.Error, OSError):  # no /proc to read: the other bounds still hold
        pass
    return max(cap, 0)


def _grow(size: int, memory_limit: int | None = None) -> None:
    """Allocate ``size`` bytes of real memory, then keep growing to the cap, then give up.

    The growth after ``size`` is slow enough (a step every 10 ms) for a
    memory watchdog polling every 50 ms to catch it. The cap (``oom_cap``)
    means the fault can never take the host down, even with no limit set;
    when the pool's own limit is the cap, the memory is held at the limit
    for up to ``_HOLD`` seconds so the pool's watchdog sees it even on a
    loaded machine (a one-second hold was once too short on a busy CI host).
    """
    cap = oom_cap(size, memory_limit)
    hoard = []
    held = 0
    while held < min(size, cap):
        step = min(_STEP, min(size, cap) - held)
        hoard.append(_touched(step))
        held += step
    while held < cap:
        step = min(_STEP, cap - held)
        hoard.append(_touched(step))
        held += step
        time.sleep(0.01)
    if memory_limit and cap >= memory_limit:
        time.sleep(_HOLD)
    del hoard
    raise MemoryError(f"chaos oom grew to its cap of {cap} bytes without being stopped")


# Actions that end the process they run in; a worker thread (start_method="threading")
# shares its process with the pool, so these are refused there.
