"""Task functions for test_shared_memory.py (importable by spawn workers)."""
from __future__ import annotations

import os
import signal
import time

import numpy as np

MIB4 = 4 << 20


def big(value: float = 1.0) -> np.ndarray:
    return np.full(MIB4 // 8, float(value))


def total(a) -> float:
    return float(np.asarray(a).sum())


def make(i: int) -> np.ndarray:
    return big(i)


def echo(x):
    return x


def kind_and_size(x) -> tuple:
    return type(x).__name__, len(x), bytes(x[:3]), bytes(x[-3:])


def hold(a, path: str, seconds: float = 30.0) -> float:
    """Say who we are, then keep the argument (mapped) for a while."""
    with open(path + ".tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(seconds)
    return total(a)


def sum_or_die(a, die_on: float) -> float:
    """Die by SIGKILL while holding the array whose first value is ``die_on``."""
    if a[0] == die_on:
        os.kill(os.getpid(), signal.SIGKILL)
    return total(a)


def mutate_then_die_once(a, directory: str) -> float:
    """Return the argument's first value; scribble over it in place and die the first time."""
    before = float(a[0])
    a[:] = -1.0
    marker = os.path.join(directory, "died-once")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return before


def first_value(a) -> float:
    return float(a[0])


class arm_dying_export:  # noqa: N801 - a worker_init hook, called like a function
    """Make the worker write its next result segment, note the segment's name, and die before announcing it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> None:
        from mpire_fault._engine.wire import shm

        original, path = shm.Segments.export, self.path

        def export(segments, data, buffers, has_ids):
            shared = original(segments, data, buffers, has_ids)
            with open(path, "w") as handle:
                handle.write(shared.name)
            os.kill(os.getpid(), signal.SIGKILL)

        shm.Segments.export = export


class ArrayError(Exception):
    def __init__(self, array) -> None:
        super().__init__("carries an array")
        self.array = array


def raise_with_array(n: int):
    raise ArrayError(big(n))
