"""mpire_fault.ProcessPoolExecutor: the stdlib executor's API, with a death failing only its own future."""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import gc
import multiprocessing
import os
import pickle
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

import mpire_fault
from mpire_fault import ExecutorWorkerDiedError, ProcessPoolExecutor, WorkerDiedError, WorkerInitError

from . import futures_tasks as tasks

pytestmark = pytest.mark.timeout(60)
DEATHS = ["sigkill", "os_exit", "sys_exit"]


def _outcome(call):
    """A value, or the exception's type and text: what a caller of either executor sees."""
    try:
        return ("value", call())
    except Exception as exc:  # noqa: BLE001 - the error is the outcome
        return ("error", type(exc).__name__, str(exc))


def _program(executor_cls) -> list:
    """One ordinary concurrent.futures program; every step deterministic."""
    fork = multiprocessing.get_context("fork")
    out = [
        _outcome(lambda: executor_cls(max_workers=0)),
        _outcome(lambda: executor_cls(-1)),
        _outcome(lambda: executor_cls(1, initializer=3)),
        _outcome(lambda: executor_cls(1, mp_context=fork, max_tasks_per_child=2)),
        _outcome(lambda: executor_cls(1, mp_context=fork, max_tasks_per_child=0)),
        _outcome(lambda: executor_cls(1, mp_context=fork, max_tasks_per_child="2")),
    ]
    with executor_cls(2, mp_context=fork, initializer=tasks.init, initargs=("yes",)) as ex:
        # arguments exactly as given: a tuple stays one argument, keywords stay keywords
        out.append(ex.submit(tasks.echo, (1, 2), {"k": 1}, key=[3]).result())
        out.append(ex.submit(tasks.add, 1, b=2).result())
        out.append(_outcome(lambda: ex.submit(tasks.fail, "boom").result()))
        out.append(_outcome(lambda: ex.submit(lambda: 1).result()))  # a lambda will not pickle, on both
        out.append(ex.submit(tasks.init_status).result()[0])
        # map: zipped (shortest wins), every item type passed whole, in order, chunked or not
        items = [(1, 2), {"a": 1}, "ab", None, b"x", [3], 7]
        for chunksize in (1, 3):
            out.append(list(ex.map(tasks.echo, items, range(100), chunksize=chunksize)))
            out.append(list(ex.map(tasks.add, range(5), range(10, 20), chunksize=chunksize)))
            # an item that raises: the items before it come out, then its error
            seen: list = []
            out.append(_outcome(lambda seen=seen, chunksize=chunksize: seen.extend(
                ex.map(tasks.fail_at, range(6), [4] * 6, chunksize=chunksize))))
            out.append(seen)
        out.append(_outcome(lambda: ex.map(tasks.add, [1], chunksize=0)))
        out.append(_outcome(lambda: list(ex.map(tasks.sleep, [1.0], timeout=0.2))))
        out.append(list(ex.map(tasks.add, [])))
    out.append(_outcome(lambda: ex.submit(tasks.add, 1)))
    return out


def test_same_program_same_results_as_the_stdlib():
    ours, theirs = _program(ProcessPoolExecutor), _program(cf.ProcessPoolExecutor)
    # a lambda's PicklingError names where it came from; the type is what callers catch
    for got in (ours, theirs):
        for i, step in enumerate(got):
            if isinstance(step, tuple) and step[:2] == ("error", "PicklingError"):
                got[i] = step[:2]
    assert ours == theirs
    assert ("error", "ValueError", "max_workers must be greater than 0") in ours
    assert ("error", "RuntimeError", "cannot schedule new futures after shutdown") == ours[-1]


