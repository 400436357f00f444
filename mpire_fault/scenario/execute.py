"""Run one scenario in this process and write what was observed as JSON.

This is the scenario's own process (``python -m mpire_fault.scenario.execute
SCENARIO OUT DEADLINE``), started by the gate with a hard timeout. It never
judges: it records every task's outcome, how often each task ran (marker
files), the pool's statistics, the chaos journal and the peak worker memory;
``expect.py`` judges in the gate. Every wait here ends before the gate's
hard deadline, so a hung task is reported as "never resolved" with details
rather than only as a killed process.
"""
from __future__ import annotations

import faulthandler
import importlib
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from .. import backends
from ..chaos import env as chaos_environment
from ..testing import markers as marker_files
from .afterwards import bounded, follow_up, map_again, ready_after, settled_statistics
from .loader import Scenario, ScenarioInvalid, check_imports, load_scenario, resolve_function

SECOND_HOOK_WINDOW = 0.3  # after every result is in: a second callback for an answered task would come by now

# A backend that lives behind an optional extra: the module it cannot run without, and the extra that brings it.
BACKEND_EXTRAS = {"dask": ("distributed", "dask")}


class Counted:
    """The workload function, wrapped: a marker file per execution, and the task index with the value.

    Returning ``(index, value)`` lets the judge check that each value reached
    the task that asked for it, whatever the order (``*_unordered``) or the
    deaths in between.
    """

    def __init__(self, func: Callable[..., Any], markers: str) -> None:
        self.func = func
        self.markers = markers
        self.__qualname__ = getattr(func, "__qualname__", None) or repr(func)  # names the task in errors

    def __call__(self, index: int, args: tuple, kwargs: dict) -> tuple[int, Any]:
        # time.monotonic_ns(): one clock for every process on Linux, so a start can be set against the call's end
        name = os.path.join(self.markers, f"{index}.{os.getpid()}.{time.monotonic_ns()}.{uuid.uuid4().hex}")
        with open(name, "w"):
            pass
        value = self.func(*args, **kwargs)
        with open(f"{name}.{time.monotonic_ns()}.end", "w"):  # it ran to its end, and when
            pass
        return index, value


def task_arguments(scenario: Scenario) -> list[tuple[int, tuple, dict]]:
    """``(index, args, kwargs)`` per task, MPIRE's convention: array = positional, table = keywords."""
    common = scenario.workload["kwargs"]
    out = []
    for index, entry in enumerate(scenario.workload["args"]):
        if isinstance(entry, list):
            out.append((index, tuple(entry), dict(common)))
        elif isinstance(entry, dict):
            out.append((index, (), {**common, **entry}))
        else:
            out.append((index, (entry,), dict(common)))
    return out


def describe_error(exc: BaseException) -> dict[str, Any]:
    """An error as JSON: class name, its bases (to match like ``except``), and WorkerDiedError's fields."""
    names = [cls.__name__ for cls in type(exc).__mro__]
    return {
        "type": type(exc).__name__, "module": type(exc).__module__, "mro": names,
        "message": str(exc)[:2000],
        "oom": getattr(exc, "oom", None), "signal": getattr(exc, "signal_name", None),
        "exitcode": getattr(exc, "exitcode", None),
        "task": task if isinstance(task := getattr(exc, "task", None), str) else None,
    }


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return {"repr": repr(value)[:500]}


class MemorySampler(threading.Thread):
    """Samples the RSS of every descendant process (the workers) until stopped."""

    def __init__(self, period: float = 0.02) -> None:
        super().__init__(name="scenario-memory", daemon=True)
        self.period = period
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stopped.wait(self.period):
            for child in me.children(recursive=True):
                try:
                    self.peak = max(self.peak, child.memory_info().rss)
                except psutil.Error:
                    continue


def _run_apply(pool: Any, counted: Counted, tasks: list, call_kwargs: dict, blocking: bool, deadline: float,
               outcomes: list[dict], workload: dict[str, Any]) -> None:
    def record(index: int, value: Any = None, error: BaseException | None = None) -> None:
        if error is not None:
            outcomes[index] = {"index": index, "ok": False, "error": describe_error(error)}
        else:
            got, value = value
            outcomes[index] = {"index": index, "ok": True, "returned_index": got, "value": _jsonable(value)}

    if blocking:
        def run_all() -> None:
            for index, args, kwargs in tasks:
                if time.monotonic() > deadline:  # never submit to a pool the scenario is leaving
                    return
                try:
                    value = pool.apply(counted, (index, args, kwargs), **call_kwargs)
                except Exception as exc:  # noqa: BLE001 - whatever the task raised is its outcome
                    record(index, error=exc)
                else:
                    record(index, value)
        bounded(run_all, deadline)
        return
    hooks: dict[int, list] = {}
    results = [pool.apply_async(counted, (index, args, kwargs), **call_kwargs, **_hooks(index, hooks, workload))
               for index, args, kwargs in tasks]
    stopper = None
    if workload.get("terminate_after"):
        stopper = threading.Timer(workload["terminate_after"], pool.terminate)
        stopper.daemon = True
        stopper.start()
    for index, result in enumerate(results):
        result.wait(max(0.01, deadline - time.monotonic()))
        if not result.ready():
            continue
        try:
            value = result.get(0)
        except Exception as exc:  # noqa: BLE001 - whatever the task raised is its outcome
            record(index, error=exc)
        else:
            record(index, value)
    if stopper is not None:
        stopper.join(max(0.0, deadline - time.monotonic()))
    if workload.get("callbacks"):
        time.sleep(min(SECOND_HOOK_WINDOW, max(0.0, deadline - time.monotonic())))
        for index, made in sorted(hooks.items()):
            outcomes[index]["hooks"] = list(made)


