"""Reading and validating scenario files.

A scenario file is TOML (``tomllib``) with the sections of ``schema.py``.
Validation collects every problem of a file, each with the key it is about
and what was expected, so one run of the gate shows them all. The checks
that need imports (the chaos spec parser, the workload function) are run by
the scenario's own process, never by the gate, so a module that hangs or
crashes on import cannot stop the gate.
"""
from __future__ import annotations

import difflib
import importlib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .schema import (
    APPLY_MODES,
    MATCHER,
    MATCHER_FIELDS,
    MAX_DEPTH,
    MAX_INT,
    SECTIONS,
    Field,
    fields,
    parse_size,
    shown,
    type_name,
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario file: the dotted key (None for the whole file) and what was expected."""

    path: str
    key: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.key or '(file)'}: {self.message}"


class ScenarioInvalid(ValueError):
    """A scenario file is malformed; ``problems`` lists every issue found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


@dataclass(frozen=True, slots=True)
class Matcher:
    """What an expected error must look like."""

    error: str
    oom: bool | None = None
    signal: str | None = None
    exitcode: int | None = None
    message: str | None = None

    def __str__(self) -> str:
        extras = [f"{k}={getattr(self, k)!r}" for k in ("oom", "signal", "exitcode", "message")
                  if getattr(self, k) is not None]
        return self.error + (f"({', '.join(extras)})" if extras else "")


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: every section filled in with its defaults."""

    path: str
    name: str
    description: str
    timeout: float
    pool: dict[str, Any]
    workload: dict[str, Any]
    chaos: dict[str, Any] | None
    expect: dict[str, Any]
    explicit_expect: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_map(self) -> bool:
        return self.workload["mode"] not in APPLY_MODES

    @property
    def n_tasks(self) -> int:
        return len(self.workload["args"])


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate one scenario file; raise ``ScenarioInvalid`` listing every problem."""
    path = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ScenarioInvalid([Problem(path, None, f"cannot read the file: {exc.strerror or exc}")]) from None
    data = _parse_toml(path, raw)
    problems = _check_values(path, data)
    if problems:
        raise ScenarioInvalid(problems)
    return build_scenario(path, data)


# ---------------------------------------------------------------------------
# Reading the bytes: every way tomllib can fail is a problem at a line and,
# where one can be found, the key written on it.

_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')"""  # a bare, "basic" or 'literal' key
_DOTTED_KEY = rf"({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)"
_KEY_LINE = re.compile(rf"\s*{_DOTTED_KEY}\s*=")
_HEADER = re.compile(rf"\[\[?\s*{_DOTTED_KEY}")
_AT_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")
_LONG_NUMBER = re.compile(r"[0-9][0-9_]{4000,}")


def _parse_toml(path: str, raw: bytes) -> dict[str, Any]:
    def invalid(message: str, text: str, line: int | None) -> ScenarioInvalid:
        return ScenarioInvalid([Problem(path, _printable(_key_at(text, line)), message)])

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise invalid(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, column {column} "
                      "(TOML files are UTF-8)", raw.decode("utf-8", "replace"), line) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _AT_LINE.search(str(exc))
        line = int(found.group(1)) if found else _first_failing_line(text, str(exc))
        where = "" if found or line is None else f" (line {line})"
        raise invalid(f"not valid TOML: {exc}{where}", text, line) from None
    except RecursionError:
        line = _too_deep_line(text)
        raise invalid(f"not a usable TOML file: arrays or tables nested too deep (at line {line}); "
                      f"expected at most {MAX_DEPTH} levels", text, line) from None
    except ValueError as exc:  # int()'s digit limit, or another value tomllib cannot convert
        found = _LONG_NUMBER.search(text)
        line = text.count("\n", 0, found.start()) + 1 if found else None
        where = f" (at line {line})" if line else ""
        why = "a number with thousands of digits" if found else f"a value it cannot convert ({shown(str(exc))})"
        raise invalid(f"not a usable TOML file: {why}{where}; TOML integers are 64-bit", text, line) from None
    except MemoryError:
        raise invalid("not a usable TOML file: too large to read", text, None) from None


def _first_failing_line(text: str, message: str) -> int | None:
    """For an error tomllib places only "at end of document" (a key given twice): the first line that brings it."""
    lines = text.splitlines(keepends=True)
    if len(lines) > 500:
        return None
    for count in range(1, len(lines) + 1):
        try:
            tomllib.loads("".join(lines[:count]))
        except tomllib.TOMLDecodeError as exc:
            if str(exc) == message:
                return count
        except (ValueError, RecursionError):
            return None
    return None


def _key_at(text: str, line: int | None) -> str | None:
    """The dotted key (with its [section]) written at ``line`` or on the nearest line above it, if any."""
    if line is None:
        return None
    lines = text.splitlines()[:line]
    key = section = None
    for number in range(len(lines) - 1, -1, -1):
        current = lines[number]
        header = _HEADER.match(current)
        if header and not _KEY_LINE.match(current):
            section = _plain_key(header.group(1))
            break
        if key is None:
            match = _KEY_LINE.match(current)
            if match:
                key = _plain_key(match.group(1))
    parts = [p for p in (section, key) if p]
    return ".".join(parts) if parts else None


def _plain_key(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))[:200]


