"""Thin bars as counts: what keeps a timeline's memory and page bounded by pixels, not by tasks.

A ``Bucket`` sums up bars of one lane: how many of each outcome, from when
to when, the few most severe ones by name and a few errors. The page draws
every bar narrower than a pixel through buckets (one per pixel column);
``Folder`` does the same while a log is read, for bars already settled and
so thin that no page will draw them alone, in slots of time that stay a
fraction of a pixel wide however long the log grows.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import Bar

SEVERITY = {"died": 6, "timeout": 5, "aborted": 4, "exception": 3, "requeued": 2, "open": 1, "finished": 0}
"""Which outcome colours a bucket of several bars: the most severe one present."""
SAMPLES = 6
"""Bars a bucket names (the most severe first)."""
ERRORS = 3
"""Distinct error texts a bucket keeps."""
FINE = 2048
"""A settled bar narrower than 1/FINE of the log's span so far is folded: no page up to FINE pixels draws it alone."""
SLOTS = 2 * FINE
"""Time slots per lane across the span, at most (2048 to 4096 once the log has grown): each under half a pixel
at FINE pixels, under a quarter at the page's 1100; a slot costs a few hundred bytes."""
FOLD_AT = 20_000
"""Bars held before the first fold: a log of fewer tasks keeps every bar."""


@dataclass(slots=True)
class Bucket:
    """Bars of one lane drawn as one: counts per outcome, span, the most severe few by name, some errors."""

    lane: int
    start: float
    end: float
    count: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    samples: list[tuple[int, float, str, str]] = field(default_factory=list)
    """(-severity, start, the task's name, outcome), most severe first, at most SAMPLES."""
    errors: list[str] = field(default_factory=list)

    def add(self, bar: Bar, end: float) -> None:
        self.count += 1
        self.outcomes[bar.outcome] = self.outcomes.get(bar.outcome, 0) + 1
        self.start = min(self.start, bar.start)
        self.end = max(self.end, end)
        rank = (-SEVERITY[bar.outcome], bar.start)
        if len(self.samples) < SAMPLES or rank < self.samples[-1][:2]:  # name it only when it is kept
            self._sample((rank[0], rank[1], bar.describe(), bar.outcome))
        if bar.error and len(self.errors) < ERRORS and bar.error not in self.errors:
            self.errors.append(bar.error)

    def merge(self, other: Bucket) -> None:
        self.count += other.count
        for outcome, n in other.outcomes.items():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)
        for sample in other.samples:
            if len(self.samples) < SAMPLES or sample[:2] < self.samples[-1][:2]:
                self._sample(sample)
        for error in other.errors:
            if len(self.errors) < ERRORS and error not in self.errors:
                self.errors.append(error)

    def _sample(self, sample: tuple[int, float, str, str]) -> None:
        self.samples.append(sample)
        self.samples.sort(key=lambda s: s[:2])
        del self.samples[SAMPLES:]

    @property
    def worst(self) -> str:
        return max(self.outcomes, key=SEVERITY.__getitem__)


class Folder:
    """Folds settled thin bars into per-lane time slots as a log streams in."""

    def __init__(self) -> None:
        self.buckets: dict[tuple[int, int], Bucket] = {}
        self.quantum = 0.0  # seconds per slot; 0 until the first fold
        self.origin = 0.0
        self.folded: dict[str, int] = {}  # outcome -> bars folded, for the summary
        self.fold_at = FOLD_AT

    def due(self, held: int) -> bool:
        return held > self.fold_at

    def fold(self, bars: list[Bar], t0: float, t1: float, unsettled: Iterable[Bar],
             name: Any) -> list[Bar]:
        """The bars still held; the others went into buckets. ``name(bar)`` sets a bar's form before it is named.

        ``unsettled``: ended bars whose outcome may still change (a death's,
        until the pool says requeued or why); open bars have no end yet.
        """
        span = t1 - t0
        if span <= 0:
            return bars
        if not self.quantum:
            self.quantum, self.origin = span / SLOTS, t0
        while span / self.quantum > SLOTS:  # the log grew longer: two slots become one
            self.quantum *= 2
            merged: dict[tuple[int, int], Bucket] = {}
            for (lane, slot), bucket in self.buckets.items():
                key = (lane, slot // 2)
                if key in merged:
                    merged[key].merge(bucket)
                else:
                    merged[key] = bucket
            self.buckets = merged
        thin = span / FINE
        skip = {id(bar) for bar in unsettled}
        held = []
        for bar in bars:
            if bar.end is None or bar.end - bar.start >= thin or id(bar) in skip:
                held.append(bar)
                continue
            name(bar)
            key = (bar.lane, math.floor((bar.start - self.origin) / self.quantum))
            into = self.buckets.get(key)
            if into is None:
                into = self.buckets[key] = Bucket(bar.lane, bar.start, bar.end)
            into.add(bar, bar.end)
            self.folded[bar.outcome] = self.folded.get(bar.outcome, 0) + 1
        # what is held now may be held for good (wide bars): fold again only when as many more have come
        self.fold_at = max(FOLD_AT, 2 * len(held))
        return held
