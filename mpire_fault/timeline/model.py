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

Tasks are named as the pool's errors name them (``apply task #13``, ``map
item 8 (chunk of items 7-8)``), never by the log's internal ``task_id``.
A death that a chaos fault of the same process caused says so.

``build`` keeps what it draws, never the events, and folds what is settled
into counts per slot of time once there is much of it (``buckets``); the
state it keeps besides is bounded by the tasks in flight, the recent calls,
the deaths and the faults that kill. So a log streams through it one event
at a time. The records it makes are in ``records``.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..chaos.vocabulary import KILLS_PROCESS
from ..events import EVENT_KINDS
from .buckets import Folder
from .records import LANE_PIDS, OUTCOMES, Abort, Bar, Lane, Marker, Summary, Timeline, describe_task

_CAUSE_OUTCOME = {"exception": "exception", "death": "died", "timeout": "timeout", "abort": "aborted"}
_RECENT_CALLS = 4096  # calls remembered to tell a map of one-item chunks (one call, many tasks) from applies
_RECENT_FAILURES = 4096  # failed tasks remembered to name the one an abort's reason points at
_KNOWN_MAPS = 65_536  # map calls remembered (a log of 100 000 aborted maps must not keep them all)
_CHAOS_SLACK = 1.0  # seconds a fault's time may fall after its death (its wall clock moved onto the monotonic one)
_ABORT_REASON = re.compile(r"task (\S+) (.+)", re.DOTALL)


@dataclass(slots=True)
class _Task:
    """A task seen and not yet resolved: what its dispatch said."""

    call: Any = None
    items: Any = None
    attempt: int | None = None


@dataclass(slots=True)
class _Failure:
    call: Any
    items: Any
    item: Any
    error: str | None


@dataclass(slots=True)
class _Death:
    marker: int
    pool: Any
    pid: Any
    t: float
    reason: Any


