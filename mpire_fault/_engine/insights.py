"""Worker insights (``enable_insights=True``): where each worker's time went.

MPIRE 2.10.2's ``get_insights()`` shape, so code written for it reads ours
unchanged: per-worker item counts, times as ``'0:00:00.227'`` strings, their
totals, means, standard deviations and ratios, and the five longest tasks
with their arguments as MPIRE writes them (``'Arg 0: 14 | Arg b: 2'``).

Where the numbers live, so they survive a worker's death:

* counters and seconds go to a shared array, ``INSIGHT_FIELDS`` doubles per
  slot (layout in ``protocol``). A worker adds to its slot after each item,
  so a replacement continues the sum and a SIGKILL loses nothing written.
* the longest tasks cannot live in an array of doubles (their arguments are
  text). Each worker keeps its own five longest (``TaskClock``) and sends
  the ones that entered since its last answer in a ``TOP_TASKS`` message
  just before that answer; the supervisor merges them into the pool's five
  (``TopTasks``). A worker's own five bound what it can contribute, so the
  merge is exact; a death loses only entries of the chunk it died in, whose
  items are run again elsewhere. Sending before the answer means a map that
  returned has had its entries merged. Arguments are formatted only for a
  task that enters its worker's five, as MPIRE does.

With insights off no ``TaskClock`` exists: the task function is not
wrapped and nothing is timed or sent.
"""
from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from typing import Any

from .._core.insights_text import PARTS as _PARTS
from .._core.insights_text import format_seconds
from .wire.protocol import EXIT_TIME, INIT_TIME, INSIGHT_FIELDS, N_TASKS, WAIT_TIME, WORK_TIME

TOP_N = 5  # MPIRE's "top 5 longest tasks"
_FIELDS = {"init": INIT_TIME, "waiting": WAIT_TIME, "working": WORK_TIME, "exit": EXIT_TIME}


class TopTasks:
    """The ``TOP_N`` longest tasks seen: ``(seconds, args)`` pairs in a min-heap."""

    __slots__ = ("heap",)

    def __init__(self) -> None:
        self.heap: list[tuple[float, str]] = []

    @property
    def floor(self) -> float:
        """What a task must exceed to enter."""
        return self.heap[0][0] if len(self.heap) == TOP_N else 0.0

    def offer(self, seconds: float, args: str) -> bool:
        if len(self.heap) < TOP_N:
            heapq.heappush(self.heap, (seconds, args))
            return True
        if seconds > self.heap[0][0]:
            heapq.heapreplace(self.heap, (seconds, args))
            return True
        return False

    def longest(self) -> list[tuple[float, str]]:
        return sorted(self.heap, reverse=True)


def _shown(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not fail the task (MPIRE's would)
        return f"<{type(value).__name__} with a failing repr: {exc!r}>"


def describe_args(args: Sequence[Any], kwargs: Mapping[str, Any], separator: str = " | ") -> str:
    """The arguments of one call as MPIRE shows them: ``'Arg 0: 1 | Arg b: 2'``."""
    shown = [f"Arg {n}: {_shown(value)}" for n, value in enumerate(args)]
    shown += [f"Arg {key}: {_shown(value)}" for key, value in kwargs.items()]
    return separator.join(shown)


class TaskClock:
    """A worker's timer of each call of the task function; made only with insights on.

    ``skip`` is the number of leading arguments the pool adds (worker id,
    shared objects, worker state): MPIRE does not show those.
    """

    __slots__ = ("array", "work", "count", "skip", "top", "fresh")

    def __init__(self, array: Any, worker_id: int, skip: int) -> None:
        base = worker_id * INSIGHT_FIELDS
        self.array, self.work, self.count, self.skip = array, base + WORK_TIME, base + N_TASKS, skip
        self.top = TopTasks()
        self.fresh: list[tuple[float, str]] = []  # entered self.top since the last take_fresh()

    def wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        array, work, count, skip, top, fresh = self.array, self.work, self.count, self.skip, self.top, self.fresh

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = perf_counter()
            try:
                result = func(*args, **kwargs)
            finally:  # as MPIRE: a call that raised counts as working time and may be among the longest
                spent = perf_counter() - began
                array[work] += spent
                if spent > top.floor:
                    entry = (spent, describe_args(args[skip:], kwargs))
                    if top.offer(*entry):
                        fresh.append(entry)
            array[count] += 1  # completed: it returned
            return result

        return timed

    def take_fresh(self) -> list[tuple[float, str]]:
        fresh = self.fresh[:]
        self.fresh.clear()
        return fresh


# ---------------------------------------------------------------- the parent's view
def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def gather_insights(n_jobs: int, array: Any, start_up: Sequence[float], top: TopTasks,
                    deaths: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """MPIRE's insights dict (same keys, order and types), then our ``deaths`` and ``death_details``."""
    def column(field: int) -> list[float]:
        if array is None:
            return [0.0] * n_jobs
        return [array[w * INSIGHT_FIELDS + field] for w in range(n_jobs)]

    seconds = {"start_up": list(start_up), **{part: column(field) for part, field in _FIELDS.items()}}
    totals = {part: sum(values) for part, values in seconds.items()}
    total_time = sum(totals.values())
    longest = [(spent, args) for spent, args in top.longest() if spent > 0]
    insights: dict[str, Any] = {"n_completed_tasks": [int(n) for n in column(N_TASKS)]}
    for part in _PARTS:
        insights[f"{part}_time"] = [format_seconds(s) for s in seconds[part]]
    for part in _PARTS:
        insights[f"total_{part}_time"] = format_seconds(totals[part])
    insights["top_5_max_task_durations"] = [format_seconds(spent) for spent, _ in longest]
    insights["top_5_max_task_args"] = [args for _, args in longest]
    insights["total_time"] = format_seconds(total_time)
    for part in _PARTS:
        mean, std = _mean_std(seconds[part])
        insights[f"{part}_ratio"] = totals[part] / (total_time + 1e-8)  # MPIRE's epsilon: 0.0 before any work
        insights[f"{part}_time_mean"] = format_seconds(mean)
        insights[f"{part}_time_std"] = format_seconds(std)
    counts = [0] * n_jobs
    for death in deaths:
        counts[death["worker_id"]] += 1
    insights["deaths"] = counts
    insights["death_details"] = [dict(d) for d in deaths]
    return insights
