"""The child processes a pool leaves behind, told apart from multiprocessing's own long-lived helpers.

The forkserver and the resource tracker (multiprocessing's or loky's) start
with the first pool that needs them and outlive it on purpose, so none of the
checks that count leftover processes (the kit's ``no-orphans``, the scenario
gate, the test suite's guard) may blame a pool for them.
"""
from __future__ import annotations

import os

import psutil

HELPERS = ("forkserver", "resource_tracker")
PF_EXITING = 0x4  # include/linux/sched.h: the process has begun to exit and runs no user code again


def is_helper(cmdline: str) -> bool:
    """Whether a process with this command line is one of multiprocessing's helpers."""
    return any(helper in cmdline for helper in HELPERS)


def _stat(pid: int) -> list[bytes]:
    """The fields of ``/proc/PID/stat`` after the command name (``fields[0]`` is the state); OSError if gone."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rsplit(b")", 1)[1].split()


def exiting(pid: int) -> bool:
    """Whether the kernel is tearing this process down (it has begun to exit, but is no zombie yet).

    Freeing the address space of a forked worker can take seconds on a
    machine loaded 30 times over (the kit saw a SIGKILLed worker spend 5 s in
    ``unmap_page_range``): such a process is dying, not left behind.
    """
    try:
        return _exiting(_stat(pid))
    except (OSError, IndexError, ValueError):
        return False


def _exiting(fields: list[bytes]) -> bool:
    return bool(int(fields[6]) & PF_EXITING)


def age(pid: int) -> float | None:
    """Seconds since this process started, to the clock tick (psutil's ``create_time`` is off by up to 1 s:
    its boot time is whole seconds); None if it is gone."""
    try:
        started = int(_stat(pid)[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as uptime:
            return float(uptime.read().split()[0]) - started
    except (OSError, IndexError, ValueError):
        return None


def live_children() -> set[int]:
    """Pids of this process's live descendants (no zombies, none that is exiting), less the helpers."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            fields = _stat(child.pid)  # one read gives the state (Z: a zombie) and the flags (see exiting)
            if fields[0] == b"Z" or _exiting(fields):
                continue
            cmdline = " ".join(child.cmdline())
        except (psutil.Error, OSError, IndexError, ValueError):
            continue
        if not is_helper(cmdline):
            found.add(child.pid)
    return found


def kill_own(pid: int) -> bool:
    """SIGKILL ``pid`` if it is a descendant of this process now; False if it is not (or is gone).

    A worker's pid read from a pool's statistics a moment ago may belong to
    another process by now: on a machine that starts and kills workers by
    the thousand, pid numbers (32 768 of them by default) come round within
    minutes, and a kill by number would strike whatever took it (another
    grading's pool, or a process of the user's). psutil checks that the
    process it kills is the one it looked up.
    """
    try:
        proc = psutil.Process(pid)
        if os.getpid() not in {parent.pid for parent in proc.parents()}:
            return False
        proc.kill()
    except psutil.Error:
        return False
    return True
