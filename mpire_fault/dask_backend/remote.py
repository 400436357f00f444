"""The worker side of the Dask backend: the function every task runs inside.

The session plugin (``worker_init``/``worker_exit`` per worker process) is in
``session``, the pickler both use in ``pickler``.

``run_task`` claims the task's key in the ledger before anything else, so a
rerun after a death is refused instead of running the user's function a
second time. A claim is a round trip to the scheduler, which would cost a
task about as much as Dask's own scheduling of it, so only the tasks that
need an answer wait for one: the first task of a worker process (it learns
its slot), a task that starts ``worker_init``, and a rerun (the scheduler
marks those, ``ledger.RERUN``). Any other task records its start in its
worker's last words (``witness``) and tells the ledger on the worker's
batched stream without waiting; the ledger learns of its end the same way.
It then runs ``worker_init`` if this worker has not yet done so
for the call, unpickles the arguments, runs the function under the task's
deadline and pickles the result. Everything that crosses the boundary is
pickled by us, so a failure there carries the ``task-args``/``result`` note
as it does in the local pool.
"""
from __future__ import annotations

import collections
import ctypes
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from distributed import get_worker
from distributed.scheduler import KilledWorker
from distributed.utils import sync

from .._core.arguments import call_item
from .._core.remote import RESULT, TASK_ARGS, dump_exception, with_boundary
from ..chaos.vocabulary import ARGS_UNPICKLE, RESULT_PICKLE, TASK_END, TASK_START
from ..errors import TaskTimeoutError, WorkerDiedError, WorkerInitError
from .chaos import DaskChaos, for_worker
from .ledger import DONE_OP, RERUN, STARTED_OP, DeadWorker
from .liveness import bounded
from .pickler import Pickler
from .session import Session, _die
from .witness import Witness, witness_for

if TYPE_CHECKING:
    from distributed.scheduler import WorkerState

RUN_BOUND = 5.0  # seconds for Client.run on the workers (an abort, a session's close)
TIMEOUT_GRACE = 2.0  # default timeout_grace: after task_timeout raised inside the task, seconds before the kill
KEEP_RESULT_BYTES = 1 << 20  # answers up to this size are also kept by the ledger, in case the worker dies

_lock = threading.Lock()
_running: dict[int, _Guard] = {}  # thread ident -> the task it runs
_aborted: collections.deque[str] = collections.deque(maxlen=1000)  # calls aborted by the client
_worker_state: dict[str, dict] = {}  # pool id -> this process's worker_state
_slots: dict[str, int] = {}  # worker address -> its slot, as the ledger answered (stable while the worker lives)


@dataclass(frozen=True)
class TaskSpec:
    """What a task needs to know besides its function and arguments."""

    pool_id: str
    call_id: str
    key: str
    description: str
    session: str | None
    pass_worker_id: bool
    use_worker_state: bool
    has_shared: bool
    task_timeout: float | None
    retries: int
    use_dill: bool
    is_map: bool
    first_index: int = 0  # the task index chaos selects on: the apply's number, or the chunk's first item
    chaos: DaskChaos | None = None
    timeout_grace: float = TIMEOUT_GRACE  # after task_timeout raised inside the task, seconds before the kill


class CallAborted(BaseException):
    """Raised inside a map item whose call the client aborted."""


class _InTaskTimeout(TaskTimeoutError):
    """Raised asynchronously inside a task that overran; replaced by a full TaskTimeoutError."""

    def __init__(self, timeout: float = 0.0, worker_id: int | None = None, task: str | None = None) -> None:
        super().__init__(timeout, worker_id, task)


def _async_raise(ident: int, exc_type: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                               ctypes.py_object(exc_type) if exc_type else None)


def _ledger(worker: Any, op: str, /, **kwargs: Any) -> Any:
    return sync(worker.loop, getattr(worker.scheduler, op), **kwargs)


class _Guard:
    """Registers the running task for abort and enforces its task_timeout (raise inside, then kill)."""

    def __init__(self, spec: TaskSpec, worker: Any) -> None:
        self.spec = spec
        self.worker = worker
        self.ident = threading.get_ident()
        self.timers: list[threading.Timer] = []

    def __enter__(self) -> _Guard:
        with _lock:
            _running[self.ident] = self
        if self.spec.task_timeout:
            self._later(self.spec.task_timeout, self._soft)
        return self

    def _later(self, seconds: float, fn: Callable[[], None]) -> None:
        timer = threading.Timer(seconds, fn)
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def _soft(self) -> None:
        with _lock:
            if _running.get(self.ident) is self:
                _async_raise(self.ident, _InTaskTimeout)
                self._later(self.spec.timeout_grace, self._hard)

    def _hard(self) -> None:
        with _lock:
            if _running.get(self.ident) is not self:
                return
            try:  # so the rerun Dask schedules after the kill is refused as a timeout, not a death
                _ledger(self.worker, "mpire_fault_phase", key=self.spec.key, phase="timed-out")
            finally:
                os.kill(os.getpid(), signal.SIGKILL)

    def __exit__(self, *exc: Any) -> None:
        with _lock:
            if _running.get(self.ident) is self:
                del _running[self.ident]
            _async_raise(self.ident, None)  # a timeout or abort that came too late must not leak
        for timer in self.timers:
            timer.cancel()


