"""Run by test_shared_memory.py in a subprocess: a pool holding big arguments whose parent gets SIGKILLed.

Prints one JSON line (the pool's segment prefix and the worker pids) once
both workers hold a big argument and more wait in the queue, then waits to
be killed.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mpire_fault import WorkerPool  # noqa: E402
from pool import shm_tasks  # noqa: E402

if __name__ == "__main__":
    pool = WorkerPool(2, start_method=sys.argv[1])
    directory = tempfile.mkdtemp()
    paths = [os.path.join(directory, f"pid{i}") for i in range(4)]
    handles = [pool.apply_async(shm_tasks.hold, (shm_tasks.big(i), path, 60.0)) for i, path in enumerate(paths)]
    deadline = time.monotonic() + 30
    while sum(os.path.exists(path) for path in paths) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    pids = sorted(pool.statistics()["worker_pids"].values())
    print(json.dumps({"prefix": pool._shm_prefix, "pids": pids}), flush=True)
    time.sleep(60)
