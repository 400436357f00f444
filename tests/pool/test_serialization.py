"""Errors at the four serialization boundaries, task exceptions, and payloads over 4 MiB.

The boundary cases follow CPython's ``test_concurrent_futures/test_deadlock.py``
(error / exit / crash at each pickling step, in the worker and in the parent)
and loky's crash tests: each must fail the one task it concerns with a clear
error, never hang or break the pool.
"""
from __future__ import annotations

import os
import pickle
import time
import traceback

import pytest

from mpire_fault import RemoteTraceback, TaskTimeoutError, WorkerDiedError, WorkerPool

from . import observe, tasks
from .observe import runs, wait_recovered
from .tasks import ArgsBomb, BoundaryError, ParentArgsBomb, TaskError

# ---------------------------------------------------------------------------
# A task's own exception


def test_task_exception_keeps_type_with_remote_traceback(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(TaskError, match="task 7 failed on purpose") as info:
            pool.apply_async(tasks.raise_task_error, (7,)).get(timeout=30)
        cause = info.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert "raise_task_error" in cause.tb and "TaskError" in cause.tb
        assert "raise_task_error" in "".join(traceback.format_exception(info.value))

        with pytest.raises(TaskError, match="task 3 failed") as info:
            pool.map(tasks.raise_task_error, [3])
        assert isinstance(info.value.__cause__, RemoteTraceback)
        # A task error is not a death: nobody was restarted.
        stats = pool.statistics()
        assert stats["deaths"] == () and stats["restarts"] == 0
        assert pool.apply(tasks.square, (4,)) == 16


# ---------------------------------------------------------------------------
# Boundaries in the worker: (where, action) -> expected outcome, as data

WORKER_BOUNDARIES = [
    # (name, build the apply args, expected error type, exitcode or note)
    ("error at args unpickle", "args", "raise", BoundaryError, "task-args"),
    ("sys.exit at args unpickle", "args", "exit4", WorkerDiedError, 4),
    ("crash at args unpickle", "args", "sigsegv", WorkerDiedError, -11),
    ("error at result pickle", "result", "raise", BoundaryError, "result"),
    ("sys.exit at result pickle", "result", "exit6", WorkerDiedError, 6),
    ("crash at result pickle", "result", "sigkill", WorkerDiedError, -9),
    ("hang at args unpickle", "args", "hang", TaskTimeoutError, None),
    ("hang at result pickle", "result", "hang", TaskTimeoutError, None),
]


def _worker_boundary_args(directory: str, where: str, action: str) -> tuple:
    if where == "args":
        return (directory, 0, None, 0.0, ArgsBomb(action, 0))
    return (directory, 0, f"result:{action}")


@pytest.mark.parametrize("name,where,action,error,detail", WORKER_BOUNDARIES, ids=[b[0] for b in WORKER_BOUNDARIES])
def test_worker_side_boundary_fails_that_task_only(start_method, markers, name, where, action, error, detail):
    # Unpickling and pickling are not the task's time, but a hang there still
    # ends: after task_timeout plus the grace period, the worker is killed.
    timeout = 0.5 if error is TaskTimeoutError else None
    with WorkerPool(2, start_method=start_method, timeout_grace=1.0) as pool:
        bad = pool.apply_async(tasks.work, _worker_boundary_args(markers, where, action), task_timeout=timeout)
        good = [pool.apply_async(tasks.square, (i,)) for i in range(5)]
        with pytest.raises(error) as info:
            bad.get(timeout=30)
        if error is WorkerDiedError:
            assert info.value.exitcode == detail
            assert "#0 " in info.value.task
        elif error is TaskTimeoutError:
            assert "#0 " in info.value.task and info.value.timeout == timeout
        else:
            assert detail in info.value.__notes__
        assert [r.get(timeout=30) for r in good] == [0, 1, 4, 9, 16]
        assert runs(markers)[0] == (0 if where == "args" else 1)
        wait_recovered(pool)
        # The same boundary failing inside a map aborts the call with the same error.
        with pytest.raises(error):
            pool.map(tasks.work, [(markers, 1), _worker_boundary_args(markers, where, action), (markers, 2)],
                     chunk_size=1, task_timeout=timeout)
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]


