"""statistics() counts every death the chaos journal records (issue 25, item 4).

Under chaos a map call aborts at each death and the pool kills the workers
still running its items; a fault journaled in one of those workers an
instant before the pool's own SIGKILL landed was counted as our kill, not as
a death, so the journal listed more killed workers than statistics().
"""
from __future__ import annotations

import pytest

from mpire_fault import WorkerDiedError, WorkerPool
from mpire_fault.chaos.vocabulary import KILLS_PROCESS

from . import tasks


@pytest.mark.timeout(120)
def test_deaths_agree_with_the_journal_under_chaos_map_aborts():
    spec = "task.start=3%sigkill;result.pickle=1%exit(3);idle=1%sigkill"
    with WorkerPool(n_jobs=4, chaos=spec, chaos_seed=3, keep_alive=True) as pool:
        for _ in range(25):
            try:
                pool.map(tasks.tiny_sleep, range(200), chunk_size=5)
            except WorkerDiedError:
                pass
        pool.stop_and_join(keep_alive=True)  # every death settled
        fatal = [entry for entry in pool.chaos_journal() if entry.action.split("(")[0] in KILLS_PROCESS]
        deaths = pool.statistics().deaths
        assert len(fatal) > 10  # the run did strike
        assert sorted(death.pid for death in deaths) == sorted(entry.pid for entry in fatal)
