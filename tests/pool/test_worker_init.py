"""worker_init failures: a clear WorkerInitError, a bounded number of respawns, recovery after a flake."""
from __future__ import annotations

import time

import pytest

from mpire_fault import WorkerDiedError, WorkerInitError, WorkerPool

from . import hook_tasks, observe, tasks
from .observe import init_calls
from .tasks import BoundaryError

N_JOBS = 2
# "three times in a row" per slot (docs/guarantees.md §4), plus one start in flight when the call fails.
MAX_INIT_CALLS = 4 * N_JOBS

INIT_FAILURES = [
    ("raise", BoundaryError),
    ("os_exit3", WorkerDiedError),
    ("sigkill", WorkerDiedError),
    ("exit2", WorkerDiedError),
]


def _check_init_error(exc: WorkerInitError, cause_type: type) -> None:
    assert isinstance(exc, RuntimeError)
    assert isinstance(exc.__cause__, cause_type), repr(exc.__cause__)
    if cause_type is WorkerDiedError:
        assert exc.__cause__.worker_id in range(N_JOBS) and exc.__cause__.task is None


def _assert_no_respawn_loop(directory: str) -> int:
    calls = init_calls(directory)
    assert 1 <= calls <= MAX_INIT_CALLS, f"worker_init ran {calls} times"
    time.sleep(0.5)  # a respawn loop would keep starting workers (multiprocessing.Pool: ~100/s)
    later = init_calls(directory)
    assert later <= calls + N_JOBS and later <= MAX_INIT_CALLS, f"worker_init kept running: {calls} -> {later}"
    return later


@pytest.mark.parametrize("action,cause", INIT_FAILURES, ids=[a for a, _ in INIT_FAILURES])
def test_failing_worker_init_fails_the_call(start_method, markers, action, cause):
    init = hook_tasks.init_marker(markers, action)
    with WorkerPool(N_JOBS, start_method=start_method) as pool:
        began = time.monotonic()
        with pytest.raises(WorkerInitError) as info:
            pool.apply_async(tasks.square, (3,), worker_init=init).get(timeout=30)
        assert time.monotonic() - began < 20
        _check_init_error(info.value, cause)
        _assert_no_respawn_loop(markers)


@pytest.mark.parametrize("action,cause", INIT_FAILURES[:2], ids=[a for a, _ in INIT_FAILURES[:2]])
def test_failing_worker_init_fails_a_map(start_method, markers, action, cause):
    init = hook_tasks.init_marker(markers, action)
    with WorkerPool(N_JOBS, start_method=start_method) as pool:
        with pytest.raises(WorkerInitError) as info:
            pool.map(tasks.square, range(10), worker_init=init)
        _check_init_error(info.value, cause)
        _assert_no_respawn_loop(markers)
        # The pool is not poisoned: a call with a working init runs.
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]


def test_all_apply_tasks_fail_and_pool_recovers(start_method, markers):
    init = hook_tasks.init_marker(markers, "raise")
    with WorkerPool(N_JOBS, start_method=start_method) as pool:
        results = [pool.apply_async(tasks.square, (i,), worker_init=init) for i in range(5)]
        for result in results:
            with pytest.raises(WorkerInitError):
                result.get(timeout=30)
        _assert_no_respawn_loop(markers)
        assert pool.apply(tasks.square, (5,)) == 25


def test_flaky_worker_init_then_ok(start_method, markers):
    """The first worker_init of the pool fails, its replacement's works: the call succeeds."""
    init = hook_tasks.init_marker(markers, "flaky")
    with WorkerPool(N_JOBS, start_method=start_method) as pool:
        assert pool.apply_async(tasks.square, (3,), worker_init=init).get(timeout=30) == 9
        assert pool.map(tasks.square, range(4), worker_init=init) == [0, 1, 4, 9]
        assert 2 <= init_calls(markers) <= 3 * N_JOBS


def test_worker_init_runs_again_after_a_death(start_method, markers):
    init = hook_tasks.init_marker(markers)
    with WorkerPool(N_JOBS, start_method=start_method) as pool:
        assert pool.apply_async(tasks.square, (2,), worker_init=init).get(timeout=30) == 4
        observe.wait_until(lambda: init_calls(markers) == N_JOBS, what="both inits")
        with pytest.raises(WorkerDiedError):
            pool.apply_async(tasks.work, (markers, 0, "sigkill"), worker_init=init).get(timeout=30)
        observe.wait_recovered(pool)
        assert init_calls(markers) == N_JOBS + 1


def test_worker_init_timeout(start_method, markers):
    init = hook_tasks.init_marker(markers, "hang")
    with WorkerPool(N_JOBS, start_method=start_method) as pool:
        began = time.monotonic()
        with pytest.raises(WorkerInitError) as info:
            pool.apply_async(tasks.square, (3,), worker_init=init, worker_init_timeout=0.3).get(timeout=30)
        assert time.monotonic() - began < 20
        assert isinstance(info.value.__cause__, TimeoutError)
        _assert_no_respawn_loop(markers)


def test_worker_dying_right_after_start_up_is_not_respawned_in_a_tight_loop(start_method, markers):
    """worker_init succeeds but leaves a time bomb: each worker dies idle ~20 ms after it is ready.

    Replacing it is right, but not ~100 times a second for as long as the
    pool lives (multiprocessing.Pool's respawn loop): restarts of workers
    that die without answering a task back off.
    """
    init = hook_tasks.init_marker(markers, "timebomb")
    with WorkerPool(N_JOBS, start_method=start_method) as pool:
        result = pool.apply_async(tasks.quick, (5,), worker_init=init)
        try:
            assert result.get(timeout=30) == 5
        except WorkerDiedError:
            pass  # the bomb went off while the task ran: a death of that task, also fine
        time.sleep(1.5)
        calls = init_calls(markers)
        assert calls < 40, f"{calls} worker starts in 1.5 s: a respawn loop"
