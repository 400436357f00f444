"""The HTML reports of a chaos run: ``pytest --mp-chaos-report=r.html`` and ``mpire-fault run --html``.

Real pools do not emit events yet, so the tests play the pool: code running
inside the test (or inside the scenario's workers) writes event logs with
``EventLog.from_env``, exactly where a pool would.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SIMULATE = """
import os
from mpire_fault.events import EventLog, EVENTS_DIR_ENV

def simulate(pool, fault):
    log = EventLog.from_env(pool)
    assert log is not None, "the plugin did not set " + EVENTS_DIR_ENV
    with log:
        log.emit("worker_started", worker_id=0, pid=os.getpid(), start_method="fork")
        log.emit("task_started", task_id=1, worker_id=0, pid=os.getpid(), item=0)
        if fault:
            log.emit("fault_injected", worker_id=0, pid=os.getpid(), site="task.start", action="raise",
                     term=f"task.start=raise({pool})", task_id=1, item=0)
            log.emit("task_failed", task_id=1, worker_id=0, pid=os.getpid(), item=0, error="Boom: <" + pool + ">",
                     cause="exception")
        else:
            log.emit("task_finished", task_id=1, worker_id=0, pid=os.getpid())
"""

SUITE = """
from simulate import simulate

def test_a_passes_after_a_fault():
    simulate("pa", True)

def test_b_fails_after_a_fault():
    simulate("pb", True)
    assert False, "this test breaks under chaos"

def test_c_without_a_fault():
    simulate("pc", False)
"""

CONFTEST = """
import os, sys
sys.path.insert(0, os.path.dirname(__file__))
"""


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(simulate=SIMULATE, test_suite=SUITE, conftest=CONFTEST)
    return pytester


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=120)


def sections(page: str) -> list[str]:
    return re.findall(r"<section class=\"(\w*)\"><h2>([^<]*)</h2>", page)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_an_html_report_has_a_section_per_test_with_a_fault_failing_first(suite, tmp_path, workers):
    report = tmp_path / "r.html"
    result = run(suite, *workers, "--mp-chaos=idle=off", "--mp-chaos-seed=4", f"--mp-chaos-report={report}")
    result.assert_outcomes(passed=2, failed=1)
    page = report.read_text()
    assert sections(page) == [("failed", "test_suite.py::test_b_fails_after_a_fault"),
                              ("passed", "test_suite.py::test_a_passes_after_a_fault")]
    assert "test_c_without_a_fault" not in page
    assert "task.start=raise(pb)" in page and "Boom: &lt;pb&gt;" in page and "<svg" in page
    assert "outcome: FAILED" in page and "seed: 4" in page and "reproduce: pytest" in page
    assert "tests: 3 run, 1 failed, 2 saw a fault" in page


def test_no_events_gives_a_page_that_says_so(pytester, tmp_path):
    pytester.makepyfile(test_quiet="def test_nothing():\n    assert True\n")
    report = tmp_path / "r.html"
    run(pytester, "--mp-chaos=idle=off", f"--mp-chaos-report={report}").assert_outcomes(passed=1)
    page = report.read_text()
    assert "No test saw a fault. No events were recorded." in page and "<script>" in page


def test_a_json_path_still_gets_json_and_no_events_folder(suite, tmp_path):
    report = tmp_path / "r.json"
    suite.makepyfile(test_env="""
        import os
        def test_env():
            assert "MP_CHAOS_EVENTS_DIR" not in os.environ  # pools log events only for an HTML report
        """)
    result = run(suite, "--mp-chaos=idle=off", f"--mp-chaos-report={report}", "test_env.py")
    result.assert_outcomes(passed=1)
    assert json.loads(report.read_text())["tests"][0]["outcome"] == "passed"


def test_a_broken_event_log_is_named_and_the_rest_drawn(suite, tmp_path):
    suite.makepyfile(test_broken="""
        import os
        from simulate import simulate
        def test_broken():
            with open(os.path.join(os.environ["MP_CHAOS_EVENTS_DIR"], "1-broken.jsonl"), "w") as f:
                f.write('{"t": 1, "kind": "x", "pool": "p"}\\n[1, 2]\\n{"t": 2, "kind": "x", "pool": "p"}\\n')
            simulate("pd", True)
        """)
    report = tmp_path / "r.html"
    run(suite, "--mp-chaos=idle=off", f"--mp-chaos-report={report}", "test_broken.py").assert_outcomes(passed=1)
    page = report.read_text()
    assert "could not read an event log: 1-broken.jsonl:" in page and "line 2: expected a JSON object" in page
    assert "test_broken.py::test_broken" in page and "task.start=raise(pd)" in page


SCENARIO = """
description = "{description}"
timeout = 60
[pool]
n_jobs = 2
[workload]
function = "emitter:{function}"
n_tasks = 4
[expect]
succeeded = 4
"""

EMITTER = """
import os
from mpire_fault.events import EventLog

