"""After the workload, on the same pool: has it settled, are its workers back, does it still work?

The scenario process (``execute.py``) asks these once the workload is
over; every wait ends by the scenario's deadline.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .._core.wording import counted

FOLLOW_UP = 7
MAP_AGAIN = 2  # items of the map_usable_after call (0 and 1: few, so a chaos selector on a later task misses it)


def bounded(call: Callable[[], None], deadline: float) -> bool:
    """Run ``call`` in a helper thread; False if it had not returned by ``deadline``."""
    thread = threading.Thread(target=call, name="scenario-call", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    return not thread.is_alive()


def settled_statistics(pool: Any, wait: float = 2.0) -> dict[str, Any]:
    """``statistics()`` once the pool has settled (or ``wait`` passed).

    Settled: every recorded death counted as a restart, every slot live
    again (or all stopped), and nothing changed for 50 ms. The supervisor hands a dead
    worker's task its error before it counts the restart, and a worker that
    dies at start-up while the workload runs on its sibling may not have
    been noticed yet when the last result arrives.
    """
    deadline = time.monotonic() + wait
    previous = None
    while True:
        stats = pool.statistics()
        snapshot = (stats.get("restarts", 0), len(stats.get("deaths", [])), stats.get("live_workers"))
        # live 0: a map call without keep_alive stopped its workers, which settles every death first
        settled = snapshot[0] >= snapshot[1] and stats.get("live_workers") in (0, stats.get("n_jobs"))
        if (settled and snapshot == previous) or time.monotonic() > deadline:
            return stats
        previous = snapshot
        time.sleep(0.05)


def follow_up(pool: Any, square: Callable[..., Any], deadline: float, attempts: int = 5) -> dict[str, Any]:
    """More applies on the same pool until one answers right: is it still usable?

    The pool is still under the scenario's chaos, which may strike the
    follow-up too; each attempt is a new task (a new chaos decision), so a
    usable pool answers within a few attempts and a broken one never does.
    """
    errors = []
    for _ in range(attempts):
        result = pool.apply_async(square, (FOLLOW_UP,))
        result.wait(max(0.01, min(15.0, deadline - time.monotonic())))
        if not result.ready():
            return {"ok": False, "error": "no answer before the deadline"}
        try:
            value = result.get(0)
        except Exception as exc:  # noqa: BLE001 - any error means the pool was not usable after
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if value == FOLLOW_UP * FOLLOW_UP:
            return {"ok": True, "error": None, "attempts": len(errors) + 1}
        return {"ok": False, "error": f"returned {value!r}"}
    return {"ok": False, "error": f"{counted(attempts, 'attempt')} failed; last: {errors[-1]}"}


def ready_after(pool: Any, n_jobs: int, wait: float) -> float | None:
    """Seconds until ``n_jobs`` workers are alive and ready (statistics()["live_workers"]), or None."""
    started = time.monotonic()
    while True:
        if pool.statistics().get("live_workers") == n_jobs:
            return time.monotonic() - started
        if time.monotonic() - started > wait:
            return None
        time.sleep(0.01)


def map_again(pool: Any, mode: str, square: Callable[..., Any], call_kwargs: dict, deadline: float,
               attempts: int = 5) -> dict[str, Any]:
    """Another call of ``mode`` on the same pool, until one returns every result (chaos may strike it too)."""
    errors: list[str] = []
    kwargs = {k: v for k, v in call_kwargs.items() if k in ("task_timeout", "chunk_size")}
    for _ in range(attempts):
        box: dict[str, Any] = {}

        def run(box: dict[str, Any] = box) -> None:
            try:
                box["values"] = list(getattr(pool, mode)(square, range(MAP_AGAIN), **kwargs))
            except Exception as exc:  # noqa: BLE001 - any error means the pool was not usable after
                box["error"] = f"{type(exc).__name__}: {exc}"

        if not bounded(run, min(deadline, time.monotonic() + 15.0)):
            return {"ok": False, "error": "no answer before the deadline"}
        if "error" in box:
            errors.append(box["error"])
            continue
        want = [x * x for x in range(MAP_AGAIN)]
        got = box["values"] if mode in ("map", "imap") else sorted(box["values"])
        if got == want:
            return {"ok": True, "error": None, "attempts": len(errors) + 1}
        return {"ok": False, "error": f"returned {box['values']!r}, expected {want!r}"}
    return {"ok": False, "error": f"{counted(attempts, 'attempt')} failed; last: {errors[-1][:300]}"}
