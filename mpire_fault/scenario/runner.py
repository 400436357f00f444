"""The gate's side: each scenario in a process of its own, with a hard timeout.

::

    gate (this module)                      scenario process (execute.py)
    ------------------                      -----------------------------
    load + validate the TOML  --invalid-->  (not started)
    Popen(new session) ---- path, out, budget ---->  WorkerPool(...) runs the workload
    wait(timeout) <------------ out.json ------------ observation (outcomes, journal, ...)
      | past timeout: SIGUSR1 (faulthandler stacks), then SIGKILL to the whole session
    evaluate(expect, observation) -> checks -> ScenarioResult

A scenario that hangs, crashes or leaves processes behind is a failed
scenario, never a stuck gate: the scenario runs in its own session, so one
``killpg`` removes it with every worker and helper it started. A scenario
whose backend needs an optional extra this install lacks (``backend =
"dask"`` without ``distributed``) is skipped, with the ``pip install`` line
that brings it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from .._core.wording import counted
from ..errors import describe_exitcode
from ..events import EVENTS_DIR_ENV
from ..testing.children import is_helper
from ..timeline import read_folder
from .expect import Check, evaluate
from .loader import Problem, Scenario, ScenarioInvalid, load_scenario

STATUSES = ("passed", "skipped", "failed", "invalid", "timeout", "crashed")
_TAIL = 6000


@dataclass
class ScenarioResult:
    """The verdict on one scenario file."""

    path: str
    name: str
    status: str
    seconds: float
    description: str = ""
    checks: list[Check] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    detail: str = ""
    observed: dict[str, Any] | None = None
    events: list[dict[str, Any]] | None = None
    """The pools' events (``--html``): None when not recorded."""
    event_problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def reason(self) -> str:
        """One line: why it did not pass (empty when it passed)."""
        if self.status == "invalid":
            first = self.problems[0] if self.problems else None
            more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            return f"{first.key or '(file)'}: {first.message}{more}" if first else "invalid"
        if self.status in ("timeout", "crashed", "skipped"):
            return self.detail.splitlines()[0] if self.detail else self.status
        failed = self.failed_checks
        if failed:
            more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
            return f"{failed[0]}{more}"
        return ""


def gate_passed(results: list[ScenarioResult]) -> bool:
    """The gate's verdict: nothing but passed and skipped scenarios, and at least one that ran and passed.

    A skipped scenario (an optional extra this install lacks) does not fail
    the gate, but a gate that skipped everything checked nothing: that fails.
    """
    return any(r.passed for r in results) and all(r.status in ("passed", "skipped") for r in results)


def inner_budget(timeout: float) -> float:
    """How long the scenario process may wait for results: a margin before the gate's hard kill."""
    return max(0.5, timeout - max(1.0, 0.15 * timeout))


def run_scenario(path: str, python: str | None = None, events: bool = False) -> ScenarioResult:
    """Validate and run one scenario file in a fresh process; never raises for a bad scenario, never hangs.

    With ``events``, the scenario's pools write event logs into a folder of
    their own (``MP_CHAOS_EVENTS_DIR``), read back into ``result.events``.
    """
    started = time.monotonic()
    try:
        scenario = load_scenario(path)
    except ScenarioInvalid as exc:
        return ScenarioResult(path, os.path.splitext(os.path.basename(path))[0], "invalid", 0.0,
                              problems=exc.problems)
    with tempfile.TemporaryDirectory(prefix="mpire-fault-run-") as scratch:
        out = os.path.join(scratch, "observed.json")
        log_path = os.path.join(scratch, "output.log")
        events_dir = os.path.join(scratch, "events") if events else None
        if events_dir:
            os.makedirs(events_dir)
        status, detail = _run_process(scenario, python or sys.executable, out, log_path, events_dir)
        observed = None
        if os.path.exists(out):
            with open(out) as handle:
                observed = json.load(handle)
        log_tail = _tail(log_path)
        recorded, event_problems = read_folder(events_dir) if events_dir else (None, [])
    seconds = time.monotonic() - started
    result = ScenarioResult(path, scenario.name, status, seconds, scenario.description, observed=observed,
                            events=recorded, event_problems=event_problems)
    if status == "timeout":
        result.detail = f"{detail}\n{log_tail}".strip()
        return result
    if observed is None:
        result.status = "crashed"
        result.detail = f"{detail or 'the scenario process wrote no report'}\n{log_tail}".strip()
        return result
    if observed["status"] == "invalid":
        result.status = "invalid"
        result.problems = [Problem(path, p["key"], p["message"]) for p in observed["problems"]]
        return result
    if observed["status"] == "skipped":
        result.status = "skipped"
        result.detail = observed["reason"]
        return result
    if observed["status"] == "crashed":
        result.status = "crashed"
        error = observed["error"]
        result.detail = f"the scenario raised {error['type']}: {error['message']}\n{observed.get('traceback', '')}"
        return result
    result.checks = evaluate(scenario, observed)
    if detail:  # it reported, but left processes behind
        result.checks.append(Check("no_orphans", False, "no process outlives the scenario", detail))
    result.status = "passed" if not result.failed_checks else "failed"
    if result.status == "failed":
        result.detail = log_tail
    return result


