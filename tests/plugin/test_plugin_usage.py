"""The plugin's options checked before the run starts, and a reproduce line that reproduces the run."""
from __future__ import annotations

import json
import os
import shlex

import pytest

TASKS = """
def square(x):
    return x * x
"""

SUITE = """
import os, shutil
from mpire_fault import WorkerPool
from tasks import square

def test_spawn_pool_under_chaos():
    with WorkerPool(2, start_method="spawn") as pool:
        assert pool.map(square, range(6)) == [x * x for x in range(6)]

def test_removes_the_report_folder_when_asked():
    folder = os.environ.get("REMOVE_REPORT_DIR")
    if folder:
        shutil.rmtree(folder)
"""

CONFTEST = """
import os, sys
sys.path.insert(0, os.path.dirname(__file__))
"""


@pytest.fixture
def suite(pytester, tmp_path, monkeypatch):
    pytester.makepyfile(tasks=TASKS, test_suite=SUITE, conftest=CONFTEST)
    scratch = tmp_path / "scratch-tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the run directories of the pytest under test land here
    pytester.scratch = scratch
    return pytester


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=120)


def run_dirs(pytester) -> list[str]:
    return [name for name in os.listdir(pytester.scratch) if name.startswith("mp-chaos-")]


def _assert_usage_error(result, *words):
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    err = result.stderr.str()
    for word in words:
        assert word in err, err
    assert "INTERNALERROR" not in err + result.stdout.str() and "Traceback" not in err


@pytest.mark.parametrize("where, words", [
    ("missing/r.json", ["--mp-chaos-report=", "missing", "does not exist"]),
    ("", ["--mp-chaos-report=", "is a directory"]),  # the test folder itself
    (".", ["--mp-chaos-report=.", "is a directory"]),
])
def test_a_report_path_that_cannot_be_written_is_a_usage_error_before_the_run(suite, where, words):
    target = {"": str(suite.path), ".": "."}.get(where, str(suite.path / where))
    result = run(suite, "--mp-chaos=idle=off", "--mp-chaos-seed=1", f"--mp-chaos-report={target}")
    _assert_usage_error(result, *words)
    assert "passed" not in result.stdout.str()
    assert run_dirs(suite) == []


def test_the_ini_report_path_is_checked_too(suite):
    suite.makeini("[pytest]\nmp_chaos = idle=off\nmp_chaos_report = nowhere/at/all.json\n")
    result = run(suite)
    _assert_usage_error(result, "mp_chaos_report (ini)=nowhere/at/all.json", "does not exist")
    assert run_dirs(suite) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_report_folder_without_write_permission_is_a_usage_error(suite):
    locked = suite.path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run(suite, "--mp-chaos=idle=off", f"--mp-chaos-report={locked / 'r.json'}")
    finally:
        locked.chmod(0o755)
    _assert_usage_error(result, "--mp-chaos-report=", "is not writable")


def test_a_report_folder_removed_during_the_run_is_reported_without_internalerror(suite, monkeypatch):
    folder = suite.path / "reports"
    folder.mkdir()
    monkeypatch.setenv("REMOVE_REPORT_DIR", str(folder))
    result = run(suite, "--mp-chaos=idle=off", "--mp-chaos-seed=1", f"--mp-chaos-report={folder / 'r.json'}")
    result.assert_outcomes(passed=2)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert "mp-chaos: cannot write the report" in result.stderr.str()
    assert run_dirs(suite) == []


def test_a_relative_report_path_is_where_pytest_was_started(suite):
    result = run(suite, "--mp-chaos=idle=off", "--mp-chaos-seed=1", "--mp-chaos-report=out.json")
    result.assert_outcomes(passed=2)
    assert json.loads((suite.path / "out.json").read_text())["seed"] == 1


@pytest.mark.parametrize("seed", ["²", "٣", "１", "+-3", "3.0", "9" * 30, "0x10", " "])
def test_a_seed_that_is_not_ascii_digits_is_a_usage_error_naming_the_option(suite, seed):
    result = run(suite, "--mp-chaos=idle=off", f"--mp-chaos-seed={seed}")
    _assert_usage_error(result, "--mp-chaos-seed must be a non-negative integer")
    assert run_dirs(suite) == []


def test_an_ini_seed_error_names_the_ini_key(suite):
    suite.makeini("[pytest]\nmp_chaos = idle=off\nmp_chaos_seed = ²\n")
    _assert_usage_error(run(suite), "mp_chaos_seed (ini) must be a non-negative integer")


def test_plus_signed_ascii_seeds_are_accepted(suite):
    result = run(suite, "--mp-chaos=idle=off", "--mp-chaos-seed=+0042")
    result.assert_outcomes(passed=2)
    assert "seed=42" in result.stdout.str()


def _reproduce_args(result) -> list[str]:
    (line,) = [line for line in result.stdout.lines if line.startswith("reproduce: ")]
    words = shlex.split(line.removeprefix("reproduce: "))
    assert words[0] == "pytest"
    return words[1:]


SPEC = "task.start=0.00001%sigkill;idle=off"  # a ';' to quote, and a percentage repr() would print as 1e-05


def test_the_reproduce_line_after_a_space_separated_spec_reproduces_the_run(suite):
    result = run(suite, "--mp-chaos", SPEC, "--mp-chaos-seed", "11", "test_suite.py")
    result.assert_outcomes(passed=2)  # the spawn pool starts: its workers re-parse the printed spec
    args = _reproduce_args(result)
    assert SPEC not in args, "the spec was left where a test path goes"
    assert args[-2:] == [f"--mp-chaos={SPEC}", "--mp-chaos-seed=11"]
    assert "test_suite.py" in args
    again = run(suite, *args[args.index("test_suite.py"):])
    again.assert_outcomes(passed=2)
    assert f"mp-chaos: spec='{SPEC}' seed=11" in again.stdout.str()
    assert _reproduce_args(again)[-2:] == args[-2:]


def test_the_reproduce_line_keeps_arguments_after_a_double_dash_as_paths(suite):
    result = run(suite, f"--mp-chaos={SPEC}", "--mp-chaos-seed=4", "--", "test_suite.py")
    result.assert_outcomes(passed=2)
    args = _reproduce_args(result)
    assert args[-4:] == [f"--mp-chaos={SPEC}", "--mp-chaos-seed=4", "--", "test_suite.py"]
