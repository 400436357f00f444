"""oom(SIZE) never holds more than min(SIZE x 4, the pool's max_worker_memory, half the available memory)."""
from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from collections import namedtuple

import psutil
import pytest

from mpire_fault.chaos import Chaos, resolve
from mpire_fault.chaos.actions import oom_cap

MiB = 2**20
_Memory = namedtuple("_Memory", "total available")


def test_the_cap_is_the_smallest_of_the_three_bounds(monkeypatch):
    monkeypatch.setattr(psutil, "virtual_memory", lambda: _Memory(64 * 1024 * MiB, 10_000 * MiB))
    assert oom_cap(100 * MiB) == 400 * MiB
    assert oom_cap(100 * MiB, memory_limit=150 * MiB) == 150 * MiB
    assert oom_cap(100 * MiB, memory_limit=50 * MiB) == 50 * MiB
    assert oom_cap(4000 * MiB) == 5000 * MiB  # half of what is available, not 16000 MiB
    monkeypatch.setattr(psutil, "virtual_memory", lambda: _Memory(1024 * MiB, 60 * MiB))
    assert oom_cap(100 * MiB, memory_limit=500 * MiB) == 30 * MiB


def test_the_real_cap_never_exceeds_half_of_the_available_memory():
    available = psutil.virtual_memory().available
    assert oom_cap(available) <= available // 2 + 16 * MiB


def test_the_memory_limit_travels_with_the_chaos_object():
    chaos = Chaos("task.start=oom(64MiB)", seed=1, memory_limit=80 * MiB)
    try:
        assert pickle.loads(pickle.dumps(chaos)).memory_limit == 80 * MiB
        assert resolve(chaos, memory_limit=70 * MiB) is chaos and chaos.memory_limit == 70 * MiB
        assert resolve(chaos, memory_limit=90 * MiB).memory_limit == 70 * MiB
    finally:
        chaos.close()
    made = resolve("task.start=oom(64MiB)", 1, memory_limit=100 * MiB)
    try:
        assert made.memory_limit == 100 * MiB
    finally:
        made.close()
    with pytest.raises(ValueError, match="memory_limit"):
        Chaos("idle=off", memory_limit=0)


_CHILD = textwrap.dedent("""
    import resource, sys, tracemalloc
    import psutil
    from mpire_fault.chaos import Chaos
    limit = int(sys.argv[1]) or None
    chaos = Chaos("task.start=oom(64MiB)", seed=0, memory_limit=limit)
    before = psutil.Process().memory_info().rss  # now, not the peak so far (imports may have peaked higher)
    tracemalloc.start()
    try:
        chaos.visit("task.start", worker_id=0, task_index=0)
    except MemoryError as error:
        held = tracemalloc.get_traced_memory()[1]
        print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, held, error)
    finally:
        chaos.close()
""")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("limit, most", [(80 * MiB, 80 * MiB), (0, 4 * 64 * MiB)])
def test_oom_stops_growing_at_the_pools_memory_limit(limit, most):
    done = subprocess.run([sys.executable, "-c", _CHILD, str(limit)], capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    before, peak, held, message = done.stdout.split(" ", 3)
    assert f"cap of {most} bytes" in message
    # What the fault allocated, counted by tracemalloc: exact. The RSS only
    # shows the pages were really written; it is no upper bound, as the kernel
    # may back them with huge pages (seen: 302 MiB of RSS for an 80 MiB cap).
    assert most <= int(held) <= most + 1 * MiB, f"held {int(held) / MiB:.0f} MiB"
    assert int(peak) - int(before) > 60 * MiB, f"RSS grew by {(int(peak) - int(before)) / MiB:.0f} MiB"