def _hooks(index: int, hooks: dict[int, list], workload: dict[str, Any]) -> dict[str, Callable[[Any], None]]:
    """callback and error_callback for task ``index`` that record each call in ``hooks`` (workload.callbacks)."""
    if not workload.get("callbacks"):
        return {}

    def callback(value: Any) -> None:
        hooks.setdefault(index, []).append(["callback", _jsonable(value)])
        if workload.get("callback_pause"):
            time.sleep(workload["callback_pause"])

    def error_callback(error: BaseException) -> None:
        hooks.setdefault(index, []).append(["error_callback", describe_error(error)])

    return {"callback": callback, "error_callback": error_callback}


def _run_map(pool: Any, counted: Counted, tasks: list, call_kwargs: dict, mode: str, deadline: float,
             outcomes: list[dict], call: dict) -> None:
    def run() -> None:
        try:
            values = getattr(pool, mode)(counted, tasks, **call_kwargs)  # a list, or an iterator for imap*
            for position, value in enumerate(values):
                got, value = value
                outcomes.append({"index": got, "position": position, "ok": True, "returned_index": got,
                                 "value": _jsonable(value)})
        except Exception as exc:  # noqa: BLE001 - whatever ended the map is its outcome
            call["raised_ns"] = time.monotonic_ns()
            call["error"] = describe_error(exc)
        call["returned"] = True

    call["returned"] = bounded(run, deadline) and call.get("returned", False)


def missing_extra(scenario: Scenario) -> str | None:
    """Why this install cannot run ``scenario`` (its backend's extra is not installed), with the line that fixes it."""
    backend = scenario.pool.get("backend", "local")
    if backend not in BACKEND_EXTRAS:
        return None
    module, extra = BACKEND_EXTRAS[backend]
    try:
        importlib.import_module(module)
    except ImportError:  # not installed, or a dependency of it is not: either way the extra is what is missing
        return f'the {backend} backend needs {module!r}, not installed: pip install "mpire_fault[{extra}]"'
    return None


