"""The second catalogue of broken pools: written from the guarantees G14 on, not from the first catalogue.

Each mutant is a one-to-three-line bug of a kind the first catalogue lacks (what a map gives back, what
an error carries, timeouts, the restart budget, /dev/shm, the parent's death). Every patch names its
target as ``"module:Name.attr"`` and resolves it when applied (``mutant_base.patched_at``): a target a
refactor moved makes the mutant an ERROR of ``verify --self-test``, never a silent pass. Worker-side
patches reach the workers because the kit's pools fork.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

from .guarantees import Guarantee
from .mutant_base import Mutant, assign, patched_at

_SETTLEMENT = "mpire_fault._engine.settlement"


def drop_partial_chunk():
    """A map's last chunk is dropped when it is not full (chunks counted as len // chunk_size)."""
    def make(original):
        def chunk_iterable(iterable, chunk_size, iterable_len):
            full = max(1, math.ceil(chunk_size))
            for first, items in original(iterable, chunk_size, iterable_len):
                if len(items) == full:
                    yield first, items
        return chunk_iterable

    return patched_at("mpire_fault._core.chunking:chunk_iterable", make)


def range_stops_early():
    """A range input's length is computed one short (an off-by-one in the stop): its last item is never run."""
    return patched_at("mpire_fault._core.chunking:range_length",
                      lambda original: lambda numbers: max(0, original(numbers) - 1))