class _Builder:
    def __init__(self) -> None:
        self.lanes: dict[tuple[Any, Any], Lane] = {}
        self.by_index: list[Lane] = []
        self.bars: list[Bar] = []
        self.markers: list[Marker] = []
        self.aborts: list[Abort] = []
        self.abort_count = 0
        self.death_markers: list[Marker] = []  # apart: never folded, and the journal may still name their cause
        self.open: dict[tuple[Any, Any], Bar] = {}  # (pool, task_id) -> running attempt
        self.last: dict[tuple[Any, Any], Bar] = {}  # (pool, task_id) -> latest ended attempt, if a death ended it
        self.live: dict[tuple[Any, Any], _Task] = {}  # tasks seen, not yet finished or failed
        self.task_count = 0
        self.recent_calls: dict[tuple[Any, Any], Any] = {}  # (pool, call) -> the task id first seen in it
        self.maps: dict[tuple[Any, Any], None] = {}  # (pool, call) known to be map calls, the latest _KNOWN_MAPS
        self.failures: dict[tuple[Any, Any], _Failure] = {}  # the last _RECENT_FAILURES failed tasks
        self.lethal: dict[tuple[Any, Any], list[tuple[float, str]]] = {}  # (pool, pid) -> faults that kill
        self.death_list: list[_Death] = []
        self.lane_state: dict[int, str] = {}  # lane index -> "up" | "died" | "exited"
        self.died_at: dict[int, float] = {}
        self.recovery_sum = 0.0
        self.recoveries = 0
        self.restarts = 0
        self.deaths = 0
        self.chaos_deaths = 0
        self.faults = 0
        self.failed_unstarted: Counter[str] = Counter()
        self.folder = Folder()
        self.fold_check = min(self.folder.fold_at.values())  # below it, the loop pays three len() per event
        self.t0 = float("inf")
        self.t1 = float("-inf")

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

    def task(self, key: tuple[Any, Any]) -> _Task:
        """The record of a task, counting it the first time it is seen."""
        record = self.live.get(key)
        if record is None:
            record = self.live[key] = _Task()
            self.task_count += 1
        return record

    def resolved(self, key: tuple[Any, Any]) -> None:
        """The task finished or failed for its caller: each task does so once."""
        if self.live.pop(key, None) is None:
            self.task_count += 1  # e.g. a queued task failed by an abort: never dispatched

    def known_map(self, key: tuple[Any, Any]) -> None:
        self.maps[key] = None
        if len(self.maps) > _KNOWN_MAPS:
            del self.maps[next(iter(self.maps))]

    def form(self, pool: Any, call: Any, items: Any, error: str | None) -> str | None:
        if call is None and items is None:
            return None  # a bare task_started: nothing says which kind of call sent it
        if error:  # the pool's own words for the task, when the failure quotes them
            if "apply task #" in error:
                return "apply"
            if "map item " in error:
                return "map"
        if (pool, call) in self.maps or (isinstance(items, list) and items[0] != items[-1]):
            return "map"
        return "apply"  # one call, one task of one item: apply (a map of one item looks the same in the log)

    # one method per kind ------------------------------------------------
    def worker_started(self, e: dict[str, Any], lane: int) -> None:
        state = self.lane_state.get(lane)
        if state in ("died", "exited"):
            self.restarts += 1
            self.markers.append(Marker(lane, e["t"], "restart", f"restart: pid {e['pid']}",
                                       {"event": "worker started again", "pid": e["pid"],
                                        "start method": e.get("start_method")}))
        self.lane_state[lane] = "starting"
        each = self.by_index[lane]
        each.processes += 1
        if len(each.pids) < LANE_PIDS:
            each.pids.append(e["pid"])

    def worker_ready(self, e: dict[str, Any], lane: int) -> None:
        self.lane_state[lane] = "up"
        died = self.died_at.pop(lane, None)
        if died is not None:
            self.recovery_sum += e["t"] - died
            self.recoveries += 1

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
        self.death_list.append(_Death(len(self.death_markers), e["pool"], e.get("pid"), e["t"], e.get("reason")))
        self.death_markers.append(Marker(lane, e["t"], "death", label, {
            "event": "worker died", "pid": e["pid"], "exit code": e.get("exit_code"), "signal": e.get("signal"),
            "oom": e.get("oom"), "reason": e.get("reason")}))

    def task_dispatched(self, e: dict[str, Any], lane: int) -> None:
        pool, call, items = e["pool"], e.get("call"), e.get("items")
        record = self.task((pool, e["task_id"]))
        record.call, record.items = call, items
        bar = self.open.get((pool, e["task_id"]))
        if bar is not None and bar.call is None:  # sorted by t, a start stamped at the handing-over comes first
            bar.call, bar.items = call, items
        key = (pool, call)
        if key in self.maps:
            return
        # "form" (newer logs) says which call sent it; older logs tell a map only by a chunk of several items
        if e.get("form") == "map" or (isinstance(items, list) and items[0] != items[-1]):
            self.known_map(key)
            return
        seen = self.recent_calls.get(key)
        if seen is None:
            self.recent_calls[key] = e["task_id"]
            if len(self.recent_calls) > _RECENT_CALLS:
                del self.recent_calls[next(iter(self.recent_calls))]
        elif seen != e["task_id"]:  # a second task of one call: a map (an apply's call has one; a retry is no other)
            self.known_map(key)

    def task_started(self, e: dict[str, Any], lane: int) -> None:
        key = (e["pool"], e["task_id"])
        record = self.task(key)
        bar = self.open.get(key)
        if bar is not None:
            if bar.lane == lane and bar.pid == e.get("pid"):
                bar.item = e.get("item")  # the next item of the same task: still one attempt
                return
            bar.end, bar.outcome = e["t"], "requeued"
            self.last[key] = self.open.pop(key)
        bar = Bar(lane, e["task_id"], e["t"], pid=e.get("pid"), item=e.get("item"), items=record.items,
                  call=record.call, attempt=record.attempt, pool=e["pool"])
        self.bars.append(bar)
        self.open[key] = bar
        self.last.pop(key, None)

    def _end(self, e: dict[str, Any], outcome: str, error: str | None = None) -> Bar | None:
        key = (e["pool"], e["task_id"])
        bar = self.open.pop(key, None)
        if bar is not None:
            bar.end, bar.outcome = e["t"], outcome
        else:
            bar = self.last.pop(key, None)  # ended by its worker's death just before: this names the cause
            if bar is None:
                return None
            bar.outcome = outcome
        if error is not None:
            bar.error = error
        return bar

    def task_finished(self, e: dict[str, Any], lane: int) -> None:
        self._end(e, "finished")
        self.resolved((e["pool"], e["task_id"]))

    def task_failed(self, e: dict[str, Any], lane: int) -> None:
        key = (e["pool"], e["task_id"])
        outcome = _CAUSE_OUTCOME.get(e["cause"], "exception")
        record = self.live.get(key) or _Task()
        bar = self._end(e, outcome, e.get("error"))
        if bar is None:
            self.failed_unstarted[outcome] += 1  # e.g. a queued task cancelled by an abort: no bar to draw
        else:
            bar.failed_item = e.get("item")
        if outcome != "aborted":
            self.failures[key] = _Failure(record.call, record.items, e.get("item"), e.get("error"))
            if len(self.failures) > _RECENT_FAILURES:
                del self.failures[next(iter(self.failures))]
        self.resolved(key)

    def task_requeued(self, e: dict[str, Any], lane: int) -> None:
        self._end(e, "requeued")

    def task_retried(self, e: dict[str, Any], lane: int) -> None:
        record = self.live.get((e["pool"], e["task_id"]))
        if record is not None:  # a retry line of a task already resolved counts no new task
            record.attempt = e["attempt"]

    def map_aborted(self, e: dict[str, Any], lane: int) -> None:
        pool = e["pool"]
        self.known_map((pool, e.get("call")))
        reason = str(e.get("reason"))
        error = None
        match = _ABORT_REASON.fullmatch(reason)
        if match:  # "task 22 failed": the log's task id, which the user never sees; name that task's failure
            task_id: Any = match.group(1)
            failure = self.failures.get((pool, int(task_id) if task_id.isdigit() else task_id))
            if failure is not None:  # the pool logs a failure before the abort it causes; only a map aborts
                what = describe_task("map", failure.items, None, failure.item)
                reason, error = f"{what} {match.group(2)}", failure.error
            else:
                reason = f"the task the log calls {match.group(1)} {match.group(2)}"
        self.aborts.append(Abort(e["t"], pool, e.get("call"), reason, e.get("worker_id"), error))
        self.abort_count += 1

    def restart_backoff(self, e: dict[str, Any], lane: int) -> None:
        delay = float(e.get("delay") or 0.0)
        self.markers.append(Marker(lane, e["t"], "backoff", f"backoff {delay:.2g} s", {
            "event": "restart backoff", "delay (s)": delay, "failures in a row": e.get("failures")}, delay))

    def fault_injected(self, e: dict[str, Any], lane: int) -> None:
        self.faults += 1
        term = str(e.get("term") or f"{e['site']}={e['action']}")
        self.markers.append(Marker(lane, e["t"], "fault", term, {
            "event": "fault injected", "term": e.get("term"), "site": e.get("site"), "action": e.get("action"),
            "item": e.get("item"), "pid": e.get("pid")}))
        action = str(e.get("action") or "").split("(", 1)[0]
        if action in KILLS_PROCESS and e.get("pid") is not None:
            self.lethal.setdefault((e["pool"], e["pid"]), []).append((e["t"], term))

    def name(self, bar: Bar) -> None:
        """Say which kind of call sent the bar's task, as far as the log tells by now."""
        bar.form = self.form(bar.pool, bar.call, bar.items, bar.error)

    def fold(self) -> None:
        """Hold less: settled thin bars, markers and aborts become counts per slot of time (``buckets.Folder``)."""
        folder = self.folder
        if folder.due("bars", len(self.bars)):
            self.bars = folder.fold(self.bars, self.t0, self.t1, self.last.values(), self.name)
        if folder.due("markers", len(self.markers)):  # a backoff is a span drawn alone; few: one per death at most
            self.markers = folder.fold_points("markers", self.markers, self.t0, self.t1, _is_backoff)
        if folder.due("aborts", len(self.aborts)):
            self.aborts = folder.fold_points("aborts", self.aborts, self.t0, self.t1, _never)
        self.fold_check = min(folder.fold_at.values())

    # after the last event -------------------------------------------------
    def finish(self) -> None:
        """Name tasks, aborts and deaths now that the whole log is known (a fault's line comes after its death)."""
        for bar in self.bars:
            self.name(bar)
        for death in self.death_list:
            if str(death.reason).startswith("killed by the pool"):
                continue  # the pool's own kill (a timeout...), whatever chaos did before
            faults = [f for f in self.lethal.get((death.pool, death.pid), ()) if f[0] <= death.t + _CHAOS_SLACK]
            if not faults:
                continue
            _, term = max(faults)
            old = self.death_markers[death.marker]
            details = dict(old.details)
            details["cause"] = f"chaos: {term}"
            if str(death.reason).startswith("died on its own"):
                details.pop("reason")  # the pool could not know; the journal does
            self.death_markers[death.marker] = Marker(old.lane, old.t, old.kind, f"{old.label}, by chaos ({term})",
                                                details, old.duration)
            self.chaos_deaths += 1