def emit(x):
    log = EventLog.from_env("sim%d" % x)  # a worker plays a pool: one log per task
    if log is not None:
        with log:
            log.emit("task_started", task_id=x, worker_id=x % 2, pid=os.getpid(), item=x)
            log.emit("fault_injected", worker_id=x % 2, pid=os.getpid(), site="task.start", action="raise",
                     term="task.start=raise", task_id=x, item=x)
            log.emit("task_finished", task_id=x, worker_id=x % 2, pid=os.getpid())
    return x

def quiet(x):
    return x
"""


def test_the_gate_draws_a_section_per_scenario(tmp_path):
    """The scenarios' own pools write the events: real tasks, the fault chaos injected, in each section."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "emitter.py").write_text(EMITTER)
    faulty = SCENARIO.format(description="one injected fault", function="quiet").replace(
        "[expect]", '[chaos]\nspec = "task.start[task=2]=raise(KeyError)"\n[expect]').replace(
        "succeeded = 4", 'succeeded = 3\nfailures = { 2 = "KeyError" }')
    (folder / "a_events.toml").write_text(faulty)
    (folder / "b_quiet.toml").write_text(SCENARIO.format(description="no faults", function="quiet"))
    (folder / "c_wrong.toml").write_text(SCENARIO.format(description="fails", function="quiet")
                                         .replace("succeeded = 4", "succeeded = 5"))
    page_path = tmp_path / "gate.html"
    done = subprocess.run([sys.executable, "-m", "mpire_fault", "run", str(folder), "--html", str(page_path), "-q"],
                          capture_output=True, text=True, timeout=110, cwd=ROOT)
    assert done.returncode == 1, done.stdout + done.stderr  # c_wrong fails
    page = page_path.read_text()
    assert sections(page) == [("failed", "c_wrong"), ("passed", "a_events"), ("passed", "b_quiet")]
    a_events = page.split("<h2>a_events</h2>")[1].split("</section>")[0]
    # the scenario's four tasks, plus the apply that checks the pool is usable afterwards
    assert "5 tasks (4 finished, 1 exception) · 1 fault ·" in a_events, a_events[:2000]
    b_quiet = page.split("<h2>b_quiet</h2>")[1].split("</section>")[0]
    assert "5 tasks (5 finished) · 0 faults" in b_quiet, b_quiet[:2000]
    assert "FAILED: 2 passed, 1 failed of 3 scenarios" in page


def test_the_gate_refuses_an_unwritable_html_path(tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO.format(description="x", function="quiet"))
    done = subprocess.run([sys.executable, "-m", "mpire_fault", "run", str(scenario), "--html", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2 and "--html: " in done.stderr and "is a folder" in done.stderr


def test_the_scenario_cli_documents_html():
    done = subprocess.run([sys.executable, "-m", "mpire_fault", "run", "--help"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert "--html PATH" in done.stdout
