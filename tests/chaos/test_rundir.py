"""mp-chaos-* directories of a process killed with SIGKILL are swept away by the next run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest
from _namespaces import in_new_pid_namespace

from mpire_fault._platform import owners
from mpire_fault.chaos import Chaos, environment
from mpire_fault.chaos.rundir import OWNER_FILE, make_run_dir, owner_alive, sweep_stale


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=60)
    return int(done.stdout)


def _owned(folder, name: str, owner: dict | None):
    """A run directory whose owner record is ``owner``, made in our PID namespace and boot unless it says otherwise."""
    path = folder / name
    path.mkdir()
    (path / "journal.jsonl").write_text("{}\n")
    if owner is not None:
        (path / OWNER_FILE).write_text(json.dumps({"pid_ns": owners.pid_namespace(), "boot": owners.boot_id(),
                                                   **owner}))
    return path


def test_the_sweep_removes_only_directories_whose_owner_is_gone(tmp_path):
    me = psutil.Process()
    dead = _owned(tmp_path, "mp-chaos-dead", {"pid": _dead_pid(), "started": 1.0})
    recycled = _owned(tmp_path, "mp-chaos-recycled", {"pid": os.getpid(), "started": me.create_time() - 100})
    alive = _owned(tmp_path, "mp-chaos-alive", {"pid": os.getpid(), "started": me.create_time()})
    unowned = _owned(tmp_path, "mp-chaos-unowned", None)
    garbled = _owned(tmp_path, "mp-chaos-garbled", None)
    (garbled / OWNER_FILE).write_text("not json")
    other = _owned(tmp_path, "someone-else", {"pid": _dead_pid(), "started": 1.0})
    assert owner_alive(str(dead)) is False and owner_alive(str(alive)) is True and owner_alive(str(unowned)) is None
    assert sorted(sweep_stale(str(tmp_path))) == sorted([str(dead), str(recycled)])
    assert not dead.exists() and not recycled.exists()
    assert alive.exists() and unowned.exists() and garbled.exists() and other.exists()


def test_the_sweep_spares_directories_it_cannot_prove_are_ours(tmp_path):
    """Another container's, another host's or an older version's directory: a missing pid proves nothing."""
    dead = _dead_pid()
    mine = _owned(tmp_path, "mp-chaos-mine", {"pid": dead, "started": 1.0})
    other_namespace = _owned(tmp_path, "mp-chaos-other-ns", {"pid": dead, "started": 1.0,
                                                              "pid_ns": owners.pid_namespace() + 1})
    other_boot = _owned(tmp_path, "mp-chaos-other-boot", {"pid": dead, "started": 1.0, "boot": "another-boot"})
    old_format = _owned(tmp_path, "mp-chaos-old", None)
    (old_format / OWNER_FILE).write_text(json.dumps({"pid": dead, "started": 1.0}))
    assert owner_alive(str(other_namespace)) is None and owner_alive(str(other_boot)) is None
    assert sweep_stale(str(tmp_path)) == [str(mine)]
    assert other_namespace.exists() and other_boot.exists() and old_format.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory of another uid takes root")
def test_the_sweep_spares_directories_of_another_user(tmp_path):
    """Run as root, the sweep must not remove another user's directories, whatever their record says."""
    theirs = _owned(tmp_path, "mp-chaos-theirs", {"pid": _dead_pid(), "started": 1.0})
    os.chown(theirs, 4242, 4242)
    assert owner_alive(str(theirs)) is False  # its owner is gone, but it is not ours to remove
    assert sweep_stale(str(tmp_path)) == [] and theirs.exists()


_NAMESPACED_RUN_DIR = """
import sys
from mpire_fault.chaos.rundir import make_run_dir
print(make_run_dir(), flush=True)
sys.stdin.read()
"""


def test_a_live_directory_of_another_pid_namespace_survives_a_sweep(tmp_path):
    """For real: a chaos run that is PID 1 of its own namespace, sharing the temp folder with us (issue 25.2)."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    with in_new_pid_namespace(_NAMESPACED_RUN_DIR, env=env) as path:
        assert os.path.dirname(path) == str(tmp_path) and os.path.isdir(path)
        assert owner_alive(path) is None  # its pid 1 is not our pid 1
        assert sweep_stale(str(tmp_path)) == [] and os.path.isdir(path)


def test_a_chaos_state_directory_names_its_owner(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.delenv(environment.STATE, raising=False)
    chaos = Chaos("idle=off", seed=1)
    try:
        assert os.path.dirname(chaos.state_dir) == str(tmp_path)
        assert json.loads(open(os.path.join(chaos.state_dir, OWNER_FILE)).read())["pid"] == os.getpid()
        assert owner_alive(chaos.state_dir) is True
    finally:
        chaos.close()
    assert not os.path.exists(chaos.state_dir)
    assert make_run_dir("mp-chaos-run-").startswith(str(tmp_path / "mp-chaos-run-"))


_VICTIM = textwrap.dedent("""
    import os, sys, time
    import psutil
    from mpire_fault import WorkerPool
    from tests.chaos.tasks import square
    pool = WorkerPool(2, chaos="idle=off", chaos_seed=1)
    assert pool.apply_async(square, (3,)).get(timeout=60) == 9
    workers = [c.pid for c in psutil.Process().children(recursive=True)]
    print(pool._chaos.state_dir, *workers, flush=True)
    time.sleep(120)
""")

_NEXT = textwrap.dedent("""
    from mpire_fault import WorkerPool
    from tests.chaos.tasks import square
    with WorkerPool(2, chaos="idle=off", chaos_seed=1) as pool:
        print(pool._chaos.state_dir)
        assert pool.map(square, range(4)) == [0, 1, 4, 9]
""")


@pytest.mark.timeout(120)
def test_the_directory_of_a_sigkilled_parent_is_swept_at_the_next_start(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=root)
    for name in environment.NAMES:
        env.pop(name, None)
    victim = subprocess.Popen([sys.executable, "-c", _VICTIM], stdout=subprocess.PIPE, text=True, env=env, cwd=root)
    try:
        line = victim.stdout.readline().split()
        assert line, "the victim did not start its pool"
        state_dir, workers = line[0], [int(pid) for pid in line[1:]]
        assert os.path.dirname(state_dir) == str(tmp_path) and os.path.isdir(state_dir)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        victim.stdout.close()
    # its workers follow it (PR_SET_PDEATHSIG); the directory does not
    processes = []
    for pid in workers:
        try:
            processes.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=30)
    assert not alive, alive
    assert os.path.isdir(state_dir)
    assert owner_alive(state_dir) is False

    done = subprocess.run([sys.executable, "-c", _NEXT], capture_output=True, text=True, env=env, cwd=root,
                          timeout=90)
    assert done.returncode == 0, done.stderr
    assert not os.path.exists(state_dir), "the stale directory was not swept"
    assert not [name for name in os.listdir(tmp_path) if name.startswith("mp-chaos-")]  # and the new one closed


def test_a_chaos_object_dropped_without_close_removes_its_directory_but_not_in_a_forked_child():
    import gc

    chaos = Chaos("idle=off", seed=1)
    path = chaos.state_dir
    pid = os.fork()
    if pid == 0:  # the child inherits the object and its finalizer: dropping it here must not touch the folder
        del chaos
        gc.collect()
        os._exit(0 if os.path.isdir(path) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and os.path.isdir(path)
    del chaos
    gc.collect()
    assert not os.path.exists(path)
