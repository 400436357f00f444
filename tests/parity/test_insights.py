"""``get_insights()`` / ``print_insights()`` against MPIRE 2.10.2's own output for the same small programs.

Timings differ from run to run, so what is compared is what user code
relies on: the keys, their order, the types of values (and of list
elements), the time format, item counts, the longest tasks' arguments when
their durations are far apart, and the printed summary with every number
masked.
"""
from __future__ import annotations

import re

import pytest

from mpire_fault import WorkerDiedError
from mpire_fault import WorkerPool as OurPool
from mpire_fault._core.insights_text import format_seconds

from . import tasks

mpire = pytest.importorskip("mpire")

pytestmark = pytest.mark.timeout(120)

START_METHODS = ["fork", "threading"]
OUR_EXTRAS = {"deaths", "death_details"}
TIME = re.compile(r"\d+:\d\d:\d\d(\.\d{3})?")
# Naps far apart (0.1 s), so the order of the five longest is the same in both pools.
NAPPING_ITEMS = [{"nap": 0.5, "b": "two"}, (0.4, "x", None), 0.3, [0.2, [1, 2]], 0.1] + [0.0] * 5


def shape(insights: dict) -> dict:
    """Key -> (type of the value, types of its elements if a list)."""
    return {key: (type(value).__name__, sorted({type(v).__name__ for v in value}) if isinstance(value, list) else None)
            for key, value in insights.items()}


def squares_run(pool_cls, start_method):
    with pool_cls(2, start_method=start_method, enable_insights=True) as pool:
        pool.map(tasks.nap_square, range(20))
        return pool.get_insights()


@pytest.mark.parametrize("start_method", START_METHODS)
def test_keys_order_and_types_are_mpires(start_method):
    theirs = squares_run(mpire.WorkerPool, start_method)
    ours = squares_run(OurPool, start_method)
    assert [key for key in ours if key not in OUR_EXTRAS] == list(theirs)
    assert set(ours) - set(theirs) == OUR_EXTRAS
    assert {k: v for k, v in shape(ours).items() if k not in OUR_EXTRAS} == shape(theirs)
    for insights in (theirs, ours):
        assert sum(insights["n_completed_tasks"]) == 20  # items, not chunks
        assert len(insights["top_5_max_task_durations"]) == len(insights["top_5_max_task_args"]) == 5
        times = [v for k, v in insights.items() if k.endswith(("_time", "_mean", "_std", "durations"))]
        for value in times:
            for text in value if isinstance(value, list) else [value]:
                assert TIME.fullmatch(text), text
        assert all(re.fullmatch(r"Arg 0: \d+", args) for args in insights["top_5_max_task_args"])
        assert 0.0 <= insights["working_ratio"] <= 1.0


@pytest.mark.parametrize("start_method", START_METHODS)
def test_the_longest_tasks_and_their_args_read_as_in_mpire(start_method):
    def run(pool_cls):
        with pool_cls(2, start_method=start_method, enable_insights=True) as pool:
            pool.map(tasks.nap_first, NAPPING_ITEMS, chunk_size=1)
            mapped = pool.get_insights()["top_5_max_task_args"]
        with pool_cls(1, start_method=start_method, enable_insights=True) as pool:
            pool.apply(tasks.nap_first, (0.05,), {"tag": "t"})
            pool.stop_and_join()  # MPIRE's workers share their longest tasks every 2 s, or when they stop
            applied = pool.get_insights()["top_5_max_task_args"]
        return mapped, applied

    theirs, ours = run(mpire.WorkerPool), run(OurPool)
    assert ours == theirs
    assert ours[0] == ["Arg nap: 0.5 | Arg b: 'two'", "Arg 0: 0.4 | Arg 1: 'x' | Arg 2: None", "Arg 0: 0.3",
                       "Arg 0: 0.2 | Arg 1: [1, 2]", "Arg 0: 0.1"]
    assert ours[1] == ["Arg 0: 0.05 | Arg tag: 't'"]


def _masked(text: str) -> list[str]:
    """The printed summary with times and numbers masked and the timing-dependent warning dropped."""
    text = text.replace("\n\nEfficiency warning: working ratio is < 80%!", "")
    return [re.sub(r"\d+(\.\d+)?", "N", TIME.sub("T", line)) for line in text.splitlines()]


