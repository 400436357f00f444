"""The verification kit: Hypothesis state machines that grade any pool against docs/guarantees.md §4.

    from mpire_fault.verify import PoolMachine, machine_for, ADAPTERS
    TestOurPool = machine_for(ADAPTERS["mpire_fault"]).TestCase    # in a pytest file
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .adapters import ADAPTERS, Adapter, Hang, available
    from .conformance import Verdict, check, grade, markdown, table
    from .machines import GUARANTEES, REQUIRES, PoolHang, PoolMachine, machine_for

# Loaded on first use: a worker that unpickles the kit's tasks (mpire_fault.verify.tasks) imports this package
# first, and Hypothesis with it would cost each new Dask or spawned worker 0.1 s of CPU at its first task.
_HOMES = {"ADAPTERS": "adapters", "Adapter": "adapters", "Hang": "adapters", "available": "adapters",
          "Verdict": "conformance", "check": "conformance", "grade": "conformance", "markdown": "conformance",
          "table": "conformance", "GUARANTEES": "machines", "REQUIRES": "machines", "PoolHang": "machines",
          "PoolMachine": "machines", "machine_for": "machines"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})

__all__ = ["ADAPTERS", "GUARANTEES", "REQUIRES", "Adapter", "Hang", "PoolHang", "PoolMachine", "Verdict", "available",
           "check", "grade", "machine_for", "markdown", "table"]