def live_workers(dask_scheduler: Any = None) -> list[str]:
    """``Client.run_on_scheduler`` target: the workers the scheduler has now (not the client's cached list)."""
    return list(dask_scheduler.workers)


def run_on_live(client: Any, function: Callable, *args: Any) -> dict:
    """``Client.run`` on the live workers only: a dead worker's address would be retried until Dask's
    30 s connect timeout, stalling an abort or a session's close behind a death. A worker can still die
    between the listing and the call, so the call is bounded too (``RUN_BOUND``; then TimeoutError)."""
    workers = bounded(client, client._run_on_scheduler, live_workers, what="listing the live workers")
    if not workers:
        return {}
    return client.sync(client._run, function, *args, workers=workers, on_error="return",
                       callback_timeout=RUN_BOUND)


def abort_call(call_id: str, dask_worker: Any = None) -> int:
    """Run on every worker by ``Client.run`` when a call aborts (or a pool id, when it terminates)."""
    hit = 0
    with _lock:
        _aborted.append(call_id)
        for ident, guard in _running.items():
            if call_id in (guard.spec.call_id, guard.spec.pool_id):
                _async_raise(ident, CallAborted)
                hit += 1
    return hit


def _refuse(spec: TaskSpec, answer: dict) -> None:
    deaths = [DeadWorker(**d) for d in answer["deaths"]]
    last = deaths[-1]
    if answer["why"] == "lost-result":
        raise WorkerDiedError(last.worker_id, last.pid, last.exitcode, task=spec.description,
                              detail=f"it had finished, but its result was lost with Dask worker {last.address}")
    if answer["why"] == "timeout":
        raise TaskTimeoutError(spec.task_timeout or 0.0, last.worker_id, spec.description)
    # A DeadWorker stands in for the scheduler's WorkerState: KilledWorker only reads its .address.
    killed = KilledWorker(spec.key, cast("WorkerState", last), spec.retries)
    # travels with the exception (pickled with its __dict__), which declares no such attribute
    killed.__dict__["mpire_fault_deaths"] = deaths
    if answer["why"] == "init":
        failures = answer.get("failures", 1)
        if answer.get("init_error") is not None:
            cause: BaseException = Pickler(spec.use_dill).loads(answer["init_error"])[0]
            error = WorkerInitError(f"worker_init failed {failures} times in a row while starting {spec.description} "
                                    f"(last on worker {last.worker_id}, Dask worker {last.address}): "
                                    f"{type(cause).__name__}: {cause}")
        else:
            cause = killed
            error = WorkerInitError(f"workers died {failures} times in a row while starting {spec.description} "
                                    f"(last: worker {last.worker_id}, pid {last.pid}, exit code {last.exitcode}, "
                                    f"Dask worker {last.address})")
        error.__dict__["mpire_fault_cause"] = cause  # __cause__ does not survive pickling; the pool restores it
        raise error
    raise killed


def _start_unasked(spec: TaskSpec, worker: Any, init_now: bool) -> Witness | None:
    """Start without the claim's round trip, if this run may (see the module's doc); None: claim."""
    if init_now or worker.address not in _slots or worker.nanny is None:
        return None
    task = worker.state.tasks.get(spec.key)
    if task is None or task.state == "cancelled" or RERUN in (task.annotations or {}):
        return None
    witness = witness_for(worker.nanny, worker.address)
    if witness is None or not witness.running(spec.key):
        return None
    # Order matters: the key is in the last words before the message is queued and before the task runs.
    worker.loop.add_callback(worker.batched_stream.send, {"op": STARTED_OP, "key": spec.key, "pid": os.getpid(),
                                                          "retries": spec.retries, "session": spec.session})
    return witness


