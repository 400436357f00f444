"""A suite written to survive worker deaths: it retries what a death cost it."""
from tasks import square

from mpire_fault import WorkerDiedError, WorkerPool


def test_sum_of_squares_survives_worker_deaths():
    # apply-style calls: only the task whose worker died fails; the pool retries it for us
    with WorkerPool(n_jobs=2, max_task_retries=10) as pool:
        results = [pool.apply_async(square, (x,)) for x in range(30)]
        assert sum(r.get(timeout=60) for r in results) == sum(x * x for x in range(30))


def test_map_falls_back_to_retried_tasks():
    # map-style calls abort as a whole on a death; redo the work as retried tasks
    with WorkerPool(n_jobs=2, max_task_retries=10) as pool:
        try:
            values = pool.map(square, range(10), chunk_size=1)
        except WorkerDiedError:
            values = [r.get(timeout=60) for r in [pool.apply_async(square, (x,)) for x in range(10)]]
        assert values == [x * x for x in range(10)]