def test_futures_work_with_wait_as_completed_and_asyncio():
    with ProcessPoolExecutor(2) as ex:
        fs = [ex.submit(tasks.sleep, s) for s in (0.3, 0.0, 0.1)]
        done, not_done = cf.wait(fs, timeout=10, return_when=cf.FIRST_COMPLETED)
        assert done and fs[1] in done | not_done
        assert sorted(f.result() for f in cf.as_completed(fs, timeout=10)) == [0.0, 0.1, 0.3]
        seen = []
        future = ex.submit(tasks.add, 2, 3)
        future.add_done_callback(lambda f: seen.append(f.result()))
        assert future.result(timeout=10) == 5
        wait_until = time.monotonic() + 5
        while not seen and time.monotonic() < wait_until:
            time.sleep(0.01)
        assert seen == [5]

        async def main():
            loop = asyncio.get_running_loop()
            return await asyncio.gather(*(loop.run_in_executor(ex, tasks.add, i, i) for i in range(5)))

        assert asyncio.run(main()) == [0, 2, 4, 6, 8]


def test_cancel_a_waiting_future_and_shutdown_cancel_futures(tmp_path):
    gate = str(tmp_path / "gate")
    ex = ProcessPoolExecutor(1)
    try:
        blocker = ex.submit(tasks.wait_for_file, gate)
        backlog = [ex.submit(tasks.add, i) for i in range(40)]  # more than the window: the tail waits
        assert backlog[-1].cancel() and backlog[-1].cancelled()
        assert not blocker.cancel()  # running: too late, as in the stdlib
        ex.shutdown(wait=False, cancel_futures=True)
        with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
            ex.submit(tasks.add, 1)
        open(gate, "w").close()
        assert blocker.result(timeout=10) is True
        cancelled = [f for f in backlog if f.cancelled()]
        assert len(cancelled) >= 30
        for f in backlog:
            if not f.cancelled():
                assert f.result(timeout=10) == backlog.index(f)
        done, _ = cf.wait(backlog, timeout=1)  # cancelled futures count as done for wait()
        assert len(done) == len(backlog)
    finally:
        ex.shutdown(wait=True)


@pytest.mark.parametrize("how", DEATHS)
def test_a_death_fails_only_its_future(how, tmp_path):
    markers = str(tmp_path)
    with ProcessPoolExecutor(2) as ex:
        fs = [ex.submit(tasks.marked, markers, i, how if i == 3 else None, 0.05) for i in range(8)]
        with pytest.raises(BrokenProcessPool) as caught:
            fs[3].result(timeout=30)
        error = caught.value
        assert isinstance(error, ExecutorWorkerDiedError)
        assert isinstance(error, WorkerDiedError) and isinstance(error, cf.process.BrokenProcessPool)
        assert error.exitcode == {"sigkill": -9, "os_exit": 7, "sys_exit": 3}[how]
        assert "marked" in str(error)
        assert [f.result(timeout=30) for i, f in enumerate(fs) if i != 3] == [0, 1, 2, 4, 5, 6, 7]
        assert tasks.started(markers) == {i: 1 for i in range(8)}  # exactly once, the dead one included
        # the executor goes on: the worker was replaced
        assert ex.submit(tasks.add, 20, 22).result(timeout=30) == 42
        stats = ex.statistics()
        assert len(stats.deaths) == 1 and stats.restarts == 1 and stats.live_workers == 2
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is ExecutorWorkerDiedError and clone.exitcode == error.exitcode


def test_a_death_in_map_raises_at_its_item_and_the_executor_goes_on(tmp_path):
    markers = str(tmp_path)
    with ProcessPoolExecutor(2) as ex:
        results = ex.map(tasks.marked, [markers] * 6, range(6), ["none"] * 3 + ["sigkill"] + ["none"] * 2)
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ExecutorWorkerDiedError):
            next(results)
        assert list(ex.map(tasks.add, range(4), range(4), chunksize=2)) == [0, 2, 4, 6]
    assert tasks.started(markers)[3] == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["an item raises", "the caller stops reading"])
