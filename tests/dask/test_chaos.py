"""Chaos on the cluster: the same spec and seed give the same faults and outcomes on DaskPool as on WorkerPool."""
from __future__ import annotations

import re
import time

import pytest

pytest.importorskip("distributed")

import dask_tasks as tasks  # noqa: E402  (tests/dask is not a package: a package named "dask" would shadow the real one)

from mpire_fault import WorkerDiedError, WorkerExitError, WorkerInitError, WorkerPool  # noqa: E402
from mpire_fault.chaos import JournalEntry  # noqa: E402
from mpire_fault.dask_backend import DaskPool  # noqa: E402

pytestmark = pytest.mark.timeout(60)

ORIGIN = "task.start[task=2]=exit(1);task.start[task=7]=sigkill"


def _applies(pool, n: int = 10, **kwargs) -> list:
    results = [pool.apply_async(tasks.square, (i,), **kwargs) for i in range(n)]
    outcomes = []
    for result in results:
        result.wait(30)
        assert result.ready()
        try:
            outcomes.append(("ok", result.get(0)))
        except Exception as exc:  # noqa: BLE001 - compared below
            outcomes.append((type(exc).__name__, getattr(exc, "exitcode", None), tuple(getattr(exc, "__notes__", ()))))
    return outcomes


def _sites(journal: list) -> list:
    assert all(isinstance(entry, JournalEntry) for entry in journal)
    return sorted((e.site, e.action, e.task_index, e.attempt, e.seed, e.rule) for e in journal)


def _both(dask_client, spec: str, seed: int = 5, run=_applies, **pool_kwargs):
    with WorkerPool(2, chaos=spec, chaos_seed=seed, **pool_kwargs) as local:
        expected = run(local), _sites(local.chaos_journal())
    pool = DaskPool(address=dask_client, chaos=spec, chaos_seed=seed, **pool_kwargs)
    try:
        got = run(pool), _sites(pool.chaos_journal())
    finally:
        pool.terminate()
    return expected, got, pool


def test_origin_case_as_chaos_matches_the_local_pool(dask_client):
    """exit(1) at task 2 and SIGKILL at task 7 among ten applies: same outcomes, same journal, as locally."""
    expected, got, pool = _both(dask_client, ORIGIN)
    assert got == expected
    outcomes, journal = got
    assert [kind for kind, *_ in outcomes].count("ok") == 8
    assert outcomes[2][:2] == ("WorkerDiedError", 1) and outcomes[7][:2] == ("WorkerDiedError", -9)
    assert [(site, task) for site, _, task, *_ in journal] == [("task.start", 2), ("task.start", 7)]
    assert {entry.worker_id for entry in pool.chaos_journal()} <= {0, 1}  # kept after terminate


def test_percent_decisions_are_the_local_ones(dask_client):
    """A 40% rule: which of 16 tasks fail is a function of the seed only, on either backend."""
    expected, got, _ = _both(dask_client, "task.start=40%raise(ValueError)", seed=11,
                             run=lambda pool: _applies(pool, 16))
    assert got == expected
    assert 0 < sum(kind == "ValueError" for kind, *_ in got[0]) < 16


def test_count_budget_is_kept_by_the_cluster(dask_client):
    """2*raise -> off: exactly two faults in the whole run, across both workers; the boundary sites too."""
    spec = ("task.start=2*raise(ValueError)->off;args.unpickle[task=5]=raise(OSError);"
            "result.pickle[task=6]=raise(KeyError)")
    expected, got, _ = _both(dask_client, spec)
    assert [kind for kind, *_ in got[0]].count("ValueError") == 2
    assert got[0][5] == ("OSError", None, ("task-args",)) and got[0][6] == ("KeyError", None, ("result",))
    # which tasks spend the budget is a race between the workers, on either backend; what it spends is not
    spent = [(site, action) for site, action, *_ in got[1]]
    assert sorted(spent) == sorted((site, action) for site, action, *_ in expected[1])
    assert spent.count(("task.start", "raise(ValueError)")) == 2
    assert [kind for kind, *_ in got[0]].count("ok") == [kind for kind, *_ in expected[0]].count("ok") == 6


def test_retry_sees_the_next_attempt(dask_client):
    """task.start[attempt=0]=sigkill with max_task_retries=1: the rerun (attempt 1) is spared."""
    expected, got, _ = _both(dask_client, "task.start[task=1,attempt=0]=sigkill", max_task_retries=1,
                             run=lambda pool: _applies(pool, 3))
    assert got == expected == ([("ok", 0), ("ok", 1), ("ok", 4)], got[1])
    assert [(site, task, attempt) for site, _, task, attempt, *_ in got[1]] == [("task.start", 1, 0)]


