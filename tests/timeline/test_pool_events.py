"""The pool's own event log (``WorkerPool(event_log=...)``): it says what really happened, in order.

Each test makes something happen to real workers (an exit, a SIGKILL, a
raise, a timeout, a map abort, a requeue, chaos), then reads the log back
and checks the story against what the callers saw: every task resolves
exactly once in the log, a death comes before the failure it causes, and
the timeline draws it.
"""
from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from mpire_fault import TaskTimeoutError, WorkerDiedError, WorkerPool
from mpire_fault.events import EVENTS_DIR_ENV, read_events
from mpire_fault.timeline import write_timeline
from mpire_fault.timeline.model import build

pytestmark = pytest.mark.timeout(90)

TERMINAL = ("task_finished", "task_failed")


def act(x):
    if x == "exit":
        os._exit(3)
    if x == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if x == "raise":
        raise ValueError("bad input")
    if isinstance(x, float):
        time.sleep(x)
    return x


def outcome(result):
    try:
        result.get(30)
        return "ok"
    except WorkerDiedError:
        return "died"
    except TaskTimeoutError:
        return "timeout"
    except ValueError:
        return "raised"


def by_task(events):
    tasks: dict[int, list[str]] = {}
    for event in events:
        if "task_id" in event and event["task_id"] is not None:
            tasks.setdefault(event["task_id"], []).append(event["kind"])
    return tasks


def test_apply_deaths_and_errors_are_logged_in_order(tmp_path):
    path = tmp_path / "events.jsonl"
    work = [1, "exit", 2, "raise", 3, "kill", 4, 5, 6, 7]
    with WorkerPool(2, event_log=path) as pool:
        results = [pool.apply_async(act, (x,)) for x in work]
        seen = [outcome(result) for result in results]
    assert seen.count("died") == 2 and seen.count("raised") == 1
    events = read_events(path)
    times = [e["t"] for e in events if e["kind"] != "task_started"]
    assert times == sorted(times), "events are written in the order they happened"
    kinds = Counter(e["kind"] for e in events)
    assert kinds["worker_died"] == 2
    assert kinds["worker_started"] == 4  # two workers, two replacements (the last may not be ready before the end)
    assert kinds["worker_ready"] >= 2  # at least the two that died had been ready
    failed = [e for e in events if e["kind"] == "task_failed"]
    causes = Counter(e["cause"] for e in failed)
    assert causes == {"death": 2, "exception": 1}
    assert any(e["error"] == "ValueError: bad input" for e in failed)
    for kinds_of_task in by_task(events).values():
        ends = [k for k in kinds_of_task if k in TERMINAL]
        assert len(ends) == 1, f"a task resolves exactly once in the log: {kinds_of_task}"
        assert kinds_of_task[0] == "task_dispatched"
    # a death is logged before the failure it causes, by the same pid
    for failure in (e for e in failed if e["cause"] == "death"):
        deaths = [e for e in events if e["kind"] == "worker_died" and e["pid"] == failure["pid"]]
        assert deaths and deaths[0]["t"] <= failure["t"]
        assert deaths[0]["signal"] in (None, "SIGKILL")


def test_a_map_abort_is_logged_once_with_the_death_that_caused_it(tmp_path):
    path = tmp_path / "events.jsonl"
    with WorkerPool(2, event_log=path) as pool, pytest.raises(WorkerDiedError):
        pool.map(act, [0.01] * 8 + ["kill"] + [0.01] * 40, chunk_size=1)
    events = read_events(path)
    aborts = [e for e in events if e["kind"] == "map_aborted"]
    assert len(aborts) == 1
    death = next(e for e in events if e["kind"] == "task_failed" and e["cause"] == "death")
    assert death["item"] == 8 and aborts[0]["t"] >= death["t"]
    assert aborts[0]["worker_id"] == death["worker_id"]
    # nothing of the call starts after the abort, and every task of it ends once
    later = [e for e in events if e["kind"] == "task_dispatched" and e["t"] > aborts[0]["t"]]
    assert later == []
    for kinds_of_task in by_task(events).values():
        assert len([k for k in kinds_of_task if k in TERMINAL]) <= 1


