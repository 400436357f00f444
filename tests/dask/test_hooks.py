"""worker_init/worker_exit, worker state, worker ids, shared objects; owning and not owning the cluster."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("distributed")

import dask_tasks as tasks  # noqa: E402  (tests/dask is not a package: a package named "dask" would shadow the real one)

from mpire_fault import WorkerDiedError, WorkerInitError  # noqa: E402
from mpire_fault.dask_backend import DaskPool  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def test_init_and_exit_hooks_with_worker_state(dask_client):
    """worker_init runs once per worker process before its first task; worker_exit's values are collected."""
    pool = DaskPool(address=dask_client, use_worker_state=True)
    pids = pool.map(tasks.count_in_state, range(40), chunk_size=1,
                    worker_init=tasks.init_state, worker_exit=tasks.exit_state)
    exits = pool.get_exit_results()
    assert exits, "worker_exit ran nowhere"
    assert {pid for pid, _ in exits} == set(pids)
    assert sum(count for _, count in exits) == 40  # every item was counted by the state of its own worker


def test_apply_hooks_run_at_stop_and_join(dask_client):
    pool = DaskPool(address=dask_client, use_worker_state=True)
    results = [pool.apply_async(tasks.count_in_state, (i,), worker_init=tasks.init_state,
                                worker_exit=tasks.exit_state) for i in range(6)]
    pids = {result.get(20) for result in results}
    pool.stop_and_join()
    exits = pool.get_exit_results()
    assert {pid for pid, _ in exits} == pids
    assert sum(count for _, count in exits) == 6


def test_worker_init_that_raises_fails_the_call(dask_client):
    pool = DaskPool(address=dask_client)
    with pytest.raises(WorkerInitError) as info:
        pool.map(tasks.square, range(4), worker_init=tasks.failing_init)
    assert isinstance(info.value.__cause__, KeyError)
    assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]


def test_pass_worker_id(dask_client):
    pool = DaskPool(address=dask_client, pass_worker_id=True)
    pairs = pool.map(tasks.with_worker_id, range(30), chunk_size=1)
    assert [x for _, x in pairs] == list(range(30))
    assert {worker_id for worker_id, _ in pairs} <= {0, 1}


def test_worker_id_is_kept_by_a_replacement(dask_client, markers):
    pool = DaskPool(address=dask_client, pass_worker_id=True)
    _ = pool.client  # connect, so statistics() sees the cluster
    slots = set(pool.statistics()["worker_pids"])
    with pytest.raises(WorkerDiedError) as info:
        pool.apply(tasks.die_with_id)
    assert slots == {0, 1} and info.value.worker_id in slots
    ids = {worker_id for worker_id, _ in pool.map(tasks.with_worker_id, range(20), chunk_size=1)}
    assert ids <= {0, 1}


def test_shared_objects_are_scattered_once(dask_client):
    shared = {"big": list(range(100_000))}
    pool = DaskPool(address=dask_client, shared_objects=shared)
    assert pool.map(tasks.use_shared, ["big"] * 10, chunk_size=1) == [100_000] * 10
    first = pool._shared_future
    assert pool.apply(tasks.use_shared, ("big",)) == 100_000
    assert pool._shared_future is first  # the same scattered copy serves every call
    assert dask_client.who_has([first])[first.key], "the shared objects are not on the workers"


def test_owned_cluster_is_closed_with_the_pool():
    """address=None: the pool starts its own LocalCluster and leaves no process behind (no_orphans checks)."""
    with DaskPool(n_jobs=2) as pool:
        assert pool.map(tasks.square, range(8)) == [x * x for x in range(8)]
        assert pool.statistics()["live_workers"] == 2


def test_import_error_without_distributed():
    code = ("import sys; sys.modules['distributed'] = None\n"
            "from mpire_fault.dask_backend import DaskPool\n"
            "try:\n    DaskPool()\nexcept ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install mpire_fault[dask]" in out.stdout, out.stderr
