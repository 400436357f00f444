"""Several deaths in one map call (issue 14): each death is recorded, and the error names the first.

Two workers that kill themselves at nearly the same moment race the abort:
a worker already dead when the abort comes is recorded as a death of its own
(not hidden as one we stopped), and deaths seen together are settled in the
order their items began.
"""
from __future__ import annotations

import pytest

from mpire_fault import WorkerDiedError, WorkerPool

from . import tasks

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("attempt", range(5))
def test_two_kills_in_one_map(attempt):
    spec = "task.start[task=0]=1*sigkill->off;task.start[task=1]=1*sigkill->off"
    with WorkerPool(2, chaos=spec, chaos_seed=attempt) as pool:
        with pytest.raises(WorkerDiedError) as info:
            pool.map(tasks.square, range(8), chunk_size=1)
        journal = sorted(pool.chaos_journal(), key=lambda entry: entry.time)
        deaths = pool.statistics()["deaths"]
        assert pool.apply(tasks.square, (3,)) == 9  # the pool goes on
    struck = [entry.task_index for entry in journal]
    recorded = [int(d["task"].split()[2]) for d in deaths if d["task"]]
    assert recorded and set(recorded) <= set(struck)  # no phantom death, none invented
    named = int(info.value.task.split()[2])
    assert named == recorded[0]  # the error is the first death settled
    assert named in struck