def ndarray_remainder_lost():
    """A numpy input is cut into whole chunks only: the rows after the last full chunk are lost."""
    def make(original):
        def chunk_ndarray(array, size):
            full = max(1, math.ceil(size))
            return original(array[:len(array) // full * full], size)
        return chunk_ndarray

    return patched_at("mpire_fault._core.chunking:chunk_ndarray", make)


def dict_items_unpacked():
    """A dict item of a map is unpacked like any other iterable (its keys become the arguments), not keywords."""
    def make(original):
        def style_of(kind):
            return 1 if issubclass(kind, dict) else original(kind)  # 1: UNPACK
        return style_of

    return patched_at("mpire_fault._core.arguments:style_of", make)


def exception_wrapped():
    """A task's exception reaches the caller wrapped in a RuntimeError that names it (its class is lost)."""
    def make(original):
        def load_exception(data, serializer):
            exc = original(data, serializer)
            wrapped = RuntimeError(f"{type(exc).__name__}: {exc}")
            wrapped.__cause__ = exc.__cause__
            return wrapped
        return load_exception

    return patched_at("mpire_fault._core.remote:load_exception", make)


def traceback_dropped():
    """A task's exception reaches the caller without the worker's traceback (no __cause__)."""
    def make(original):
        def load_exception(data, serializer):
            exc = original(data, serializer)
            exc.__cause__ = None
            return exc
        return load_exception

    return patched_at("mpire_fault._core.remote:load_exception", make)


def died_fields_swapped():
    """WorkerDiedError is built with worker_id and pid in the wrong order."""
    return patched_at(f"{_SETTLEMENT}:WorkerDiedError",
                      lambda original: lambda worker_id, pid, *rest: original(pid, worker_id, *rest))


def exitcode_unsigned():
    """A death by a signal reports the signal's number as a positive exit code (9, not -9)."""
    return patched_at(f"{_SETTLEMENT}:WorkerDiedError",
                      lambda original: lambda worker_id, pid, exitcode, *rest: original(
                          worker_id, pid, abs(exitcode) if exitcode is not None else None, *rest))


def _timeout_reason():
    from mpire_fault._engine.wire.protocol import KillReason

    return KillReason.TIMEOUT


def hard_timeout_is_death():
    """A worker killed for a hard timeout is settled as an ordinary death (WorkerDiedError, retried if asked)."""
    timeout = _timeout_reason()

    def make(original):
        def settle_head(self, slot, task, *rest):
            if slot.kill_reason is timeout:
                assign(slot, "kill_reason", None)
            return original(self, slot, task, *rest)
        return settle_head

    return patched_at(f"{_SETTLEMENT}:Settlement.settle_head", make)


def hard_timeout_retried():
    """A task killed for its hard timeout is run again when retries were asked for, as a death would be."""
    timeout = _timeout_reason()

    def make(original):
        def settle_head(self, slot, task, *rest):
            if slot.kill_reason is timeout and task.job.retries_after_death(task, self.state.settings.max_task_retries):
                task.attempt += 1
                self.state.pending.appendleft(task)
                return None
            return original(self, slot, task, *rest)
        return settle_head

    return patched_at(f"{_SETTLEMENT}:Settlement.settle_head", make)


def clock_at_dispatch():
    """A task's timeout is counted from when it was handed to the worker, not from when it started there."""
    from mpire_fault._engine.wire.protocol import PHASE_START, TASK_ID

    def make(original):
        def check_task(self, slot, base, now):
            progress, head = self.state.shared.progress, slot.ledger[0]
            if progress[base + TASK_ID] == head.task_id:
                progress[base + PHASE_START] = min(progress[base + PHASE_START], head.handed_at)
            return original(self, slot, base, now)
        return check_task

    return patched_at("mpire_fault._engine.watchdog:Watchdog.check_task", make)


def init_never_gives_up():
    """A worker that fails in worker_init is restarted forever: its failures in a row are never counted."""
    def make(original):
        def after_end(self, slot, was_ready, idle_death):
            if not was_ready:
                assign(slot, "start_failures", 0)
            return original(self, slot, was_ready, idle_death)
        return after_end

    return patched_at("mpire_fault._engine.restarts:Restarts.after_end", make)


def init_error_dropped():
    """What worker_init raised is not kept: the caller's error says the worker died, not why."""
    return patched_at("mpire_fault._engine.answers:Answers.on_init_failed",
                      lambda original: lambda self, slot, error: None)


@contextlib.contextmanager
def abort_keeps_segments() -> Iterator[None]:
    """An aborted map's queued tasks are kept in a list (for a report) that is never emptied: their argument
    segments stay in /dev/shm."""
    kept: list[Any] = []

    def make(original):
        def abort(self, job, *args, **kwargs):
            kept.extend(task for task in self.state.pending if getattr(task, "job", None) is job)
            return original(self, job, *args, **kwargs)
        return abort

    try:
        with patched_at(f"{_SETTLEMENT}:Settlement.abort", make):
            yield
    finally:
        kept.clear()


def result_segment_kept():
    """A big result's segment is mapped by the parent but its name is never unlinked."""
    def make(original):
        def adopt(self):
            from mpire_fault._engine.wire import shm

            return shm.Mapped(shm._open(self.name, False, self.size), self.layout, self.data, self.has_ids)
        return adopt

    return patched_at("mpire_fault._engine.wire.shm:Shared.adopt", make)


def no_pdeathsig():
    """Workers never ask Linux for PR_SET_PDEATHSIG: a busy worker outlives a SIGKILLed parent."""
    return patched_at("mpire_fault._engine.child.worker:die_with_parent", lambda original: lambda parent_pid: None)


SECOND: dict[str, Mutant] = {m.name: m for m in [
    Mutant("drop-partial-chunk", drop_partial_chunk, (Guarantee.MAP_COMPLETE,)),
    Mutant("range-stops-early", range_stops_early, (Guarantee.MAP_COMPLETE,)),
    Mutant("ndarray-remainder-lost", ndarray_remainder_lost, (Guarantee.MAP_COMPLETE,)),
    Mutant("dict-items-unpacked", dict_items_unpacked, (Guarantee.MAP_COMPLETE,)),
    Mutant("exception-wrapped", exception_wrapped, (Guarantee.OWN_EXCEPTION,)),
    Mutant("traceback-dropped", traceback_dropped, (Guarantee.OWN_EXCEPTION,)),
    Mutant("died-fields-swapped", died_fields_swapped, (Guarantee.ERROR_FIELDS,)),
    Mutant("exitcode-unsigned", exitcode_unsigned, (Guarantee.ERROR_FIELDS,)),
    Mutant("hard-timeout-is-death", hard_timeout_is_death, (Guarantee.HARD_TIMEOUT,)),
    Mutant("hard-timeout-retried", hard_timeout_retried, (Guarantee.HARD_TIMEOUT,)),
    Mutant("clock-at-dispatch", clock_at_dispatch, (Guarantee.CLOCK_AT_START,)),
    Mutant("init-never-gives-up", init_never_gives_up, (Guarantee.INIT_GIVES_UP,)),
    Mutant("init-error-dropped", init_error_dropped, (Guarantee.INIT_GIVES_UP,)),
    Mutant("abort-keeps-segments", abort_keeps_segments, (Guarantee.NO_SHM_LEAK,)),
    Mutant("result-segment-kept", result_segment_kept, (Guarantee.NO_SHM_LEAK,)),
    Mutant("no-pdeathsig", no_pdeathsig, (Guarantee.PARENT_DEATH,)),
]}
