"""MPIRE feature parity: every parameter name of mpire 2.10.2 is accepted, and the features behave."""
from __future__ import annotations

import inspect
import os

import pytest

from mpire_fault import WorkerExitError, WorkerInitError, WorkerPool

from . import tasks

mpire = pytest.importorskip("mpire")

METHODS = ["__init__", "map", "map_unordered", "imap", "imap_unordered", "apply", "apply_async",
           "stop_and_join", "terminate", "join", "get_insights", "print_insights", "get_exit_results",
           "set_shared_objects", "pass_on_worker_id", "set_use_worker_state", "set_keep_alive", "set_order_tasks"]


@pytest.mark.parametrize("method", METHODS)
def test_every_mpire_parameter_is_accepted(method):
    theirs = inspect.signature(getattr(mpire.WorkerPool, method)).parameters
    ours = inspect.signature(getattr(WorkerPool, method)).parameters
    missing = [name for name in theirs if name not in ours]
    assert not missing, f"{method} lacks MPIRE parameters {missing}"
    for name, param in theirs.items():
        if name in ours and param.default is not inspect.Parameter.empty and name != "start_method":
            assert ours[name].default == param.default, f"{method}({name}=) default differs from MPIRE"


def test_public_surface_is_pinned():
    import mpire_fault

    assert set(mpire_fault.__all__) == {
        "AsyncResult", "ChaosSpecError", "Death", "ExecutorWorkerDiedError", "PoolStatistics", "PoolTerminatedError",
        "Pool", "ProcessPoolExecutor", "RemoteTraceback",
        "RestartBackoff", "SchedulerLostError", "SupervisorError", "TaskTimeoutError", "WorkerDiedError",
        "WorkerExitError", "WorkerInitError", "WorkerPool", "cpu_count", "get_context",
    }


@pytest.fixture(params=["fork", "spawn"])
def start_method(request):
    return request.param


