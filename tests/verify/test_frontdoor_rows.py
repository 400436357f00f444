"""The kit grades the front doors: each has a row, declares what its API cannot express, and takes chaos=.

The full tables (every guarantee, 10 examples) are in the report of the
commit that added these rows; here one guarantee per front door, on the path
that door adds (the executor's futures, Pool's map naming the item, joblib's
Parallel call aborting), with few examples.
"""
from __future__ import annotations

import shutil
import tempfile

import pytest

from mpire_fault.verify import ADAPTERS, available, check
from mpire_fault.verify.tasks import work

FRONT_DOORS = ("mpire_fault.Pool", "mpire_fault.ProcessPoolExecutor", "mpire_fault.joblib")
CHAOS = "task.start[task=0]=1*sigkill"  # the first task's worker dies as it starts, once


def _installed(pool: str):
    return pytest.param(pool, marks=pytest.mark.skipif(pool not in available(), reason=f"{pool} not installed"))


@pytest.mark.parametrize(("pool", "guarantee", "examples"), [
    ("mpire_fault.Pool", "right-item", 3),
    ("mpire_fault.ProcessPoolExecutor", "apply-isolation", 3),
    pytest.param("mpire_fault.joblib", "map-abort", 2,
                 marks=pytest.mark.skipif("mpire_fault.joblib" not in available(), reason="joblib not installed")),
])
def test_each_front_door_keeps_a_guarantee_on_its_own_path(pool, guarantee, examples):
    verdict = check(pool, guarantee, examples=examples)
    assert verdict.status == "pass", (verdict.detail, verdict.counterexample)


@pytest.mark.parametrize(("pool", "unsupported"), [
    ("mpire_fault.Pool", {"timeout-fires"}),
    ("mpire_fault.ProcessPoolExecutor", {"timeout-fires", "right-item"}),
    ("mpire_fault.joblib", {"timeout-fires", "right-item"}),
])
def test_what_an_api_cannot_express_is_unsupported_not_passed(pool, unsupported):
    for guarantee in unsupported:  # graded without starting a pool
        assert check(pool, guarantee, examples=1).status == "unsupported", guarantee


@pytest.mark.parametrize("pool", [_installed(pool) for pool in FRONT_DOORS])
def test_chaos_reaches_the_front_door_through_create(pool):
    base = ADAPTERS[pool]
    chaotic = type(f"Chaotic{base.__name__}", (base,),
                   {"start": lambda self: self.create(chaos=CHAOS, chaos_seed=1)})
    adapter = chaotic()
    markers = tempfile.mkdtemp(prefix="mpire-fault-frontdoor-")
    try:
        first = adapter.submit(work, ("ok", markers, 0, 0.0))
        with pytest.raises(Exception) as died:
            adapter.get(first, 10)
        assert type(died.value).__name__ == base.death_error, repr(died.value)
        assert adapter.get(adapter.submit(work, ("ok", markers, 1, 0.0)), 10) == 2  # the worker was replaced
        assert len(adapter.pool.chaos_journal()) == 1
    finally:
        assert adapter.close() == []
        shutil.rmtree(markers, ignore_errors=True)
