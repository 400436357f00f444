"""Checking what a pool is created and called with: each bad value is refused by name, with what was given."""
from __future__ import annotations

import itertools
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ..chaos import env as environment
from ..errors import ChaosSpecError
from .backoff import RestartBackoff
from .start_methods import START_METHODS

log = logging.getLogger("mpire_fault")

MAX_N_JOBS = 65536  # far above what one machine runs; beyond it n_jobs is a mistake, not a wish


def check_options(n_jobs: int, start_method: str, max_worker_memory: int | None, timeout_grace: float,
                  max_task_retries: int, restart_backoff: RestartBackoff | int | None) -> RestartBackoff:
    """The constructor's checks; returns the restart budget as a ``RestartBackoff``."""
    positive_int("n_jobs", n_jobs, allow_none=False)
    if n_jobs > MAX_N_JOBS:
        raise ValueError(f"n_jobs must be at most {MAX_N_JOBS}, got {n_jobs!r}")
    if start_method not in START_METHODS:
        raise ValueError(f"start_method must be one of {', '.join(START_METHODS)}, got {start_method!r}")
    positive_int("max_worker_memory", max_worker_memory)
    if max_worker_memory is not None and start_method == "threading":
        raise ValueError("max_worker_memory needs worker processes; threads share the parent's memory "
                         "(start_method='threading')")
    positive_number("timeout_grace", timeout_grace)
    if isinstance(max_task_retries, bool) or not isinstance(max_task_retries, int) or max_task_retries < 0:
        raise ValueError(f"max_task_retries must be a non-negative integer, got {max_task_retries!r}")
    if restart_backoff is None:
        restart_backoff = RestartBackoff()
    elif isinstance(restart_backoff, int) and not isinstance(restart_backoff, bool):
        positive_int("restart_backoff", restart_backoff, allow_none=False)
        restart_backoff = RestartBackoff(max_failures=restart_backoff)
    elif not isinstance(restart_backoff, RestartBackoff):
        raise ValueError(
            f"restart_backoff must be a RestartBackoff, a positive int or None, got {restart_backoff!r}")
    return restart_backoff


