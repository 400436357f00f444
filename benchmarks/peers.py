"""One benchmark on one pool, in this process; prints one JSON line. Run by run.py.

    python benchmarks/peers.py BENCH POOL [--quick]
"""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from mpire_fault.testing.children import live_children
from mpire_fault.verify.adapters import ADAPTERS, missing

PEERS = ("mpire_fault", "mpire", "multiprocessing", "concurrent.futures", "loky")
BENCHMARKS = {
    "a": ("map of 100 000 trivial tasks", "s"),
    "b": ("map of 2 000 tasks of ~1 ms CPU", "s"),
    "c": ("10 000 apply_async round trips", "s"),
    "d": ("death of a worker to its task's error (median)", "ms"),
    "e": ("death of an idle worker to a new worker", "ms"),
    "f": ("imap over 10 000 000 lazy items: peak RSS growth", "MiB"),
    "g": ("map over 128 numpy arrays of 4 MiB (arguments)", "MiB/s"),
    "h": ("map returning 128 numpy arrays of 4 MiB (results)", "MiB/s"),
    "i": ("map of 100 000 trivial tasks over a list", "s"),
}
RATES = {"g", "h"}  # throughputs: higher is better
BIG_ITEMS, BIG_BYTES = 128, 4 << 20
SPIN_VARIABLE = "MPIRE_FAULT_BENCH_SPIN"  # burn()'s count for about 1 ms, set once per run by run.py


def inc(x: int) -> int:
    return x + 1


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def calibrate() -> int:
    n = 1000
    while True:
        began = time.perf_counter()
        burn(n)
        if time.perf_counter() - began > 0.001:
            return n
        n *= 2


def checksum(array: Any) -> float:
    return float(array.sum())  # reads every byte it was sent


