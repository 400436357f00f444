"""Run by test_deployment.py as PID 1 of a new PID namespace: a pool per start method must work.

Like ``docker run image python app.py`` without ``--init``. Prints one line
per start method with the pool's results, and its own pid first.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mpire_fault import WorkerPool  # noqa: E402
from pool import tasks  # noqa: E402

if __name__ == "__main__":
    print(f"pid {os.getpid()}", flush=True)
    for start_method in sys.argv[1:]:
        with WorkerPool(2, start_method=start_method) as pool:
            print(start_method, pool.map(tasks.square, range(6), chunk_size=1), flush=True)
