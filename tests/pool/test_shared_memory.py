"""Big arguments and results through shared memory (issue 12), and that no segment outlives its use.

Every test checks ``/dev/shm`` for the pool's own segment names (other
processes on the machine may have theirs): a close, a worker's death while
it holds an argument or after it wrote a result, a task sent again after a
death, and a SIGKILLed parent must each leave nothing behind.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from _namespaces import in_new_pid_namespace

from mpire_fault import PoolTerminatedError, WorkerDiedError, WorkerPool
from mpire_fault._engine.wire import shm
from mpire_fault._platform import owners

from . import shm_tasks
from .observe import pid_gone, wait_recovered, wait_until

pytestmark = pytest.mark.skipif(not shm.AVAILABLE, reason="POSIX shared memory in /dev/shm is Linux-only here")

SCRIPT = os.path.join(os.path.dirname(__file__), "shm_parent_script.py")


def segments(prefix: str) -> list[str]:
    return sorted(name for name in os.listdir(shm.SHM_DIR) if name.startswith(prefix))


def assert_no_segments(prefix: str, timeout: float = 5.0) -> None:
    wait_until(lambda: not segments(prefix), timeout, what=f"no segment left of {prefix}: {segments(prefix)}")


def read_pid(path: str, timeout: float = 30.0) -> int:
    wait_until(lambda: os.path.exists(path), timeout, what=f"{path} to appear")
    with open(path) as handle:
        return int(handle.read())


# ---------------------------------------------------------------------------
# What goes through shared memory, and that it arrives intact


def test_only_big_payloads_take_shared_memory():
    with WorkerPool(1) as pool:
        dumps = pool._serializer.dumps
        assert type(dumps((shm_tasks.total, "apply", [((1,), {})]))) is bytes
        assert isinstance(dumps([np.arange(1000)]), shm.Inline)  # small arrays travel in the message
        assert type(dumps([b"x" * 1000])) is bytes
        shared = dumps([shm_tasks.big()])
        assert isinstance(shared, shm.Shared) and segments(pool._shm_prefix) == [shared.name]
        assert isinstance(dumps([b"x" * (2 << 20)]), shm.Shared)
        assert isinstance(dumps([bytearray(2 << 20)]), shm.Shared)
        # Many arrays of 64 KiB or more that add up to a MiB: one segment too.
        assert isinstance(dumps([np.ones(16384) for _ in range(10)]), shm.Shared)
        del shared  # the owner goes, its segment goes
        assert segments(pool._shm_prefix) == []


def test_big_arguments_and_results_round_trip(start_method):
    arrays = [shm_tasks.big(i) for i in range(12)]
    with WorkerPool(2, start_method=start_method) as pool:
        prefix = pool._shm_prefix
        assert pool.map(shm_tasks.total, arrays) == [float(a.sum()) for a in arrays]
        results = pool.map(shm_tasks.make, range(6), concatenate_numpy_output=False)
        for i, array in enumerate(results):
            assert array.shape == (shm_tasks.MIB4 // 8,) and array[0] == i and array[-1] == i
            assert array.flags.writeable
            array[0] = -1  # ours to change
        assert segments(prefix) == []  # results are unlinked as soon as they are read
        assert pool.apply(shm_tasks.total, (arrays[3],)) == float(arrays[3].sum())
        assert pool.apply(shm_tasks.kind_and_size, (b"ab" + bytes(3 << 20) + b"yz",)) == (
            "bytes", (3 << 20) + 4, b"ab\x00", b"\x00yz")
        assert pool.apply(shm_tasks.kind_and_size, (bytearray(b"q" * (2 << 20)),))[:2] == ("bytearray", 2 << 20)
        echoed = pool.apply(shm_tasks.echo, ({"blob": b"z" * (2 << 20), "array": arrays[5]},))
        assert type(echoed["blob"]) is bytes and len(echoed["blob"]) == 2 << 20
        assert np.array_equal(echoed["array"], arrays[5])
        small = pool.apply(shm_tasks.echo, (np.arange(10),))
        assert small.flags.writeable and small.tolist() == list(range(10))
        frozen = np.arange(10)
        frozen.flags.writeable = False
        assert not pool.apply(shm_tasks.echo, (frozen,)).flags.writeable  # as pickle would have it
    assert_no_segments(prefix)


def test_exception_carrying_a_big_array_arrives(start_method):
    with WorkerPool(1, start_method=start_method) as pool:
        with pytest.raises(shm_tasks.ArrayError) as info:
            pool.apply(shm_tasks.raise_with_array, (7,))
        assert info.value.array[0] == 7
    assert_no_segments(pool._shm_prefix)


# ---------------------------------------------------------------------------
# Deaths


def test_apply_worker_killed_while_holding_an_argument(start_method, tmp_path):
    path = str(tmp_path / "pid")
    with WorkerPool(2, start_method=start_method) as pool:
        prefix = pool._shm_prefix
        handle = pool.apply_async(shm_tasks.hold, (shm_tasks.big(2), path, 30.0))
        pid = read_pid(path)
        assert len(segments(prefix)) == 1  # the argument, mapped by the worker
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerDiedError) as info:
            handle.get(timeout=30)
        assert info.value.exitcode == -signal.SIGKILL
        assert_no_segments(prefix)
        wait_recovered(pool)
        assert pool.apply(shm_tasks.total, (shm_tasks.big(3),)) == 3.0 * (shm_tasks.MIB4 // 8)
        assert_no_segments(prefix)  # the supervisor unlinks the argument just after it hands the answer over
    assert_no_segments(prefix)


def test_map_worker_killed_while_holding_an_argument(start_method):
    arrays = [shm_tasks.big(i) for i in range(8)]
    with WorkerPool(2, start_method=start_method, keep_alive=True) as pool:
        prefix = pool._shm_prefix
        with pytest.raises(WorkerDiedError):
            pool.map(shm_tasks.sum_or_die, [(a, 5.0) for a in arrays], chunk_size=1)
        assert_no_segments(prefix)
        wait_recovered(pool)
        assert pool.map(shm_tasks.total, arrays, chunk_size=2) == [float(a.sum()) for a in arrays]
        assert_no_segments(prefix)
    assert_no_segments(prefix)


def test_worker_killed_after_writing_a_result_not_yet_announced(start_method, tmp_path):
    path = str(tmp_path / "segment")
    with WorkerPool(1, start_method=start_method) as pool:
        prefix = pool._shm_prefix
        with pytest.raises(WorkerDiedError) as info:
            pool.apply(shm_tasks.make, (4,), worker_init=shm_tasks.arm_dying_export(path))
        assert "pickling its result" in str(info.value)
        with open(path) as handle:
            written = handle.read()
        assert written.startswith(prefix + "r")  # the segment really was there when the worker died
        assert_no_segments(prefix)
        assert pool.apply(shm_tasks.first_value, (shm_tasks.big(9),)) == 9.0
    assert_no_segments(prefix)


def test_requeued_task_reads_its_argument_again(start_method, tmp_path):
    """The first attempt scribbles over its argument and dies; the retry sees the original."""
    with WorkerPool(2, start_method=start_method, max_task_retries=1) as pool:
        prefix = pool._shm_prefix
        original = shm_tasks.big(6)
        handle = pool.apply_async(shm_tasks.mutate_then_die_once, (original, str(tmp_path)))
        assert handle.get(timeout=60) == 6.0  # what the retry found: the segment as the parent wrote it
        assert os.path.exists(tmp_path / "died-once")
        assert pool.statistics()["tasks_requeued"] == 1
        assert original[0] == 6.0  # the parent's own array was never touched
        retry = pool.apply_async(shm_tasks.sum_or_die, (shm_tasks.big(1), 1.0))
        with pytest.raises(WorkerDiedError) as info:  # retried once, died twice: fails, nothing leaks
            retry.get(timeout=60)
        assert len(info.value.deaths) == 2
        assert_no_segments(prefix)
        assert pool.apply(shm_tasks.total, (original,)) == float(original.sum())
    assert_no_segments(prefix)


# ---------------------------------------------------------------------------
# Closing, terminating, and a parent that is killed


def test_terminate_with_big_tasks_pending(start_method, tmp_path):
    pool = WorkerPool(2, start_method=start_method)
    prefix = pool._shm_prefix
    handles = [pool.apply_async(shm_tasks.hold, (shm_tasks.big(i), str(tmp_path / f"pid{i}"), 30.0))
               for i in range(5)]
    read_pid(str(tmp_path / "pid0"))
    assert segments(prefix)
    pool.terminate()
    for handle in handles:
        with pytest.raises((PoolTerminatedError, WorkerDiedError)):
            handle.get(timeout=30)
    del handles
    assert_no_segments(prefix)


def test_a_new_pool_sweeps_segments_of_dead_parents():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    # a dead parent's result, made in our namespace (the start time cannot match)
    dead = f"mpf_{child.pid}_1_{owners.pid_namespace()}_0_r{child.pid}_0"
    mine = f"{shm.pool_prefix()}r1_0"  # a live parent's: kept
    for name in (dead, mine):
        with open(os.path.join(shm.SHM_DIR, name), "wb") as handle:
            handle.write(b"x")
    try:
        with WorkerPool(1):
            pass
        assert not os.path.exists(os.path.join(shm.SHM_DIR, dead))
        assert os.path.exists(os.path.join(shm.SHM_DIR, mine))
    finally:
        for name in (dead, mine):
            try:
                os.unlink(os.path.join(shm.SHM_DIR, name))
            except FileNotFoundError:
                pass


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def _sweep_keeps(kept: str, removed: str, kept_uid: int | None = None) -> None:
    """Make both segments, sweep, and check that only ``removed`` went."""
    paths = [os.path.join(shm.SHM_DIR, name) for name in (kept, removed)]
    try:
        for path in paths:
            with open(path, "wb") as handle:
                handle.write(b"x")
        if kept_uid is not None:
            os.chown(paths[0], kept_uid, kept_uid)
        shm.sweep_stale()
        assert os.path.exists(paths[0]) and not os.path.exists(paths[1])
    finally:
        for path in paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def test_the_sweep_spares_segments_of_another_pid_namespace():
    """A pid another container's pool named is no pid of ours: that it is missing here proves nothing."""
    dead, namespace = _dead_pid(), owners.pid_namespace()
    _sweep_keeps(f"mpf_{dead}_1_{namespace + 1}_0_a0", f"mpf_{dead}_1_{namespace}_0_a0")


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file of another uid takes root")
def test_the_sweep_spares_segments_of_another_user():
    """Run as root, the sweep must not remove another user's segments, whatever their name says."""
    dead, namespace = _dead_pid(), owners.pid_namespace()
    _sweep_keeps(f"mpf_{dead}_1_{namespace}_0_a0", f"mpf_{dead}_2_{namespace}_0_a0", kept_uid=4242)


