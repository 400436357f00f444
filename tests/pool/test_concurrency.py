"""Several threads and several pools at once: deaths stay visible, nothing leaks, nothing deadlocks."""
from __future__ import annotations

import threading

import pytest

from mpire_fault import WorkerDiedError, WorkerPool

from . import tasks
from .observe import runs


def test_apply_from_many_threads_with_deaths(start_method, markers):
    with WorkerPool(2, start_method=start_method) as pool:
        out: dict = {}

        def submit(k):
            for j in range(10):
                i = k * 10 + j
                out[i] = pool.apply_async(tasks.work, (markers, i, "sigkill" if j == 5 else None))

        threads = [threading.Thread(target=submit, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for i, result in sorted(out.items()):
            if i % 10 == 5:
                with pytest.raises(WorkerDiedError):
                    result.get(timeout=30)
            else:
                assert result.get(timeout=30) == i
        assert runs(markers) == {i: 1 for i in range(40)}


def test_pools_in_threads_each_see_their_deaths(start_method, tmp_path):
    """Regression: a fork by one pool copied another pool's fresh worker pipe ends, hiding that worker's death.

    Every pool stays open until all have checked their results, so a death
    hidden by a worker of another pool cannot be unblocked by that pool
    closing first.
    """
    n_pools, rounds = 4, (6 if start_method == "fork" else 1)
    failures: list = []

    def run(k: int, directory: str, all_checked: threading.Barrier) -> None:
        try:
            with WorkerPool(2, start_method=start_method) as pool:
                try:
                    results = [pool.apply_async(tasks.work, (directory, j, "sigkill" if j == 3 else None))
                               for j in range(6)]
                    for j, result in enumerate(results):
                        if j == 3:
                            with pytest.raises(WorkerDiedError):
                                result.get(timeout=10)
                        else:
                            assert result.get(timeout=10) == j
                finally:
                    all_checked.wait(30)
        except BaseException as exc:  # noqa: BLE001 - reported from the main thread
            failures.append((k, exc))

    for round_ in range(rounds):
        all_checked = threading.Barrier(n_pools)
        threads = []
        for k in range(n_pools):
            directory = tmp_path / f"r{round_}-p{k}"
            directory.mkdir()
            threads.append(threading.Thread(target=run, args=(k, str(directory), all_checked)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(t.is_alive() for t in threads), "a pool hung"
        assert not failures, f"round {round_}: {failures}"


def test_pool_inside_a_worker(start_method):
    """A task may run its own pool (needs non-daemon workers); the start lock must not deadlock it."""
    with WorkerPool(2, start_method=start_method, daemon=False) as pool:
        assert pool.map(tasks.nested_sum_of_squares, [3, 4, 5], chunk_size=1) == [5, 14, 30]
