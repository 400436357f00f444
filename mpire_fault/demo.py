"""``mpire-fault demo``: watch workers die and the pool recover, in a few seconds."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from ._core.cli_types import positive_count
from ._core.start_methods import PROCESS_START_METHODS
from ._core.wording import counted
from .errors import WorkerDiedError
from .pool import WorkerPool


def fragile_square(x: int) -> int:
    """A small CPU task that misbehaves on purpose for two inputs."""
    if x == 3:
        sys.exit(3)  # a library deep inside the task decides to quit
    if x == 5:
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does
    time.sleep(0.05)
    return x * x


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n-jobs", type=positive_count, default=2, metavar="N", help="worker processes (default: 2)")
    parser.add_argument("--start-method", default="fork", choices=PROCESS_START_METHODS,
                        help="how workers start (default: fork)")


def main(ns: argparse.Namespace) -> int:
    say = print
    with WorkerPool(n_jobs=ns.n_jobs, start_method=ns.start_method) as pool:
        say(f"1. apply_async: 8 tasks on {counted(ns.n_jobs, 'worker')}; task 3 calls sys.exit(3), "
            "task 5 is SIGKILLed.")
        started = time.monotonic()
        results = [pool.apply_async(fragile_square, (i,)) for i in range(8)]
        ok = 0
        for i, result in enumerate(results):
            try:
                value = result.get(timeout=30)
            except WorkerDiedError as exc:
                say(f"   task {i}: FAILED  -> {exc}")
            else:
                ok += 1
                say(f"   task {i}: ok      -> {value}")
        stats = pool.statistics()
        say(f"   {ok} of 8 tasks succeeded; only the two tasks whose worker died failed.")
        say(f"   The pool restarted {counted(stats['restarts'], 'worker')} and has "
            f"{counted(_live(pool), 'live worker')} again ({time.monotonic() - started:.2f} s).")
        say("")
        say("2. map: the same misbehaving function over range(8). A death aborts the whole call at once.")
        started = time.monotonic()
        try:
            pool.map(fragile_square, range(8), chunk_size=1)
        except WorkerDiedError as exc:
            say(f"   map aborted after {time.monotonic() - started:.2f} s -> {exc}")
        say("")
        say("3. map again on the same pool, with a function that behaves:")
        values = pool.map(abs, range(-4, 4))
        say(f"   {values}")
        say("   The pool kept its promises: every task got exactly one answer and nothing hung.")
    return 0


def _live(pool: WorkerPool, wait: float = 5.0) -> int:
    deadline = time.monotonic() + wait
    while pool.statistics()["live_workers"] < pool.n_jobs and time.monotonic() < deadline:
        time.sleep(0.02)
    return pool.statistics()["live_workers"]