def _too_deep_line(text: str) -> int:
    """The line where brackets first open more than MAX_DEPTH deep (strings and comments skipped)."""
    depth, quote, line, index = 0, "", 1, 0
    while index < len(text):
        char = text[index]
        if char == "\n":
            line += 1
            if quote in ('"', "'"):
                quote = ""
        elif quote:
            if char == "\\" and quote.startswith('"'):
                index += 1
            elif text.startswith(quote, index):
                index += len(quote) - 1
                quote = ""
        elif char == "#":
            end = text.find("\n", index)
            index = len(text) if end < 0 else end
            continue
        elif char in "\"'":
            quote = char * 3 if text.startswith(char * 3, index) else char
            index += len(quote) - 1
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line
        elif char in "]}":
            depth = max(0, depth - 1)
        index += 1
    return line


def _check_values(path: str, data: dict[str, Any]) -> list[Problem]:
    """Values no scenario needs and the gate cannot handle: integers beyond 64 bits, NaN, deep nesting."""
    problems: list[Problem] = []
    stack: list[tuple[str, Any, int]] = [(key, value, 1) for key, value in data.items()]
    while stack:
        key, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            problems.append(Problem(path, key, f"nested more than {MAX_DEPTH} levels deep; expected a flatter "
                                               "value"))
        elif isinstance(value, dict):
            stack.extend((f"{key}.{sub}", item, depth + 1) for sub, item in value.items())
        elif isinstance(value, list):
            stack.extend((key, item, depth + 1) for item in value)  # items are named by their array's key
        elif isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT - 1 <= value <= MAX_INT:
            problems.append(Problem(path, key, f"{shown(value)} does not fit in 64 bits; TOML integers are "
                                               f"from {-MAX_INT - 1} to {MAX_INT}"))
        elif isinstance(value, float) and math.isnan(value):
            problems.append(Problem(path, key, "nan is not a number a scenario can use"))
        if len(problems) >= 20:
            break
    unique = {(p.key, p.message): p for p in problems}  # one line per key, however many items repeat it
    return sorted((Problem(p.path, _printable(p.key), p.message) for p in unique.values()), key=lambda p: p.key or "")


def _printable(key: str | None) -> str | None:
    """A key as it can be shown in a terminal or a report: control characters escaped, long keys cut."""
    if key is None:
        return None
    if not key.isprintable():
        key = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in key)
    return key if len(key) <= 200 else key[:100] + "..." + key[-60:]


def build_scenario(path: str, data: dict[str, Any]) -> Scenario:
    """Validate parsed TOML ``data`` and fill in the defaults."""
    problems: list[Problem] = []
    report = lambda key, message: problems.append(Problem(path, _printable(key), message))  # noqa: E731
    sections = {name for name in SECTIONS if name}
    top = {k: v for k, v in data.items() if k not in sections}
    values: dict[str, dict[str, Any]] = {"": _check_table("", top, report)}
    for name in ("pool", "workload", "chaos", "expect"):
        raw = data.get(name)
        if raw is None:
            if name == "workload":
                report("workload", "missing section [workload]; expected a table with at least function and "
                       "n_tasks or args")
            values[name] = _check_table(name, {}, report, require=False) if name != "chaos" else {}
            continue
        if not isinstance(raw, dict):
            report(name, f"expected a table [{name}], got {type_name(raw)}")
            values[name] = _check_table(name, {}, report, require=False)
            continue
        values[name] = _check_table(name, raw, report)
    raw_workload = data.get("workload") if isinstance(data.get("workload"), dict) else {}
    _check_workload(values["workload"], raw_workload, values["pool"], report)
    _check_expect(values["expect"], values["workload"], values["pool"], "chaos" in data, report)
    if problems:
        raise ScenarioInvalid(problems)
    top_values = values[""]
    return Scenario(
        path=path,
        name=top_values.get("name") or Path(path).stem,
        description=top_values.get("description") or "",
        timeout=float(top_values["timeout"]),
        pool=values["pool"],
        workload=values["workload"],
        chaos=values["chaos"] or None,
        expect=values["expect"],
        explicit_expect=frozenset((data.get("expect") or {}).keys()) if isinstance(data.get("expect"), dict)
        else frozenset(),
    )


