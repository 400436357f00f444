"""Judging observations against expectations, without running anything."""
from __future__ import annotations

import textwrap
from pathlib import Path

from mpire_fault.scenario import evaluate, load_scenario
from mpire_fault.scenario.expect import matches
from mpire_fault.scenario.loader import Matcher


def scenario(tmp_path: Path, mode: str = "apply_async", expect: str = "", n_tasks: int = 3, chaos: bool = False):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(f"""
        [workload]
        function = "mpire_fault.scenario.workloads:square"
        mode = "{mode}"
        n_tasks = {n_tasks}
        """) + ("[chaos]\nspec = 'task.start=off'\n" if chaos else "") + "[expect]\n" + textwrap.dedent(expect))
    return load_scenario(path)


def died(signal: str | None = "SIGKILL", exitcode: int = -9, oom: bool = False) -> dict:
    return {"type": "WorkerDiedError", "mro": ["WorkerDiedError", "RuntimeError", "Exception", "BaseException",
                                               "object"],
            "message": "worker 0 (pid 1) died", "signal": signal, "exitcode": exitcode, "oom": oom}


def ok(index: int, value=None, returned=None) -> dict:
    return {"index": index, "ok": True, "returned_index": index if returned is None else returned,
            "value": index * index if value is None else value}


def observation(outcomes, executions=None, **extra) -> dict:
    base = {"status": "ran", "outcomes": outcomes, "seconds": 0.5, "stats": {"restarts": 1, "deaths": []},
            "executions": executions if executions is not None else {str(o["index"]): 1 for o in outcomes},
            "journal": [], "follow_up": {"ok": True, "error": None}, "peak_rss": 50 * 2**20}
    base.update(extra)
    return base


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


def test_matchers_match_like_except_clauses():
    assert matches(Matcher("WorkerDiedError"), died())
    assert matches(Matcher("RuntimeError"), died())
    assert not matches(Matcher("ValueError"), died())
    assert matches(Matcher("WorkerDiedError", signal="SIGKILL", exitcode=-9, message="died"), died())
    assert not matches(Matcher("WorkerDiedError", oom=True), died())
    assert not matches(Matcher("WorkerDiedError", signal="SIGSEGV"), died())
    assert not matches(Matcher("WorkerDiedError"), None)


def test_a_passing_observation_passes_every_check(tmp_path):
    s = scenario(tmp_path, expect="failures = {1 = {error = 'WorkerDiedError', signal = 'SIGKILL'}}\nsucceeded = 2\n")
    checks = evaluate(s, observation([ok(0), {"index": 1, "ok": False, "error": died()}, ok(2)]))
    assert [c.name for c in checks] == ["failures", "succeeded", "nothing_lost", "no_duplicates",
                                        "pool_usable_after"]
    assert all(c.passed for c in checks), checks


def test_a_wrong_failure_says_which_task_and_what_was_seen(tmp_path):
    s = scenario(tmp_path, expect="failures = {1 = {error = 'WorkerDiedError', signal = 'SIGSEGV'}}\n")
    checks = by_name(evaluate(s, observation([{"index": 0, "ok": False, "error": died()},
                                              {"index": 1, "ok": False, "error": died()}, ok(2)])))
    failures = checks["failures"]
    assert not failures.passed
    assert "task 0: expected success, got WorkerDiedError(signal='SIGKILL'" in failures.actual
    assert "task 1: expected WorkerDiedError(signal='SIGSEGV'), got WorkerDiedError(signal='SIGKILL'" in failures.actual
    assert "expect.failures FAILED" in str(failures)


def test_lost_tasks_and_crossed_values_are_caught(tmp_path):
    s = scenario(tmp_path)
    checks = by_name(evaluate(s, observation([ok(0), ok(1, returned=2), {"index": 2, "ok": None}])))
    lost = checks["nothing_lost"]
    assert not lost.passed
    assert "task 2 never resolved" in lost.actual
    assert "task 1 got the value of task 2" in lost.actual


def test_a_value_without_an_execution_is_lost_and_a_second_run_is_a_duplicate(tmp_path):
    s = scenario(tmp_path)
    checks = by_name(evaluate(s, observation([ok(0), ok(1), ok(2)], executions={"0": 1, "1": 2})))
    assert "task 2 returned a value but never ran" in checks["nothing_lost"].actual
    assert not checks["no_duplicates"].passed
    assert checks["no_duplicates"].actual == "task 1 ran 2 times"


def test_map_checks(tmp_path):
    s = scenario(tmp_path, mode="imap", expect="map_error = {error = 'WorkerDiedError', exitcode = 2}\n")
    outcomes = [dict(ok(0), position=0), dict(ok(2), position=1)]
    aborted = {"returned": True, "aborted": True, "error": died(None, 2), "yielded": 2}
    checks = by_name(evaluate(s, observation(outcomes, map=aborted)))
    assert checks["map_error"].passed
    assert "result of task 2 came at position 1" in checks["nothing_lost"].actual  # imap keeps input order
    hung = {"returned": False, "aborted": False, "error": None, "yielded": 0}
    checks = by_name(evaluate(s, observation([], map=hung)))
    assert checks["map_error"].actual == "the call never returned"
    assert checks["nothing_lost"].actual == "the map call never returned (hung)"


def test_a_map_that_returned_everything_did_not_abort(tmp_path):
    s = scenario(tmp_path, mode="map_unordered", expect="map_aborted = true\n")
    outcomes = [dict(ok(i), position=p) for p, i in enumerate((2, 0, 1))]
    checks = by_name(evaluate(s, observation(outcomes, map={"returned": True, "aborted": False, "yielded": 3})))
    assert not checks["map_aborted"].passed
    assert checks["map_aborted"].actual == "it returned every result"
    assert checks["nothing_lost"].passed  # unordered: any order is fine


def test_budget_checks(tmp_path):
    s = scenario(tmp_path, chaos=True, expect="""
        max_seconds = 0.1
        min_restarts = 2
        max_peak_memory = "10MiB"
        injected = 1
        injected_actions = {sigkill = 1}
        error_types = ["ValueError"]
        """)
    journal = [{"site": "task.start", "action": "exit(1)"}, {"site": "task.start", "action": "off"}]
    checks = by_name(evaluate(s, observation([ok(0), {"index": 1, "ok": False, "error": died()}, ok(2)],
                                             journal=journal)))
    failed = {name for name, c in checks.items() if not c.passed}
    assert failed == {"max_seconds", "min_restarts", "max_peak_memory", "injected_actions", "error_types"}
    assert checks["injected"].passed  # "off" is not a fault
    assert checks["injected_actions"].actual == "exit=1, off=1"
    assert checks["max_peak_memory"].actual == "50.0 MiB"


def test_an_unusable_pool_after_the_workload_fails(tmp_path):
    s = scenario(tmp_path)
    checks = by_name(evaluate(s, observation([ok(0), ok(1), ok(2)],
                                             follow_up={"ok": False, "error": "WorkerInitError: boom"})))
    assert checks["pool_usable_after"].actual == "WorkerInitError: boom"


def test_counted_words_read_right_for_one(tmp_path):
    s = scenario(tmp_path, n_tasks=1, expect="succeeded = 1\nmin_restarts = 1\nerror_types = ['ValueError']\n")
    checks = by_name(evaluate(s, observation([ok(0)])))
    assert checks["succeeded"].expected == "1 task to succeed"
    assert checks["min_restarts"].expected == "at least 1 restart"
    assert checks["no_duplicates"].actual == "1 execution of 1 task"
    assert checks["error_types"].actual == "0 errors, all allowed"
