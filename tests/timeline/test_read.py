"""read_events: checked lines, errors naming the line, a truncated last line skipped with a warning."""
from __future__ import annotations

import json
import warnings

import pytest

from mpire_fault.events import EventLogError, read_events

GOOD = {"t": 1.0, "kind": "worker_ready", "pool": "p", "worker_id": 0, "pid": 3}


def lines(path, *rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_a_good_log_reads_back_with_unknown_kinds_and_blank_lines(tmp_path):
    path = lines(tmp_path / "e.jsonl", GOOD, "", {"t": 2, "kind": "something_new", "pool": "p"})
    assert [e["kind"] for e in read_events(path)] == ["worker_ready", "something_new"]


@pytest.mark.parametrize("row, words", [
    ("{not json", "line 2: not JSON"),
    ("[1, 2]", "line 2: expected a JSON object, got list"),
    (json.dumps({"t": 1.0, "pool": "p"}), "line 2: missing field(s) kind"),
    (json.dumps({"t": "soon", "kind": "x", "pool": "p"}), "line 2: 't' must be a finite number"),
    ('{"t": NaN, "kind": "x", "pool": "p"}', "line 2: 't' must be a finite number"),
    (json.dumps({"t": 1, "kind": 5, "pool": "p"}), "line 2: 'kind' must be a string"),
    (json.dumps({"t": 1, "kind": "worker_died", "pool": "p", "worker_id": 0, "pid": 1, "exit_code": -9,
                 "signal": "SIGKILL"}), "line 2: a worker_died event lacks field(s) oom, reason"),
    (json.dumps({"t": 1, "kind": "task_failed", "pool": "p", "task_id": 1, "worker_id": 0, "pid": 1, "item": 1,
                 "error": "e", "cause": "bad luck"}), "line 2: task_failed cause must be one of"),
])
def test_a_malformed_line_is_an_error_naming_it(tmp_path, row, words):
    path = lines(tmp_path / "e.jsonl", GOOD, row, GOOD)
    with pytest.raises(EventLogError, match="line 2") as caught:
        read_events(path)
    assert str(caught.value) == f"{path}, {words}" or str(caught.value).startswith(f"{path}, {words}")
    assert caught.value.line == 2 and isinstance(caught.value, ValueError)


def test_a_truncated_last_line_is_skipped_with_a_warning(fixtures):
    with pytest.warns(UserWarning, match="line 3: skipped a truncated last line"):
        got = read_events(fixtures / "truncated.jsonl")
    assert [e["kind"] for e in got] == ["worker_started", "task_started"]


def test_a_bad_last_line_that_ends_with_a_newline_is_an_error(tmp_path):
    with pytest.raises(EventLogError, match="line 2: not JSON"):
        read_events(lines(tmp_path / "e.jsonl", GOOD, '{"t": 2, "ki'))


def test_the_fixture_with_a_broken_middle_line(fixtures):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(EventLogError, match="malformed.jsonl, line 2: not JSON"):
            read_events(fixtures / "malformed.jsonl")


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_events(tmp_path / "nope.jsonl")
