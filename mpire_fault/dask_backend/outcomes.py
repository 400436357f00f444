"""What a finished Dask future means under our contract: values, or the error the contract names.

Deaths arrive as ``KilledWorker``: raised by the ledger's refusal of a
rerun (it carries every death of the task) or by Dask itself when its own
``allowed-failures`` ran out (then the ledger is asked what it knows of the
worker). Either way the caller gets ``WorkerDiedError`` with the
``KilledWorker`` as its ``__cause__``.
"""
from __future__ import annotations

from concurrent.futures import CancelledError
from typing import Any

from distributed.scheduler import KilledWorker

from .._core.remote import RESULT, load_exception, with_boundary
from ..errors import (
    Death,
    PoolTerminatedError,
    SchedulerLostError,
    TaskTimeoutError,
    WorkerDiedError,
    WorkerInitError,
    hook_error,
)
from .ledger import DeadWorker, death_of
from .liveness import bounded, scheduler_address
from .pickler import Pickler

LOST_CONNECTION = "scheduler-connection-lost"  # Dask's reason when it cancels every future of a client that lost it
DEATH_QUERY_BOUND = 2.0  # seconds to ask the ledger about a death (it waits at most 1.0 s for the exit code)


class CallStopped(PoolTerminatedError):
    """A map chunk its worker stopped because the call was aborted: by the client, or on the worker, where
    another chunk of the call had just failed (its error is then the call's error)."""


def outcome(future: Any, description: str, pickler: Pickler, client: Any,
            task_timeout: float | None = None, answer: tuple[str, Any] | None = None) -> list[Any]:
    """The values of a finished task (a list: one per item), or raise its error.

    ``answer``: the task's ``(status, pickled)`` if already gathered (a batch of finished tasks at once).
    """
    if future.status == "cancelled":
        raise cancelled(future, description)
    try:
        if answer is None and future.status == "finished":  # fetched from its worker: bounded, as every wait
            answer = bounded(future.client, future.client._gather, [future], what=f"fetching the result of "
                             f"{description}")[0]
        kind, data = future.result() if answer is None else answer
    except KilledWorker as exc:
        raise death_error(exc, description, client, task_timeout)  # noqa: B904 - its cause is set by us
    except CancelledError:
        raise cancelled(future, description) from None
    except BaseException as exc:  # noqa: BLE001 - whatever it raised is handed on
        raise restored(exc)  # noqa: B904 - its cause is set by us
    if kind == "ok":
        try:
            return pickler.loads(data)
        except BaseException as exc:  # noqa: BLE001 - whatever it raised is handed on
            raise with_boundary(exc, RESULT)  # noqa: B904 - its cause is set by us
    if kind == "aborted":
        raise CallStopped(f"{description} was stopped: its call was aborted")
    raise restored(load_exception(data, pickler))


def cancelled(future: Any, description: str) -> PoolTerminatedError:
    """Why a future was cancelled: by us (terminate), or by Dask when the client lost its scheduler."""
    reason = getattr(getattr(getattr(future, "_state", None), "exception", None), "reason", None)
    if reason == LOST_CONNECTION:
        return SchedulerLostError(scheduler_address(future.client),
                                  f"the connection to it broke while {description} was pending")
    return PoolTerminatedError(f"{description} was cancelled (the pool was terminated)")


def restored(exc: BaseException) -> BaseException:
    """Put back the ``__cause__`` a worker attached before pickling (pickle drops it)."""
    cause = exc.__dict__.pop("mpire_fault_cause", None)
    if cause is not None:
        if type(exc) is WorkerInitError:  # also an instance of the hook's own type, as the local pool raises it
            return hook_error(WorkerInitError, str(exc), cause)
        exc.__cause__ = cause
    return exc


def death_error(killed: KilledWorker, description: str, client: Any,
                task_timeout: float | None = None) -> BaseException:
    deaths = getattr(killed, "mpire_fault_deaths", None)
    if deaths is None:  # Dask's own KilledWorker: the ledger armed the task (or allowed-failures ran out)
        address = getattr(killed.last_worker, "address", str(killed.last_worker))
        info: dict[str, Any] = {"why": "death",
                                "deaths": [{"address": address, "worker_id": -1, "pid": None, "exitcode": None}]}
        if client is not None:
            try:
                # Bounded: this runs in Dask's one callback thread (shared by every future of the process),
                # and a scheduler that is closing must not hold the answers of other pools behind it.
                info = client.sync(client._run_on_scheduler, death_of, address, killed.task,
                                   callback_timeout=DEATH_QUERY_BOUND)
            except Exception:  # noqa: BLE001 - the scheduler is gone or slow: say what Dask said
                pass
        deaths = [DeadWorker(**d) for d in info["deaths"]]
        if info["why"] == "timeout":
            error: BaseException = TaskTimeoutError(task_timeout or 0.0, deaths[-1].worker_id, description)
            error.__cause__ = killed
            return error
        if info["why"] == "init":
            last = deaths[-1]
            error = WorkerInitError(f"worker_init ended worker {last.worker_id} (pid {last.pid}, Dask worker "
                                    f"{last.address}) while starting {description}")
            error.__cause__ = killed
            return error
    last = deaths[-1]
    error = WorkerDiedError(last.worker_id, last.pid, last.exitcode, task=description,
                            deaths=[Death(d.worker_id, d.pid, d.exitcode) for d in deaths],
                            detail=f"Dask worker {last.address}")
    error.__cause__ = killed
    return error
