"""What a worker process does before anything else: make sure it dies with its parent.

Linux is asked to SIGKILL the worker when its parent dies (even by SIGKILL),
and a forkserver worker lets go of the server's "alive" pipe so that the
server, and with it the worker, cannot outlive the main process.
"""
from __future__ import annotations

import ctypes
import functools
import multiprocessing
import multiprocessing.forkserver
import os
import signal
from typing import Any

PR_SET_PDEATHSIG = 1


@functools.cache
def _libc() -> Any:
    # Loaded once in the parent (WorkerPool does it) so that forked workers
    # inherit it instead of each paying for the lookup while they start.
    return ctypes.CDLL(None, use_errno=True)


def preload() -> None:
    """Do in the parent, once, what every forked worker would otherwise do while it starts."""
    try:
        _libc()
    except OSError:
        pass


def die_with_parent() -> None:
    """Ask Linux to SIGKILL us when the parent dies (even by SIGKILL).

    The parent's pipe closing is the second line of defence: an idle worker
    sees EOF on its task pipe and leaves.
    """
    try:
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: rely on the pipe
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
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
