"""The pool's event log: one JSON object per line, what happened to which worker and task, and when.

The pool holds ``None`` when logging is off, so the hot path pays one
``is not None`` test. When on, ``EventLog.emit`` builds a dict, turns it
into a line and appends it to a buffer; the buffer reaches the file with
one ``os.write`` (an ``O_APPEND`` file, so lines never interleave) every
``FLUSH_EVERY`` events, when ``FLUSH_SECONDS`` have passed since the last
write (checked at the next ``emit``), right after a ``FLUSH_NOW`` kind (a
death, an abort), on ``flush()`` and on ``close()``. A SIGKILLed parent
loses only what sat in the buffer. The fields of every
kind are in ``EVENT_KINDS`` and docs/events.md; ``mpire-fault timeline``
draws a log.
"""
from __future__ import annotations

import json
import math
import os
import re
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

EVENTS_DIR_ENV = "MP_CHAOS_EVENTS_DIR"
"""Environment variable naming a folder: each pool writes ``<pid>-<pool>.jsonl`` there (``EventLog.from_env``)."""
TEST_ENV = "PYTEST_CURRENT_TEST"
FLUSH_EVERY = 100
FLUSH_SECONDS = 0.2
FLUSH_NOW = frozenset({"worker_died", "map_aborted"})
"""Rare kinds written at once with what is buffered: the moments a report is read for must survive a kill."""

COMMON_FIELDS = ("t", "kind", "pool")
"""In every event: monotonic seconds of the parent's machine, the kind, the pool's id (plus ``test`` under pytest)."""

EVENT_KINDS: dict[str, tuple[str, ...]] = {
    # a worker process of slot worker_id was started / finished its initialisation / left as asked
    "worker_started": ("worker_id", "pid", "start_method"),
    "worker_ready": ("worker_id", "pid"),
    "worker_exited": ("worker_id", "pid", "exit_code"),
    # a worker ended unasked: exit_code (negative: the signal), signal name or None, oom bool, reason text
    "worker_died": ("worker_id", "pid", "exit_code", "signal", "oom", "reason"),
    # task_id: the pool's id of one unit sent to a worker; call: the map/apply call it belongs to;
    # items: [first, last] indices of the call's items it carries
    "task_dispatched": ("task_id", "call", "worker_id", "pid", "items"),
    "task_started": ("task_id", "worker_id", "pid", "item"),
    "task_finished": ("task_id", "worker_id", "pid"),
    # error: short text; cause: "exception" | "death" | "timeout" | "abort"
    "task_failed": ("task_id", "worker_id", "pid", "item", "error", "cause"),
    # the task went back to the queue after its worker died (from_worker: that worker's slot)
    "task_requeued": ("task_id", "from_worker"),
    "task_retried": ("task_id", "attempt"),
    # a map call gave up (e.g. a task failed and the map stops): drawn across every lane
    "map_aborted": ("call", "reason", "worker_id"),
    # the slot waits delay seconds before its next start, after failures deaths in a row
    "restart_backoff": ("worker_id", "delay", "failures"),
    # chaos struck: site, action, term (the spec term that fired), the task and item when there is one
    "fault_injected": ("worker_id", "pid", "site", "action", "term", "task_id", "item"),
}
FAILURE_CAUSES = ("exception", "death", "timeout", "abort")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_encode = json.JSONEncoder(default=repr).encode  # one encoder: json.dumps(default=...) builds one per call
_decode = json.JSONDecoder().decode


class _Sink:
    """The file side of an EventLog: kept apart so a finalizer can flush it without holding the log alive."""

    def __init__(self, path: str) -> None:
        self.fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.owner = os.getpid()  # a forked child inherits the buffer; only the parent writes it
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.last = time.monotonic()

    def flush(self) -> None:
        with self.lock:
            self._write_locked()

    def _write_locked(self) -> None:
        lines, self.lines = self.lines, []
        if lines and self.fd is not None and os.getpid() == self.owner:
            data = "".join(lines).encode("utf-8")
            while data:  # a regular file takes it all at once; the loop covers a short write
                data = data[os.write(self.fd, data):]
        self.last = time.monotonic()

    def close(self) -> None:
        with self.lock:
            self._write_locked()
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None


