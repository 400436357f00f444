"""The event log writer: path and callable targets, buffering and flushing, from_env, the documented kinds."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from mpire_fault import events as events_module
from mpire_fault.events import EVENT_KINDS, EVENTS_DIR_ENV, EventLog, read_events

BRIEF_KINDS = {
    "worker_started": ("worker_id", "pid", "start_method"),
    "worker_ready": ("worker_id", "pid"),
    "worker_exited": ("worker_id", "pid", "exit_code"),
    "worker_died": ("worker_id", "pid", "exit_code", "signal", "oom", "reason"),
    "task_dispatched": ("task_id", "call", "worker_id", "pid", "items"),
    "task_started": ("task_id", "worker_id", "pid", "item"),
    "task_finished": ("task_id", "worker_id", "pid"),
    "task_failed": ("task_id", "worker_id", "pid", "item", "error", "cause"),
    "task_requeued": ("task_id", "from_worker"),
    "task_retried": ("task_id", "attempt"),
    "map_aborted": ("call", "reason", "worker_id"),
    "restart_backoff": ("worker_id", "delay", "failures"),
    "fault_injected": ("worker_id", "pid", "site", "action", "term", "task_id", "item"),
}


def test_the_kinds_and_their_fields_are_the_documented_ones():
    assert EVENT_KINDS == BRIEF_KINDS
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "events.md"), encoding="utf-8") as handle:
        doc = handle.read()
    for kind, fields in EVENT_KINDS.items():
        assert f"`{kind}`" in doc
        for name in fields:
            assert f"`{name}`" in doc, (kind, name)
    assert EVENTS_DIR_ENV == "MP_CHAOS_EVENTS_DIR" and EVENTS_DIR_ENV in doc


def test_a_path_target_writes_json_lines_with_t_kind_and_pool(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    path = tmp_path / "e.jsonl"
    before = time.monotonic()
    with EventLog(path, pool="p7") as log:
        log.emit("worker_started", worker_id=0, pid=11, start_method="fork")
        log.emit("task_dispatched", task_id=3, call=1, worker_id=0, pid=11, items=[4, 9])
        log.emit("worker_ready", worker_id=0, pid=11, t=0.0)  # a given t is kept, even 0.0
    assert log.closed
    got = read_events(path)
    assert [e["kind"] for e in got] == ["worker_started", "task_dispatched", "worker_ready"]
    assert all(e["pool"] == "p7" and "test" not in e for e in got)
    assert before <= got[0]["t"] <= got[1]["t"] <= time.monotonic()
    assert got[1]["items"] == [4, 9] and got[2]["t"] == 0.0
    assert list(got[0])[:3] == ["t", "kind", "pool"]


def test_a_callable_target_gets_each_dict_and_the_current_test(monkeypatch):
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/x.py::test_y[a (b)] (call)")
    seen = []
    log = EventLog(seen.append, pool=2)
    log.emit("task_retried", task_id=5, attempt=2)
    log.flush()
    log.close()
    assert seen == [{"t": seen[0]["t"], "kind": "task_retried", "pool": 2, "task_id": 5, "attempt": 2,
                     "test": "tests/x.py::test_y[a (b)]"}]


def test_events_wait_in_the_buffer_until_100_or_close(tmp_path, monkeypatch):
    monkeypatch.setattr(events_module, "FLUSH_SECONDS", 3600.0)
    path = tmp_path / "e.jsonl"
    log = EventLog(path, pool="p")
    for i in range(99):
        log.emit("task_finished", task_id=i, worker_id=0, pid=1)
    assert path.read_bytes() == b""  # buffered: the hot path does not write per event
    log.emit("task_finished", task_id=99, worker_id=0, pid=1)
    assert len(read_events(path)) == 100
    log.emit("task_finished", task_id=100, worker_id=0, pid=1)
    assert len(read_events(path)) == 100
    log.flush()
    assert len(read_events(path)) == 101
    log.emit("task_finished", task_id=101, worker_id=0, pid=1)
    log.close()
    log.close()  # twice is fine
    assert [e["task_id"] for e in read_events(path)] == list(range(102))
    with pytest.raises(ValueError, match="closed"):
        log.emit("task_finished", task_id=1, worker_id=0, pid=1)


def test_a_death_or_an_abort_is_written_at_once_with_what_came_before(tmp_path, monkeypatch):
    monkeypatch.setattr(events_module, "FLUSH_SECONDS", 3600.0)
    path = tmp_path / "e.jsonl"
    log = EventLog(path, pool="p")
    log.emit("task_started", task_id=1, worker_id=0, pid=1, item=0)
    assert path.read_bytes() == b""
    log.emit("worker_died", worker_id=0, pid=1, exit_code=-9, signal="SIGKILL", oom=False, reason="killed")
    assert [e["kind"] for e in read_events(path)] == ["task_started", "worker_died"]
    log.emit("task_retried", task_id=1, attempt=1)
    log.emit("map_aborted", call=1, reason="r", worker_id=0)
    assert len(read_events(path)) == 4
    log.close()


def test_a_forked_child_never_writes_the_parents_buffer(tmp_path, monkeypatch):
    monkeypatch.setattr(events_module, "FLUSH_SECONDS", 3600.0)
    path = tmp_path / "e.jsonl"
    log = EventLog(path, pool="p")
    log.emit("task_started", task_id=1, worker_id=0, pid=1, item=0)
    pid = os.fork()
    if pid == 0:  # the child: flush and close must not write the inherited line
        try:
            log.emit("task_started", task_id=2, worker_id=0, pid=1, item=0)
            log.close()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert path.read_bytes() == b""
    log.close()
    assert [e["task_id"] for e in read_events(path)] == [1]


def test_an_idle_interval_flushes_at_the_next_emit(tmp_path, monkeypatch):
    monkeypatch.setattr(events_module, "FLUSH_SECONDS", 0.05)
    path = tmp_path / "e.jsonl"
    log = EventLog(path, pool="p")
    time.sleep(0.1)
    log.emit("worker_ready", worker_id=0, pid=1)
    assert len(read_events(path)) == 1
    log.close()


def test_a_sigkilled_writer_leaves_every_flushed_line(tmp_path):
    path = tmp_path / "e.jsonl"
    script = textwrap.dedent(f"""
        import os, signal
        from mpire_fault import events
        events.FLUSH_SECONDS = 3600.0
        log = events.EventLog({str(path)!r}, pool="p")
        for i in range(250):
            log.emit("task_started", task_id=i, worker_id=0, pid=1, item=i, error="x" * 300)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert [e["task_id"] for e in read_events(path)] == list(range(200))  # two flushes of 100; 50 were buffered


def test_from_env_names_the_file_after_pid_and_pool(tmp_path, monkeypatch):
    monkeypatch.delenv(EVENTS_DIR_ENV, raising=False)
    assert EventLog.from_env("p1") is None
    monkeypatch.setenv(EVENTS_DIR_ENV, str(tmp_path))
    with EventLog.from_env("pool/1 x") as log:
        log.emit("worker_ready", worker_id=0, pid=1)
    assert os.listdir(tmp_path) == [f"{os.getpid()}-pool_1_x.jsonl"]
    assert read_events(tmp_path / os.listdir(tmp_path)[0])[0]["pool"] == "pool/1 x"


def test_an_unserialisable_field_is_written_as_its_repr(tmp_path):
    path = tmp_path / "e.jsonl"
    with EventLog(path, pool="p") as log:
        log.emit("task_started", task_id=1, worker_id=0, pid=1, item=object)
    assert read_events(path)[0]["item"] == repr(object)
