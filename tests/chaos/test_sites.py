"""Every site x action on our pool: the outcome of docs/guarantees.md §4, and a journal of exactly what happened."""
from __future__ import annotations

import collections
import os
import time

import pytest

from mpire_fault import TaskTimeoutError, WorkerDiedError, WorkerExitError, WorkerPool

from .tasks import marked, square

TASK_SITES = ["args.unpickle", "task.start", "task.end", "result.pickle"]
BOUNDARY_NOTE = {"args.unpickle": "task-args", "result.pickle": "result"}
DEATHS = {"exit(3)": 3, "os_exit(0)": 0, "os_exit(5)": 5, "sigkill": -9, "sigsegv": -11, "sigterm": -15}


def run_apply(spec, n=6, **pool_options):
    """Six apply tasks under ``spec``; returns (outcomes, journal, statistics)."""
    task_timeout = pool_options.pop("task_timeout", None)
    with WorkerPool(2, chaos=spec, chaos_seed=11, **pool_options) as pool:
        results = [pool.apply_async(square, (i,), task_timeout=task_timeout) for i in range(n)]
        outcomes = []
        for result in results:
            try:
                outcomes.append(result.get(timeout=30))
            except BaseException as exc:  # noqa: BLE001 - we classify below
                outcomes.append(exc)
        journal = pool.chaos_journal()
        stats = pool.statistics()
    return outcomes, journal, stats


def assert_only_task_two_failed(outcomes):
    for i, outcome in enumerate(outcomes):
        if i != 2:
            assert outcome == i * i, f"task {i} should have succeeded, got {outcome!r}"


@pytest.mark.parametrize("site", TASK_SITES)
@pytest.mark.parametrize("action, exitcode", DEATHS.items())
def test_deaths_at_task_sites_fail_only_that_task(site, action, exitcode):
    outcomes, journal, stats = run_apply(f"{site}[task=2]={action}")
    assert_only_task_two_failed(outcomes)
    error = outcomes[2]
    assert isinstance(error, WorkerDiedError), error
    assert error.exitcode == exitcode and "#2 " in error.task
    assert [(e.site, e.action, e.task_index) for e in journal] == [(site, action, 2)]
    assert journal[0].pid == error.pid and journal[0].worker_id == error.worker_id
    assert len(stats["deaths"]) == 1


@pytest.mark.parametrize("site", TASK_SITES)
def test_raise_at_task_sites_is_a_task_error_with_the_boundary(site):
    outcomes, journal, stats = run_apply(f"{site}[task=2]=raise(LookupError)")
    assert_only_task_two_failed(outcomes)
    error = outcomes[2]
    assert type(error) is LookupError and "injected by mpire_fault chaos" in str(error)
    note = BOUNDARY_NOTE.get(site)
    assert getattr(error, "__notes__", []) == ([note] if note else [])
    assert stats["deaths"] == () and len(journal) == 1


@pytest.mark.parametrize("site", TASK_SITES)
def test_hang_at_task_sites_meets_task_timeout(site):
    outcomes, journal, stats = run_apply(f"{site}[task=2]=hang", task_timeout=0.5)
    assert_only_task_two_failed(outcomes)
    assert isinstance(outcomes[2], TaskTimeoutError)
    assert [e.action for e in journal] == ["hang"]


@pytest.mark.parametrize("site", TASK_SITES)
def test_sleep_and_off_change_no_outcome(site):
    outcomes, journal, _ = run_apply(f"{site}[task=2]=sleep(0.05);{site}[task=3]=off")
    assert outcomes == [i * i for i in range(6)]
    assert [(e.action, e.task_index) for e in journal] == [("sleep(0.05)", 2)]


def test_oom_is_reported_as_out_of_memory():
    outcomes, journal, _ = run_apply("task.start[task=2]=oom(160MiB)", max_worker_memory=120 * 2**20)
    assert_only_task_two_failed(outcomes)
    assert isinstance(outcomes[2], WorkerDiedError) and outcomes[2].oom and outcomes[2].exitcode == -9
    assert [e.action for e in journal] == ["oom(160MiB)"]


