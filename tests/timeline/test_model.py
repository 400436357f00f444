"""Events -> lanes, bars, markers, aborts and the summary."""
from __future__ import annotations

import pytest

from mpire_fault.events import read_events
from mpire_fault.timeline import build
from mpire_fault.timeline.html import timeline_html

from .synthetic import chaos_run


@pytest.fixture
def restarts(fixtures):
    return build(read_events(fixtures / "restarts.jsonl"))


def ev(t, kind, **fields):
    return {"t": t, "kind": kind, "pool": "p", **fields}


def test_one_lane_per_worker_slot_across_restarts(restarts):
    assert [(lane.label, lane.pids) for lane in restarts.lanes] == [("worker 0", [501, 503]), ("worker 1", [502])]
    kinds = [(m.lane, m.kind) for m in restarts.markers]
    assert kinds.count((0, "restart")) == 1 and kinds.count((0, "death")) == 2
    assert (0, "backoff") in kinds and (0, "fault") in kinds and (1, "exit") in kinds
    restart = next(m for m in restarts.markers if m.kind == "restart")
    assert restart.t == pytest.approx(100.170) and "503" in restart.label


def test_bars_take_the_outcome_of_what_ended_them(restarts):
    bars = [(b.task_id, b.lane, b.outcome, b.attempt) for b in restarts.bars]
    assert bars == [(1, 0, "finished", None), (2, 1, "exception", None), (3, 0, "requeued", None),
                    (3, 1, "finished", 1), (4, 0, "timeout", None), (5, 1, "aborted", None)]
    failed = restarts.bars[1]
    assert failed.error == "ValueError: <b>bad</b> & worse" and failed.item == 1 and failed.pid == 502
    assert failed.call == 1 and failed.items == [1, 1]


def test_the_summary(restarts):
    s = restarts.summary
    assert (s.tasks, s.faults, s.deaths, s.restarts, s.aborts) == (6, 1, 2, 1, 1)
    assert s.outcomes == {"finished": 2, "exception": 1, "timeout": 1, "aborted": 2, "requeued": 1}
    assert s.recovery_mean == pytest.approx(0.080) and s.recoveries == 1  # the second death had no replacement
    assert s.duration == pytest.approx(0.310)


def test_an_abort_is_one_line_for_the_pool(restarts):
    assert [(a.t, a.call, a.reason) for a in restarts.aborts] == [(100.302, 1, "map item 3 timed out")]


def test_a_death_without_requeue_is_died_and_a_cause_after_the_death_amends_it():
    events = [ev(0, "worker_started", worker_id=0, pid=1, start_method="fork"),
              ev(1, "task_started", task_id="a", worker_id=0, pid=1, item=0),
              ev(1, "task_started", task_id="b", worker_id=1, pid=2, item=1),
              ev(2, "worker_died", worker_id=0, pid=1, exit_code=-9, signal="SIGKILL", oom=True, reason="oom"),
              ev(2.5, "worker_died", worker_id=1, pid=2, exit_code=-9, signal="SIGKILL", oom=False, reason="t/o"),
              ev(2.6, "task_failed", task_id="b", worker_id=1, pid=2, item=1, error="Timeout", cause="timeout"),
              ev(3, "task_started", task_id="c", worker_id=1, pid=3, item=2)]
    timeline = build(events)
    assert [(b.task_id, b.outcome, b.end) for b in timeline.bars] == [("a", "died", 2), ("b", "timeout", 2.5),
                                                                      ("c", "open", 3)]
    death = next(m for m in timeline.markers if m.kind == "death")
    assert death.label == "died: SIGKILL (OOM)"


def test_a_start_on_another_process_ends_the_earlier_attempt_and_items_of_one_task_are_one_bar():
    events = [ev(1, "task_started", task_id=7, worker_id=0, pid=1, item=0),
              ev(2, "task_started", task_id=7, worker_id=0, pid=1, item=1),
              ev(3, "task_started", task_id=7, worker_id=1, pid=2, item=0),
              ev(4, "task_finished", task_id=7, worker_id=1, pid=2)]
    assert [(b.lane, b.start, b.end, b.outcome, b.item) for b in build(events).bars] == [
        (0, 1, 3, "requeued", 1), (1, 3, 4, "finished", 0)]


def test_events_out_of_order_and_unknown_kinds():
    events = [ev(2, "task_finished", task_id=1, worker_id=0, pid=1), ev(1.5, "new_kind_from_the_future"),
              ev(1, "task_started", task_id=1, worker_id=0, pid=1, item=0)]
    timeline = build(events)
    assert [(b.outcome, b.start, b.end) for b in timeline.bars] == [("finished", 1, 2)]


def test_lanes_of_several_pools_are_named_by_pool():
    events = [dict(ev(1, "task_started", task_id=1, worker_id=0, pid=1, item=0), pool="b"),
              dict(ev(1, "task_started", task_id=1, worker_id=0, pid=2, item=0), pool="a"),
              dict(ev(2, "fault_injected", worker_id=None, pid=3, site="init", action="raise", term="init=raise",
                      task_id=None, item=None), pool="a")]
    assert [lane.label for lane in build(events).lanes] == ["a · pool", "a · worker 0", "b · worker 0"]


def test_no_events_is_an_empty_timeline():
    timeline = build([])
    assert timeline.empty and timeline.summary.tasks == 0 and timeline.summary.recovery_mean is None


def test_a_synthetic_chaos_run_adds_up():
    events = chaos_run(n_tasks=300, n_workers=4, fault_rate=0.2, seed=5, abort_at_task=250)
    timeline = build(events)
    s = timeline.summary
    assert s.tasks == 300 and len(timeline.lanes) == 4 and s.aborts == 1
    assert s.faults == sum(e["kind"] == "fault_injected" for e in events)
    assert s.deaths == s.restarts == sum(e["kind"] == "worker_died" for e in events)
    assert s.outcomes["aborted"] >= 40  # the tasks still queued when task 250 failed
    assert not [b for b in timeline.bars if b.outcome == "open"]


def test_a_crash_loop_keeps_the_first_pids_and_counts_the_rest():
    events = []
    for pid in range(1000, 1030):
        events += [ev(pid, "worker_started", worker_id=0, pid=pid, start_method="fork"),
                   ev(pid + 0.5, "worker_died", worker_id=0, pid=pid, exit_code=1, signal=None, oom=False, reason="r")]
    [lane] = build(events).lanes
    assert lane.pids == list(range(1000, 1020)) and lane.processes == 30
    drawn = timeline_html(build(events))
    assert "worker 0 ↻29" in drawn and "1019 …\nprocesses started: 30" in drawn