def positive_int(name: str, value: Any, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")


def map_arguments(iterable_of_args: Any, iterable_len: int | None, max_tasks_active: int | None,
                  chunk_size: float | None, n_splits: int | None, worker_lifespan: int | None,
                  timeouts: dict[str, float | None]) -> tuple[Any, int | None]:
    """Check a map call's numbers by name; the input and ``iterable_len`` as the pool reads them.

    As MPIRE: an int ``n`` is ``range(n)``, and ``iterable_len=0`` reads no item.
    """
    if isinstance(iterable_of_args, int) and not isinstance(iterable_of_args, bool):
        iterable_of_args = range(iterable_of_args)
    if iterable_len == 0 and not isinstance(iterable_len, bool):
        iterable_of_args, iterable_len = range(0), None
    for name, value in (("iterable_len", iterable_len), ("max_tasks_active", max_tasks_active),
                        ("n_splits", n_splits), ("worker_lifespan", worker_lifespan)):
        positive_int(name, value)
    chunk_size_option(chunk_size)
    for name, seconds in timeouts.items():
        positive_number(name, seconds)
    return iterable_of_args, iterable_len


def chunk_size_option(value: Any) -> None:
    """MPIRE's ``chunk_size``: None, or an int or float of 1 or more (2.5 gives chunks of 3, 2, 3, 2, ...)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 1:
        raise ValueError(f"chunk_size must be an int or float of 1 or more, or None, got {value!r}")


def positive_number(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds or None, got {value!r}")


def check_event_log(target: Any) -> Any:
    """``event_log``: None, a path in an existing folder, or a callable (guarded: it runs on the supervisor)."""
    if target is None:
        return None
    if callable(target):
        return guarded(target)
    if not isinstance(target, (str, os.PathLike)):
        raise ValueError(f"event_log must be a file path, a callable taking an event dict, or None, got {target!r}")
    folder = os.path.dirname(os.path.abspath(os.fspath(target)))
    if not os.path.isdir(folder):
        raise ValueError(f"event_log {os.fspath(target)!r}: the folder {folder!r} does not exist")
    return target


def guarded(callback: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """A user's event callback that raises is logged once and then left out; it must never stop the pool."""
    broken = False

    def deliver(event: dict[str, Any]) -> None:
        nonlocal broken
        if broken:
            return
        try:
            callback(event)
        except Exception:
            broken = True
            log.exception("the event_log callback raised; mpire_fault stops calling it")

    return deliver


def normalize_cpu_ids(cpu_ids: list | None, n_jobs: int, start_method: str = "fork") -> tuple:
    if cpu_ids and start_method == "threading":  # MPIRE's docs: pinning does not work with threads
        raise ValueError("cpu_ids pins worker processes to CPUs; start_method='threading' has no worker "
                         "processes to pin (threads share the parent's CPUs): drop cpu_ids or use a process "
                         "start method")
    if not cpu_ids:
        return (None,) * n_jobs
    if len(cpu_ids) not in (1, n_jobs):
        raise ValueError(f"cpu_ids must have 1 or n_jobs={n_jobs} entries, got {len(cpu_ids)}")
    entries = []
    n_cpus = os.cpu_count() or 1
    for entry in cpu_ids:
        ids = tuple(entry) if isinstance(entry, (list, tuple, set)) else (entry,)
        if not ids or any(isinstance(i, bool) or not isinstance(i, int) for i in ids):  # MPIRE: a TypeError
            raise TypeError(f"cpu_ids entries must be CPU numbers or lists of them, got {entry!r}")
        if any(i < 0 for i in ids):
            raise ValueError(f"cpu_ids entries must be CPU numbers (0 or more), got {entry!r}")
        if max(ids) >= n_cpus:  # checked here, as MPIRE does, not by workers failing to start
            raise ValueError(f"CPU {max(ids)} in cpu_ids does not exist: this machine has CPUs 0 to {n_cpus - 1}")
        entries.append(ids)
    return tuple(entries * n_jobs if len(entries) == 1 else entries)


def resolve_chaos(chaos: Any, seed: int | None, start_method: str, memory_limit: int | None) -> Any:
    if chaos is None and not os.environ.get(environment.SPEC, "").strip():
        return None  # the chaos layer's parser is not even imported when nothing asks for it
    from ..chaos import resolve

    resolved = resolve(chaos, seed, memory_limit=memory_limit)
    if resolved is None or start_method != "threading":
        return resolved
    from ..chaos.spec import parse_spec
    from ..chaos.vocabulary import KILLS_PROCESS

    for rule in parse_spec(resolved.spec).rules:
        for term in rule.terms:
            if term.action not in KILLS_PROCESS:
                continue
            if chaos is None:  # from MP_CHAOS (pytest --mp-chaos): this pool cannot take it
                warnings.warn(f"chaos {resolved.spec!r} kills processes; a pool with start_method='threading' "
                              "runs without it", RuntimeWarning, stacklevel=4)
                return None
            raise ChaosSpecError(
                f"{term.action!r} ends a process, and start_method='threading' workers are threads of this "
                "process; use raise, sleep or hang", resolved.spec, max(0, resolved.spec.find(term.action)))
    return resolved


# Pools made with the same chaos (spec and seed) in this process, counted, so
# two pools in one test roll different dice, and a test rerun alone (the
# plugin gives each test a seed of its own) rolls the same ones again.
_chaos_scopes: dict[tuple[str, int], Iterator[int]] = {}


def chaos_scope(chaos: Any) -> int:
    """The ordinal of this pool among the pools of this process made with the same chaos (0 without chaos)."""
    if chaos is None:
        return 0
    return next(_chaos_scopes.setdefault((chaos.spec, chaos.seed), itertools.count()))