def test_a_map_that_failed_or_was_left_stops_its_running_items(tmp_path, how):
    """The stdlib cancels only the items not started; here the running ones stop too, and nothing is a death."""
    markers, n = str(tmp_path), 8
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as ex:
        results = ex.map(tasks.start_sleep_end, [markers] * n, range(n), [0.0] + [3.0] * (n - 1),
                         [how == "an item raises"] + [False] * (n - 1))
        if how == "an item raises":
            with pytest.raises(ValueError, match="item 0 raised"):
                next(results)
        else:
            assert next(results) == 0
            results.close()
        stopped_at = time.monotonic()
        assert ex.submit(tasks.add, 1, 2).result(timeout=30) == 3  # the executor goes on
        time.sleep(max(0.0, stopped_at + 3.5 - time.monotonic()))  # past the end of any item left running
        names = os.listdir(markers)
        assert not [name for name in names if name.startswith("end.") and name != "end.0"], names
        assert len([name for name in names if name.startswith("start.")]) <= 4, names  # the rest never started
        stats = ex.statistics()
        assert stats.deaths == () and stats.live_workers == 2


def test_a_shutdown_starts_no_worker_only_to_stop_it(tmp_path, monkeypatch):
    """A failed map kills its running items' workers; a shutdown right after must not replace them first.

    The engine used to start both replacements and then wait for them to
    start up only to stop them: seconds on a loaded machine, and the kit's
    no-orphans grading saw them outlive the close. No worker may start
    while a graceful stop of every worker is the next thing queued.
    """
    from mpire_fault._engine import supervisor as engine
    from mpire_fault._engine.jobs import Barrier

    wrong, spawn = [], engine.Supervisor.spawn

    def watched_spawn(self, slot, close_fds):
        # the first thing queued that is still to do (the stopped items of the map are answered already)
        head = next((e for e in self.state.pending if isinstance(e, Barrier) or not e.job.done), None)
        if isinstance(head, Barrier) and not head.keep_workers:
            wrong.append(slot.worker_id)
        return spawn(self, slot, close_fds)

    monkeypatch.setattr(engine.Supervisor, "spawn", watched_spawn)
    fork = multiprocessing.get_context("fork")
    for _ in range(5):  # the replacements raced the shutdown in about half the runs before the fix
        ex = ProcessPoolExecutor(2, mp_context=fork)
        with pytest.raises(ExecutorWorkerDiedError):
            list(ex.map(tasks.marked, [str(tmp_path)] * 4, range(4), ["none", "os_exit", "none", "none"],
                        [0.3] * 4))
        ex.shutdown(wait=True)
    assert wrong == []


def test_spawn_context_initializer_and_max_tasks_per_child():
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=tasks.init, initargs=("spawned",),
                             max_tasks_per_child=2) as ex:
        statuses = [ex.submit(tasks.init_status).result(timeout=30) for _ in range(4)]
    assert {status for status, _ in statuses} == {"spawned"}
    pids = [pid for _, pid in statuses]
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[1] != pids[2]  # a fresh worker every 2 tasks
    assert ProcessPoolExecutor(1, max_tasks_per_child=3)._mp_context.get_start_method() == "spawn"


def test_a_failing_initializer_is_also_a_broken_process_pool():
    with ProcessPoolExecutor(1, initializer=tasks.init_fail) as ex:
        with pytest.raises(BrokenProcessPool) as caught:
            ex.submit(tasks.add, 1).result(timeout=30)
        assert isinstance(caught.value, WorkerInitError) and isinstance(caught.value, ValueError)


def test_a_dropped_executor_still_finishes_its_futures():
    future = ProcessPoolExecutor(1).submit(tasks.sleep, 0.2)
    gc.collect()
    assert future.result(timeout=30) == 0.2
    # its shutdown thread stops the workers (the no-orphans fixture checks they are gone)
    deadline = time.monotonic() + 10
    while any(t.name == "mpire_fault-executor-shutdown" for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_public_names():
    assert mpire_fault.ProcessPoolExecutor is ProcessPoolExecutor
    assert issubclass(ExecutorWorkerDiedError, (WorkerDiedError, BrokenProcessPool))
    assert os.path.basename(mpire_fault.futures.__file__) == "futures.py"
