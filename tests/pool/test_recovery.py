"""Recovery after deaths: requeue, retries, idle deaths, workers killing each other, memory limits."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from mpire_fault import Death, WorkerDiedError, WorkerPool

from . import observe, tasks
from .observe import runs, wait_recovered, wait_until


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_tasks_handed_to_a_dying_worker_run_elsewhere(start_method, markers, n_jobs):
    """Tasks queued in a worker's pipe behind the task that kills it are run by another worker, once."""
    go = os.path.join(markers, "go")
    with WorkerPool(n_jobs, start_method=start_method) as pool:
        # Teach the supervisor the function is short, so it queues tasks behind a running one.
        for _ in range(30):
            pool.apply(tasks.wait_for_file_then, (go,))
        killer = pool.apply_async(tasks.wait_for_file_then, (go, "sigkill"))
        followers = [pool.apply_async(tasks.work, (markers, i)) for i in range(40)]
        if n_jobs == 1:
            observe.wait_handed(pool, 2)  # a follower sits unstarted in the doomed worker's pipe
        with open(go, "w"):
            pass
        with pytest.raises(WorkerDiedError) as info:
            killer.get(timeout=30)
        assert info.value.exitcode == -9 and "#30 " in info.value.task
        assert [r.get(timeout=30) for r in followers] == list(range(40))
        assert runs(markers) == {i: 1 for i in range(40)}
        stats = wait_recovered(pool)
        if n_jobs == 1:
            assert stats["tasks_requeued"] >= 1
        assert stats["tasks_failed"] == 1


def test_retry_succeeds_after_one_death(start_method, markers):
    with WorkerPool(2, start_method=start_method, max_task_retries=1) as pool:
        results = [pool.apply_async(tasks.die_once, (markers, i)) for i in range(2)]
        assert [r.get(timeout=30) for r in results] == [0, 1]
        assert runs(markers) == {0: 2, 1: 2}  # retries were asked for: each ran twice
        wait_recovered(pool)


@pytest.mark.parametrize("retries", [1, 2])
def test_retries_exhausted_report_every_death(start_method, markers, retries):
    with WorkerPool(2, start_method=start_method, max_task_retries=retries) as pool:
        doomed = pool.apply_async(tasks.die_always, (markers, 0))
        fine = [pool.apply_async(tasks.work, (markers, i, None, 0.02)) for i in range(1, 6)]
        with pytest.raises(WorkerDiedError) as info:
            doomed.get(timeout=30)
        exc = info.value
        assert len(exc.deaths) == retries + 1
        assert all(isinstance(d, Death) and d.exitcode == -9 and d.worker_id in range(2) for d in exc.deaths)
        assert len({d.pid for d in exc.deaths}) == retries + 1
        assert set(observe.marker_pids(markers, 0)) == {d.pid for d in exc.deaths}
        assert f"killed {retries + 1} workers" in str(exc)
        assert [r.get(timeout=30) for r in fine] == [1, 2, 3, 4, 5]
        assert runs(markers) == {0: retries + 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
        wait_recovered(pool)


def test_map_does_not_retry(start_method, markers):
    """max_task_retries is for apply only: a map still aborts at the first death."""
    with WorkerPool(2, start_method=start_method, max_task_retries=2) as pool:
        with pytest.raises(WorkerDiedError) as info:
            pool.map(tasks.die_always, [(markers, 0)])
        assert len(info.value.deaths) == 1
        assert runs(markers) == {0: 1}


def test_idle_worker_killed_from_outside(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        assert pool.apply(tasks.square, (2,)) == 4
        pids = wait_recovered(pool)["worker_pids"]
        victim = pids[0]
        os.kill(victim, signal.SIGKILL)
        stats = wait_until(lambda: (s := wait_recovered(pool))["worker_pids"][0] != victim and s,
                           what="slot 0 to be replaced")
        assert victim not in stats["worker_pids"].values()
        assert stats["worker_pids"][1] == pids[1]
        assert stats["tasks_failed"] == 0
        assert all(death["task"] is None for death in stats["deaths"])
        assert [pool.apply_async(tasks.square, (i,)).get(timeout=30) for i in range(4)] == [0, 1, 4, 9]
        assert pool.map(tasks.square, range(5)) == [0, 1, 4, 9, 16]
        assert pool.statistics()["tasks_failed"] == 0


@pytest.mark.timeout(60)
def test_a_worker_reaped_by_someone_else_is_replaced_at_once():
    """User code that reaps children (psutil.wait_procs, os.wait) leaves the pool no exit code to wait for:
    the pool must not wait out its bound (1 s) on each such worker before replacing it."""
    with WorkerPool(2, start_method="fork", keep_alive=True) as pool:
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]
        victim = wait_recovered(pool)["worker_pids"][0]
        began = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        try:
            os.waitpid(victim, 0)  # we reap it before the pool can (mostly: the pool may win the race)
        except ChildProcessError:
            pass
        wait_until(lambda: wait_recovered(pool)["worker_pids"][0] != victim, what="slot 0 to be replaced")
        assert time.monotonic() - began < 0.8
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]


