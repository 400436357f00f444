"""The task the state machines submit: it leaves a marker file per execution, then behaves as told."""
from __future__ import annotations

import os
import signal
import sys
import time

KINDS = ("ok", "raise", "exit", "sigkill")


def work(kind: str, marker_dir: str, index: int, nap: float = 0.0) -> int:
    with open(os.path.join(marker_dir, f"{index}.{os.getpid()}.{time.monotonic_ns()}"), "w"):
        pass
    if nap:
        time.sleep(nap)
    if kind == "raise":
        raise ValueError(f"task {index} raised on purpose")
    if kind == "exit":
        sys.exit(3)
    if kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(5)
    return index * 2


def executions(marker_dir: str) -> dict[int, int]:
    """How many times each task index started."""
    counts: dict[int, int] = {}
    for name in os.listdir(marker_dir):
        index = int(name.split(".")[0])
        counts[index] = counts.get(index, 0) + 1
    return counts
