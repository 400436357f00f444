"""Per-task overhead of DaskPool, against the local WorkerPool and plain ``distributed.Client.submit``.

    python benchmarks/dask_overhead.py [--tasks 300] [--workers 1 2 4]

Each backend runs ``--tasks`` trivial apply tasks (submit all, then wait for
all) on 1, 2 and 4 workers; the figure is wall time per task, start-up
excluded (the pool and cluster are warm: one task runs before the clock
starts). DaskPool and plain Client.submit share one LocalCluster per worker
count, so the difference between them is what DaskPool adds: the ledger
claim and done messages on the scheduler, our pickling, and the outcome
translation.
"""
from __future__ import annotations

import argparse
import json
import logging
import time


def noop(x: int) -> int:
    return x


def _timed(submit, wait, n: int) -> float:
    wait([submit(0)])  # warm
    began = time.perf_counter()
    wait([submit(i) for i in range(n)])
    return (time.perf_counter() - began) / n


def measure(n_tasks: int, workers: int) -> dict[str, float]:
    from distributed import Client, LocalCluster

    from mpire_fault import WorkerPool
    from mpire_fault.dask_backend import DaskPool

    row: dict[str, float] = {}
    with WorkerPool(workers, keep_alive=True) as pool:
        row["local WorkerPool"] = _timed(lambda i: pool.apply_async(noop, (i,)),
                                         lambda rs: [r.get(60) for r in rs], n_tasks)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster, set_as_default=False) as client:
        row["Client.submit"] = _timed(lambda i: client.submit(noop, i, pure=False),
                                      lambda fs: client.gather(fs), n_tasks)
        dask_pool = DaskPool(address=client)
        row["DaskPool"] = _timed(lambda i: dask_pool.apply_async(noop, (i,)),
                                 lambda rs: [r.get(60) for r in rs], n_tasks)
        dask_pool.terminate()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--json", metavar="PATH")
    ns = parser.parse_args()
    table = {workers: measure(ns.tasks, workers) for workers in ns.workers}
    names = ["local WorkerPool", "Client.submit", "DaskPool"]
    print("| workers | " + " | ".join(f"{name} (us/task)" for name in names) + " | DaskPool / Client.submit |")
    print("| --- |" + " --- |" * (len(names) + 1))
    for workers, row in table.items():
        cells = " | ".join(f"{row[name] * 1e6:,.0f}" for name in names)
        print(f"| {workers} | {cells} | {row['DaskPool'] / row['Client.submit']:.1f}x |")
    if ns.json:
        with open(ns.json, "w", encoding="utf-8") as handle:
            json.dump({str(k): v for k, v in table.items()}, handle, indent=2)


if __name__ == "__main__":
    main()
