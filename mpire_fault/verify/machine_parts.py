"""What the rule mixins (``MapRules``, ``CallbackRules``) use of the machine they are mixed into.

Hypothesis collects rules from a state machine's bases, so the rules of
each guarantee family live in a mixin; this base only declares, for the
type checker, the attributes and helpers that ``machines.PoolMachine``
defines. It adds nothing at run time.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .adapters import Adapter


class MachineParts:
    if TYPE_CHECKING:
        adapter_cls: type[Adapter]
        adapter: Adapter
        guarantee: str | None
        bound: float
        markers: str
        hung: str | None
        after_idle_kill: bool
        parents_killed: int
        map_aborted: bool
        succeeded: set[int]
        pending: dict[int, tuple[str, object, str | None]]
        hook_calls: dict[int, list[tuple[str, object]]]

        def new_adapter(self) -> Adapter: ...

        def enqueue(self, kind: str, nap: float, blame: str | None = None, hooks: str | None = None,
                    raise_after: float = 0.0, **extra: Any) -> int: ...

        def answer(self, handle: Any, bound: float, what: str) -> Any: ...

        def violate(self, guarantee: str, message: str) -> None: ...

        def hang(self, what: str) -> None: ...

        def new_index(self) -> int: ...

        def run_map(self, items: list, what: str) -> Any: ...

        def wait_for_results(self) -> None: ...
