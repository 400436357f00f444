"""The scenario format as data: one table of keys, two readers.

Every key a scenario file may hold is one ``Field`` row below, with its kind,
its default and a sentence of help. The validator (``loader.py``) and the
JSON Schema (``scenarios/schema.json``, made by ``write_schema``) are both
derived from this table, so the two cannot drift apart; a test compares the
shipped file with ``json_schema()``.
"""
from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import backends
from .._core.start_methods import PROCESS_START_METHODS
from ..chaos import sizes
from ..chaos.sizes import parse_size
from ..chaos.spec import ACTIONS

MODES = ("apply_async", "apply", "map", "imap", "imap_unordered", "map_unordered")
APPLY_MODES = ("apply_async", "apply")

FUNC_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
INDEX_PATTERN = r"^(0|[1-9][0-9]*)$"

# Bounds the validator holds every number to (the JSON Schema does not
# repeat them). TOML integers are 64-bit; seconds are finite and at most a
# week; the pool and the workload stay at sizes one machine can run.
MAX_INT = 2**63 - 1
MAX_SECONDS = 7 * 24 * 3600.0
MAX_JOBS = 512
MAX_TASKS = 100_000
MAX_DEPTH = 32  # arrays and tables inside each other
LATE_START = 0.1  # seconds after a map call raised: an item of the call starting or ending later is late


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel = 3


def shown(value: Any) -> str:
    """``repr(value)`` cut short: a long string, a huge number or a deep array stays one readable line."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    try:
        return _REPR.repr(value)
    except (ValueError, RecursionError):
        return f"a {type_name(value)}"


def type_name(value: Any) -> str:
    """How a TOML value's type is called in messages."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------
# Kinds: how one value is checked, and how it reads in JSON Schema.


@dataclass(frozen=True, slots=True)
class Kind:
    """A value's type: ``check`` returns what was expected, or None when the value fits."""

    expected: str
    check: Callable[[Any], bool]
    schema: dict


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(minimum: int = 0, maximum: int = MAX_INT) -> Kind:
    expected = f"an integer >= {minimum}" if maximum == MAX_INT else f"an integer from {minimum} to {maximum}"
    return Kind(expected, lambda v: _is_int(v) and minimum <= v <= maximum,
                {"type": "integer", "minimum": minimum})


def seconds() -> Kind:
    return Kind(f"a number of seconds > 0 and <= {MAX_SECONDS:g} (not inf or nan)",
                lambda v: _is_number(v) and math.isfinite(v) and 0 < v <= MAX_SECONDS,
                {"type": "number", "exclusiveMinimum": 0})


def boolean() -> Kind:
    return Kind("true or false", lambda v: isinstance(v, bool), {"type": "boolean"})


def text() -> Kind:
    return Kind("a string", lambda v: isinstance(v, str), {"type": "string"})


def choice(options: tuple[str, ...]) -> Kind:
    return Kind("one of " + ", ".join(repr(o) for o in options), lambda v: v in options and isinstance(v, str),
                {"enum": list(options)})


def function_ref() -> Kind:
    return Kind('an importable "module:function" string',
                lambda v: isinstance(v, str) and re.match(FUNC_PATTERN, v) is not None,
                {"type": "string", "pattern": FUNC_PATTERN})


