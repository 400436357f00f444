"""How a pool may start its workers: the names ``WorkerPool(start_method=...)`` takes."""
from __future__ import annotations

# Real processes: they can die, so every chaos action applies (scenarios run these).
PROCESS_START_METHODS = ("fork", "spawn", "forkserver")
# Plus MPIRE's "threading": workers are threads of the caller and process-killing chaos is refused.
START_METHODS = (*PROCESS_START_METHODS, "threading")
