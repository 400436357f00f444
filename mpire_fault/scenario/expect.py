"""Judging: what a scenario expected against what its process observed.

Each key of ``[expect]`` (and each default that is on: ``nothing_lost``,
``no_duplicates``, ``pool_usable_after``) becomes one ``Check`` with what
was expected and what was seen, so a failed gate says exactly which promise
broke and how.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .._core.wording import counted
from .loader import Matcher, Scenario
from .schema import LATE_START

_ORDERED = ("map", "imap")


@dataclass(frozen=True, slots=True)
class Check:
    """One expectation, judged."""

    name: str
    passed: bool
    expected: str
    actual: str

    def __str__(self) -> str:
        mark = "ok" if self.passed else "FAILED"
        return f"expect.{self.name} {mark}: expected {self.expected}; got {self.actual}"


def matches(matcher: Matcher, error: dict[str, Any] | None) -> bool:
    """Does an observed error (``execute.describe_error``) fit the matcher? Class names match like ``except``."""
    if error is None or matcher.error not in error.get("mro", [error.get("type")]):
        return False
    if matcher.oom is not None and bool(error.get("oom")) != matcher.oom:
        return False
    if matcher.signal is not None and error.get("signal") != matcher.signal:
        return False
    if matcher.exitcode is not None and error.get("exitcode") != matcher.exitcode:
        return False
    return matcher.message is None or matcher.message in (error.get("message") or "")


def show_error(error: dict[str, Any] | None) -> str:
    if error is None:
        return "no error"
    extras = [f"{k}={error[k]!r}" for k in ("signal", "exitcode", "oom") if error.get(k) not in (None, False)]
    message = (error.get("message") or "").splitlines()[0][:160] if error.get("message") else ""
    return f"{error['type']}{'(' + ', '.join(extras) + ')' if extras else ''}{': ' + message if message else ''}"


def _show_outcome(outcome: dict[str, Any]) -> str:
    if outcome.get("ok") is None:
        return "never resolved"
    if outcome["ok"]:
        return f"success {outcome.get('value')!r}"
    return show_error(outcome.get("error"))


def _indices(items: list[int]) -> str:
    return ", ".join(map(str, items)) if items else "none"


def evaluate(scenario: Scenario, observed: dict[str, Any]) -> list[Check]:
    """Every check of ``scenario.expect`` against ``observed`` (the scenario process's JSON)."""
    expect = scenario.expect
    checks: list[Check] = []
    add = lambda name, passed, expected, actual: checks.append(Check(name, bool(passed), expected, actual))  # noqa: E731
    outcomes: list[dict[str, Any]] = observed.get("outcomes", [])
    executions = {int(k): v for k, v in observed.get("executions", {}).items()}
    map_info = observed.get("map")
    ok = [o for o in outcomes if o.get("ok")]
    bad = [o for o in outcomes if o.get("ok") is False]
    errors = [o["error"] for o in bad] + ([map_info["error"]] if map_info and map_info.get("error") else [])

    if "failures" in expect:
        want: dict[int, Matcher] = expect["failures"]
        wrong = []
        for outcome in outcomes:
            index = outcome["index"]
            if index in want:
                if outcome.get("ok") is not False or not matches(want[index], outcome.get("error")):
                    wrong.append(f"task {index}: expected {want[index]}, got {_show_outcome(outcome)}")
            elif outcome.get("ok") is not True:
                wrong.append(f"task {index}: expected success, got {_show_outcome(outcome)}")
        listed = "; ".join(f"{i}: {m}" for i, m in sorted(want.items()))
        add("failures", not wrong, f"exactly tasks {_indices(sorted(want))} fail ({listed}), "
            f"the other {len(outcomes) - len(want)} succeed", "; ".join(wrong) or "as expected")
    if "succeeded" in expect:
        add("succeeded", len(ok) == expect["succeeded"], f"{counted(expect['succeeded'], 'task')} to succeed",
            f"{len(ok)}")
    if "failed" in expect:
        add("failed", len(bad) == expect["failed"], f"{counted(expect['failed'], 'task')} to fail",
            f"{len(bad)} (tasks {_indices([o['index'] for o in bad])})")
    if "error_types" in expect:
        allowed = expect["error_types"]
        odd = [show_error(e) for e in errors if not set(allowed) & set(e.get("mro", [e["type"]]))]
        add("error_types", not odd, f"every error is one of {', '.join(allowed)}",
            "; ".join(odd) or f"{counted(len(errors), 'error')}, all allowed")
    if "values" in expect:
        wrong = [f"task {o['index']}: expected {expect['values'][o['index']]!r}, got {o.get('value')!r}"
                 for o in ok
                 if 0 <= o["index"] < len(expect["values"]) and o.get("value") != expect["values"][o["index"]]]
        if scenario.is_map and map_info and not map_info.get("aborted") and len(ok) != scenario.n_tasks:
            wrong.append(f"{counted(len(ok), 'value')} for {counted(scenario.n_tasks, 'task')}")
        add("values", not wrong, "every value as listed", "; ".join(wrong[:10]) or "as expected")
    if scenario.is_map and map_info is not None:
        _map_checks(expect, map_info, add)
        _after_abort_checks(expect, map_info, observed, add)
    if expect.get("resolved_once"):
        wrong = _resolved_twice(outcomes)
        add("resolved_once", not wrong, "every task's callback or error_callback ran exactly once, fitting get()",
            "; ".join(wrong[:10]) or f"{counted(len(outcomes), 'task')}, one hook call each")
    if expect.get("nothing_lost"):
        lost = _lost(scenario, outcomes, executions, map_info)
        add("nothing_lost", not lost, "every task resolved exactly once, with its own value",
            "; ".join(lost[:10]) or "as expected")
    if expect.get("no_duplicates"):
        limit = expect["max_executions_per_task"]
        extra = sorted(i for i, n in executions.items() if n > limit)
        add("no_duplicates", not extra, f"no task ran more than {counted(limit, 'time')}",
            ", ".join(f"task {i} ran {executions[i]} times" for i in extra) or
            f"{counted(sum(executions.values()), 'execution')} of {counted(len(executions), 'task')}")
    if "max_seconds" in expect:
        seconds = observed.get("seconds")
        add("max_seconds", seconds is not None and seconds <= expect["max_seconds"],
            f"at most {expect['max_seconds']} s", "did not finish" if seconds is None else f"{seconds:.2f} s")
    restarts = (observed.get("stats") or {}).get("restarts")
    if "min_restarts" in expect:
        add("min_restarts", restarts is not None and restarts >= expect["min_restarts"],
            f"at least {counted(expect['min_restarts'], 'restart')}", f"{restarts}")
    if "max_restarts" in expect:
        add("max_restarts", restarts is not None and restarts <= expect["max_restarts"],
            f"at most {counted(expect['max_restarts'], 'restart')}", f"{restarts}")
    if "max_peak_memory" in expect:
        peak = observed.get("peak_rss") or 0
        add("max_peak_memory", peak <= expect["max_peak_memory"],
            f"peak worker RSS at most {_mib(expect['max_peak_memory'])}", _mib(peak))
    _injected_checks(expect, observed.get("journal", []), add)
    if "workers_ready_within" in expect:
        ready = observed.get("ready_seconds")
        add("workers_ready_within", ready is not None and ready <= expect["workers_ready_within"],
            f"all {scenario.pool.get('n_jobs')} workers alive and ready within {expect['workers_ready_within']:g} s "
            "after the workload", "never, in the time allowed" if ready is None else f"after {ready:.2f} s")
    if expect.get("pool_usable_after"):
        follow = observed.get("follow_up") or {"ok": False, "error": "not run"}
        add("pool_usable_after", follow["ok"], "one more apply on the same pool works",
            "it worked" if follow["ok"] else str(follow.get("error")))
    return checks


def _map_checks(expect: dict[str, Any], map_info: dict[str, Any], add: Any) -> None:
    aborted = bool(map_info.get("aborted"))
    if "map_aborted" in expect:
        add("map_aborted", aborted == expect["map_aborted"],
            "the call aborts" if expect["map_aborted"] else "the call returns every result",
            f"aborted with {show_error(map_info.get('error'))}" if aborted else
            ("it returned every result" if map_info.get("returned") else "the call never returned"))
    if "map_error" in expect:
        add("map_error", aborted and matches(expect["map_error"], map_info.get("error")),
            f"the call raises {expect['map_error']}", show_error(map_info.get("error")) if aborted else
            ("it returned every result" if map_info.get("returned") else "the call never returned"))


def _after_abort_checks(expect: dict[str, Any], map_info: dict[str, Any], observed: dict[str, Any],
                        add: Any) -> None:
    """map_error_item, stopped_after_abort, map_usable_after: what an aborted call must leave behind."""
    error = map_info.get("error")
    if "map_error_item" in expect:
        named = re.search(r"map item (\d+)", (error or {}).get("task") or (error or {}).get("message") or "")
        add("map_error_item", named is not None and int(named.group(1)) == expect["map_error_item"],
            f"the call's error names map item {expect['map_error_item']}",
            f"it names map item {named.group(1)}: {show_error(error)}" if named else
            f"it names no map item: {show_error(error)}")
    if expect.get("stopped_after_abort"):
        wanted = f"no item starts or runs to its end more than {LATE_START:g} s after the call raised"
        raised = map_info.get("raised_ns")
        if raised is None:
            add("stopped_after_abort", True, wanted, "the call did not raise")
        else:
            late = [f"item {index} {what} {(ns - raised) / 1e9:.2f} s after"
                    for what, key in (("started", "starts"), ("ended", "ends"))
                    for index, times in sorted((observed.get(key) or {}).items(), key=lambda kv: int(kv[0]))
                    for ns in times if ns > raised + LATE_START * 1e9]
            add("stopped_after_abort", not late, wanted, ", ".join(late[:10]) or "none did")
    if "map_error_within" in expect:
        faults = [e["time"] for e in observed.get("journal", []) if _action(e) != "off" and e.get("time")]
        raised = map_info.get("raised_ns")
        took = None if not faults or raised is None else \
            (raised - (min(faults) * 1e9 - observed.get("clock_offset_ns", 0))) / 1e9
        add("map_error_within", took is not None and took <= expect["map_error_within"],
            f"the call raises within {expect['map_error_within']:g} s of the first injected fault",
            f"{took:.2f} s" if took is not None else
            ("the call did not raise" if raised is None else "no fault in the chaos journal"))
    if expect.get("map_usable_after"):
        again = observed.get("map_again") or {"ok": False, "error": "not run"}
        add("map_usable_after", again["ok"], "another call of the same mode on the same pool returns every result",
            "it did" if again["ok"] else str(again.get("error")))


def _resolved_twice(outcomes: list[dict[str, Any]]) -> list[str]:
    """Tasks whose hooks did not run exactly once, or ran the one that does not fit get()."""
    wrong = []
    for outcome in outcomes:
        made = outcome.get("hooks") or []
        names = [name for name, _ in made]
        if len(made) != 1:
            wrong.append(f"task {outcome['index']}: {len(made)} hook calls {names}, get() gave "
                         f"{_show_outcome(outcome)}")
        elif (names[0] == "callback") != bool(outcome.get("ok")):
            wrong.append(f"task {outcome['index']}: {names[0]} ran, but get() gave {_show_outcome(outcome)}")
        elif names[0] == "callback" and made[0][1] != [outcome.get("returned_index"), outcome.get("value")]:
            wrong.append(f"task {outcome['index']}: callback got {made[0][1]!r}, get() gave "
                         f"{_show_outcome(outcome)}")
    return wrong


def _lost(scenario: Scenario, outcomes: list[dict], executions: dict[int, int], map_info: dict | None) -> list[str]:
    problems = []
    if scenario.is_map:
        if map_info is None or not map_info.get("returned"):
            return ["the map call never returned (hung)"]
        seen = Counter(o["returned_index"] for o in outcomes)
        problems += [f"task {i} yielded {n} times" for i, n in sorted(seen.items()) if n > 1]
        if not map_info.get("aborted"):
            missing = sorted(set(range(scenario.n_tasks)) - set(seen))
            if missing:
                problems.append(f"no result for tasks {_indices(missing[:20])}")
        if scenario.workload["mode"] in _ORDERED:
            moved = [o for o in outcomes if o["returned_index"] != o["position"]]
            problems += [f"result of task {o['returned_index']} came at position {o['position']}" for o in moved[:5]]
    else:
        problems += [f"task {o['index']} never resolved" for o in outcomes if o.get("ok") is None]
        problems += [f"task {o['index']} got the value of task {o['returned_index']}"
                     for o in outcomes if o.get("ok") and o.get("returned_index") != o["index"]]
    problems += [f"task {o['returned_index']} returned a value but never ran"
                 for o in outcomes if o.get("ok") and executions.get(o["returned_index"], 0) == 0]
    return problems


def _action(entry: dict[str, Any]) -> str:
    action = str(entry.get("action") or entry.get("kind") or "?")
    return action.split("(", 1)[0].strip()


def _injected_checks(expect: dict[str, Any], journal: list[dict[str, Any]], add: Any) -> None:
    actions = Counter(_action(e) for e in journal)
    count = sum(n for a, n in actions.items() if a != "off")
    seen = ", ".join(f"{a}={n}" for a, n in sorted(actions.items())) or "nothing"
    if "injected" in expect:
        add("injected", count == expect["injected"], f"{expect['injected']} injected faults", f"{count} ({seen})")
    if "min_injected" in expect:
        add("min_injected", count >= expect["min_injected"], f"at least {expect['min_injected']} injected faults",
            f"{count} ({seen})")
    if "max_injected" in expect:
        add("max_injected", count <= expect["max_injected"], f"at most {expect['max_injected']} injected faults",
            f"{count} ({seen})")
    if "injected_actions" in expect:
        want = expect["injected_actions"]
        wrong = {a: actions.get(a, 0) for a, n in want.items() if actions.get(a, 0) != n}
        add("injected_actions", not wrong, ", ".join(f"{a}={n}" for a, n in sorted(want.items())), seen)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
