"""Fixtures of the Dask suite: one small LocalCluster per test module.

Starting a cluster costs seconds, so a module shares one (two single-thread
worker processes). Its nanny replaces workers that tests kill, and those
replacements are children of this process that no test started: the
suite-wide ``no_orphans`` check is narrowed here to ignore exactly the worker
processes of a cluster a module fixture still owns. The fixture itself checks,
when it closes the cluster, that every process it started is gone.
"""
from __future__ import annotations

import logging

import pytest

distributed = pytest.importorskip("distributed")

from _children import children, kill, wait_for_no_children  # noqa: E402
from dask_suite import OWNED, _owned_worker_pids  # noqa: E402


@pytest.fixture(autouse=True)
def no_orphans():
    """The suite-wide check, minus the workers of a module's own (still open) cluster."""
    before = children()
    yield
    left = wait_for_no_children(lambda: before | _owned_worker_pids(), 5.0)
    assert not left, f"the test left child processes behind: {kill(left)}"


@pytest.fixture(scope="module")
def dask_client():
    """A Client on a 2-worker LocalCluster shared by one test module, shut down fully at its end."""
    before = children()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.CRITICAL)
    client = distributed.Client(cluster, set_as_default=False)
    OWNED.append(cluster)
    try:
        yield client
    finally:
        OWNED.remove(cluster)
        client.close()
        cluster.close()
        left = wait_for_no_children(before, 15.0)
        assert not left, f"the module's LocalCluster left processes behind: {left}"


@pytest.fixture
def markers(tmp_path) -> str:
    """A directory where tasks leave one file per execution."""
    path = tmp_path / "markers"
    path.mkdir()
    return str(path)
