"""The gate end to end: real scenario processes, bounded, leaving nothing behind.

Every command here has a subprocess timeout far below pytest-timeout's 120 s,
and the suite-wide ``no_orphans`` fixture proves no process outlives a test.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mpire_fault.scenario import run_scenario

ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 90

PASSING = """
description = "ten tasks, task 3 is SIGKILLed by the task itself"
timeout = 30
[workload]
function = "mpire_fault.scenario.workloads:misbehave"
n_tasks = 10
kwargs = { kill_on = 3 }
[expect]
failures = { 3 = { error = "WorkerDiedError", signal = "SIGKILL" } }
succeeded = 9
min_restarts = 1
"""

# The same run, with two promises that do not hold: the gate must say which.
FALSE = PASSING.replace('signal = "SIGKILL"', 'signal = "SIGSEGV"').replace("min_restarts = 1", "max_restarts = 0")


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def gate(*args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpire_fault", "run", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_a_passing_scenario_passes(tmp_path):
    result = run_scenario(str(write(tmp_path, "passing.toml", PASSING)))
    assert result.status == "passed", result.reason()
    assert {c.name for c in result.checks} >= {"failures", "succeeded", "nothing_lost", "no_duplicates",
                                               "min_restarts", "pool_usable_after"}
    assert result.observed["stats"]["restarts"] >= 1
    assert sum(result.observed["executions"].values()) == 10


def test_a_false_expectation_fails_the_gate_and_says_which(tmp_path):
    path = write(tmp_path, "false.toml", FALSE)
    junit, report = tmp_path / "out" / "junit.xml", tmp_path / "out" / "report.json"
    proc = gate(str(path), "--junit", str(junit), "--json", str(report))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout
    assert "expect.failures FAILED" in proc.stdout
    assert "task 3: expected WorkerDiedError(signal='SIGSEGV'), got WorkerDiedError(signal='SIGKILL'" in proc.stdout
    assert "expect.max_restarts FAILED" in proc.stdout
    data = json.loads(report.read_text())
    assert data["passed"] is False and data["counts"]["failed"] == 1
    (scenario,) = data["scenarios"]
    assert scenario["status"] == "failed"
    assert {c["name"] for c in scenario["checks"] if not c["passed"]} == {"failures", "max_restarts"}
    case = ET.parse(junit).getroot().find("testsuite/testcase")
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "ExpectationFailed"
    assert "expect.failures" in failure.get("message")


def test_a_task_that_hangs_is_reported_before_the_hard_timeout(tmp_path):
    # 8 s: room for a loaded machine to start the scenario's process and pool before the bound
    path = write(tmp_path, "hang_task.toml", """
        timeout = 8
        [workload]
        function = "mpire_fault.scenario.workloads:hang_on"
        n_tasks = 3
        kwargs = { on = 1 }
        [expect]
        failed = 0
        """)
    started = time.monotonic()
    result = run_scenario(str(path))
    assert time.monotonic() - started < 30
    assert result.status == "failed"
    lost = {c.name: c for c in result.checks}["nothing_lost"]
    assert not lost.passed and "task 1 never resolved" in lost.actual


def test_a_scenario_process_that_hangs_is_killed_at_its_timeout(tmp_path):
    write(tmp_path, "hangs_on_import.py", "import time\ntime.sleep(600)\n\ndef f(x):\n    return x\n")
    path = write(tmp_path, "hang_process.toml", """
        timeout = 2
        [workload]
        function = "hangs_on_import:f"
        n_tasks = 1
        """)
    started = time.monotonic()
    result = run_scenario(str(path))
    assert time.monotonic() - started < 30
    assert result.status == "timeout"
    assert "timed out" in result.reason() and "2 s" in result.reason()
    assert "it was importing the workload function" in result.reason()
    assert "hangs_on_import.py" in result.detail  # the faulthandler stack dump shows where it hung


def test_a_scenario_process_that_crashes_is_a_failed_scenario(tmp_path):
    write(tmp_path, "dies_on_import.py", "import os\nos._exit(3)\n")
    path = write(tmp_path, "crash.toml", """
        [workload]
        function = "dies_on_import:f"
        n_tasks = 1
        """)
    result = run_scenario(str(path))
    assert result.status == "crashed"
    assert "exit code 3" in result.reason()


def test_malformed_scenarios_are_reported_and_the_others_still_run(tmp_path):
    folder = tmp_path / "suite"
    write(folder, "a_good.toml", PASSING)
    write(folder, "b_unknown_key.toml", PASSING.replace("n_tasks = 10", "n_tasks = 10\nchunksize = 2"))
    write(folder, "c_wrong_type.toml", PASSING.replace("n_tasks = 10", 'n_tasks = "ten"'))
    write(folder, "d_unimportable.toml", PASSING.replace("mpire_fault.scenario.workloads:misbehave",
                                                         "mpire_fault.scenario.workloads:no_such_function"))
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    proc = gate(str(folder), "--junit", str(junit), "--json", str(report))
    assert proc.returncode == 2, proc.stdout + proc.stderr  # malformed input: the usage-error status
    statuses = {s["name"]: s for s in json.loads(report.read_text())["scenarios"]}
    assert statuses["a_good"]["status"] == "passed"
    for name, key, words in (("b_unknown_key", "workload.chunksize", "did you mean 'chunk_size'"),
                             ("c_wrong_type", "workload.n_tasks",
                              "expected an integer from 0 to 100000, got string 'ten'"),
                             ("d_unimportable", "workload.function", "no_such_function")):
        scenario = statuses[name]
        assert scenario["status"] == "invalid"
        (problem,) = scenario["problems"]
        assert problem["key"] == key and words in problem["message"]
        assert problem["path"].endswith(f"{name}.toml")
        assert f"{name}.toml: {key}: " in proc.stdout
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "4" and root.get("errors") == "3" and root.get("failures") == "0"
    errors = [case.find("error") for case in root.iter("testcase") if case.find("error") is not None]
    assert {e.get("type") for e in errors} == {"InvalidScenario"}
    assert "[1/4]" in proc.stderr and "[4/4]" in proc.stderr  # progress


@pytest.mark.parametrize("args, words", [
    (["does/not/exist.toml"], "no such file or folder: does/not/exist.toml"),
    (["--jobs", "0", "scenarios"], "expected a positive integer, got 0"),
    (["--json", "scenarios", "scenarios"], "--json: scenarios is a folder"),
    ([], "the following arguments are required: PATH"),
])
def test_bad_command_lines_get_a_clear_error(args, words):
    proc = gate(*args, timeout=30)
    assert proc.returncode == 2
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_folder_without_scenarios_is_a_usage_error(tmp_path):
    proc = gate(str(tmp_path), timeout=30)
    assert proc.returncode == 2
    assert "no scenario files (*.toml)" in proc.stderr