class EventLog:
    """Where a pool's events go: a JSON-lines file (a path) or a callable given each event dict.

    ``pool`` is stamped on every event; ``test`` too while pytest runs a test
    (``PYTEST_CURRENT_TEST`` without its phase).
    """

    def __init__(self, target: str | os.PathLike[str] | Callable[[dict[str, Any]], None], *,
                 pool: str | int | None = None) -> None:
        self.pool = pool
        self._sink: _Sink | None = None
        self._callback: Callable[[dict[str, Any]], None] | None = None
        if callable(target):
            self._callback = target
        else:
            self._sink = _Sink(os.fspath(target))
            self._finalizer = weakref.finalize(self, self._sink.close)  # also at interpreter exit

    @classmethod
    def from_env(cls, pool: str | int, environ: Any = None) -> EventLog | None:
        """A log writing ``<pid>-<pool>.jsonl`` in the folder ``MP_CHAOS_EVENTS_DIR`` names, or None when unset."""
        folder = (os.environ if environ is None else environ).get(EVENTS_DIR_ENV, "").strip()
        if not folder:
            return None
        name = f"{os.getpid()}-{_UNSAFE.sub('_', str(pool))}.jsonl"
        return cls(os.path.join(folder, name), pool=pool)

    def emit(self, kind: str, **fields: Any) -> None:
        """Record one event; ``t`` is ``time.monotonic()`` unless given."""
        now = time.monotonic()
        event = {"t": fields.pop("t", now), "kind": kind, "pool": self.pool}
        event.update(fields)
        test = os.environ.get(TEST_ENV)
        if test is not None and "test" not in fields:
            event["test"] = test.rsplit(" (", 1)[0]
        if self._callback is not None:
            self._callback(event)
            return
        sink = self._sink
        if sink is None or sink.fd is None:
            raise ValueError("emit() on a closed EventLog")
        line = _encode(event) + "\n"
        with sink.lock:
            sink.lines.append(line)
            if len(sink.lines) >= FLUSH_EVERY or now - sink.last >= FLUSH_SECONDS or kind in FLUSH_NOW:
                sink._write_locked()

    def flush(self) -> None:
        """Write what is buffered now (a no-op for a callable target)."""
        if self._sink is not None:
            self._sink.flush()

    def close(self) -> None:
        """Flush and close the file; closing twice is fine."""
        if self._sink is not None:
            self._finalizer()

    @property
    def closed(self) -> bool:
        return self._sink is not None and self._sink.fd is None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class EventLogError(ValueError):
    """A malformed event log; ``path`` and ``line`` (1-based) say where."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}, line {line}: {message}")
        self.path = path
        self.line = line


T_LIMIT = 1e12
"""|t| is below this (31 700 years of seconds): any two times of a log are a finite span apart."""
_NONE = type(None)
_ID = (int, str, _NONE)  # ids are keys of the timeline's tables: scalars only (a list would be unhashable)
_TEXT = (str, _NONE)
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "pool": _ID, "test": _TEXT, "worker_id": _ID, "pid": (int, _NONE), "start_method": _TEXT,
    "exit_code": (int, _NONE), "signal": _TEXT, "oom": (bool, _NONE), "reason": _TEXT, "task_id": _ID,
    "call": _ID, "items": (list, _NONE), "item": _ID, "error": _TEXT, "cause": (str,), "from_worker": _ID,
    "attempt": (int, _NONE), "delay": (int, float, _NONE), "failures": (int, _NONE), "site": _TEXT,
    "action": _TEXT, "term": _TEXT, "form": _TEXT,
}
"""The JSON types each known field may take (``item`` may be a string: the repr of an unserialisable one)."""
_JSON_NAMES = {int: "an integer", str: "a string", _NONE: "null", bool: "true/false", list: "a list",
               float: "a number", dict: "an object"}


def _type_problem(name: str, value: Any) -> str | None:
    """What is wrong with the type of one field's value, or None (the slow path: it words the message)."""
    allowed = FIELD_TYPES.get(name)
    if allowed is None:
        return None
    if isinstance(value, bool) and bool not in allowed:  # JSON true is no id or count
        ok = False
    else:
        ok = isinstance(value, allowed)
    if ok and name == "items" and value is not None:
        ok = len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if not ok:
            return f"'items' must be [first, last] item indices, got {_short(value)}"
    if ok and name == "delay" and value is not None and not _finite(value):
        ok = False
    if ok:
        return None
    expected = " or ".join(dict.fromkeys(_JSON_NAMES[t] for t in allowed))
    return f"'{name}' must be {expected}, got {_JSON_NAMES.get(type(value), type(value).__name__)} {_short(value)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an integer of 400 digits
        return False


