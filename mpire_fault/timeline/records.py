"""What a timeline is made of: lanes, bars, markers, aborts, a summary, and the words that name tasks.

``model.build`` makes them from events; ``html`` draws them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .buckets import Bucket, Group

OUTCOMES = ("finished", "exception", "died", "timeout", "aborted", "requeued", "open")
"""Bar outcomes, in the order of the legend."""
LANE_PIDS = 20
"""Pids a lane lists: a crash loop starts thousands of processes in one slot."""


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 fault``, ``2 faults``."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def describe_task(form: str | None, items: Any, item: Any, failed_item: Any = None) -> str:
    """The words the pool's errors use for a task (``_engine.jobs`` ``describe``).

    ``form`` is "apply", "map" or None (the log did not say which call sent
    it); ``items`` the [first, last] indices the task carried; ``failed_item``
    the item the failure names, when one failed.
    """
    first, last = items if isinstance(items, list) and len(items) == 2 else (item, item)
    if form == "apply":
        return f"apply task #{first}"
    noun = "map item" if form == "map" else "item"
    chunk = f"chunk of items {first}-{last}" if first != last else None
    if failed_item is not None:
        return f"{noun} {failed_item}" + (f" ({chunk})" if chunk else "")
    if chunk:
        return f"{noun}s {first}-{last}"
    return f"{noun} {first}"


@dataclass(slots=True)
class Bar:
    """One attempt of one task on one worker."""

    lane: int
    task_id: Any
    start: float
    end: float | None = None
    outcome: str = "open"
    pid: Any = None
    item: Any = None
    items: Any = None
    call: Any = None
    attempt: int | None = None
    error: str | None = None
    failed_item: Any = None
    """The item the task's failure names (``task_failed``'s ``item``), which may be later in a chunk than ``item``."""
    form: str | None = None
    """"apply" or "map": the kind of call that sent the task (None when the log does not tell)."""
    pool: Any = None

    def describe(self) -> str:
        """The task as the pool's errors name it: ``apply task #13``, ``map item 8 (chunk of items 7-8)``."""
        return describe_task(self.form, self.items, self.item, self.failed_item)

    def details(self) -> dict[str, Any]:
        ids = f"task_id {self.task_id}" + (f", call {self.call}" if self.call is not None else "")
        out = {"task": self.describe(), "outcome": self.outcome, "pid": self.pid,
               "retry": self.attempt, "error": self.error,
               "log ids": ids + " (internal, not item numbers)"}
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True, slots=True)
class Marker:
    """A point on a lane: a fault, a death, a restart, a clean exit or a backoff (``duration`` > 0)."""

    lane: int
    t: float
    kind: str
    label: str
    details: dict[str, Any]
    duration: float = 0.0


@dataclass(slots=True)
class Abort:
    """A map call giving up: a line across every lane of its pool."""

    t: float
    pool: Any
    call: Any
    reason: str
    worker_id: Any
    error: str | None = None
    """The error of the task whose failure stopped the call, when the log has it."""


@dataclass(slots=True)
class Lane:
    """One worker slot across restarts."""

    index: int
    pool: Any
    worker_id: Any
    label: str = ""
    pids: list[Any] = field(default_factory=list)
    """The pids of its first LANE_PIDS processes."""
    processes: int = 0
    """Processes started in the slot."""


@dataclass(frozen=True, slots=True)
class Summary:
    tasks: int
    outcomes: dict[str, int]
    faults: int
    deaths: int
    restarts: int
    aborts: int
    recovery_mean: float | None
    """Mean seconds from a worker's death to its replacement being ready (None: no replacement seen)."""
    recoveries: int
    duration: float
    chaos_deaths: int = 0
    """Deaths a chaos fault of the same process caused."""


@dataclass(slots=True)
class Timeline:
    t0: float
    t1: float
    lanes: list[Lane]
    bars: list[Bar]
    markers: list[Marker]
    aborts: list[Abort]
    summary: Summary
    buckets: list[Bucket] = field(default_factory=list)
    """Bars folded while the log was read (settled, thinner than any page draws alone); few logs have any."""
    marker_groups: list[Group] = field(default_factory=list)
    """Markers folded while the log was read (faults, restarts, exits: never deaths or backoffs)."""
    abort_groups: list[Group] = field(default_factory=list)
    """Aborts folded while the log was read."""

    @property
    def empty(self) -> bool:
        return not (self.bars or self.buckets or self.markers or self.marker_groups or self.aborts
                    or self.abort_groups)
