"""How ``mpire-fault verify`` plans its gradings: shards, seeds and order (no pool is started)."""
from __future__ import annotations

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
