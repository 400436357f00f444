"""The chaos layer's words, each defined once: the sites where faults strike and the actions they take.

Every other module (the parser, the workers' injection points, the Dask
backend, the foreign-pool wrappers, the scenario schema, the option checks)
reads these tables; adding a site or an action means adding one row here.
"""
from __future__ import annotations

from dataclasses import dataclass

# Who visits a site: the local engine's workers, Dask workers, and foreign pools (through ChaosFunction).
LOCAL, DASK, FOREIGN = "local", "dask", "foreign"


@dataclass(frozen=True, slots=True)
class Site:
    """A named point in a worker's life where a fault may strike."""

    name: str
    has_task: bool  # visited on behalf of a task (its index and attempt select it); else a worker's own moment
    visited_by: frozenset[str]
    meaning: str


INIT = "init"
ARGS_UNPICKLE = "args.unpickle"
TASK_START = "task.start"
TASK_END = "task.end"
RESULT_PICKLE = "result.pickle"
IDLE = "idle"
EXIT = "exit"

_EVERYWHERE = frozenset({LOCAL, DASK, FOREIGN})
SITE_TABLE: dict[str, Site] = {site.name: site for site in (
    Site(INIT, False, frozenset({LOCAL, DASK}), "worker start, before worker_init"),
    Site(ARGS_UNPICKLE, True, _EVERYWHERE, "while the task's arguments are deserialized (the task has not started)"),
    Site(TASK_START, True, _EVERYWHERE, "just before the user function runs (the task is running)"),
    Site(TASK_END, True, _EVERYWHERE, "after the function returned, before its result is serialized"),
    Site(RESULT_PICKLE, True, _EVERYWHERE, "while the result is serialized"),
    Site(IDLE, False, frozenset({LOCAL}), "while the worker waits for work"),
    Site(EXIT, False, frozenset({LOCAL, DASK}), "worker shutdown, around worker_exit"),
)}
SITES: tuple[str, ...] = tuple(SITE_TABLE)
TASKLESS_SITES = frozenset(name for name, site in SITE_TABLE.items() if not site.has_task)


def sites_visited_by(who: str) -> frozenset[str]:
    """The sites a kind of worker (LOCAL, DASK, FOREIGN) visits."""
    return frozenset(name for name, site in SITE_TABLE.items() if who in site.visited_by)


@dataclass(frozen=True, slots=True)
class Action:
    """What a fault does in the worker it strikes."""

    name: str
    argument: str | None  # the kind of its argument: "int", "size", "exception", "seconds", or None
    argument_required: bool
    kills_process: bool  # ends the worker process (refused where workers are threads)
    meaning: str


ACTION_TABLE: dict[str, Action] = {action.name: action for action in (
    Action("exit", "int", False, True, "sys.exit(code)"),
    Action("os_exit", "int", False, True, "os._exit(code): no cleanup; os_exit(0) is a silent death"),
    Action("sigkill", None, False, True, "the worker sends itself SIGKILL"),
    Action("sigsegv", None, False, True, "the worker sends itself SIGSEGV"),
    Action("sigterm", None, False, True, "the worker sends itself SIGTERM"),
    Action("oom", "size", True, True, "allocates and touches SIZE of memory, then grows until a limit ends it"),
    Action("raise", "exception", True, False, "raises a builtin exception by name"),
    Action("hang", "seconds", False, False, "blocks (default forever, for timeouts)"),
    Action("sleep", "seconds", True, False, "blocks for the given seconds"),
    Action("off", None, False, False, "nothing (useful after ->)"),
)}
# action -> (argument kind, required?): the parser's view
ACTIONS: dict[str, tuple[str | None, bool]] = {
    name: (action.argument, action.argument_required) for name, action in ACTION_TABLE.items()
}
KILLS_PROCESS = frozenset(name for name, action in ACTION_TABLE.items() if action.kills_process)
