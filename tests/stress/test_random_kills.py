"""Exactly-once under fire: SIGKILL random busy workers while a batch of apply tasks runs.

Every kill of a busy worker must fail exactly the one task it was running;
every other task must succeed, each having run exactly once (marker files).
"""
from __future__ import annotations

import collections
import os
import random
import signal
import time

import pytest

from mpire_fault import WorkerDiedError, WorkerPool
from mpire_fault.testing.markers import started


def mark_and_nap(directory: str, i: int) -> int:
    with open(os.path.join(directory, f"{i}.{os.getpid()}.{time.monotonic_ns()}"), "w"):
        pass
    time.sleep(0.002)
    return i


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_random_kills_keep_exactly_once(tmp_path, start_method):
    rng = random.Random(1234)
    n_tasks = 600
    with WorkerPool(2, start_method=start_method) as pool:
        results = [pool.apply_async(mark_and_nap, (str(tmp_path), i)) for i in range(n_tasks)]
        kills = 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and not all(r.ready() for r in results):
            pids = list(pool.statistics()["worker_pids"].values())
            if pids:
                try:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
            time.sleep(0.03)
        outcomes = collections.Counter()
        for i, result in enumerate(results):
            try:
                assert result.get(timeout=30) == i
                outcomes["ok"] += 1
            except WorkerDiedError as exc:
                assert exc.exitcode == -9 and exc.signal_name == "SIGKILL"
                assert exc.task and f"#{i} " in exc.task
                outcomes["died"] += 1
        runs = started(tmp_path)
        assert outcomes["ok"] + outcomes["died"] == n_tasks
        assert outcomes["died"] <= kills
        assert all(runs[i] <= 1 for i in range(n_tasks)), "a task ran twice"
        assert all(runs[i] == 1 for i, r in enumerate(results) if r.successful()), "a success left no trace"
        assert sum(death["task"] is not None for death in pool.statistics()["deaths"]) == outcomes["died"]
        assert pool.map(abs, range(-2, 2)) == [2, 1, 0, 1]
