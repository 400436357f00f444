"""The origin case against a cluster started from the command line: ``dask scheduler`` and two ``dask worker``.

The pool connects by address and must never shut that cluster down; the
module fixture starts the three commands as real subprocesses bound to
127.0.0.1 (each worker with its nanny, so dead workers are restarted) and
stops them at the end, leaving no process behind.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

distributed = pytest.importorskip("distributed")

import dask_suite as conftest  # noqa: E402  (tests/dask is not a package: a package named "dask" would shadow the real one)
import dask_tasks as tasks  # noqa: E402
from dask_origin import check_origin_case  # noqa: E402

from mpire_fault import WorkerDiedError  # noqa: E402
from mpire_fault.dask_backend import DaskPool  # noqa: E402

pytestmark = pytest.mark.timeout(90)
HERE = os.path.dirname(os.path.abspath(__file__))


def _dask_command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "dask")
    if os.path.exists(script):
        return [script]
    found = shutil.which("dask")
    return [found] if found else [sys.executable, "-m", "dask"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(args: list[str], log, env: dict) -> subprocess.Popen:
    # A session of its own: the teardown can end the command and everything it spawned at once.
    proc = subprocess.Popen(_dask_command() + args, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    conftest.OWNED_GROUPS.add(proc.pid)
    return proc


def _stop(procs: list[subprocess.Popen]) -> None:
    # Workers first, and only then the scheduler: a worker that loses its
    # scheduler while it closes waits out an 8 s timeout before it is killed.
    workers, scheduler = procs[1:], procs[:1]
    for group in (workers, scheduler):
        for proc in group:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in group:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the command left in its session
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait(5)


@pytest.fixture(scope="module")
def cli_address(tmp_path_factory):
    before = conftest.children()
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]),
               DASK_LOGGING__DISTRIBUTED="error")
    log = open(tmp_path_factory.mktemp("cli") / "cluster.log", "w")
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                     "--dashboard-address", "127.0.0.1:0"], log, env)]
    try:
        for name in ("w0", "w1"):
            procs.append(_start(["worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
                                 "--name", name, "--dashboard-address", "127.0.0.1:0"], log, env))
        with distributed.Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=30)
        yield address
    finally:
        _stop(procs)
        for proc in procs:
            conftest.OWNED_GROUPS.discard(proc.pid)
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