def run_task(spec: TaskSpec, payload: bytes, shared: Any = None) -> tuple[str, Any]:
    """The Dask task: claim, init, unpickle, run, pickle. Returns ``(status, pickled)``."""
    worker = get_worker()
    # the plugin registered under a session's name is always that session (DaskPool._open_session)
    session = cast("Session | None", worker.plugins.get(spec.session)) if spec.session else None
    init_now = session is not None and session.needs_init()
    witness = _start_unasked(spec, worker, init_now)
    if witness is not None:
        worker_id, attempt = _slots[worker.address], 0
    else:
        answer = _ledger(worker, "mpire_fault_claim", key=spec.key, worker=worker.address, pid=os.getpid(),
                         retries=spec.retries, phase="init" if init_now else "task", session=spec.session)
        if not answer["run"]:
            if answer["why"] == "done":
                return tuple(answer["outcome"])  # type: ignore[return-value]
            if answer["why"] == "forgotten":  # cancelled: nobody waits for it, and it must not run now
                return "aborted", None
            _refuse(spec, answer)
        worker_id, attempt = answer["worker_id"], answer.get("attempt", 0)
        if answer.get("witness"):  # the nannies report last words: the next tasks here need not ask
            _slots[worker.address] = worker_id
    chaos = for_worker(spec.chaos, worker)
    try:
        outcome = _run_claimed(spec, payload, shared, worker, session, init_now, worker_id, chaos, attempt)
    finally:
        if witness is not None:
            witness.idle()
    if spec.is_map and outcome[0] == "err":
        # The call fails with this error: nothing more of it starts here, and the items of it running in
        # other threads of this worker stop, before the client has heard of the error and aborts it everywhere.
        abort_call(spec.call_id)
    kept = outcome if outcome[1] is None or len(outcome[1]) <= KEEP_RESULT_BYTES else None
    # One way, ahead of Dask's task-finished on the same stream: a worker that dies before it is read
    # dies with the task still counted as running, which is what it was.
    worker.loop.add_callback(worker.batched_stream.send, {"op": DONE_OP, "key": spec.key, "outcome": kept})
    return outcome


def _run_claimed(spec: TaskSpec, payload: bytes, shared: Any, worker: Any, session: Session | None,
                 init_now: bool, worker_id: int, chaos: DaskChaos | None, attempt: int) -> tuple[str, Any]:
    pickler = Pickler(spec.use_dill)

    def arguments() -> list[Any]:
        preamble: list[Any] = []
        if spec.pass_worker_id:
            preamble.append(worker_id)
        if spec.has_shared:
            preamble.append(shared)
        if spec.use_worker_state:
            preamble.append(_worker_state.setdefault(spec.pool_id, {}))
        return preamble

    preamble = arguments()
    try:
        if session is not None:
            session.ensure_started(tuple(preamble), worker_id)
            while init_now and session.failed():
                # Locally the worker ends and its replacement starts again. Here the process stays (a Dask
                # nanny does not restart a worker that dies while it is still starting, so killing one can
                # lose it for good): the session starts afresh in it, with a fresh worker_state, until the
                # ledger counts MAX_INIT_FAILURES in a row and the call fails with WorkerInitError.
                answer = _ledger(worker, "mpire_fault_init_failed", key=spec.key, session=spec.session,
                                 error=session.error(), worker=worker.address, pid=os.getpid())
                if not answer["run"]:
                    _refuse(spec, answer)
                session.reset()
                _worker_state.pop(spec.pool_id, None)
                preamble = arguments()
                session.ensure_started(tuple(preamble), worker_id)
            if init_now:
                _ledger(worker, "mpire_fault_phase", key=spec.key, phase="task")
            session.check()
        try:
            if chaos is not None:
                chaos.visit(ARGS_UNPICKLE, worker_id=worker_id, task_index=spec.first_index, attempt=attempt)
            func, items = pickler.loads(payload)
        except Exception as exc:  # noqa: BLE001 - whatever it raised is handed on
            return "err", dump_exception(with_boundary(exc, TASK_ARGS), pickler)
        results = []
        try:
            with _Guard(spec, worker):
                for index, item in enumerate(items, spec.first_index):
                    if spec.call_id in _aborted or spec.pool_id in _aborted:
                        raise CallAborted()
                    if chaos is not None:
                        chaos.visit(TASK_START, worker_id=worker_id, task_index=index, attempt=attempt)
                    if spec.is_map:
                        results.append(call_item(func, tuple(preamble), item))
                    else:
                        args, kwargs = item
                        results.append(func(*preamble, *args, **kwargs))
                    if chaos is not None:
                        chaos.visit(TASK_END, worker_id=worker_id, task_index=index, attempt=attempt)
        except _InTaskTimeout:
            raise TaskTimeoutError(spec.task_timeout or 0.0, worker_id, spec.description) from None
        try:
            if chaos is not None:
                chaos.visit(RESULT_PICKLE, worker_id=worker_id, task_index=spec.first_index, attempt=attempt)
            return "ok", pickler.dumps(results)
        except Exception as exc:  # noqa: BLE001 - whatever it raised is handed on
            return "err", dump_exception(with_boundary(exc, RESULT), pickler)
    except CallAborted:
        return "aborted", None
    except SystemExit as exc:
        _die(exc)
        raise  # not reached
    except Exception as exc:  # noqa: BLE001 - whatever it raised is handed on
        return "err", dump_exception(exc, pickler)
