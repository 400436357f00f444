"""Process bookkeeping shared by the Dask suite's conftest and its CLI-cluster module.

The filter of child processes itself is the suite-wide one (``tests/_children.py``).

A module of its own (not conftest): ``conftest`` is an ambiguous module name
when the whole ``tests`` tree runs, and both users must see the same sets.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

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


HERE = os.path.dirname(os.path.abspath(__file__))


def _dask_command() -> list[str]:
    # this interpreter: its mpire_fault is the one under test (a ``dask`` script on PATH may import another)
    return [sys.executable, "-m", "dask"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(args: list[str], log, env: dict) -> subprocess.Popen:
    # A session of its own: the teardown can end the command and everything it spawned at once.
    proc = subprocess.Popen(_dask_command() + args, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    OWNED_GROUPS.add(proc.pid)
    return proc


def start_cli_cluster(log, n_workers: int) -> tuple[str, list[subprocess.Popen]]:
    """``dask scheduler`` and ``n_workers`` ``dask worker`` (each with its nanny) on 127.0.0.1, ready to use.

    Returns the scheduler's address and the processes, scheduler first, for ``stop_cli_cluster``.
    """
    import distributed

    address = f"tcp://127.0.0.1:{_free_port()}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]),
               DASK_LOGGING__DISTRIBUTED="error")
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                     "--dashboard-address", "127.0.0.1:0"], log, env)]
    try:
        for index in range(n_workers):
            procs.append(_start(["worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
                                 "--name", f"w{index}", "--dashboard-address", "127.0.0.1:0"], log, env))
        with distributed.Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(n_workers, timeout=30)
    except BaseException:
        stop_cli_cluster(procs)
        raise
    return address, procs


def stop_cli_cluster(procs: list[subprocess.Popen], graceful: bool = True) -> None:
    """End the commands and everything they started (at once unless ``graceful``); a stopped scheduler is
    continued first."""
    try:
        os.killpg(procs[0].pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    if not graceful:
        procs = procs[::-1]  # the workers' sessions first, so no nanny restarts a worker meanwhile
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    # Workers first, and only then the scheduler: a worker that loses its
    # scheduler while it closes waits out an 8 s timeout before it is killed.
    workers, scheduler = procs[1:], procs[:1]
    for group in (workers, scheduler):
        for proc in group:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in group:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the command left in its session
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait(5)
        OWNED_GROUPS.discard(proc.pid)
