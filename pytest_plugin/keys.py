"""Where the plugin's modules keep their shared state on pytest's config and items (one key each)."""
from __future__ import annotations

from typing import Any

import pytest

STATE = pytest.StashKey[Any]()  # the run's RunState (plugin.py), on the config
SPEC = pytest.StashKey[str]()  # the chaos spec a test runs under, on the item
