"""Drop-in for real: keep_alive, order_tasks and worker_lifespan behave as MPIRE documents them.

keep_alive keeps its workers when a later call brings other hooks (MPIRE's
worker-state recipe), warns as MPIRE warns, and a replacement worker runs
its generation's worker_init. Split from test_dropin.py along its sections.
"""
from __future__ import annotations

import os
import time
import warnings

import pytest

from mpire_fault import WorkerPool
from mpire_fault._core.start_methods import START_METHODS

from . import tasks

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=START_METHODS)
def start_method(request) -> str:
    return request.param


def test_keep_alive_keeps_its_workers_and_their_init_when_the_hooks_change(start_method, tmp_path):
    """As MPIRE: live workers never rerun worker_init; a call without (or with another) worker_init keeps them."""
    tags = tmp_path / "tags"
    tags.mkdir()
    with WorkerPool(2, start_method=start_method, keep_alive=True) as pool:
        first = pool.map(tasks.read_tag, range(8), chunk_size=1, worker_init=_bound_init(str(tags), "a"))
        assert {tag for tag, _, _ in first} == {"a"}
        with pytest.warns(RuntimeWarning, match="keep_alive"):
            second = pool.map(tasks.read_tag, range(8), chunk_size=1, worker_init=_bound_init(str(tags), "b"))
        with pytest.warns(RuntimeWarning, match="keep_alive"):
            third = pool.map(tasks.read_tag, range(8), chunk_size=1)
        assert {tag for tag, _, _ in second + third} == {"a"}  # the state worker_init built is still there
        ran_a = {tuple(map(int, name.split("-")[1:])) for name in os.listdir(tags) if name.startswith("a-")}
        assert {(pid, ident) for _, pid, ident in first + second + third} <= ran_a
        assert not any(name.startswith("b-") for name in os.listdir(tags))  # "b" never ran


def test_worker_state_built_by_init_survives_later_calls_and_deaths(start_method):
    """MPIRE's worker_state recipe: load once with worker_init, reuse in later calls; a replacement loads it too."""
    if start_method == "threading":
        pytest.skip("a thread worker cannot be killed")
    with WorkerPool(2, start_method=start_method, use_worker_state=True, keep_alive=True) as pool:
        assert pool.map(tasks.use_model, range(4), worker_init=tasks.load_model) == [42, 43, 44, 45]
        with pytest.warns(RuntimeWarning):
            assert pool.map(tasks.use_model, range(4)) == [42, 43, 44, 45]
        deadline = time.monotonic() + 30
        while len(pool.statistics()["worker_pids"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # spawn: the second worker may still be starting
        victim = pool.statistics()["worker_pids"][1]
        os.kill(victim, 9)
        while pool.statistics()["worker_pids"].get(1) in (None, victim) and time.monotonic() < deadline:
            time.sleep(0.02)
        replacement = pool.statistics()["worker_pids"][1]
        done = pool.map(tasks.use_model_where, range(16), chunk_size=1)
        assert [value for value, _ in done] == list(range(42, 58))  # the replacement ran the init too
        assert replacement in {pid for _, pid in done}
        assert pool.apply(tasks.use_model, (1,)) == 43


def test_keep_alive_warns_as_mpire_when_the_hooks_change():
    """MPIRE warns (RuntimeWarning) when a keep_alive pool's next map brings another worker_init or worker_exit."""
    with WorkerPool(2, keep_alive=True) as pool:
        pool.map(tasks.square, range(4), worker_init=tasks.noop)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            pool.map(tasks.square, range(4), worker_init=tasks.noop)  # the same hooks: no warning
        with pytest.warns(RuntimeWarning, match="keep_alive") as caught:
            pool.map(tasks.square, range(4), worker_init=tasks.noop, worker_exit=tasks.noop)
        assert caught[0].filename == __file__  # it points at the caller's line
        pool.stop_and_join()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            pool.map(tasks.square, range(4))  # new workers after a stop: nothing to warn about


def _bound_init(tag_dir: str, tag: str):
    import functools

    return functools.partial(tasks.tag_init, tag_dir, tag)


def test_order_tasks_places_tasks_identically_on_every_call(start_method):
    with WorkerPool(3, start_method=start_method, pass_worker_id=True, order_tasks=True, keep_alive=True) as pool:
        first = pool.map(tasks.worker_of, range(9), chunk_size=1)
        second = pool.map(tasks.worker_of, range(9), chunk_size=1)
    assert first == second == [i % 3 for i in range(9)]


def test_worker_lifespan(start_method, tmp_path):
    import functools

    with WorkerPool(2, start_method=start_method) as pool:
        assert pool.map(tasks.square, range(8), chunk_size=1, worker_lifespan=1,
                        worker_init=functools.partial(tasks.mark_life, str(tmp_path))) == [i * i for i in range(8)]
    assert len(os.listdir(tmp_path)) >= 8  # each worker life took one task


@pytest.mark.parametrize("module", ["mpire", "mpire_fault"])
def test_apply_hooks_count_only_when_the_call_starts_the_workers(module):
    """MPIRE's apply_async: later calls' hooks are ignored while workers run (new lambdas each call restart nothing)."""
    pool_class = pytest.importorskip(module).WorkerPool
    with pool_class(2, start_method="fork") as pool:
        handles = [pool.apply_async(tasks.nap_pid, (0.3,), worker_init=lambda: None,
                                    worker_exit=lambda n=n: n)
                   for n in range(4)]
        pids = {handle.get(30) for handle in handles}
        assert len(pids) <= 2  # the same two workers ran all four: none was restarted for new hooks
        assert pool.get_exit_results() == []  # nobody stopped yet
        pool.stop_and_join()
        assert pool.get_exit_results() == [0, 0]  # the first call's worker_exit, once per worker
