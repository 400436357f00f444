"""Hostile text and huge inputs: lone surrogates, deep JSON, wrong field types, a page written whole or not at all."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mpire_fault.chaos import journal
from mpire_fault.events import EventLog, EventLogError, iter_events, read_events
from mpire_fault.timeline import html, write_timeline

from .test_reports import run

SURROGATE = os.fsdecode(b"bad byte \xff")  # what a non-UTF-8 file name or message becomes: 'bad byte \udcff'


def timeline_cli(*args):
    return subprocess.run([sys.executable, "-m", "mpire_fault", "timeline", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def failing_log(path, error=SURROGATE):
    with EventLog(path, pool="p") as log:  # the pool's own writer: it must survive the text too
        log.emit("task_dispatched", t=1.0, task_id=5, call=2, worker_id=0, pid=7, items=[4, 4])
        log.emit("task_started", t=1.0, task_id=5, worker_id=0, pid=7, item=4)
        log.emit("task_failed", t=2.0, task_id=5, worker_id=0, pid=7, item=4, error=f"ValueError: {error}",
                 cause="exception")
    return path


def test_a_lone_surrogate_reaches_the_page_escaped(tmp_path):
    log = failing_log(tmp_path / "e.jsonl")
    assert read_events(log)[-1]["error"] == f"ValueError: {SURROGATE}"  # the log round-trips it
    done = timeline_cli(log, "-o", tmp_path / "e.html")
    assert done.returncode == 0 and not done.stderr, done.stderr
    page = (tmp_path / "e.html").read_text(encoding="utf-8")  # valid UTF-8
    assert "ValueError: bad byte \\udcff" in page


def test_the_journal_round_trips_any_rule_text(tmp_path):
    entry = journal.JournalEntry(1.0, "task.start", "raise", 0, 7, 3, 0, 1, f"task.start=raise({SURROGATE})")
    journal.append(str(tmp_path / "j.jsonl"), entry)
    journal.write_jsonl(str(tmp_path / "k.jsonl"), [entry])
    assert journal.read(str(tmp_path / "j.jsonl")) == journal.read(str(tmp_path / "k.jsonl")) == [entry]


def test_a_failed_write_leaves_the_old_page_and_no_temporary_file(tmp_path, monkeypatch):
    out = tmp_path / "t.html"
    write_timeline([], str(out))
    before = out.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(html, "page", broken)
    with pytest.raises(OSError):
        html.write_page(str(out), "title", [])
    assert out.read_bytes() == before and os.listdir(tmp_path) == ["t.html"]


def test_an_unwritable_folder_leaves_no_page(tmp_path):
    with pytest.raises(OSError):
        write_timeline([], str(tmp_path / "no" / "such" / "t.html"))
    assert not (tmp_path / "no").exists()


def test_an_exception_with_a_lone_surrogate_in_a_chaos_report(pytester, tmp_path, monkeypatch):
    temp = tmp_path / "temp"  # where the run's mp-chaos-* directory goes, to see that it is removed
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    pytester.makepyfile(test_surrogate=f"""
        import os
        from mpire_fault import WorkerPool

        def boom(x):
            raise ValueError({SURROGATE!r})

        def test_raises():
            with WorkerPool(1) as pool:
                pool.map(boom, [1])
        """)
    report = tmp_path / "r.html"
    # --tb=no -rN: pytester decodes the run's output strictly, and the message is not UTF-8
    result = run(pytester, "--tb=no", "-rN", "--mp-chaos=task.start=sleep(0.001)", f"--mp-chaos-report={report}")
    result.assert_outcomes(failed=1)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    page = report.read_text(encoding="utf-8")
    assert "test_surrogate.py::test_raises" in page and "bad byte \\udcff" in page
    assert sorted(os.listdir(tmp_path)) == ["r.html", "temp"]  # no temporary page left
    assert os.listdir(temp) == []  # nor the run directory


@pytest.mark.parametrize("line, words", [
    ("[" * 100_000 + "]" * 100_000, "line 2: JSON nested too deeply"),
    (json.dumps({"t": 1, "kind": "task_started", "pool": ["p"], "task_id": 1, "worker_id": 0, "pid": 1,
                 "item": 0}), "line 2: 'pool' must be an integer or a string or null, got a list ['p']"),
    (json.dumps({"t": 1, "kind": "task_started", "pool": "p", "task_id": {"a": 1}, "worker_id": 0, "pid": 1,
                 "item": 0}), "line 2: in a task_started event, 'task_id' must be"),
    (json.dumps({"t": 1, "kind": "worker_died", "pool": "p", "worker_id": 0, "pid": "7", "exit_code": -9,
                 "signal": "SIGKILL", "oom": False, "reason": "r"}), "'pid' must be an integer or null, got a string"),
    (json.dumps({"t": 1, "kind": "worker_died", "pool": "p", "worker_id": 0, "pid": 7, "exit_code": -9,
                 "signal": "SIGKILL", "oom": "no", "reason": "r"}), "'oom' must be true/false or null"),
    (json.dumps({"t": 1, "kind": "task_dispatched", "pool": "p", "task_id": 1, "call": 1, "worker_id": 0,
                 "pid": 1, "items": [1]}), "'items' must be [first, last] item indices, got [1]"),
    (json.dumps({"t": 1, "kind": "task_failed", "pool": "p", "task_id": 1, "worker_id": 0, "pid": 1, "item": 0,
                 "error": "e", "cause": ["death"]}), "'cause' must be a string, got a list"),
    (json.dumps({"t": 1, "kind": "restart_backoff", "pool": "p", "worker_id": 0, "delay": True, "failures": 1}),
     "'delay' must be an integer or a number or null, got true/false True"),
    (json.dumps({"t": 1e308, "kind": "x", "pool": "p"}), "'t' must be within 1e+12 seconds of 0, got 1e+308"),
], ids=["deep", "pool-list", "task-id-object", "pid-string", "oom-string", "items-short", "cause-list",
        "delay-bool", "t-far"])
def test_deep_json_and_wrong_types_are_one_line_naming_the_file_and_line(tmp_path, line, words):
    log = tmp_path / "e.jsonl"
    log.write_text(json.dumps({"t": 0, "kind": "x", "pool": "p"}) + "\n" + line + "\n")
    with pytest.raises(EventLogError, match="line 2") as caught:
        read_events(log)
    assert words in str(caught.value) and caught.value.line == 2
    done = timeline_cli(log, "-o", tmp_path / "e.html")
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"mpire-fault timeline: error: {log}, line 2: ")
    assert not (tmp_path / "e.html").exists()


def test_reading_streams_one_line_at_a_time(tmp_path):
    log = tmp_path / "e.jsonl"
    good = json.dumps({"t": 0, "kind": "x", "pool": "p"})
    log.write_text(f"{good}\n{good}\n{{broken\n")
    events = iter_events(log)
    assert next(events)["t"] == 0 and next(events)["t"] == 0  # read before the bad line is reached
    with pytest.raises(EventLogError, match="line 3"):
        next(events)


def test_a_huge_backoff_delay_stays_inside_the_drawing():
    from mpire_fault.timeline import build
    from mpire_fault.timeline.html import timeline_html

    events = [{"t": 1, "kind": "worker_started", "pool": "p", "worker_id": 0, "pid": 1, "start_method": "fork"},
              {"t": 1.5, "kind": "restart_backoff", "pool": "p", "worker_id": 0, "delay": 1e300, "failures": 3},
              {"t": 2, "kind": "worker_started", "pool": "p", "worker_id": 0, "pid": 2, "start_method": "fork"}]
    drawn = timeline_html(build(events))
    width = float(drawn.split('class="marker m-backoff"')[1].split('width="')[1].split('"')[0])
    assert width <= html.PLOT_WIDTH and len(drawn) < 20_000  # the width was a 300-digit number
