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
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._core.wording import counted
from ..chaos.sizes import parse_size
from .reading import Problem, ScenarioInvalid, check_values, parse_toml, printable
from .schema import (
    APPLY_MODES,
    MATCHER,
    MATCHER_FIELDS,
    SECTIONS,
    Field,
    fields,
    shown,
    type_name,
)


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
    data = parse_toml(path, raw)
    problems = check_values(path, data)
    if problems:
        raise ScenarioInvalid(problems)
    return build_scenario(path, data)


def build_scenario(path: str, data: dict[str, Any]) -> Scenario:
    """Validate parsed TOML ``data`` and fill in the defaults."""
    problems: list[Problem] = []
    report = lambda key, message: problems.append(Problem(path, printable(key), message))  # noqa: E731
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
    raw_workload: dict[str, Any] = data["workload"] if isinstance(data.get("workload"), dict) else {}
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
                report(key, f"task index out of range; the workload has {counted(n_tasks, 'task')} (0..{n_tasks - 1})")
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
        report("expect.map_error_item", f"item index out of range; the workload has {counted(n_tasks, 'task')}")
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
        except Exception as exc:  # noqa: BLE001 - importing the user's module may raise anything: a problem, not a crash
            problems.append(Problem(scenario.path, f"workload.{key}",
                                    f"cannot import {ref!r} ({type(exc).__name__}: {exc}); expected an importable "
                                    '"module:function"'))
    if scenario.chaos is not None:
        from ..chaos import Chaos

        try:
            chaos = Chaos.from_spec(scenario.chaos["spec"], seed=scenario.chaos["seed"])
        except ValueError as exc:
            problems.append(Problem(scenario.path, "chaos.spec", f"expected a valid chaos spec: {exc}"))
        else:
            chaos.close()
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
    unique: dict[str, str] = {}  # the first name each file was given, in order
    for p in found:
        unique.setdefault(os.path.abspath(p), p)
    return list(unique.values())
