"""Synthetic event logs of chaos runs, for tests and the docs' screenshot.

A small simulation of a pool: ``n_workers`` slots take tasks from one
queue, each task runs for a random time, and a fraction of the tasks meet a
fault: an exception, a SIGKILL or ``exit(1)`` of the worker (the task is
requeued and retried, the slot restarts after a backoff when deaths come in
a row), or a timeout (the task fails, the worker is killed). A map call can
be aborted at a chosen task: its queued tasks fail with cause "abort", and
a second call may follow. Decisions come from a seeded ``random.Random``.
"""
from __future__ import annotations

import random
from collections import deque
from typing import Any

TERMS = {
    "raise": "task.start=3%raise(ValueError)",
    "sigkill": "task.start=4%sigkill",
    "exit": "task.start=2%exit(1)",
    "timeout": "task.start=1%sleep(5)",
}


def chaos_run(n_tasks: int = 200, n_workers: int = 4, fault_rate: float = 0.1, seed: int = 1,
              abort_at_task: int | None = None, then: int = 0, pool: str = "p1", t0: float = 5000.0,
              mean_task: float = 0.01, max_retries: int = 3, test: str | None = None) -> list[dict[str, Any]]:
    """Events of one simulated chaos run, sorted by time."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []

    def emit(t: float, kind: str, **fields: Any) -> None:
        event = {"t": round(t, 6), "kind": kind, "pool": pool, **fields}
        if test is not None:
            event["test"] = test
        events.append(event)

    next_pid = [10_000]

    def start(worker: int, t: float) -> float:
        next_pid[0] += 1
        pids[worker] = next_pid[0]
        emit(t, "worker_started", worker_id=worker, pid=pids[worker], start_method="fork")
        ready = t + 0.02 + rng.random() * 0.02
        emit(ready, "worker_ready", worker_id=worker, pid=pids[worker])
        return ready

    pids = [0] * n_workers
    free_at = [start(w, t0 + 0.001 * w) for w in range(n_workers)]
    failures = [0] * n_workers
    attempts: dict[int, int] = {}
    calls = [(1, deque(range(n_tasks)))] + ([(2, deque(range(n_tasks, n_tasks + then)))] if then else [])
    for call, queue in calls:
        while queue:
            task = queue.popleft()
            worker = min(range(n_workers), key=free_at.__getitem__)
            t = free_at[worker]
            item = task
            emit(t, "task_dispatched", task_id=task, call=call, worker_id=worker, pid=pids[worker], items=[item, item])
            t += 0.0004
            emit(t, "task_started", task_id=task, worker_id=worker, pid=pids[worker], item=item)
            duration = rng.expovariate(1 / mean_task)
            forced = call == 1 and task == abort_at_task
            if not forced and rng.random() >= fault_rate:
                emit(t + duration, "task_finished", task_id=task, worker_id=worker, pid=pids[worker])
                free_at[worker] = t + duration
                failures[worker] = 0
                continue
            action = "raise" if forced else rng.choices(list(TERMS), weights=(3, 4, 2, 1))[0]
            emit(t, "fault_injected", worker_id=worker, pid=pids[worker], site="task.start", action=action,
                 term=TERMS[action], task_id=task, item=item)
            if action == "raise":
                end = t + duration * 0.3
                emit(end, "task_failed", task_id=task, worker_id=worker, pid=pids[worker], item=item,
                     error="ValueError: injected by chaos (task.start)", cause="exception")
                free_at[worker] = end
                if forced:
                    emit(end + 0.0002, "map_aborted", call=call, reason=f"task {task} failed: ValueError",
                         worker_id=worker)
                    for left in queue:
                        emit(end + 0.0003, "task_failed", task_id=left, worker_id=None, pid=None, item=left,
                             error="the map was aborted", cause="abort")
                    queue.clear()
                continue
            if action == "timeout":
                end = t + 0.5 * mean_task * 10
                emit(end, "task_failed", task_id=task, worker_id=worker, pid=pids[worker], item=item,
                     error="TimeoutError: task exceeded its timeout", cause="timeout")
                died = end + 0.001
                emit(died, "worker_died", worker_id=worker, pid=pids[worker], exit_code=-9, signal="SIGKILL",
                     oom=False, reason="killed after a task timeout")
            else:
                died = t + 0.001 + duration * 0.1
                code, signal = (-9, "SIGKILL") if action == "sigkill" else (1, None)
                emit(died, "worker_died", worker_id=worker, pid=pids[worker], exit_code=code, signal=signal,
                     oom=False, reason=f"worker exited unexpectedly ({signal or 'exit code 1'})")
                attempts[task] = attempts.get(task, 0) + 1
                if attempts[task] <= max_retries:
                    emit(died + 0.0002, "task_requeued", task_id=task, from_worker=worker)
                    emit(died + 0.0003, "task_retried", task_id=task, attempt=attempts[task])
                    queue.appendleft(task)
                else:
                    emit(died + 0.0002, "task_failed", task_id=task, worker_id=worker, pid=pids[worker], item=item,
                         error="WorkerDiedError: the worker died (SIGKILL)", cause="death")
            failures[worker] += 1
            delay = 0.0
            if failures[worker] > 1:
                delay = min(0.01 * 2 ** (failures[worker] - 2), 0.2)
                emit(died + 0.0005, "restart_backoff", worker_id=worker, delay=delay, failures=failures[worker])
            free_at[worker] = start(worker, died + 0.001 + delay)
    end = max(free_at) + 0.002
    for worker in range(n_workers):
        emit(end + 0.001 * worker, "worker_exited", worker_id=worker, pid=pids[worker], exit_code=0)
    events.sort(key=lambda e: e["t"])
    return events
