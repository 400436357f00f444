"""The child processes a pool leaves behind, told apart from multiprocessing's own long-lived helpers.

The forkserver and the resource tracker (multiprocessing's or loky's) start
with the first pool that needs them and outlive it on purpose, so none of the
checks that count leftover processes (the kit's ``no-orphans``, the scenario
gate, the test suite's guard) may blame a pool for them.
"""
from __future__ import annotations

import psutil

HELPERS = ("forkserver", "resource_tracker")


def is_helper(cmdline: str) -> bool:
    """Whether a process with this command line is one of multiprocessing's helpers."""
    return any(helper in cmdline for helper in HELPERS)


def live_children() -> set[int]:
    """Pids of this process's live descendants (no zombies), less the helpers."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if not is_helper(cmdline):
            found.add(child.pid)
    return found
