"""Drop-in for real (issue 11): ordinary MPIRE code behaves the same on our pool.

Written from MPIRE 2.10.2's documented behaviour; every start method,
threading included. Where MPIRE itself can run the same code cheaply, the
results are compared with MPIRE's own.
"""
from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from mpire_fault import ChaosSpecError, TaskTimeoutError, WorkerDiedError, WorkerExitError, WorkerInitError, WorkerPool
from mpire_fault._core.start_methods import PROCESS_START_METHODS as PROCESS_METHODS
from mpire_fault._core.start_methods import START_METHODS

from . import tasks

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=START_METHODS)
def start_method(request) -> str:
    return request.param


def _all_modes(pool: WorkerPool, func, items: list) -> dict[str, list]:
    return {
        "map": pool.map(func, items),
        "map_unordered": sorted(pool.map_unordered(func, items)),
        "imap": list(pool.imap(func, items)),
        "imap_unordered": sorted(pool.imap_unordered(func, items)),
        "apply": [pool.apply(func, (x,)) for x in items[:3]],
        "apply_async": [r.get(timeout=30) for r in [pool.apply_async(func, (x,)) for x in items[:3]]],
    }


def test_every_call_mode_with_worker_id_shared_objects_and_state(start_method):
    shared = {"big": list(range(10))}
    with WorkerPool(2, start_method=start_method, pass_worker_id=True, shared_objects=shared,
                    use_worker_state=True, keep_alive=True) as pool:
        modes = _all_modes(pool, tasks.ident_state, list(range(8)))
    for mode, results in modes.items():
        for worker_id, _shared_id, calls, _doubled in results:
            assert worker_id in (0, 1), mode
            assert calls >= 1, mode  # the state dict lives across tasks of one worker
        assert sorted(r[3] for r in results) == sorted(x * 2 for x in range(len(results))), mode
    if start_method == "threading":  # the very same object, never a copy
        assert {r[1] for results in modes.values() for r in results} == {id(shared)}


def test_threading_workers_are_threads_of_this_process():
    with WorkerPool(3, start_method="threading") as pool:
        seen = pool.map(tasks.pid_and_thread, range(30), chunk_size=1)
    assert {pid for pid, _ in seen} == {os.getpid()}
    assert threading.get_ident() not in {ident for _, ident in seen}


def test_unpicklable_arguments_and_results_work_under_threading():
    lock = threading.Lock()
    with WorkerPool(2, start_method="threading") as pool:
        assert pool.map(lambda x: (x, lock), [1, 2]) == [(1, lock), (2, lock)]
        assert pool.apply(lambda: lock) is lock


def test_pool_ctx_is_the_workers_context(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        event = pool.ctx.Event()
        pool.set_shared_objects(event)
        assert pool.map(tasks.wait_on_event, [(0.01,)] * 2) == [False, False]
        event.set()
        assert pool.map(tasks.wait_on_event, [(5,)] * 2) == [True, True]
    if start_method == "threading":
        assert isinstance(WorkerPool(1, start_method="threading").ctx.Event(), threading.Event)
    else:
        assert WorkerPool(1, start_method=start_method).ctx.get_start_method() == start_method


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_sync_objects_in_shared_objects_under_spawn_and_forkserver(start_method):
    import multiprocessing

    ctx = multiprocessing.get_context(start_method)
    event, lock, value, array = ctx.Event(), ctx.Lock(), ctx.Value("i", 0), ctx.Array("i", 4)
    with WorkerPool(2, start_method=start_method, shared_objects=(event, lock, value, array),
                    keep_alive=True) as pool:
        assert pool.map(tasks.use_sync, range(8), chunk_size=1) == [False] * 8
        event.set()
        assert pool.apply(tasks.use_sync, (9,)) is True
        # A replacement worker gets them too.
        victim = next(iter(pool.statistics()["worker_pids"].values()))
        os.kill(victim, 9)
        deadline = time.monotonic() + 20
        while victim in pool.statistics()["worker_pids"].values() or pool.statistics()["live_workers"] < 2:
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.05)
        assert pool.map(tasks.use_sync, range(4), chunk_size=1) == [True] * 4
    assert value.value == 13
    assert list(array) == [0, 1, 2, 3]


