"""The journal: one JSON line per injected fault, written before the fault strikes.

Lines are appended with a single ``write`` to a file opened with
``O_APPEND``, so lines from many worker processes never interleave, and a
worker that SIGKILLs itself has already left its line behind.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One injected fault."""

    time: float
    site: str
    action: str
    worker_id: int | None
    pid: int
    task_index: int | None
    attempt: int
    seed: int
    rule: str
    # Which kind of pool was struck ("multiprocessing", "loky", ...); None for our own pools,
    # whose faults the journal has always carried without it.
    pool: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalEntry:
        # A line written before a field existed has no value for it: the field's default then.
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    def key(self) -> tuple:
        """What must be equal between two runs with the same seed (not time or pid)."""
        return (self.site, self.action, self.worker_id, self.task_index, self.attempt, self.seed, self.rule)


def append(path: str, entry: JournalEntry) -> None:
    line = (json.dumps(entry.to_dict(), sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read(path: str) -> list[JournalEntry]:
    """Entries in the file, in the order written; a missing file is an empty journal."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.readlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        line = line.strip()
        if line:
            entries.append(JournalEntry.from_dict(json.loads(line)))
    return entries


def write_jsonl(path: str, entries: Iterable[JournalEntry]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry.to_dict(), sort_keys=True) + "\n")
