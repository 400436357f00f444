"""mpire_fault: an MPIRE-compatible process pool that keeps its promises when workers die."""
from multiprocessing import cpu_count

from ._core.restarts import RestartBackoff
from ._core.results import AsyncResult
from .errors import (
    ChaosSpecError,
    Death,
    ExecutorWorkerDiedError,
    PoolTerminatedError,
    RemoteTraceback,
    SupervisorError,
    TaskTimeoutError,
    WorkerDiedError,
    WorkerExitError,
    WorkerInitError,
)
from .futures import ProcessPoolExecutor
from .pool import WorkerPool
from .statistics import PoolStatistics
from .stdpool import Pool, get_context

__version__ = "0.1.0"

__all__ = [
    "AsyncResult",
    "ChaosSpecError",
    "Death",
    "ExecutorWorkerDiedError",
    "Pool",
    "PoolStatistics",
    "PoolTerminatedError",
    "ProcessPoolExecutor",
    "RemoteTraceback",
    "RestartBackoff",
    "SupervisorError",
    "TaskTimeoutError",
    "WorkerDiedError",
    "WorkerExitError",
    "WorkerInitError",
    "WorkerPool",
    "cpu_count",
    "get_context",
]
