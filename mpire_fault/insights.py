"""Worker insights (``enable_insights=True``): where each worker's time went.

Workers add their timings to a shared array, one row per slot, so the
numbers survive a worker's death and add up across its replacements.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .protocol import EXIT_TIME, INIT_TIME, INSIGHT_FIELDS, MAX_TASK_TIME, N_TASKS, WAIT_TIME, WORK_TIME

_PHASES = ("start_up", "init", "waiting", "working", "exit")


def gather_insights(n_jobs: int, array: Any, start_up: Sequence[float], deaths: Sequence[dict]) -> dict[str, Any]:
    def column(field: int) -> list[float]:
        if array is None:
            return [0.0] * n_jobs
        return [array[w * INSIGHT_FIELDS + field] for w in range(n_jobs)]

    per_phase = {
        "start_up": list(start_up),
        "init": column(INIT_TIME),
        "waiting": column(WAIT_TIME),
        "working": column(WORK_TIME),
        "exit": column(EXIT_TIME),
    }
    insights: dict[str, Any] = {"n_completed_tasks": [int(n) for n in column(N_TASKS)]}
    grand_total = sum(sum(values) for values in per_phase.values())
    for phase, values in per_phase.items():
        insights[f"{phase}_time"] = values
        insights[f"total_{phase}_time"] = sum(values)
        insights[f"{phase}_ratio"] = sum(values) / grand_total if grand_total else 0.0
    insights["max_task_duration"] = column(MAX_TASK_TIME)
    counts = [0] * n_jobs
    for death in deaths:
        counts[death["worker_id"]] += 1
    insights["deaths"] = counts
    insights["death_details"] = [dict(d) for d in deaths]
    return insights


def format_insights(insights: dict[str, Any]) -> str:
    n_jobs = len(insights["n_completed_tasks"])
    header = f"{'worker':>6} {'tasks':>7} " + " ".join(f"{p + ' s':>10}" for p in _PHASES) + f" {'deaths':>6}"
    lines = ["WorkerPool insights", header, "-" * len(header)]
    for w in range(n_jobs):
        cells = " ".join(f"{insights[f'{p}_time'][w]:>10.3f}" for p in _PHASES)
        lines.append(f"{w:>6} {insights['n_completed_tasks'][w]:>7} {cells} {insights['deaths'][w]:>6}")
    totals = " ".join(f"{insights[f'total_{p}_time']:>10.3f}" for p in _PHASES)
    lines.append(f"{'total':>6} {sum(insights['n_completed_tasks']):>7} {totals} {sum(insights['deaths']):>6}")
    ratios = ", ".join(f"{p} {insights[f'{p}_ratio']:.1%}" for p in _PHASES)
    lines.append(f"time share: {ratios}")
    return "\n".join(lines)
