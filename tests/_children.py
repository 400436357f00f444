"""The suite's view of leftover child processes (one copy: ``mpire_fault.children``).

Test modules and conftests import from here (``from _children import children``):
``tests/`` is on ``sys.path`` because it has no ``__init__.py``.
"""
from __future__ import annotations

from mpire_fault.children import HELPERS, is_helper, live_children

__all__ = ["HELPERS", "children", "is_helper"]


def children() -> set[int]:
    """Pids of this process's live descendants, less multiprocessing's long-lived helpers."""
    return live_children()