def big_array(i: int) -> Any:
    import numpy

    return numpy.full(BIG_BYTES // 8, float(i))


def stamp_and_die(path: str) -> None:
    with open(path, "w") as handle:
        handle.write(repr(time.monotonic()))
    os.kill(os.getpid(), signal.SIGKILL)


class Pool:
    """The few calls the benchmarks need, over each peer's own API."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name not in PEERS:
            raise SystemExit(f"unknown pool {name!r}; choose from {', '.join(PEERS)}")
        why = missing(name)
        if why:
            raise SystemExit(why)
        # The kit's adapters make every pool, so the benchmarks and the conformance table compare the same peers.
        # keep_alive=False for mpire: mpire 2.10.2 mixes up apply and map calls on kept-alive workers.
        self.pool = ADAPTERS[name].create(**({"keep_alive": False} if name == "mpire" else {}))

    def map(self, fn: Callable, items: Any, chunk: int | None = None) -> list:
        if self.name in ("mpire_fault", "mpire"):
            return self.pool.map(fn, items, chunk_size=chunk)
        if self.name == "multiprocessing":
            return self.pool.map(fn, items, chunksize=chunk)
        return list(self.pool.map(fn, items, chunksize=chunk or 1))

    def imap(self, fn: Callable, items: Any, chunk: int):
        if self.name in ("mpire_fault", "mpire"):
            return self.pool.imap(fn, items, chunk_size=chunk)
        if self.name == "multiprocessing":
            return self.pool.imap(fn, items, chunksize=chunk)
        return self.pool.map(fn, items, chunksize=chunk)

    def submit(self, fn: Callable, *args: Any) -> Any:
        if self.name in ("mpire_fault", "mpire", "multiprocessing"):
            return self.pool.apply_async(fn, args)
        return self.pool.submit(fn, *args)

    @staticmethod
    def get(handle: Any, timeout: float) -> Any:
        return handle.get(timeout) if hasattr(handle, "get") else handle.result(timeout)

    def pids(self) -> set[int]:
        return live_children()

    def close(self) -> None:
        if self.name in ("concurrent.futures", "loky"):
            self.pool.shutdown(wait=False)
        else:
            self.pool.terminate()
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def timed(fn: Callable[[], Any]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def bench_a(pool: Pool, quick: bool) -> float:
    n = 10_000 if quick else 100_000
    return timed(lambda: pool.map(inc, range(n)))


def bench_i(pool: Pool, quick: bool) -> float:
    """(a) over a list of ints: (a)'s range travels as ranges, a list item by item."""
    items = list(range(10_000 if quick else 100_000))
    return timed(lambda: pool.map(inc, items))


def bench_b(pool: Pool, quick: bool) -> float:
    # One calibration for every pool of a run (run.py passes it): calibrated in
    # each child, a noisy first timing could halve one pool's work.
    spin = int(os.environ.get(SPIN_VARIABLE) or calibrate())
    n = 200 if quick else 2000
    return timed(lambda: pool.map(burn, [spin] * n))


def bench_c(pool: Pool, quick: bool) -> float:
    n = 1000 if quick else 10_000

    def run() -> None:
        handles = [pool.submit(inc, i) for i in range(n)]
        for handle in handles:
            pool.get(handle, 60)

    return timed(run)


def bench_d(pool: Pool, quick: bool) -> float | str:
    latencies = []
    with tempfile.TemporaryDirectory() as directory:
        for n in range(3 if quick else 15):
            path = os.path.join(directory, f"{n}")
            handle = pool.submit(stamp_and_die, path)
            try:
                pool.get(handle, 5)
            except Exception as exc:  # noqa: BLE001 - each peer reports a death its own way; any error counts
                if "TimeoutError" in type(exc).__name__:  # builtin, or multiprocessing's own
                    return "hangs"
                raised = time.monotonic()
            else:
                return "no error"
            with open(path) as stamp:
                latencies.append(raised - float(stamp.read()))
            if pool.name in ("concurrent.futures", "loky", "mpire"):  # broken after a death: a new pool
                pool.close()
                pool.__init__(pool.name)
    latencies.sort()
    return 1000 * latencies[len(latencies) // 2]


def bench_e(pool: Pool, quick: bool) -> float | str:
    samples = []
    for _ in range(3 if quick else 10):
        pool.get(pool.submit(inc, 1), 30)
        before = pool.pids()
        victim = sorted(before)[0]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        while time.monotonic() - killed < 3:
            if pool.name == "mpire_fault":
                current = set(pool.pool.statistics()["worker_pids"].values())
                if len(current) == 2 and victim not in current:
                    break
            elif pool.pids() - before:
                break
            time.sleep(0.0005)
        else:
            return "no restart"
        samples.append(time.monotonic() - killed)
    samples.sort()
    return 1000 * samples[len(samples) // 2]


def bench_f(pool: Pool, quick: bool) -> float | str:
    n = 1_000_000 if quick else 10_000_000
    me = psutil.Process()
    base = me.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], me.memory_info().rss)
            if peak[0] - base > 2 * 2**30:  # a pool that swallows the input whole: stop before the host suffers
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in pool.imap(inc, (i for i in range(n)), 1000):
        pass
    stop.set()
    sampler.join()
    return (peak[0] - base) / 2**20


def bench_g(pool: Pool, quick: bool) -> float:
    import numpy

    n = BIG_ITEMS // 4 if quick else BIG_ITEMS
    arrays = [numpy.full(BIG_BYTES // 8, float(i)) for i in range(n)]
    pool.map(checksum, arrays[:4])  # pages of the first segments, imports: not the measure
    seconds = timed(lambda: pool.map(checksum, arrays))
    return n * BIG_BYTES / 2**20 / seconds


def bench_h(pool: Pool, quick: bool) -> float:
    n = BIG_ITEMS // 4 if quick else BIG_ITEMS
    for _ in pool.imap(big_array, range(4), 1):
        pass
    # imap everywhere, kept in a list: no pool gets to concatenate (MPIRE's map would) or drop them.
    seconds = timed(lambda: list(pool.imap(big_array, range(n), 16)))
    return n * BIG_BYTES / 2**20 / seconds


def main() -> None:
    bench, name = sys.argv[1], sys.argv[2]
    quick = "--quick" in sys.argv
    pool = Pool(name)
    try:
        if name != "mpire":
            pool.get(pool.submit(inc, 0), 60)  # workers up before any clock starts
        value = globals()[f"bench_{bench}"](pool, quick)
    finally:
        pool.close()
    status = "ok" if isinstance(value, float) else value
    print(json.dumps({"status": status, "value": value if isinstance(value, float) else None}))


if __name__ == "__main__":
    main()
