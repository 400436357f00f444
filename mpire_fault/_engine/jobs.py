"""Records the supervisor schedules: tasks, the calls they belong to, barriers.

A *job* is one user call: an ``apply_async`` (one task) or a map-family call
(many tasks, one per chunk). A *task* is the unit sent to a worker and kept
in a worker's ledger until it is answered. A *barrier* is a graceful stop of
every worker, queued behind the tasks that came before it.
"""
from __future__ import annotations

import itertools
import queue
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._core.remote import RESULT, PickledError, with_boundary
from ..errors import Death, WorkerExitError, hook_error
from .wire.codec import Serializer

_job_ids = itertools.count(1)
_task_ids = itertools.count(1)


def next_task_id() -> int:
    return next(_task_ids)


@dataclass(frozen=True, slots=True)
class WorkerSession:
    """How the workers of a call are started and stopped.

    Live workers keep theirs when a call brings another (Dispatcher.update_session
    sends them the new worker_exit and lifespan); only workers that could not
    start, or a worker_exit that will not pickle, make a change restart them.
    """

    worker_init: Callable | None = None
    worker_exit: Callable | None = None
    worker_lifespan: int | None = None
    worker_init_timeout: float | None = None
    worker_exit_timeout: float | None = None
    # spawn/forkserver: the map's function under its inherit key, pickled with the hooks into each worker
    # started for the call, so they share objects as MPIRE's map parameters do (no part of equality)
    function: tuple[int, Callable] | None = field(default=None, compare=False)


class HookWatch:
    """The hooks of a keep_alive pool's last map call, so the next call that changes them warns as MPIRE does."""

    def __init__(self) -> None:
        self._live: tuple[Callable | None, Callable | None] | None = None  # None: no workers to keep

    def note(self, worker_init: Callable | None, worker_exit: Callable | None, keep_alive: bool,
             stacklevel: int) -> None:
        hooks = (worker_init, worker_exit)
        if keep_alive and self._live is not None and self._live != hooks:
            warnings.warn("worker_init or worker_exit changed while keep_alive=True: as in MPIRE, the live workers "
                          "keep the state of the worker_init they ran, and the new worker_exit runs when they stop",
                          RuntimeWarning, stacklevel=stacklevel + 1)
        self._live = hooks if keep_alive else None

    def forget(self) -> None:
        """The workers stopped: the next call's hooks start them afresh."""
        self._live = None


@dataclass(slots=True, eq=False)
class Task:
    task_id: int
    job: Job
    first_index: int
    n_items: int
    payload: bytes
    ordinal: int = 0  # the task's place in its call (order_tasks: task k goes to worker k % n_jobs)
    attempt: int = 0
    deaths: list[Death] = field(default_factory=list)
    handed_at: float = 0.0


class Job:
    """One user call. Subclasses say where results and errors go."""

    form = ""  # "apply" or "map": which kind of call, as the event log and the errors name it


    def __init__(self, session: WorkerSession, func_name: str, task_timeout: float | None) -> None:
        self.job_id = next(_job_ids)
        self.session = session
        self.func_name = func_name
        self.task_timeout = task_timeout
        self.done = False
        self.chaos_call = 0  # see protocol.RUN_TASK

    def describe(self, task: Task, index: int | None = None) -> str:
        raise NotImplementedError

    def on_result(self, task: Task, data: bytes) -> None:
        raise NotImplementedError

    def on_error(self, task: Task | None, exc: BaseException | PickledError) -> None:
        raise NotImplementedError

    def retries_after_death(self, task: Task, max_task_retries: int) -> bool:
        """Whether a task whose worker died under it runs again (on another worker)."""
        return False

    @property
    def aborts_on_failure(self) -> bool:
        """Whether one failed task ends the whole call (map-family calls) or only itself (apply)."""
        return False


class ApplyJob(Job):
    form = "apply"

    def __init__(self, session, func_name, task_timeout, index: int, result, loads) -> None:
        super().__init__(session, func_name, task_timeout)
        self.index = index
        self.result = result
        self.loads = loads

    def describe(self, task: Task, index: int | None = None) -> str:
        return f"apply task #{self.index} ({self.func_name})"

    def on_result(self, task: Task, data: bytes) -> None:
        # Unpickled later by the caller or the callback thread, never here in the supervisor.
        self.done = True
        self.result._resolve_pickled(data, lambda raw: self.loads(raw)[0])

    def on_error(self, task: Task | None, exc: BaseException | PickledError) -> None:
        self.done = True
        self.result._resolve_error(exc)

    def retries_after_death(self, task: Task, max_task_retries: int) -> bool:
        return task.attempt < max_task_retries


