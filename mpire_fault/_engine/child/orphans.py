"""What a worker process does before anything else: make sure it dies with its parent.

Linux is asked to SIGKILL the worker when its parent dies (even by SIGKILL),
and a forkserver worker lets go of the server's "alive" pipe so that the
server, and with it the worker, cannot outlive the main process.

"Parent" is the process that forked the worker: the pool's own process
under fork and spawn, the forkserver under forkserver. Whether it already
died is told by comparing ``getppid()`` with that pid, never with 1: the
pool's process may itself be PID 1 (a container started without an init),
and an orphan may be adopted by a subreaper rather than by PID 1.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import signal

from ..._platform.deathsig import libc, signal_on_parent_death


def preload() -> None:
    """Do in the parent, once, what every forked worker would otherwise do while it starts: load the C library."""
    try:
        libc()
    except OSError:
        pass


def die_with_parent(parent_pid: int | None) -> None:
    """Ask Linux to SIGKILL us when the parent dies (even by SIGKILL).

    ``parent_pid`` is the pid of the process that forked us, as the pool
    knew it (fork, spawn); None under forkserver, whose server the pool
    does not name: then it is read here, before prctl. That is sound
    because the server cannot exit on its own while we hold our copy of its
    "alive" pipe (see release_forkserver, which must come after this).

    The parent's pipe closing is the second line of defence: an idle worker
    sees EOF on its task pipe and leaves.
    """
    if parent_pid is None:
        parent_pid = os.getppid()
    if not signal_on_parent_death(signal.SIGKILL):  # not Linux: rely on the pipe
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect: we were reparented
        os._exit(1)


def release_forkserver() -> None:
    """Drop our copy of the forkserver's "alive" pipe.

    Every process the forkserver starts inherits that pipe, and the server
    exits only when every copy is closed. A busy forkserver worker would so
    keep its own parent, the server, alive after the main process died, and
    PR_SET_PDEATHSIG (which watches the server) would never fire. A pool
    created inside the worker starts a forkserver of its own.
    """
    forkserver = multiprocessing.forkserver
    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if server is None or fd is None:
        return
    server._forkserver_alive_fd = None
    try:
        os.close(fd)
    except OSError:
        pass
