"""``mpire.async_result``'s documented path: ``from mpire_fault.async_result import AsyncResult``.

The class lives in ``results.py``; this is the same class, not a copy.
"""
from ._core.results import AsyncResult

__all__ = ["AsyncResult"]
