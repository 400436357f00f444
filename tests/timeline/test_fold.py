"""A long log folds its settled thin bars into time slots while it is read: the same counts, fewer objects."""
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


def test_a_long_log_folds_thin_bars_with_the_same_counts(tmp_path, monkeypatch):
    log = write_jsonl(tmp_path / "e.jsonl", chaos_run(n_tasks=30_000, n_workers=4, fault_rate=0.1, seed=3))
    folded = build(iter_events(log), in_order=True)
    monkeypatch.setattr(buckets, "FOLD_AT", 10**9)
    whole = build(iter_events(log), in_order=True)
    assert not whole.buckets and len(whole.bars) > 30_000
    assert folded.buckets and len(folded.bars) <= buckets.FOLD_AT
    assert folded.summary == whole.summary
    assert sum(b.count for b in folded.buckets) + len(folded.bars) == len(whole.bars)
    page, reference = timeline_html(folded), timeline_html(whole)
    assert drawn_tasks(page) == drawn_tasks(reference) == len(whole.bars)
    assert 0.5 < len(page) / len(reference) < 2
    # what a folded slot names is what the bar was called: its most severe tasks first
    died = next(b for b in folded.buckets if b.outcomes.get("died"))
    assert died.samples[0][3] == "died" and re.fullmatch(r"map item \d+", died.samples[0][2])
