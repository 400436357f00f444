"""Seeded, reproducible fault injection into worker processes (docs/guarantees.md §5).

    from mpire_fault.chaos import Chaos
    chaos = Chaos("task.start[task=3]=sigkill;idle=1%sigkill", seed=7)
    WorkerPool(4, chaos=chaos)          # or chaos="...", or MP_CHAOS=... in the environment
"""
from . import env as environment
from .core import Chaos, parse_seed, resolve
from .foreign import ChaosArgs, ChaosFunction, ChaosResult
from .journal import JournalEntry, write_jsonl
from .spec import ACTIONS, SELECTORS, SITES, Rule, Spec, Term, parse_size, parse_spec

__all__ = [
    "ACTIONS", "SELECTORS", "SITES", "Chaos", "ChaosArgs", "ChaosFunction", "ChaosResult", "JournalEntry",
    "Rule", "Spec", "Term", "environment", "parse_seed", "parse_size", "parse_spec", "resolve", "write_jsonl",
]
