"""Task functions of the backend conformance test (importable by local and Dask workers)."""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid

FORKED = 0  # set to 1 in the parent before a pool starts: a forked worker sees it, a spawned one does not


def identity(x):
    return x


def arguments(*args, **kwargs):
    """What the pool passed, preamble included."""
    return args, kwargs


def forked(_=None) -> int:
    return FORKED


def daemonic(_=None) -> bool:
    return multiprocessing.current_process().daemon


def affinity(_=None) -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pid(_=None) -> int:
    time.sleep(0.02)  # so every worker takes items
    return os.getpid()


def dies_first_time(markers: str) -> str:
    """SIGKILLs its own worker on its first run, returns on the next."""
    runs = len(os.listdir(markers))
    with open(os.path.join(markers, uuid.uuid4().hex), "w"):
        pass
    if runs == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return "second run"


def failing_init() -> None:
    raise RuntimeError("worker_init fails on purpose")


def counted_init(markers: str) -> None:
    with open(os.path.join(markers, uuid.uuid4().hex), "w"):
        pass
    raise RuntimeError("worker_init fails on purpose")


def grow(megabytes: int) -> int:
    block = bytearray(megabytes << 20)
    for at in range(0, len(block), 4096):
        block[at] = 1
    time.sleep(5)
    return len(block)


def ignore_interrupts(seconds: float) -> str:
    """Swallows the soft timeout (as code with a broad except would); only the hard kill ends it."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            time.sleep(0.01)
        except BaseException:  # noqa: BLE001 - on purpose: a task that ignores the interrupt
            pass
    return "finished"


def mark_init(markers: str) -> None:
    """A worker_init that leaves one file per run."""
    with open(os.path.join(markers, uuid.uuid4().hex), "w"):
        pass