def test_manager_proxies_in_shared_objects_under_spawn():
    import multiprocessing

    with multiprocessing.get_context("spawn").Manager() as manager:
        shared = manager.dict()
        with WorkerPool(2, start_method="spawn", shared_objects=shared) as pool:
            assert sorted(pool.map(tasks.proxy_put, range(5))) == list(range(5))
        assert dict(shared) == {i: i * i for i in range(5)}


# ---------------------------------------------------------------- hooks and their errors
def test_worker_init_error_is_caught_as_its_own_type(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(ValueError) as info:  # MPIRE code: except ValueError
            pool.map(tasks.square, range(4), worker_init=tasks.raise_value_error)
        assert isinstance(info.value, WorkerInitError)
        assert isinstance(info.value.__cause__, ValueError)
        with pytest.raises(ValueError):
            pool.apply(tasks.square, (2,), worker_init=tasks.raise_value_error)
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]  # the pool is still usable


def test_worker_exit_error_is_caught_as_its_own_type(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(ValueError) as info:
            pool.map(tasks.square, range(4), worker_exit=tasks.raise_value_error)
        assert isinstance(info.value, WorkerExitError)


def test_init_and_exit_timeouts_are_timeout_errors_and_interrupt(start_method):
    with WorkerPool(2, start_method=start_method, timeout_grace=2.0) as pool:
        began = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            pool.map(tasks.square, range(4), worker_init=tasks.spin_init, worker_init_timeout=0.3)
        assert isinstance(info.value, WorkerInitError)
        assert "worker_init on worker" in str(info.value.__cause__)  # named by its hook, threads included
        with pytest.raises(TimeoutError) as info:
            pool.map(tasks.square, range(4), worker_exit=tasks.spin_exit, worker_exit_timeout=0.3)
        assert isinstance(info.value, WorkerExitError)
        assert "worker_exit on worker" in str(info.value.__cause__) or "worker_exit" in str(info.value)
        assert time.monotonic() - began < 25  # interrupted (three init attempts), not waited out


def test_get_exit_results(start_method):
    with WorkerPool(2, start_method=start_method, pass_worker_id=True) as pool:
        pool.map(tasks.with_id, range(4))
        assert pool.get_exit_results() == []  # no worker_exit: nothing, as in MPIRE
        pool.map(tasks.with_id, range(4), worker_exit=tasks.exit_value)
        assert sorted(pool.get_exit_results()) == [("bye", 0), ("bye", 1)]


# ---------------------------------------------------------------- timeouts that interrupt
def test_task_timeout_interrupts_the_task_and_the_worker_lives(start_method, tmp_path):
    with WorkerPool(1, start_method=start_method, timeout_grace=5.0) as pool:
        before = pool.apply(tasks.pid_and_thread)
        with pytest.raises(TimeoutError) as info:
            pool.apply(tasks.interrupted_task, (str(tmp_path), 30), task_timeout=0.3)
        assert isinstance(info.value, TaskTimeoutError) and not info.value.killed
        assert len(os.listdir(tmp_path)) == 1  # its finally block ran
        assert pool.apply(tasks.pid_and_thread) == before  # the same worker took the next task
        assert pool.statistics()["restarts"] == 0
        with pytest.raises(TimeoutError):  # in a map, the timeout aborts the call
            pool.map(tasks.interrupted_task, [(str(tmp_path), 0), (str(tmp_path), 30)], chunk_size=1,
                     task_timeout=0.3)


def test_a_task_stuck_past_the_grace_period_is_killed(start_method):
    with WorkerPool(1, start_method=start_method, timeout_grace=0.5) as pool:
        began = time.monotonic()
        with pytest.raises(TaskTimeoutError) as info:
            pool.apply(tasks.stubborn, (30,), task_timeout=0.2)
        assert time.monotonic() - began < 10
        assert info.value.killed  # a process is killed; a thread is let go and replaced
        assert pool.apply(tasks.square, (3,)) == 9


@pytest.mark.parametrize("start_method", PROCESS_METHODS)
def test_timeout_while_waiting_on_a_shared_event_leaves_the_event_usable(start_method):
    """The measured hang: killing a task inside Event.wait() broke event.set() in the parent."""
    import multiprocessing

    event = multiprocessing.get_context(start_method).Event()
    with WorkerPool(2, start_method=start_method, shared_objects=event) as pool:
        results = [pool.apply_async(tasks.wait_on_event, (60,), task_timeout=0.3) for _ in range(2)]
        for result in results:
            with pytest.raises(TaskTimeoutError):
                result.get(timeout=30)
        setter = threading.Thread(target=event.set, daemon=True)
        setter.start()
        setter.join(10)
        assert not setter.is_alive(), "event.set() blocked: the Event's condition was left broken"
        assert pool.map(tasks.wait_on_event, [(5,)] * 2) == [True, True]


def test_the_task_clock_starts_when_the_function_starts(start_method, tmp_path, monkeypatch):
    """Importing the task's module (slow, like numpy) is not the task's time."""
    module = tmp_path / "slow_import_mod.py"
    module.write_text("import time\ntime.sleep(0.6)\n\ndef quick(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import slow_import_mod

    with WorkerPool(1, start_method=start_method) as pool:
        assert pool.apply(slow_import_mod.quick, (1,), task_timeout=0.3) == 2
        assert pool.map(slow_import_mod.quick, [1, 2], task_timeout=0.3) == [2, 3]
    sys.modules.pop("slow_import_mod", None)


# ---------------------------------------------------------------- numpy input
def test_numpy_chunks_are_mpire_chunks():
    numpy = pytest.importorskip("numpy")
    mpire = pytest.importorskip("mpire")
    array = numpy.arange(66).reshape(33, 2)
    for options in ({}, {"chunk_size": 7}, {"n_splits": 3}, {"iterable_len": 10}):
        with WorkerPool(2) as ours, mpire.WorkerPool(2) as theirs:
            assert (ours.map(tasks.chunk_shape, array, concatenate_numpy_output=False, **options)
                    == theirs.map(tasks.chunk_shape, array, concatenate_numpy_output=False, **options)), options


def test_numpy_subclasses_are_sliced_as_arrays(tmp_path):
    """np.memmap and masked arrays are ndarrays to MPIRE (isinstance): sliced along axis 0, each slice one argument."""
    numpy = pytest.importorskip("numpy")
    mpire = pytest.importorskip("mpire")
    stored = numpy.memmap(tmp_path / "rows.dat", dtype="float64", mode="w+", shape=(20, 2))
    stored[:] = numpy.arange(40).reshape(20, 2)
    masked = numpy.ma.masked_array(numpy.arange(40).reshape(20, 2))
    for array in (stored, masked):
        with WorkerPool(2) as ours, mpire.WorkerPool(2) as theirs:
            mine = ours.map(tasks.chunk_shape, array, chunk_size=3, concatenate_numpy_output=False)
            assert mine == theirs.map(tasks.chunk_shape, array, chunk_size=3, concatenate_numpy_output=False)
            assert mine[0] == (3, 2)
            assert (ours.map(tasks.double, array) == numpy.asarray(array) * 2).all()


def test_numpy_map_imap_and_concatenation(start_method, capsys):
    numpy = pytest.importorskip("numpy")
    array = numpy.arange(40).reshape(20, 2)
    with WorkerPool(2, start_method=start_method, keep_alive=True) as pool:
        joined = pool.map(tasks.double, array, progress_bar=True)
        assert isinstance(joined, numpy.ndarray) and (joined == array * 2).all()
        parts = pool.map(tasks.double, array, concatenate_numpy_output=False, chunk_size=5)
        assert [p.shape for p in parts] == [(5, 2)] * 4
        assert [p.shape for p in pool.imap(tasks.double, array, chunk_size=8)] == [(8, 2), (8, 2), (4, 2)]
    assert "20/20" in capsys.readouterr().err  # the bar counts rows, not chunks


# ---------------------------------------------------------------- progress bar styles
def test_progress_bar_styles(capsys):
    with WorkerPool(2) as pool:
        pool.map(tasks.square, range(10), progress_bar=True, progress_bar_style="dashboard")
        assert capsys.readouterr().err == ""  # the dashboard style prints nothing in the terminal
        pool.map(tasks.square, range(10), progress_bar=True, progress_bar_style="std")
        assert "10/10" in capsys.readouterr().err
        with pytest.raises(ValueError, match="progress_bar_style"):
            pool.map(tasks.square, range(10), progress_bar=True, progress_bar_style="fancy")


# ---------------------------------------------------------------- threading specifics
def test_threading_refuses_process_killing_chaos():
    with pytest.raises(ChaosSpecError, match="sigkill"):
        WorkerPool(2, start_method="threading", chaos="task.start[task=1]=sigkill")
    with WorkerPool(2, start_method="threading", chaos="task.start[task=1]=1*raise(KeyError)->off") as pool:
        with pytest.raises(KeyError):
            pool.map(tasks.square, range(4), chunk_size=1)
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]
        assert [entry.action for entry in pool.chaos_journal()] == ["raise(KeyError)"]


def test_sys_exit_in_a_thread_is_a_worker_death():
    with WorkerPool(2, start_method="threading") as pool:
        doomed = pool.apply_async(tasks.exit_now, (4,))
        others = [pool.apply_async(tasks.square, (i,)) for i in range(6)]
        with pytest.raises(WorkerDiedError) as info:
            doomed.get(timeout=30)
        assert info.value.exitcode == 4
        assert [r.get(timeout=30) for r in others] == [i * i for i in range(6)]
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_threading_rejects_a_memory_limit():
    with pytest.raises(ValueError, match="max_worker_memory"):
        WorkerPool(2, start_method="threading", max_worker_memory=2**30)


def test_insights_under_threading():
    with WorkerPool(2, start_method="threading", enable_insights=True) as pool:
        pool.map(tasks.square, range(20))
        insights = pool.get_insights()
    assert sum(insights["n_completed_tasks"]) == 20


# ---------------------------------------------------------------- a pool that cannot start
def test_a_pool_that_cannot_start_workers_raises_the_start_error():
    """Inside a daemonic worker, a nested pool's process start fails: the caller gets that error."""
    with WorkerPool(1) as pool:
        with pytest.raises(AssertionError, match="daemonic"):
            pool.apply(tasks.maybe_nested_pool, (0,))
        assert pool.apply(tasks.square, (3,)) == 9


def test_the_start_error_reaches_the_caller_and_the_pool_stays_closable(monkeypatch):
    import multiprocessing.process

    def refuse(self):
        raise AssertionError("daemonic processes are not allowed to have children")

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
    pool = WorkerPool(2)
    with pytest.raises(AssertionError, match="daemonic"):
        pool.map(tasks.square, range(4))
    with pytest.raises(AssertionError):
        pool.apply(tasks.square, (2,))
    began = time.monotonic()
    pool.terminate()
    assert time.monotonic() - began < 10


# ---------------------------------------------------------------- input checks
@pytest.mark.parametrize("bad", [float("nan"), -1, 0])
def test_bad_timeouts_are_refused(bad):
    with WorkerPool(1) as pool:
        with pytest.raises(ValueError, match="task_timeout"):
            pool.apply(tasks.square, (1,), task_timeout=bad)
    with pytest.raises(ValueError, match="timeout_grace"):
        WorkerPool(1, timeout_grace=bad)


def test_absurd_n_jobs_is_a_clear_error():
    with pytest.raises(ValueError, match="n_jobs"):
        WorkerPool(2**62)


def test_mpires_private_worker_list_kills_one_worker():
    """MPIRE's own tests kill a worker with ``pool._workers[0].terminate()``: only its task fails."""
    import threading

    with WorkerPool(n_jobs=2, pass_worker_id=True, start_method="fork") as pool:
        events = [pool.ctx.Event() for _ in range(2)]

        def kill() -> None:
            if events[0].wait(30):
                pool._workers[0].terminate()

        killer = threading.Thread(target=kill, daemon=True)
        killer.start()
        pool.set_shared_objects(events)
        futures = [pool.apply_async(tasks.zero_spins_others_square, args=(x,)) for x in range(100)]
        for future in futures:
            future.wait(60)
        assert [future.successful() for future in futures].count(False) == 1
        killer.join(5)
