"""The joblib backend ``"mpire_fault"``: joblib's ``Parallel`` (and scikit-learn's ``n_jobs=``) on our engine.

    import mpire_fault.joblib                  # registers the backend
    with joblib.parallel_config(backend="mpire_fault", n_jobs=2) as config:
        Parallel()(delayed(f)(x) for x in xs)
        config["backend"].statistics()         # the backend instance: statistics(), chaos_journal()

joblib hands a backend *batches*: callables without arguments, each running a
few ``delayed`` calls. Each batch is one ``apply_async`` task of a
``WorkerPool``, so a worker's death fails that batch alone, at once, with a
``WorkerDiedError`` naming the batch's items; joblib then aborts the call as it
does for any failed batch. loky instead breaks its whole executor with
``TerminatedWorkerError``. joblib 1.6 has no entry point for third-party
backends (its ``EXTERNAL_BACKENDS`` is a fixed table), so importing this
module is the one way in.
"""
from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import os
import pickle
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

try:
    from joblib import cpu_count, register_parallel_backend
    from joblib.parallel import (
        AutoBatchingMixin,
        FallbackToBackend,
        ParallelBackendBase,
        SequentialBackend,
        get_active_backend,
    )
except ImportError as exc:  # joblib is the optional extra [joblib]
    raise ImportError(
        'mpire_fault.joblib needs joblib, an optional extra: pip install "mpire_fault[joblib]"'
    ) from exc

from ._core.backoff import RestartBackoff
from ._core.options import check_event_log, check_options
from ._core.remote import TASK_ARGS
from .pool import WorkerPool
from .statistics import PoolStatistics

__all__ = ["BACKEND_NAME", "MpireFaultBackend"]

BACKEND_NAME = "mpire_fault"

# What joblib's Parallel passes to every backend's configure(): the memmapping
# settings of its loky and multiprocessing backends and its own mp context. Big
# arguments reach our workers through the engine's shared memory instead, and
# the start method is ours to choose, so these are read and set aside.
_JOBLIB_CALL_KEYS = frozenset({"max_nbytes", "temp_folder", "mmap_mode", "verbose", "context"})
# What Parallel(...) may pass on for the workers themselves, as to loky's executor and multiprocessing's Pool.
_JOBLIB_WORKER_KEYS = frozenset({"initializer", "initargs"})
_PROCESS_START_METHODS = ("fork", "forkserver", "spawn")
# As loky's executor: workers left idle this long after the last call are stopped.
DEFAULT_IDLE_WORKER_TIMEOUT = 300.0


class _Batch:
    """One joblib batch as a pool task; its repr is what a ``WorkerDiedError`` says the dead worker owned."""

    __slots__ = ("calls", "label")

    def __init__(self, calls: Callable[[], Any], label: str) -> None:
        self.calls = calls
        self.label = label

    def __call__(self) -> Any:
        try:
            return self.calls()
        except KeyboardInterrupt as exc:
            # Raised by the batch's own code: joblib hands it to the caller as any error of a batch (loky does).
            # Let through, it would end the worker, and the call would fail with a WorkerDiedError instead.
            raise _BatchInterrupted(*exc.args) from exc

    def __repr__(self) -> str:
        return self.label


class _BatchInterrupted(Exception):
    """A ``KeyboardInterrupt`` a batch raised, carried to the parent as an ordinary task error."""


