"""Temporary ``mp-chaos-*`` directories that do not outlive a killed owner.

A chaos run keeps its shared state and journal in a directory under the
temp folder, removed by ``Chaos.close()`` or the pytest plugin at the end.
A process killed with SIGKILL removes nothing, so every such directory
records who made it (``owner.json``: pid and process start time, PID
namespace and boot), and the next process to make one sweeps away those
whose owner is gone. The start time guards against a recycled pid keeping
a stale directory alive. The temp folder may be shared with processes we
cannot see (another container's ``/tmp``, another host's, another user's):
a directory is swept only when it is provably ours, made in our PID
namespace during this boot and owned by our uid (see ``_core/owners.py``).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

from .._platform.owners import boot_id, ours, pid_namespace, sweepable_here

PREFIX = "mp-chaos-"
OWNER_FILE = "owner.json"
_swept = False


def _started(pid: int) -> float | None:
    """When process ``pid`` started (psutil's clock), None when there is no such process, 0.0 when unknown."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped: as good as gone
            return None
        return process.create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:  # e.g. access denied: it exists, its start time is not ours to read
        return 0.0


def make_run_dir(prefix: str = PREFIX) -> str:
    """A fresh directory under the temp folder, marked as ours; stale ones are swept first (once per process)."""
    global _swept
    if not _swept:
        _swept = True
        sweep_stale()
    path = tempfile.mkdtemp(prefix=prefix)
    owner = {"pid": os.getpid(), "started": _started(os.getpid()), "pid_ns": pid_namespace(), "boot": boot_id()}
    temporary = os.path.join(path, f".{OWNER_FILE}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(owner, handle)
    os.replace(temporary, os.path.join(path, OWNER_FILE))
    return path


def owner_alive(path: str) -> bool | None:
    """Whether the process that made ``path`` still runs.

    None when that cannot be told from here: the directory names no owner
    (being made right now, or made by a version that did not record its
    namespace), or its owner lived in another PID namespace or boot, where
    its pid means nothing to us.
    """
    try:
        with open(os.path.join(path, OWNER_FILE), encoding="utf-8") as handle:
            owner = json.load(handle)
        pid, started = int(owner["pid"]), owner.get("started")
        namespace, boot = owner["pid_ns"], owner["boot"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    here = sweepable_here()
    if here is None or namespace != here or boot != boot_id():
        return None
    now = _started(pid)
    if now is None:
        return False
    if started and now and abs(now - float(started)) > 1.0:
        return False  # the pid now belongs to another process
    return True


def sweep_stale(folder: str | None = None) -> list[str]:
    """Remove our ``mp-chaos-*`` directories in ``folder`` (the temp folder) whose owner is dead; the removed paths.

    Directories of another uid, and those whose owner cannot be judged from
    here (see ``owner_alive``), are left alone.
    """
    folder = folder or tempfile.gettempdir()
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(PREFIX):
            continue
        path = os.path.join(folder, name)
        if os.path.islink(path) or not os.path.isdir(path) or not ours(path):
            continue
        if owner_alive(path) is False:
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.exists(path):
                removed.append(path)
    return removed
