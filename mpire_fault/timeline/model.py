"""Events -> a timeline: one lane per worker slot, a bar per task attempt, markers, aborts, a summary.

A lane is a worker slot (``(pool, worker_id)``): the processes that fill
the slot one after another are its generations, and a new generation after
a death or exit is a restart. A bar is one attempt of a task on a worker,
from ``task_started`` to whatever ended it:

* ``task_finished`` -> finished; ``task_failed`` -> by its cause
  (exception, died, timeout, aborted);
* the worker's ``worker_died`` -> died, turned into requeued when the pool
  then sends ``task_requeued`` (the task runs again elsewhere); a
  ``task_failed`` just after a death names the cause (e.g. timeout);
* a ``task_started`` of the same task on another process -> the earlier
  attempt is requeued; no end at all -> open (running when the log stops).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("finished", "exception", "died", "timeout", "aborted", "requeued", "open")
"""Bar outcomes, in the order of the legend."""
SEVERITY = {"died": 6, "timeout": 5, "aborted": 4, "exception": 3, "requeued": 2, "open": 1, "finished": 0}
"""Which outcome colours a bucket of several bars: the most severe one present."""
_CAUSE_OUTCOME = {"exception": "exception", "death": "died", "timeout": "timeout", "abort": "aborted"}


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

    def details(self) -> dict[str, Any]:
        out = {"task": self.task_id, "outcome": self.outcome, "item": self.item, "items": self.items,
               "call": self.call, "pid": self.pid, "attempt": self.attempt, "error": self.error}
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


@dataclass(frozen=True, slots=True)
class Abort:
    """A map call giving up: a line across every lane of its pool."""

    t: float
    pool: Any
    call: Any
    reason: str
    worker_id: Any


@dataclass(slots=True)
class Lane:
    """One worker slot across restarts."""

    index: int
    pool: Any
    worker_id: Any
    label: str = ""
    pids: list[Any] = field(default_factory=list)


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


@dataclass(slots=True)
class Timeline:
    t0: float
    t1: float
    lanes: list[Lane]
    bars: list[Bar]
    markers: list[Marker]
    aborts: list[Abort]
    summary: Summary

    @property
    def empty(self) -> bool:
        return not (self.bars or self.markers or self.aborts)


class _Builder:
    def __init__(self) -> None:
        self.lanes: dict[tuple[Any, Any], Lane] = {}
        self.by_index: list[Lane] = []
        self.bars: list[Bar] = []
        self.markers: list[Marker] = []
        self.aborts: list[Abort] = []
        self.open: dict[tuple[Any, Any], Bar] = {}  # (pool, task_id) -> running attempt
        self.last: dict[tuple[Any, Any], Bar] = {}  # (pool, task_id) -> latest ended attempt, if a death ended it
        self.dispatched: dict[tuple[Any, Any], dict[str, Any]] = {}
        self.attempts: dict[tuple[Any, Any], int] = {}
        self.lane_state: dict[int, str] = {}  # lane index -> "up" | "died" | "exited"
        self.died_at: dict[int, float] = {}
        self.recoveries: list[float] = []
        self.restarts = 0
        self.deaths = 0
        self.faults = 0
        self.tasks: set[tuple[Any, Any]] = set()
        self.failed_unstarted: Counter[str] = Counter()

    def lane(self, pool: Any, worker_id: Any) -> int:
        key = (pool, worker_id)
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = Lane(len(self.lanes), pool, worker_id)
            self.by_index.append(lane)
        return lane.index

    def close_lane_bars(self, lane: int, t: float, outcome: str) -> None:
        for key, bar in list(self.open.items()):
            if bar.lane == lane:
                bar.end, bar.outcome = t, outcome
                del self.open[key]
                self.last[key] = bar

    # one method per kind ------------------------------------------------
    def worker_started(self, e: dict[str, Any], lane: int) -> None:
        state = self.lane_state.get(lane)
        if state in ("died", "exited"):
            self.restarts += 1
            self.markers.append(Marker(lane, e["t"], "restart", f"restart: pid {e['pid']}",
                                       {"event": "worker started again", "pid": e["pid"],
                                        "start method": e.get("start_method")}))
        self.lane_state[lane] = "starting"
        self.by_index[lane].pids.append(e["pid"])

    def worker_ready(self, e: dict[str, Any], lane: int) -> None:
        self.lane_state[lane] = "up"
        died = self.died_at.pop(lane, None)
        if died is not None:
            self.recoveries.append(e["t"] - died)

    def worker_exited(self, e: dict[str, Any], lane: int) -> None:
        self.lane_state[lane] = "exited"
        self.close_lane_bars(lane, e["t"], "requeued")
        self.markers.append(Marker(lane, e["t"], "exit", f"exit {e['exit_code']}",
                                   {"event": "worker exited", "pid": e["pid"], "exit code": e["exit_code"]}))

    def worker_died(self, e: dict[str, Any], lane: int) -> None:
        self.deaths += 1
        self.lane_state[lane] = "died"
        self.died_at[lane] = e["t"]
        self.close_lane_bars(lane, e["t"], "died")
        how = e.get("signal") or f"exit code {e.get('exit_code')}"
        label = f"died: {how}" + (" (OOM)" if e.get("oom") else "")
        self.markers.append(Marker(lane, e["t"], "death", label, {
            "event": "worker died", "pid": e["pid"], "exit code": e.get("exit_code"), "signal": e.get("signal"),
            "oom": e.get("oom"), "reason": e.get("reason")}))

    def task_dispatched(self, e: dict[str, Any], lane: int) -> None:
        self.tasks.add((e["pool"], e["task_id"]))
        self.dispatched[(e["pool"], e["task_id"])] = {"call": e.get("call"), "items": e.get("items")}

    def task_started(self, e: dict[str, Any], lane: int) -> None:
        key = (e["pool"], e["task_id"])
        self.tasks.add(key)
        bar = self.open.get(key)
        if bar is not None:
            if bar.lane == lane and bar.pid == e.get("pid"):
                bar.item = e.get("item")  # the next item of the same task: still one attempt
                return
            bar.end, bar.outcome = e["t"], "requeued"
            self.last[key] = self.open.pop(key)
        sent = self.dispatched.get(key, {})
        bar = Bar(lane, e["task_id"], e["t"], pid=e.get("pid"), item=e.get("item"), items=sent.get("items"),
                  call=sent.get("call"), attempt=self.attempts.get(key))
        self.bars.append(bar)
        self.open[key] = bar
        self.last.pop(key, None)

    def _end(self, e: dict[str, Any], outcome: str, error: str | None = None) -> bool:
        key = (e["pool"], e["task_id"])
        bar = self.open.pop(key, None)
        if bar is not None:
            bar.end, bar.outcome = e["t"], outcome
        else:
            bar = self.last.pop(key, None)  # ended by its worker's death just before: this names the cause
            if bar is None:
                return False
            bar.outcome = outcome
        if error is not None:
            bar.error = error
        return True

    def task_finished(self, e: dict[str, Any], lane: int) -> None:
        self.tasks.add((e["pool"], e["task_id"]))
        self._end(e, "finished")

    def task_failed(self, e: dict[str, Any], lane: int) -> None:
        self.tasks.add((e["pool"], e["task_id"]))
        outcome = _CAUSE_OUTCOME.get(e["cause"], "exception")
        if not self._end(e, outcome, e.get("error")):
            self.failed_unstarted[outcome] += 1  # e.g. a queued task cancelled by an abort: no bar to draw

    def task_requeued(self, e: dict[str, Any], lane: int) -> None:
        self._end(e, "requeued")

    def task_retried(self, e: dict[str, Any], lane: int) -> None:
        self.attempts[(e["pool"], e["task_id"])] = e["attempt"]

    def map_aborted(self, e: dict[str, Any], lane: int) -> None:
        self.aborts.append(Abort(e["t"], e["pool"], e.get("call"), str(e.get("reason")), e.get("worker_id")))

    def restart_backoff(self, e: dict[str, Any], lane: int) -> None:
        delay = float(e.get("delay") or 0.0)
        self.markers.append(Marker(lane, e["t"], "backoff", f"backoff {delay:.2g} s", {
            "event": "restart backoff", "delay (s)": delay, "failures in a row": e.get("failures")}, delay))

    def fault_injected(self, e: dict[str, Any], lane: int) -> None:
        self.faults += 1
        self.markers.append(Marker(lane, e["t"], "fault", str(e.get("term") or f"{e['site']}={e['action']}"), {
            "event": "fault injected", "term": e.get("term"), "site": e.get("site"), "action": e.get("action"),
            "task": e.get("task_id"), "item": e.get("item"), "pid": e.get("pid")}))


_DRAWN_ON_A_LANE = frozenset({"worker_started", "worker_ready", "worker_exited", "worker_died", "task_started",
                              "restart_backoff", "fault_injected"})


def build(events: Iterable[dict[str, Any]]) -> Timeline:
    """Turn events (any order; sorted by ``t``, stable) into a timeline. Unknown kinds are ignored."""
    ordered = sorted(events, key=lambda e: e["t"])
    b = _Builder()
    for e in ordered:
        kind = e["kind"]
        if kind not in _HANDLED:
            continue
        lane = b.lane(e.get("pool"), e.get("worker_id")) if kind in _DRAWN_ON_A_LANE else -1
        getattr(b, kind)(e, lane)
    t0 = ordered[0]["t"] if ordered else 0.0
    t1 = ordered[-1]["t"] if ordered else 0.0
    for bar in b.open.values():
        bar.end = t1
    lanes = sorted(b.lanes.values(), key=lambda lane: (str(lane.pool), _sort_key(lane.worker_id)))
    order = {lane.index: position for position, lane in enumerate(lanes)}
    pools = {lane.pool for lane in lanes}
    for each in lanes:
        name = "pool" if each.worker_id is None else f"worker {each.worker_id}"
        each.label = f"{each.pool} · {name}" if len(pools) > 1 else name
        each.index = order[each.index]
    for bar in b.bars:
        bar.lane = order[bar.lane]
    markers = [Marker(order[m.lane], m.t, m.kind, m.label, m.details, m.duration) for m in b.markers]
    outcomes = Counter(bar.outcome for bar in b.bars)
    outcomes.update(b.failed_unstarted)
    recovery = sum(b.recoveries) / len(b.recoveries) if b.recoveries else None
    summary = Summary(len(b.tasks), {k: outcomes[k] for k in OUTCOMES if outcomes[k]}, b.faults, b.deaths,
                      b.restarts, len(b.aborts), recovery, len(b.recoveries), t1 - t0)
    return Timeline(t0, t1, lanes, b.bars, markers, b.aborts, summary)


_HANDLED = frozenset(name for name in vars(_Builder) if not name.startswith("_") and name not in
                     ("lane", "close_lane_bars"))


def _sort_key(worker_id: Any) -> tuple[int, Any]:
    if worker_id is None:
        return (0, 0)
    if isinstance(worker_id, (int, float)):
        return (1, worker_id)
    return (2, str(worker_id))
