"""Suite-wide guards: no test may leave a child process behind."""
from __future__ import annotations

import pytest
from _children import children, kill, wait_for_no_children


@pytest.fixture(autouse=True)
def no_orphans():
    """Fail a test that leaves a child process running (checked with psutil)."""
    before = children()
    yield
    left = wait_for_no_children(before, 5.0)
    assert not left, f"the test left child processes behind: {kill(left)}"