# The fast path of check_event: exact types (what json.loads gives), per kind, checked in one loop; a value
# that is not plainly right goes to _type_problem, which also accepts subclasses and words the message.
_EXACT = {name: frozenset(types) for name, types in FIELD_TYPES.items()}
_PLAIN = {kind: tuple((name, _EXACT[name]) for name in fields if name not in ("items", "delay"))
          for kind, fields in EVENT_KINDS.items()}
_NUMBER = (int, float)


def check_event(event: Any) -> str | None:
    """What is wrong with one decoded event, or None. Unknown kinds pass (newer writers may add some)."""
    if not isinstance(event, dict):
        return f"expected a JSON object, got {type(event).__name__}"
    missing = [name for name in COMMON_FIELDS if name not in event]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    t = event["t"]
    if type(t) not in _NUMBER and (isinstance(t, bool) or not isinstance(t, _NUMBER)) or not _finite(t):
        return f"'t' must be a finite number of seconds, got {_short(t)}"
    if not -T_LIMIT < t < T_LIMIT:  # 1e308 - (-1e308) is no span a drawing can scale
        return f"'t' must be within {T_LIMIT:g} seconds of 0, got {_short(t)}"
    kind = event["kind"]
    if not isinstance(kind, str):
        return f"'kind' must be a string, got {_short(kind)}"
    for name in ("pool", "test"):
        if name in event and type(event[name]) not in _EXACT[name]:
            problem = _type_problem(name, event[name])
            if problem:
                return problem
    fields = EVENT_KINDS.get(kind)
    if fields is None:
        return None  # the fields of an unknown kind are its writer's business
    for name, exact in _PLAIN[kind]:
        if name not in event:
            return f"a {kind} event lacks field(s) {', '.join(n for n in fields if n not in event)}"
        if type(event[name]) not in exact:
            problem = _type_problem(name, event[name])
            if problem:
                return f"in a {kind} event, {problem}"
    for name in ("items", "delay"):
        if name in fields:
            if name not in event:
                return f"a {kind} event lacks field(s) {', '.join(n for n in fields if n not in event)}"
            problem = _type_problem(name, event[name])
            if problem:
                return f"in a {kind} event, {problem}"
    if kind == "task_failed" and event["cause"] not in FAILURE_CAUSES:
        return f"task_failed cause must be one of {', '.join(FAILURE_CAUSES)}, got {_short(event['cause'])}"
    return None


def iter_events(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The events of a JSON-lines log one at a time, in file order, each checked: memory for one line at a time.

    The file is opened at once (``FileNotFoundError`` for a missing one);
    ``EventLogError`` (a ``ValueError``) naming the line comes from the
    iteration, for a line that is not JSON, nested too deeply, not an event
    or with a field of the wrong type. A last line cut short (no newline, not
    JSON: the writer was killed mid-write) is skipped with a warning.
    """
    name = os.fspath(path)
    handle = open(name, "rb")  # noqa: SIM115 - closed by the generator, even when abandoned
    return _lines(name, handle)


def _lines(name: str, handle: BinaryIO) -> Iterator[dict[str, Any]]:
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                event = _decode(raw.decode("utf-8"))  # the writer's encoding; loads(bytes) would sniff each line
            except (ValueError, UnicodeDecodeError) as exc:
                if not raw.endswith(b"\n"):  # only the last line can lack its newline
                    warnings.warn(f"{name}, line {number}: skipped a truncated last line (the writer was stopped "
                                  f"mid-write?)", stacklevel=2)
                    return
                raise EventLogError(name, number, f"not JSON ({exc})") from None
            except RecursionError:
                raise EventLogError(name, number, "JSON nested too deeply to be an event") from None
            problem = check_event(event)
            if problem:
                raise EventLogError(name, number, problem)
            yield event


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every event of a JSON-lines log as a list (``iter_events`` reads one line at a time)."""
    return list(iter_events(path))
