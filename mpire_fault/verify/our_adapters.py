"""The kit's adapters for our own pools: ``WorkerPool`` and ``DaskPool``."""
from __future__ import annotations

from typing import Any

from .adapter_base import Adapter, async_result, bounded


class MpireFaultAdapter(Adapter):
    name = "mpire_fault"
    death_error = "WorkerDiedError"
    features = frozenset({"task_timeout", "names_item", "chunk_size", "n_splits", "mpire_items", "error_fields",
                          "timeout_grace", "task_retries", "worker_init", "shared_memory", "start_methods",
                          "terminate", "lifespan", "item_in_chunk"})

    @staticmethod
    def create(**options: Any) -> Any:
        from mpire_fault import WorkerPool

        return WorkerPool(2, **{"keep_alive": True, **options})

    def submit(self, fn, args, callback=None, error_callback=None, timeout=None):
        return self.pool.apply_async(fn, args, callback=callback, error_callback=error_callback,
                                     task_timeout=timeout)

    def get(self, handle, timeout):
        return async_result(handle, timeout)

    def run_map(self, fn, items):
        return self.run_map_chunked(fn, items, 1)

    def run_map_chunked(self, fn, items, chunk_size):
        return self.pool.map(fn, items, chunk_size=chunk_size)

    def run_map_input(self, fn, iterable, chunk_size, n_splits):
        return self.pool.map(fn, iterable, chunk_size=chunk_size, n_splits=n_splits)

    def call_with_init(self, init, fn, args, timeout):
        with self.fresh() as probe:  # a fresh pool: worker_init counts when a call starts the workers
            return probe.get(probe.pool.apply_async(fn, args, worker_init=init), timeout)

    def map_with_lifespan(self, fn, items, lifespan, timeout):
        with self.fresh() as probe:  # MPIRE's worker_lifespan is a map() keyword: a fresh pool all the same
            return bounded(lambda: probe.pool.map(fn, items, chunk_size=1, worker_lifespan=lifespan), timeout, "map")

    def shm_prefix(self) -> str | None:
        return getattr(self.pool, "_shm_prefix", None)

    def worker_pids(self) -> list[int]:
        return sorted(self.pool.statistics()["worker_pids"].values())


class MpireFaultDaskAdapter(MpireFaultAdapter):
    """Our ``DaskPool`` on a LocalCluster it owns (two workers, one thread each)."""

    name = "mpire_fault-dask"
    side_by_side = 4  # each grading starts a LocalCluster of five processes
    # DaskPool refuses start_method and worker_lifespan (Dask's nannies own the workers), its arguments
    # travel through Dask, not /dev/shm, and a death inside a chunk of several items names the chunk's items
    # (its worker records the running chunk, not the item; with chunk_size=1 that is the item)
    features = frozenset({"task_timeout", "names_item", "chunk_size", "n_splits", "mpire_items", "error_fields",
                          "timeout_grace", "task_retries", "worker_init", "terminate"})

    def start(self) -> Any:
        from mpire_fault.dask_backend import DaskPool

        pool = DaskPool(2, **self.options)
        _ = pool.client  # start the cluster now, not inside the first bounded call
        return pool
