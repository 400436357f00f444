"""How deep a worker's queue gets: deep for tiny tasks, none for slow or unseen ones (Dispatcher.has_room)."""
from __future__ import annotations

from collections import deque
from types import SimpleNamespace

from mpire_fault.dispatch import PREFETCH_MAX, QUEUE_BUDGET, Dispatcher


def _dispatcher(durations: dict[str, float]) -> Dispatcher:
    dispatcher = Dispatcher.__new__(Dispatcher)
    dispatcher.state = SimpleNamespace(durations=durations)
    return dispatcher


def _slot(func_name: str, n: int):
    job = SimpleNamespace(func_name=func_name)
    return SimpleNamespace(ledger=deque(SimpleNamespace(job=job) for _ in range(n)))


def _depth(dispatcher: Dispatcher, func_name: str) -> int:
    slot = _slot(func_name, 0)
    while dispatcher.has_room(slot):
        slot.ledger.append(SimpleNamespace(job=SimpleNamespace(func_name=func_name)))
        assert len(slot.ledger) <= PREFETCH_MAX
    return len(slot.ledger)


def test_tiny_tasks_fill_the_queue_up_to_its_cap():
    assert _depth(_dispatcher({"tiny": 50e-6}), "tiny") == PREFETCH_MAX


def test_the_expected_wait_bounds_the_depth():
    mean = QUEUE_BUDGET / 4.5  # four tasks ahead wait 4 * mean < budget; five would not
    assert _depth(_dispatcher({"medium": mean}), "medium") == 5


def test_slow_and_unseen_functions_never_wait_behind_another_task():
    assert _depth(_dispatcher({"slow": QUEUE_BUDGET * 2}), "slow") == 1
    assert _depth(_dispatcher({}), "unseen") == 1
