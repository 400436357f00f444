"""``mpire_fault.exception`` as ``mpire.exception``: the names import, and MPIRE's re-raise idiom still stops a task."""
from __future__ import annotations

import time

import pytest

from mpire_fault import TaskTimeoutError, WorkerPool
from mpire_fault.exception import (
    CannotPickleExceptionError,
    InterruptWorker,
    StopWorker,
    TaskInterrupted,
    highlight_traceback,
    populate_exception,
    remove_highlighting,
)

pytestmark = pytest.mark.timeout(60)


def catches_everything_but_the_stop(seconds: float) -> str:
    """Task code written for MPIRE: a broad except that lets MPIRE's stop signals through."""
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # short naps: a worker thread is interrupted between bytecodes
            time.sleep(0.01)
    except (InterruptWorker, StopWorker):
        raise
    except Exception:  # noqa: BLE001 - the idiom under test
        return "swallowed"
    return "finished"


def test_the_names_import_and_are_exceptions():
    for cls in (StopWorker, InterruptWorker, CannotPickleExceptionError):
        assert issubclass(cls, Exception)
    interrupted = TaskInterrupted(1.0, 0, killed=False)
    assert isinstance(interrupted, (TaskTimeoutError, TimeoutError, InterruptWorker, StopWorker))


@pytest.mark.parametrize("start_method", ["fork", "threading"])
def test_a_timeout_goes_through_a_task_that_reraises_mpires_stop_signals(start_method):
    with WorkerPool(1, start_method=start_method) as pool:
        with pytest.raises(TaskTimeoutError) as info:
            pool.apply(catches_everything_but_the_stop, (30,), task_timeout=0.3)
        assert info.value.killed is False  # the task let the interrupt through: the worker lives on
        assert pool.apply(catches_everything_but_the_stop, (0,)) == "finished"


def test_traceback_helpers():
    coloured = "\x1b[31mTraceback\x1b[0m (most recent call last)"
    assert remove_highlighting(coloured) == "Traceback (most recent call last)"
    assert remove_highlighting(highlight_traceback("ValueError: x\n")).strip() == "ValueError: x"


def test_populate_exception_skips_init():
    class Picky(Exception):
        def __init__(self, a, b):
            super().__init__(a + b)

    err, cause = populate_exception(Picky, ("ab",), {"extra": 1}, "Traceback ...")
    assert type(err) is Picky and err.args == ("ab",) and err.extra == 1
    assert "Traceback" in str(cause)


def fails_on(value, *, bad="bad"):
    if value == bad:
        raise ValueError(f"cannot read {value}")
    return value


@pytest.mark.parametrize("start_method", ["fork", "threading"])
def test_the_remote_traceback_names_the_worker_and_the_arguments_as_mpires_does(start_method):
    with WorkerPool(1, start_method=start_method) as pool:
        for items in (["a", "bad", "c"], [("a",), ("bad",)], [{"value": "bad"}]):
            with pytest.raises(ValueError, match="cannot read bad") as info:
                pool.map(fails_on, items, chunk_size=1)
            text = str(info.value.__cause__)
            expected = "Arg value: 'bad'" if isinstance(items[0], dict) else "Arg 0: 'bad'"
            assert "Exception occurred in Worker-0 with the following arguments:\n" + expected in text
        with pytest.raises(ValueError) as info:
            pool.apply(fails_on, ("x",), {"bad": "x"})
        assert "Arg 0: 'x'\nArg bad: 'x'\n" in str(info.value.__cause__)