def test_unpicklable_exception_from_a_task(start_method):
    """An exception with an attribute that cannot cross back keeps its type; the attribute is dropped, with a note."""
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(tasks.UnpicklableError, match="unpicklable error 1") as info:
            pool.apply_async(tasks.raise_unpicklable, (1,)).get(timeout=30)
        assert isinstance(info.value.__cause__, RemoteTraceback)
        assert "raise_unpicklable" in info.value.__cause__.tb
        assert not hasattr(info.value, "lock")
        assert any("'lock'" in note for note in info.value.__notes__)
        with pytest.raises(tasks.UnpicklableError, match="unpicklable error 2"):
            pool.map(tasks.raise_unpicklable, [2])
        assert pool.statistics()["deaths"] == ()
        assert pool.apply(tasks.square, (3,)) == 9


# ---------------------------------------------------------------------------
# Boundaries in the parent


def test_unpicklable_args_fail_that_task_with_note(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        before = pool.apply_async(tasks.square, (3,))
        bad = pool.apply_async(tasks.quick, (lambda: 1,))
        after = pool.apply_async(tasks.square, (5,))
        with pytest.raises((pickle.PicklingError, AttributeError, TypeError)) as info:
            bad.get(timeout=30)
        assert "task-args" in info.value.__notes__
        assert before.get(timeout=30) == 9 and after.get(timeout=30) == 25
        # An unpicklable function is the same boundary.
        with pytest.raises(Exception) as info:
            pool.apply_async(lambda: 1).get(timeout=30)
        assert "task-args" in info.value.__notes__
        with pytest.raises(Exception) as info:
            pool.map(tasks.quick, [1, lambda: 2, 3], chunk_size=1)
        assert "task-args" in info.value.__notes__
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]
        assert pool.statistics()["deaths"] == ()


@pytest.mark.parametrize("action,error", [("raise", BoundaryError), ("exit", SystemExit)])
def test_parent_pickling_error_reaches_the_caller(start_method, action, error):
    """Even SystemExit raised in a ``__reduce__`` in the parent reaches the caller, not the supervisor."""
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(error) as info:
            pool.apply_async(tasks.quick, (ParentArgsBomb(action),)).get(timeout=30)
        assert "task-args" in info.value.__notes__
        with pytest.raises(error) as info:
            pool.map(tasks.quick, [1, ParentArgsBomb(action)], chunk_size=1)
        assert "task-args" in info.value.__notes__
        assert pool.apply(tasks.square, (6,)) == 36
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


@pytest.mark.parametrize("action,error", [("raise", BoundaryError), ("exit", SystemExit)])
def test_parent_unpickling_error_of_result(start_method, markers, action, error):
    with WorkerPool(2, start_method=start_method) as pool:
        bad = pool.apply_async(tasks.work, (markers, 0, f"parent:{action}"))
        good = pool.apply_async(tasks.square, (7,))
        with pytest.raises(error) as info:
            bad.get(timeout=30)
        assert "result" in info.value.__notes__
        assert good.get(timeout=30) == 49
        with pytest.raises(error) as info:
            pool.map(tasks.work, [(markers, 1), (markers, 2, f"parent:{action}")], chunk_size=1)
        assert "result" in info.value.__notes__
        # Nothing died, the supervisor kept going, the pool keeps working.
        assert pool.statistics()["deaths"] == ()
        assert pool.apply(tasks.square, (8,)) == 64
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


@pytest.mark.parametrize("with_callback", [False, True])
def test_slow_result_unpickling_does_not_stall_the_pool(start_method, markers, with_callback):
    """User code that runs while a result is unpickled in the parent must not hold up the supervisor.

    One result takes 3 s to unpickle; meanwhile another worker dies. Its
    WorkerDiedError must arrive as promptly as without the slow result.
    """
    seen: list = []
    with WorkerPool(2, start_method=start_method) as pool_:
        pool_.apply(tasks.square, (1,))
        wait_recovered(pool_)
        slow = pool_.apply_async(tasks.return_slow_to_load, (3.0, "slow"),
                                 callback=seen.append if with_callback else None)
        observe.wait_until(lambda: pool_.statistics()["tasks_completed"] >= 2, what="the slow result to arrive")
        began = time.monotonic()
        doomed = pool_.apply_async(tasks.work, (markers, 0, "sigkill"))
        with pytest.raises(WorkerDiedError):
            doomed.get(timeout=30)
        assert time.monotonic() - began < 2.0, "the death was noticed only after the slow unpickling"
        assert slow.get(timeout=30) == "slow"
        if with_callback:
            assert seen == ["slow"]


