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
    if kind == "exit":
        sys.exit(3)
    if kind == "exit0":
        os._exit(0)  # no cleanup, exit code 0: still a death in the middle of a task
    if kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
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


def executions(marker_dir: str) -> dict[int, int]:
    """How many times each task index started."""
    return dict(started(marker_dir))
