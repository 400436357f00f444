"""The ``mp_chaos`` fixture's view of one test's journal file."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any


def read_entries(path: str) -> list[Any]:
    from mpire_fault.chaos.journal import read

    return read(path)


class ChaosJournal:
    """Faults injected while the current test runs; re-read on every access."""

    def __init__(self, path: str, spec: str | None, seed: int) -> None:
        self.path = path
        self.spec = spec
        self.seed = seed

    @property
    def entries(self) -> list[Any]:
        return read_entries(self.path)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Any:
        return self.entries[index]

    def by_site(self) -> Counter:
        """How many faults struck at each site."""
        return Counter(entry.site for entry in self.entries)

    def __repr__(self) -> str:
        return f"<mp_chaos journal: {len(self)} fault(s), spec={self.spec!r}, seed={self.seed}>"
