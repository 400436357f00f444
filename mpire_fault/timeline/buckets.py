"""Thin bars and crowded markers as counts: what keeps a timeline's memory and page bounded by pixels, not events.

A ``Bucket`` sums up bars of one lane: how many of each outcome, from when
to when, the few most severe ones by name and a few errors; a ``Group``
does the same for markers of one kind on one lane, or for aborts. The page
draws every bar narrower than a pixel through buckets and every pixel's
markers through groups; ``Folder`` does the same while a log is read, for
what is already settled (bars thinner than any page draws alone, faults,
restarts, exits, aborts) in slots of time that stay a fraction of a pixel
wide however long the log grows. Deaths are kept one by one: the chaos
journal's lines, which come last in a log, may still name their cause.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import Bar

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


LABELS = 6
"""Distinct labels a group counts by name; the rest are counted together."""


@dataclass(slots=True)
class Group:
    """Points of one kind on one lane drawn as one: how many, when, the commonest labels, and the first point."""

    lane: int
    kind: str
    first: Any
    """The first point added (a Marker or an Abort): what is shown when it is the only one."""
    start: float
    end: float
    count: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    others: int = 0
    """Points whose label was not among the first LABELS distinct ones."""

    def add(self, t: float, label: str) -> None:
        self.count += 1
        self.start = min(self.start, t)
        self.end = max(self.end, t)
        self._label(label, 1)

    def merge(self, other: Group) -> None:
        self.count += other.count
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)
        for label, n in other.labels.items():
            self._label(label, n)
        self.others += other.others

    def _label(self, label: str, n: int) -> None:
        if label in self.labels or len(self.labels) < LABELS:
            self.labels[label] = self.labels.get(label, 0) + n
        else:
            self.others += n

    def which(self) -> str:
        """``3 × restart: pid 7; 2 × …``: the labels, commonest first."""
        ranked = sorted(self.labels.items(), key=lambda item: -item[1])
        text = "; ".join(f"{n} × {label}" for label, n in ranked)
        return text + (f"; {self.others} × others" if self.others else "")


def _slots_merged(slots: dict[tuple[Any, ...], Any]) -> dict[tuple[Any, ...], Any]:
    """The slots of a quantum twice as long: two neighbouring slots become one."""
    merged: dict[tuple[Any, ...], Any] = {}
    for key, value in slots.items():
        wider = (*key[:-1], key[-1] // 2)
        if wider in merged:
            merged[wider].merge(value)
        else:
            merged[wider] = value
    return merged


class Folder:
    """Folds what is settled into time slots as a log streams in: thin bars per lane, markers per lane and kind."""

    def __init__(self) -> None:
        self.buckets: dict[tuple[int, int], Bucket] = {}  # (lane, slot) -> folded bars
        self.groups: dict[tuple[int, str, int], Group] = {}  # (lane, kind, slot) -> folded markers or aborts
        self.quantum = 0.0  # seconds per slot; 0 until the first fold
        self.origin = 0.0
        self.folded: dict[str, int] = {}  # outcome -> bars folded, for the summary
        self.fold_at = {"bars": FOLD_AT, "markers": FOLD_AT, "aborts": FOLD_AT}

    def due(self, what: str, held: int) -> bool:
        return held > self.fold_at[what]

    def _slot(self, t: float) -> int:
        return math.floor((t - self.origin) / self.quantum)

    def _rescale(self, t0: float, t1: float) -> bool:
        """Set the slots for a span of t0..t1; False when there is no span yet."""
        span = t1 - t0
        if span <= 0:
            return False
        if not self.quantum:
            self.quantum, self.origin = span / SLOTS, t0
        while span / self.quantum > SLOTS:  # the log grew longer
            self.quantum *= 2
            self.buckets = _slots_merged(self.buckets)
            self.groups = _slots_merged(self.groups)
        return True

    def fold_points(self, what: str, points: list[Any], t0: float, t1: float, keep: Any) -> list[Any]:
        """The markers or aborts still held (those ``keep(point)`` holds back); the others went into groups."""
        if not self._rescale(t0, t1):
            return points
        held = []
        for point in points:
            if keep(point):
                held.append(point)
                continue
            lane, kind = (-1, "abort") if what == "aborts" else (point.lane, point.kind)
            key = (lane, kind, self._slot(point.t))
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = Group(lane, kind, point, point.t, point.t)
            group.add(point.t, point.reason if what == "aborts" else point.label)
        self.fold_at[what] = max(FOLD_AT, 2 * len(held))
        return held

    def fold(self, bars: list[Bar], t0: float, t1: float, unsettled: Iterable[Bar],
             name: Any) -> list[Bar]:
        """The bars still held; the others went into buckets. ``name(bar)`` sets a bar's form before it is named.

        ``unsettled``: ended bars whose outcome may still change (a death's,
        until the pool says requeued or why); open bars have no end yet.
        """
        if not self._rescale(t0, t1):
            return bars
        thin = (t1 - t0) / FINE
        skip = {id(bar) for bar in unsettled}
        held = []
        for bar in bars:
            if bar.end is None or bar.end - bar.start >= thin or id(bar) in skip:
                held.append(bar)
                continue
            name(bar)
            key = (bar.lane, self._slot(bar.start))
            into = self.buckets.get(key)
            if into is None:
                into = self.buckets[key] = Bucket(bar.lane, bar.start, bar.end)
            into.add(bar, bar.end)
            self.folded[bar.outcome] = self.folded.get(bar.outcome, 0) + 1
        # what is held now may be held for good (wide bars): fold again only when as many more have come
        self.fold_at["bars"] = max(FOLD_AT, 2 * len(held))
        return held
