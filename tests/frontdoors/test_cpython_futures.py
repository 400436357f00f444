"""CPython's own ProcessPoolExecutor tests, run against mpire_fault.ProcessPoolExecutor (cpython/run.py).

One test, one subprocess with a deadline: the fork variants (about 35 s on two
busy cores). The spawn and forkserver variants take minutes, so they run in
the slow test below (``pytest -m slow``).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

RUNNER = os.path.join(os.path.dirname(__file__), "cpython", "run.py")


def _run(contexts: str, timeout: float) -> None:
    try:
        done = subprocess.run([sys.executable, RUNNER, "--contexts", contexts], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"CPython's executor tests ({contexts}) did not finish in {timeout} s:\n{exc.stderr}")
    summary = done.stdout.strip().splitlines()[-1:] or ["(no summary)"]
    assert done.returncode == 0, f"{summary[0]}\n{done.stderr[-6000:]}"
    assert "failures 0, errors 0" in summary[0]


@pytest.mark.timeout(150)
def test_cpython_process_pool_tests_pass_under_fork():
    _run("fork", 140)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cpython_process_pool_tests_pass_under_spawn_and_forkserver():
    _run("spawn,forkserver", 880)
