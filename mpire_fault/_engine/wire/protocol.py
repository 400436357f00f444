"""What crosses between the supervisor and a worker, defined once.

Messages are plain tuples ``(KIND, *fields)``: a named record costs ten
times as much to pickle (0.7 us against 6.8 us per message, measured), and
every apply round trip sends two. So each kind has a named constructor
below, which is the only place its field order is written; the receiving
side dispatches on the kind to a handler whose parameters carry the same
names (``Supervisor.on_done(slot, task_id, data)``, ``Worker`` for
``RUN_TASK``), so no code indexes into a message.

Beside the pipes, each worker shares arrays with the parent:

* ``progress``: ``PROGRESS_FIELDS`` doubles per worker slot, written by the
  worker before it begins a task, an item, or a phase. After a death the
  parent reads it to tell "died while running item 37" from "died before it
  received the task"; the watchdog reads it to time each item. The parent
  writes the interrupt target fields before it sends the soft-timeout signal.
* ``cancelled``: a table of aborted map calls, read by workers before each
  chunk, so no further item of an aborted call starts.
* ``insights`` (only with ``enable_insights=True``): ``INSIGHT_FIELDS``
  doubles per slot, counters the worker adds to and the parent reads.
"""
from __future__ import annotations

import enum
from typing import Any

# ---------------------------------------------------------------- parent -> worker
RUN_TASK = 1  # (RUN_TASK, task_id, job_id, first_index, attempt, payload, timed, chaos_call)
# chaos_call tells the chaos layer which call of which pool a task belongs to
# (pool ordinal << 32 | map-call ordinal), so every call rolls its own dice.
STOP = 2  # (STOP,): run worker_exit, report it, and end
UPDATE = 3  # (UPDATE, hooks): a later call's (worker_exit, worker_lifespan), pickled, for a live worker

# ---------------------------------------------------------------- worker -> parent
READY = 1  # (READY, pid): worker_init succeeded; tasks may come
INIT_FAILED = 2  # (INIT_FAILED, error): worker_init raised; the process ends next
DONE = 3  # (DONE, task_id, data): data is the pickled list of the task's results
FAILED = 4  # (FAILED, task_id, offset, error, boundary, summary): item first_index + offset raised
SKIPPED = 5  # (SKIPPED, task_id): the task's map call was aborted before it began
EXITED = 6  # (EXITED, data): worker_exit returned (pickled value; None: it did not run); the process ends next
EXIT_FAILED = 7  # (EXIT_FAILED, error): worker_exit raised
RETIRING = 8  # (RETIRING, handled): worker_lifespan reached; the process ends next
TOP_TASKS = 9  # (TOP_TASKS, entries): (seconds, args) of tasks that entered the worker's longest five (insights)
# ``error`` fields are ``serialization.dump_exception`` bytes: the exception and its traceback;
# ``summary`` is its one-line text (``ValueError: bad input``), for the event log, which must not unpickle.
# ``boundary`` names where a FAILED error arose outside the user's function
# (``serialization.TASK_ARGS``/``RESULT``), or is SOFT_TIMEOUT: the task was
# stopped by the parent's soft timeout, so the parent never has to unpickle
# an error to tell.
SOFT_TIMEOUT = "soft-timeout"



def task_message(task_id: int, job_id: int, first_index: int, attempt: int, payload: bytes, timed: bool,
             chaos_call: int) -> tuple:
    return (RUN_TASK, task_id, job_id, first_index, attempt, payload, timed, chaos_call)


def stop() -> tuple:
    return (STOP,)


def update(hooks: bytes) -> tuple:
    return (UPDATE, hooks)


def ready(pid: int) -> tuple:
    return (READY, pid)


def init_failed(error: bytes) -> tuple:
    return (INIT_FAILED, error)


def done(task_id: int, data: object) -> tuple:
    return (DONE, task_id, data)


def failed(task_id: int, offset: int, error: bytes, boundary: str | None, summary: str) -> tuple:
    return (FAILED, task_id, offset, error, boundary, summary)


def skipped(task_id: int) -> tuple:
    return (SKIPPED, task_id)


def exited(data: bytes | None) -> tuple:
    return (EXITED, data)


def exit_failed(error: bytes) -> tuple:
    return (EXIT_FAILED, error)


def retiring(handled: int) -> tuple:
    return (RETIRING, handled)