class MapJob(Job):
    """A map-family call; its caller thread reads ``events`` and unpickles results itself."""

    form = "map"


    def __init__(self, session, func_name, task_timeout) -> None:
        super().__init__(session, func_name, task_timeout)
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()  # chunks' results and the error, for the caller's thread
        # The moving average of this call's chunk durations (Dispatcher.has_room). Per call, not per
        # function: a function fast in one call may be slow in the next, and chunks queued behind a
        # slow one cannot be taken back; until a chunk of this call is answered, none waits in a pipe.
        self.duration: float | None = None

    def describe(self, task: Task, index: int | None = None) -> str:
        if index is None or index < task.first_index:
            index = task.first_index
        last = task.first_index + task.n_items - 1
        chunk = f", chunk of items {task.first_index}-{last}" if task.n_items > 1 else ""
        return f"map item {index} ({self.func_name}{chunk})"

    def on_result(self, task: Task, data: bytes) -> None:
        self.outbox.put(("result", task.first_index, task.n_items, data))

    def on_error(self, task: Task | None, exc: BaseException | PickledError) -> None:
        if self.done:
            return
        self.done = True
        self.outbox.put(("error", exc))

    @property
    def aborts_on_failure(self) -> bool:
        return True


class WorkerExits:
    """What ``worker_exit`` gave, one entry per worker life, from a start of the workers until they all stopped.

    MPIRE's ``get_exit_results()``: its list is emptied when the pool starts
    workers from none, and every worker life that ends adds to it, whether it
    ended at a stop, at its ``worker_lifespan`` or, here, at a restart for new
    hooks on a ``keep_alive`` pool. The supervisor appends (values still
    pickled, it never unpickles them); callers unpickle, each value once.
    """

    def __init__(self) -> None:
        self.data: list[Any] = []  # worker_exit's return values, still pickled (appended by the supervisor)
        self.raised: list[tuple[int, bytes]] = []  # (worker_id, pickled error) where worker_exit raised
        self.errors: list[BaseException] = []  # our own errors (worker_exit timed out)
        self.closed = False  # a stop of every worker ended it: the next start begins a new one
        self._lock = threading.Lock()  # callers in several threads share the unpickled values
        self._values: list[Any] = []
        self._unreported: list[BaseException] = []
        self._loaded = self._failed = self._raised = 0

    def values(self, serializer: Serializer) -> list[Any]:
        """worker_exit's return values so far, unpickled (in this caller's thread)."""
        with self._lock:
            self._load(serializer)
            return list(self._values)

    def take_errors(self, serializer: Serializer) -> list[BaseException]:
        """The errors not reported yet: worker_exit raised or timed out, or its value failed to unpickle."""
        with self._lock:
            self._load(serializer)
            for worker_id, data in self.raised[self._failed:]:
                raised = PickledError(data, serializer).load()
                self._unreported.append(
                    hook_error(WorkerExitError, f"worker_exit failed on worker {worker_id}: {raised!r}", raised))
            self._failed = len(self.raised)
            errors, self._unreported = self.errors[self._raised:] + self._unreported, []
            self._raised = len(self.errors)
            return errors

    def _load(self, serializer: Serializer) -> None:
        for data in self.data[self._loaded:]:
            try:
                self._values.append(serializer.loads(data))
            except BaseException as exc:  # noqa: BLE001 - even SystemExit: it belongs to this caller
                self._unreported.append(with_boundary(exc, RESULT))
        self._loaded = len(self.data)


class Barrier:
    """Stop every worker gracefully once the tasks queued before it are answered."""

    def __init__(self, implicit: bool = False, keep_workers: bool = False) -> None:
        self.implicit = implicit
        # Only wait for the tasks queued before it, and for workers that
        # reached their worker_lifespan to report (stop_and_join(keep_alive=True)).
        self.keep_workers = keep_workers
        self.started = False
        self.exits: WorkerExits | None = None  # the worker lives ended up to this point (set once it is complete)
        self.event = threading.Event()

    def outcome(self, serializer: Serializer) -> tuple[list[Any], list[BaseException]]:
        """worker_exit's values and the errors not reported yet, unpickled by the caller that waited for the stop."""
        if self.exits is None:  # the supervisor ended before the stop was complete
            return [], []
        return self.exits.values(serializer), self.exits.take_errors(serializer)
