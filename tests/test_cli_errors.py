"""What a newcomer meets at the command line: bad input refused in one line naming what was wrong (exit 2),
never a traceback; help and output in plain words."""
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



def test_the_help_has_no_markup_and_the_demo_counts_in_words(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out
    assert main(["demo", "--n-jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "8 tasks on 1 worker;" in out and "has 1 live worker again" in out and "restarted 2 workers" in out
    assert "(s)" not in out and "(job)" not in out and "(fragile_square)" in out


def test_the_timeline_example_says_where_it_wrote_the_page(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "timeline" / "chaos_run.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert f"timeline written to {tmp_path.resolve() / 'run.html'}" in done.stdout and (tmp_path / "run.html").is_file()