def execute(scenario: Scenario, deadline: float, phase: Callable[[str], None] = lambda name: None) -> dict[str, Any]:
    """Run ``scenario`` now, in this process; every wait ends by ``deadline`` (time.monotonic).

    ``phase`` is told where the run is, so a gate that has to kill this
    process can say where it was stuck.
    """
    from .workloads import square

    phase("importing the workload function and checking the chaos spec")
    problems = check_imports(scenario)
    if problems:
        return {"status": "invalid", "problems": [{"key": p.key, "message": p.message} for p in problems]}
    missing = missing_extra(scenario)
    if missing:  # not the scenario's fault nor the pool's: this install lacks an optional part
        return {"status": "skipped", "reason": missing}
    for name in chaos_environment.NAMES:  # the scenario's [chaos] is the only chaos: not the caller's environment
        os.environ.pop(name, None)
    markers = tempfile.mkdtemp(prefix="mpire-fault-scenario-")
    counted = Counted(resolve_function(scenario.workload["function"]), markers)
    pool_settings = dict(scenario.pool)
    pool_class: Any = backends.named(pool_settings.pop("backend", backends.LOCAL)).load()
    task_timeout = pool_settings.pop("task_timeout", None)
    call_kwargs: dict[str, Any] = {"task_timeout": task_timeout}
    if scenario.workload.get("worker_init"):
        call_kwargs["worker_init"] = resolve_function(scenario.workload["worker_init"])
    chaos = None
    if scenario.chaos is not None:
        from ..chaos import Chaos

        # Made here rather than by the pool so oom() knows the pool's memory limit and never grows past it.
        chaos = Chaos(scenario.chaos["spec"], scenario.chaos["seed"],
                      memory_limit=pool_settings.get("max_worker_memory"))
        pool_settings["chaos"] = chaos
    mode = scenario.workload["mode"]
    tasks = task_arguments(scenario)
    # the chaos journal's times are time.time(), the markers' time.monotonic_ns(): the offset puts them on one clock
    observed: dict[str, Any] = {"status": "ran", "mode": mode, "n_tasks": len(tasks),
                                "clock_offset_ns": time.time_ns() - time.monotonic_ns()}
    sampler = MemorySampler()
    sampler.start()
    started = time.monotonic()
    phase("running the workload")
    try:
        with pool_class(**pool_settings) as pool:
            if scenario.is_map:
                outcomes: list[dict] = []
                call: dict[str, Any] = {}
                if "chunk_size" in scenario.workload:
                    call_kwargs["chunk_size"] = scenario.workload["chunk_size"]
                _run_map(pool, counted, tasks, call_kwargs, mode, deadline, outcomes, call)
                observed["map"] = {"returned": call["returned"], "aborted": "error" in call,
                                   "error": call.get("error"), "yielded": len(outcomes),
                                   "raised_ns": call.get("raised_ns")}
            else:
                outcomes = [{"index": i, "ok": None} for i in range(len(tasks))]  # ok None: never resolved
                _run_apply(pool, counted, tasks, call_kwargs, mode == "apply", deadline, outcomes, scenario.workload)
            observed["seconds"] = time.monotonic() - started
            observed["outcomes"] = outcomes
            if "workers_ready_within" in scenario.expect:
                observed["ready_seconds"] = ready_after(pool, scenario.pool["n_jobs"],
                                                         min(scenario.expect["workers_ready_within"] + 1.0,
                                                             max(0.0, deadline - time.monotonic())))
            stats = settled_statistics(pool)
            stats = stats.as_dict() if hasattr(stats, "as_dict") else stats
            observed["stats"] = {k: stats.get(k) for k in ("restarts", "tasks_completed", "tasks_failed",
                                                            "tasks_requeued", "deaths")}
            observed["journal"] = [_journal_entry(e) for e in pool.chaos_journal()]
            if scenario.expect.get("map_usable_after"):
                phase("running one more map call on the same pool (map_usable_after)")
                observed["map_again"] = map_again(pool, mode, square, call_kwargs, deadline)
            if scenario.workload.get("terminate_after"):
                observed["follow_up"] = {"ok": False, "error": "not run: the workload terminated the pool"}
            else:
                phase("running one more apply on the same pool (pool_usable_after)")
                observed["follow_up"] = follow_up(pool, square, deadline)
            phase("terminating the pool (leaving its with block)")
            stopping = time.monotonic()
        observed["shutdown_seconds"] = time.monotonic() - stopping
        phase("collecting the marker files")
    finally:
        sampler.stopped.set()
        sampler.join(1.0)
        children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
        observed["peak_rss"] = max(sampler.peak, children_peak)
        observed["executions"] = {str(index): n for index, n in marker_files.started(markers).items()}
        observed["starts"], observed["ends"] = _marker_times(markers)
        shutil.rmtree(markers, ignore_errors=True)
        if chaos is not None:
            chaos.close()
    return observed


def _journal_entry(entry: Any) -> dict[str, Any]:
    if isinstance(entry, dict):
        raw = dict(entry)
    else:
        names = getattr(entry, "__slots__", None) or getattr(entry, "__dataclass_fields__", None) or vars(entry)
        raw = {name: getattr(entry, name, None) for name in names}
    return {key: _jsonable(value) for key, value in raw.items()}


def _marker_times(directory: str) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """When each task started, and when each execution that ran to its end ended (``time.monotonic_ns()``)."""
    starts: dict[str, list[int]] = {}
    ends: dict[str, list[int]] = {}
    for name in os.listdir(directory):
        index, _pid, ns, _run, *end = name.split(".")
        if end:
            ends.setdefault(index, []).append(int(end[0]))
        else:
            starts.setdefault(index, []).append(int(ns))
    return starts, ends


def main(argv: list[str]) -> int:
    """``SCENARIO OUT DEADLINE_SECONDS``: run, write the observation to OUT (JSON)."""
    path, out, budget = argv[0], argv[1], float(argv[2])
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the gate asks for stacks before a hard kill
    deadline = time.monotonic() + budget

    def phase(name: str) -> None:
        with open(out + ".phase", "w") as handle:
            handle.write(name)

    phase("loading the scenario")
    try:
        observed = execute(load_scenario(path), deadline, phase)
    except ScenarioInvalid as exc:
        observed = {"status": "invalid", "problems": [{"key": p.key, "message": p.message} for p in exc.problems]}
    except BaseException as exc:  # noqa: BLE001 - anything else is the scenario crashing: report it, with the stack
        observed = {"status": "crashed", "error": describe_error(exc), "traceback": traceback.format_exc()}
    with open(out + ".tmp", "w") as handle:
        json.dump(observed, handle)
    os.replace(out + ".tmp", out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
