"""The kit's adapters for our front doors: ``mpire_fault.Pool``, ``mpire_fault.ProcessPoolExecutor`` and the
joblib backend.

Each is the peer adapter of the class it replaces with our class swapped in,
so a front door is graded through exactly the calls the peer is graded
through; the difference in the table is the difference a user gets from the
one-import switch. ``create(**options)`` passes ``chaos``/``chaos_seed`` (and
any other keyword of ours) to the front door as its users pass them.

A module of its own, not part of ``our_adapters``: these subclass the peer
adapters, and ``peer_adapters`` already imports ``our_adapters``.
"""
from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable
from typing import Any

from .adapter_base import Adapter, async_result
from .peer_adapters import FuturesAdapter, MultiprocessingAdapter


class MpireFaultStdPoolAdapter(MultiprocessingAdapter):
    """``mpire_fault.Pool``: ``apply_async`` with callbacks, ``starmap(chunksize=1)``, ``terminate()``."""

    name = "mpire_fault.Pool"
    death_error = "WorkerDiedError"
    # no task_timeout: multiprocessing.Pool's API has none (our extras are WorkerPool's constructor keywords only)
    features = MultiprocessingAdapter.features | {"names_item", "error_fields", "item_in_chunk"}

    @staticmethod
    def create(**options: Any) -> Any:
        from mpire_fault import Pool

        return Pool(2, **{"context": multiprocessing.get_context("fork"), **options})

    def submit(self, fn, args, callback=None, error_callback=None, timeout=None):
        if timeout is not None:
            raise NotImplementedError(f"{self.name} has no per-task timeout (as multiprocessing.Pool)")
        return self.pool.apply_async(fn, args, callback=callback, error_callback=error_callback)

    def worker_pids(self) -> list[int]:
        return sorted(self.pool.statistics()["worker_pids"].values())


class MpireFaultExecutorAdapter(FuturesAdapter):
    """``mpire_fault.ProcessPoolExecutor``: ``submit`` futures, ``map``, ``shutdown(wait=False, cancel_futures=True)``.

    No ``names_item``: the executor's ``map`` is one future per item (the
    stdlib's rule), so a death error names the task, not a map item.
    """

    name = "mpire_fault.ProcessPoolExecutor"
    death_error = "ExecutorWorkerDiedError"

    @staticmethod
    def create(**options: Any) -> Any:
        from mpire_fault import ProcessPoolExecutor

        return ProcessPoolExecutor(2, **{"mp_context": multiprocessing.get_context("fork"), **options})

    def worker_pids(self) -> list[int]:
        return sorted(self.pool.statistics()["worker_pids"].values())


class MpireFaultJoblibAdapter(Adapter):
    """The joblib backend ``"mpire_fault"``, through the two ways joblib reaches a backend.

    ``map`` is a real ``Parallel`` call (``batch_size=1``, as every other
    adapter maps one item per task) inside ``parallel_config(backend=...)``,
    so the workers stay warm between calls as in a user's block. joblib has no
    call of its own for one task, so ``submit`` is the backend contract
    joblib's ``Parallel`` dispatches each batch through (``submit(batch,
    callback)``, then ``retrieve_result_callback``): the call the loky adapter
    grades on loky's executor, which joblib's loky backend submits to.
    ``shutdown`` is the backend's own ``shutdown()``.

    One backend serves one ``Parallel`` call at a time in joblib. A call that
    fails stops every batch the backend still owes (as loky's abort kills its
    executor), so a single task still pending when a map aborts fails with
    ``PoolTerminatedError``; the kit's machines rarely leave one pending then
    (apply-isolation passed 200 examples), and a counterexample of that shape
    is this mixing of calls, not a death that spread.
    """

    name = "mpire_fault.joblib"
    death_error = "WorkerDiedError"
    # no task_timeout (joblib's timeout= is per Parallel call); no names_item (the error says "item N of its
    # Parallel call", joblib's words, not the kit's "map item N")
    features: frozenset[str] = frozenset({"terminate"})  # the backend's shutdown() stops its workers now

    @staticmethod
    def create(**options: Any) -> Any:
        from mpire_fault.joblib import MpireFaultBackend

        backend = MpireFaultBackend(**options)
        backend.configure(n_jobs=2)  # what Parallel does first; submit() needs the worker count
        return backend

    def submit(self, fn, args, callback=None, error_callback=None, timeout=None):
        if timeout is not None:
            raise NotImplementedError(f"{self.name} has no per-task timeout (joblib's timeout= is per call)")
        return self.pool.submit(functools.partial(fn, *args), callback=self._route(callback, error_callback))

    def _route(self, callback: Callable | None, error_callback: Callable | None) -> Callable[[Any], None]:
        """joblib's completion callback: the outcome through ``retrieve_result_callback``, to the right hook."""
        backend = self.pool

        def completed(outcome: Any) -> None:
            try:
                value = backend.retrieve_result_callback(outcome)
            except BaseException as exc:  # noqa: BLE001 - the batch's error is the hook's argument
                if error_callback is not None:
                    error_callback(exc)
                return
            if callback is not None:
                callback(value)

        return completed

    def get(self, handle, timeout):
        return async_result(handle, timeout)

    def run_map(self, fn, items):
        from joblib import Parallel, delayed, parallel_config

        # parallel_config is per thread, and the kit maps in a thread of its own
        with parallel_config(backend=self.pool, n_jobs=2):
            return Parallel(batch_size=1)(delayed(fn)(*item) for item in items)

    def run_map_input(self, fn, iterable, chunk_size, n_splits):
        from joblib import Parallel, delayed, parallel_config

        with parallel_config(backend=self.pool, n_jobs=2):  # each item one argument, as Parallel is used
            return Parallel()(delayed(fn)(item) for item in iterable)

    def worker_pids(self) -> list[int]:
        return sorted(self.pool.statistics()["worker_pids"].values())

    def shutdown(self) -> None:
        self.pool.shutdown()
