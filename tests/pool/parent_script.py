"""Run by test_shutdown.py in a subprocess: a pool with busy and idle workers whose parent gets SIGKILLed.

Prints one JSON line with the worker pids once every worker is up, then
waits to be killed.
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mpire_fault import WorkerPool  # noqa: E402
from pool import hook_tasks, observe, tasks  # noqa: E402

if __name__ == "__main__":
    # argv: start method, then "busy" (one of three workers in a long task,
    # two idle) or "init" (all three still inside a slow worker_init).
    start_method, state = sys.argv[1], sys.argv[2]
    pool = WorkerPool(3, start_method=start_method)
    deadline = time.monotonic() + 30
    if state == "busy":
        busy = pool.apply_async(tasks.sleep_then, (60,))
        while pool.statistics()["live_workers"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # let the busy task begin
        pids = sorted(pool.statistics()["worker_pids"].values())
    else:
        busy = pool.apply_async(tasks.square, (2,), worker_init=hook_tasks.init_marker(sys.argv[3], "hang"))
        while observe.init_calls(sys.argv[3]) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = sorted(int(name.split(".")[1]) for name in os.listdir(sys.argv[3]) if name.endswith(".init"))
    print(json.dumps(pids), flush=True)
    time.sleep(60)
