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


def perform(action: str, arg: Any, where: str) -> None:
    """Carry out ``action`` here and now (most of them never return)."""
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
        _grow(arg)
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


def _grow(size: int) -> None:
    """Allocate ``size`` bytes of real memory, then keep growing to 4x, then give up.

    The growth after ``size`` is slow enough (a step every 10 ms) for a
    memory watchdog polling every 50 ms to catch it; the 4x cap means the
    fault can never take the host down, even with no limit set.
    """
    hoard = []
    held = 0
    while held < size:
        step = min(_STEP, size - held)
        hoard.append(_touched(step))
        held += step
    while held < 4 * size:
        step = min(_STEP, 4 * size - held)
        hoard.append(_touched(step))
        held += step
        time.sleep(0.01)
    del hoard
    raise MemoryError(f"chaos oom grew to its cap of {4 * size} bytes without being stopped")


# Actions that end the process they run in; a worker thread (start_method="threading")
# shares its process with the pool, so these are refused there.
KILLS_PROCESS = frozenset({"exit", "os_exit", "sigkill", "sigsegv", "sigterm", "oom"})
