"""DaskPool against plain Dask on the same warm LocalCluster: apply per task, and map over small and large inputs.

    python benchmarks/dask_overhead.py [--workers 2] [--tasks 300] [--map-sizes 100 100000] [--rounds 5]
                                       [--large-rounds 2]

Each round runs every variant once, in turn (interleaved, so a busy machine
slows them alike); the medians over rounds are printed with every round's
figure, and the load average. Start-up is excluded: the cluster and the pool
are warm (each variant runs once before the rounds). A map of more than
``LARGE`` items runs only in the first ``--large-rounds`` rounds and is not
warmed up (the cluster is warm by then): a plain ``Client.map`` of 100 000
items takes minutes, as the scheduler handles each item as a task of its own.

- apply: ``--tasks`` trivial tasks submitted, then all waited for: plain
  ``Client.submit`` + ``Client.gather`` against ``DaskPool.apply_async`` +
  ``AsyncResult.get``; the figure is wall time per task.
- map: ``Client.map`` + ``Client.gather`` over the items, one task per item
  (as Dask does it), against ``DaskPool.map`` with its default chunking; the
  figure is wall time for the whole map.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from collections.abc import Callable


def noop(x: int) -> int:
    return x


def _time(run: Callable[[], object]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


LARGE = 20_000  # items: a bigger map is not warmed up, and runs only in the first --large-rounds rounds


def measure(workers: int, n_tasks: int, map_sizes: list[int], rounds: int,
            large_rounds: int) -> dict[str, list[float]]:
    from distributed import Client, LocalCluster

    from mpire_fault.dask_backend import DaskPool

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster, set_as_default=False) as client:
        pool = DaskPool(address=client)
        variants: dict[str, Callable[[], object]] = {
            "apply: Client.submit": lambda: client.gather([client.submit(noop, i, pure=False)
                                                           for i in range(n_tasks)]),
            "apply: DaskPool": lambda: [r.get(120) for r in [pool.apply_async(noop, (i,)) for i in range(n_tasks)]],
        }
        for size in map_sizes:
            variants[f"map {size}: Client.map"] = lambda size=size: client.gather(
                client.map(noop, range(size), pure=False))
            variants[f"map {size}: DaskPool"] = lambda size=size: pool.map(noop, range(size))
        large = {name for name in variants if name.startswith("map ") and int(name.split()[1][:-1]) > LARGE}
        for name, run in variants.items():
            if name not in large:
                run()  # warm
        times: dict[str, list[float]] = {name: [] for name in variants}
        for round_number in range(rounds):
            for name, run in variants.items():
                if name in large and round_number >= large_rounds:
                    continue
                elapsed = _time(run)
                print(f"round {round_number + 1}: {name}: {elapsed:.3f} s", flush=True)
                times[name].append(elapsed / n_tasks if name.startswith("apply") else elapsed)
        pool.terminate()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--map-sizes", type=int, nargs="+", default=[100, 100_000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--large-rounds", type=int, default=2, help=f"rounds of the maps over {LARGE:,} items")
    parser.add_argument("--json", metavar="PATH")
    ns = parser.parse_args()
    load_before = os.getloadavg()
    if ns.rounds < 1 or ns.large_rounds < 1:
        parser.error("--rounds and --large-rounds must be at least 1")
    times = measure(ns.workers, ns.tasks, ns.map_sizes, ns.rounds, ns.large_rounds)
    load_after = os.getloadavg()
    print(f"{ns.workers} workers, {ns.rounds} rounds; load average before {load_before[0]:.2f}, "
          f"after {load_after[0]:.2f} (1 min), on {os.cpu_count()} cores")
    print("| what | plain Dask (median) | DaskPool (median) | DaskPool / plain: medians, and median of each "
          "round's | rounds: plain | rounds: DaskPool |")
    print("| --- | --- | --- | --- | --- | --- |")
    pairs = [("apply (us/task)", "apply: Client.submit", "apply: DaskPool", 1e6)]
    pairs += [(f"map of {size} items (ms)", f"map {size}: Client.map", f"map {size}: DaskPool", 1e3)
              for size in ns.map_sizes]
    for label, plain, ours, scale in pairs:
        a, b = statistics.median(times[plain]), statistics.median(times[ours])
        # the two ran back to back in each round: their ratio there is the least disturbed by the machine's load
        paired = statistics.median(y / x for x, y in zip(times[plain], times[ours], strict=True))
        cells = [", ".join(f"{v * scale:,.0f}" for v in times[name]) for name in (plain, ours)]
        print(f"| {label} | {a * scale:,.0f} | {b * scale:,.0f} | {b / a:.2f}x, {paired:.2f}x | {cells[0]} | "
              f"{cells[1]} |")
    if ns.json:
        with open(ns.json, "w", encoding="utf-8") as handle:
            json.dump({"load": [load_before, load_after], "times": times}, handle, indent=2)


if __name__ == "__main__":
    main()
