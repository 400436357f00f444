"""The expectations about what an aborted map, a terminate() or an idle kill leaves behind: each one fails on a
hand-made bad observation and passes on a good one (judging only, nothing runs)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mpire_fault.scenario import ScenarioInvalid, evaluate, load_scenario

from .test_expect import by_name, died, observation, ok

S = 1_000_000_000  # ns


def scenario(tmp_path: Path, expect: str, mode: str = "map", workload: str = "", chaos: bool = True):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(f"""
        [workload]
        function = "mpire_fault.scenario.workloads:square"
        mode = "{mode}"
        n_tasks = 8
        """) + textwrap.dedent(workload) + ("[chaos]\nspec = 'task.start[task=3]=sigkill'\n" if chaos else "")
        + "[expect]\n" + textwrap.dedent(expect))
    return load_scenario(path)


def aborted(error: dict | None = None, raised_ns: int | None = 10 * S) -> dict:
    return {"returned": True, "aborted": True, "error": error or died(), "yielded": 0, "raised_ns": raised_ns}


def test_map_error_item_reads_the_item_the_error_names(tmp_path):
    s = scenario(tmp_path, "map_error_item = 3\n")
    right = dict(died(), task="map item 3 (square)", message="worker 0 died while it owned map item 3 (square)")
    wrong = dict(died(), task="map item 4 (square, chunk of items 2-3)", message="... map item 4 ...")
    assert by_name(evaluate(s, observation([], map=aborted(right))))["map_error_item"].passed
    check = by_name(evaluate(s, observation([], map=aborted(wrong))))["map_error_item"]
    assert not check.passed and "names map item 4" in check.actual
    unnamed = by_name(evaluate(s, observation([], map=aborted(dict(died(), task=None)))))["map_error_item"]
    assert not unnamed.passed and "names no map item" in unnamed.actual


def test_stopped_after_abort_catches_a_late_start_and_a_late_end(tmp_path):
    s = scenario(tmp_path, "stopped_after_abort = true\n")
    raised = 10 * S
    good = observation([], map=aborted(raised_ns=raised), starts={"0": [8 * S], "2": [9 * S], "3": [9 * S]},
                       ends={"0": [9 * S], "2": [raised + S // 20]})  # within the grace: not late
    assert by_name(evaluate(s, good))["stopped_after_abort"].passed
    late = observation([], map=aborted(raised_ns=raised), starts={"2": [9 * S], "5": [raised + S // 2]},
                       ends={"2": [raised + S]})
    check = by_name(evaluate(s, late))["stopped_after_abort"]
    assert not check.passed
    assert "item 5 started 0.50 s after" in check.actual and "item 2 ended 1.00 s after" in check.actual


def test_map_error_within_times_the_raise_from_the_first_fault(tmp_path):
    s = scenario(tmp_path, "map_error_within = 1.0\n")
    offset = 1_700_000_000 * S  # wall clock minus monotonic clock
    journal = [{"time": (offset + 9 * S) / S, "site": "task.start", "action": "sigkill"}]
    prompt = observation([], map=aborted(raised_ns=9 * S + S // 10), journal=journal, clock_offset_ns=offset)
    check = by_name(evaluate(s, prompt))["map_error_within"]
    assert check.passed and check.actual == "0.10 s"
    slow = observation([], map=aborted(raised_ns=11 * S), journal=journal, clock_offset_ns=offset)
    check = by_name(evaluate(s, slow))["map_error_within"]
    assert not check.passed and check.actual == "2.00 s"
    assert not by_name(evaluate(s, observation([], map=aborted(), journal=[])))["map_error_within"].passed


def test_map_usable_after(tmp_path):
    s = scenario(tmp_path, "map_usable_after = true\n")
    good = observation([], map=aborted(), map_again={"ok": True, "error": None, "attempts": 1})
    assert by_name(evaluate(s, good))["map_usable_after"].passed
    bad = observation([], map=aborted(), map_again={"ok": False, "error": "no answer before the deadline"})
    check = by_name(evaluate(s, bad))["map_usable_after"]
    assert not check.passed and check.actual == "no answer before the deadline"
    assert not by_name(evaluate(s, observation([], map=aborted())))["map_usable_after"].passed  # never ran


def test_resolved_once_wants_one_fitting_hook_per_task(tmp_path):
    s = scenario(tmp_path, "resolved_once = true\npool_usable_after = false\n", mode="apply_async", chaos=False,
                 workload="callbacks = true\ncallback_pause = 1.5\nterminate_after = 0.2\n")
    failed = {"index": 1, "ok": False, "error": died()}
    good = [dict(ok(0), hooks=[["callback", [0, 0]]]), dict(failed, hooks=[["error_callback", died()]])]
    assert by_name(evaluate(s, observation(good)))["resolved_once"].passed
    twice = [dict(ok(0), hooks=[["callback", [0, 0]], ["error_callback", died()]]),
             dict(failed, hooks=[["error_callback", died()]])]
    check = by_name(evaluate(s, observation(twice)))["resolved_once"]
    assert not check.passed and "task 0: 2 hook calls ['callback', 'error_callback']" in check.actual
    mismatched = [dict(ok(0), hooks=[["error_callback", died()]]), dict(failed, hooks=[])]
    check = by_name(evaluate(s, observation(mismatched)))["resolved_once"]
    assert "task 0: error_callback ran, but get() gave success 0" in check.actual
    assert "task 1: 0 hook calls" in check.actual
    other_value = [dict(ok(0), hooks=[["callback", [0, 99]]]), dict(failed, hooks=[["error_callback", died()]])]
    assert not by_name(evaluate(s, observation(other_value)))["resolved_once"].passed


def test_workers_ready_within(tmp_path):
    s = scenario(tmp_path, "workers_ready_within = 2.0\n", mode="apply", chaos=False)
    assert by_name(evaluate(s, observation([ok(0)], ready_seconds=0.3)))["workers_ready_within"].passed
    late = by_name(evaluate(s, observation([ok(0)], ready_seconds=2.5)))["workers_ready_within"]
    never = by_name(evaluate(s, observation([ok(0)], ready_seconds=None)))["workers_ready_within"]
    assert not late.passed and late.actual == "after 2.50 s"
    assert not never.passed and never.actual == "never, in the time allowed"


@pytest.mark.parametrize("workload, expect, key", [
    ("", "map_error_item = 3\n", "expect.map_error_item"),  # apply mode
    ("callbacks = true\n", "", "workload.callbacks"),  # map mode
    ("", "resolved_once = true\n", "expect.resolved_once"),  # no callbacks to count
    ("callback_pause = 1.0\n", "", "workload.callback_pause"),  # no callbacks
    ("terminate_after = 0.5\n", "", "expect.pool_usable_after"),  # a terminated pool cannot be used after
])
def test_inconsistent_settings_are_invalid(tmp_path, workload, expect, key):
    mode = "map" if "callbacks" in workload else "apply_async"
    with pytest.raises(ScenarioInvalid) as caught:
        scenario(tmp_path, expect, mode=mode, workload=workload, chaos=False)
    assert key in {p.key for p in caught.value.problems}


def test_map_error_within_needs_chaos(tmp_path):
    with pytest.raises(ScenarioInvalid) as caught:
        scenario(tmp_path, "map_error_within = 1.0\n", chaos=False)
    assert "expect.map_error_within" in {p.key for p in caught.value.problems}
