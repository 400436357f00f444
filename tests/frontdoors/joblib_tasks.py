"""Functions the joblib tests run in workers (importable by name, as joblib's batches are pickled)."""
from __future__ import annotations

import os
import signal
import time


def square_plus(x: int, k: int = 0) -> tuple[int, int | None]:
    return x * x + k, (None if x % 3 else x)


def fail_at(x: int, bad: int) -> int:
    if x == bad:
        raise KeyError(f"item {x} is bad")
    return x


def kill_self_at(x: int, bad: int) -> int:
    """SIGKILL this worker at item ``bad``; the other items take a little while, so the call is mid-way."""
    if x == bad:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.02)
    return x


def nested_sum(n: int) -> tuple[str, int]:
    """A Parallel call inside a worker: it runs on the nested backend joblib gives it."""
    from joblib import Parallel, delayed
    from joblib.parallel import get_active_backend

    backend = type(get_active_backend()[0]).__name__
    return backend, sum(Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(n)))
