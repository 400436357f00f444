"""joblib's own test_parallel.py, run with the "mpire_fault" backend standing in for loky and multiprocessing.

One subprocess with a deadline each (joblib_suite/run.py): the quick subset
(about a minute on two busy cores) here; the whole module (about three minutes)
in the slow test (``pytest -m slow``). The tests left out, each with its
reason, are run.py's EXCLUDED.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("joblib")

RUNNER = os.path.join(os.path.dirname(__file__), "joblib_suite", "run.py")


def _run(options: list[str], timeout: float) -> None:
    try:
        done = subprocess.run([sys.executable, RUNNER, *options], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"joblib's test_parallel.py ({options}) did not finish in {timeout} s:\n{out[-6000:]}")
    summary = done.stdout.strip().splitlines()[-1:] or ["(no summary)"]
    assert done.returncode == 0, f"{summary[0]}\n{done.stdout[-8000:]}\n{done.stderr[-3000:]}"
    if not summary[0].startswith("SKIP:"):
        assert " passed" in summary[0] and "failed" not in summary[0] and "error" not in summary[0], summary[0]


@pytest.mark.timeout(90)
def test_joblibs_parallel_tests_pass_on_our_backend_quick_subset():
    _run(["--quick", "--timeout", "30"], 85)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_joblibs_parallel_tests_pass_on_our_backend():
    _run(["--timeout", "60"], 580)
