"""Chaos on a Dask cluster: the same spec, seed and decisions as locally, with the shared state on the scheduler.

Locally the ``COUNT`` budgets, the visit counters of taskless sites and the
journal live in a file under an ``flock``; Dask workers may run on other
machines, so here they live in a scheduler plugin (``ChaosStore``). A worker
decides rules that need no shared state by itself (the decision is a pure
function of the seed), and asks the scheduler for the others: the
scheduler's event loop makes each decision atomic, and it runs the very
same ``Chaos.decide_with_state``. A fault is journaled on the scheduler
(one round trip) before it strikes, so a worker that kills itself has
already left its entry.
"""
from __future__ import annotations

import socket
import uuid
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from ..chaos import Chaos, JournalEntry
from ..chaos.spec import Term
from ..chaos.vocabulary import DASK, sites_visited_by

CHAOS_STORE = "mpire-fault-chaos"


class DaskChaos(Chaos):
    """A ``Chaos`` whose shared state and journal are kept by the cluster's scheduler under ``key``.

    It crosses to the workers as its spec, seed and key only; each worker
    process keeps one copy per key (``for_worker``), so its own visit
    counters persist from task to task as a local worker's do.
    """

    def __init__(self, spec: str, seed: int, key: str) -> None:  # no state directory: nothing local
        self.__setstate__({"spec": spec, "seed": seed, "key": key})

    @classmethod
    def of(cls, chaos: Chaos) -> DaskChaos:
        """The cluster twin of a local ``Chaos`` (a shared ``Chaos`` object gives its pools one shared key)."""
        key = f"{socket.gethostname()}:{chaos.state_dir}:{chaos.seed}" if chaos.state_dir else uuid.uuid4().hex
        return cls(chaos.spec, chaos.seed, key)

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "seed": self.seed, "key": self.key}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__({"spec": state["spec"], "seed": state["seed"], "state_dir": None,
                              "extra_journal": None})
        self.key = state["key"]
        self.worker: Any = None

    def __reduce__(self):
        return (DaskChaos, (self.spec, self.seed, self.key))

    def sites(self) -> set[str]:
        return {rule.site for rule in self.rules}

    def unsupported_sites(self) -> set[str]:
        """Sites the Dask backend never visits (``idle``: Dask workers have no idle loop of ours)."""
        return self.sites() - sites_visited_by(DASK)

    # ------------------------------------------------------------- the hooks of Chaos
    def bind(self, worker: Any) -> DaskChaos:
        self.worker = worker
        return self

    def _call(self, op: str, **kwargs: Any) -> Any:
        from distributed.utils import sync

        return sync(self.worker.loop, getattr(self.worker.scheduler, op), **kwargs)

    def _decide_shared(self, index: int, site: str, worker_id, task_index, attempt, visit,
                       call: int = 0) -> Term | None:
        position = self._call("mpire_fault_chaos_decide", chaos=self.key, spec=self.spec, seed=self.seed,
                              index=index, site=site, worker_id=worker_id, task_index=task_index,
                              attempt=attempt, visit=visit)
        return None if position is None else self.rules[index].terms[position]

    def _record(self, entry: JournalEntry) -> None:
        self._call("mpire_fault_chaos_record", chaos=self.key, entry=entry.to_dict())

    def journal(self) -> list[JournalEntry]:  # only the pool (through the client) can read it
        raise RuntimeError("the journal of chaos on a Dask cluster is read with DaskPool.chaos_journal()")

    def close(self) -> None:
        pass


_worker_copies: dict[str, DaskChaos] = {}


def for_worker(chaos: DaskChaos | None, worker: Any) -> DaskChaos | None:
    """This process's copy of ``chaos`` (its visit counters persist across tasks)."""
    if chaos is None:
        return None
    return _worker_copies.setdefault(chaos.key, chaos).bind(worker)


class ChaosStore(SchedulerPlugin):
    """Scheduler plugin: per chaos key, the budgets and taskless visit counters, and the journal."""

    name = CHAOS_STORE
    idempotent = True  # pools sharing the cluster share the store; each has its own key

    def __init__(self) -> None:
        self.runs: dict[str, tuple[Chaos, dict, list[dict]]] = {}

    async def start(self, scheduler: Any) -> None:
        scheduler.handlers.update({
            "mpire_fault_chaos_decide": self.decide,
            "mpire_fault_chaos_record": self.record,
        })

    def run(self, key: str, spec: str, seed: int) -> tuple[Chaos, dict, list[dict]]:
        run = self.runs.get(key)
        if run is None:
            run = self.runs[key] = (DaskChaos(spec, seed, key), {}, [])
        return run

    def decide(self, chaos: str, spec: str, seed: int, index: int, site: str, worker_id: Any, task_index: Any,
               attempt: int, visit: Any) -> int | None:
        rules, state, _ = self.run(chaos, spec, seed)
        term = rules.decide_with_state(state, index, site, worker_id, task_index, attempt, visit)
        return None if term is None else rules.rules[index].terms.index(term)

    def record(self, chaos: str, entry: dict) -> None:
        run = self.runs.get(chaos)
        if run is not None:
            run[2].append(entry)

    def restore(self, key: str, spec: str, seed: int, state: dict, journal: list[dict]) -> None:
        if key not in self.runs:
            self.runs[key] = (DaskChaos(spec, seed, key), dict(state), list(journal))

    def snapshot(self, key: str) -> tuple[dict, list[dict]]:
        run = self.runs.get(key)
        return ({}, []) if run is None else (dict(run[1]), list(run[2]))


def register_chaos(key: str, spec: str, seed: int, state: dict, journal: list[dict],
                   dask_scheduler: Any = None) -> None:
    """``Client.run_on_scheduler`` target: open the run ``key`` (carrying over what a former cluster kept)."""
    dask_scheduler.plugins[CHAOS_STORE].restore(key, spec, seed, state, journal)


def chaos_snapshot(key: str, drop: bool = False, dask_scheduler: Any = None) -> tuple[dict, list[dict]]:
    """``Client.run_on_scheduler`` target: the shared state and journal of run ``key`` (dropped with ``drop``)."""
    store = dask_scheduler.plugins.get(CHAOS_STORE)
    if store is None:
        return {}, []
    snapshot = store.snapshot(key)
    if drop:
        store.runs.pop(key, None)
    return snapshot


def resolve_chaos(chaos: Any, seed: int | None) -> tuple[DaskChaos | None, Chaos | None]:
    """The pool's ``chaos=``/``chaos_seed=`` (or ``MP_CHAOS``) as the cluster twin and the local original."""
    import warnings

    from ..chaos import resolve

    local = resolve(chaos, seed)
    if local is None:
        return None, None
    twin = DaskChaos.of(local)
    missing = twin.unsupported_sites()
    if missing:
        warnings.warn(f"chaos {local.spec!r}: the dask backend never visits {sorted(missing)}; those rules "
                      "do nothing there", RuntimeWarning, stacklevel=3)
    return twin, local
