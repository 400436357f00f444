"""Process bookkeeping shared by the Dask suite's conftest and its CLI-cluster module.

The filter of child processes itself is the suite-wide one (``tests/_children.py``).

A module of its own (not conftest): ``conftest`` is an ambiguous module name
when the whole ``tests`` tree runs, and both users must see the same sets.
"""
from __future__ import annotations

import os

import psutil
from _children import children, wait_for_no_children  # noqa: F401  (re-exported for the suite's users)

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
