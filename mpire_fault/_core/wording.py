"""Counted nouns in what we print: "1 fault", "2 faults", never "1 faults" or "fault(s)"."""
from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun`` as they read together; ``plural`` when adding an "s" is wrong."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