@pytest.mark.parametrize("start_method", START_METHODS)
def test_print_insights_prints_mpires_summary(start_method, capsys):
    printed = []
    for pool_cls in (mpire.WorkerPool, OurPool):
        with pool_cls(2, start_method=start_method, enable_insights=True) as pool:
            pool.map(tasks.nap_square, range(20))
            capsys.readouterr()
            pool.print_insights()
            printed.append(capsys.readouterr().out)
    theirs, ours = printed
    assert _masked(ours) == _masked(theirs)
    assert "Top 5 longest tasks" in ours and "Total number of tasks completed: 20" in ours


@pytest.mark.parametrize("start_method", START_METHODS)
def test_insights_off_gives_what_mpire_gives(start_method, capsys):
    outcomes = []
    for pool_cls in (mpire.WorkerPool, OurPool):
        with pool_cls(2, start_method=start_method) as pool:
            pool.map(tasks.square, range(4))
            capsys.readouterr()
            pool.print_insights()
            outcomes.append((pool.get_insights(), capsys.readouterr().out))
    assert outcomes[0] == outcomes[1] == (
        {}, "No profiling stats available. Try to run a function first with insights enabled ...\n")


def test_insights_off_leaves_the_task_function_unwrapped():
    with OurPool(1) as pool:
        assert pool.map(tasks.caller_name, range(3)) != ["timed"] * 3
    with OurPool(1, enable_insights=True) as pool:
        assert pool.map(tasks.caller_name, range(3)) == ["timed"] * 3


def _counts_over_calls(pool_cls):
    """Without keep_alive each call starts workers again and MPIRE starts its insights afresh; with it, they add up."""
    counts = []
    for keep_alive in (False, True):
        with pool_cls(2, enable_insights=True, keep_alive=keep_alive) as pool:
            pool.map(tasks.square, range(10))
            pool.map(tasks.square, range(6))
            counts.append(sum(pool.get_insights()["n_completed_tasks"]))
            pool.apply(tasks.square, (3,))
            counts.append(sum(pool.get_insights()["n_completed_tasks"]))
    return counts


def test_insights_start_afresh_when_mpire_does():
    assert _counts_over_calls(OurPool) == _counts_over_calls(mpire.WorkerPool) == [6, 1, 16, 17]


def test_format_seconds_is_mpires():
    from mpire.utils import format_seconds as theirs

    for seconds in (0, 1e-7, 0.0004, 0.001, 0.2275, 1.5, 59.9999, 3600.5, 2 * 86400 + 0.123):
        assert format_seconds(seconds) == theirs(seconds, with_milliseconds=True), seconds


def test_insights_survive_a_worker_death(tmp_path, capsys):
    with OurPool(2, enable_insights=True, keep_alive=True) as pool:
        pool.map(tasks.nap_first, NAPPING_ITEMS, chunk_size=1)
        with pytest.raises(WorkerDiedError):
            pool.apply(tasks.die_once, (str(tmp_path), 0))
        assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]
        insights = pool.get_insights()
        capsys.readouterr()
        pool.print_insights()
        printed = capsys.readouterr().out
    assert sum(insights["n_completed_tasks"]) == 20  # nothing of the first call was lost with the dead worker
    assert sum(insights["deaths"]) == 1 and len(insights["death_details"]) == 1
    assert insights["top_5_max_task_args"][0] == "Arg nap: 0.5 | Arg b: 'two'"  # reported before the death
    assert "deaths: 1" in printed


def test_tasks_rerun_after_deaths_are_counted_once(tmp_path):
    with OurPool(2, enable_insights=True, max_task_retries=1) as pool:
        results = [pool.apply_async(tasks.die_once, (str(tmp_path), x)) for x in range(4)]
        assert [r.get(timeout=30) for r in results] == [0, 1, 4, 9]
        insights = pool.get_insights()
    assert sum(insights["n_completed_tasks"]) == 4  # the killed call never returned: not counted
    assert sum(insights["deaths"]) == 4
    assert len(insights["top_5_max_task_args"]) == 4


def test_an_argument_whose_repr_raises_does_not_fail_the_task():
    from mpire_fault._engine.insights import describe_args

    class Opaque:
        def __repr__(self):
            raise ValueError("no")

    shown = describe_args((1, Opaque()), {"k": "v"})
    assert shown == "Arg 0: 1 | Arg 1: <Opaque with a failing repr: ValueError('no')> | Arg k: 'v'"