def test_a_timeout_is_logged_as_a_timeout(tmp_path):
    path = tmp_path / "events.jsonl"
    with WorkerPool(1, event_log=path) as pool:
        assert outcome(pool.apply_async(act, (5.0,), task_timeout=0.2)) == "timeout"
        assert pool.apply(act, (1,)) == 1
    failed = [e for e in read_events(path) if e["kind"] == "task_failed"]
    assert [e["cause"] for e in failed] == ["timeout"]


def test_tasks_queued_behind_a_dying_task_are_requeued_and_finish(tmp_path):
    path = tmp_path / "events.jsonl"
    with WorkerPool(1, event_log=path) as pool:
        for _ in range(20):  # teach the pool that act() is short, so it queues a second task behind the first
            pool.apply(act, (1,))
        results = [pool.apply_async(act, (x,)) for x in ["kill", 2, 3]]
        assert [outcome(r) for r in results] == ["died", "ok", "ok"]
    events = read_events(path)
    requeued = [e["task_id"] for e in events if e["kind"] == "task_requeued"]
    finished = {e["task_id"] for e in events if e["kind"] == "task_finished"}
    assert requeued and set(requeued) <= finished
    for task in requeued:
        assert by_task(events)[task].count("task_dispatched") == 2


def test_a_callable_gets_each_event_and_a_raising_one_never_stops_the_pool():
    got = []
    with WorkerPool(2, event_log=got.append) as pool:
        assert pool.map(act, range(10)) == list(range(10))
    assert {"worker_started", "task_dispatched", "task_finished", "worker_exited"} <= {e["kind"] for e in got}

    def broken(event):
        raise RuntimeError("the callback is broken")

    with WorkerPool(2, event_log=broken) as pool:
        assert pool.map(act, range(10)) == list(range(10))
        assert pool.apply(act, (3,)) == 3


@pytest.mark.parametrize("bad", [42, "/no/such/folder/events.jsonl"])
def test_a_bad_event_log_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="event_log"):
        WorkerPool(1, event_log=bad)


def test_chaos_faults_reach_the_log_and_the_timeline_draws_it(tmp_path):
    path = tmp_path / "events.jsonl"
    with WorkerPool(2, event_log=path, chaos="task.start=20%sigkill", chaos_seed=3) as pool:
        outcomes = [outcome(pool.apply_async(act, (i,))) for i in range(30)]
    events = read_events(path)
    faults = [e for e in events if e["kind"] == "fault_injected"]
    assert len(faults) == outcomes.count("died") > 0
    assert all(f["action"] == "sigkill" and f["site"] == "task.start" for f in faults)
    timeline = build(events)
    assert len(timeline.lanes) == 2
    assert timeline.summary.deaths == len(faults)
    write_timeline(events, str(tmp_path / "t.html"))
    assert (tmp_path / "t.html").stat().st_size > 1000


def test_the_log_is_off_unless_asked(tmp_path, monkeypatch):
    monkeypatch.delenv(EVENTS_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with WorkerPool(2) as pool:
        pool.map(act, range(4))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv(EVENTS_DIR_ENV, str(tmp_path))
    with WorkerPool(2) as pool:
        pool.map(act, range(4))
    logs = list(tmp_path.glob("*.jsonl"))
    assert len(logs) == 1 and read_events(logs[0])


def test_a_log_that_cannot_be_written_never_stops_the_pool(tmp_path, monkeypatch, caplog):
    """Disk full under the log: it is reported once and left out; every task still resolves."""
    from mpire_fault.events import EventLog

    def full(self, kind, **fields):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(EventLog, "emit", full)
    with WorkerPool(2, event_log=tmp_path / "events.jsonl") as pool:
        assert pool.map(act, range(20)) == list(range(20))
        assert outcome(pool.apply_async(act, ("kill",))) == "died"
        assert pool.apply(act, (3,)) == 3
    assert sum("event log cannot be written" in r.getMessage() for r in caplog.records) == 1
