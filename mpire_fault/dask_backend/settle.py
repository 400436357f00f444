"""Fetching the answers of finished apply tasks in batches.

Dask calls a future's done callbacks in one thread shared by every future
of the process; fetching each answer there (``Future.result``) costs a
round trip through the scheduler per task, one after the other, which took
as long as running the task. The gatherer fetches every answer that
finished meanwhile with one ``gather``, in a thread of its own.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mpire_fault.dask")

GATHER_BOUND = 30.0  # seconds for one batch; after that each task is settled on its own (and may say why)
_BATCH = 1000
_IDLE = 2.0


class Gatherer:
    """Settles finished futures, ``settle(future, *args, answer=...)`` each, their answers gathered at once.

    Its thread runs while there is work and ends after ``_IDLE`` seconds without any (or at ``stop``).
    """

    def __init__(self, settle: Callable[..., None]) -> None:
        self._settle = settle
        self._queue: queue.SimpleQueue[tuple[Any, tuple] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    def put(self, future: Any, args: tuple) -> None:
        with self._lock:
            self._queue.put((future, args))
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="mpire-fault-dask-gather", daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            if self._running:
                self._queue.put(None)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=_IDLE)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._running = False
                        return
                continue
            batch = []
            while item is not None:
                batch.append(item)
                if len(batch) >= _BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._settle_batch(batch)
            if item is None:
                with self._lock:
                    self._running = False
                return

    def _settle_batch(self, batch: list[tuple[Any, tuple]]) -> None:
        futures = [future for future, _ in batch]
        client = futures[0].client
        try:
            answers = client.sync(client._gather, futures, callback_timeout=GATHER_BOUND)
        except BaseException:  # noqa: BLE001 - a lost answer, a closed client: each settles on its own and says so
            log.debug("gathering %d answers failed; settling them one by one", len(futures), exc_info=True)
            answers = [None] * len(futures)
        for (future, args), answer in zip(batch, answers, strict=True):
            try:
                self._settle(future, *args, answer=answer)
            except BaseException:  # noqa: BLE001 - one task's settlement must not stop the others'
                log.exception("settling %s failed", future.key)
