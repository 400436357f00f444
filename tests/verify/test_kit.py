"""The kit passes on our pool, catches a broken one with a short counterexample, and never hangs on peers."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mpire_fault import WorkerDiedError
from mpire_fault.verify import ADAPTERS, GUARANTEES, available, check, machine_for
from mpire_fault.verify.adapters import MpireFaultAdapter

TestOurPoolAllGuarantees = machine_for(MpireFaultAdapter).TestCase
TestOurPoolAllGuarantees.settings = __import__("hypothesis").settings(
    max_examples=15, stateful_step_count=8, deadline=None, database=None)


@pytest.mark.parametrize("guarantee", list(GUARANTEES))
def test_our_pool_keeps_every_guarantee(guarantee):
    verdict = check("mpire_fault", guarantee, examples=8)
    assert verdict.status == "pass", (verdict.detail, verdict.counterexample)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_our_pool_with_many_examples():
    for guarantee in GUARANTEES:
        verdict = check("mpire_fault", guarantee, examples=30)
        assert verdict.status == "pass", (guarantee, verdict.detail, verdict.counterexample)


class FailsEverythingPendingAdapter(MpireFaultAdapter):
    """A deliberately broken pool: one death fails every task still pending (no isolation, no requeue)."""

    name = "broken"

    def start(self):
        self.deaths_seen = 0
        return super().start()

    def get(self, handle, timeout):
        if self.pool.statistics()["deaths"]:
            handle.wait(timeout)
            raise WorkerDiedError(0, None, -9, task="a pending task, failed with its neighbour")
        return super().get(handle, timeout)


def test_the_kit_catches_a_broken_pool_with_a_short_counterexample(monkeypatch):
    monkeypatch.setitem(ADAPTERS, "broken", FailsEverythingPendingAdapter)
    verdict = check("broken", "apply-isolation", examples=40)
    assert verdict.status == "fail"
    assert "[apply-isolation]" in verdict.detail
    steps = [line for line in verdict.counterexample.splitlines() if "state." in line]
    assert steps and len(steps) <= 6, verdict.counterexample  # shrunk to a few readable steps
    # the death comes from the opening step (a SIGKILLed task beside a plain one) or a later submission
    assert any("start_with_the_fault_under_test" in line or "'sigkill'" in line or "'exit'" in line for line in steps)


def test_a_pool_that_hangs_is_a_verdict_not_a_stuck_run():
    verdict = check("multiprocessing", "apply-death-error", examples=5, shrink=False)
    assert verdict.status == "hang" and "never" in verdict.detail
    assert verdict.seconds < 60


@pytest.mark.parametrize("pool", [p for p in ("concurrent.futures", "loky", "pebble", "mpire") if p in available()])
def test_peers_get_an_honest_verdict_without_hanging_the_suite(pool):
    verdict = check(pool, "map-reuse", examples=5, shrink=False)
    assert verdict.status in ("pass", "fail", "hang", "error")
    assert verdict.seconds < 60


def test_cli_json_and_exit_code(tmp_path):
    out = tmp_path / "v.json"
    done = subprocess.run([sys.executable, "-m", "mpire_fault", "verify", "--pool", "mpire_fault", "--examples", "3",
                           "--guarantee", "map-abort", "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| map-abort | pass |" in done.stdout
    assert json.loads(out.read_text())[0]["status"] == "pass"
    bad = subprocess.run([sys.executable, "-m", "mpire_fault", "verify", "--pool", "nope"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "unknown pool 'nope'" in bad.stderr