def _is_backoff(marker: Marker) -> bool:
    return marker.kind == "backoff"


def _never(point: Any) -> bool:
    return False

_DRAWN_ON_A_LANE = frozenset({"worker_started", "worker_ready", "worker_exited", "worker_died", "task_started",
                              "restart_backoff", "fault_injected"})


def build(events: Iterable[dict[str, Any]], *, in_order: bool = False) -> Timeline:
    """Turn events into a timeline. Unknown kinds are ignored.

    By default the events are sorted by ``t`` first (stable), which holds
    them all. ``in_order=True`` takes them as they come, one at a time,
    which is right for a log's own lines: each pool writes its events in
    the order they happened (a ``task_started`` line, stamped with the
    moment the task began, comes when the task ends, just before that end),
    and the timeline never mixes the state of two pools.
    """
    ordered = events if in_order else sorted(events, key=lambda e: e["t"])
    b = _Builder()
    for e in ordered:
        t = e["t"]
        if t < b.t0:
            b.t0 = t
        if t > b.t1:
            b.t1 = t
        kind = e["kind"]
        if kind not in _HANDLED:
            continue
        lane = b.lane(e.get("pool"), e.get("worker_id")) if kind in _DRAWN_ON_A_LANE else -1
        getattr(b, kind)(e, lane)
        if len(b.bars) > b.fold_check or len(b.markers) > b.fold_check or len(b.aborts) > b.fold_check:
            b.fold()
    if b.t0 > b.t1:
        b.t0 = b.t1 = 0.0
    t0, t1 = b.t0, b.t1
    b.finish()
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
    buckets = list(b.folder.buckets.values())
    marker_groups = [g for g in b.folder.groups.values() if g.kind != "abort"]
    for group in marker_groups:
        group.lane = order[group.lane]
    for bucket in buckets:
        bucket.lane = order[bucket.lane]
    markers = [Marker(order[m.lane], m.t, m.kind, m.label, m.details, m.duration)
               for m in b.markers + b.death_markers]
    outcomes = Counter(bar.outcome for bar in b.bars)
    outcomes.update(b.failed_unstarted)
    outcomes.update(b.folder.folded)
    recovery = b.recovery_sum / b.recoveries if b.recoveries else None
    summary = Summary(b.task_count, {k: outcomes[k] for k in OUTCOMES if outcomes[k]}, b.faults, b.deaths,
                      b.restarts, b.abort_count, recovery, b.recoveries, t1 - t0, b.chaos_deaths)
    abort_groups = [g for g in b.folder.groups.values() if g.kind == "abort"]
    return Timeline(t0, t1, lanes, b.bars, markers, b.aborts, summary, buckets, marker_groups, abort_groups)


_HANDLED = frozenset(kind for kind in EVENT_KINDS if hasattr(_Builder, kind))  # one method per kind


def _sort_key(worker_id: Any) -> tuple[int, Any]:
    if worker_id is None:
        return (0, 0)
    if isinstance(worker_id, (int, float)):
        return (1, worker_id)
    return (2, str(worker_id))
