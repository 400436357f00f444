"""DaskPool: WorkerPool's API and guarantees on a Dask cluster.

Dask already restarts dead workers (the nanny), reschedules what they held
and cancels futures; this class adds only what our contract needs on top:
the ledger that keeps a task from running twice, the translation of Dask's
outcomes into our errors, and MPIRE's calling conventions.
"""
from __future__ import annotations

import itertools
import logging
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

from distributed import Client, LocalCluster

from .._core.arguments import apply_arguments
from .._core.chunking import LARGEST_DEFAULT_CHUNK, chunks_in_flight, is_ndarray, plan_chunks
from .._core.contract import PoolBackend, refuse_unless
from .._core.options import map_arguments, positive_int, positive_number
from .._core.progress import bar_options, check_style
from .._core.progress import progress_bar as make_progress_bar
from .._core.remote import TASK_ARGS, load_exception, with_boundary
from .._core.results import AsyncResult, CallbackRunner
from ..backends import DASK
from ..chaos.vocabulary import EXIT, INIT
from ..errors import PoolTerminatedError, SchedulerLostError, WorkerExitError, WorkerInitError
from ..statistics import PoolStatistics
from .chaos import resolve_chaos
from .cluster import ClusterOwner, cluster_statistics, stop_workers_now
from .ledger import KEY_PREFIX
from .liveness import SchedulerWatch, bounded, register
from .mapping import iterate_map
from .outcomes import outcome
from .pickler import Pickler
from .remote import TIMEOUT_GRACE, Session, TaskSpec, abort_call, run_on_live, run_task
from .session import finish_session
from .settle import Gatherer

log = logging.getLogger("mpire_fault.dask")


def _func_name(func: Callable) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


_WHY = "the scheduler places tasks and Dask's nannies own the worker processes; see the README's Dask table"


def _refuse(options: dict[str, Any]) -> None:
    refuse_unless(DASK, {name: value is not None for name, value in options.items()}, _WHY)


