"""Running a program as PID 1 of a fresh PID namespace (``unshare``), or skipping with the reason why not.

Modules import it as ``from _namespaces import ...``: ``tests/`` is on
``sys.path`` (see ``_children.py``).
"""
from __future__ import annotations

import contextlib
import functools
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

# --kill-child: the namespace's PID 1 gets SIGKILL if unshare itself dies, so nothing outlives a test
UNSHARE = ("unshare", "--pid", "--fork", "--kill-child", "--mount-proc")


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


@contextlib.contextmanager
def in_new_pid_namespace(code: str, env: dict | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Run Python ``code`` as PID 1 of a new PID namespace and yield the first line it prints.

    The program should then wait for its stdin to close: leaving the block
    closes it and waits (bounded) for the program to end.
    """
    require_unshare()
    proc = subprocess.Popen([*UNSHARE, sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        if not line:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"the namespaced program printed nothing within {timeout}s; stderr:\n{err}")
        yield line.strip()
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()
