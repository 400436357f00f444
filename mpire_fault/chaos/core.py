"""``Chaos``: a parsed spec, a seed, and the state every process of a run shares.

Decisions are a pure function of (seed, rule, term, task index, attempt,
visit number), computed with our own hash: never ``random``, which
Hypothesis reseeds per example and forked workers inherit. The only state
shared between processes is what the grammar demands: the ``COUNT`` budgets
(a term fires N times in the whole run, across workers and restarts) and
the visit counters of sites that have no task (init, idle, exit). Both live
in one small JSON file under an ``flock``, in a directory the object names,
so they work across fork, spawn, forkserver and foreign pools alike.
That directory records its owner, so one left behind by a killed process
is swept away by the next run (``rundir.py``).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..errors import ChaosSpecError
from . import env as environment
from . import journal as journal_file
from .actions import perform
from .journal import JournalEntry
from .rundir import make_run_dir
from .spec import Rule, Spec, Term, parse_spec
from .vocabulary import KILLS_PROCESS, TASKLESS_SITES


def _fresh_seed() -> int:
    return int.from_bytes(os.urandom(4), "big")


MAX_SEED = 2**64 - 1
_SEED_TEXT = re.compile(r"\+?0*([0-9]{1,20})", re.ASCII)


def parse_seed(value: Any, name: str = "seed") -> int:
    """A seed is an integer from 0 to 2**64-1; anything else is a clear ValueError naming ``name``.

    Text is ASCII digits with an optional "+" (``int()`` would also take other
    scripts' digits such as "²" or "٣", and any number of them).
    """
    problem = f"{name} must be a non-negative integer (at most {MAX_SEED}), got {value!r}"
    if isinstance(value, bool):
        raise ValueError(problem)
    if isinstance(value, str):
        match = _SEED_TEXT.fullmatch(value.strip())
        if not match:
            raise ValueError(problem if len(value) <= 60 else problem.replace(repr(value), f"{len(value)} characters"))
        value = int(match.group(1))
    if isinstance(value, int) and 0 <= value <= MAX_SEED:
        return value
    raise ValueError(problem)


class Chaos:
    """Seeded, reproducible fault injection at the pool's named sites."""

    def __init__(self, spec: str | Spec, seed: int | None = None, state_dir: str | None = None,
                 memory_limit: int | None = None) -> None:
        self._parsed = spec if isinstance(spec, Spec) else parse_spec(spec)
        self.spec = str(self._parsed)
        self.seed = _fresh_seed() if seed is None else parse_seed(seed)
        # The pool's max_worker_memory, when known: oom() never grows past it.
        self.memory_limit = _memory_limit(memory_limit)
        shared = state_dir or os.environ.get(environment.STATE)
        self._owns_state = not shared
        self.state_dir = shared or make_run_dir()
        # Forgotten without close(): removed when garbage-collected or at exit, by this process only
        # (a forked child inherits the finalizer, not the directory).
        self._cleanup = weakref.finalize(self, _remove_own_dir, self.state_dir, os.getpid()) if self._owns_state \
            else None
        os.makedirs(self.state_dir, exist_ok=True)
        self.extra_journal = os.environ.get(environment.JOURNAL) or None
        self._index()

    @classmethod
    def from_spec(cls, spec: str | Chaos, seed: int | None = None, memory_limit: int | None = None) -> Chaos:
        return spec if isinstance(spec, Chaos) else cls(spec, seed, memory_limit=memory_limit)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Chaos | None:
        """Chaos from ``MP_CHAOS`` (and ``MP_CHAOS_SEED``), or None when unset or empty."""
        environ = os.environ if environ is None else environ
        spec = environ.get(environment.SPEC, "").strip()
        if not spec:
            return None
        seed = environ.get(environment.SEED, "").strip()
        try:
            parsed = parse_spec(spec)
        except ChaosSpecError as exc:
            # Nothing in the caller's code holds this spec: the error must say where it came from.
            raise ChaosSpecError(f"{environment.SPEC} (environment variable): {exc.reason}", exc.spec,
                                 exc.position) from None
        return cls(parsed, parse_seed(seed, environment.SEED) if seed else None)

    def _index(self) -> None:
        # Told just before a fault that ends the process strikes, so the pool can count that death as the
        # journal does even when its own kill (a map abort) lands first; set in a worker process only.
        self.on_strike: Callable[[str], None] | None = None
        self._by_site: dict[str, list[tuple[int, Rule]]] = {}
        for index, rule in enumerate(self._parsed.rules):
            self._by_site.setdefault(rule.site, []).append((index, rule))
        self._visits: dict[tuple, int] = {}

    # Crossing to spawn/forkserver workers: the text, the seed and the paths.
    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "seed": self.seed, "state_dir": self.state_dir, "extra_journal": self.extra_journal,
                "memory_limit": self.memory_limit}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._parsed = parse_spec(state["spec"])
        self.spec, self.seed = state["spec"], state["seed"]
        self.state_dir, self.extra_journal = state["state_dir"], state["extra_journal"]
        self.memory_limit = state.get("memory_limit")
        self._owns_state = False
        self._cleanup = None
        self._index()

    def __repr__(self) -> str:
        return f"Chaos({self.spec!r}, seed={self.seed})"

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._parsed.rules

    # ------------------------------------------------------------------ deciding
    def visit(self, site: str, *, worker_id: int | None = None, task_index: int | None = None,
              attempt: int = 0, call: int = 0, pool: str | None = None) -> None:
        """Called in a worker at a named site; performs the fault the spec says, if any.

        ``call`` names the pool and the call a task belongs to (0 for foreign
        pools and for the first pool's apply tasks): without it every map
        call would roll the same dice for its item ``task_index``. ``pool``
        names the kind of foreign pool struck (for the journal); None for ours.
        """
        rules = self._by_site.get(site)
        if not rules:
            return
        for index, rule in rules:
            if not rule.matches(worker_id, task_index, attempt):
                continue
            term = self._decide(index, rule, site, worker_id, task_index, attempt, call)
            if term is None or term.action == "off":
                continue
            action = term.action + (f"({term.arg_text})" if term.arg_text is not None else "")
            self._record(JournalEntry(time.time(), site, action, worker_id, os.getpid(), task_index, attempt,
                                      self.seed, str(rule), pool))
            if self.on_strike is not None and term.action in KILLS_PROCESS:
                self.on_strike(term.action)
            perform(term.action, term.arg, site, self.memory_limit)
            return

    def _record(self, entry: JournalEntry) -> None:
        """Journal ``entry`` before the fault strikes (a hook: the Dask backend keeps it on the scheduler)."""
        journal_file.append(self.journal_path, entry)
        if self.extra_journal:
            journal_file.append(self.extra_journal, entry)

    def _decide(self, index: int, rule: Rule, site: str, worker_id, task_index, attempt,
                call: int = 0) -> Term | None:
        counted = any(term.count is not None for term in rule.terms)
        if site in TASKLESS_SITES:
            return self._decide_shared(index, site, worker_id, task_index, attempt, None, call)
        visit = self._local_visit(index, site, task_index, attempt, call)
        if counted:
            return self._decide_shared(index, site, worker_id, task_index, attempt, visit, call)
        return self._pick(index, rule, task_index, attempt, visit, None, call)

    def _decide_shared(self, index: int, site: str, worker_id, task_index, attempt, visit: int | None,
                       call: int = 0) -> Term | None:
        """A decision that needs the run's shared state (a hook: the Dask backend asks its scheduler)."""
        with self._shared_state() as state:
            return self.decide_with_state(state, index, site, worker_id, task_index, attempt, visit, call)

    def decide_with_state(self, state: dict, index: int, site: str, worker_id, task_index, attempt,
                          visit: int | None, call: int = 0) -> Term | None:
        """The term rule ``index`` fires, given the shared ``state`` (budgets, visits of taskless sites).

        ``visit`` is the caller's own count for sites with a task; None for a
        taskless site, whose visits are counted per worker in ``state``.
        """
        if visit is None:
            key = f"visit:{index}:{site}:{worker_id}"
            visit = state.get(key, 0)
            state[key] = visit + 1
        return self._pick(index, self._parsed.rules[index], task_index, attempt, visit, state, call)

    def _local_visit(self, index: int, site: str, task_index, attempt, call: int = 0) -> int:
        key = (index, site, task_index, attempt, call)
        visit = self._visits.get(key, 0)
        self._visits[key] = visit + 1
        return visit

    def _pick(self, index: int, rule: Rule, task_index, attempt, visit: int, state: dict | None,
              call: int = 0) -> Term | None:
        for position, term in enumerate(rule.terms):
            key = f"budget:{index}:{position}"
            if term.count is not None and state is not None and state.get(key, 0) >= term.count:
                continue  # spent: the next term after '->' applies
            chance = self.chance(index, position, task_index, attempt, visit, call)
            if term.percent < 100 and chance >= term.percent / 100:
                return None
            if term.count is not None and state is not None:
                state[key] = state.get(key, 0) + 1
            return term
        return None

    def chance(self, rule: int, term: int, task_index, attempt: int, visit: int, call: int = 0) -> float:
        """A number in [0, 1) that depends on nothing but its arguments and the seed."""
        key = f"{self.seed}:{rule}:{term}:{task_index}:{attempt}:{visit}" + (f":{call}" if call else "")
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64

    @contextlib.contextmanager
    def _shared_state(self) -> Iterator[dict]:
        lock_path = os.path.join(self.state_dir, "state.lock")
        state_path = os.path.join(self.state_dir, "state.json")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    with open(state_path, encoding="utf-8") as handle:
                        state = json.load(handle)
                except (FileNotFoundError, ValueError):
                    state = {}
                yield state
                temporary = f"{state_path}.{os.getpid()}"
                with open(temporary, "w", encoding="utf-8") as handle:
                    json.dump(state, handle)
                os.replace(temporary, state_path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ journal
    @property
    def journal_path(self) -> str:
        return os.path.join(self.state_dir, "journal.jsonl")

    def journal(self) -> list[JournalEntry]:
        """Every fault injected so far, by any process sharing this object's state."""
        return journal_file.read(self.journal_path)

    def write_jsonl(self, path: str) -> None:
        journal_file.write_jsonl(path, self.journal())

    def close(self) -> None:
        """Remove the shared state this object created (a no-op for shared or inherited state)."""
        if self._owns_state:
            self._owns_state = False
            if self._cleanup is not None:
                self._cleanup()


def _remove_own_dir(path: str, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


def _memory_limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"memory_limit must be a number of bytes > 0 or None, got {value!r}")
    return value


def _our_pools_listed() -> bool:
    """Whether ``MP_CHAOS_POOLS`` (unset or empty: every kind) includes ``mpire_fault``."""
    value = os.environ.get(environment.POOLS, "")
    return not value.strip() or "mpire_fault" in [part.strip() for part in value.split(",")]


def resolve(chaos: None | str | Chaos, seed: int | None = None, memory_limit: int | None = None) -> Chaos | None:
    """The pool's ``chaos=`` argument as a ``Chaos``; ``None`` falls back to ``MP_CHAOS``.

    ``memory_limit`` is the pool's ``max_worker_memory``: the ``oom`` action
    never grows past it. A ``Chaos`` object passed in takes the lower of its
    own limit and this one.
    """
    memory_limit = _memory_limit(memory_limit)
    if chaos is None:
        if not _our_pools_listed():
            return None  # MP_CHAOS_POOLS names only foreign kinds: MP_CHAOS is for them
        found = Chaos.from_env()
        if found is not None and (seed is not None or memory_limit is not None):
            spent = found
            found = Chaos(found.spec, found.seed if seed is None else seed, memory_limit=memory_limit)
            spent.close()
        return found
    if isinstance(chaos, Chaos):
        if memory_limit is not None:
            chaos.memory_limit = min(chaos.memory_limit or memory_limit, memory_limit)
        return chaos
    if isinstance(chaos, str):
        return Chaos(chaos, seed, memory_limit=memory_limit)
    raise TypeError(f"chaos must be a spec string, a Chaos object or None, got {type(chaos).__name__}")
