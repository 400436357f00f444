"""What the cluster remembers for us: which task started where, and how workers ended.

Dask reruns a task whose worker died (``distributed.scheduler.allowed-failures``).
That is right for a task that was only queued on the dead worker, and wrong
for the one it was running: our contract says a task runs at most once unless
``max_task_retries`` asks for more. The scheduler cannot tell the two apart
(it does not know which of a worker's tasks was executing), so every task
*claims* its key here before it runs. The claim is a handler on the scheduler
(its event loop makes check-and-set atomic); a rerun whose key was already
claimed is refused at once with a description of the earlier death.

Claims are dropped when Dask forgets the key, so the ledger lives exactly as
long as the task does. Exit codes come from the nannies (``ExitReporter``),
which are the only ones who see the worker process end.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

from distributed.diagnostics.plugin import NannyPlugin, SchedulerPlugin

LEDGER = "mpire-fault-ledger"
EXIT_REPORTER = "mpire-fault-exit-reporter"
_EXIT_CODE_WAIT = 1.5  # how long a refusal waits for the nanny's exit code
_KEEP_EXITS = 1000


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
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        scheduler.handlers.update({
            "mpire_fault_claim": self.claim,
            "mpire_fault_phase": self.set_phase,
            "mpire_fault_exit": self.record_exit,
            "mpire_fault_done": self.done,
        })
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

    def remove_worker(self, scheduler: Any, worker: str, *, stimulus_id: str, **kwargs: Any) -> None:
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
    async def claim(self, key: str, worker: str, pid: int, retries: int, phase: str = "task") -> dict:
        """Check-and-set the claim of ``key``; refuse a rerun beyond ``retries``."""
        me = DeadWorker(worker, self.worker_id(worker), pid, None)
        claim = self.claims.get(key)
        if claim is None:
            self.claims[key] = _Claim([me], phase)
            return {"run": True, "worker_id": me.worker_id, "attempt": 0}
        if claim.done:  # Dask recomputes a result lost with its worker: answer from here, never rerun
            if claim.outcome is not None:
                return {"run": False, "why": "done", "outcome": claim.outcome}
            return {"run": False, "why": "lost-result", "worker_id": me.worker_id, "deaths": _plain(claim.attempts)}
        if claim.timed_out:
            return {"run": False, "why": "timeout", "worker_id": me.worker_id, "deaths": _plain(claim.attempts)}
        await self._fill_exit_codes(claim.attempts)
        if claim.phase == "init" or len(claim.attempts) > retries:
            return {"run": False, "why": claim.phase, "worker_id": me.worker_id, "deaths": _plain(claim.attempts)}
        claim.attempts.append(me)
        claim.phase = phase
        return {"run": True, "worker_id": me.worker_id, "attempt": len(claim.attempts) - 1}

    def set_phase(self, key: str, phase: str) -> None:
        claim = self.claims.get(key)
        if claim is None:
            return
        if phase == "timed-out":
            claim.timed_out = True
        else:
            claim.phase = phase

    def done(self, key: str, outcome: Any = None) -> None:
        claim = self.claims.get(key)
        if claim is not None:
            claim.done, claim.outcome = True, outcome

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

    def record_exit(self, address: str, exitcode: int | None) -> None:
        self.exits[address] = (exitcode, time.time())
        while len(self.exits) > _KEEP_EXITS:
            self.exits.popitem(last=False)
        worker_id = self.slots.get(address, self.former.get(address, -1))
        self.deaths.append({"address": address, "worker_id": worker_id,
                            "exitcode": exitcode, "time": time.time()})
        del self.deaths[:-_KEEP_EXITS]

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish == "forgotten" and self.claims:
            self.claims.pop(key, None)

    def death_of(self, address: str) -> dict:
        exitcode = self.exits.get(address, (None, 0.0))[0]
        for claim in self.claims.values():
            for dead in claim.attempts:
                if dead.address == address:
                    return {"worker_id": dead.worker_id, "pid": dead.pid, "exitcode": exitcode}
        return {"worker_id": -1, "pid": None, "exitcode": exitcode}


class ExitReporter(NannyPlugin):
    """Nanny plugin: tells the ledger the exit code of each worker process that ends."""

    name = EXIT_REPORTER
    idempotent = True

    def setup(self, nanny: Any) -> None:
        original = getattr(nanny, "_on_worker_exit_sync", None)
        if original is None or getattr(original, "_mpire_fault", False):
            return  # a distributed without this hook: exit codes stay unknown

        def report(exitcode: int | None) -> None:
            address = getattr(nanny, "worker_address", None)

            async def send() -> None:
                try:
                    await nanny.scheduler.mpire_fault_exit(address=address, exitcode=exitcode)
                except Exception:  # the scheduler is gone (the cluster is closing): nobody to tell
                    pass

            try:
                if address:
                    nanny._ongoing_background_tasks.call_soon(send)
            except Exception:
                pass
            original(exitcode)

        report._mpire_fault = True  # type: ignore[attr-defined]
        nanny._on_worker_exit_sync = report
        process = getattr(nanny, "process", None)
        if process is not None and hasattr(process, "on_exit"):
            process.on_exit = report


def death_of(address: str, dask_scheduler: Any = None) -> dict:
    """``Client.run_on_scheduler`` target: what the ledger knows of the worker at ``address``."""
    ledger = dask_scheduler.plugins.get(LEDGER)
    return ledger.death_of(address) if ledger else {"worker_id": -1, "pid": None, "exitcode": None}


def ledger_report(dask_scheduler: Any = None) -> dict:
    """``Client.run_on_scheduler`` target: slots and deaths, for ``DaskPool.statistics``."""
    ledger = dask_scheduler.plugins.get(LEDGER)
    if ledger is None:
        return {"slots": {}, "deaths": []}
    return {"slots": dict(ledger.slots), "deaths": list(ledger.deaths)}