def test_use_dill_carries_lambdas_and_closures(start_method):
    offset = 10
    with WorkerPool(2, start_method=start_method, use_dill=True) as pool:
        assert pool.apply_async(lambda x: x + 1, (1,)).get(timeout=30) == 2
        assert pool.map(lambda x: x + offset, range(4)) == [10, 11, 12, 13]
        assert sorted(pool.imap_unordered(lambda x: (lambda: x * 2)(), range(3))) == [0, 2, 4]


# ---------------------------------------------------------------------------
# Payloads larger than a pipe buffer (64 KiB) and than 4 MiB

BIG = 6 * 2**20


def _blob(i: int) -> bytes:
    return bytes([i]) * BIG


def test_big_args_and_results(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        results = [pool.apply_async(tasks.echo_size, (_blob(i), i)) for i in range(3)]
        for i, result in enumerate(results):
            index, size, ends, back = result.get(timeout=60)
            assert (index, size, ends, len(back)) == (i, BIG, bytes([i]) * 32, BIG)
        out = pool.map(tasks.echo_size, [(_blob(i), i) for i in range(3)], chunk_size=1)
        assert [(o[0], o[1], len(o[3])) for o in out] == [(i, BIG, BIG) for i in range(3)]


def test_big_payloads_with_a_death(start_method):
    """A worker dies among tasks whose arguments and results are over 4 MiB each."""
    with WorkerPool(2, start_method=start_method) as pool:
        results = [pool.apply_async(tasks.echo_size, (_blob(i), i, "sigkill" if i == 1 else None)) for i in range(4)]
        with pytest.raises(WorkerDiedError) as info:
            results[1].get(timeout=60)
        assert info.value.exitcode == -9 and "#1 " in info.value.task
        for i in (0, 2, 3):
            assert results[i].get(timeout=60)[:2] == (i, BIG)
        wait_recovered(pool)
        with pytest.raises(WorkerDiedError):
            pool.map(tasks.echo_size, [(_blob(i), i, "os_exit3" if i == 2 else None) for i in range(4)],
                     chunk_size=1)
        assert [o[1] for o in pool.map(tasks.echo_size, [(_blob(5), 5)])] == [BIG]


def test_worker_dies_while_a_big_payload_is_being_written_to_it(markers):
    """The supervisor is halfway through writing 8 MiB into a worker's pipe when that worker dies.

    The partly written task was never started: it must go, whole, to the
    replacement (the writer must not block, and must not resume the old frame).
    """
    go = os.path.join(markers, "go")
    with WorkerPool(1, start_method="fork") as pool:
        # The supervisor queues a second task behind a running one only for
        # functions it has seen finish quickly: teach it that this one does.
        for _ in range(30):
            pool.apply(tasks.wait_for_file_then, (go,))
        killer = pool.apply_async(tasks.wait_for_file_then, (go, "sigkill"))
        big = pool.apply_async(tasks.echo_size, (bytes(8 * 2**20), 1))
        observe.wait_handed(pool, 2)
        with open(go, "w"):
            pass
        with pytest.raises(WorkerDiedError):
            killer.get(timeout=30)
        assert big.get(timeout=60)[:2] == (1, 8 * 2**20)
        assert pool.statistics()["tasks_requeued"] >= 1


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.25])  # building, pickling, sending (~0.25 s in all)
def test_worker_killed_around_sending_a_big_result(start_method, markers, delay):
    """A sibling SIGKILLs a worker at some point while it builds, pickles or sends 48 MiB.

    Whatever the moment, the task resolves once: with the whole value or with
    WorkerDiedError; the pool never hangs and keeps working.
    """
    size = 48 * 2**20
    with WorkerPool(2, start_method=start_method) as pool:
        for attempt in range(2):
            pid_file = os.path.join(markers, f"victim-{attempt}.pid")
            victim = pool.apply_async(tasks.pid_then_big_result, (pid_file, size))
            killer = pool.apply_async(tasks.kill_pid_from_file, (pid_file, delay))
            victim_pid = killer.get(timeout=30)
            try:
                value = victim.get(timeout=30)
            except WorkerDiedError as exc:
                assert exc.pid == victim_pid and exc.exitcode == -9
            else:
                assert len(value) == size and value[:1] == value[-1:] == b"\x07"
            # The kill may have hit the victim after it answered (an idle death): wait
            # until the pool has replaced it, so the next round starts with two workers.
            observe.wait_until(lambda gone=victim_pid: gone not in wait_recovered(pool)["worker_pids"].values(),
                             what="the victim's replacement")
        assert pool.apply(tasks.square, (3,)) == 9
