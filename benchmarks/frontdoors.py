"""One front-door case, ours against the class it replaces, interleaved in this process; prints one JSON line.

    python benchmarks/frontdoors.py CASE [--quick] [--rounds N]

Run by run.py. Both pools are made (by the kit's adapters, so the benchmarks
and the conformance table compare the same pools) and warmed up before any
clock starts; then the same work is timed on ours, on theirs, on ours, ...
``--rounds`` times each, so both see the same load on a shared machine. The
line holds every round's seconds; run.py reports the medians and their ratio.
"""
from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from mpire_fault.verify.adapters import ADAPTERS

MAP_CHUNKSIZE = 1000  # 100 chunks of the 100 000 items: per-chunk costs fade, and both workers stay busy
# case: (title, our front door, the class it replaces)
CASES = {
    "j": ("Pool.map over a list of 100 000 trivial items", "mpire_fault.Pool", "multiprocessing.Pool"),
    "k": ("ProcessPoolExecutor: 10 000 submit round trips (submit all, then result all)",
          "mpire_fault.ProcessPoolExecutor", "concurrent.futures.ProcessPoolExecutor"),
    "l": (f"ProcessPoolExecutor.map of 100 000 trivial items, chunksize {MAP_CHUNKSIZE}",
          "mpire_fault.ProcessPoolExecutor", "concurrent.futures.ProcessPoolExecutor"),
    "m": ("joblib Parallel(n_jobs=2) of 10 000 trivial delayed calls, warm workers",
          'backend "mpire_fault"', "joblib's default (loky)"),
}
ROUNDS = 11
QUICK_ROUNDS = 3


def inc(x: int) -> int:
    return x + 1


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()  # the garbage of the previous round is not this one's to pay for
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def interleave(ours: Callable[[], Any], theirs: Callable[[], Any], rounds: int) -> dict[str, list[float]]:
    ours()  # warm-up, not timed: workers up, the function seen, imports done
    theirs()
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    for _ in range(rounds):
        times["ours"].append(timed(ours))
        times["theirs"].append(timed(theirs))
    return times


def _closing(pools: list[Any]) -> None:
    for pool in pools:
        if hasattr(pool, "terminate"):
            pool.terminate()
        else:
            pool.shutdown(wait=True)


def case_j(quick: bool, rounds: int) -> dict[str, list[float]]:
    items = list(range(10_000 if quick else 100_000))
    ours, theirs = ADAPTERS["mpire_fault.Pool"].create(), ADAPTERS["multiprocessing"].create()
    try:
        # the stdlib's default chunksize (4 chunks per worker), the same rule for both
        return interleave(lambda: ours.map(inc, items), lambda: theirs.map(inc, items), rounds)
    finally:
        _closing([ours, theirs])


def _round_trips(executor: Any, n: int) -> Callable[[], None]:
    def run() -> None:
        futures = [executor.submit(inc, i) for i in range(n)]
        for future in futures:
            future.result(60)

    return run


def case_k(quick: bool, rounds: int) -> dict[str, list[float]]:
    n = 1000 if quick else 10_000
    ours, theirs = ADAPTERS["mpire_fault.ProcessPoolExecutor"].create(), ADAPTERS["concurrent.futures"].create()
    try:
        return interleave(_round_trips(ours, n), _round_trips(theirs, n), rounds)
    finally:
        _closing([ours, theirs])


def case_l(quick: bool, rounds: int) -> dict[str, list[float]]:
    items = list(range(10_000 if quick else 100_000))
    ours, theirs = ADAPTERS["mpire_fault.ProcessPoolExecutor"].create(), ADAPTERS["concurrent.futures"].create()
    try:
        return interleave(lambda: list(ours.map(inc, items, chunksize=MAP_CHUNKSIZE)),
                          lambda: list(theirs.map(inc, items, chunksize=MAP_CHUNKSIZE)), rounds)
    finally:
        _closing([ours, theirs])


def case_m(quick: bool, rounds: int) -> dict[str, list[float]]:
    from joblib import Parallel, delayed, parallel_config
    from joblib.externals.loky import get_reusable_executor

    n = 1000 if quick else 10_000
    # One backend instance for every round: its workers stay warm between the blocks, as inside one block.
    backend = ADAPTERS["mpire_fault.joblib"].create()

    def ours() -> list:
        with parallel_config(backend=backend, n_jobs=2):
            return Parallel()(delayed(inc)(i) for i in range(n))

    def theirs() -> list:
        with parallel_config(backend="loky", n_jobs=2):  # loky's reusable executor stays warm between calls
            return Parallel()(delayed(inc)(i) for i in range(n))

    try:
        return interleave(ours, theirs, rounds)
    finally:
        backend.shutdown()
        # loky keeps its executor for the whole process: stop it, so no worker outlives this run
        get_reusable_executor().shutdown(wait=True, kill_workers=True)


def main() -> None:
    case = sys.argv[1]
    if case not in CASES:
        raise SystemExit(f"unknown case {case!r}; choose from {', '.join(CASES)}")
    quick = "--quick" in sys.argv
    rounds = QUICK_ROUNDS if quick else ROUNDS
    if "--rounds" in sys.argv:
        rounds = int(sys.argv[sys.argv.index("--rounds") + 1])
    times = globals()[f"case_{case}"](quick, rounds)
    print(json.dumps({"status": "ok", **times}))


if __name__ == "__main__":
    main()
