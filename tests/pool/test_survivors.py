"""Tests written against mutants that survived the rest of the suite (issue 14, item 3).

Each test names the mutant it kills. Both are deterministic: the orderings
that matter are forced with events and marker files, and every wait is
bounded.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from mpire_fault import WorkerDiedError, WorkerPool

from .observe import runs, wait_until

BOUND = 30.0  # no wait in this file may take longer, even on a loaded 2-core machine


def identity(x):
    return x


# ---------------------------------------------------------------------------
# terminate() while a slow callback runs


def test_terminate_during_slow_callback_keeps_the_value(start_method):
    """terminate() while a task's callback still runs: get() returns the value, callback once, error_callback never.

    Kills the mutant without the once-only guard in ``AsyncResult._resolve``:
    a caller waiting in ``get()`` sees the supervisor gone, waits its grace
    (1 s) for the callback, then resolves the result a second time with
    SupervisorError; get() raised it and error_callback ran after callback.
    The callback is held until that caller has seen the supervisor gone
    twice, so its grace has certainly run out while the callback was running.
    """
    calls: list = []
    errors: list = []
    callback_started = threading.Event()
    grace_over = threading.Event()
    got: dict = {}

    def callback(value):
        calls.append(value)
        callback_started.set()
        grace_over.wait(BOUND)

    with WorkerPool(2, start_method=start_method) as pool:
        result = pool.apply_async(identity, (42,), callback=callback, error_callback=errors.append)

        # Count how often the waiting caller finds the supervisor gone (white-box: the only way
        # to know the caller's grace ran out without sleeping for it).
        gone, seen = result._supervisor_gone, []

        def counted_gone():
            answer = gone()
            if answer:
                seen.append(time.monotonic())
                if len(seen) >= 2:
                    grace_over.set()
            return answer

        result._supervisor_gone = counted_gone

        def getter():
            try:
                got["value"] = result.get(timeout=BOUND)
            except BaseException as exc:  # noqa: BLE001 - the assertion below shows it
                got["error"] = exc

        waiter = threading.Thread(target=getter, name="survivors-getter", daemon=True)
        waiter.start()
        assert callback_started.wait(BOUND), "the callback never ran"
        began = time.monotonic()
        pool.terminate()  # from the main thread, while the callback runs
        assert time.monotonic() - began < BOUND
        waiter.join(BOUND)
        assert not waiter.is_alive(), "get() did not return after terminate()"
    assert grace_over.is_set(), "the waiting caller never saw the supervisor gone twice: the test proved nothing"
    assert got == {"value": 42}, f"get() after terminate() during the callback: {got}"
    assert result.successful()
    assert calls == [42], "callback must run exactly once"
    assert errors == [], f"error_callback must never run: {errors!r}"


# ---------------------------------------------------------------------------
# a map death while a sibling chunk is slow

SLOW_BOUND = 10.0  # item 0 ends on its own after this long (a pool that keeps its promise kills it first)


def _touch(directory: str, i: int) -> None:
    # The marker holds the start time on CLOCK_MONOTONIC, which is system-wide on Linux.
    with open(os.path.join(directory, f"{i}.{os.getpid()}.start"), "w") as handle:
        handle.write(repr(time.monotonic()))


def slow_sibling_or_kill(directory: str, i: int) -> int:
    """Item 0 is slow (it waits to be stopped), item 6 kills its worker once item 0 runs; the rest are quick."""
    _touch(directory, i)
    if i == 0:
        time.sleep(SLOW_BOUND)  # a pool that keeps its promise kills this worker long before
    elif i == 6:
        wait_until(lambda: any(name.startswith("0.") for name in os.listdir(directory)), BOUND,
                   what="item 0 to start")
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(BOUND)
    return i


def _start_time(directory: str, i: int) -> float:
    [name] = [n for n in os.listdir(directory) if n.startswith(f"{i}.")]
    with open(os.path.join(directory, name)) as handle:
        return float(handle.read())


def test_map_death_stops_the_slow_sibling_chunk(start_method, markers):
    """chunk_size=5 on 2 workers: item 6 dies while item 0 (other chunk) is slow; the call aborts, 1-4 never start.

    Kills the mutant without the abort of the sibling chunk: item 0 was left
    to finish, then items 1-4 ran, and (without keep_alive) the call waited
    for them before it raised. The pool must raise WorkerDiedError promptly
    and stop item 0's worker, so exactly items 0, 5 and 6 ever start.
    """
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(WorkerDiedError) as info:
            pool.map(slow_sibling_or_kill, [(markers, i) for i in range(10)], chunk_size=5)
        raised = time.monotonic()
        error = info.value
        assert error.signal_name == "SIGKILL" and error.exitcode == -signal.SIGKILL
        assert error.task and "map item 6 " in error.task, error.task
        started = runs(markers)
        assert sorted(started) == [0, 5, 6], f"items that started: {sorted(started)}"
        assert all(count == 1 for count in started.values()), started
        # Promptly: before item 0 would have ended on its own (the call also waits for the
        # graceful stop of the workers, which under spawn on a loaded machine takes seconds).
        assert raised - _start_time(markers, 0) < SLOW_BOUND, "the call waited for the slow item 0 to end"
        # And the pool is usable for the next call.
        assert pool.map(identity, range(6), chunk_size=2) == list(range(6))
    assert sorted(runs(markers)) == [0, 5, 6], "an item of the aborted call started after the call returned"