def test_map_death_from_chaos_aborts_the_call(dask_client):
    def run(pool):
        with pytest.raises(WorkerDiedError) as info:
            pool.map(tasks.square, range(12), chunk_size=1)
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]
        return info.value.exitcode
    expected, got, _ = _both(dask_client, "task.start[task=3]=1*os_exit(3)", run=run)
    assert got == expected
    assert got[0] == 3


def test_init_and_exit_sites(dask_client):
    """init and exit are visited per call and worker; raise at exit is a WorkerExitError, at init a WorkerInitError."""
    with DaskPool(address=dask_client, chaos="exit=1*raise(RuntimeError)->off", chaos_seed=1) as pool:
        with pytest.raises(WorkerExitError):
            pool.map(tasks.square, range(20), chunk_size=1)
        assert [(e.site, e.action) for e in pool.chaos_journal()] == [("exit", "raise(RuntimeError)")]
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]  # the budget is spent
    with DaskPool(address=dask_client, chaos="init=raise(RuntimeError)", chaos_seed=1) as pool:
        with pytest.raises(WorkerInitError) as info:
            pool.map(tasks.square, range(4))
        assert isinstance(info.value.__cause__, RuntimeError)
        assert {e.site for e in pool.chaos_journal()} == {"init"}


def test_chaos_from_the_environment(dask_client, monkeypatch):
    monkeypatch.setenv("MP_CHAOS", "task.start[task=1]=raise(KeyError)")
    monkeypatch.setenv("MP_CHAOS_SEED", "9")
    with DaskPool(address=dask_client) as pool:
        assert [kind for kind, *_ in _applies(pool, 3)] == ["ok", "KeyError", "ok"]
        assert [(e.task_index, e.seed) for e in pool.chaos_journal()] == [(1, 9)]


def test_idle_is_not_visited_and_says_so(dask_client):
    with pytest.warns(RuntimeWarning, match="idle"):
        pool = DaskPool(address=dask_client, chaos="idle=sigkill")
    pool.terminate()


def settled_restarts(pool: DaskPool) -> int:
    """The cluster's restart count once earlier tests' deaths are all counted: the module shares one cluster,
    and a nanny's report of a worker an earlier test killed can arrive after this test began (under load)."""
    count, since = pool.statistics()["restarts"], time.monotonic()
    deadline = since + 5.0
    while time.monotonic() < deadline and time.monotonic() - since < 0.5:
        time.sleep(0.05)
        now = pool.statistics()["restarts"]
        if now != count:
            count, since = now, time.monotonic()
    return count


@pytest.mark.parametrize("action", ["exit(3)", "sigkill", "raise(OSError)"])
def test_a_worker_failing_once_at_init_is_replaced(dask_client, action):
    """As in the local pool (tests/chaos/test_sites.py): a worker that fails to start once is restarted
    and the call goes on; nothing fails, the fault is journaled once."""
    with DaskPool(address=dask_client, chaos=f"init[worker=0]=1*{action}", chaos_seed=11) as pool:
        _ = pool.client  # connect, so statistics() sees the cluster's earlier deaths
        before = settled_restarts(pool)
        # slow enough items that both workers start the call's session
        assert pool.map(tasks.block_and_square, [(0.2, x) for x in range(8)], chunk_size=1) == \
            [x * x for x in range(8)]
        assert [(e.site, e.worker_id) for e in pool.chaos_journal()] == [("init", 0)]
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]
        stats = pool.statistics()
        # a crash restarts the worker; a raise starts the session afresh in the same process (see remote.py)
        assert stats["restarts"] == before + (0 if action.startswith("raise") else 1), stats["deaths"]


def test_a_session_that_never_starts_gives_up_after_three_failures(dask_client):
    """Every start fails: after three failures in a row the call fails with WorkerInitError (no endless loop);
    the cause is the hook's own error and the error is also an instance of its type."""
    with DaskPool(address=dask_client, chaos="init=raise(OSError)", chaos_seed=2) as pool:
        _ = pool.client  # connect, so statistics() sees the cluster's earlier deaths
        before = settled_restarts(pool)
        with pytest.raises(WorkerInitError) as info:
            pool.map(tasks.square, range(6), chunk_size=1)
        assert isinstance(info.value.__cause__, OSError) and isinstance(info.value, OSError)
        assert re.search(r"failed [34] times in a row", str(info.value))  # both workers may fail at once
        assert pool.statistics()["restarts"] == before  # a raise ends no process
        journal = pool.chaos_journal()
        assert len(journal) >= 3 and {e.site for e in journal} == {"init"}
    with DaskPool(address=dask_client) as pool:  # the cluster is none the worse
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]
