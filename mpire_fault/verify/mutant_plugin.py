"""Run any pytest suite against one mutant of the pool: the suite's own mutation score.

    MPIRE_FAULT_MUTANT=wrong-item pytest -p mpire_fault.verify.mutant_plugin tests/pool

The mutant's patch is applied in the pytest process for the whole session;
patches of the supervisor and the results reach every pool the suite makes,
and fork workers inherit the rest. ``python -m mpire_fault.verify.score``
runs a suite once per mutant and prints which ones it caught.
"""
from __future__ import annotations

import contextlib
import os

import pytest

_active: contextlib.AbstractContextManager | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _active
    name = os.environ.get("MPIRE_FAULT_MUTANT", "").strip()
    if not name:
        return
    from .mutants import ALL_MUTANTS as MUTANTS

    if name not in MUTANTS:
        raise pytest.UsageError(f"MPIRE_FAULT_MUTANT={name!r} is not a mutant; known: {', '.join(MUTANTS)}")
    _active = MUTANTS[name].patch()
    _active.__enter__()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _active
    if _active is not None:
        _active.__exit__(None, None, None)
        _active = None
