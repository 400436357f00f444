"""``mpire_fault.Pool``: multiprocessing.Pool's API and argument rules, with our behaviour when a worker dies.

Where the outcome is deterministic the same program runs on the stdlib's
Pool and on ours and must give the same outcomes; deaths, which the stdlib
answers with a hang, are checked against our own contract, counting each
task's executions with marker files.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

import mpire_fault
from mpire_fault import Pool, WorkerDiedError, WorkerInitError, get_context
from mpire_fault.testing.markers import started

from . import tasks

pytestmark = pytest.mark.timeout(120)

RUNNER = os.path.join(os.path.dirname(__file__), "cpython", "run_pool_tests.py")


def _raises(outcomes: list, error: type[BaseException], call, *args, **kwargs) -> None:
    """Record that ``except error`` caught what ``call`` raised, and the text when the stdlib's message is part of
    the contract (misuse: ValueError)."""
    try:
        call(*args, **kwargs)
    except error as exc:
        text = re.sub(r"<[^>]*>", "<object>", str(exc))  # a repr names the class and address: not compared
        outcomes.append((error.__name__, text if error is ValueError else ""))
    else:
        outcomes.append(("no error", call.__name__))


def program(make_pool) -> list:
    """An ordinary multiprocessing.Pool program; every outcome it records is deterministic."""
    out: list = []
    with make_pool(2) as pool:
        # The stdlib's argument rules: map passes each item whole, starmap unpacks it (a dict gives its keys).
        out.append(pool.map(tasks.whole, [(1, 2), (3,), [4], "ab", {"k": 1}, 5]))
        out.append(pool.starmap(tasks.echo, [(1, 2), {"a": 1, "b": 2}, "xy", [3]]))
        out.append(pool.apply(tasks.echo, (1, 2), {"k": 3}))
        out.append(pool.apply(tasks.echo, [1, 2]))
        out.append(pool.map(tasks.square, range(50), chunksize=7))
        got: list = []
        result = pool.map_async(tasks.square, range(5), callback=got.append)
        result.wait(30)
        out.append((result.get(30), got, result.successful()))
        out.append(pool.starmap_async(tasks.echo, [(1,), (2, 3)]).get(30))
        out.append(list(pool.imap(tasks.square, range(6), chunksize=2)))
        iterator = pool.imap(tasks.square, range(6))  # the stdlib's chunksize=1 iterator has next(timeout)
        out.append([iterator.next(timeout=30) for _ in range(6)])
        _raises(out, StopIteration, iterator.next, timeout=30)
        out.append(sorted(pool.imap_unordered(tasks.square, iter(range(7)), 3)))
        out.append(list(pool.imap(tasks.square, [])))
        slow = pool.apply_async(tasks.sleep_then, (0.5, "late"))
        _raises(out, multiprocessing.TimeoutError, slow.get, timeout=0.01)
        _raises(out, ValueError, slow.successful)
        out.append((slow.get(30), slow.ready(), slow.successful()))
        errors: list = []
        failed = pool.apply_async(tasks.fail, (7,), error_callback=errors.append)
        try:
            failed.get(30)
        except KeyError as exc:
            out.append((exc.args, type(exc.__cause__) is multiprocessing.pool.RemoteTraceback, errors == [exc],
                        failed.successful()))
        _raises(out, KeyError, pool.map, tasks.fail, range(3))
        _raises(out, ValueError, pool.join)  # still running
        pool.close()
        _raises(out, ValueError, pool.apply, tasks.square, (2,))
        _raises(out, ValueError, pool.map, tasks.square, [1])
        _raises(out, ValueError, pool.imap, tasks.square, [1])
        pool.join()
    _raises(out, ValueError, make_pool, 0)
    _raises(out, ValueError, make_pool, -1)
    with make_pool(1) as pool:
        out.append(pool.apply(tasks.square, (3,)))
    _raises(out, ValueError, pool.map, tasks.square, [1])  # __exit__ terminated it
    _raises(out, ValueError, pool.__enter__)
    pool.join()
    return out


def test_same_program_as_multiprocessing_pool():
    ours = program(Pool)
    theirs = program(multiprocessing.Pool)
    for mine, stdlib in zip(ours, theirs, strict=True):
        if mine != stdlib and mine[0] == "ValueError":  # our refusal also says what was given
            assert mine[1].startswith(stdlib[1]), (mine, stdlib)
        else:
            assert mine == stdlib


@pytest.mark.parametrize("how", ["sigkill", "os_exit"])
def test_a_death_in_apply_fails_that_task_only(tmp_path, how):
    directory = str(tmp_path)
    errors: list = []
    with Pool(2) as pool:
        results = [pool.apply_async(tasks.marked, (directory, i, 3, how),
                                    error_callback=errors.append if i == 3 else None) for i in range(8)]
        for i, result in enumerate(results):
            if i == 3:
                with pytest.raises(WorkerDiedError) as info:
                    result.get(30)
            else:
                assert result.get(30) == i * i
        assert info.value.exitcode == (-9 if how == "sigkill" else 3)
        assert "apply task" in info.value.task
        assert errors == [info.value]
        assert pool.map(tasks.square, range(6)) == [0, 1, 4, 9, 16, 25]  # the pool goes on
        deadline = time.monotonic() + 10  # the replacement may still be starting on a loaded machine
        while pool.statistics().live_workers < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = pool.statistics()
        assert len(stats.deaths) == 1 and stats.live_workers == 2
    assert started(directory) == {i: 1 for i in range(8)}  # every task ran exactly once


@pytest.mark.parametrize(("method", "chunksize"), [("map", None), ("starmap", None), ("imap", 1),
                                                   ("imap_unordered", 2), ("map_async", 4)])
def test_a_death_in_a_map_names_its_item(tmp_path, method, chunksize):
    directory = str(tmp_path)
    items = [(directory, i, 13, "sigkill") for i in range(20)]
    with Pool(2) as pool:
        call = {
            "map": lambda: pool.map(tasks.marked_item, items, chunksize),
            "starmap": lambda: pool.starmap(tasks.marked, items, chunksize),
            "imap": lambda: list(pool.imap(tasks.marked_item, items, chunksize)),
            "imap_unordered": lambda: list(pool.imap_unordered(tasks.marked_item, items, chunksize)),
            "map_async": lambda: pool.map_async(tasks.marked_item, items, chunksize).get(30),
        }[method]
        with pytest.raises(WorkerDiedError) as info:
            call()
        assert info.value.task.startswith("map item 13 ")
        assert info.value.exitcode == -9
        assert pool.starmap(tasks.echo, [(1, 2)]) == [((1, 2), {})]  # the pool goes on
    counts = started(directory)
    assert counts[13] == 1 and max(counts.values()) == 1  # nothing ran twice


def test_spawn_context_and_initializer():
    context = get_context("spawn")
    # A Lock in initargs crosses only while a process starts, as with the stdlib's spawn.
    with context.Pool(2, tasks.init_with_lock, (context.Lock(), "MPF_INIT", "spawned")) as pool:
        assert pool.map(tasks.get_env_locked, ["MPF_INIT"] * 4) == ["spawned"] * 4
        assert pool.starmap(tasks.echo, [(1, {"a": 1})]) == [((1, {"a": 1}), {})]
        pool.close()
        pool.join()
    with Pool(1, context=multiprocessing.get_context("spawn")) as pool:
        assert pool.apply(tasks.pid) != os.getpid()


def test_initializer_runs_with_no_task(tmp_path):
    # As the stdlib: the workers start in the constructor, so the initializer runs even if no task comes.
    pool = Pool(2, tasks.touch, (str(tmp_path), 0))
    pool.close()
    pool.join()
    assert started(str(tmp_path)) == {0: 2}


def test_maxtasksperchild_replaces_workers():
    with Pool(2, maxtasksperchild=2) as pool:
        pids = {pool.apply(tasks.pid) for _ in range(8)}
    assert len(pids) >= 4


def test_a_failing_initializer_fails_the_call_instead_of_respawning_forever():
    with Pool(1, tasks.broken_init) as pool:
        with pytest.raises(WorkerInitError) as info:
            pool.apply(tasks.square, (2,))
        assert isinstance(info.value, ZeroDivisionError)
        assert pool.statistics().restarts < 10


@pytest.mark.parametrize(("kwargs", "error", "named"), [
    ({"processes": 0}, ValueError, "processes"),
    ({"processes": "2"}, TypeError, "processes"),
    ({"maxtasksperchild": 0}, ValueError, "maxtasksperchild"),
    ({"maxtasksperchild": 0.5}, ValueError, "maxtasksperchild"),
    ({"initializer": 1}, TypeError, "initializer"),
    ({"context": "fork"}, TypeError, "context"),
])
def test_bad_arguments_are_refused_by_name(kwargs, error, named):
    with pytest.raises(error, match=named):
        Pool(**kwargs)


def test_bad_chunksize_is_refused_by_name():
    with Pool(1) as pool:
        for call in (pool.map, pool.imap, pool.starmap_async):
            with pytest.raises(ValueError, match="chunksize"):
                call(tasks.square, [1], 0)


def test_an_unclosed_pool_at_interpreter_exit(tmp_path):
    # CPython's bpo-38744/bpo-39360 program, on our Pool: a pool left open in a global must not hang the exit.
    script = tmp_path / "unclosed.py"
    script.write_text(textwrap.dedent("""
        from mpire_fault import Pool
        problem = None
        class A:
            def __init__(self):
                self.pool = Pool(processes=1)
        def test():
            global problem
            problem = A()
            problem.pool.map(float, tuple(range(10)))
        if __name__ == "__main__":
            test()
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_cpython_pool_suite_passes_on_our_pool(tmp_path):
    """CPython's own Pool tests, with only the Pool swapped (tests/frontdoors/cpython/run_pool_tests.py)."""
    done = subprocess.run([sys.executable, RUNNER], capture_output=True, text=True, timeout=100, cwd=tmp_path)
    output = done.stdout + done.stderr
    if output.startswith("SKIP"):
        pytest.skip(output.strip())
    assert done.returncode == 0, output[-4000:]
    assert "Ran " in output and "(skipped=3)" in output, output[-4000:]


def test_public_names():
    assert mpire_fault.Pool is Pool and mpire_fault.get_context is get_context
    assert issubclass(mpire_fault.stdpool.ResultTimeoutError, multiprocessing.TimeoutError)
