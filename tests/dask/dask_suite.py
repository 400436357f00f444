"""Process bookkeeping shared by the Dask suite's conftest and its CLI-cluster module.

A module of its own (not conftest): ``conftest`` is an ambiguous module name
when the whole ``tests`` tree runs, and both users must see the same sets.
"""
from __future__ import annotations

import os
import time

import psutil

OWNED: list = []  # LocalClusters of module fixtures that are still running
OWNED_GROUPS: set[int] = set()  # process groups of CLI-started clusters that module fixtures still run


def _owned_worker_pids() -> set[int]:
    pids = set()
    for cluster in OWNED:
        for nanny in list(getattr(cluster, "workers", {}).values()):
            pid = getattr(getattr(nanny, "process", None), "pid", None)
            if pid:
                pids.add(pid)
    for child in psutil.Process().children(recursive=True):
        try:
            if os.getpgid(child.pid) in OWNED_GROUPS:
                pids.add(child.pid)
        except (OSError, psutil.Error):
            pass
    return pids


def children() -> set[int]:
    out = set()
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        if "forkserver" in cmdline or "resource_tracker" in cmdline:
            continue
        out.add(child.pid)
    return out


def wait_for_no_children(allowed: set[int] | callable, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        extra = allowed() if callable(allowed) else allowed
        left = sorted(children() - extra)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)
