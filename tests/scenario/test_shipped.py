"""The CI gate itself: every shipped scenario passes, and the reports parse."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from mpire_fault.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.toml"))


def test_the_shipped_scenarios_pass(tmp_path):
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mpire_fault", "run", "scenarios", "--junit", str(junit),
                           "--json", str(report)], capture_output=True, text=True, timeout=110, cwd=ROOT)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    print(f"{len(SHIPPED)} scenarios in {seconds:.1f} s")

    data = json.loads(report.read_text())
    assert data["passed"] is True
    assert data["counts"] == {"passed": len(SHIPPED), "skipped": 0, "failed": 0, "invalid": 0, "timeout": 0,
                              "crashed": 0, "total": len(SHIPPED)}
    names = {s["name"] for s in data["scenarios"]}
    assert "original_report" in names
    # every scenario leaves a usable pool, but one that terminates it on purpose (workload.terminate_after)
    usable = {s.name: s.expect["pool_usable_after"] for s in map(load_scenario, SHIPPED)}
    assert [name for name, wanted in usable.items() if not wanted] == ["apply_terminate_slow_callback"]
    for scenario in data["scenarios"]:
        assert scenario["checks"] and all(c["passed"] for c in scenario["checks"])
        assert scenario["observed"]["follow_up"]["ok"] or not usable[scenario["name"]]

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == str(len(SHIPPED))
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    cases = suite.findall("testcase")
    assert {c.get("name") for c in cases} == names
    assert all(c.find("failure") is None and c.find("error") is None for c in cases)
    assert "PASSED" in proc.stdout
