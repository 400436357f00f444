"""How start-up and per-event costs grow with n_jobs, against multiprocessing.Pool, and what chaos costs when off.

    python benchmarks/scaling.py [--jobs 8,32,64,128] [--repeat 3] [--out PATH]

Three measurements, each the best of --repeat runs in this process:

* start: create a pool of n_jobs workers, map 10 000 trivial items, close it;
* events: 2 000 apply_async round trips on an already started pool of n_jobs
  workers (the supervisor's cost per message as the number of workers grows);
* chaos-off: the 100 000-item trivial map and 10 000 apply round trips with
  the chaos hooks as shipped, and with ``_Worker.visit`` replaced by a no-op
  (the benchmark-only "hooks removed" build); fork workers inherit the patch.

Ratios are multiprocessing's time divided by ours: 1.0 or more means we are
at least as fast.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from mpire_fault import WorkerPool


def inc(x: int) -> int:
    return x + 1


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def start_ours(n: int) -> None:
    with WorkerPool(n) as pool:
        pool.map(inc, range(10_000))


def start_theirs(n: int) -> None:
    with multiprocessing.get_context("fork").Pool(n) as pool:
        pool.map(inc, range(10_000))


def round_trips(pool: Any, n: int = 2000) -> None:
    handles = [pool.apply_async(inc, (i,)) for i in range(n)]
    for handle in handles:
        handle.get(60)


def events(n_jobs: int, repeat: int) -> tuple[float, float]:
    with WorkerPool(n_jobs, keep_alive=True) as pool:
        pool.map(inc, range(n_jobs * 4), chunk_size=1)
        ours = best(lambda: round_trips(pool), repeat)
    with multiprocessing.get_context("fork").Pool(n_jobs) as pool:
        pool.map(inc, range(n_jobs * 4), chunksize=1)
        theirs = best(lambda: round_trips(pool), repeat)
    return ours, theirs


def chaos_off(repeat: int) -> dict[str, float]:
    from mpire_fault._engine.child import worker

    def measure() -> tuple[float, float]:
        with WorkerPool(2, keep_alive=True) as pool:
            pool.map(inc, range(1000))
            mapped = best(lambda: pool.map(inc, range(100_000)), repeat)
            applied = best(lambda: round_trips(pool, 10_000), repeat)
        return mapped, applied

    shipped = measure()
    original = worker._Worker.visit
    worker._Worker.visit = lambda self, *args, **kwargs: None  # the hooks removed
    try:
        removed = measure()
    finally:
        worker._Worker.visit = original
    return {"map_shipped": shipped[0], "map_removed": removed[0],
            "apply_shipped": shipped[1], "apply_removed": removed[1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="8,32,64,128")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the figures as JSON")
    args = parser.parse_args()
    rows = []
    for n in (int(j) for j in args.jobs.split(",")):
        ours, theirs = best(lambda n=n: start_ours(n), args.repeat), best(lambda n=n: start_theirs(n), args.repeat)
        ev_ours, ev_theirs = events(n, args.repeat)
        rows.append({"n_jobs": n, "start_ours": ours, "start_mp": theirs, "events_ours": ev_ours,
                     "events_mp": ev_theirs})
        print(f"n_jobs={n:4d}  start+map(10k): ours {ours*1000:7.1f} ms  mp {theirs*1000:7.1f} ms  "
              f"ratio {theirs/ours:4.2f}   2000 round trips: ours {ev_ours*1000:7.1f} ms  mp {ev_theirs*1000:7.1f} ms  "
              f"ratio {ev_theirs/ev_ours:4.2f}", flush=True)
    off = chaos_off(args.repeat)
    print(f"chaos off, hooks as shipped vs removed: 100k map {off['map_shipped']*1000:.1f} vs "
          f"{off['map_removed']*1000:.1f} ms ({(off['map_shipped']/off['map_removed']-1)*100:+.1f} %), "
          f"10k apply {off['apply_shipped']*1000:.1f} vs {off['apply_removed']*1000:.1f} ms "
          f"({(off['apply_shipped']/off['apply_removed']-1)*100:+.1f} %)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"scaling": rows, "chaos_off": off, "load": os.getloadavg()[0]}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