@pytest.mark.parametrize("action", ["exit(3)", "os_exit(0)", "sigkill", "sigsegv", "sigterm", "raise(OSError)"])
def test_a_worker_dying_once_at_init_is_replaced(action):
    with WorkerPool(2, chaos=f"init[worker=0]=1*{action}", chaos_seed=11) as pool:
        results = [pool.apply_async(square, (i,)) for i in range(6)]
        assert [r.get(timeout=30) for r in results] == [i * i for i in range(6)]
        deadline = time.monotonic() + 10
        while pool.statistics()["live_workers"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = pool.statistics()
        assert stats["live_workers"] == 2 and stats["restarts"] == 1
        assert [(e.site, e.worker_id) for e in pool.chaos_journal()] == [("init", 0)]


@pytest.mark.parametrize("action", ["sigkill", "exit(1)", "os_exit(0)"])
def test_an_idle_worker_dying_fails_no_task(action):
    with WorkerPool(2, chaos=f"idle[worker=1]=1*{action}", chaos_seed=3) as pool:
        first = [pool.apply_async(square, (i,)) for i in range(4)]
        assert [r.get(timeout=30) for r in first] == [0, 1, 4, 9]
        deadline = time.monotonic() + 10  # worker 1 visits 'idle' whenever its pipe is empty
        while not pool.chaos_journal() and time.monotonic() < deadline:
            time.sleep(0.02)
        later = [pool.apply_async(square, (i,)) for i in range(4, 8)]
        assert [r.get(timeout=30) for r in later] == [16, 25, 36, 49]
        assert [(e.site, e.worker_id) for e in pool.chaos_journal()] == [("idle", 1)]


def test_a_crash_at_exit_fails_no_result():
    with WorkerPool(2, chaos="exit=sigkill", chaos_seed=5) as pool:
        assert pool.map(square, range(6)) == [i * i for i in range(6)]
        assert {e.site for e in pool.chaos_journal()} == {"exit"}


def test_an_exception_at_exit_is_reported_like_worker_exit_raising():
    with WorkerPool(1, chaos="exit=1*raise(RuntimeError)", chaos_seed=5) as pool:
        with pytest.raises(WorkerExitError):
            pool.map(square, range(3))
        assert pool.map(square, range(3)) == [0, 1, 4]


@pytest.mark.parametrize("mode", ["map", "imap_unordered"])
def test_map_aborts_on_an_injected_death_and_the_pool_is_reused(mode, tmp_path):
    with WorkerPool(2, chaos="task.start[task=7]=sigkill", chaos_seed=2) as pool:
        with pytest.raises(WorkerDiedError) as info:
            list(getattr(pool, mode)(marked, [(str(tmp_path), i) for i in range(40)], chunk_size=2))
        assert info.value.exitcode == -9 and "map item 7" in info.value.task
        assert pool.map(square, range(5)) == [0, 1, 4, 9, 16]
        assert [(e.site, e.task_index) for e in pool.chaos_journal()] == [("task.start", 7)]
    runs = collections.Counter(int(name.split(".")[0]) for name in os.listdir(tmp_path))
    assert all(count == 1 for count in runs.values()), "an item ran twice"


def test_counts_hold_across_workers_and_restarts():
    outcomes, journal, stats = run_apply("task.start=2*sigkill->off", n=8)
    died = [o for o in outcomes if isinstance(o, WorkerDiedError)]
    assert len(died) == 2 and len(journal) == 2
    assert sum(1 for o in outcomes if not isinstance(o, BaseException)) == 6


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_other_start_methods_inject_the_same(start_method):
    outcomes, journal, _ = run_apply("task.start[task=2]=sigkill;task.end[task=4]=raise(ValueError)",
                                     start_method=start_method)
    assert isinstance(outcomes[2], WorkerDiedError) and outcomes[2].exitcode == -9
    assert isinstance(outcomes[4], ValueError)
    assert sorted((e.site, e.task_index) for e in journal) == [("task.end", 4), ("task.start", 2)]
