"""MPIRE's insights as text: the times it prints and ``print_insights()``'s summary, for every backend.

A backend without insights (or with them off) has an empty dict, which
prints MPIRE's "no profiling stats" line.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

PARTS = ("start_up", "init", "waiting", "working", "exit")  # where a worker's time goes, in MPIRE's order
DISABLED_TEXT = "No profiling stats available. Try to run a function first with insights enabled ..."


def format_seconds(seconds: float) -> str:
    """``'0:00:01.234'`` (milliseconds truncated, none shown for whole seconds), as MPIRE prints times."""
    whole, _, fraction = str(timedelta(seconds=seconds)).partition(".")
    return f"{whole}.{fraction[:3]}" if fraction else whole


def format_insights(insights: Mapping[str, Any]) -> str:
    """``print_insights()``'s text: MPIRE's summary, plus the deaths per worker when there were any."""
    if not insights:
        return DISABLED_TEXT
    lines = ["WorkerPool insights", "-------------------",
             f"Total number of tasks completed: {sum(insights['n_completed_tasks'])}"]
    for part in PARTS:
        lines.append(f"Total {part.replace('_', ' ')} time: {insights[f'total_{part}_time']}s "
                     f"(mean: {insights[f'{part}_time_mean']}, std: {insights[f'{part}_time_std']}, "
                     f"ratio: {insights[f'{part}_ratio'] * 100:.2f}%)")
    if insights["working_ratio"] < 0.8:
        lines += ["", "Efficiency warning: working ratio is < 80%!"]
    lines += ["", "Stats per worker", "----------------"]
    deaths = insights.get("deaths") or [0] * len(insights["n_completed_tasks"])
    for worker_id, n_tasks in enumerate(insights["n_completed_tasks"]):
        cells = [f"Worker {worker_id}", f"Tasks completed: {n_tasks}"]
        cells += [f"{part.replace('_', ' ')}: {insights[f'{part}_time'][worker_id]}s" for part in PARTS]
        if any(deaths):
            cells.append(f"deaths: {deaths[worker_id]}")
        lines.append(" - ".join(cells))
    lines += ["", "Top 5 longest tasks", "-------------------"]
    for rank, (spent, args) in enumerate(zip(insights["top_5_max_task_durations"], insights["top_5_max_task_args"],
                                             strict=True), start=1):
        lines.append(f"{rank}. Time: {spent} - {args}")
    return "\n".join(lines)