def test_worker_lifespan_restarts_workers(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        pids = pool.map(tasks.pid_of, range(12), chunk_size=1, worker_lifespan=2)
        assert len(set(pids)) >= 4  # 12 tasks, at most 2 per worker life
        assert pool.statistics()["deaths"] == ()  # retirement is not a death


def test_worker_state_and_hooks_with_keep_alive(start_method):
    with WorkerPool(2, use_worker_state=True, keep_alive=True, start_method=start_method) as pool:
        first = pool.map(tasks.count_calls, range(4), chunk_size=1, worker_init=tasks.init_state)
        assert min(first) >= 101
        second = pool.map(tasks.count_calls, range(4), chunk_size=1, worker_init=tasks.init_state)
        assert max(second) > max(first) - 1  # state survived: counts keep growing
        pool.stop_and_join()


def test_exit_results_without_keep_alive(start_method):
    with WorkerPool(2, use_worker_state=True, start_method=start_method) as pool:
        pool.map(tasks.count_calls, range(6), chunk_size=1, worker_exit=tasks.exit_state)
        assert sorted(pool.get_exit_results()) and sum(pool.get_exit_results()) == 6


def test_shared_objects_and_setter(start_method):
    with WorkerPool(2, shared_objects=[10, 20, 30], start_method=start_method) as pool:
        assert pool.map(tasks.read_shared, [0, 2]) == [10, 30]
        pool.set_shared_objects(("a", "b"))
        assert pool.map(tasks.read_shared, [1]) == ["b"]


def test_pass_worker_id_and_order_tasks():
    with WorkerPool(2, pass_worker_id=True, order_tasks=True) as pool:
        out = pool.map(tasks.with_id, range(6), chunk_size=1)
    assert out == [(i % 2, i) for i in range(6)]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_cpu_ids_pin_workers():
    cpu = sorted(os.sched_getaffinity(0))[-1]
    with WorkerPool(2, cpu_ids=[cpu]) as pool:
        assert pool.map(tasks.affinity, range(2), chunk_size=1) == [[cpu], [cpu]]
    with pytest.raises(ValueError, match="cpu_ids"):
        WorkerPool(2, cpu_ids=[0, 1, 0])


def test_bad_cpu_ids_are_refused_as_mpire_refuses_them():
    with pytest.raises(ValueError, match=f"CPU {os.cpu_count()} in cpu_ids does not exist"):
        WorkerPool(2, cpu_ids=[os.cpu_count()])
    with pytest.raises(ValueError, match="does not exist"):
        WorkerPool(2, cpu_ids=[[0, 10_000]])
    with pytest.raises(TypeError, match="cpu_ids"):
        WorkerPool(2, cpu_ids=["0"])
    with pytest.raises(ValueError, match="cpu_ids"):
        WorkerPool(2, cpu_ids=[-1])


def test_cpu_ids_with_threads_is_refused_by_name():
    with pytest.raises(ValueError, match="cpu_ids.*threading"):
        WorkerPool(2, cpu_ids=[0], start_method="threading")
    WorkerPool(2, cpu_ids=None, start_method="threading").terminate()  # no pinning asked: fine


def test_insights_count_items_and_deaths():
    with WorkerPool(2, enable_insights=True) as pool:
        pool.map(tasks.square, range(20), chunk_size=2)
        insights = pool.get_insights()
    assert sum(insights["n_completed_tasks"]) == 20  # items, as MPIRE, not chunks
    assert isinstance(insights["total_working_time"], str)
    assert set(insights) >= {"start_up_time", "init_time", "waiting_time", "working_time", "exit_time", "deaths"}
    with WorkerPool(1) as pool:
        assert pool.get_insights() == {}  # as MPIRE with insights off


def test_progress_bar_runs(capsys):
    with WorkerPool(2) as pool:
        assert pool.map(tasks.square, range(10), progress_bar=True) == [x * x for x in range(10)]
    assert "10/10" in capsys.readouterr().err


def test_worker_init_timeout_fails_the_call():
    with WorkerPool(1) as pool:
        with pytest.raises(WorkerInitError) as info:
            pool.map(tasks.square, range(2), worker_init=tasks.sleepy_init, worker_init_timeout=0.2)
        assert isinstance(info.value.__cause__, TimeoutError)
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_worker_exit_timeout_is_reported():
    with WorkerPool(1) as pool:
        with pytest.raises(WorkerExitError, match="worker_exit_timeout"):
            pool.map(tasks.square, range(2), worker_exit=tasks.sleepy_exit, worker_exit_timeout=0.3)
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_concatenate_numpy_output():
    numpy = pytest.importorskip("numpy")
    with WorkerPool(2) as pool:
        out = pool.map(tasks.make_array, [2, 3])
        assert isinstance(out, numpy.ndarray) and out.tolist() == [0, 1, 0, 1, 2]
        raw = pool.map(tasks.make_array, [2, 3], concatenate_numpy_output=False)
        assert isinstance(raw, list) and len(raw) == 2


def test_int_iterable_means_range():
    with WorkerPool(2) as pool:
        assert pool.map(tasks.square, 5) == [0, 1, 4, 9, 16]


def test_stop_and_join_keep_alive_waits_for_the_tasks_and_keeps_the_workers(start_method):
    """MPIRE's stop_and_join(keep_alive=True): every submitted task is done, the workers are still the same."""
    with WorkerPool(2, start_method=start_method) as pool:
        pending = [pool.apply_async(tasks.pid_of, (i,), worker_exit=tasks.exit_pid) for i in range(6)]
        pool.stop_and_join(keep_alive=True)
        assert all(result.ready() for result in pending)
        before = {result.get() for result in pending}
        assert pool.get_exit_results() == []  # worker_exit has not run: the workers were not stopped
        alive = set(pool.statistics()["worker_pids"].values())
        assert before <= alive  # (under spawn one worker may have taken every task)
        assert pool.apply(tasks.pid_of, (0,), worker_exit=tasks.exit_pid) in alive
        pool.join()  # and the plain join still stops them, running worker_exit
        assert alive <= set(pool.get_exit_results()) and len(pool.get_exit_results()) == 2
        assert pool.statistics()["live_workers"] == 0
