"""Fixtures of the pool suite: every guarantee is checked under fork and spawn."""
from __future__ import annotations

import pytest


@pytest.fixture(params=["fork", "spawn"])
def start_method(request) -> str:
    """The start methods every test of this suite runs under (forkserver: a smaller subset)."""
    return request.param


@pytest.fixture
def markers(tmp_path) -> str:
    """A directory for the marker files tasks touch when they start."""
    path = tmp_path / "markers"
    path.mkdir()
    return str(path)