def _check_table(section: str, raw: dict[str, Any], report: Callable[[str, str], None],
                 require: bool = True) -> dict[str, Any]:
    known = fields(section)
    prefix = f"{section}." if section else ""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        spec = known.get(key)
        if spec is None:
            report(prefix + key, _unknown(key, known, section))
            continue
        if not spec.kind.check(value):
            report(prefix + key, f"expected {spec.kind.expected}, got {type_name(value)} {shown(value)}")
            continue
        out[key] = value
    for spec in known.values():
        if spec.key not in raw:
            if spec.required and require:
                report(prefix + spec.key, f"missing; expected {spec.kind.expected} ({spec.help})")
            if spec.default is not None:
                out[spec.key] = spec.default
    return out


def _unknown(key: str, known: dict[str, Field], section: str) -> str:
    choices = list(known) + ([name for name in SECTIONS if name] if not section else [])
    close = difflib.get_close_matches(key, choices, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    where = f"[{section}]" if section else "the top level"
    return f"unknown key; {hint}expected one of {', '.join(choices)} in {where}"


def _check_workload(workload: dict[str, Any], raw: dict[str, Any], pool: dict[str, Any],
                    report: Callable[[str, str], None]) -> None:
    if "n_tasks" in raw and "args" in raw:
        report("workload.args", "give n_tasks or args, not both")
    elif "n_tasks" not in raw and "args" not in raw and "function" in raw:
        report("workload.n_tasks", "missing; expected n_tasks (an integer >= 0) or args (an array)")
    if "n_tasks" in workload and "args" not in workload:
        workload["args"] = list(range(workload["n_tasks"]))
    known = "args" in workload  # else the count is unknown: no range checks against it
    workload.setdefault("args", [])
    workload["n_tasks"] = len(workload["args"]) if known else None
    workload.setdefault("kwargs", {})
    if "chunk_size" in workload and workload["mode"] in APPLY_MODES:
        report("workload.chunk_size", f"only for map modes; mode is {workload['mode']!r}")
    if "max_worker_memory" in pool:
        pool["max_worker_memory"] = parse_size(pool["max_worker_memory"])


def _matcher(key: str, value: Any, report: Callable[[str, str], None]) -> Matcher | None:
    if isinstance(value, str):
        return Matcher(value)
    if not isinstance(value, dict):
        report(key, f"expected {MATCHER.expected}, got {type_name(value)} {shown(value)}")
        return None
    known = {f.key: f for f in MATCHER_FIELDS}
    ok = True
    for sub, item in value.items():
        spec = known.get(sub)
        if spec is None:
            report(f"{key}.{sub}", f"unknown key; expected one of {', '.join(known)}")
            ok = False
        elif not spec.kind.check(item):
            report(f"{key}.{sub}", f"expected {spec.kind.expected}, got {type_name(item)} {shown(item)}")
            ok = False
    if "error" not in value:
        report(f"{key}.error", "missing; expected the error's class name")
        ok = False
    return Matcher(**value) if ok else None


def _check_expect(expect: dict[str, Any], workload: dict[str, Any], pool: dict[str, Any], has_chaos: bool,
                  report: Callable[[str, str], None]) -> None:
    mode = workload.get("mode", "apply_async")
    n_tasks = workload.get("n_tasks", 0)
    is_apply = mode in APPLY_MODES
    if "failures" in expect:
        parsed = {}
        for index, value in expect["failures"].items():
            key = f"expect.failures.{index}"
            if not re.fullmatch(r"0|[1-9][0-9]{0,17}", index):  # INDEX_PATTERN, within 64 bits
                report(key, "expected a task index (0, 1, 2, ...) as the key")
                continue
            if n_tasks is not None and int(index) >= n_tasks:
                report(key, f"task index out of range; the workload has {n_tasks} tasks (0..{n_tasks - 1})")
            matcher = _matcher(key, value, report)
            if matcher is not None:
                parsed[int(index)] = matcher
        expect["failures"] = parsed
    if "map_error" in expect:
        expect["map_error"] = _matcher("expect.map_error", expect["map_error"], report)
        if expect.get("map_aborted") is False:
            report("expect.map_error", "contradicts map_aborted = false")
    for key in ("failures", "failed"):
        if key in expect and not is_apply:
            report(f"expect.{key}", f"only for apply modes (mode is {mode!r}); use map_aborted and map_error")
    for key in ("map_aborted", "map_error", "map_error_item", "stopped_after_abort", "map_usable_after",
                "map_error_within"):
        if key in expect and is_apply:
            report(f"expect.{key}", f"only for map modes (mode is {mode!r}); use failures or failed")
    _check_callbacks(expect, workload, mode, report)
    if "map_error_item" in expect and n_tasks is not None and expect["map_error_item"] >= n_tasks:
        report("expect.map_error_item", f"item index out of range; the workload has {n_tasks} tasks")
    if "values" in expect and n_tasks is not None and len(expect["values"]) != n_tasks:
        report("expect.values", f"expected one value per task ({n_tasks}), got {len(expect['values'])}")
    for low, high in (("min_restarts", "max_restarts"), ("min_injected", "max_injected")):
        if low in expect and high in expect and expect[low] > expect[high]:
            report(f"expect.{low}", f"{low} = {expect[low]} is above {high} = {expect[high]}")
    for key in ("injected", "min_injected", "max_injected", "injected_actions", "map_error_within"):
        if key in expect and not has_chaos:
            report(f"expect.{key}", "needs a [chaos] section to count injected faults")
    for action, count in expect.get("injected_actions", {}).items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            report(f"expect.injected_actions.{action}",
                   f"expected an integer >= 0, got {type_name(count)} {shown(count)}")
    if "max_peak_memory" in expect:
        expect["max_peak_memory"] = parse_size(expect["max_peak_memory"])
    expect.setdefault("max_executions_per_task", 1 + pool.get("max_task_retries", 0))


def _check_callbacks(expect: dict[str, Any], workload: dict[str, Any], mode: str,
                     report: Callable[[str, str], None]) -> None:
    """callbacks, callback_pause, terminate_after and resolved_once: apply_async only, and consistent."""
    for key in ("callbacks", "callback_pause", "terminate_after"):
        if workload.get(key) not in (None, False) and mode != "apply_async":
            report(f"workload.{key}", f"only for mode 'apply_async' (mode is {mode!r})")
    if "callback_pause" in workload and not workload.get("callbacks"):
        report("workload.callback_pause", "needs callbacks = true")
    if expect.get("resolved_once") and not workload.get("callbacks"):
        report("expect.resolved_once", "needs workload.callbacks = true (it counts the callback calls)")
    if "terminate_after" in workload and expect.get("pool_usable_after"):
        report("expect.pool_usable_after", "the workload terminates the pool (workload.terminate_after); "
               "set pool_usable_after = false")


# ---------------------------------------------------------------------------
# Checks that import code: run inside the scenario's own process.


def resolve_function(ref: str) -> Callable[..., Any]:
    """Import ``"module:function"`` (dotted attributes allowed after the colon)."""
    module_name, _, attr_path = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    if not callable(obj):
        raise TypeError(f"{ref} is a {type(obj).__name__}, not callable")
    return obj


def check_imports(scenario: Scenario) -> list[Problem]:
    """Problems with the workload functions and the chaos spec, found by importing them."""
    problems = []
    for key in ("function", "worker_init"):
        ref = scenario.workload.get(key)
        if ref is None:
            continue
        try:
            resolve_function(ref)
        except Exception as exc:
            problems.append(Problem(scenario.path, f"workload.{key}",
                                    f"cannot import {ref!r} ({type(exc).__name__}: {exc}); expected an importable "
                                    '"module:function"'))
    if scenario.chaos is not None:
        try:
            from ..chaos import Chaos
        except ImportError as exc:
            problems.append(Problem(scenario.path, "chaos.spec", f"the chaos layer is not available: {exc}"))
        else:
            try:
                chaos = Chaos.from_spec(scenario.chaos["spec"], seed=scenario.chaos["seed"])
            except ValueError as exc:
                problems.append(Problem(scenario.path, "chaos.spec", f"expected a valid chaos spec: {exc}"))
            else:
                close = getattr(chaos, "close", None)
                if close is not None:
                    close()
    return problems


def discover(paths: list[str]) -> list[str]:
    """Scenario files named by ``paths``: files as given, folders searched for ``*.toml`` (sorted)."""
    found: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(str(p) for p in sorted(path.rglob("*.toml")))
        elif path.exists():
            found.append(str(path))
        else:
            raise FileNotFoundError(f"no such file or folder: {raw}")
    seen: set[str] = set()
    return [p for p in found if not (os.path.abspath(p) in seen or seen.add(os.path.abspath(p)))]
