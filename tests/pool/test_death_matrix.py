"""The crash matrix of docs/guarantees.md §4, kept as data: every way of dying × every mode.

Each row of ``DEATHS`` is one way a worker can end (or misbehave) while it
owns a task, at one of the places a task passes through in the worker:
unpickling its arguments, running, pickling its result. Each death is run in
``apply`` mode (only that task fails, every other task succeeds, the pool
recovers to ``n_jobs`` live workers) and in the two map modes (the call
aborts promptly with the right error, the next call works). In every mode
marker files prove that no task ran twice and, for apply, that none was
lost. As in loky's ``test_reusable_executor.py`` crash tables, the matrix is
stamped out per start method.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pytest

from mpire_fault import TaskTimeoutError, WorkerDiedError, WorkerPool

from . import observe, tasks
from .observe import runs, wait_recovered
from .tasks import ArgsBomb, BoundaryError

N_JOBS = 2
KILLER = 2  # the index of the task that misbehaves


@dataclass(frozen=True)
class Death:
    name: str
    site: str  # where in the worker: "args" (unpickling), "task" (running), "result" (pickling)
    action: str  # tasks._die action
    error: type  # what the killer's caller gets
    exitcode: int | None = None
    signal_name: str | None = None
    note: str | None = None  # boundary note of a serialization failure

    @property
    def body_runs(self) -> int:
        """How often the killer's own function starts (its arguments never unpickle for "args")."""
        return 0 if self.site == "args" else 1

    def task_args(self, directory: str, i: int, delay: float) -> tuple:
        if i != KILLER:
            return (directory, i, None, delay)
        if self.site == "args":
            return (directory, i, None, delay, ArgsBomb(self.action, i))
        if self.site == "result":
            return (directory, i, f"result:{self.action}", 0.0)
        return (directory, i, self.action, 0.0)


DEATHS = [
    Death("sys.exit(3)", "task", "exit3", WorkerDiedError, 3),
    Death("os._exit(0)", "task", "os_exit0", WorkerDiedError, 0),
    Death("os._exit(5)", "task", "os_exit5", WorkerDiedError, 5),
    Death("SIGKILL", "task", "sigkill", WorkerDiedError, -9, "SIGKILL"),
    Death("SIGSEGV", "task", "sigsegv", WorkerDiedError, -11, "SIGSEGV"),
    Death("raise at args unpickle", "args", "raise", BoundaryError, note="task-args"),
    Death("os._exit at args unpickle", "args", "os_exit7", WorkerDiedError, 7),
    Death("raise at result pickle", "result", "raise", BoundaryError, note="result"),
    Death("os._exit at result pickle", "result", "os_exit9", WorkerDiedError, 9),
    Death("hang past task_timeout", "task", "hang", TaskTimeoutError),
]
DEATH_IDS = [d.name for d in DEATHS]
TIMEOUT = 0.5  # task_timeout for the "hang" row


def check_error(exc: BaseException, death: Death, mode: str, directory: str) -> None:
    """The killer failed with the right error, naming the right task."""
    assert type(exc) is death.error, f"{death.name}: got {exc!r}"
    if death.error is WorkerDiedError:
        assert isinstance(exc, RuntimeError)
        assert exc.worker_id in range(N_JOBS)
        assert isinstance(exc.pid, int) and exc.pid > 0 and exc.pid != os.getpid()
        assert exc.exitcode == death.exitcode
        assert exc.signal_name == death.signal_name
        assert exc.oom is False
        assert len(exc.deaths) == 1
        if death.body_runs:  # the pid that touched the killer's marker is the one reported dead
            assert observe.marker_pids(directory, KILLER) == [exc.pid]
        assert str(exc.pid) in str(exc)
    if death.error in (WorkerDiedError, TaskTimeoutError):
        assert "work" in exc.task
        assert (f"#{KILLER} " if mode == "apply" else f"item {KILLER} ") in exc.task, exc.task
        assert exc.worker_id in range(N_JOBS)
    if death.error is TaskTimeoutError:
        assert isinstance(exc, TimeoutError) and exc.timeout == TIMEOUT
    if death.note:
        assert death.note in exc.__notes__
        assert f"item {KILLER} " in str(exc)


def run_apply(pool: WorkerPool, death: Death, directory: str) -> None:
    n_tasks = 8
    results = [
        pool.apply_async(tasks.work, death.task_args(directory, i, 0.05),
                         task_timeout=TIMEOUT if i == KILLER and death.action == "hang" else None)
        for i in range(n_tasks)
    ]
    for i, result in enumerate(results):
        if i == KILLER:
            with pytest.raises(BaseException) as info:
                result.get(timeout=30)
            check_error(info.value, death, "apply", directory)
            assert result.ready() and not result.successful()
        else:
            assert result.get(timeout=30) == i
    counts = runs(directory)
    assert counts[KILLER] == death.body_runs
    assert all(counts[i] == 1 for i in range(n_tasks) if i != KILLER), counts
    stats = wait_recovered(pool)
    assert stats["tasks_failed"] >= 1
    # The pool keeps working on the same workers' replacements.
    assert pool.map(tasks.square, range(6)) == [0, 1, 4, 9, 16, 25]


def run_map(pool: WorkerPool, death: Death, directory: str, mode: str) -> None:
    n_items = 40  # 2 s of work on 2 workers: an abort that waits for the rest is not "prompt"
    items = [death.task_args(directory, i, 0.1) for i in range(n_items)]
    timeout = TIMEOUT if death.action == "hang" else None
    seen = []
    began = time.monotonic()
    with pytest.raises(BaseException) as info:
        if mode == "map":
            seen = pool.map(tasks.work, items, chunk_size=1, task_timeout=timeout)
        else:
            for value in pool.imap_unordered(tasks.work, items, chunk_size=1, task_timeout=timeout):
                seen.append(value)
    elapsed = time.monotonic() - began
    check_error(info.value, death, "map", directory)
    assert KILLER not in seen and len(seen) == len(set(seen))
    counts = runs(directory)
    assert counts[KILLER] == death.body_runs
    assert max(counts.values(), default=1) == 1, f"an item ran twice: {counts}"
    assert sum(counts.values()) < n_items // 2, f"the call did not abort promptly: {sum(counts.values())} items ran"
    assert elapsed < 15
    # The next call on the same pool works, every item exactly once.
    again = os.path.join(directory, "again")
    os.mkdir(again)
    assert pool.map(tasks.work, [(again, i) for i in range(6)], chunk_size=1) == list(range(6))
    assert runs(again) == {i: 1 for i in range(6)}


def run_death(start_method: str, death: Death, mode: str, directory: str) -> None:
    with WorkerPool(N_JOBS, start_method=start_method) as pool:
        if mode == "apply":
            run_apply(pool, death, directory)
        else:
            run_map(pool, death, directory, mode)


@pytest.mark.parametrize("mode", ["apply_async", "map", "imap_unordered"])
@pytest.mark.parametrize("death", DEATHS, ids=DEATH_IDS)
def test_death_matrix(start_method, death, mode, markers):
    run_death(start_method, death, "apply" if mode == "apply_async" else mode, markers)


FORKSERVER_SUBSET = [d for d in DEATHS if d.action in ("sigkill", "os_exit7", "raise", "hang") and d.site != "result"]


@pytest.mark.parametrize("mode", ["apply", "map"])
@pytest.mark.parametrize("death", FORKSERVER_SUBSET, ids=[d.name for d in FORKSERVER_SUBSET])
def test_death_matrix_forkserver(death, mode, markers):
    run_death("forkserver", death, mode, markers)
