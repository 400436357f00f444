"""The nanny side of the ledger: ``ExitReporter`` tells it how each worker process ended.

Only a nanny sees its worker process end, so the exit codes in the ledger's
errors come from here (the scheduler often removes a dead worker before the
nanny has reported; see ``ledger``), with the keys the worker was running
when it ended (its last words, see ``witness``). The reporter also revives a nanny's
worker that died while it was still starting.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from distributed.diagnostics.plugin import NannyPlugin

from .witness import last_words

EXIT_REPORTER = "mpire-fault-exit-reporter"
_REVIVE_AFTER = 2.0  # seconds a nanny may be without a live worker process before the reporter restarts one
_REVIVE_EVERY = 0.25


class ExitReporter(NannyPlugin):
    """Nanny plugin: tells the ledger the exit code of each worker process that ends, and revives lost workers.

    A nanny restarts a worker that dies, but not one that dies while it is still
    starting it (a task sent at once to the new worker kills it before the nanny
    has read its start-up message: the nanny then logs "Worker failed to connect"
    and stays without a worker for good). Deaths in quick succession, which is
    what chaos and the kit do, then shrink the cluster until every call hangs.
    So the reporter also watches its nanny: without a live worker process for
    ``_REVIVE_AFTER`` seconds while the nanny is running, it starts one.
    """

    name = EXIT_REPORTER
    idempotent = True

    _watch: asyncio.Task[None] | None = None  # the revival loop on the nanny's event loop

    def setup(self, nanny: Any) -> None:
        self._reporting(nanny)
        try:
            self._watch = asyncio.get_running_loop().create_task(self._revive(nanny))
        except RuntimeError:  # not on the nanny's loop (cannot happen through register_plugin): no watch
            self._watch = None

    def teardown(self, nanny: Any) -> None:
        watch = getattr(self, "_watch", None)
        if watch is not None:
            watch.cancel()

    async def _revive(self, nanny: Any) -> None:
        from distributed.core import Status

        dead_since: float | None = None
        while nanny.status not in (Status.closing, Status.closed, Status.closing_gracefully, Status.failed):
            await asyncio.sleep(_REVIVE_EVERY)
            process = getattr(nanny, "process", None)
            if nanny.status != Status.running or (process is not None and process.is_alive()):
                dead_since = None
                continue
            now = time.monotonic()
            dead_since = dead_since or now
            if now - dead_since < _REVIVE_AFTER:
                continue
            dead_since = None
            try:
                await nanny.instantiate()
            except Exception:  # noqa: BLE001 - the next round tries again
                pass

    def _reporting(self, nanny: Any) -> None:
        original = getattr(nanny, "_on_worker_exit_sync", None)
        if original is None or getattr(original, "_mpire_fault", False):
            return  # a distributed without this hook: exit codes stay unknown

        def report(exitcode: int | None) -> None:
            # Read at once: the next worker of this nanny will write the same file. Its address is the dead
            # worker's own; the nanny's worker_address is still its predecessor's when the worker died before
            # the nanny had heard from it (then the ledger tells which worker it was, by the nanny's address).
            words = last_words(nanny.address)
            address = (words[2] if words else None) or getattr(nanny, "worker_address", None)

            async def send() -> None:
                try:
                    await nanny.scheduler.mpire_fault_exit(address=address, exitcode=exitcode,
                                                           pid=words[0] if words else None,
                                                           running=words[1] if words else None,
                                                           nanny=nanny.address, certain=bool(words and words[2]))
                except Exception:  # noqa: BLE001 - the scheduler is gone (the cluster is closing): nobody to tell
                    pass

            try:
                nanny._ongoing_background_tasks.call_soon(send)
            except Exception:  # noqa: BLE001 - best effort: the exit code is a detail of the error
                pass
            original(exitcode)

        report._mpire_fault = True  # type: ignore[attr-defined]
        nanny._on_worker_exit_sync = report
        process = getattr(nanny, "process", None)
        if process is not None and hasattr(process, "on_exit"):
            process.on_exit = report
