"""The HTML page: self-contained, escaped, details on every drawn element, size bounded by aggregation."""
from __future__ import annotations

import re

from mpire_fault.events import read_events
from mpire_fault.timeline import build, write_timeline
from mpire_fault.timeline.html import COLOURS, MIN_BAR_PX, PLOT_WIDTH, timeline_html

from .synthetic import chaos_run


def test_a_small_run_draws_each_bar_with_its_details(fixtures, tmp_path):
    out = tmp_path / "t.html"
    write_timeline(read_events(fixtures / "restarts.jsonl"), str(out))
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<script>" in page
    assert not re.search(r"(src|href)=\"https?:", page) and "@import" not in page  # nothing from the network
    assert page.count('class="bar ') == 6 and 'class="agg' not in page
    for outcome in ("finished", "exception", "requeued", "timeout", "aborted"):
        assert f'class="bar o-{outcome}"' in page
        assert COLOURS[outcome] in page
    assert page.count('class="lane"') == 2 and page.count('class="abort"') == 1
    assert 'class="marker m-fault"' in page and "task.start[task=3]=sigkill" in page
    assert page.count('class="marker m-death"') == 2 and 'class="marker m-restart"' in page
    assert 'class="legend"' in page
    assert "ValueError: &lt;b&gt;bad&lt;/b&gt; &amp; worse" in page and "<b>bad</b>" not in page
    # hover text: the task as the pool's errors name it; the log's own ids only labelled as such
    assert "task: map item 1\noutcome: exception\npid: 502\nerror: ValueError" in page
    assert "log ids: task_id 2, call 1 (internal, not item numbers)" in page
    assert "6 tasks" in page and "1 fault ·" in page and "2 deaths" in page and "1 restart ·" in page
    assert "mean death → replacement ready 80 ms" in page


def test_thin_bars_are_aggregated_and_the_size_stays_bounded(tmp_path):
    events = chaos_run(n_tasks=10_000, n_workers=4, fault_rate=0.1, seed=1)
    timeline = build(events)
    drawn = timeline_html(timeline)
    span = timeline.t1 - timeline.t0
    thin = sum((b.end - b.start) / span * PLOT_WIDTH < MIN_BAR_PX for b in timeline.bars)
    assert thin > 9000
    aggregates = drawn.count('class="agg ')
    assert 0 < aggregates <= 4 * PLOT_WIDTH
    assert drawn.count('class="bar ') + aggregates < len(timeline.bars) / 2
    assert "tasks: " in drawn and "(drawn together" in drawn
    assert len(drawn.encode()) < 5_000_000
    bigger = timeline_html(build(chaos_run(n_tasks=40_000, n_workers=4, fault_rate=0.1, seed=2)))
    assert len(bigger.encode()) < 5_000_000  # four times the tasks: the same order of size, set by the pixels


def test_aggregates_take_the_most_severe_colour():
    events = []
    for i in range(2000):  # 2000 tiny tasks on one lane, one of them died
        events.append({"t": i * 1.0, "kind": "task_started", "pool": "p", "task_id": i, "worker_id": 0, "pid": 1,
                       "item": i})
        end = {"t": i + 0.01, "pool": "p", "task_id": i, "worker_id": 0, "pid": 1}
        if i == 1000:
            events.append({**end, "kind": "task_failed", "item": i, "error": "boom", "cause": "death"})
        else:
            events.append({**end, "kind": "task_finished"})
    drawn = timeline_html(build(events))
    assert drawn.count('class="agg o-died"') == 1
    died = re.search(r'class="agg o-died"[^>]*data-d="([^"]*)"', drawn).group(1)
    assert re.search(r"outcomes: (\d+ finished, )?1 died\n", died) and "among them: item 1000 (died)" in died
    assert drawn.count('class="agg o-finished"') >= 1


def test_no_events_says_so(tmp_path):
    out = tmp_path / "t.html"
    write_timeline([], str(out))
    assert "No events were recorded." in out.read_text()


def aborting_calls(n):
    """``n`` map calls, each with one failed chunk that aborts it, one after another on two workers."""
    events = [{"t": 0.0, "kind": "worker_started", "pool": "p", "worker_id": w, "pid": 10 + w, "start_method": "fork"}
              for w in range(2)]
    for i in range(n):
        t, w, task = 1.0 + i * 0.001, i % 2, i + 1
        base = {"pool": "p", "task_id": task, "worker_id": w, "pid": 10 + w}
        events += [{**base, "t": t, "kind": "task_dispatched", "call": task, "items": [0, 3]},
                   {**base, "t": t, "kind": "task_started", "item": 0},
                   {**base, "t": t + 0.0005, "kind": "task_failed", "item": 2, "error": "ValueError: no",
                    "cause": "exception"},
                   {"t": t + 0.0006, "kind": "map_aborted", "pool": "p", "call": task, "reason": f"task {task} failed",
                    "worker_id": w}]
    return events


def test_aborts_are_grouped_per_pixel_so_the_page_does_not_grow_with_them():
    small, big = (timeline_html(build(aborting_calls(n))) for n in (200, 20_000))
    assert 150 < small.count('class="abort"') <= 200  # 200 aborts over ~180 pixels: mostly a line each
    assert big.count('class="abort"') <= PLOT_WIDTH
    assert len(big.encode()) < 4 * len(small.encode()), (len(small), len(big))  # it was 57 times bigger
    assert "map aborts in this pixel" in big and "× map item 2 (chunk of items 0-3) failed" in big
