"""The session plugin: a call's ``worker_init``/``worker_exit`` in every Dask worker process that runs its tasks."""
from __future__ import annotations

import os
import sys
import threading
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from .._core.remote import dump_exception
from ..chaos.vocabulary import EXIT, INIT
from ..errors import WorkerInitError
from .chaos import DaskChaos, for_worker
from .pickler import Pickler


def _die(exc: SystemExit) -> None:
    """``sys.exit`` in a task ends the worker process, as it does in the local pool."""
    code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - flushing is best effort before _exit
            pass
    os._exit(code)


class Session(WorkerPlugin):
    """The worker_init/worker_exit of one call (or of one pair of apply hooks), per worker process.

    Registered with ``Client.register_plugin`` so every worker process,
    including one the nanny starts after a death, gets a fresh copy: the
    hooks then run again in the new process, as in the local pool.
    ``worker_init`` runs in the task thread before the first task of the
    session on this worker (so it sees the shared objects and the worker's
    slot); ``finish`` runs ``worker_exit`` and is called through
    ``Client.run`` so its return value reaches the pool.
    """

    idempotent = False

    def __init__(self, name: str, hooks: bytes, use_dill: bool, chaos: DaskChaos | None = None) -> None:
        self.name = name
        self.hooks = hooks
        self.use_dill = use_dill
        self.chaos = chaos if chaos is not None and chaos.sites() & {INIT, EXIT} else None

    def setup(self, worker: Any) -> None:
        self._chaos = for_worker(self.chaos, worker)
        self._worker_id: int | None = None
        self._lock = threading.Lock()
        self._init, self._exit = Pickler(self.use_dill).loads(self.hooks)
        self._started = False
        self._preamble: tuple = ()
        self._error: bytes | None = None
        self._exited = False

    def reset(self) -> None:
        """Start afresh, as the session does in a new worker process (after ``worker_init`` failed)."""
        with self._lock:
            self._started, self._error, self._preamble, self._exited = False, None, (), False

    def failed(self) -> bool:
        """worker_init (or chaos at ``init``) raised in this process."""
        return self._error is not None

    def error(self) -> bytes | None:
        """What it raised, pickled with its traceback."""
        return self._error

    def needs_init(self) -> bool:
        return not self._started and (self._init is not None or self._chaos is not None)

    def ensure_started(self, preamble: tuple, worker_id: int | None = None) -> None:
        """Chaos's ``init`` site, then ``worker_init``: once per worker process and session."""
        with self._lock:
            if self._started:
                return
            self._started = True
            self._preamble = preamble
            self._worker_id = worker_id
            try:
                if self._chaos is not None:
                    self._chaos.visit(INIT, worker_id=worker_id)
                if self._init is not None:
                    self._init(*preamble)
            except Exception as exc:  # noqa: BLE001 - whatever it raised is handed on
                self._error = dump_exception(exc, Pickler(self.use_dill))

    def check(self) -> None:
        if self._error is not None:
            original, tb = Pickler(self.use_dill).loads(self._error)
            error = WorkerInitError(f"worker_init raised {type(original).__name__}: {original}")
            # __cause__ does not survive pickling; the pool restores it
            error.__dict__["mpire_fault_cause"] = original
            raise error

    def finish(self) -> tuple[str, Any] | None:
        """Chaos's ``exit`` site, then worker_exit: once, if this worker ran any task of the session."""
        with self._lock:
            if not self._started or self._exited or self._error is not None:
                return None
            self._exited = True
            pickler = Pickler(self.use_dill)
            try:
                if self._chaos is not None:
                    self._chaos.visit(EXIT, worker_id=self._worker_id)
                if self._exit is None:
                    return None
                return "ok", pickler.dumps(self._exit(*self._preamble))
            except SystemExit as exc:
                _die(exc)
            except Exception as exc:  # noqa: BLE001 - whatever it raised is handed on
                return "err", dump_exception(exc, pickler)
        return None


async def finish_session(name: str, dask_worker: Any = None) -> tuple[str, Any] | None:
    """``Client.run`` target: worker_exit of session ``name`` on this worker, off the event loop."""
    import asyncio

    plugin = dask_worker.plugins.get(name)
    if plugin is None:
        return None
    return await asyncio.get_running_loop().run_in_executor(None, plugin.finish)
