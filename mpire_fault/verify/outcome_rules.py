"""Rules about what a call gives back: every item of any input, a task's own exception, a death's fields,
timeouts (the hard one, and where a task's clock starts).

A mixin of ``machines.PoolMachine`` (see ``map_rules`` for how the mixins share the machine's state).
Each rule draws only what the adapter's ``features`` say the pool can express.
"""
from __future__ import annotations

import importlib.util
import time
import warnings
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .adapters import Hang
from .guarantees import Guarantee, Refused, grading, show
from .machine_parts import MachineParts
from .tasks import TaskFailed, column_twice, executions, pids, stuck, twice, twice_keywords

INPUT_KINDS = ("list", "generator", "range", "tuple", "dicts", "numpy")
HARD_TIMEOUT = 0.3  # task_timeout of the task that will not stop
HARD_GRACE = 0.3  # timeout_grace of the pools that take one (the default, 5 s, would make each example slow)
CLOCK_TIMEOUT = 0.3  # task_timeout of the task queued behind slow ones; its own run takes a sixth of it
SLOW_HEAD = 0.6  # the untimed tasks it queues behind: twice its timeout
SIGNALS = {"sigkill": -9, "exit": 3}  # the exitcode a death of each kind must report


def has_numpy() -> bool:
    return importlib.util.find_spec("numpy") is not None


