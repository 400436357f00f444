"""The origin case, shared by the LocalCluster and the CLI-started cluster suites."""
from __future__ import annotations

import dask_tasks as tasks
from distributed.scheduler import KilledWorker

from mpire_fault import WorkerDiedError

BEHAVIOUR = {2: "exit", 5: "raise", 7: "sigkill"}


def check_origin_case(pool, markers: str) -> None:
    """Ten tasks; one sys.exits, one raises, one SIGKILLs its worker: exactly those three fail, each task ran once."""
    results = [pool.apply_async(tasks.behave, (markers, i, BEHAVIOUR.get(i, "ok"))) for i in range(10)]
    outcomes = {}
    for i, result in enumerate(results):
        result.wait(30)
        assert result.ready(), f"task {i} never resolved"
        try:
            outcomes[i] = result.get(0)
        except BaseException as exc:  # noqa: BLE001 - the test sorts them out below
            outcomes[i] = exc
    for i in range(10):
        assert tasks.runs(markers, f"task{i}") <= 1, f"task {i} ran more than once"
    for i in (0, 1, 3, 4, 6, 8, 9):
        assert outcomes[i] == i * i
        assert results[i].successful()
        assert tasks.runs(markers, f"task{i}") == 1
    assert isinstance(outcomes[5], ValueError)
    assert "task 5 raised" in str(outcomes[5])
    assert "Traceback" in str(outcomes[5].__cause__)
    for i, exitcode in ((2, 1), (7, -9)):
        died = outcomes[i]
        assert isinstance(died, WorkerDiedError), repr(died)
        assert died.exitcode == exitcode
        assert died.worker_id in (0, 1)
        assert "tcp://127.0.0.1:" in str(died)
        assert f"apply task {i}" in str(died)
        assert isinstance(died.__cause__, KilledWorker)
        assert not results[i].successful()
    # still usable afterwards, on the replaced workers
    assert pool.apply(tasks.square, (4,)) == 16
    assert pool.map(tasks.square, range(6)) == [0, 1, 4, 9, 16, 25]
    stats = pool.statistics()
    assert stats["tasks_failed"] == 3
    assert {death["exitcode"] for death in stats["deaths"]} >= {1, -9}
    pool.stop_and_join()
