"""WorkerPool: MPIRE's API on top of a supervisor that survives worker death."""
from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import backends
from ._core.arguments import APPLY, MPIRE, apply_arguments
from ._core.backoff import RestartBackoff
from ._core.chunking import LARGEST_DEFAULT_CHUNK, chunks_in_flight, default_splits, is_ndarray, plan_chunks
from ._core.contract import PoolBackend
from ._core.options import (
    chaos_scope,
    check_event_log,
    check_options,
    map_arguments,
    normalize_cpu_ids,
    positive_number,
    resolve_chaos,
)
from ._core.progress import bar_options, check_style
from ._core.progress import progress_bar as make_progress_bar
from ._core.remote import TASK_ARGS, with_boundary
from ._core.results import AsyncResult, CallbackRunner
from ._engine.child.threads import ReferenceSerializer, ThreadingContext
from ._engine.insights import TopTasks, gather_insights
from ._engine.jobs import ApplyJob, Barrier, HookWatch, MapJob, Task, WorkerExits, WorkerSession, next_task_id
from ._engine.lifecycle import live_supervisors, stop_supervisor
from ._engine.mapping import run_map
from ._engine.recorder import Recorder
from ._engine.state import PoolSettings, SharedArrays
from ._engine.supervisor import Supervisor
from ._engine.watchdog import DEFAULT_TIMEOUT_GRACE
from ._engine.wire import shm
from ._engine.wire.codec import Serializer
from ._engine.wire.inherit import shippable
from ._engine.wire.protocol import CANCEL_SLOTS, INSIGHT_FIELDS, PROGRESS_FIELDS
from .events import EventLog
from .statistics import PoolStatistics

log = logging.getLogger("mpire_fault")

_POOL_IDS = itertools.count(1)  # the ``pool`` of each event a pool of this process logs


_PLAIN_SESSION = WorkerSession()
_STOP_BOUND = 2.0  # seconds _stop_applies waits for the supervisor to have stopped the tasks
# Chunks of a map call pickled and handed over ahead of their results, per
# worker: enough to keep every worker busy, few enough that imap over a lazy
# iterable holds only a handful of chunks in memory.
MAP_CHUNKS_AHEAD = 4


def _func_name(func: Callable) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


