"""A suite that assumes every task succeeds: chaos shows it is not ready for a worker dying."""
from tasks import square

from mpire_fault import WorkerPool


def test_map_assumes_no_worker_ever_dies():
    with WorkerPool(n_jobs=2) as pool:
        assert pool.map(square, range(40), chunk_size=1) == [x * x for x in range(40)]
