"""Sizes of memory as users write them: ``300MiB``, ``1.5 GB``, ``4096``.

One rule for the chaos spec (``oom(300MiB)``) and for scenario files
(``max_worker_memory = "2GiB"``): ASCII digits with an optional fraction, an
optional space, and an optional unit of B, KB, MB, GB (powers of 1000) or
KiB, MiB, GiB (powers of 1024) in any case. The size must be more than zero
bytes.
"""
from __future__ import annotations

import re
from decimal import Decimal

UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
# The same rule as a JSON Schema pattern (which has no flag for case): scenarios/schema.json carries it.
PATTERN = r"^([0-9]+(\.[0-9]+)?)\s*([Bb]|[KkMmGg][Ii]?[Bb])?$"
HELP = "a number with an optional unit: B, KB, MB, GB, KiB, MiB or GiB (any case)"
_MAX_DIGITS = 30  # far more bytes than any machine has: refused before Decimal and int() see them
_SIZE = re.compile(PATTERN, re.ASCII)


def parse_size(value: int | str) -> int:
    """``"300MiB"`` -> 314572800; an int is already a number of bytes. ValueError names what was wrong."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"bad size {value!r}: expected {HELP}, or an integer number of bytes")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value.strip())
        if not match:
            raise ValueError(f"bad size {_short(value)!r}: expected {HELP}")
        if len(match.group(1).split(".")[0].lstrip("0")) > _MAX_DIGITS:
            raise ValueError(f"bad size {_short(value)!r}: far more bytes than any machine has")
        size = int(Decimal(match.group(1)) * UNITS[(match.group(3) or "").lower()])
    if size <= 0:
        raise ValueError(f"bad size {_short(str(value))!r}: it must be more than zero bytes")
    return size


def _short(text: str, keep: int = 40) -> str:
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]} ({len(text)} characters)"
