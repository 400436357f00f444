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

from pool import tasks  # noqa: E402

if __name__ == "__main__":
    start_method, n_busy = sys.argv[1], int(sys.argv[2])
    pool = WorkerPool(3, start_method=start_method)
    busy = [pool.apply_async(tasks.sleep_then, (60,)) for _ in range(n_busy)]
    deadline = time.monotonic() + 30
    while pool.statistics()["live_workers"] < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # let the busy tasks begin
    print(json.dumps(sorted(pool.statistics()["worker_pids"].values())), flush=True)
    time.sleep(60)
