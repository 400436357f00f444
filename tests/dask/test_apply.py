"""apply/apply_async on Dask: a death fails only the task that owned the worker, and only once."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("distributed")

import dask_tasks as tasks  # noqa: E402  (tests/dask is not a package: a package named "dask" would shadow the real one)
from dask_origin import check_origin_case  # noqa: E402

from mpire_fault import PoolTerminatedError, TaskTimeoutError, WorkerDiedError  # noqa: E402
from mpire_fault.dask_backend import DaskPool  # noqa: E402
from mpire_fault.dask_backend.remote import TIMEOUT_GRACE  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def test_origin_case(dask_client, markers):
    """Ten tasks; one sys.exits, one raises, one SIGKILLs its worker: exactly those three fail, each task ran once."""
    check_origin_case(DaskPool(address=dask_client), markers)


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
    _ = pool.client  # connect, so statistics() sees the cluster
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


@pytest.mark.parametrize("grace", [0.2, 3.0])
def test_timeout_grace_sets_when_the_worker_is_killed(dask_client, grace):
    """timeout_grace is honoured on Dask as locally: the kill comes that long after the timeout, not after the
    default 2 s (with 0.2 s it comes well before 2 s; with 3 s not before 3 s)."""
    pool = DaskPool(address=dask_client, timeout_grace=grace)
    began = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        pool.apply(tasks.block, (30,), task_timeout=0.2)
    took = time.monotonic() - began
    if grace < 1:
        assert took < 0.2 + TIMEOUT_GRACE, f"answered after {took:.1f} s: the default grace was used"
    else:
        assert took >= 0.2 + grace, f"answered after {took:.1f} s, before the {grace} s grace ran out"
    assert pool.apply(tasks.square, (7,)) == 49


def test_timeout_grace_must_be_positive():
    with pytest.raises(ValueError, match="timeout_grace"):
        DaskPool(timeout_grace=0)


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


def test_terminate_ends_the_running_tasks_of_an_owned_cluster_now(markers):
    """terminate() stops now, as locally: the workers of the cluster the pool started are killed, not given
    the 4 s Dask's own close waits for a running task before it kills."""
    pool = DaskPool(1)
    pending = pool.apply_async(tasks.behave, (markers, 0, "ok", 60.0))
    deadline = time.monotonic() + 30
    while tasks.runs(markers, "task0") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    began = time.monotonic()
    pool.terminate()
    assert time.monotonic() - began < 3.0
    with pytest.raises(PoolTerminatedError):
        pending.get(0)


@pytest.mark.parametrize("env", [{}, {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "True"}], ids=["default", "set"])
def test_an_owned_cluster_runs_without_dask_profiler_unless_asked(markers, monkeypatch, env):
    """The workers of a cluster the pool starts, and their replacements, do not sample their threads every
    10 ms (Dask's profiler), unless the environment asks for it; a cluster the user passes is left alone."""
    import contextlib

    import dask

    key = "distributed.worker.profile.enabled"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Dask read its environment when it was imported: the variable's value is put in as it would have
    asked = dask.config.set({key: True}) if env else contextlib.nullcontext()
    with asked:
        with DaskPool(2) as pool:
            first = pool.client.run(tasks.dask_setting, key)
            assert set(first.values()) == {bool(env)}
            with pytest.raises(WorkerDiedError):
                pool.apply(tasks.behave, (markers, 0, "sigkill", 0.0))
            settled = time.monotonic() + 20
            while time.monotonic() < settled:
                workers = set(pool.client.scheduler_info()["workers"])
                if len(workers) == 2 and workers != set(first):
                    break
                time.sleep(0.05)
            assert set(pool.client.run(tasks.dask_setting, key).values()) == {bool(env)}
            assert set(pool.client.run(tasks.dask_setting, "distributed.admin.tick.interval").values()) == {"1s"}


def test_a_cluster_the_user_passes_keeps_dask_profiler(dask_client):
    assert set(dask_client.run(tasks.dask_setting, "distributed.worker.profile.enabled").values()) == {True}
    pool = DaskPool(address=dask_client)
    assert pool.apply(tasks.square, (3,)) == 9
    assert set(dask_client.run(tasks.dask_setting, "distributed.worker.profile.enabled").values()) == {True}
