"""Where a DaskPool apply task spends its time, on a warm two-worker LocalCluster.

    python benchmarks/dask_breakdown.py [--tasks 300] [--rounds 3]

Every variant runs ``--tasks`` trivial tasks (submit all, then wait for all)
on the same warm cluster, interleaved round by round (the machine may be
busy: compare within a round; the median over rounds is printed):

- ``plain``: ``Client.submit`` + ``Client.gather`` (Dask alone);
- ``plain+callback``: ``Client.submit``, each future answered in its done
  callback by ``future.result()`` (what DaskPool does per future);
- ``wrapper``: DaskPool's task function on the workers with the ledger's
  messages taken out (what our pickling and wrapper cost);
- ``wrapper+claim``: the same with the ledger's claim;
- ``wrapper+claim+done``: the same with the claim and the done message;
- ``DaskPool``: ``DaskPool.apply_async`` as it ships.

The ledger's messages are taken out by replacing, in the worker processes
only, the function the task calls them through (``remote._ledger``), if the
version being measured still has it. Pickling is timed in this process.
"""
from __future__ import annotations

import argparse
import logging
import pickle
import statistics
import threading
import time
from typing import Any


def noop(x: int) -> int:
    return x


def _stub_ledger(mode: str, dask_worker: Any = None) -> bool:
    """Client.run target: leave out the ledger messages ``mode`` does not name ("none", "claim", "all")."""
    from mpire_fault.dask_backend import remote

    real = getattr(remote, "_real_ledger", None) or getattr(remote, "_ledger", None)
    if real is None:
        return False
    remote._real_ledger = real  # type: ignore[attr-defined]

    def ledger(worker: Any, op: str, /, **kwargs: Any) -> Any:
        if op == "mpire_fault_claim" and mode in ("claim", "all"):
            return real(worker, op, **kwargs)
        if op == "mpire_fault_done" and mode == "all":
            return real(worker, op, **kwargs)
        if op == "mpire_fault_claim":
            return {"run": True, "worker_id": 0, "attempt": 0}
        return None

    remote._ledger = ledger  # type: ignore[attr-defined]
    return True


def _timed(submit_all, n: int) -> float:
    submit_all(1)  # warm
    began = time.perf_counter()
    submit_all(n)
    return (time.perf_counter() - began) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    ns = parser.parse_args()

    import cloudpickle
    from distributed import Client, LocalCluster

    from mpire_fault.dask_backend import DaskPool
    from mpire_fault.dask_backend.remote import run_task

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster, set_as_default=False) as client:
        pool = DaskPool(address=client)
        pool.apply(noop, (0,))  # connects, registers the ledger

        def plain(n: int) -> None:
            client.gather([client.submit(noop, i, pure=False) for i in range(n)])

        def plain_callback(n: int) -> None:
            done = threading.Semaphore(0)

            def answer(future: Any) -> None:
                future.result()
                future.release()
                done.release()

            for i in range(n):
                client.submit(noop, i, pure=False).add_done_callback(answer)
            for _ in range(n):
                assert done.acquire(timeout=60)

        counter = iter(range(10**9))

        def wrapper(n: int) -> None:
            futures = []
            for i in range(n):
                key = f"{pool._pool_id}-bench-{next(counter)}"
                payload = pool._pickler.dumps((noop, [((i,), {})]))
                spec = pool._spec(f"{pool._pool_id}-bench", key, f"apply task {i} (noop)", None, None, 0,
                                  is_map=False, first_index=i)
                futures.append(client.submit(run_task, spec, payload, None, key=key, pure=False, retries=0))
            client.gather(futures)

        def daskpool(n: int) -> None:
            for result in [pool.apply_async(noop, (i,)) for i in range(n)]:
                result.get(60)

        def stubbed(mode: str):
            def run(n: int) -> None:
                client.run(_stub_ledger, mode)
                try:
                    wrapper(n)
                finally:
                    client.run(_stub_ledger, "all")
            return run

        can_stub = all(client.run(_stub_ledger, "all").values())
        variants = {"plain": plain, "plain+callback": plain_callback}
        if can_stub:
            variants |= {"wrapper": stubbed("none"), "wrapper+claim": stubbed("claim")}
        variants |= {"wrapper+claim+done": wrapper, "DaskPool": daskpool}
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(ns.rounds):
            for name, run in variants.items():
                times[name].append(_timed(run, ns.tasks))

        # pickling, in this process: the payload (ours), and the task Dask pickles around it
        spec = pool._spec("call", "key", "apply task 1 (noop)", None, None, 0, is_map=False, first_index=1)
        reps = 2000
        began = time.perf_counter()
        for i in range(reps):
            payload = cloudpickle.dumps((noop, [((i,), {})]), protocol=pickle.HIGHEST_PROTOCOL)
        dumps = (time.perf_counter() - began) / reps
        began = time.perf_counter()
        for _ in range(reps):
            pickle.loads(payload)
        loads = (time.perf_counter() - began) / reps
        began = time.perf_counter()
        for _ in range(reps):
            task = pickle.dumps((run_task, spec, payload), protocol=pickle.HIGHEST_PROTOCOL)
        spec_dumps = (time.perf_counter() - began) / reps
        pool.terminate()

    import os

    base = statistics.median(times["plain"])
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {ns.tasks} tasks x {ns.rounds} rounds")
    print("| variant | us/task (median) | rounds | / plain |")
    print("| --- | --- | --- | --- |")
    for name, values in times.items():
        median = statistics.median(values)
        cells = ", ".join(f"{v * 1e6:,.0f}" for v in values)
        print(f"| {name} | {median * 1e6:,.0f} | {cells} | {median / base:.2f}x |")
    print(f"payload cloudpickle.dumps {dumps * 1e6:.1f} us ({len(payload)} B), pickle.loads {loads * 1e6:.1f} us; "
          f"pickle of (run_task, spec, payload) {spec_dumps * 1e6:.1f} us ({len(task)} B)")


if __name__ == "__main__":
    main()