class OutcomeRules(MachineParts):
    """map-complete, own-exception, error-fields, hard-timeout, clock-at-start."""

    # ------------------------------------------------------------------ map-complete
    @grading(Guarantee.MAP_COMPLETE)
    @rule(kind=st.sampled_from(INPUT_KINDS), n=st.integers(0, 23), chunk_size=st.sampled_from([None, 1, 2, 3, 4, 5]),
          n_splits=st.sampled_from([None, 1, 2, 3, 4]))
    def map_of_any_input(self, kind: str, n: int, chunk_size: int | None, n_splits: int | None) -> None:
        """A map over one kind of input, of a length that is seldom a multiple of the chunk size."""
        features = self.adapter.features
        if kind == "dicts" and "mpire_items" not in features:
            kind = "list"  # only MPIRE's map rule passes a dict item as keyword arguments
        if kind == "numpy" and not has_numpy():
            kind = "tuple"
        if "chunk_size" not in features:
            chunk_size = None
        if "n_splits" not in features or chunk_size is not None:
            n_splits = None  # one or the other, as MPIRE takes them
        values = list(range(7, 7 + n))
        fn: Callable[..., Any] = twice
        expected = [v * 2 for v in values]
        iterable: Any = None
        if kind == "list":
            iterable = values
        elif kind == "tuple":
            iterable = tuple(values)
        elif kind == "generator":
            iterable = (v for v in values)
        elif kind == "range":
            iterable = range(7, 7 + n)
        elif kind == "dicts":
            fn, iterable = twice_keywords, [{"value": v} for v in values]
        else:
            import numpy

            if "mpire_items" in features:  # MPIRE cuts an array into slices of rows, each passed whole
                fn, iterable = column_twice, numpy.array([[v, -v] for v in values], dtype=numpy.int64).reshape(n, 2)
            else:
                iterable = numpy.array(values, dtype=numpy.int64)
        what = f"map over a {kind} of {n} items (chunk_size={chunk_size}, n_splits={n_splits})"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # MPIRE's "no length" warning for generators
                got = self.adapter.map_input(fn, iterable, self.bound, chunk_size, n_splits)
        except Hang:
            self.hang(f"{what} never returned (waited {self.bound} s)")
            return
        except Exception as exc:  # noqa: BLE001 - the pool's answer
            self.violate(Guarantee.MAP_COMPLETE, f"{what} raised {show(None, exc)}")
            return
        if fn is column_twice:
            got = [value for block in got for value in block]
        got = [int(value) for value in got] if all(hasattr(v, "__int__") for v in got) else list(got)
        if got != expected:
            missing = len(expected) - len(got)
            why = f"{missing} results missing" if missing > 0 else (
                f"{-missing} results too many" if missing < 0 else "results differ")
            self.violate(Guarantee.MAP_COMPLETE, f"{what}: {why}: got {got!r}, expected {expected!r}")

    # ------------------------------------------------------------------ own-exception
    @grading(Guarantee.OWN_EXCEPTION)
    @rule(where=st.sampled_from(["apply", "map"]), at=st.integers(0, 3))
    def a_task_raises_its_own_exception(self, where: str, at: int) -> None:
        if where == "apply":
            index = self.enqueue("custom", 0.0, blame=Guarantee.OWN_EXCEPTION)
            self.enqueue("ok", 0.0, blame=Guarantee.OWN_EXCEPTION)
            kind, handle, _ = self.pending.pop(index)
            value, error = self.answer(handle, self.bound, f"task {index} (custom) never answered")
            self.check_own_exception(f"apply task {index}", index, value, error)
            self.wait_for_results()
            return
        items = [("custom" if i == at else "ok", self.markers, self.new_index(), 0.0) for i in range(at + 2)]
        values, error, _ = self.run_map(items, f"map of {len(items)} items raising at item {at} never returned")
        self.map_aborted = self.map_aborted or error is not None
        self.check_own_exception(f"map of {len(items)} items, item {at}", items[at][2], values, error)

    def check_own_exception(self, what: str, index: int, value, error) -> None:
        wanted = (index, f"task {index} failed on purpose")
        if type(error) is not TaskFailed:
            self.violate(Guarantee.OWN_EXCEPTION, f"{what} raised TaskFailed{wanted!r} in the worker; the caller got "
                                                  f"{show(value, error)} ({type(error).__qualname__})")
            return
        problems = []
        if error.args != wanted:
            problems.append(f"args {error.args!r} instead of {wanted!r}")
        if getattr(error, "index", None) != index:
            problems.append(f"attribute index={getattr(error, 'index', None)!r} instead of {index}")
        cause = error.__cause__
        if cause is None or "raise TaskFailed" not in str(cause):
            problems.append(f"__cause__ is {cause!r:.120}, not the worker's traceback (which names the raise)")
        if problems:
            self.violate(Guarantee.OWN_EXCEPTION, f"{what}: the TaskFailed the caller got has " + "; ".join(problems))

    # ------------------------------------------------------------------ error-fields
    @grading(Guarantee.ERROR_FIELDS)
    @precondition(lambda self: "error_fields" in self.adapter.features)
    @rule(kind=st.sampled_from(["sigkill", "exit"]), where=st.sampled_from(["apply", "map"]), at=st.integers(0, 2))
    def a_death_names_its_worker(self, kind: str, where: str, at: int) -> None:
        if where == "apply":
            index = self.enqueue(kind, 0.0, blame=Guarantee.ERROR_FIELDS)
            _, handle, _ = self.pending.pop(index)
            value, error = self.answer(handle, self.bound, f"task {index} ({kind}) never answered")
            label, named = f"apply task {index} ({kind})", "apply task"
        else:
            items = [(kind if i == at else "ok", self.markers, self.new_index(), 0.05 if i == at else 0.0)
                     for i in range(at + 2)]
            index = items[at][2]
            value, error, _ = self.run_map(items, f"map with a {kind} at item {at} never returned")
            self.map_aborted = True
            label, named = f"map item {at} ({kind})", f"map item {at}"
        if error is None or type(error).__name__ != "WorkerDiedError" and not any(
                klass.__name__ == "WorkerDiedError" for klass in type(error).__mro__):
            self.violate(Guarantee.ERROR_FIELDS, f"{label} got {show(value, error)}, not a WorkerDiedError")
            return
        ran_in = pids(self.markers).get(index, [])
        problems = []
        if getattr(error, "worker_id", None) not in range(2):
            problems.append(f"worker_id={getattr(error, 'worker_id', None)!r} is no slot of a pool of 2")
        if getattr(error, "pid", None) not in ran_in:
            problems.append(f"pid={getattr(error, 'pid', None)!r}, but the task ran in pid {ran_in}")
        if getattr(error, "exitcode", None) != SIGNALS[kind]:
            problems.append(f"exitcode={getattr(error, 'exitcode', None)!r}, not {SIGNALS[kind]}")
        task = getattr(error, "task", None) or ""
        if named not in task:
            problems.append(f"task={task!r} does not say {named!r}")
        if problems:
            self.violate(Guarantee.ERROR_FIELDS, f"{label}: " + "; ".join(problems))
        self.wait_for_results()

    # ------------------------------------------------------------------ hard-timeout
    @grading(Guarantee.HARD_TIMEOUT)
    @precondition(lambda self: "task_timeout" in self.adapter.features)
    @rule(others=st.integers(0, 2))
    def a_task_that_will_not_stop(self, others: int) -> None:
        """Overruns its timeout and swallows the interrupt: the pool must kill it and say it timed out."""
        index = self.new_index()
        try:
            handle = self.adapter.submit(stuck, (self.markers, index, 30.0), timeout=HARD_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - whatever the pool raised is its answer
            handle = Refused(exc)
        for _ in range(others):
            self.enqueue("ok", 0.02, blame=Guarantee.HARD_TIMEOUT)
        grace = HARD_GRACE if "timeout_grace" in self.adapter.features else 5.0
        bound = HARD_TIMEOUT + grace + self.bound
        started = time.monotonic()
        what = f"task {index} (swallows its interrupt, task_timeout={HARD_TIMEOUT}, grace {grace} s)"
        value, error = self.answer(handle, bound, f"{what} never answered (waited {bound:.1f} s)")
        took = time.monotonic() - started
        if not isinstance(error, TimeoutError):
            self.violate(Guarantee.HARD_TIMEOUT, f"{what} got {show(value, error)} after {took:.1f} s, "
                                                 "not a TimeoutError")
        self.wait_for_results()
        time.sleep(0.1)  # a rerun would start now (the pool replaces the killed worker in milliseconds)
        runs = executions(self.markers).get(index, 0)
        if runs != 1:
            self.violate(Guarantee.HARD_TIMEOUT, f"{what} ran {runs} times: a hard timeout is no death to retry")

    # ------------------------------------------------------------------ clock-at-start
    @grading(Guarantee.CLOCK_AT_START)
    @precondition(lambda self: "task_timeout" in self.adapter.features)
    @rule(slow=st.integers(2, 3))
    def a_timed_task_queued_behind_slow_ones(self, slow: int) -> None:
        """Quick tasks teach the pool they are short; then slow untimed ones on every worker, and a timed one.

        A pool that queues tasks in its workers (ours does, for tasks it measured as short) puts the
        timed one behind a slow one: it waits there longer than its timeout; its own run is short.
        """
        self.wait_for_results()
        for _ in range(12):
            self.enqueue("ok", 0.0)
        self.wait_for_results()
        for _ in range(slow):
            self.enqueue("ok", SLOW_HEAD, blame=Guarantee.CLOCK_AT_START)
        self.enqueue("ok", 0.05, blame=Guarantee.CLOCK_AT_START, timeout=CLOCK_TIMEOUT)
        self.wait_for_results()

