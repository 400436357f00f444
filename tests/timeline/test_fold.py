"""A long log folds what is settled into time slots while it is read: the same counts, fewer objects.

The logs here are small; ``buckets.FOLD_AT`` is lowered so that they fold.
"""
from __future__ import annotations

import re

from mpire_fault.events import iter_events
from mpire_fault.timeline import buckets, build
from mpire_fault.timeline.html import timeline_html

from .conftest import write_jsonl
from .synthetic import chaos_run


def drawn_tasks(page: str) -> int:
    """Tasks on the page: one per bar drawn alone, plus each aggregate's count."""
    return page.count('class="bar ') + sum(map(int, re.findall(r"tasks: (\d+) \(drawn together", page)))


def test_folded_thin_bars_keep_the_same_counts(tmp_path, monkeypatch):
    # two workers: a task is about 1/4000 of the span, thin enough to fold (under 1/2048)
    log = write_jsonl(tmp_path / "e.jsonl", chaos_run(n_tasks=8000, n_workers=2, fault_rate=0.1, seed=3))
    whole = build(iter_events(log), in_order=True)  # under FOLD_AT (20 000) bars: nothing folds
    monkeypatch.setattr(buckets, "FOLD_AT", 1000)
    folded = build(iter_events(log), in_order=True)
    assert not whole.buckets and len(whole.bars) > 8000
    assert folded.buckets and len(folded.bars) < len(whole.bars) / 2
    assert folded.summary == whole.summary
    assert sum(b.count for b in folded.buckets) + len(folded.bars) == len(whole.bars)
    page, reference = timeline_html(folded), timeline_html(whole)
    assert drawn_tasks(page) == drawn_tasks(reference) == len(whole.bars)
    assert 0.5 < len(page) / len(reference) < 2
    # what a folded slot names is what the bar was called: its most severe tasks first
    died = next(b for b in folded.buckets if b.outcomes.get("died"))
    assert died.samples[0][3] == "died" and re.fullmatch(r"map item \d+", died.samples[0][2])


def test_faults_restarts_and_aborts_fold_too_and_deaths_keep_their_cause(tmp_path, monkeypatch):
    events = chaos_run(n_tasks=3000, n_workers=4, fault_rate=0.3, seed=4)
    t = events[-1]["t"]
    for i in range(1500):  # map aborts after the run, each with its failed chunk
        t += 0.001
        base = {"pool": "p1", "task_id": 10_000 + i, "worker_id": 0, "pid": 99}
        events += [{**base, "t": t, "kind": "task_dispatched", "call": 100 + i, "items": [0, 1]},
                   {**base, "t": t, "kind": "task_failed", "item": 1, "error": "E", "cause": "exception"},
                   {"t": t, "kind": "map_aborted", "pool": "p1", "call": 100 + i, "reason": f"task {10_000 + i} failed",
                    "worker_id": 0}]
    log = write_jsonl(tmp_path / "e.jsonl", events)
    whole = build(iter_events(log), in_order=True)
    monkeypatch.setattr(buckets, "FOLD_AT", 300)
    folded = build(iter_events(log), in_order=True)
    assert not whole.marker_groups and not whole.abort_groups
    assert folded.marker_groups and folded.abort_groups and len(folded.aborts) <= 600
    assert folded.summary == whole.summary and folded.summary.aborts == 1500
    assert sum(g.count for g in folded.abort_groups) + len(folded.aborts) == 1500
    kinds = {g.kind for g in folded.marker_groups}
    assert kinds <= {"fault", "restart", "exit"} and "fault" in kinds
    deaths = [m.label for m in folded.markers if m.kind == "death"]
    assert deaths == [m.label for m in whole.markers if m.kind == "death"] and len(deaths) == whole.summary.deaths
    page, reference = timeline_html(folded), timeline_html(whole)
    for kind in ("fault", "restart", "death"):
        assert abs(page.count(f"m-{kind}") - reference.count(f"m-{kind}")) <= 0.1 * reference.count(f"m-{kind}")
    assert "× map item 1 (chunk of items 0-1) failed" in page
