"""How ``mpire-fault verify`` plans its gradings: shards, seeds and order (no pool is started)."""
from __future__ import annotations

import os

from mpire_fault.verify import GUARANTEES
from mpire_fault.verify.cli import EXAMPLE_CAP, MIN_SHARD_EXAMPLES, plan_units


def test_gradings_are_planned_longest_first_with_every_example_once():
    pairs = [("mpire_fault", guarantee) for guarantee in GUARANTEES]
    for examples in (1, 7, 50, 200):
        units = plan_units(pairs, examples, jobs=12)
        for pair in pairs:
            mine = [(n, seed) for unit_pair, n, seed in units if unit_pair == pair]
            # split, never dropped or doubled; capped where the guarantee's space is small
            assert sum(n for n, _ in mine) == min(examples, EXAMPLE_CAP.get(pair[1], examples))
            assert len({seed for _, seed in mine}) == len(mine)  # each shard searches its own way
            assert len(mine) == 1 or min(n for n, _ in mine) >= MIN_SHARD_EXAMPLES
    units = plan_units(pairs, 200, jobs=12)
    shards = {g: sum(1 for (_, unit_g), _, _ in units if unit_g == g) for g in GUARANTEES}
    assert shards["resolved-once"] > 1 and shards["no-orphans"] == 1  # the 1.8 s callback's examples are split
    from mpire_fault.verify.cli import _seconds

    lengths = [n * _seconds(g) for (_, g), n, _ in units]
    assert lengths == sorted(lengths, reverse=True)  # the longest start first
    assert sum(n for (_, g), n, _ in units if g == "parent-death") == EXAMPLE_CAP["parent-death"] < 200


def test_pools_that_start_a_cluster_per_grading_run_fewer_side_by_side_by_default():
    from mpire_fault.verify.cli import JOBS, default_jobs

    assert default_jobs(["mpire_fault"]) == JOBS
    assert default_jobs(["mpire_fault-dask"]) == 4
    assert default_jobs(["mpire_fault", "dask"]) == 4


def test_the_settle_bound_stretches_with_the_load_up_to_its_cap(monkeypatch):
    from mpire_fault.verify import adapter_base

    cores = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert adapter_base.settle_bound() == adapter_base.SETTLE_BOUND
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0 * cores, 0.0, 0.0))
    assert adapter_base.settle_bound() == 3.0 * adapter_base.SETTLE_BOUND
    monkeypatch.setattr(os, "getloadavg", lambda: (100.0 * cores, 0.0, 0.0))
    assert adapter_base.settle_bound() == adapter_base.SETTLE_CAP


def test_a_process_is_exiting_only_once_the_kernel_tears_it_down():
    from mpire_fault.testing.children import PF_EXITING, exiting

    assert not exiting(os.getpid())
    assert not exiting(2 ** 22 + 1)  # above pid_max's default: no such process
    assert PF_EXITING == 0x4


def test_an_early_returning_shutdown_settles_only_after_a_quiet_spell(monkeypatch):
    """A replacement forked a moment after the children were last seen is no orphan: the look must hold QUIET."""
    import time

    from mpire_fault.verify import adapter_base

    seen = iter([{1}, set(), {2}, set()])  # a worker leaves, its replacement appears, then leaves too
    last = [set()]

    def children():
        last[0] = next(seen, set())
        return last[0]

    monkeypatch.setattr(adapter_base, "live_children", children)
    adapter = object.__new__(adapter_base.Adapter)
    adapter.before = set()
    adapter.shutdown_returns_early = True
    began = time.monotonic()
    adapter.settle(began + 5.0)
    assert last[0] == set() and next(seen, "drained") == "drained"
    assert adapter_base.QUIET <= time.monotonic() - began < 2.0
    seen = iter([{1}, set(), {2}])
    adapter.shutdown_returns_early = False  # a shutdown that returned once the pool stopped: one empty look is enough
    adapter.settle(time.monotonic() + 5.0)
    assert next(seen) == {2}


def test_the_kit_kills_only_its_own_descendants():
    """A pid read a moment ago may be another process's now: the kit must not strike what it did not start."""
    import subprocess
    import sys

    from mpire_fault.testing.children import kill_own

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not kill_own(os.getppid())  # the process that started us: no descendant of ours
        assert not kill_own(2 ** 22 + 1)  # no such process
        assert kill_own(child.pid)
        assert child.wait(timeout=10) == -9
    finally:
        child.kill()
        child.wait(timeout=10)
