"""The parent program of the kit's ``parent-death`` guarantee: start a pool, keep workers busy, wait to be killed.

    python -m mpire_fault.verify.orphan_probe MODULE:ADAPTER OPTIONS_JSON BUSY MARKER_DIR

Prints ``ready`` once ``BUSY`` long tasks run (each has left its start
marker) or, with none busy, once one quick task has answered (the workers
exist); then sleeps until the kit SIGKILLs it. A mutant named in
``MPIRE_FAULT_MUTANT`` is applied first, so ``verify --self-test`` and the
mutation score reach this process as they reach the grading one.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
from typing import Any

from .tasks import executions, work

BUSY_INDEX = 1_000_000  # task indices of the probe's own tasks, apart from the machine's


LIFETIME = 120.0  # seconds: the probe ends itself if the kit never kills it


def die_with_the_kit() -> None:
    """The kit is our parent: if it dies before it kills us, we die too (and our pool's workers with us,
    as the guarantee under test says; if they do not, LIFETIME still ends us)."""
    import signal

    from .._platform.deathsig import signal_on_parent_death

    signal_on_parent_death(signal.SIGKILL)


def main(argv: list[str]) -> int:
    die_with_the_kit()
    target, options, busy, markers = argv[0], json.loads(argv[1]), int(argv[2]), argv[3]
    mutant = os.environ.get("MPIRE_FAULT_MUTANT", "").strip()
    patch = None
    if mutant:
        from .mutants import ALL_MUTANTS

        patch = ALL_MUTANTS[mutant].patch()
        patch.__enter__()
    module, _, qualname = target.partition(":")
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    adapter = cls(**options)
    if busy == 0:
        adapter.get(adapter.submit(work, ("ok", markers, BUSY_INDEX - 1, 0.0)), 15.0)
    for i in range(busy):
        adapter.submit(work, ("ok", markers, BUSY_INDEX + i, LIFETIME))
    deadline = time.monotonic() + 15.0
    while busy and time.monotonic() < deadline:
        started = executions(markers)
        if all(started.get(BUSY_INDEX + i) for i in range(busy)):
            break
        time.sleep(0.01)
    print("ready", flush=True)
    time.sleep(LIFETIME)
    adapter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