def top_tasks(entries: list[tuple[float, str]]) -> tuple:
    return (TOP_TASKS, entries)


class KillReason(enum.StrEnum):
    """Why the supervisor killed a worker (``Death.reason`` in ``statistics()``; None: nobody did)."""

    TIMEOUT = "timeout"  # a task outlived task_timeout plus the grace period
    INIT_TIMEOUT = "init-timeout"  # worker_init outlived worker_init_timeout (or start-up stalled)
    EXIT_TIMEOUT = "exit-timeout"  # worker_exit outlived worker_exit_timeout
    OOM = "oom"  # the worker's memory passed max_worker_memory
    ABORT = "abort"  # its map call was aborted while it ran one of the call's items
    TERMINATE = "terminate"  # terminate()
    SHUTDOWN = "shutdown"  # the supervisor ended (the pool was closed or collected)


# ---------------------------------------------------------------- the progress array
TASK_ID, ITEM, PHASE, PHASE_START, TARGET_TASK, TARGET_ITEM, BATCH, STRUCK = range(8)
# STRUCK: 1.0 once a chaos fault that ends the process is about to strike this worker (0.0 at its start)
# A worker's fields take the first 16 doubles (128 bytes) of its stride, so
# two workers' fields never share a 64-byte cache line whatever the array's
# alignment. Sharing one made each worker's per-item store bounce the line
# between cores: a map of trivial items ran 2 to 3 times slower than alone.
#
# The rest of the stride holds two areas of item flags. While a worker runs
# plain map items in C-level batches (runners.run_batches), BATCH is
# ``2 * first + area``: the batch began at item ``first`` and byte j of flag
# area ``area`` is set just before item ``first + j`` starts, so the item
# last started is ``first + (leading set bytes) - 1``. Otherwise BATCH is -1
# and ITEM says it. One byte store per item costs less than storing a float
# index per item (no float is made). The worker clears the other area before
# a batch and then switches to it with the single store of BATCH, so a death
# at any instant reads a consistent pair.
FLAGS = 16  # the double index where a worker's flag areas begin
MAX_BATCH = 4096
FLAG_AREA = MAX_BATCH + 8  # one byte per item of a batch and a zero after the last, rounded to a double
PROGRESS_FIELDS = FLAGS + 2 * FLAG_AREA // 8
NOT_BATCHED = -1.0


def flag_offset(base: int, area: int) -> int:
    """The byte offset of a worker's flag area in the progress array (``base``: the worker's first field)."""
    return (base + FLAGS) * 8 + area * FLAG_AREA


def running_item(progress: Any, base: int) -> int:
    """The item a worker last started, read from its fields after it died.

    Before the first item of a batch that is one less than the batch's
    first item (``MapJob.describe`` names the chunk's first item for that).
    """
    batch = progress[base + BATCH]
    if batch < 0:
        return int(progress[base + ITEM])
    first, area = divmod(int(batch), 2)
    start = flag_offset(base, area)
    started = bytes(memoryview(progress).cast("B")[start:start + FLAG_AREA]).find(0)
    return first + started - 1


# Phases (stored as doubles). The task clock only runs in RUNNING.
IDLE, UNPICKLING, RUNNING, PICKLING, INITIALIZING, EXITING = 0.0, 1.0, 2.0, 3.0, 4.0, 5.0
PHASE_NAMES = {
    IDLE: "idle",
    UNPICKLING: "unpickling its arguments",
    RUNNING: "running",
    PICKLING: "pickling its result",
    INITIALIZING: "running worker_init",
    EXITING: "running worker_exit",
}
# TARGET_TASK values that aim a soft interrupt at a hook rather than a task.
INIT_TARGET, EXIT_TARGET = -2.0, -3.0

# ---------------------------------------------------------------- the cancel table
CANCEL_SLOTS = 4096

# ---------------------------------------------------------------- the insights array
# Accumulated per slot across restarts (seconds, except N_TASKS: items whose
# function returned). The longest tasks travel as TOP_TASKS messages instead:
# their arguments are text (see insights.py).
INIT_TIME, WAIT_TIME, WORK_TIME, EXIT_TIME, N_TASKS = range(5)
INSIGHT_FIELDS = 16  # a stride, as PROGRESS_FIELDS: each slot's counters on cache lines of their own
assert N_TASKS < INSIGHT_FIELDS