class _Outcome:
    """What a batch gave, handed to joblib's completion callback (it wants one object either way)."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error


class _Lease:
    """A pool and the batches it still owes; the count tells an idle pool from a busy one."""

    __slots__ = ("hooks", "outstanding", "pool", "worker_init")

    def __init__(self, pool: WorkerPool, hooks: tuple[Callable[..., Any] | None, tuple]) -> None:
        self.pool = pool
        self.outstanding = 0
        self.hooks = hooks  # (initializer, initargs) its workers start with
        initializer, initargs = hooks
        # One object for the pool's life: each batch's session then equals the one its workers started with.
        self.worker_init = functools.partial(initializer, *initargs) if initializer is not None else None


def _same_hooks(a: tuple[Any, tuple], b: tuple[Any, tuple]) -> bool:
    """Whether workers started with hooks ``a`` may serve a call that asks for ``b`` (loky's rule: equal arguments)."""
    if a[0] is not b[0] or len(a[1]) != len(b[1]):
        return False
    try:
        return all(x is y or bool(x == y) for x, y in zip(a[1], b[1], strict=True))
    except Exception:  # noqa: BLE001 - an argument without a plain == (a numpy array): new workers, to be safe
        return False


class _Settled:
    """A batch's callback (or error callback): one batch fewer owed, then joblib's callback with the outcome."""

    __slots__ = ("backend", "callback", "failed", "lease")

    def __init__(self, backend: MpireFaultBackend, lease: _Lease, callback: Callable[[Any], Any] | None,
                 failed: bool) -> None:
        self.backend = backend
        self.lease = lease
        self.callback = callback
        self.failed = failed

    def __call__(self, value: Any) -> None:
        with self.backend._lock:
            self.lease.outstanding -= 1
        if self.callback is not None:
            self.callback(_Outcome(error=value) if self.failed else _Outcome(value))


def _function_name(calls: Any) -> str:
    items = getattr(calls, "items", None)  # joblib's BatchedCalls: a list of (function, args, kwargs)
    if not items:
        return type(calls).__name__
    func = items[0][0]
    for _ in range(3):  # through functools.partial (.func) and scikit-learn's delayed wrapper (.function)
        inner = getattr(func, "func", None) or getattr(func, "function", None)
        if inner is None or hasattr(func, "__qualname__"):
            break
        func = inner
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or type(func).__name__


def _check_hooks(initializer: Any, initargs: Any) -> tuple[Callable[..., Any] | None, tuple]:
    if initializer is not None and not callable(initializer):
        raise TypeError(f"initializer must be a callable, got {initializer!r}")
    if not isinstance(initargs, (tuple, list)):
        raise TypeError(f"initargs must be a tuple, got {initargs!r}")
    return initializer, tuple(initargs)


def _by_reference_failure(error: BaseException) -> bool:
    """Plain pickle's refusal of what it can only pickle by name (a lambda, a closure, a local class), which dill
    ships by value; not an object that will not pickle at all (a ``__reduce__`` that raises, a lock)."""
    return isinstance(error, (AttributeError, pickle.PicklingError)) and (
        "Can't pickle local object" in str(error) or "attribute lookup" in str(error))


def _reap_when_idle(backend_ref: weakref.ref, generation: int) -> None:
    backend = backend_ref()
    if backend is not None:
        backend._reap(generation)


class MpireFaultBackend(AutoBatchingMixin, ParallelBackendBase):
    """joblib's ``Parallel`` on a fault-tolerant ``WorkerPool``; registered as ``"mpire_fault"``.

    Keyword options (``parallel_config(backend="mpire_fault", ...)`` passes them
    here): ``chaos``, ``chaos_seed``, ``event_log``, ``max_worker_memory``,
    ``max_task_retries`` (a batch that killed its worker runs again, up to N
    times), ``restart_backoff``, ``start_method`` (fork, forkserver or spawn),
    ``use_dill`` (ship lambdas and closures), ``idle_worker_timeout``
    (seconds before idle workers kept between calls are stopped), and
    joblib's own ``initializer`` and ``initargs`` (``initializer(*initargs)``
    runs once in each worker as it starts, a restarted one too; also taken by
    ``Parallel(...)``, as loky takes them: workers are reused while the two are
    the same, and replaced when they change).

    The workers stay up between ``Parallel`` calls made while this instance is
    the active backend (inside its ``parallel_config`` block); a ``Parallel``
    that made its own instance stops them when its call ends.
    """

    supports_retrieve_callback = True  # results come through submit's callback: generators and timeouts work
    supports_inner_max_num_threads = False
    supports_sharedmem = False
    uses_threads = False

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        *,
        chaos: Any = None,
        chaos_seed: int | None = None,
        event_log: Any = None,
        max_worker_memory: int | None = None,
        max_task_retries: int = 0,
        restart_backoff: RestartBackoff | int | None = None,
        start_method: str | None = None,
        use_dill: bool = False,
        idle_worker_timeout: float = DEFAULT_IDLE_WORKER_TIMEOUT,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple = (),
        **unknown: Any,
    ) -> None:
        if unknown:
            raise TypeError(f"the mpire_fault joblib backend has no option {sorted(unknown)[0]!r}; it takes "
                            "chaos, chaos_seed, event_log, max_worker_memory, max_task_retries, restart_backoff, "
                            "start_method, use_dill, idle_worker_timeout, initializer and initargs")
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads)
        if start_method is None:
            # joblib's own switch for its process backends, honoured here too.
            start_method = os.environ.get("JOBLIB_START_METHOD", "").strip() or "fork"
        if start_method not in _PROCESS_START_METHODS:
            raise ValueError(f"start_method must be one of {', '.join(_PROCESS_START_METHODS)} for the joblib "
                             f"backend (joblib's backend='threading' runs threads), got {start_method!r}")
        if isinstance(idle_worker_timeout, bool) or not isinstance(idle_worker_timeout, (int, float)) \
                or not idle_worker_timeout > 0:
            raise ValueError(f"idle_worker_timeout must be a positive number of seconds, got {idle_worker_timeout!r}")
        self._restart_backoff = check_options(1, start_method, max_worker_memory, 1.0, max_task_retries,
                                              restart_backoff)
        self._event_log = check_event_log(event_log)
        self._start_method = start_method
        self._max_worker_memory = max_worker_memory
        self._max_task_retries = max_task_retries
        self._use_dill = use_dill
        self._idle_worker_timeout = float(idle_worker_timeout)
        self._hooks = _check_hooks(initializer, initargs)  # the default of each call; Parallel(...) may change it
        self._call_hooks = self._hooks
        # One Chaos for every pool this backend makes: its journal and its COUNT budgets
        # ("1*sigkill") span the backend's life, not the life of one pool.
        from .chaos import resolve

        self._chaos = resolve(chaos, chaos_seed, memory_limit=max_worker_memory)
        if self._chaos is not None and self._chaos is not chaos:
            weakref.finalize(self, self._chaos.close)
        self._lock = threading.RLock()
        self._lease: _Lease | None = None
        self._n_jobs = 1
        self._retired: list[PoolStatistics] = []  # the statistics of the pools this backend stopped
        self._generation = 0  # bumped by each configure(): an idle timer armed before it does nothing
        self._idle_timer: threading.Timer | None = None
        self._next_item = 0  # the input index of the next batch's first item, in this Parallel call
        self._next_batch = 0

    # ------------------------------------------------------------------ joblib's calls
    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """The workers a call with ``n_jobs`` gets: ``-1`` is every CPU, ``-2`` all but one, as in loky."""
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if multiprocessing.current_process().daemon:
            # A pool's worker is daemonic, and multiprocessing forbids daemonic processes children.
            if n_jobs != 1:
                # Worded as joblib's own backends word it ("...-backed parallel loops cannot be nested"), so the
                # filters written for theirs catch ours.
                warnings.warn("mpire_fault-backed parallel loops cannot be nested in a worker process (it is "
                              "daemonic, so cannot start processes), setting n_jobs=1", stacklevel=3)
            return 1
        if n_jobs < 0:
            n_jobs = max(cpu_count() + 1 + n_jobs, 1)
        return n_jobs

    def configure(self, n_jobs: int = 1, parallel: Any = None, prefer: str | None = None,
                  require: str | None = None, **joblib_kwargs: Any) -> int:
        """Ready the backend for one ``Parallel`` call; returns its number of workers."""
        n_jobs = self.effective_n_jobs(n_jobs)
        if n_jobs == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        if "initializer" in joblib_kwargs or "initargs" in joblib_kwargs:
            hooks = _check_hooks(joblib_kwargs.get("initializer"), joblib_kwargs.get("initargs", ()))
        else:
            hooks = self._hooks
        unknown = sorted(set(joblib_kwargs) - _JOBLIB_CALL_KEYS - _JOBLIB_WORKER_KEYS)
        if unknown:
            raise TypeError(f"Parallel(...) passed {unknown[0]!r} to the mpire_fault backend, which does not "
                            f"take it there: give mpire_fault's options to parallel_config(backend="
                            f"{BACKEND_NAME!r}, ...)")
        self.parallel = parallel
        retired = None
        with self._lock:
            self._generation += 1
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            if self._lease is not None and (self._lease.pool.n_jobs != n_jobs
                                            or not _same_hooks(self._lease.hooks, hooks)):
                retired, self._lease = self._lease, None
            self._n_jobs = n_jobs
            self._call_hooks = hooks
        if retired is not None:
            self._retire(retired)
        return n_jobs

    def start_call(self) -> None:
        self._next_item = 0
        self._next_batch = 0

    def submit(self, func: Callable[[], Any], callback: Callable[[Any], Any] | None = None) -> Any:
        """Run one batch on a worker; ``callback`` gets its outcome the moment it is known."""
        # joblib dispatches under its own lock, in input order: the item count is the batch's position.
        first = self._next_item
        size = len(func) if hasattr(func, "__len__") else 1
        self._next_item += size
        self._next_batch += 1
        items = f"item {first}" if size == 1 else f"items {first}-{first + size - 1}"
        label = f"{_function_name(func)}: {items} of its Parallel call, joblib batch {self._next_batch - 1}"
        # Under our lock, so abort_everything() never stops a pool between taking it and handing it the batch.
        with self._lock:
            lease = self._lease
            if lease is None:
                lease = self._lease = _Lease(self._new_pool(), self._call_hooks)
            lease.outstanding += 1
            try:
                return lease.pool.apply_async(_Batch(func, label), callback=_Settled(self, lease, callback, False),
                                              error_callback=_Settled(self, lease, callback, True),
                                              worker_init=lease.worker_init)
            except BaseException:
                lease.outstanding -= 1
                raise

    apply_async = submit  # the name joblib before 1.5 calls

    def retrieve_result_callback(self, out: _Outcome) -> Any:
        """The batch's list of results, or its error (a ``WorkerDiedError`` for a death), as joblib expects."""
        error = out.error
        if error is not None:
            if isinstance(error, _BatchInterrupted):
                raise KeyboardInterrupt(*error.args) from error.__cause__  # the worker's traceback, as for any error
            if not self._use_dill and TASK_ARGS in getattr(error, "__notes__", ()) and _by_reference_failure(error):
                # loky ships every function with cloudpickle; plain pickle (our default, several times
                # faster on small batches) refuses lambdas and closures.
                error.add_note(f"lambdas and closures need use_dill=True: parallel_config(backend="
                               f"{BACKEND_NAME!r}, use_dill=True, ...)")
            raise error
        return out.value

    def terminate(self) -> None:
        """End of a ``Parallel`` call: keep the workers warm while this backend is active, else stop them."""
        self.reset_batch_stats()
        if get_active_backend()[0] is not self:
            self.shutdown()
            return
        with self._lock:
            if self._lease is None:
                return
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            timer = threading.Timer(self._idle_worker_timeout, _reap_when_idle,
                                    args=(weakref.ref(self), self._generation))
            timer.daemon = True
            self._idle_timer = timer
        timer.start()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """A batch failed: stop the call's other batches now (their workers are killed), as loky does.

        Our apply tasks cannot be taken back once queued, and a killed call must
        not leave its batches running ahead of the next call's; so a pool still
        owing batches is stopped, and the next batch starts a new one. With
        nothing left running, the warm workers are kept.
        """
        with self._lock:
            lease = self._lease
            if lease is None or lease.outstanding == 0:
                return
            self._lease = None
        self._retire(lease)

    # ------------------------------------------------------------------ ours
    def statistics(self) -> PoolStatistics:
        """The health of this backend's workers over its life: every pool it made, summed.

        ``live_workers`` and ``worker_pids`` are those of the current pool;
        workers stopped because a call was aborted are not deaths.
        """
        with self._lock:
            lease = self._lease
            snapshots = list(self._retired)
        current = lease.pool.statistics() if lease is not None else PoolStatistics(self._n_jobs)
        for old in snapshots:
            current = dataclasses.replace(
                current, restarts=current.restarts + old.restarts, deaths=old.deaths + current.deaths,
                tasks_completed=current.tasks_completed + old.tasks_completed,
                tasks_failed=current.tasks_failed + old.tasks_failed,
                tasks_requeued=current.tasks_requeued + old.tasks_requeued)
        return current

    def chaos_journal(self) -> list[Any]:
        """Faults the chaos layer injected into this backend's workers so far."""
        return self._chaos.journal() if self._chaos is not None else []

    def shutdown(self) -> None:
        """Stop the workers now (bounded); a later ``Parallel`` call starts new ones."""
        with self._lock:
            lease, self._lease = self._lease, None
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
        if lease is not None:
            self._retire(lease)

    def _new_pool(self) -> WorkerPool:
        return WorkerPool(
            self._n_jobs, start_method=self._start_method, keep_alive=True, use_dill=self._use_dill,
            max_worker_memory=self._max_worker_memory, max_task_retries=self._max_task_retries,
            restart_backoff=self._restart_backoff, chaos=self._chaos, event_log=self._event_log)

    def _retire(self, lease: _Lease) -> None:
        lease.pool.terminate()
        stats = lease.pool.statistics()
        with self._lock:
            self._retired.append(stats)

    def _reap(self, generation: int) -> None:
        with self._lock:
            lease = self._lease
            if generation != self._generation or lease is None or lease.outstanding:
                return
            self._lease = None
            self._idle_timer = None
        self._retire(lease)

    def __reduce__(self) -> Any:
        raise TypeError("the mpire_fault joblib backend owns worker processes and cannot be pickled; nested "
                        "Parallel calls in its workers get joblib's thread backend instead")


register_parallel_backend(BACKEND_NAME, MpireFaultBackend)
