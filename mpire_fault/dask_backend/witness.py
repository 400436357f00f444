"""A worker's last words: the keys it is running, in a small file its nanny reads after the worker ends.

A task tells the ledger that it started without waiting for an answer (a
message on the worker's batched stream, which Dask sends anyway). Such a
message can be lost with the worker: the worker may die before the stream
sends it, or the scheduler may remove the worker (on its nanny's word)
before it reads what the worker sent last. So before it runs anything of
the task, the worker also writes the task's key here, with one ``pwrite``
(a few microseconds, and it survives the process being killed). The nanny
outlives its worker: ``ExitReporter`` reads the file when the worker ends
and reports the keys with the exit code, and the ledger, asked to rerun a
task whose start it never heard of, waits for that report before it
decides (see ``Ledger.claim``).

The file is named after the worker's nanny, not the worker: a nanny that
restarts its worker learns the new worker's address only once the worker
has told it, and a worker that dies before then (a task sent at once to a
fresh worker) would otherwise be reported under its predecessor's address,
with the predecessor's last words. The header record holds the pid and the
worker's own address, so the nanny reports the worker that actually died.

One record of ``RECORD`` bytes per task thread (after that header): the
running key and a newline, or a lone newline when idle.
"""
from __future__ import annotations

import itertools
import os
import re
import tempfile
import threading

RECORD = 256
MAX_THREADS = 256  # task threads per worker process with a record; more run through the ledger's round trip


def path_for(nanny: str) -> str:
    """The file of the worker that the nanny at ``nanny`` runs now (the same path on both: one machine)."""
    name = re.sub(r"[^A-Za-z0-9.]+", "-", nanny).strip("-")
    return os.path.join(tempfile.gettempdir(), f"mpire-fault-running-{name}")


class Witness:
    """The worker side: records the key each task thread runs."""

    def __init__(self, nanny: str, address: str) -> None:
        self.path = path_for(nanny)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        header = f"{os.getpid()} {address}\n".encode()
        if len(header) > RECORD:
            raise OSError(f"a worker address of {len(address)} characters does not fit the witness header")
        os.pwrite(self._fd, header, 0)
        self._local = threading.local()
        self._slots = itertools.count(1)

    def _offset(self) -> int | None:
        slot = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = next(self._slots)
        return slot * RECORD if slot <= MAX_THREADS else None

    def running(self, key: str) -> bool:
        """Record ``key`` as running in this thread; False when it cannot be recorded (then use the round trip)."""
        data = key.encode() + b"\n"
        offset = self._offset()
        if offset is None or len(data) > RECORD or b"\n" in data[:-1]:
            return False
        os.pwrite(self._fd, data, offset)
        return True

    def idle(self) -> None:
        offset = self._offset()
        if offset is not None:
            os.pwrite(self._fd, b"\n", offset)


_witnesses: dict[str, Witness] = {}
_lock = threading.Lock()


def witness_for(nanny: str, address: str) -> Witness | None:
    """This process's witness for its worker at ``address``, run by ``nanny`` (None if no file can be made)."""
    witness = _witnesses.get(address)
    if witness is None:
        with _lock:
            witness = _witnesses.get(address)
            if witness is None:
                try:
                    witness = _witnesses[address] = Witness(nanny, address)
                except OSError:
                    return None
    return witness


def last_words(nanny: str) -> tuple[int | None, list[str], str | None] | None:
    """The nanny side: the pid, running keys and address its worker left, and the file removed.

    None when it left no file (it never ran a task that needed one, or the file could not be read).
    """
    path = path_for(nanny)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        os.unlink(path)
    except OSError:
        return None
    records = [data[i:i + RECORD].split(b"\n", 1)[0] for i in range(0, len(data), RECORD)]
    if not records:
        return None
    head = records[0].decode(errors="replace").split(" ", 1)
    try:
        pid: int | None = int(head[0])
    except ValueError:
        pid = None
    address = head[1] if len(head) > 1 and head[1] else None
    return pid, [record.decode(errors="replace") for record in records[1:] if record.strip(b"\0")], address
