"""Deployment setups: a parent that is PID 1 (a container without an init); what ends a threading pool's caller."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _namespaces import UNSHARE, require_unshare

from mpire_fault import ChaosSpecError, WorkerPool
from mpire_fault._engine.child.orphans import die_with_parent
from mpire_fault.chaos.vocabulary import KILLS_PROCESS

PID1_SCRIPT = os.path.join(os.path.dirname(__file__), "pid1_script.py")


def test_a_parent_that_is_pid_1_starts_its_workers():
    """``getppid() == 1`` in a worker is no sign of a dead parent when the parent is PID 1."""
    require_unshare()
    methods = ["fork", "spawn", "forkserver"]
    done = subprocess.run([*UNSHARE, sys.executable, PID1_SCRIPT, *methods], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "pid 1", lines  # really PID 1 of its namespace
    assert lines[1:] == [f"{method} [0, 1, 4, 9, 16, 25]" for method in methods], done.stderr


def _exit_code_of_child_calling(parent_pid) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            die_with_parent(parent_pid(os.getppid()))
            os._exit(0)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_worker_whose_parent_is_not_the_one_it_was_started_by_leaves():
    """The check behind PR_SET_PDEATHSIG: reparented before prctl took effect means the parent died."""
    assert _exit_code_of_child_calling(lambda ppid: ppid) == 0
    assert _exit_code_of_child_calling(lambda ppid: None) == 0  # forkserver: whoever forked us
    assert _exit_code_of_child_calling(lambda ppid: ppid + 1) == 1  # not our parent any more


_OS_EXIT_IN_A_THREAD = """
import os
from mpire_fault import WorkerPool
with WorkerPool(2, start_method="threading") as pool:
    print("before", pool.apply(abs, (-1,)), flush=True)
    pool.apply(os._exit, (7,))
    print("after", flush=True)
print("closed", flush=True)
"""


def test_os_exit_in_a_threading_task_ends_the_callers_process_as_documented():
    """A threading worker is a thread of the caller: os._exit there is the caller's exit (README, guarantees.md)."""
    done = subprocess.run([sys.executable, "-c", _OS_EXIT_IN_A_THREAD], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (7, "before 1\n"), done.stderr


@pytest.mark.parametrize("action", sorted(KILLS_PROCESS))
def test_threading_refuses_every_chaos_action_that_ends_a_process(action):
    spec = f"task.start[task=1]={action}(1MB)" if action == "oom" else f"task.start[task=1]={action}"
    with pytest.raises(ChaosSpecError, match=f"'{action}' ends a process"):
        WorkerPool(2, start_method="threading", chaos=spec)