def _run_process(scenario: Scenario, python: str, out: str, log_path: str,
                 events_dir: str | None = None) -> tuple[str, str]:
    env = dict(os.environ)
    if events_dir is not None:
        env[EVENTS_DIR_ENV] = events_dir
    folder = os.path.dirname(os.path.abspath(scenario.path))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (folder, env.get("PYTHONPATH")) if p)
    env["PYTHONFAULTHANDLER"] = "1"
    command = [python, "-m", "mpire_fault.scenario.execute", scenario.path, out, str(inner_budget(scenario.timeout))]
    with open(log_path, "wb") as log:
        # A session of its own: on timeout one killpg reaches the workers and helpers too.
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
        try:
            proc.wait(scenario.timeout)
        except subprocess.TimeoutExpired:
            _dump_stacks_and_kill(proc)
            where = _read(out + ".phase")
            return "timeout", (f"timed out: the scenario process was still running after {scenario.timeout:g} s "
                               "(the hard timeout) and was killed with every process it started"
                               + (f"; it was {where}" if where else ""))
    leftovers = _reap_group(proc.pid)
    if proc.returncode != 0:
        return "crashed", f"the scenario process ended with {describe_exitcode(proc.returncode)}"
    if leftovers:
        return "ran", (f"{counted(len(leftovers), 'process', 'processes')} still running after the scenario ended: "
                       f"{', '.join(leftovers)}")
    return "ran", ""


def _dump_stacks_and_kill(proc: subprocess.Popen) -> None:
    try:
        os.kill(proc.pid, signal.SIGUSR1)  # faulthandler writes every thread's stack to the log
        proc.wait(1.0)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    _kill_group(proc.pid)
    try:
        proc.wait(10.0)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL of our own child cannot be refused
        pass
    _reap_group(proc.pid)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _group_members(pgid: int) -> list[Any]:
    import psutil

    members = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return members


def _reap_group(pgid: int, grace: float = 3.0) -> list[str]:
    """Processes of the scenario's session still alive after ``grace`` s; they are killed and named."""
    deadline = time.monotonic() + grace
    while True:
        members = _group_members(pgid)
        if not members or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    names = []
    for proc in members:
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if not is_helper(cmdline):  # multiprocessing's helpers: not the pool's fault
            names.append(f"pid {proc.pid} ({cmdline[:80] or proc.name()})")
    if members:
        _kill_group(pgid)
    return names


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return ("..." if size > _TAIL else "") + text.strip()


def run_scenarios(paths: list[str], jobs: int = 2,
                  on_result: Callable[[ScenarioResult, int, int], None] | None = None,
                  events: bool = False) -> list[ScenarioResult]:
    """Run every scenario file, ``jobs`` at a time; results in the order of ``paths`` (``events``: see run_scenario)."""
    results: dict[int, ScenarioResult] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="scenario") as executor:
        futures = {executor.submit(run_scenario, path, None, events): i for i, path in enumerate(paths)}
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as exc:  # noqa: BLE001 - a bug of the gate itself: still a result, never a lost scenario
                results[i] = ScenarioResult(paths[i], os.path.basename(paths[i]), "crashed", 0.0,
                                            detail=f"the gate failed on this scenario: {type(exc).__name__}: {exc}")
            if on_result is not None:
                on_result(results[i], len(results), len(paths))
    return [results[i] for i in range(len(paths))]
