"""``WorkerPool.statistics()``: a frozen snapshot of the pool's health.

The supervisor counts into a ``Counters`` record (its own thread only); the
pool copies it into a ``PoolStatistics`` when asked, so a caller never holds
anything the supervisor still changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import Death, RecordMapping

__all__ = ["Counters", "PoolStatistics"]


@dataclass(slots=True)
class Counters:
    """What the supervisor counts, over the pool's life."""

    restarts: int = 0
    tasks_completed: int = 0
    tasks_failed: int = 0
    tasks_requeued: int = 0
    deaths: list[Death] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PoolStatistics(RecordMapping):
    """A snapshot of a pool; also readable as a mapping (``stats["restarts"]``), as it once was a dict.

    - ``n_jobs``: the worker slots; ``live_workers``: those started and ready now;
      ``worker_pids``: their pids by worker id.
    - ``restarts``: workers started again after one ended (deaths, kills, lifespans).
    - ``deaths``: every worker death, in order, as ``Death`` records (worker, pid,
      exit code, out of memory, why we killed it, the task it was running).
      A worker we stopped because its map call was aborted is not a death.
    - ``tasks_completed`` / ``tasks_failed``: tasks answered with a value / an error;
      ``tasks_requeued``: tasks put back in the queue after their worker died
      (never started, or retried under ``max_task_retries``).
    """

    n_jobs: int
    live_workers: int = 0
    worker_pids: dict[int, int] = field(default_factory=dict)
    restarts: int = 0
    deaths: tuple[Death, ...] = ()
    tasks_completed: int = 0
    tasks_failed: int = 0
    tasks_requeued: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain dicts and lists all the way down, for ``json.dumps``."""
        plain = dict(self)
        plain["deaths"] = [dict(death) for death in self.deaths]
        return plain

    @classmethod
    def snapshot(cls, n_jobs: int, counters: Counters, live_workers: int,
                 worker_pids: dict[int, int]) -> PoolStatistics:
        return cls(n_jobs, live_workers, dict(worker_pids), counters.restarts, tuple(counters.deaths),
                   counters.tasks_completed, counters.tasks_failed, counters.tasks_requeued)
