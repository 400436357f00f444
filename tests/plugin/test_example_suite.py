"""The README's example command works on the plain install (no pytest-xdist, no pytest-timeout)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_suite_runs_without_the_test_extras():
    # -p no:xdist -p no:timeout: what `pip install -e .` leaves out; the README's command, as it is written there
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MP_CHAOS", "PYTEST_"))}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:timeout", "-p", "no:randomly",
                           "-p", "no:cacheprovider", "examples/chaos_suite", "--mp-chaos=task.start=20%sigkill",
                           "--mp-chaos-seed=7"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # a test failed (the fragile one), not a usage error (4)
    assert "1 failed, 2 passed" in output, output
    assert "FAILED   test_fragile.py::test_map_assumes_no_worker_ever_dies" in output, output
