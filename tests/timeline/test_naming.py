"""The timeline names tasks, aborts and deaths with the words and numbers of the errors users see."""
from __future__ import annotations

import re

import pytest

from mpire_fault import WorkerDiedError, WorkerPool
from mpire_fault.events import read_events
from mpire_fault.timeline import build
from mpire_fault.timeline.html import timeline_html

from .test_pool_events import act

pytestmark = pytest.mark.timeout(90)


def ev(t, kind, **fields):
    return {"t": t, "kind": kind, "pool": "p", **fields}


def engine_like_log():
    """What the engine writes: an apply (task_id 14 carries apply task #13), a map whose chunk 7-8 dies at item 8."""
    return [
        ev(0.0, "worker_started", worker_id=0, pid=100, start_method="fork"),
        ev(0.0, "worker_started", worker_id=1, pid=101, start_method="fork"),
        ev(1.0, "task_dispatched", task_id=14, call=9, worker_id=0, pid=100, items=[13, 13]),
        ev(0.9, "task_started", task_id=14, worker_id=0, pid=100, item=13),  # stamped at the handing-over
        ev(1.5, "task_failed", task_id=14, worker_id=0, pid=100, item=13, error="ValueError: no", cause="exception"),
        ev(2.0, "task_dispatched", task_id=21, call=10, worker_id=1, pid=101, items=[5, 6]),
        ev(2.0, "task_dispatched", task_id=22, call=10, worker_id=0, pid=100, items=[7, 8]),
        ev(2.1, "task_started", task_id=22, worker_id=0, pid=100, item=7),
        ev(2.5, "worker_died", worker_id=0, pid=100, exit_code=-9, signal="SIGKILL", oom=False,
           reason="died on its own: SIGKILL(-9)"),
        ev(2.6, "task_failed", task_id=22, worker_id=0, pid=100, item=8, cause="death",
           error="worker 0 (pid 100) died with SIGKILL(-9) while it owned map item 8 (f, chunk of items 7-8)"),
        ev(2.7, "map_aborted", call=10, reason="task 22 failed", worker_id=0),
        ev(2.8, "task_failed", task_id=21, worker_id=None, pid=None, item=None,
           error="its map call was aborted before it began", cause="abort"),
        ev(3.0, "worker_died", worker_id=1, pid=101, exit_code=-9, signal="SIGKILL", oom=False,
           reason="killed by the pool (timeout)"),
        # the journal's lines come last in a log, stamped before the deaths they caused
        ev(2.45, "fault_injected", worker_id=0, pid=100, site="task.start", action="sigkill",
           term="task.start=5%sigkill", task_id=None, item=8),
        ev(2.9, "fault_injected", worker_id=1, pid=101, site="task.start", action="sleep(9)",
           term="task.start=sleep(9)", task_id=None, item=5),
    ]


@pytest.mark.parametrize("in_order", [False, True], ids=["sorted", "as-written"])
def test_tasks_aborts_and_deaths_use_the_errors_words(in_order):
    timeline = build(engine_like_log(), in_order=in_order)
    assert [(b.describe(), b.outcome) for b in timeline.bars] == [
        ("apply task #13", "exception"), ("map item 8 (chunk of items 7-8)", "died")]
    details = timeline.bars[0].details()
    assert details["task"] == "apply task #13" and "14" not in details["task"]
    assert details["log ids"].startswith("task_id 14, call 9 (internal")
    [abort] = timeline.aborts
    assert abort.reason == "map item 8 (chunk of items 7-8) failed" and "died with SIGKILL" in abort.error
    deaths = [m for m in timeline.markers if m.kind == "death"]
    assert deaths[0].label == "died: SIGKILL, by chaos (task.start=5%sigkill)"
    assert deaths[0].details["cause"] == "chaos: task.start=5%sigkill" and "reason" not in deaths[0].details
    assert deaths[1].label == "died: SIGKILL" and deaths[1].details["reason"] == "killed by the pool (timeout)"
    assert timeline.summary.chaos_deaths == 1 and timeline.summary.tasks == 3
    drawn = timeline_html(timeline)
    assert "task 22" not in drawn and "task: 14" not in drawn and "died on its own" not in drawn
    assert "1 abort ·" in drawn and "2 deaths (1 by chaos)" in drawn


def test_a_map_of_one_item_chunks_is_a_map_and_applies_are_applies():
    events = [ev(1, "worker_started", worker_id=0, pid=1, start_method="fork")]
    for task, (call, item) in enumerate([(1, 0), (1, 1), (1, 2), (2, 3), (3, 4)], 1):
        events += [ev(task, "task_dispatched", task_id=task, call=call, worker_id=0, pid=1, items=[item, item]),
                   ev(task, "task_started", task_id=task, worker_id=0, pid=1, item=item),
                   ev(task + 0.5, "task_finished", task_id=task, worker_id=0, pid=1)]
    named = [b.describe() for b in build(events).bars]
    assert named == ["map item 0", "map item 1", "map item 2", "apply task #3", "apply task #4"]


def test_a_real_pool_and_its_errors_agree_with_the_timeline(tmp_path):
    path = tmp_path / "events.jsonl"
    with WorkerPool(2, event_log=path, chaos="task.start[task=3]=sigkill", chaos_seed=1) as pool:
        results = [pool.apply_async(act, (0.01,)) for _ in range(5)]
        errors = {}
        for index, result in enumerate(results):
            try:
                result.get(30)
            except WorkerDiedError as exc:
                errors[index] = str(exc)
        with pytest.raises(WorkerDiedError) as died:  # chaos kills item 3 of the map too
            pool.map(act, [0.01] * 12, chunk_size=2)
    [apply_error] = errors.values()
    said = re.search(r"apply task #\d+", apply_error).group(0)
    map_said = re.search(r"map item \d+", str(died.value)).group(0)
    timeline = build(read_events(path))
    named = {b.describe(): b.outcome for b in timeline.bars}
    assert named[said] == "died", (said, named)
    assert map_said == "map item 3" and named["map item 3 (chunk of items 2-3)"] == "died", named
    [abort] = timeline.aborts
    assert abort.reason == "map item 3 (chunk of items 2-3) failed"
    deaths = [m for m in timeline.markers if m.kind == "death"]
    by_chaos = [m for m in deaths if "by chaos" in m.label]
    assert len(by_chaos) == 2 and all("task.start[task=3]=sigkill" in m.label for m in by_chaos)
    assert all(m.details["reason"].startswith("killed by the pool") for m in deaths if m not in by_chaos)
    assert timeline.summary.chaos_deaths == 2


def test_a_real_map_of_one_item_is_named_a_map(tmp_path):
    """The pool's log says which kind of call sent a task ("form"): a one-item map is no apply."""
    path = tmp_path / "events.jsonl"
    with WorkerPool(1, event_log=path) as pool:
        pool.map(act, [0.01])
    named = [b.describe() for b in build(read_events(path)).bars]
    assert named == ["map item 0"], named


def test_a_map_that_finished_logs_no_abort(tmp_path):
    path = tmp_path / "events.jsonl"
    with WorkerPool(2, event_log=path) as pool:
        assert pool.map(act, [0.0] * 6, chunk_size=2) == [0.0] * 6
    kinds = [event["kind"] for event in read_events(path)]
    assert "task_finished" in kinds and "map_aborted" not in kinds
