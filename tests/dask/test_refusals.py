"""What the Dask backend cannot honour is refused by name, before any cluster starts (issue 13)."""
from __future__ import annotations

import pytest

pytest.importorskip("distributed")

from mpire_fault import WorkerPool  # noqa: E402


@pytest.mark.parametrize("option", [{"order_tasks": True}, {"enable_insights": True}, {"cpu_ids": [0]},
                                    {"event_log": "events.jsonl"}])
def test_constructor_options_the_cluster_cannot_honour(option):
    with pytest.raises(ValueError, match=next(iter(option))):
        WorkerPool(2, backend="dask", **option)


def test_unknown_backend_and_a_stray_address():
    with pytest.raises(ValueError, match="backend"):
        WorkerPool(2, backend="ray")
    with pytest.raises(ValueError, match="address"):
        WorkerPool(2, address="tcp://127.0.0.1:8786")


@pytest.mark.parametrize("option, value", [("n_jobs", 0), ("n_jobs", -2), ("n_jobs", True), ("n_jobs", 1.5),
                                           ("max_worker_memory", 0)])
def test_numbers_out_of_range_are_refused_by_name(option, value):
    with pytest.raises(ValueError, match=f"{option} must be a positive integer or None, got {value!r}"):
        WorkerPool(**{"n_jobs": 2, option: value}, backend="dask")


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), True, "5"])
def test_a_task_timeout_out_of_range_is_refused_before_the_cluster_starts(value):
    pool = WorkerPool(2, backend="dask")
    with pytest.raises(ValueError, match="task_timeout must be a positive number of seconds or None"):
        pool.apply_async(abs, (-1,), task_timeout=value)
    assert pool._client is None
