"""The origin case against a cluster started from the command line: ``dask scheduler`` and two ``dask worker``.

The pool connects by address and must never shut that cluster down; the
module fixture starts the three commands as real subprocesses bound to
127.0.0.1 (each worker with its nanny, so dead workers are restarted) and
stops them at the end, leaving no process behind.
"""
from __future__ import annotations

import pytest

distributed = pytest.importorskip("distributed")

import dask_suite as conftest  # noqa: E402  (tests/dask is not a package: a package named "dask" would shadow the real one)
import dask_tasks as tasks  # noqa: E402
from dask_origin import check_origin_case  # noqa: E402

from mpire_fault import WorkerDiedError  # noqa: E402
from mpire_fault.dask_backend import DaskPool  # noqa: E402

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def cli_address(tmp_path_factory):
    before = conftest.children()
    log = open(tmp_path_factory.mktemp("cli") / "cluster.log", "w")
    address, procs = conftest.start_cli_cluster(log, 2)
    try:
        yield address
    finally:
        conftest.stop_cli_cluster(procs)
        log.close()
        left = conftest.wait_for_no_children(before, 10.0)
        assert not left, f"the CLI-started cluster left processes behind: {left}"


def test_origin_case_on_a_cli_started_cluster(cli_address, markers):
    pool = DaskPool(address=cli_address)
    check_origin_case(pool, markers)
    assert pool.n_jobs == 2
    pool.terminate()
    # the pool closed its own client only: the cluster is still there for the next one
    with DaskPool(address=cli_address) as again:
        assert again.apply(tasks.square, (6,)) == 36


def test_map_abort_on_a_cli_started_cluster(cli_address, markers):
    with DaskPool(address=cli_address) as pool:
        with pytest.raises(WorkerDiedError) as info:
            pool.map(tasks.map_item, [(markers, i, 2) for i in range(20)], chunk_size=1)
        assert info.value.exitcode == -9
        assert pool.map(tasks.square, range(6)) == [0, 1, 4, 9, 16, 25]
