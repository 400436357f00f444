"""mpire_fault: an MPIRE-compatible process pool that keeps its promises when workers die."""
import importlib
from multiprocessing import cpu_count
from typing import TYPE_CHECKING, Any

from ._core.backoff import RestartBackoff
from ._core.results import AsyncResult
from .errors import (
    ChaosSpecError,
    Death,
    PoolTerminatedError,
    RemoteTraceback,
    SchedulerLostError,
    SupervisorError,
    TaskTimeoutError,
    WorkerDiedError,
    WorkerExitError,
    WorkerInitError,
)
from .statistics import PoolStatistics

if TYPE_CHECKING:
    from .futures import ExecutorWorkerDiedError, ProcessPoolExecutor
    from .pool import WorkerPool
    from .stdpool import Pool, get_context

# The pools load on first use. `import mpire_fault.chaos` (the pytest plugin does, in every run) then costs
# no engine import, and `import mpire_fault` imports neither multiprocessing.pool nor
# concurrent.futures.process: the chaos start-up hook (a .pth file) patches those when the user's code
# imports them, and must not be set off by our own import.
_LAZY = {"WorkerPool": ".pool", "Pool": ".stdpool", "get_context": ".stdpool", "ProcessPoolExecutor": ".futures",
         "ExecutorWorkerDiedError": ".futures"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mpire_fault' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value

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
    "SchedulerLostError",
    "SupervisorError",
    "TaskTimeoutError",
    "WorkerDiedError",
    "WorkerExitError",
    "WorkerInitError",
    "WorkerPool",
    "cpu_count",
    "get_context",
]
