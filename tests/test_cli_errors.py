"""Bad input to any command is refused in one line naming what was wrong (exit 2), never with a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mpire_fault import WorkerPool
from mpire_fault.chaos import Chaos
from mpire_fault.cli import main
from mpire_fault.errors import ChaosSpecError

ROOT = Path(__file__).resolve().parents[1]
BAD_SPEC = "task.start=5%sigkil"  # the action's name is misspelt at position 13


@pytest.mark.parametrize("argv, option", [
    (["demo", "--n-jobs", "0"], "--n-jobs"),
    (["demo", "--n-jobs", "-2"], "--n-jobs"),
    (["run", "--jobs", "0", "scenarios"], "--jobs"),
])
def test_a_count_below_one_is_refused_naming_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert option in error and "positive integer" in error


def test_a_pool_names_mp_chaos_as_the_source_of_a_bad_spec(monkeypatch):
    monkeypatch.setenv("MP_CHAOS", BAD_SPEC)
    with pytest.raises(ChaosSpecError, match="^MP_CHAOS") as raised:
        WorkerPool(n_jobs=1)
    assert raised.value.position == 13 and raised.value.spec == BAD_SPEC
    with pytest.raises(ChaosSpecError, match="^MP_CHAOS.*position 13"):
        Chaos.from_env({"MP_CHAOS": BAD_SPEC})


def test_the_cli_refuses_a_bad_mp_chaos_without_a_traceback():
    done = subprocess.run([sys.executable, "-m", "mpire_fault", "demo"], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, "MP_CHAOS": BAD_SPEC, "MP_CHAOS_SEED": ""})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and not done.stdout
    first = done.stderr.splitlines()[0]
    assert first.startswith("mpire-fault demo: error: MP_CHAOS") and "position 13" in first

