"""The one state record the supervisor shares with its collaborators.

The supervisor thread owns it; the collaborators that settle deaths
(``Settlement``) and watch the clocks (``Watchdog``) are handed the same
record instead of reaching into each other, so what each one reads and
changes is visible in one place. Nothing here but ``exits`` (made for it) is
touched by other threads: callers talk to the supervisor through its inbox only.
"""
from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .._core.backoff import RestartBackoff
from ..statistics import Counters
from .insights import TopTasks
from .jobs import Barrier, Task, WorkerExits, WorkerSession
from .recorder import Recorder
from .slots import WorkerSlot


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """What a pool was created with; fixed for the supervisor's life."""

    n_jobs: int
    ctx: Any
    daemon: bool
    use_dill: bool
    pass_worker_id: bool
    use_worker_state: bool
    shared_objects: Any
    has_shared_objects: bool
    cpu_ids: tuple[tuple[int, ...] | None, ...]
    max_worker_memory: int | None
    max_task_retries: int
    backoff: RestartBackoff
    chaos: Any
    enable_insights: bool = False
    order_tasks: bool = False
    start_method: str = "fork"
    timeout_grace: float = 5.0  # seconds between a soft timeout and the kill
    serializer: Any = None  # threading: the ReferenceSerializer shared with the worker threads
    shm_prefix: str | None = None  # names of this pool's shared-memory segments (None: none are used)
    hooks_only_objects: bool = False  # shared objects go to worker_init/worker_exit only (WorkerConfig)


@dataclass(frozen=True, slots=True, eq=False)
class SharedArrays:
    """The arrays shared with every worker (layout in ``protocol``)."""

    progress: Any
    cancelled: Any
    insights: Any


class Mode(enum.Enum):
    """What the pool wants of its workers right now."""

    STOPPED = "stopped"  # no call is running: no worker is (re)started until work arrives
    RUNNING = "running"  # workers are wanted for the current session, and restarted when they die
    BLOCKED = "blocked"  # the restart budget ran out: no respawn until new work arrives
    FINISHING = "finishing"  # terminate() or shutdown: nothing new starts, ever


# Module constants: comparing with these skips the enum's class attribute lookup on the loop's hot path.


@dataclass(slots=True, eq=False)
class PoolState:
    settings: PoolSettings
    shared: SharedArrays
    slots: list[WorkerSlot]
    pending: deque[Task | Barrier] = field(default_factory=deque)
    session: WorkerSession | None = None  # the hooks the live workers were started with (see Dispatcher.update_session)
    gave_up: bool = False  # the workers of this session could not be started: the next call's hooks start afresh
    mode: Mode = Mode.STOPPED
    recorder: Recorder | None = None  # writes the event log (WorkerPool(event_log=...)); None: off, and free
    counters: Counters = field(default_factory=Counters)
    durations: dict[str, float] = field(default_factory=dict)  # moving average per apply function name
    start_up_time: list[float] = field(default_factory=list)  # process start -> ready, summed per slot
    top_tasks: TopTasks = field(default_factory=TopTasks)  # the pool's longest tasks (insights; TOP_TASKS answers)
    insight_deaths_from: int = 0  # counters.deaths[this:] happened since insights were last reset
    # Indexes that keep the loop's cost per event flat as n_jobs grows (each
    # pass would otherwise scan every slot several times):
    # - ``watched``: slots that may be on a clock or want a process (the
    #   Watchdog and start_wanted_workers read only these). A slot joins when
    #   it gets a process, loses it, is stopped or is handed a timed task; the
    #   Watchdog drops it once ``off_the_clock``.
    # - ``roomy``: slots that may take a task (Dispatcher.pick_slot), in the
    #   order they freed up. A slot joins when it becomes ready or answers a
    #   task; pick_slot drops it when it finds it full. A full slot can only
    #   gain room by answering, so no slot with room is ever missed.
    watched: set[WorkerSlot] = field(default_factory=set)
    roomy: dict[WorkerSlot, None] = field(default_factory=dict)
    # worker_exit's outcomes since the workers were last started from none.
    # The one thing here callers read (Supervisor.exits): the record is made to be shared.
    exits: WorkerExits = field(default_factory=WorkerExits)

    @property
    def finishing(self) -> bool:
        return self.mode is Mode.FINISHING

    def front_barrier(self) -> Barrier | None:
        """The graceful stop at the head of the queue, if one is running."""
        head = self.pending[0] if self.pending else None
        return head if isinstance(head, Barrier) else None
