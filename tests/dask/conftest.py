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
import os
import time

import psutil
import pytest

distributed = pytest.importorskip("distributed")

_OWNED: list = []  # LocalClusters of module fixtures that are still running
OWNED_GROUPS: set[int] = set()  # process groups of CLI-started clusters that module fixtures still run


def _owned_worker_pids() -> set[int]:
    pids = set()
    for cluster in _OWNED:
        for nanny in list(getattr(cluster, "workers", {}).values()):
            pid = getattr(getattr(nanny, "process", None), "pid", None)
            if pid:
                pids.add(pid)
    for child in psutil.Process().children(recursive=True):
        try:
            if os.getpgid(child.pid) in OWNED_GROUPS:
                pids.add(child.pid)
        except (OSError, psutil.Error):
            pass
    return pids


def children() -> set[int]:
    out = set()
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        if "forkserver" in cmdline or "resource_tracker" in cmdline:
            continue
        out.add(child.pid)
    return out


def wait_for_no_children(allowed: set[int] | callable, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        extra = allowed() if callable(allowed) else allowed
        left = sorted(children() - extra)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_orphans():
    """The suite-wide check, minus the workers of a module's own (still open) cluster."""
    before = children()
    yield
    left = wait_for_no_children(lambda: before | _owned_worker_pids(), 5.0)
    for pid in left:
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass
    assert not left, f"the test left child processes behind: {left}"


@pytest.fixture(scope="module")
def dask_client():
    """A Client on a 2-worker LocalCluster shared by one test module, shut down fully at its end."""
    before = children()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.CRITICAL)
    client = distributed.Client(cluster, set_as_default=False)
    _OWNED.append(cluster)
    try:
        yield client
    finally:
        _OWNED.remove(cluster)
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
