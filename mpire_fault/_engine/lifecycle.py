"""Every live supervisor of this process, and how each is stopped: by ``terminate()`` or at interpreter exit."""
from __future__ import annotations

import atexit
import weakref

from .supervisor import Supervisor
from .wire.protocol import KillReason

live_supervisors: weakref.WeakSet[Supervisor] = weakref.WeakSet()


def shutdown_all() -> None:
    # Registered after multiprocessing's own exit hook, so it runs first:
    # workers must be gone before multiprocessing tries to join them.
    for supervisor in list(live_supervisors):
        stop_supervisor(supervisor)


def stop_supervisor(supervisor: Supervisor, timeout: float = 10.0) -> None:
    if supervisor.finished.is_set():
        return
    supervisor.terminate()
    if supervisor.is_alive():
        supervisor.join(timeout)
    if supervisor.is_alive():  # the loop itself is wedged: kill the processes from here
        supervisor.kill_all(KillReason.TERMINATE)


atexit.register(shutdown_all)
