"""Task functions for the Dask suite (importable by the worker processes)."""
from __future__ import annotations

import os
import signal
import sys
import time
import uuid


def mark(markers: str, name: str) -> None:
    """Leave one file per execution, so a test can count how often a task ran."""
    with open(os.path.join(markers, f"{name}.{uuid.uuid4().hex}"), "w") as fh:
        fh.write(str(os.getpid()))


def runs(markers: str, name: str) -> int:
    return sum(1 for entry in os.listdir(markers) if entry.split(".")[0] == name)


def behave(markers: str, index: int, how: str = "ok", delay: float = 0.2) -> int:
    mark(markers, f"task{index}")
    time.sleep(delay)
    if how == "exit":
        sys.exit(1)
    if how == "raise":
        raise ValueError(f"task {index} raised")
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    return index * index


def square(x: int) -> int:
    return x * x


def map_item(markers: str, index: int, kill_at: int = -1, raise_at: int = -1) -> int:
    mark(markers, f"item{index}")
    if index == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    if index == raise_at:
        raise ValueError(f"item {index} raised")
    time.sleep(0.3)
    return index


def spin_forever(markers: str) -> None:
    """Loops in Python, so a timeout raised inside it is seen; its finally leaves a marker."""
    try:
        while True:
            time.sleep(0.02)
    finally:
        mark(markers, "finally")


def block(seconds: float) -> None:
    """Blocks in C, where a timeout raised inside the task cannot land: the worker must be killed."""
    time.sleep(seconds)


def pid() -> int:
    return os.getpid()


def with_worker_id(worker_id: int, x: int) -> tuple[int, int]:
    return worker_id, x


def die_with_id(worker_id: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def init_state(worker_state: dict) -> None:
    worker_state["pid"] = os.getpid()
    worker_state["count"] = 0


def count_in_state(worker_state: dict, x: int) -> int:
    worker_state["count"] += 1
    return worker_state["pid"]


def exit_state(worker_state: dict) -> tuple[int, int]:
    return worker_state["pid"], worker_state["count"]


def failing_init() -> None:
    raise KeyError("no config")


def use_shared(shared: dict, key: str) -> int:
    return len(shared[key])


def shared_id(shared: dict, key: str) -> int:
    return id(shared)


def block_and_square(seconds: float, x: int) -> int:
    time.sleep(seconds)
    return x * x


def shape_of(block):
    """A map task over a numpy array: the shape of the slice it was given."""
    return tuple(block.shape)


def dask_setting(key: str):
    import dask

    return dask.config.get(key)


def spin_or_raise(markers: str, index: int) -> None:
    """Item 1 raises after 0.1 s; any other spins (interruptibly) until stopped."""
    if index == 1:
        time.sleep(0.1)
        raise ValueError("item 1 raised")
    spin_forever(markers)
