"""Running a program as PID 1 of a fresh PID namespace (``unshare``), or skipping with the reason why not.

Modules import it as ``from _namespaces import ...``: ``tests/`` is on
``sys.path`` (see ``_children.py``).
"""
from __future__ import annotations

import functools
import shutil
import subprocess

import pytest

UNSHARE = ("unshare", "--pid", "--fork", "--mount-proc")


@functools.cache
def _unshare_refusal() -> str | None:
    """Why ``unshare --pid`` cannot run here, or None when it can."""
    if shutil.which("unshare") is None:
        return "the unshare command is not installed"
    try:
        done = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare --pid failed to run: {exc!r}"
    if done.returncode != 0:
        return f"unshare --pid is not permitted here: {done.stderr.strip() or done.returncode}"
    return None


def require_unshare() -> None:
    """Skip the calling test, with the reason, where a new PID namespace cannot be made."""
    reason = _unshare_refusal()
    if reason is not None:
        pytest.skip(reason)