def size() -> Kind:
    def ok(v: Any) -> bool:
        if not (_is_int(v) or isinstance(v, str)):
            return False
        try:
            return parse_size(v) <= MAX_INT
        except ValueError:
            return False
    return Kind(f'a size: bytes as an integer > 0 or a string like "300MiB" ({sizes.HELP})', ok,
                {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": sizes.PATTERN}]})


def array(items: Kind | None = None) -> Kind:
    if items is None:
        return Kind("an array", lambda v: isinstance(v, list), {"type": "array"})
    return Kind(f"an array of {items.expected.removeprefix('a ').removeprefix('an ')}s",
                lambda v: isinstance(v, list) and all(items.check(x) for x in v),
                {"type": "array", "items": items.schema})


def table() -> Kind:
    return Kind("a table", lambda v: isinstance(v, dict), {"type": "object"})


# ---------------------------------------------------------------------------
# The table of keys.


@dataclass(frozen=True, slots=True)
class Field:
    """One key of a scenario file."""

    key: str
    kind: Kind
    help: str
    default: Any = None
    required: bool = False


# An error matcher: a class name, or a table of what the error must show.
MATCHER_FIELDS = (
    Field("error", text(), "class name of the error; matches like an except clause (the class or a base)",
          required=True),
    Field("oom", boolean(), "WorkerDiedError.oom: killed for exceeding max_worker_memory"),
    Field("signal", text(), 'WorkerDiedError.signal_name, e.g. "SIGKILL"'),
    Field("exitcode", Kind("an integer", _is_int, {"type": "integer"}), "WorkerDiedError.exitcode (negative = signal)"),
    Field("message", text(), "a substring of str(error)"),
)


def _matcher_schema() -> dict:
    props = {f.key: dict(f.kind.schema, description=f.help) for f in MATCHER_FIELDS}
    return {"oneOf": [{"type": "string", "description": "class name of the error"},
                      {"type": "object", "properties": props, "required": ["error"],
                       "additionalProperties": False}]}


MATCHER = Kind('an error class name or a table {error = "Name", oom, signal, exitcode, message}',
               lambda v: isinstance(v, (str, dict)), _matcher_schema())

SECTIONS: dict[str, tuple[Field, ...]] = {
    "": (
        Field("name", text(), "shown in reports; default: the file name without .toml"),
        Field("description", text(), "what the scenario proves, one or two sentences"),
        Field("timeout", seconds(), "hard limit in seconds for the whole scenario process; "
              "past it the scenario is killed and reported as timed out", 30.0),
    ),
    "pool": (
        Field("n_jobs", integer(1, MAX_JOBS), "worker processes", 2),
        Field("start_method", choice(PROCESS_START_METHODS), "how workers are started", "fork"),
        Field("max_worker_memory", size(), "RSS limit per worker; above it the worker is killed (an OOM death)"),
        Field("max_task_retries", integer(0), "apply only: reruns of a task that killed its worker", 0),
        Field("restart_backoff", integer(1), "start-up failures in a row before WorkerInitError"),
        Field("task_timeout", seconds(), "seconds per task (per item for maps) before TaskTimeoutError"),
        Field("use_dill", boolean(), "serialize with dill", False),
        Field("keep_alive", boolean(), "keep workers between map calls", False),
        Field("backend", choice(tuple(backends.BACKENDS)), 'where workers run: "local" processes, or "dask" (a '
              "LocalCluster of n_jobs single-thread workers owned by the pool; needs distributed); default local"),
    ),
    "workload": (
        Field("function", function_ref(), 'the task function, "module:function", importable by the workers',
              required=True),
        Field("mode", choice(MODES), "the pool method that runs the tasks", "apply_async"),
        Field("n_tasks", integer(0, MAX_TASKS), "run the function on 0, 1, ..., n_tasks-1 (give n_tasks or args)"),
        Field("args", Kind(f"an array of at most {MAX_TASKS} entries",
                           lambda v: isinstance(v, list) and len(v) <= MAX_TASKS, {"type": "array"}),
              "one entry per task: an array (positional arguments), a table (keyword "
              "arguments) or a single value (give n_tasks or args)"),
        Field("kwargs", table(), "keyword arguments added to every task"),
        Field("chunk_size", integer(1), "map modes: items per chunk"),
        Field("worker_init", function_ref(), 'a "module:function" run in every worker at start'),
        Field("callbacks", boolean(), "apply_async only: every task gets a callback and an error_callback, and "
              "each call of them is recorded (for expect.resolved_once)", False),
        Field("callback_pause", seconds(), "with callbacks: each callback sleeps this long (a slow callback)"),
        Field("terminate_after", seconds(), "apply_async only: pool.terminate() is called this long after the last "
              "submission, while the tasks are awaited; the pool is then gone (set expect.pool_usable_after = "
              "false)"),
    ),
    "chaos": (
        Field("spec", text(), "chaos spec (docs/guarantees.md §5), e.g. \"task.start[task=3]=sigkill\"", required=True),
        Field("seed", integer(0), "chaos seed", 0),
    ),
    "expect": (
        Field("failures", Kind("a table of task index -> error matcher", lambda v: isinstance(v, dict),
                               {"type": "object", "propertyNames": {"pattern": INDEX_PATTERN},
                                "additionalProperties": MATCHER.schema}),
              "apply modes: exactly these task indices fail, each with a matching error; every other task "
              "succeeds"),
        Field("succeeded", integer(0), "how many tasks returned a value"),
        Field("failed", integer(0), "apply modes: how many tasks failed"),
        Field("error_types", array(text()), "every error seen (task failures, the map error) is one of these "
              "class names (or a subclass)"),
        Field("values", array(), "apply: the value of each task that succeeded; map: every value, by index"),
        Field("map_aborted", boolean(), "map modes: the call raised instead of returning every result"),
        Field("map_error", MATCHER, "map modes: the error the call raised (implies map_aborted)"),
        Field("map_error_item", integer(0), "map modes: the call's error names this item (\"map item N\" in "
              "WorkerDiedError.task): the one that was running when its worker died"),
        Field("stopped_after_abort", boolean(), "map modes: once the call raised, none of its items starts and none "
              f"still running runs to its end (marker file times, {LATE_START:g} s of grace): an aborted call "
              "stops its running items and dispatches no more"),
        Field("map_error_within", seconds(), "map modes, with [chaos]: the call raised within this many seconds of "
              "the first fault of the chaos journal (it does not wait for the items still running)"),
        Field("map_usable_after", boolean(), "map modes: after the workload, another call of the same mode on the "
              "same pool returns every result (an aborted call leaves nothing behind that spoils the next)"),
        Field("resolved_once", boolean(), "with workload.callbacks: every task's callback or error_callback ran "
              "exactly once, the one that fits what get() gave, with the same value"),
        Field("workers_ready_within", seconds(), "after the workload, all n_jobs workers are alive and ready "
              "(statistics()['live_workers']) within this many seconds: dead workers were replaced"),
        Field("nothing_lost", boolean(), "every task resolved exactly once (a value or an error), every value "
              "reached the task that asked for it, nothing waited forever", True),
        Field("no_duplicates", boolean(), "no task ran more than max_executions_per_task times (counted with "
              "marker files)", True),
        Field("max_executions_per_task", integer(1), "bound for no_duplicates; default 1 + max_task_retries"),
        Field("max_seconds", seconds(), "the workload (pool start to last result) took at most this long"),
        Field("min_restarts", integer(0), "statistics()['restarts'] at least"),
        Field("max_restarts", integer(0), "statistics()['restarts'] at most"),
        Field("max_peak_memory", size(), "peak RSS of any worker process stayed at or below this"),
        Field("injected", integer(0), "exactly this many faults in the chaos journal (action off not counted)"),
        Field("min_injected", integer(0), "at least this many faults in the chaos journal"),
        Field("max_injected", integer(0), "at most this many faults in the chaos journal"),
        Field("injected_actions", Kind("a table of chaos action -> count", lambda v: isinstance(v, dict),
                                       {"type": "object", "propertyNames": {"enum": list(ACTIONS)},
                                        "additionalProperties": {"type": "integer", "minimum": 0}}),
              "exactly this many journal entries per action, e.g. {sigkill = 1}"),
        Field("pool_usable_after", boolean(), "after the workload, one more apply on the same pool works", True),
    ),
}


def fields(section: str) -> dict[str, Field]:
    """The fields of one section by key ("" is the top level)."""
    return {f.key: f for f in SECTIONS[section]}


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a scenario file, from the table above."""
    def section_schema(section: str) -> dict:
        props = {}
        for f in SECTIONS[section]:
            prop = dict(f.kind.schema, description=f.help)
            if f.default is not None:
                prop["default"] = f.default
            props[f.key] = prop
        schema = {"type": "object", "properties": props, "additionalProperties": False}
        required = [f.key for f in SECTIONS[section] if f.required]
        if required:
            schema["required"] = required
        return schema

    root = section_schema("")
    for section in ("pool", "workload", "chaos", "expect"):
        root["properties"][section] = dict(section_schema(section), description=_SECTION_HELP[section])
    workload = root["properties"]["workload"]
    workload["oneOf"] = [{"required": ["n_tasks"], "not": {"required": ["args"]}},
                         {"required": ["args"], "not": {"required": ["n_tasks"]}}]
    root["required"] = ["workload"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/mpire-fault/mpire_fault/scenarios/schema.json",
        "title": "mpire_fault resilience scenario",
        "description": "A scenario file for `mpire-fault run` (TOML, read with tomllib). See docs/scenarios.md.",
        **root,
    }


_SECTION_HELP = {
    "pool": "WorkerPool settings",
    "workload": "what the pool runs, and how",
    "chaos": "faults injected into the workers (docs/guarantees.md §5)",
    "expect": "what must hold; every key given is one check in the report",
}


def write_schema(path: str) -> None:
    """Regenerate ``scenarios/schema.json`` after a change to ``SECTIONS``."""
    with open(path, "w") as handle:
        json.dump(json_schema(), handle, indent=2)
        handle.write("\n")
