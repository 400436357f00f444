"""worker_init / worker_exit hooks for the pool suite: they count their calls with marker files.

Importable by spawn and forkserver workers, as ``tasks``; the markers are
``tasks.touch``'s and the deaths ``tasks._die``'s.
"""
from __future__ import annotations

import os

from .tasks import BoundaryError, _die, touch


def init_marker(directory: str, action: str | None = None):
    """Return a worker_init that touches a marker and then does ``action``."""
    return _InitHook(directory, action)


class _InitHook:
    def __init__(self, directory: str, action: str | None) -> None:
        self.directory, self.action = directory, action

    def __call__(self, *_args):
        touch(self.directory, 0, ".init")
        if self.action is None:
            return
        if self.action == "raise":
            raise BoundaryError("worker_init failed on purpose")
        if self.action == "timebomb":  # init succeeds, the worker dies idle a moment later
            import threading

            threading.Timer(0.02, os._exit, (1,)).start()
            return
        if self.action == "flaky":  # the first worker_init in the whole pool fails, later ones work
            try:
                fd = os.open(os.path.join(self.directory, "flaky-flag"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.close(fd)
            raise BoundaryError("worker_init fails once")
        _die(self.action)


def exit_hook(action: str):
    return _ExitHook(action)


class _ExitHook:
    def __init__(self, action: str) -> None:
        self.action = action

    def __call__(self, *_args):
        _die(self.action)