class DaskPool(ClusterOwner, PoolBackend):
    """WorkerPool's API on a Dask cluster (``address=None``: a LocalCluster owned by the pool)."""

    REFUSED = frozenset({"cpu_ids", "enable_insights", "order_tasks", "event_log", "start_method", "daemon",
                         "restart_backoff"})

    def __init__(self, n_jobs: int | None = None, daemon: bool = True, cpu_ids: list | None = None,
                 shared_objects: Any = None, pass_worker_id: bool = False, use_worker_state: bool = False,
                 start_method: str = "fork", keep_alive: bool = False, use_dill: bool = False,
                 enable_insights: bool = False, order_tasks: bool = False, *, max_worker_memory: int | None = None,
                 max_task_retries: int = 0, restart_backoff: Any = None, chaos: Any = None,
                 chaos_seed: int | None = None, address: str | Client | None = None,
                 timeout_grace: float | None = None, event_log: Any = None) -> None:
        # Nothing is silently weaker on the cluster: what Dask cannot do is refused by name.
        refuse_unless(DASK, {"cpu_ids": cpu_ids is not None, "enable_insights": enable_insights,
                             "order_tasks": order_tasks, "event_log": event_log is not None,
                             # Dask's nannies start the workers (forkserver or Dask's configured method)
                             "start_method": start_method != "fork",
                             # the nanny restarts a dead worker at once; Dask's workers are never daemonic
                             "daemon": daemon is not True, "restart_backoff": restart_backoff is not None,
                             # the memory limit is set on the workers of a cluster the pool starts
                             "max_worker_memory (with address=)": max_worker_memory is not None
                             and address is not None}, _WHY)
        positive_int("n_jobs", n_jobs)
        positive_int("max_worker_memory", max_worker_memory)
        positive_number("timeout_grace", timeout_grace)
        if isinstance(max_task_retries, bool) or not isinstance(max_task_retries, int) or max_task_retries < 0:
            raise ValueError(f"max_task_retries must be a non-negative integer, got {max_task_retries!r}")
        if address is not None and not isinstance(address, (str, Client)):
            raise ValueError(f"address must be None, a scheduler address or a distributed.Client, got {address!r}")
        self.n_jobs = n_jobs
        self.address = address
        self._shared_objects = shared_objects
        self._pass_worker_id = pass_worker_id
        self._use_worker_state = use_worker_state
        self._keep_alive = keep_alive
        self._kept_session: tuple[tuple[Any, Any], str | None] | None = None  # keep_alive: (hooks, session)
        self._use_dill = use_dill
        self._max_worker_memory = max_worker_memory
        self._max_task_retries = max_task_retries
        self._timeout_grace = TIMEOUT_GRACE if timeout_grace is None else float(timeout_grace)
        self._pickler = Pickler(use_dill)
        self._callbacks = CallbackRunner()
        self._lock = threading.RLock()
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._shared_future: Any = None
        self._pool_id = f"{KEY_PREFIX}{uuid.uuid4().hex[:12]}"
        self._counter = itertools.count()
        self._pending: dict[str, tuple[Any, AsyncResult]] = {}
        self._apply_sessions: dict[tuple[int, int], str] = {}
        self._given_up: list[str] = []  # apply sessions whose workers failed to start; closed with the others
        self._exit_results: list[Any] = []
        self._counts = {"tasks_completed": 0, "tasks_failed": 0}
        self._finalizer: Any = None
        self._gatherer: Gatherer | None = None
        self._lost: list = []
        self._watch: SchedulerWatch | None = None
        self._maps_running = 0
        self._apply_counter = itertools.count()
        self._chaos, self._local_chaos = resolve_chaos(chaos, chaos_seed)
        self._chaos_kept: tuple[dict, list[dict]] = ({}, [])  # what a closed cluster held of the chaos run
        self._mirrored = 0  # journal entries already copied to MP_CHAOS_JOURNAL
        if self._local_chaos is not None and self._local_chaos is not chaos:
            weakref.finalize(self, self._local_chaos.close)  # its (unused) state directory is ours to remove

    def _spec(self, call_id: str, key: str, description: str, session: str | None, task_timeout: float | None,
              retries: int, is_map: bool, first_index: int = 0) -> TaskSpec:
        return TaskSpec(self._pool_id, call_id, key, description, session, self._pass_worker_id,
                        self._use_worker_state, self._shared_objects is not None, task_timeout, retries,
                        self._use_dill, is_map, first_index, self._chaos, self._timeout_grace)

    def _needs_session(self, worker_init: Callable | None, worker_exit: Callable | None) -> bool:
        """Hooks, or chaos at ``init``/``exit``: those sites are visited by a call's session."""
        chaos_hooks = self._chaos is not None and bool(self._chaos.sites() & {INIT, EXIT})
        return worker_init is not None or worker_exit is not None or chaos_hooks

    def _open_session(self, name: str, worker_init: Callable | None, worker_exit: Callable | None) -> str | None:
        if not self._needs_session(worker_init, worker_exit):
            return None
        try:
            hooks = self._pickler.dumps((worker_init, worker_exit))
        except Exception as exc:  # noqa: BLE001 - whatever it raised is handed on
            raise with_boundary(exc, TASK_ARGS)  # noqa: B904 - its cause is set by us
        register(self.client, Session(name, hooks, self._use_dill, self._chaos), name=name)
        return name

    def _close_session(self, name: str | None) -> list[BaseException]:
        """worker_exit on every worker that ran the session; results go to ``get_exit_results``."""
        if name is None or self._client is None or self._lost:
            return []
        errors: list[BaseException] = []
        try:
            answers = run_on_live(self._client, finish_session, name)
            for answer in answers.values():
                if isinstance(answer, BaseException):  # the worker died at exit: as locally, that fails nothing
                    log.debug("worker_exit of %s could not answer: %r", name, answer)
                elif answer is not None and answer[0] == "ok":
                    self._exit_results.append(self._pickler.loads(answer[1]))
                elif answer is not None:
                    original = load_exception(answer[1], self._pickler)
                    error = WorkerExitError(f"worker_exit raised {type(original).__name__}: {original}")
                    error.__cause__ = original
                    errors.append(error)
        finally:
            try:
                bounded(self._client, self._client._unregister_worker_plugin, name, what=f"closing {name}")
            except Exception:
                log.debug("unregistering session %s failed", name, exc_info=True)
        return errors

    def _map_session(self, call_id: str, worker_init: Callable | None, worker_exit: Callable | None) -> str | None:
        """The session a map call runs under. With ``keep_alive`` a call with the same hooks as the last one
        keeps its session (``worker_init`` does not run again, worker state lives on), as MPIRE keeps its
        workers; new hooks end the kept session first (its ``worker_exit`` runs), as new workers would."""
        hooks = (worker_init, worker_exit)
        kept = self._kept_session
        if kept is not None and self._keep_alive and kept[0] == hooks:
            return kept[1]
        errors = self._end_kept_session()
        if errors:
            raise errors[0]
        name = self._open_session(f"{call_id}-session", worker_init, worker_exit)
        if self._keep_alive:
            self._kept_session = (hooks, name)
        return name

    def _end_map_session(self, name: str | None) -> list[BaseException]:
        """At the end of a map call: its session ends, unless ``keep_alive`` keeps it for the next call."""
        kept = self._kept_session
        if kept is not None and kept[1] == name and self._keep_alive:
            return []
        return self._close_session(name)

    def _end_kept_session(self) -> list[BaseException]:
        kept, self._kept_session = self._kept_session, None
        return self._close_session(kept[1]) if kept is not None else []

    def _outcome(self, future: Any, description: str, task_timeout: float | None = None,
                 answer: tuple[str, Any] | None = None) -> list[Any]:
        return outcome(future, description, self._pickler, self._client, task_timeout, answer)

    # ------------------------------------------------------------------ apply
    def apply_async(self, func: Callable, args: Any = (), kwargs: dict | None = None,
                    callback: Callable[[Any], Any] | None = None,
                    error_callback: Callable[[BaseException], Any] | None = None,
                    worker_init: Callable | None = None, worker_exit: Callable | None = None,
                    task_timeout: float | None = None, worker_init_timeout: float | None = None,
                    worker_exit_timeout: float | None = None) -> AsyncResult:
        """Run ``func(*args, **kwargs)`` on the cluster; a death fails this task only."""
        _refuse({"worker_init_timeout": worker_init_timeout, "worker_exit_timeout": worker_exit_timeout})
        positive_number("task_timeout", task_timeout)
        args = apply_arguments(args)
        client = self.client
        result: AsyncResult = AsyncResult(callback, error_callback, self._callbacks)
        index = next(self._apply_counter)
        description = f"apply task {index} ({_func_name(func)})"
        with self._lock:
            session = None
            if self._needs_session(worker_init, worker_exit):
                hooks = (id(worker_init), id(worker_exit))
                session = self._apply_sessions.get(hooks)
                if session is None:
                    session = self._open_session(f"{self._pool_id}-apply-session-{index}", worker_init, worker_exit)
                    self._apply_sessions[hooks] = session  # type: ignore[assignment]
        try:
            payload = self._pickler.dumps((func, [(args, kwargs or {})]))
        except BaseException as exc:  # noqa: BLE001 - even SystemExit from a __reduce__: it belongs to this task
            result._resolve(error=with_boundary(exc, TASK_ARGS))
            return result
        key = f"{self._pool_id}-apply-{index}"
        spec = self._spec(f"{self._pool_id}-apply", key, description, session, task_timeout,
                          self._max_task_retries, is_map=False, first_index=index)
        future = client.submit(run_task, spec, payload, self._shared(), key=key, pure=False, retries=0)
        with self._lock:
            self._pending[key] = (future, result)
        future.add_done_callback(lambda f: self._settle_soon(f, key, description, task_timeout, session))
        self._watching()
        return result

    def _watching(self) -> None:
        """Work is pending: make sure the scheduler is watched (``liveness``)."""
        if self._watch is not None:
            self._watch.poke()

    def _busy(self) -> bool:
        return bool(self._pending) or self._maps_running > 0

    def _scheduler_lost(self, error: SchedulerLostError) -> None:
        """The scheduler is silent or gone: every pending task fails with ``error`` now, and so does every
        call from now on (maps notice it while they wait)."""
        with self._lock:
            if self._lost:
                return
            self._lost.append(error)
        log.warning("%s", error)
        with self._lock:
            pending, self._pending = dict(self._pending), {}
        for _future, result in pending.values():
            self._counts["tasks_failed"] += 1
            result._resolve(error=SchedulerLostError(error.address, error.detail))

    def _settle_soon(self, future: Any, *args: Any) -> None:
        """Done callback. A failure may ask the scheduler what happened, so it is settled in a thread
        of its own: Dask runs the done callbacks of every future in the process in one thread. A
        finished task's answer is fetched by the gatherer, with the others finished meanwhile."""
        if future.status == "error":
            threading.Thread(target=self._settle, args=(future, *args), name="mpire-fault-dask-settle",
                             daemon=True).start()
        elif future.status == "finished":
            with self._lock:
                gatherer = self._gatherer
                if gatherer is None:
                    gatherer = self._gatherer = Gatherer(self._settle)
            gatherer.put(future, args)
        else:
            self._settle(future, *args)

    def _settle(self, future: Any, key: str, description: str, task_timeout: float | None = None,
                session: str | None = None, answer: tuple[str, Any] | None = None) -> None:
        with self._lock:
            entry = self._pending.pop(key, None)
        if entry is None:
            return  # terminate() answered it already
        result = entry[1]
        try:
            value = self._outcome(future, description, task_timeout, answer)[0]
        except BaseException as exc:  # noqa: BLE001 - whatever it raised is handed on
            self._counts["tasks_failed"] += 1
            if isinstance(exc, WorkerInitError) and session is not None:
                self._give_up(session)
            if isinstance(exc, SchedulerLostError):  # Dask cancelled everything: the other calls fail too
                self._scheduler_lost(exc)
            result._resolve(error=exc)
        else:
            self._counts["tasks_completed"] += 1
            result._resolve(value)
        finally:
            future.release()

    def _give_up(self, session: str) -> None:
        """The session's workers could not start: its pending tasks fail; new work starts a fresh session
        (as the local pool tries again when new work arrives)."""
        with self._lock:
            for hooks, name in list(self._apply_sessions.items()):
                if name == session:
                    del self._apply_sessions[hooks]
                    self._given_up.append(name)

    # ------------------------------------------------------------------ map family
    def _chunks(self, func: Callable, iterable_of_args: Iterable | int, iterable_len: int | None,
                max_tasks_active: int | None, chunk_size: float | None, n_splits: int | None,
                worker_lifespan: int | None, progress_bar: bool, worker_init: Callable | None,
                worker_exit: Callable | None, task_timeout: float | None, worker_init_timeout: float | None,
                worker_exit_timeout: float | None, progress_bar_options: dict | None,
                progress_bar_style: str | None, ordered: bool) -> Iterator[list]:
        """The map family's engine on the cluster: each chunk's results as they arrive (see ``calls.CallForms``);
        a death or an exception aborts the whole call."""
        _refuse({"worker_lifespan": worker_lifespan, "worker_init_timeout": worker_init_timeout,
                 "worker_exit_timeout": worker_exit_timeout})
        # as WorkerPool: an int is a range, iterable_len=0 reads nothing; a bool fails as the iterable it is not
        iterable_of_args, iterable_len = map_arguments(iterable_of_args, iterable_len, max_tasks_active, chunk_size,
                                                       n_splits, worker_lifespan, {"task_timeout": task_timeout})
        items = cast(Iterable[Any], iterable_of_args)
        client = self.client
        # as the local pool: default chunks are bounded, or range(int(1e30)) would be one list of sys.maxsize items
        largest = LARGEST_DEFAULT_CHUNK if chunk_size is None and n_splits is None and not is_ndarray(items) else None
        # the local pool's plan: a numpy array is cut into slices of rows, each passed whole (MPIRE's rule)
        chunks, size, total, rows = plan_chunks(items, self.n_jobs or 1, chunk_size, n_splits, iterable_len, largest)
        max_chunks = chunks_in_flight(max_tasks_active, size) if max_tasks_active else (self.n_jobs or 1) * 3
        call_id = f"{self._pool_id}-map-{next(self._counter)}"
        style = check_style(progress_bar_style)
        # checked on every call, as MPIRE does; stacklevel 3 is the user's line (via calls.py)
        options = bar_options(progress_bar_options, total, style, stacklevel=3)
        bar = make_progress_bar(style, options) if progress_bar else None
        return iterate_map(self, client, call_id, func, chunks, ordered, max_chunks, task_timeout,
                           (worker_init, worker_exit), bar, rows)

    # ------------------------------------------------------------------ lifecycle
    def get_exit_results(self) -> list[Any]:
        """The return values of ``worker_exit`` collected so far (map calls and ``stop_and_join``)."""
        return list(self._exit_results)

    def stop_and_join(self, keep_alive: bool = False) -> None:
        """Wait for every submitted task, then run the apply calls' ``worker_exit``."""
        with self._lock:
            pending = [result for _, result in self._pending.values()]
        for result in pending:
            result.wait()
        with self._lock:
            sessions, self._apply_sessions = list(self._apply_sessions.values()) + self._given_up, {}
            self._given_up = []
        errors = [error for name in sessions for error in self._close_session(name)]
        if not keep_alive:
            errors += self._end_kept_session()
        self._callbacks.drain()
        if errors:
            raise errors[0]

    def terminate(self) -> None:
        """Cancel everything now; pending results fail with PoolTerminatedError; close an owned cluster."""
        self._keep_chaos(drop=True)
        with self._lock:
            pending, self._pending = dict(self._pending), {}
            sessions, self._apply_sessions = list(self._apply_sessions.values()) + self._given_up, {}
            self._given_up = []
            if self._kept_session is not None and self._kept_session[1] is not None:
                sessions.append(self._kept_session[1])
            self._kept_session = None
            client, self._client = self._client, None
            cluster, self._cluster = self._cluster, None
            finalizer, self._finalizer = self._finalizer, None
            pool_id, self._pool_id = self._pool_id, f"{KEY_PREFIX}{uuid.uuid4().hex[:12]}"
            self._shared_future = None
            gatherer, self._gatherer = self._gatherer, None
            watch, self._watch = self._watch, None
            lost, self._lost = self._lost, []  # a new client (the next call) starts afresh
        if gatherer is not None:
            gatherer.stop()
        if watch is not None:
            watch.stop()
        for _future, result in pending.values():
            result._resolve(error=PoolTerminatedError("the pool was terminated while this task was pending"))
        if client is not None and not lost:
            try:
                if pending:
                    bounded(client, client._cancel, [future for future, _ in pending.values()], force=True,
                            what="cancelling the pending tasks")
                if cluster is None:  # someone else's cluster: stop our running tasks, leave the workers be
                    run_on_live(client, abort_call, pool_id)
                    for name in sessions:
                        bounded(client, client._unregister_worker_plugin, name, what=f"closing {name}")
            except Exception:
                log.debug("cleaning up after terminate failed", exc_info=True)
        if cluster is not None:  # ours: its workers' running tasks end now, as locally, not when they finish
            stop_workers_now(cluster)
        if finalizer is not None:
            finalizer()  # closes our client, and the cluster if it is ours
        self._callbacks.drain(5.0)
        self._callbacks.stop()

    # ------------------------------------------------------------------ MPIRE's setters
    def pass_on_worker_id(self, pass_on: bool = True) -> None:
        self._pass_worker_id = pass_on

    def set_shared_objects(self, shared_objects: Any = None) -> None:
        with self._lock:
            self._shared_objects = shared_objects
            self._shared_future = None  # scattered again at the next call

    def set_use_worker_state(self, use_worker_state: bool = True) -> None:
        self._use_worker_state = use_worker_state

    def set_keep_alive(self, keep_alive: bool = True) -> None:
        self._keep_alive = keep_alive

    def set_order_tasks(self, order_tasks: bool = True) -> None:
        refuse_unless(DASK, {"order_tasks": order_tasks}, _WHY)

    # ------------------------------------------------------------------ observation
    @property
    def ctx(self) -> Any:
        """Refused: MPIRE's ``pool.ctx`` makes primitives (Event, Value) for local worker processes only."""
        raise ValueError(f"ctx cannot be honoured with backend={DASK!r}: a multiprocessing Event or Value does not "
                         "reach Dask's worker processes; pass data through shared_objects or the arguments")

    def get_insights(self) -> dict[str, Any]:
        """``{}``, as MPIRE with insights off: ``enable_insights`` is refused on Dask."""
        return {}

    def statistics(self) -> PoolStatistics:
        """Live workers and their pids by slot, task counts, and the deaths the nannies reported.

        On a cluster the pool started (``address=None``) those are this pool's
        workers; on a shared cluster they are the cluster's, which other
        clients' work may have killed too.
        """
        return cluster_statistics(self.n_jobs or 0, self._client, self._counts)
