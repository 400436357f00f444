"""apply/apply_async on Dask: a death fails only the task that owned the worker, and only once."""
from __future__ import annotations

import pytest

pytest.importorskip("distributed")

from distributed.scheduler import KilledWorker  # noqa: E402

from mpire_fault import PoolTerminatedError, TaskTimeoutError, WorkerDiedError  # noqa: E402
from mpire_fault.dask_backend import DaskPool  # noqa: E402

import tasks  # noqa: E402  (tests/dask is not a package: a package named "dask" would shadow the real one)

pytestmark = pytest.mark.timeout(60)

BEHAVIOUR = {2: "exit", 5: "raise", 7: "sigkill"}


def test_origin_case(dask_client, markers):
    """Ten tasks; one sys.exits, one raises, one SIGKILLs its worker: exactly those three fail, each task ran once."""
    pool = DaskPool(address=dask_client)
    results = [pool.apply_async(tasks.behave, (markers, i, BEHAVIOUR.get(i, "ok"))) for i in range(10)]
    outcomes = {}
    for i, result in enumerate(results):
        result.wait(30)
        assert result.ready(), f"task {i} never resolved"
        try:
            outcomes[i] = result.get(0)
        except BaseException as exc:  # noqa: BLE001 - the test sorts them out below
            outcomes[i] = exc
    for i in range(10):
        assert tasks.runs(markers, f"task{i}") <= 1, f"task {i} ran more than once"
    for i in (0, 1, 3, 4, 6, 8, 9):
        assert outcomes[i] == i * i
        assert results[i].successful()
        assert tasks.runs(markers, f"task{i}") == 1
    assert isinstance(outcomes[5], ValueError)
    assert "task 5 raised" in str(outcomes[5])
    assert "Traceback" in str(outcomes[5].__cause__)
    for i, exitcode in ((2, 1), (7, -9)):
        died = outcomes[i]
        assert isinstance(died, WorkerDiedError), repr(died)
        assert died.exitcode == exitcode
        assert died.worker_id in (0, 1)
        assert "tcp://127.0.0.1:" in str(died)
        assert f"apply task {i}" in str(died)
        assert isinstance(died.__cause__, KilledWorker)
        assert not results[i].successful()
    # still usable afterwards, on the replaced workers
    assert pool.apply(tasks.square, (4,)) == 16
    assert pool.map(tasks.square, range(6)) == [0, 1, 4, 9, 16, 25]
    stats = pool.statistics()
    assert stats["tasks_failed"] == 3
    assert {death["exitcode"] for death in stats["deaths"]} >= {1, -9}
    pool.stop_and_join()


def test_retries_rerun_a_killed_task(dask_client, markers):
    """max_task_retries=1: the task that killed its worker runs once more (and dies again: two deaths)."""
    pool = DaskPool(address=dask_client, max_task_retries=1)
    with pytest.raises(WorkerDiedError) as info:
        pool.apply(tasks.behave, (markers, 0, "sigkill", 0.0))
    assert tasks.runs(markers, "task0") == 2
    assert len(info.value.deaths) == 2
    assert pool.apply(tasks.square, (3,)) == 9


def test_callbacks(dask_client, markers):
    pool = DaskPool(address=dask_client)
    seen, errors = [], []
    pool.apply_async(tasks.square, (5,), callback=seen.append)
    pool.apply_async(tasks.behave, (markers, 1, "raise", 0.0), error_callback=errors.append)
    pool.stop_and_join()
    assert seen == [25]
    assert len(errors) == 1 and isinstance(errors[0], ValueError)


def test_timeout_raised_inside_the_task(dask_client, markers):
    """The timeout is raised inside the task (its finally runs), the worker lives on."""
    pool = DaskPool(address=dask_client)
    pool.client  # connect, so statistics() sees the cluster
    deaths = len(pool.statistics()["deaths"])
    with pytest.raises(TaskTimeoutError) as info:
        pool.apply(tasks.spin_forever, (markers,), task_timeout=0.5)
    assert info.value.timeout == 0.5
    assert tasks.runs(markers, "finally") == 1
    assert len(pool.statistics()["deaths"]) == deaths
    assert pool.apply(tasks.square, (2,)) == 4


def test_timeout_kills_a_task_that_cannot_be_interrupted(dask_client):
    """A task blocked in C is killed after the grace period; the caller still gets TaskTimeoutError."""
    pool = DaskPool(address=dask_client)
    with pytest.raises(TaskTimeoutError):
        pool.apply(tasks.block, (30,), task_timeout=0.5)
    assert pool.apply(tasks.square, (7,)) == 49


def test_unpicklable_arguments_fail_that_task_only(dask_client):
    pool = DaskPool(address=dask_client)
    result = pool.apply_async(tasks.square, (_Unpicklable(),))
    with pytest.raises(TypeError) as info:
        result.get(10)
    assert "task-args" in getattr(info.value, "__notes__", [])
    assert pool.apply(tasks.square, (3,)) == 9


class _Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle this")


def test_terminate_answers_pending_tasks(dask_client):
    pool = DaskPool(address=dask_client)
    pending = [pool.apply_async(tasks.block, (5,)) for _ in range(4)]
    pool.terminate()
    for result in pending:
        result.wait(5)
        assert result.ready()
        if not result.successful():
            with pytest.raises(PoolTerminatedError):
                result.get(0)
