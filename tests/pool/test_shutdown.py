"""Shutdown in bounded time whatever the workers are doing; no orphans even when the parent is SIGKILLed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from mpire_fault import PoolTerminatedError, WorkerDiedError, WorkerExitError, WorkerPool

from . import hook_tasks, observe, tasks
from .observe import pid_gone, wait_recovered, wait_until

SCRIPT = os.path.join(os.path.dirname(__file__), "parent_script.py")
BOUND = 10.0  # seconds any shutdown may take on a loaded 2-core machine


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not box or not box[0]:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        raise AssertionError(f"the script printed no pids within {timeout}s; stderr:\n{err}")
    return box[0]


def _parent_sigkill(start_method: str, state: str, directory: str) -> None:
    proc = subprocess.Popen([sys.executable, SCRIPT, start_method, state, directory],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pids = json.loads(_read_line(proc, 60))
        assert len(pids) == 3
        for pid in pids:  # really the script's workers (forkserver: the server's children), and alive
            assert not pid_gone(pid)
            assert proc.pid in [p.pid for p in psutil.Process(pid).parents()]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        wait_until(lambda: all(pid_gone(pid) for pid in pids), timeout=5,
                   what=f"workers {[p for p in pids if not pid_gone(p)]} to exit after their parent's SIGKILL")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("state", ["busy", "init"])
def test_parent_sigkill_leaves_no_orphans(start_method, state, markers):
    """SIGKILL the parent of a pool whose workers are busy and idle, or all inside worker_init."""
    _parent_sigkill(start_method, state, markers)


def test_parent_sigkill_leaves_no_orphans_forkserver(markers):
    _parent_sigkill("forkserver", "busy", markers)


def test_terminate_with_busy_workers_fails_pending_results(start_method):
    pool = WorkerPool(2, start_method=start_method)
    running = [pool.apply_async(tasks.sleep_then, (60, i)) for i in range(2)]
    queued = [pool.apply_async(tasks.square, (i,)) for i in range(5)]
    wait_until(lambda: pool.statistics()["live_workers"] == 2, what="workers up")
    time.sleep(0.1)
    began = time.monotonic()
    pool.terminate()
    assert time.monotonic() - began < BOUND
    for result in running + queued:
        result.wait(timeout=5)
        assert result.ready() and not result.successful()
        with pytest.raises(PoolTerminatedError):
            result.get(timeout=0)
    pool.terminate()  # twice is harmless


def test_leaving_with_while_busy_is_bounded(start_method):
    began = time.monotonic()
    with WorkerPool(2, start_method=start_method) as pool:
        results = [pool.apply_async(tasks.sleep_then, (60, i)) for i in range(4)]
        wait_until(lambda: pool.statistics()["live_workers"] == 2, what="workers up")
    assert time.monotonic() - began < BOUND
    assert all(r.ready() for r in results)


def test_terminate_stops_a_running_map(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        outcome: list[BaseException] = []

        def run_map():
            try:
                pool.map(tasks.sleep_then, [(60, i) for i in range(6)], chunk_size=1)
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread, which asserts on it
                outcome.append(exc)

        thread = threading.Thread(target=run_map, daemon=True)
        thread.start()
        wait_until(lambda: pool.statistics()["live_workers"] == 2, what="workers up")
        began = time.monotonic()
        pool.terminate()
        thread.join(BOUND)
        assert not thread.is_alive() and time.monotonic() - began < BOUND
        assert len(outcome) == 1 and isinstance(outcome[0], PoolTerminatedError)


def test_pool_is_usable_after_terminate(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        assert pool.apply(tasks.square, (3,)) == 9
        pool.terminate()
        assert pool.apply(tasks.square, (4,)) == 16
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_stop_and_join_waits_for_work_and_survives_a_death(start_method, markers):
    with WorkerPool(2, start_method=start_method) as pool:
        results = [pool.apply_async(tasks.work, (markers, i, "sigkill" if i == 1 else None, 0.1)) for i in range(5)]
        began = time.monotonic()
        pool.stop_and_join()
        assert time.monotonic() - began < BOUND
        assert all(r.ready() for r in results)
        with pytest.raises(WorkerDiedError):
            results[1].get(timeout=0)
        assert [results[i].get(timeout=0) for i in (0, 2, 3, 4)] == [0, 2, 3, 4]
        assert pool.statistics()["live_workers"] == 0
        assert pool.apply(tasks.square, (5,)) == 25  # restarts on demand


@pytest.mark.parametrize("action", ["os_exit3", "sigkill", "raise"])
def test_stop_and_join_with_workers_crashing_in_worker_exit(start_method, action):
    with WorkerPool(2, start_method=start_method) as pool:
        assert pool.apply_async(tasks.square, (2,), worker_exit=hook_tasks.exit_hook(action)).get(timeout=30) == 4
        wait_recovered(pool)
        began = time.monotonic()
        try:
            pool.stop_and_join()
        except WorkerExitError:
            pass  # reporting the failed worker_exit is fine; hanging is not
        assert time.monotonic() - began < BOUND
        assert pool.statistics()["live_workers"] == 0
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_stop_and_join_with_a_hanging_worker_exit_is_bounded_by_its_timeout(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        pool.apply_async(tasks.square, (2,), worker_exit=hook_tasks.exit_hook("hang"),
                         worker_exit_timeout=0.5).get(timeout=30)
        wait_recovered(pool)
        began = time.monotonic()
        with pytest.raises(WorkerExitError, match="worker_exit_timeout"):
            pool.stop_and_join()
        assert time.monotonic() - began < BOUND


def test_terminate_during_a_hanging_worker_exit(start_method):
    pool = WorkerPool(2, start_method=start_method)
    pool.apply_async(tasks.square, (2,), worker_exit=hook_tasks.exit_hook("hang")).get(timeout=30)
    wait_recovered(pool)
    outcome: list = []

    def stop():
        try:
            pool.stop_and_join()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - any outcome but a hang is acceptable here
            outcome.append(exc)

    stopper = threading.Thread(target=stop, daemon=True)
    stopper.start()
    time.sleep(0.3)  # stop_and_join is now waiting for worker_exit (30 s default grace)
    began = time.monotonic()
    pool.terminate()
    stopper.join(BOUND)
    assert not stopper.is_alive() and time.monotonic() - began < BOUND
    assert len(outcome) == 1


def test_terminate_while_workers_keep_crashing(start_method, markers):
    """Shutdown while every task kills its worker (CPython's "shutdown while workers crash")."""
    pool = WorkerPool(2, start_method=start_method)
    results = [pool.apply_async(tasks.die_always, (markers, i)) for i in range(20)]
    wait_until(lambda: pool.statistics()["deaths"], what="a first death")
    began = time.monotonic()
    pool.terminate()
    assert time.monotonic() - began < BOUND
    for result in results:
        result.wait(timeout=5)
        assert result.ready()
        with pytest.raises((WorkerDiedError, PoolTerminatedError)):
            result.get(timeout=0)
    assert max(observe.runs(markers).values()) == 1


def test_terminate_while_worker_init_keeps_crashing(start_method, markers):
    pool = WorkerPool(2, start_method=start_method)
    result = pool.apply_async(tasks.square, (2,), worker_init=hook_tasks.init_marker(markers, "os_exit3"))
    wait_until(lambda: observe.init_calls(markers) >= 1, what="a first worker_init")
    began = time.monotonic()
    pool.terminate()
    assert time.monotonic() - began < BOUND
    result.wait(timeout=5)
    assert result.ready() and not result.successful()


def test_forgotten_pool_stops_its_workers(start_method):
    """A pool dropped without terminate() or ``with``: its workers still go, pending results get an error."""
    import gc

    pool = WorkerPool(2, start_method=start_method)
    pending = pool.apply_async(tasks.sleep_then, (60,))
    pids = list(wait_recovered(pool)["worker_pids"].values())
    del pool
    gc.collect()
    wait_until(lambda: all(pid_gone(pid) for pid in pids), timeout=BOUND, what="the forgotten pool's workers to exit")
    pending.wait(timeout=5)
    assert pending.ready() and not pending.successful()
