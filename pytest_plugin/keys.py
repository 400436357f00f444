"""Where the plugin's modules keep their shared state on pytest's config and items (one key each)."""
from __future__ import annotations

import functools
import zlib
from typing import Any

import pytest

STATE = pytest.StashKey[Any]()  # the run's RunState (plugin.py), on the config
SPEC = pytest.StashKey[str]()  # the chaos spec a test runs under, on the item


@functools.lru_cache(maxsize=4096)
def node_key(nodeid: str) -> str:
    """A test's part of the run directory's file names (asked for several times per test)."""
    return f"{zlib.crc32(nodeid.encode()):08x}"
