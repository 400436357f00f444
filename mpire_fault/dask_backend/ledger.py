"""What the cluster remembers for us: which task started where, and how workers ended.

Dask reruns a task whose worker died (``distributed.scheduler.allowed-failures``).
That is right for a task that was only queued on the dead worker, and wrong
for the one it was running: our contract says a task runs at most once unless
``max_task_retries`` asks for more. The scheduler cannot tell the two apart
(it does not know which of a worker's tasks was executing), so every task
*claims* its key here before it runs. The claim is a handler on the scheduler
(its event loop makes check-and-set atomic); a rerun whose key was already
claimed is refused at once with a description of the earlier death.

A claim on a task's last allowed attempt also *arms* it: its Dask task state
is marked as suspicious as Dask's ``allowed-failures`` permits, so the death
of the worker running it errs the task at once (Dask's own ``KilledWorker``,
raised by the scheduler as it removes the worker). Without that, the error
would wait until the rerun found a free worker thread to be refused on, which
behind a busy worker or a restart takes a second or more. Tasks merely queued
on the dead worker are not armed, so Dask reruns them as before.

Claims are dropped when Dask forgets the key; the key itself is remembered
(bounded), because Dask cannot stop a task a worker already started: a key
cancelled (a map's abort) while a worker was starting it, or while a worker
recomputed a result lost with another worker, would otherwise claim afresh and
run the user's function a second time. Exit codes come from the nannies (``ExitReporter``, in ``exits``),
which are the only ones who see the worker process end; the scheduler often
removes a dead worker before its nanny has reported, so an error waits for the
exit code only briefly (``_EXIT_CODE_WAIT``) and says "no exit code" after that.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from .exits import EXIT_REPORTER

LEDGER = "mpire-fault-ledger"
STARTED_OP = "mpire-fault-started"  # on the worker's batched stream: a task started (no answer awaited)
DONE_OP = "mpire-fault-done"  # on the worker's batched stream: a task finished, with its answer
RERUN = "mpire-fault-rerun"  # task annotation: this run follows one that may have started; claim and wait
_WITNESS_WAIT = 10.0  # how long a rerun's claim waits for the nanny's report of the worker it may have started on
_KEEP_STIMULI = 64
_EXIT_CODE_WAIT = 1.0  # how long an error waits for the nanny's exit code (within 50 ms on a quiet machine; 0.3 s was
# too short at a load average of 9: the kit saw exitcode=None)
_KEEP_EXITS = 1000
KEY_PREFIX = "mpire-fault-"  # every key of ours starts so (the pool id), and none is ever submitted twice
_KEEP_FORGOTTEN = 100_000  # keys Dask forgot, kept so a run of one that was cancelled too late never starts
_MAX_SPARED = 10  # deaths of workers holding a task that never started, before Dask's own count applies
MAX_INIT_FAILURES = 3  # start-up failures in a row (per session) before its tasks fail with WorkerInitError


@dataclass
class DeadWorker:
    """The worker an earlier attempt of a task died on (``KilledWorker.last_worker``)."""

    address: str
    worker_id: int
    pid: int | None
    exitcode: int | None

    def clean(self) -> DeadWorker:  # what scheduler.WorkerState offers, for KilledWorker's sake
        return self


@dataclass
class _Claim:
    attempts: list[DeadWorker] = field(default_factory=list)
    phase: str = "task"
    timed_out: bool = False
    done: bool = False
    outcome: Any = None  # the finished task's (status, pickled) answer, kept in case its worker dies
    retries: int = 0  # the reruns the task may have (max_task_retries)
    session: str | None = None  # the session (worker_init/worker_exit of a call) the task starts workers with
    init_deaths: list[DeadWorker] = field(default_factory=list)  # workers that ended while starting it
    init_error: bytes | None = None  # what worker_init (or chaos at init) raised last, pickled by the worker
    armed: bool = False  # its worker's death errs it at once (see Ledger._arm)


def _plain(attempts: list[DeadWorker]) -> list[dict]:
    return [asdict(dead) for dead in attempts]  # the reply crosses the wire as plain data


class Ledger(SchedulerPlugin):
    """Scheduler plugin: claims of started tasks, stable worker slots, deaths seen by nannies."""

    name = LEDGER
    idempotent = True  # a second pool on the same cluster must not wipe the first one's claims

    def __init__(self) -> None:
        self.claims: dict[str, _Claim] = {}
        self.exits: OrderedDict[str, tuple[int | None, float]] = OrderedDict()
        self.slots: dict[str, int] = {}  # worker address -> stable index
        self.former: OrderedDict[str, int] = OrderedDict()  # the index a departed worker had
        self.names: dict[Any, int] = {}  # worker name -> the index it had last
        self.deaths: list[dict] = []
        self.forgotten: OrderedDict[str, None] = OrderedDict()
        self.spared: dict[Any, int] = {}  # tasks that never started -> deaths spared by _spare
        # keyed by session as the claims carry it (a task in phase "init" always has one; None is kept as is)
        self.init_failures: OrderedDict[str | None, int] = OrderedDict()  # session -> start-up failures in a row
        self.blocked: OrderedDict[str | None, bytes | None] = OrderedDict()  # sessions that gave up -> last error
        # worker address -> (pid, keys it was running when it ended), as its nanny read them (``witness``)
        self.last_words: OrderedDict[str, tuple[int | None, list[str]]] = OrderedDict()
        self.suspects: dict[str, list[str]] = {}  # key -> workers removed while it was processing there
        self.newest: OrderedDict[str, str] = OrderedDict()  # nanny address -> the last worker it registered
        self._released: OrderedDict[str, list[str]] = OrderedDict()  # stimulus -> keys it took off a worker
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        scheduler.handlers.update({
            "mpire_fault_claim": self.claim,
            "mpire_fault_phase": self.set_phase,
            "mpire_fault_exit": self.record_exit,
            "mpire_fault_done": self.done,
            "mpire_fault_init_failed": self.init_failed,
        })
        # one-way messages, read in order with Dask's own from the same worker (its task-finished comes after)
        scheduler.stream_handlers.update({STARTED_OP: self.started, DONE_OP: self.done_streamed})
        for address in scheduler.workers:
            self.add_worker(scheduler, address)

    # -------------------------------------------------------------- slots
    def add_worker(self, scheduler: Any, worker: str) -> None:
        if worker in self.slots:
            return
        name = scheduler.workers[worker].name
        taken = set(self.slots.values())
        index = self.names.get(name)
        if index is None and isinstance(name, int) and not isinstance(name, bool) and name >= 0:
            index = name  # LocalCluster names its workers 0..n-1, and a restarted worker keeps its name
        if index is None or index in taken:
            index = next(i for i in range(len(taken) + 1) if i not in taken)
        self.slots[worker] = index
        self.names[name] = index
        nanny = getattr(scheduler.workers[worker], "nanny", None)
        if nanny:
            self.newest[nanny] = worker
            self.newest.move_to_end(nanny)
            while len(self.newest) > _KEEP_EXITS:
                self.newest.popitem(last=False)

    def remove_worker(self, scheduler: Any, worker: str, *, stimulus_id: str, **kwargs: Any) -> None:
        # The tasks this removal took off the worker (``transition`` saw them first, under the same stimulus):
        # if they were started there, a rerun's claim will learn it from the nanny's report.
        released = self._released.pop(stimulus_id, ())
        for key in released:
            self.suspects.setdefault(key, []).append(worker)
        index = self.slots.pop(worker, None)
        if index is not None:
            self.former[worker] = index
            while len(self.former) > _KEEP_EXITS:
                self.former.popitem(last=False)

    def worker_id(self, address: str) -> int:
        if address not in self.slots and self.scheduler is not None and address in self.scheduler.workers:
            self.add_worker(self.scheduler, address)
        return self.slots.get(address, -1)

    # -------------------------------------------------------------- claims
    async def claim(self, key: str, worker: str, pid: int, retries: int, phase: str = "task",
                    session: str | None = None) -> dict:
        """Check-and-set the claim of ``key``; refuse a rerun beyond ``retries``.

        A worker that ended while it started the task (``phase`` still
        "init": ``worker_init`` or chaos at ``init`` raised or crashed) did not
        run it: as in the local pool the task goes on, on a restarted worker,
        until its session has failed to start ``MAX_INIT_FAILURES`` times in
        a row; from then on the session's tasks fail with WorkerInitError.
        """
        me = DeadWorker(worker, self.worker_id(worker), pid, None)
        if key in self.forgotten:  # a cancelled task a worker was already running: its call is over
            return {"run": False, "why": "forgotten"}
        claim = self.claims.get(key)
        if claim is None and key in self.suspects:  # its start may have been lost with its worker: ask the nanny
            started = await self._started_on(key)
            if started is not None and key not in self.claims:
                self.claims[key] = claim = _Claim([started], "task", session=session)
            claim = self.claims.get(key)
        if claim is None:
            if phase == "init" and session in self.blocked:
                return self._init_refusal(session, _Claim([me], phase, session=session), me)
            self.claims[key] = claim = _Claim([me], phase, session=session)
            self._arm(key, claim, retries)
            return {"run": True, "worker_id": me.worker_id, "attempt": 0, "witness": self._reporting()}
        if claim.done:  # Dask recomputes a result lost with its worker: answer from here, never rerun
            if claim.outcome is not None:
                return {"run": False, "why": "done", "outcome": claim.outcome}
            return {"run": False, "why": "lost-result", "worker_id": me.worker_id, "deaths": _plain(claim.attempts)}
        if claim.timed_out:
            return {"run": False, "why": "timeout", "worker_id": me.worker_id, "deaths": _plain(claim.attempts)}
        if claim.phase == "init":  # its worker died while starting the task: that was no run of it
            claim.init_deaths.append(claim.attempts.pop())
            if self._count_init_failure(claim.session):
                await self._fill_exit_codes(claim.init_deaths)
                return self._init_refusal(claim.session, claim, me)
        await self._fill_exit_codes(claim.attempts)
        if len(claim.attempts) > retries:
            return {"run": False, "why": claim.phase, "worker_id": me.worker_id, "deaths": _plain(claim.attempts)}
        claim.attempts.append(me)
        claim.phase = phase
        self._arm(key, claim, retries)
        return {"run": True, "worker_id": me.worker_id, "attempt": len(claim.attempts) - 1,
                "witness": self._reporting()}

    def started(self, worker: str, key: str, pid: int, retries: int, session: str | None = None) -> None:
        """A first run started without waiting for ``claim`` (a one-way message, see ``witness``).

        Only a task the scheduler never took off a worker runs so: a rerun
        always claims and waits. Its start is recorded, and armed, as a claim's.
        """
        if key in self.forgotten or key in self.claims:
            return
        claim = self.claims[key] = _Claim([DeadWorker(worker, self.worker_id(worker), pid, None)], session=session)
        self._arm(key, claim, retries)

    async def _started_on(self, key: str) -> DeadWorker | None:
        """The removed worker that had started ``key``, by its nanny's report; None if none had.

        Bounded: a nanny that does not report within ``_WITNESS_WAIT`` (it
        died with its worker, or it has no ``ExitReporter``) counts as "not
        started there" (the start message, had it come, would have made a claim).
        The report is waited for even when the worker's threads all ran tasks
        whose start the ledger heard of: the message that one of them was done
        can be lost with the worker, whose thread then started this one.
        """
        deadline = time.monotonic() + _WITNESS_WAIT
        for address in self.suspects.get(key, ()):
            while address not in self.last_words and self._reporting() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            words = self.last_words.get(address)
            if words is not None and key in words[1]:
                exitcode = self.exits.get(address, (None, 0.0))[0]
                return DeadWorker(address, self.former.get(address, self.slots.get(address, -1)), words[0], exitcode)
        return None

    def _init_refusal(self, session: str | None, claim: _Claim, me: DeadWorker) -> dict:
        if claim.init_error is not None and self.blocked.get(session, b"") is None:
            self.blocked[session] = claim.init_error  # later refusals of the session name the same error
        error = claim.init_error if claim.init_error is not None else self.blocked.get(session)
        deaths = claim.init_deaths or claim.attempts
        return {"run": False, "why": "init", "worker_id": me.worker_id, "deaths": _plain(deaths),
                "init_error": error, "failures": max(self.init_failures.get(session, 0), MAX_INIT_FAILURES)}

    def init_failed(self, key: str, session: str | None, error: bytes, worker: str, pid: int) -> dict:
        """``worker_init`` (or chaos at ``init``) raised on ``worker`` while it started ``key``: try again?

        Counted with the starts that crashed (see ``claim``); ``run`` is False
        once the session has failed ``MAX_INIT_FAILURES`` times in a row.
        """
        me = DeadWorker(worker, self.worker_id(worker), pid, None)
        claim = self.claims.get(key)
        if claim is None:  # not claimed through us (cannot happen): still bounded
            claim = _Claim([me], "init", session=session)
        claim.init_error = error
        claim.init_deaths.append(me)
        if self._count_init_failure(claim.session):
            return self._init_refusal(claim.session, claim, me)
        return {"run": True}

    def _count_init_failure(self, session: str | None) -> bool:
        """One more start-up failure of ``session``; True when the session gives up."""
        failures = self.init_failures[session] = self.init_failures.get(session, 0) + 1
        self.init_failures.move_to_end(session)
        while len(self.init_failures) > _KEEP_EXITS:
            self.init_failures.popitem(last=False)
        if failures < MAX_INIT_FAILURES and session not in self.blocked:
            return False
        self.blocked[session] = self.blocked.get(session)
        while len(self.blocked) > _KEEP_EXITS:
            self.blocked.popitem(last=False)
        return True

    def _arm(self, key: str, claim: _Claim, retries: int) -> None:
        """On the last allowed attempt, once past start-up: the worker's death errs the task at once."""
        claim.retries, claim.armed = retries, False
        if claim.phase != "task" or len(claim.attempts) <= retries or self.scheduler is None:
            return
        task = self.scheduler.tasks.get(key)
        worker = getattr(task, "processing_on", None)
        if worker is None or worker.address != claim.attempts[-1].address:
            return  # not running where it claimed (stolen, or already gone): the rerun's claim will refuse
        try:
            task.suspicious = max(task.suspicious, self.scheduler.allowed_failures)
            claim.armed = True
        except AttributeError:  # a distributed without these counters: refusals still work, only later
            pass

    def set_phase(self, key: str, phase: str) -> None:
        claim = self.claims.get(key)
        if claim is None:
            return
        if phase == "timed-out":
            claim.timed_out = True
        else:
            if claim.phase == "init" and phase == "task":  # the worker started: the failures in a row end
                self.init_failures.pop(claim.session, None)
            claim.phase = phase
            self._arm(key, claim, claim.retries)

    def done_streamed(self, worker: str, key: str, outcome: Any = None) -> None:
        self.done(key, outcome)

    def done(self, key: str, outcome: Any = None) -> None:
        claim = self.claims.get(key)
        if claim is not None:
            claim.done, claim.outcome = True, outcome
            if claim.armed:  # finished: a death now (before Dask hears of the result) is no death of it
                claim.armed = False
                task = self.scheduler.tasks.get(key) if self.scheduler is not None else None
                if task is not None and hasattr(task, "suspicious"):
                    task.suspicious = 0

    async def _fill_exit_codes(self, attempts: list[DeadWorker]) -> None:
        deadline = time.monotonic() + _EXIT_CODE_WAIT
        for dead in attempts:
            if dead.exitcode is not None:
                continue
            while dead.address not in self.exits and self._reporting() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if dead.address in self.exits:
                dead.exitcode = self.exits[dead.address][0]

    def _reporting(self) -> bool:
        return self.scheduler is not None and EXIT_REPORTER in getattr(self.scheduler, "nanny_plugins", {})

    def record_exit(self, address: str | None, exitcode: int | None, pid: int | None = None,
                    running: list[str] | None = None, nanny: str | None = None, certain: bool = True) -> None:
        """A nanny's report: its worker at ``address`` ended with ``exitcode``, running the keys ``running``.

        Not ``certain`` (the worker left no last words naming itself), ``address`` is the nanny's idea of its
        worker, which lags behind a restart: the worker this nanny registered last is the one that ended,
        unless that one was reported already (then the worker that ended never registered, and ran nothing).
        """
        if certain and address is not None and address not in self.slots and address not in self.former:
            # Last words of a worker this scheduler never had: a file left by another cluster's worker whose nanny
            # had this nanny's address before (ports are reused; seen with clusters started and closed side by
            # side). They say nothing of the worker that ended here.
            certain, pid, running = False, None, None
        if not certain and nanny is not None:
            newest = self.newest.get(nanny)
            if newest is not None and newest not in self.exits:
                address = newest
            elif address in self.exits or address is None:
                return  # a worker that died starting: nothing of ours ran there, and its nanny restarts it
        if address is None:
            return
        self.exits[address] = (exitcode, time.time())
        while len(self.exits) > _KEEP_EXITS:
            self.exits.popitem(last=False)
        self.last_words[address] = (pid, list(running or ()))
        while len(self.last_words) > _KEEP_EXITS:
            self.last_words.popitem(last=False)
        worker_id = self.slots.get(address, self.former.get(address, -1))
        self.deaths.append({"address": address, "worker_id": worker_id,
                            "exitcode": exitcode, "time": time.time()})
        del self.deaths[:-_KEEP_EXITS]

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish == "forgotten":
            if self.claims:
                self.claims.pop(key, None)
            self.spared.pop(key, None)
            self.suspects.pop(key, None)
            if isinstance(key, str) and key.startswith(KEY_PREFIX):
                self.forgotten[key] = None
                while len(self.forgotten) > _KEEP_FORGOTTEN:
                    self.forgotten.popitem(last=False)
        elif finish == "released" and start in ("processing", "memory") and self.scheduler is not None:
            if isinstance(key, str) and key.startswith(KEY_PREFIX):
                self._mark_rerun(key, start, kwargs.get("stimulus_id"))
            if start == "processing":
                self._spare(key)

    def _mark_rerun(self, key: str, start: str, stimulus_id: str | None) -> None:
        """Any later run of ``key`` claims with a round trip: the earlier one may have started (or finished).

        The mark travels with the task to its next worker (Dask sends a
        task's annotations with it). The tasks taken off a worker are noted
        by stimulus, for ``remove_worker`` to tell which worker they were on.
        """
        task = self.scheduler.tasks.get(key)
        if task is not None:
            task.annotations = {**(task.annotations or {}), RERUN: True}
        if start == "processing" and stimulus_id is not None:
            self._released.setdefault(stimulus_id, []).append(key)
            while len(self._released) > _KEEP_STIMULI:
                self._released.popitem(last=False)

    def _spare(self, key: Any) -> None:
        """Undo Dask's count of a death for a task that was not running its last attempt on that worker.

        Dask counts a death against every task the worker held (``suspicious``) and
        gives up on a task after ``allowed-failures`` of them; the ledger knows better
        which task was running: a task only queued there, or still starting its worker
        (``init``), or with reruns left, is run again as the contract says, and the
        ledger's own counts bound that (``MAX_INIT_FAILURES``, ``max_task_retries``).
        A task that never claims (its worker dies before it starts, ``_MAX_SPARED``
        times) is left to Dask's count, so nothing loops for ever.
        """
        claim = self.claims.get(key)
        if claim is not None and claim.armed:
            return
        task = self.scheduler.tasks.get(key)
        if task is None or getattr(task, "suspicious", 0) <= 0:
            return  # released without a death (a cancel): nothing to undo
        if claim is None:
            spared = self.spared[key] = self.spared.get(key, 0) + 1
            if spared > _MAX_SPARED:
                return
        task.suspicious -= 1

    async def death_of(self, address: str, key: str | None = None) -> dict:
        """What is known of the task ``key`` that Dask failed when the worker at ``address`` died.

        ``why`` is "timeout" when our own deadline killed the worker, else
        "death"; ``deaths`` lists every attempt of the task, with exit codes
        filled in if the nannies report them within ``_EXIT_CODE_WAIT``.
        """
        claim = self.claims.get(key) if key is not None else None
        if claim is not None and claim.attempts[-1].address == address:
            await self._fill_exit_codes(claim.attempts)
            why = "timeout" if claim.timed_out else ("init" if claim.phase == "init" else "death")
            return {"why": why, "deaths": _plain(claim.attempts)}
        dead = DeadWorker(address, self.former.get(address, self.slots.get(address, -1)), None, None)
        for other in self.claims.values():
            for attempt in other.attempts:
                if attempt.address == address:
                    dead.worker_id, dead.pid = attempt.worker_id, attempt.pid
        await self._fill_exit_codes([dead])
        return {"why": "death", "deaths": _plain([dead])}


async def death_of(address: str, key: str | None = None, dask_scheduler: Any = None) -> dict:
    """``Client.run_on_scheduler`` target: what the ledger knows of task ``key`` and the worker at ``address``."""
    ledger = dask_scheduler.plugins.get(LEDGER)
    if ledger is None:
        return {"why": "death", "deaths": [asdict(DeadWorker(address, -1, None, None))]}
    return await ledger.death_of(address, key)


def ledger_report(dask_scheduler: Any = None) -> dict:
    """``Client.run_on_scheduler`` target: slots and deaths, for ``DaskPool.statistics``."""
    ledger = dask_scheduler.plugins.get(LEDGER)
    # the pids as the workers registered them: asking the workers themselves would wait on a dead one
    # (still listed until the scheduler notices) for Dask's whole connect timeout
    pids = {address: worker.pid for address, worker in dask_scheduler.workers.items()}
    if ledger is None:
        return {"slots": {}, "deaths": [], "pids": pids}
    return {"slots": dict(ledger.slots), "deaths": list(ledger.deaths), "pids": pids}
