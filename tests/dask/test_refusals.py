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