def test_every_idle_worker_killed_at_once(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        pool.apply(tasks.square, (2,))
        pids = set(wait_recovered(pool)["worker_pids"].values())
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pids & set(wait_recovered(pool)["worker_pids"].values()), what="both replaced")
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]
        assert pool.statistics()["tasks_failed"] == 0


def test_workers_killing_each_other(start_method, markers):
    """A task SIGKILLs the worker running another task (loky's "worker kills sibling" case)."""
    pid_file = os.path.join(markers, "victim.pid")
    with WorkerPool(2, start_method=start_method) as pool:
        victim = pool.apply_async(tasks.write_pid_and_sleep, (pid_file, 30))
        killer = pool.apply_async(tasks.kill_pid_from_file, (pid_file,))
        victim_pid = killer.get(timeout=30)
        with pytest.raises(WorkerDiedError) as info:
            victim.get(timeout=30)
        assert info.value.pid == victim_pid and info.value.exitcode == -9
        assert "#0 " in info.value.task and "write_pid_and_sleep" in info.value.task
        stats = wait_recovered(pool)
        assert victim_pid not in stats["worker_pids"].values()
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]


def test_map_aborts_when_one_item_kills_a_sibling(start_method, markers):
    pid_file = os.path.join(markers, "victim.pid")
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(WorkerDiedError) as info:
            list(pool.imap_unordered(tasks.victim_or_killer, [(pid_file, 0), (pid_file, 1)], chunk_size=1))
        assert info.value.exitcode == -9 and "item 0 " in info.value.task
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


@pytest.mark.parametrize("action", ["sigkill", "os_exit3"])
def test_death_is_seen_while_a_grandchild_holds_the_workers_fds(start_method, markers, action):
    """A task forks a long-lived grandchild, then its worker dies.

    The grandchild holds copies of the worker's pipes, including the write
    end of multiprocessing's process sentinel: death detection must not
    depend on those closing (nor must terminate()).
    """
    pid_file = os.path.join(markers, "grandchild.pid")
    try:
        with WorkerPool(2, start_method=start_method) as pool:
            began = time.monotonic()
            with pytest.raises(WorkerDiedError) as info:
                pool.apply_async(tasks.fork_grandchild_then, (pid_file, action)).get(timeout=10)
            assert time.monotonic() - began < 5, "the death was seen only after the grandchild exited"
            assert info.value.exitcode == (-9 if action == "sigkill" else 3)
            wait_recovered(pool)
            assert pool.map(tasks.square, range(3)) == [0, 1, 4]
            began = time.monotonic()
        assert time.monotonic() - began < 5, "terminate() waited for the grandchild"
    finally:
        if os.path.exists(pid_file):
            with open(pid_file) as fh:
                try:
                    os.kill(int(fh.read()), signal.SIGKILL)
                except ProcessLookupError:
                    pass


MiB = 2**20


def test_memory_limit_kills_and_reports_oom(start_method):
    with WorkerPool(2, start_method=start_method, max_worker_memory=150 * MiB) as pool:
        hog = pool.apply_async(tasks.grow_memory, (300,))
        fine = [pool.apply_async(tasks.sleep_then, (0.05, i)) for i in range(4)]
        with pytest.raises(WorkerDiedError) as info:
            hog.get(timeout=30)
        exc = info.value
        assert exc.oom is True and exc.exitcode == -9 and exc.signal_name == "SIGKILL"
        assert "out of memory" in str(exc) and "grow_memory" in exc.task
        assert [r.get(timeout=30) for r in fine] == [0, 1, 2, 3]
        wait_recovered(pool)
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]
        with pytest.raises(WorkerDiedError) as info:
            pool.map(tasks.grow_memory, [300])
        assert info.value.oom is True
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


BIG_PARENT = """
import time
from mpire_fault import WorkerPool

def work(x):
    time.sleep(0.2)
    return x

if __name__ == "__main__":
    ballast = bytearray(300 << 20)
    ballast[::4096] = b"\\x01" * len(range(0, len(ballast), 4096))  # 300 MiB resident in the parent
    with WorkerPool(2, max_worker_memory=150 << 20) as pool:
        assert pool.map(work, range(6), chunk_size=1) == list(range(6))
        assert not pool.statistics().deaths, pool.statistics().deaths
    print("ok")
"""


@pytest.mark.timeout(60)
def test_the_memory_limit_counts_the_workers_own_memory_not_its_forked_parents(tmp_path):
    # A forked worker starts with every resident page of its parent in its RSS: a big parent put every
    # worker over a smaller limit before it ran anything (each was killed "out of memory" at once).
    script = tmp_path / "big_parent.py"
    script.write_text(BIG_PARENT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=50)
    assert done.stdout.strip() == "ok", done.stderr[-3000:]