class WorkerPool(PoolBackend):
    """A process pool with MPIRE's API that keeps its promises when workers die (see docs/guarantees.md).

    ``backend="dask"`` runs the same API on a ``distributed`` cluster:
    ``address=None`` starts a ``LocalCluster`` of ``n_jobs`` single-threaded
    worker processes owned by the pool; a scheduler address or a
    ``distributed.Client`` uses an existing cluster and never shuts it down.
    """

    REFUSED = frozenset({"address"})  # a scheduler's address needs backend="dask"

    def __new__(cls, *args: Any, address: Any = None, **kwargs: Any) -> Any:
        chosen = backends.named(kwargs.pop("backend", backends.LOCAL))
        if chosen.name != backends.LOCAL:
            return chosen.load()(*args, address=address, **kwargs)
        if address is not None:
            raise ValueError("address= names a Dask scheduler: it needs backend='dask'")
        return super().__new__(cls)

    def __init__(
        self,
        n_jobs: int | None = None,
        daemon: bool = True,
        cpu_ids: list | None = None,
        shared_objects: Any = None,
        pass_worker_id: bool = False,
        use_worker_state: bool = False,
        start_method: str = "fork",
        keep_alive: bool = False,
        use_dill: bool = False,
        enable_insights: bool = False,
        order_tasks: bool = False,
        *,
        max_worker_memory: int | None = None,
        max_task_retries: int = 0,
        restart_backoff: RestartBackoff | int | None = None,
        chaos: Any = None,
        chaos_seed: int | None = None,
        timeout_grace: float = DEFAULT_TIMEOUT_GRACE,
        event_log: str | os.PathLike[str] | Callable[[dict[str, Any]], None] | None = None,
        backend: str = "local",
        address: Any = None,
    ) -> None:
        if n_jobs is None:
            n_jobs = os.cpu_count() or 1
        restart_backoff = check_options(n_jobs, start_method, max_worker_memory, timeout_grace, max_task_retries,
                                        restart_backoff)
        self.n_jobs = n_jobs
        self._start_method = start_method
        self._ctx: Any = ThreadingContext if start_method == "threading" else multiprocessing.get_context(start_method)
        self._timeout_grace = float(timeout_grace)
        self._daemon = daemon
        self._cpu_ids = normalize_cpu_ids(cpu_ids, n_jobs, start_method)
        self._shared_objects = shared_objects
        self._hooks_only_objects = False  # a front door's hook arguments (multiprocessing.Pool's initargs)
        self._pass_worker_id = pass_worker_id
        self._use_worker_state = use_worker_state
        self._keep_alive = keep_alive
        self._use_dill = use_dill
        self.enable_insights = enable_insights
        self.order_tasks = order_tasks
        self._max_worker_memory = max_worker_memory
        self._max_task_retries = max_task_retries
        self._backoff = restart_backoff
        self._chaos = resolve_chaos(chaos, chaos_seed, start_method, max_worker_memory)
        if self._chaos is not None and self._chaos is not chaos:
            weakref.finalize(self, self._chaos.close)  # the state directory is ours to remove
        # Threads pass objects by reference; processes get big arguments through shared memory.
        self._shm_prefix = None if start_method == "threading" else shm.pool_prefix()
        self._serializer: Any = ReferenceSerializer() if start_method == "threading" else Serializer(
            use_dill, shm.Segments.arguments(self._shm_prefix) if self._shm_prefix else None)
        self._chaos_scope = chaos_scope(self._chaos) << 32
        self._map_calls = itertools.count(1)
        self._apply_counter = itertools.count()
        self._apply_ordinal = itertools.count()
        self._callbacks = CallbackRunner()
        self._supervisor: Supervisor | None = None
        self._hooks = HookWatch()  # warns when a keep_alive call changes the live workers' hooks
        self._start_lock = threading.Lock()  # callers in several threads must share one supervisor
        # MPIRE starts its insights afresh whenever it starts workers again after
        # stopping them (each call without keep_alive): set by such a stop,
        # cleared by the next call.
        self._insights_stale = False
        self._exits = WorkerExits()  # those of the last supervisor, once it is gone
        self._event_log = check_event_log(event_log)
        self._pool_id = f"pool{next(_POOL_IDS)}"

    # ------------------------------------------------------------------ setup
    @property
    def ctx(self) -> Any:
        """The multiprocessing context of the workers (MPIRE's ``pool.ctx``): ``ctx.Event()``, ``ctx.Value()``..."""
        return self._ctx

    def _settings(self) -> PoolSettings:
        threading_mode = self._start_method == "threading"
        return PoolSettings(
            n_jobs=self.n_jobs, ctx=self._ctx, daemon=self._daemon, use_dill=self._use_dill,
            pass_worker_id=self._pass_worker_id, use_worker_state=self._use_worker_state,
            shared_objects=self._shared_objects, has_shared_objects=self._shared_objects is not None,
            cpu_ids=self._cpu_ids, max_worker_memory=self._max_worker_memory,
            max_task_retries=self._max_task_retries, backoff=self._backoff, chaos=self._chaos,
            enable_insights=self.enable_insights, order_tasks=self.order_tasks, start_method=self._start_method,
            timeout_grace=self._timeout_grace, serializer=self._serializer if threading_mode else None,
            shm_prefix=self._shm_prefix, hooks_only_objects=self._hooks_only_objects,
        )

    def _running_supervisor(self) -> Supervisor:
        supervisor = self._supervisor
        if supervisor is not None and not supervisor.finished.is_set():
            return supervisor  # no lock on the hot path: it only guards starting one
        with self._start_lock:
            return self._start_supervisor()

    def _start_supervisor(self) -> Supervisor:
        supervisor = self._supervisor
        if supervisor is None or supervisor.finished.is_set():
            ctx = self._ctx if self._start_method != "threading" else multiprocessing
            progress = ctx.RawArray("d", self.n_jobs * PROGRESS_FIELDS)
            cancelled = ctx.RawArray("q", CANCEL_SLOTS)
            insights = ctx.RawArray("d", self.n_jobs * INSIGHT_FIELDS) if self.enable_insights else None
            log = (EventLog.from_env(self._pool_id) if self._event_log is None
                   else EventLog(self._event_log, pool=self._pool_id))
            supervisor = Supervisor(self._settings(), SharedArrays(progress, cancelled, insights),
                                    Recorder(log) if log is not None else None)
            supervisor.start()
            live_supervisors.add(supervisor)
            weakref.finalize(self, stop_supervisor, supervisor)
            self._supervisor = supervisor
        return supervisor

    def _start_workers(self, session: WorkerSession) -> None:
        """Start the workers now, with ``session``'s hooks (a front door whose workers exist from the start)."""
        self._running_supervisor().start_workers(session)

    # MPIRE's setters
    def pass_on_worker_id(self, pass_on: bool = True) -> None:
        self._pass_worker_id = pass_on
        self._restart_needed()

    def set_shared_objects(self, shared_objects: Any = None) -> None:
        self._shared_objects = shared_objects
        self._restart_needed()

    def set_use_worker_state(self, use_worker_state: bool = True) -> None:
        self._use_worker_state = use_worker_state
        self._restart_needed()

    def set_keep_alive(self, keep_alive: bool = True) -> None:
        self._keep_alive = keep_alive

    def set_order_tasks(self, order_tasks: bool = True) -> None:
        self.order_tasks = order_tasks
        self._restart_needed()

    def _restart_needed(self) -> None:
        # Settings live in the workers; new settings need new workers.
        if self._supervisor is not None and not self._supervisor.finished.is_set():
            self.stop_and_join()
            stop_supervisor(self._supervisor)
            self._exits = self._supervisor.exits
            self._supervisor = None

    # ------------------------------------------------------------------ apply
    def apply_async(self, func: Callable, args: Any = (), kwargs: dict | None = None,
                    callback: Callable[[Any], Any] | None = None,
                    error_callback: Callable[[BaseException], Any] | None = None,
                    worker_init: Callable | None = None, worker_exit: Callable | None = None,
                    task_timeout: float | None = None, worker_init_timeout: float | None = None,
                    worker_exit_timeout: float | None = None) -> AsyncResult:
        """Run ``func(*args, **kwargs)`` in a worker; a death fails this task only."""
        if worker_init is None and worker_exit is None and worker_init_timeout is None and worker_exit_timeout is None:
            session = _PLAIN_SESSION  # the common case: no record to build per call
        else:
            positive_number("worker_init_timeout", worker_init_timeout)
            positive_number("worker_exit_timeout", worker_exit_timeout)
            session = WorkerSession(worker_init, worker_exit, None, worker_init_timeout, worker_exit_timeout)
        if task_timeout is not None:
            positive_number("task_timeout", task_timeout)
        return self._apply(func, apply_arguments(args), kwargs or {}, session, task_timeout, AsyncResult, callback,
                           error_callback)

    def _apply(self, func: Callable, args: tuple, kwargs: dict, session: WorkerSession, task_timeout: float | None,
               result_type: type[AsyncResult], callback: Callable[[Any], Any] | None,
               error_callback: Callable[[BaseException], Any] | None) -> AsyncResult:
        """Submit ``func(*args, **kwargs)`` as one task; front doors with their own rules call this directly."""
        supervisor = self._running_supervisor()
        result = result_type(callback, error_callback, self._callbacks, supervisor.finished.is_set)
        index = next(self._apply_counter)
        job = ApplyJob(session, _func_name(func), task_timeout, index, result, self._serializer.loads)
        job.chaos_call = self._chaos_scope
        result._job = weakref.ref(job)  # not the job itself: a result and its job would keep each other alive
        try:
            payload = self._serializer.dumps((func, APPLY, [(args, kwargs)]))
        except BaseException as exc:  # noqa: BLE001 - even SystemExit from a __reduce__: it belongs to this task
            job.on_error(None, with_boundary(exc, TASK_ARGS))
            return result
        if self._insights_stale:
            self._reset_insights(supervisor)
        supervisor.submit([Task(next_task_id(), job, index, 1, payload, next(self._apply_ordinal))])
        return result

    def _stop_applies(self, results: list[AsyncResult], reason: str, error: BaseException) -> None:
        """Stop tasks of ``_apply`` a front door no longer wants (the rest of a failed executor ``map``).

        A task not started never starts; a running one's worker is killed and
        replaced (an abort, not a death); each result resolves with ``error``.
        Returns once the supervisor has done it, or after a bound.
        """
        supervisor = self._supervisor
        if supervisor is None or supervisor.finished.is_set():
            return
        stopped = []
        for result in results:
            job = result._job() if result._job is not None else None
            if job is not None and not job.done:
                supervisor.stop_task(job, reason, error)
                stopped.append(result)
        deadline = time.monotonic() + _STOP_BOUND
        for result in stopped:  # resolved by the supervisor right after it killed the worker
            result.wait(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ map family
    def _chunks(self, func: Callable, iterable_of_args: Iterable | int, iterable_len: int | None,
                max_tasks_active: int | None, chunk_size: float | None, n_splits: int | None,
                worker_lifespan: int | None, progress_bar: bool, worker_init: Callable | None,
                worker_exit: Callable | None, task_timeout: float | None, worker_init_timeout: float | None,
                worker_exit_timeout: float | None, progress_bar_options: dict | None,
                progress_bar_style: str | None, ordered: bool, *, rule: str = MPIRE) -> Iterator[list]:
        """The map family's engine: the results of one chunk at a time; ``rule`` is how an item becomes arguments
        (``_core.arguments``: MPIRE's, or multiprocessing's whole items or starmap)."""
        args, iterable_len = map_arguments(
            iterable_of_args, iterable_len, max_tasks_active, chunk_size, n_splits, worker_lifespan,
            {"task_timeout": task_timeout, "worker_init_timeout": worker_init_timeout,
             "worker_exit_timeout": worker_exit_timeout})
        style = check_style(progress_bar_style)
        largest = None
        if chunk_size is None and n_splits is None and not is_ndarray(args):
            n_splits, largest = default_splits(self.n_jobs, progress_bar), LARGEST_DEFAULT_CHUNK
        chunks, size, total, rows = plan_chunks(args, self.n_jobs, chunk_size, n_splits, iterable_len, largest)
        # checked on every call, as MPIRE does; stacklevel 3 is the user's line (via calls.py)
        options = bar_options(progress_bar_options, total, style, stacklevel=3)
        max_chunks = self.n_jobs * MAP_CHUNKS_AHEAD
        if max_tasks_active is not None:
            max_chunks = chunks_in_flight(max_tasks_active, size)
        supervisor = self._running_supervisor()
        if self._insights_stale:
            self._reset_insights(supervisor)
        self._hooks.note(worker_init, worker_exit, self._keep_alive, stacklevel=3)  # the user's line, via calls.py
        shipped, release, function = shippable(func, self._serializer, self._start_method, supervisor.has_processes)
        session = WorkerSession(worker_init, worker_exit, worker_lifespan, worker_init_timeout, worker_exit_timeout,
                                function)
        job = MapJob(session, _func_name(func), task_timeout)
        job.chaos_call = self._chaos_scope | next(self._map_calls)
        bar = make_progress_bar(style, options) if progress_bar else None
        results = run_map(supervisor, job, shipped, chunks, ordered, max_chunks, self._serializer.dumps,
                              self._serializer.loads, bar, rows, rule)
        return self._finish_after(results, session, release)

    def _finish_after(self, results: Iterator[list], session: WorkerSession,
                      release: Callable[[], None]) -> Iterator[list]:
        # pytest leaves this frame out of a failing test's report: the user's line and the error are what count
        __tracebackhide__ = True
        try:
            yield from self._settled(results, session)
        finally:
            release()  # an unpicklable function's entry in inherit's table: the call is over

    def _settled(self, results: Iterator[list], session: WorkerSession) -> Iterator[list]:
        __tracebackhide__ = True
        try:
            yield from results
        except BaseException:
            self._apply_ordinal = itertools.count()
            if not self._keep_alive:
                self._graceful_stop()
            raise
        self._apply_ordinal = itertools.count()  # as MPIRE: order_tasks places apply tasks from worker 0 again
        if not self._keep_alive:
            errors = self._graceful_stop()
        elif session.worker_lifespan is not None and session.worker_exit is not None:
            # MPIRE ends every call with stop_and_join(keep_alive=True), which
            # waits for the workers that retired during the call: their
            # worker_exit values are in get_exit_results() when the call returns.
            errors = self._graceful_stop(keep_workers=True)
        else:
            errors = []
        if errors:  # worker_exit raised or timed out: MPIRE reports that from the call
            raise errors[0]

    # ------------------------------------------------------------------ lifecycle
    def _graceful_stop(self, keep_workers: bool = False) -> list[BaseException]:
        supervisor = self._supervisor
        if supervisor is None or supervisor.finished.is_set():
            return []
        barrier = Barrier(keep_workers=keep_workers)
        supervisor.barrier(barrier)
        while not barrier.event.wait(0.25):
            if supervisor.finished.is_set():
                break
        if not keep_workers:
            self._insights_stale = self.enable_insights
            self._hooks.forget()
        return barrier.outcome(self._serializer)[1]

    def _reset_insights(self, supervisor: Supervisor) -> None:
        self._insights_stale = False
        supervisor.reset_insights()

    def get_exit_results(self) -> list[Any]:
        """The return values of ``worker_exit``, one per worker life, since the workers were last started.

        As MPIRE: lives ended by ``worker_lifespan`` count too, so the list may
        be longer than ``n_jobs`` (a life that replaced a retired worker and
        ran no task gives none); it is empty without a ``worker_exit``.
        """
        supervisor = self._supervisor
        exits = supervisor.exits if supervisor is not None else self._exits
        return exits.values(self._serializer)

    def stop_and_join(self, keep_alive: bool = False) -> None:
        """Wait for every submitted task, then stop the workers (running ``worker_exit``).

        With ``keep_alive=True`` (as MPIRE) the workers stay up for the next
        call: only the wait for every submitted task remains.
        """
        errors = self._graceful_stop(keep_workers=keep_alive)
        self._callbacks.drain()
        if errors:
            raise errors[0]

    def terminate(self) -> None:
        """Kill every worker now; pending results become ready with PoolTerminatedError."""
        if self._supervisor is not None:
            stop_supervisor(self._supervisor)
        self._hooks.forget()
        self._callbacks.drain(5.0)
        self._callbacks.stop()

    # ------------------------------------------------------------------ observation
    def statistics(self) -> PoolStatistics:
        """A snapshot of the pool's health: live workers, pids, restarts, deaths, task counts."""
        supervisor = self._supervisor
        if supervisor is None:
            return PoolStatistics(self.n_jobs)
        return PoolStatistics.snapshot(self.n_jobs, supervisor.counters, supervisor.live_workers(),
                                       supervisor.worker_pids())

    def get_insights(self) -> dict[str, Any]:
        """MPIRE's insights dict (``{}`` with insights off), plus ``deaths`` and ``death_details``."""
        if not self.enable_insights:
            return {}
        supervisor = self._supervisor
        if supervisor is None:  # nothing ran yet: zeros (MPIRE gives {} until its first map starts workers)
            return gather_insights(self.n_jobs, None, [0.0] * self.n_jobs, TopTasks(), [])
        return gather_insights(self.n_jobs, supervisor.insights, supervisor.start_up_time, supervisor.top_tasks,
                               supervisor.insight_deaths)

    @property
    def _workers(self) -> list[Any]:
        """MPIRE's private list of worker processes by worker id (MPIRE's tests kill one through it)."""
        return [slot.process for slot in self._supervisor.slots] if self._supervisor is not None else []

    def chaos_journal(self) -> list[Any]:
        """Faults the chaos layer injected into this pool's workers so far."""
        return self._chaos.journal() if self._chaos is not None else []
