"""Time from a worker's death to its task's error, and to a replacement being ready.

    python benchmarks/death_latency.py [--deaths 30] [--start-method fork]

The task writes ``time.monotonic()`` (a clock shared by every process on
Linux) to a file and SIGKILLs itself; the parent takes the time when
``get()`` raises. Restart time is from that death until the replaced slot
reports a new ready pid.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time

from mpire_fault import WorkerDiedError, WorkerPool
from mpire_fault._core.start_methods import PROCESS_START_METHODS


def die_after_stamp(path: str) -> None:
    with open(path, "w") as handle:
        handle.write(repr(time.monotonic()))
    os.kill(os.getpid(), signal.SIGKILL)


def measure(deaths: int, start_method: str) -> dict[str, float]:
    to_error, to_ready = [], []
    with tempfile.TemporaryDirectory() as directory, WorkerPool(2, start_method=start_method) as pool:
        pool.apply(abs, (1,))  # workers up
        for n in range(deaths):
            stamp = os.path.join(directory, f"{n}.stamp")
            before = dict(pool.statistics()["worker_pids"])
            try:
                pool.apply_async(die_after_stamp, (stamp,)).get(timeout=30)
            except WorkerDiedError:
                raised = time.monotonic()
            else:
                raise AssertionError("the task did not die")
            with open(stamp) as handle:
                died = float(handle.read())
            to_error.append(raised - died)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                pids = pool.statistics()["worker_pids"]
                if len(pids) == 2 and set(pids.values()) - set(before.values()):
                    to_ready.append(time.monotonic() - died)
                    break
                time.sleep(0.0005)
    return {
        "death_to_error_median_ms": statistics.median(to_error) * 1000,
        "death_to_error_p95_ms": sorted(to_error)[int(0.95 * (len(to_error) - 1))] * 1000,
        "restart_median_ms": statistics.median(to_ready) * 1000,
        "restart_p95_ms": sorted(to_ready)[int(0.95 * (len(to_ready) - 1))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deaths", type=int, default=30)
    parser.add_argument("--start-method", default="fork", choices=PROCESS_START_METHODS)
    args = parser.parse_args()
    for name, value in measure(args.deaths, args.start_method).items():
        print(f"{name:28} {value:8.2f}")


if __name__ == "__main__":
    main()
