"""Shared helpers of the timeline tests: fixture logs and synthetic runs written as JSON lines."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def write_jsonl(path: os.PathLike[str] | str, events: list[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event) + "\n")
    return Path(path)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
