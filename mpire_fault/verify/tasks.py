"""The task the state machines submit: it leaves a marker file when it starts and one when it ends.

A marker's name is ``INDEX.PID.NANOSECONDS`` (``.end`` added for the end
marker), with ``time.monotonic_ns()``, a clock every process on the machine
shares on Linux; so the machine can tell which task started, how often,
and whether it started or finished after the call it belonged to had
already answered.
"""
from __future__ import annotations

import os
import signal
import sys
import time

from ..testing.markers import started

DEATHS = ("exit", "sigkill", "exit0")


def _mark(marker_dir: str, index: int, suffix: str = "") -> None:
    with open(os.path.join(marker_dir, f"{index}.{os.getpid()}.{time.monotonic_ns()}{suffix}"), "w"):
        pass


def work(kind: str, marker_dir: str, index: int, nap: float = 0.0) -> int:
    _mark(marker_dir, index)
    if nap:
        time.sleep(nap)
    if kind == "raise":
        _mark(marker_dir, index, ".end")
        raise ValueError(f"task {index} raised on purpose")
    if kind == "custom":
        _mark(marker_dir, index, ".end")
        raise TaskFailed(index, f"task {index} failed on purpose")
    if kind == "exit":
        sys.exit(3)
    if kind == "exit0":
        os._exit(0)  # no cleanup, exit code 0: still a death in the middle of a task
    if kind == "sigkill" or (kind.startswith("dies") and started(marker_dir)[index] <= int(kind[4:])):
        os.kill(os.getpid(), signal.SIGKILL)  # "diesN": the first N runs of the task are killed, then it works
        time.sleep(5)
    _mark(marker_dir, index, ".end")
    return index * 2


def _markers(marker_dir: str, ends: bool) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for name in os.listdir(marker_dir):
        if name.endswith(".end") != ends:
            continue
        index, _pid, ns = name.split(".")[:3]
        found.setdefault(int(index), []).append(int(ns))
    return found


def starts(marker_dir: str) -> dict[int, list[int]]:
    """When each task index started (``time.monotonic_ns()``), once per execution."""
    return _markers(marker_dir, ends=False)


def ends(marker_dir: str) -> dict[int, list[int]]:
    """When each task index finished its work (returned or raised)."""
    return _markers(marker_dir, ends=True)


def pids(marker_dir: str) -> dict[int, list[int]]:
    """The pid of the process each start of each task index ran in."""
    found: dict[int, list[int]] = {}
    for name in os.listdir(marker_dir):
        if not name.endswith(".end"):
            index, pid = name.split(".")[:2]
            found.setdefault(int(index), []).append(int(pid))
    return found


def executions(marker_dir: str) -> dict[int, int]:
    """How many times each task index started."""
    return dict(started(marker_dir))


# ---------------------------------------------------------------------- tasks of the later guarantees (G14 on)
class TaskFailed(Exception):
    """A task's own exception, of a class no pool knows: it must reach the caller as this class."""

    def __init__(self, index: int, detail: str) -> None:
        super().__init__(index, detail)
        self.index = index


def twice(value: int) -> int:
    """One int in, one out: the task of maps over ranges and generators of ints."""
    return value * 2


def twice_keywords(value: int, unused: int = 0) -> int:
    """The task of maps whose items are dicts (MPIRE passes a dict item as keyword arguments)."""
    return value * 2 + unused


def column_twice(block) -> list[int]:
    """The task of maps over a numpy array: MPIRE passes each chunk of rows whole, as one array."""
    return [int(row[0]) * 2 for row in block]


def stuck(marker_dir: str, index: int, seconds: float) -> int:
    """Overruns its timeout and swallows the interrupt: only the hard timeout (the kill) can stop it."""
    _mark(marker_dir, index)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(max(0.0, deadline - time.monotonic()))
        except BaseException:  # noqa: BLE001, S110 - on purpose: a task that will not stop when interrupted
            pass
    _mark(marker_dir, index, ".end")
    return index * 2


def work_big(kind: str, marker_dir: str, index: int, nap: float, blob):
    """``work`` with a big argument (bytes or a numpy array of 1 MiB or more); kind ``echo`` returns it (a big
    result), any other leaves it alone."""
    if kind == "echo":
        work("ok", marker_dir, index, nap)
        return blob
    return work(kind, marker_dir, index, nap)


class InitFailed(Exception):
    """What the kit's failing ``worker_init`` raises: the caller's error must also be of this class."""


def failing_init(*_args) -> None:
    raise InitFailed("worker_init fails on purpose, every time")

