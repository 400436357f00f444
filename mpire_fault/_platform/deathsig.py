"""Linux's parent-death signal: a process asks to be signalled when the process that started it dies.

Used by pool workers (SIGKILL), by the kit's gradings (SIGTERM, which ends
their process group) and by its orphan probe. Where there is no ``prctl``
(not Linux), callers fall back on their pipes and timeouts.
"""
from __future__ import annotations

import ctypes
import functools
from typing import Any

PR_SET_PDEATHSIG = 1


@functools.cache
def libc() -> Any:
    """The C library, loaded once (a pool loads it in its own process, so forked workers inherit it)."""
    return ctypes.CDLL(None, use_errno=True)


def signal_on_parent_death(signum: int) -> bool:
    """Ask Linux to send us ``signum`` when our parent dies (even by SIGKILL); False where it cannot."""
    try:
        libc().prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):
        return False
    return True