_NAMESPACED_SEGMENT = """
import sys
from mpire_fault._engine.wire import shm
shared = shm.Segments(shm.pool_prefix() + "a", owned=False).export(b"", [memoryview(bytearray(64))], False)
print(shared.name, flush=True)
sys.stdin.read()
shm.sweep(shared.name)
"""


def test_a_live_segment_of_a_pool_in_another_pid_namespace_survives_a_sweep():
    """For real: a pool that is PID 1 of its own namespace, sharing /dev/shm with us (issue 25.2)."""
    with in_new_pid_namespace(_NAMESPACED_SEGMENT) as name:
        path = os.path.join(shm.SHM_DIR, name)
        assert os.path.exists(path)
        shm.sweep_stale()
        with WorkerPool(1):  # as every new pool does
            pass
        assert os.path.exists(path), "a live segment of another namespace was unlinked"
    assert not os.path.exists(path)  # and its owner still cleans up after itself


def test_parent_sigkill_leaves_no_segment(start_method):
    proc = subprocess.Popen([sys.executable, SCRIPT, start_method], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        info = json.loads(line)
        prefix, pids = info["prefix"], info["pids"]
        assert segments(prefix)  # arguments held by busy workers, and queued ones
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_until(lambda: all(pid_gone(pid) for pid in pids), timeout=10, what="the workers to follow their parent")
        # multiprocessing's resource tracker outlives the parent and unlinks what it had registered.
        assert_no_segments(prefix, timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
