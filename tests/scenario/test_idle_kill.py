"""scenarios/idle_kill.toml kills a worker that holds nothing (issue 14, item 7).

The gate's checks (no failure, one restart) also passed when the "idle"
worker had in fact been handed a task and it was requeued; this test reads
the observation itself: nothing was requeued, the only death owned no task,
and the only fault was worker 1's idle SIGKILL. The same file is also run
under spawn, where the worker's slot and its siblings' names cross a fresh
interpreter.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "idle_kill.toml"


def test_idle_kill_kills_a_worker_that_holds_nothing(tmp_path):
    folder = tmp_path / "scenarios"
    folder.mkdir()
    text = SCENARIO.read_text()
    (folder / "idle_kill.toml").write_text(text)
    assert "n_jobs = 2\n" in text
    (folder / "idle_kill_spawn.toml").write_text(text.replace("n_jobs = 2\n", 'n_jobs = 2\nstart_method = "spawn"\n'))
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "mpire_fault", "run", str(folder), "-q", "--json", str(report)],
                          capture_output=True, text=True, timeout=100, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    scenarios = json.loads(report.read_text())["scenarios"]
    assert sorted(s["name"] for s in scenarios) == ["idle_kill", "idle_kill_spawn"]
    for scenario in scenarios:
        observed = scenario["observed"]
        stats = observed["stats"]
        assert stats["tasks_requeued"] == 0, f"{scenario['name']}: the killed worker held a task: {stats}"
        assert stats["tasks_failed"] == 0 and stats["restarts"] == 1, stats
        assert [(d["worker_id"], d["task"], d["exitcode"]) for d in stats["deaths"]] == [(1, None, -9)], stats
        assert [(e["site"], e["action"], e["worker_id"]) for e in observed["journal"]] == [("idle", "sigkill", 1)]
        assert all(count == 1 for count in observed["executions"].values())
