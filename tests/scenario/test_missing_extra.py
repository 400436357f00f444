"""A scenario whose backend needs an extra this install lacks is skipped with the line that installs it.

The plain install (``pip install -e .``) has no ``distributed``; here a
``sitecustomize`` on PYTHONPATH hides it from the gate and from every
scenario process it starts, which is what that install looks like.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL_LINE = 'pip install "mpire_fault[dask]"'

LOCAL = """
description = "three plain tasks on the local backend"
timeout = 30
[workload]
function = "mpire_fault.scenario.workloads:square"
n_tasks = 3
[expect]
succeeded = 3
"""


def test_a_dask_scenario_without_distributed_is_skipped_and_the_gate_passes(tmp_path):
    blocker = tmp_path / "site"
    blocker.mkdir()
    # None in sys.modules makes `import distributed` raise ModuleNotFoundError, as when it is not installed
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['distributed'] = None\n")
    suite = tmp_path / "scenarios"
    suite.mkdir()
    (suite / "local_square.toml").write_text(textwrap.dedent(LOCAL))
    shutil.copy(ROOT / "scenarios" / "dask_apply_exit_isolated.toml", suite)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")])))
    junit, report = tmp_path / "junit.xml", tmp_path / "gate.json"
    done = subprocess.run([sys.executable, "-m", "mpire_fault", "run", str(suite), "--junit", str(junit),
                           "--json", str(report)], capture_output=True, text=True, timeout=90, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CRASH" not in done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("dask_apply_exit_isolated"))
    assert "SKIP" in row and INSTALL_LINE in row
    assert "PASSED: 1 passed, 1 skipped of 2 scenarios" in done.stdout

    data = json.loads(report.read_text())
    assert data["passed"] is True and data["counts"]["skipped"] == 1 and data["counts"]["passed"] == 1
    skipped = next(s for s in data["scenarios"] if s["name"] == "dask_apply_exit_isolated")
    assert skipped["status"] == "skipped" and INSTALL_LINE in skipped["reason"]

    suite_xml = ET.parse(junit).getroot().find("testsuite")
    assert suite_xml.get("skipped") == "1" and suite_xml.get("failures") == "0" and suite_xml.get("errors") == "0"
    case = next(c for c in suite_xml.iter("testcase") if c.get("name") == "dask_apply_exit_isolated")
    assert INSTALL_LINE in case.find("skipped").get("message")


def test_a_gate_that_skipped_everything_did_not_pass(tmp_path):
    from mpire_fault.scenario.runner import ScenarioResult, gate_passed

    skipped = ScenarioResult("a.toml", "a", "skipped", 0.1, detail=INSTALL_LINE)
    passed = ScenarioResult("b.toml", "b", "passed", 0.1)
    assert gate_passed([skipped, passed]) and not gate_passed([skipped]) and not gate_passed([])
