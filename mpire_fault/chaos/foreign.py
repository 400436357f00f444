"""The same faults for foreign pools: wrap the task function.

``multiprocessing.Pool``, ``ProcessPoolExecutor``, loky, mpire and pebble do
not call our injection sites, so ``ChaosFunction`` carries them: it is
picklable, and calling ``wrapped(task_index, *args)`` in any worker visits
``task.start`` and ``task.end`` for that task. Arguments and results can be
wrapped too, so ``args.unpickle`` and ``result.pickle`` strike while the
foreign pool (de)serializes them.

``call`` plays the part it plays in our own pools (which pool, which call:
see ``Chaos.visit``), ``pool`` names the kind of pool in the journal; both
are set by ``chaos.patching``, which wraps foreign pools at their submit
boundary.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .core import Chaos
from .vocabulary import ARGS_UNPICKLE, RESULT_PICKLE, TASK_END, TASK_START


def _worker_number() -> int | None:
    # Foreign pools do not tell a task which worker runs it; MPIRE-style
    # worker selectors cannot match there, task and attempt selectors can.
    return None


class ChaosArgs:
    """Arguments whose unpickling in the worker visits ``args.unpickle``."""

    def __init__(self, chaos: Chaos, task_index: int, args: tuple, attempt: int = 0, call: int = 0,
                 pool: str | None = None) -> None:
        self.chaos, self.task_index, self.args, self.attempt = chaos, task_index, args, attempt
        self.call, self.pool = call, pool

    def __getstate__(self) -> dict[str, Any]:
        return {"chaos": self.chaos, "task_index": self.task_index, "args": self.args, "attempt": self.attempt,
                "call": self.call, "pool": self.pool, "origin": os.getpid()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.chaos, self.task_index, self.args = state["chaos"], state["task_index"], state["args"]
        self.attempt, self.call, self.pool = state["attempt"], state.get("call", 0), state.get("pool")
        if os.getpid() != state["origin"]:  # only where the arguments arrive, not in the parent
            self.chaos.visit(ARGS_UNPICKLE, worker_id=_worker_number(), task_index=self.task_index,
                             attempt=self.attempt, call=self.call, pool=self.pool)


class ChaosResult:
    """A result whose pickling in the worker visits ``result.pickle``; it unpickles as the plain value."""

    def __init__(self, chaos: Chaos, task_index: int, value: Any, attempt: int = 0, call: int = 0,
                 pool: str | None = None) -> None:
        self.chaos, self.task_index, self.value, self.attempt = chaos, task_index, value, attempt
        self.call, self.pool = call, pool

    def __reduce__(self):
        self.chaos.visit(RESULT_PICKLE, worker_id=_worker_number(), task_index=self.task_index,
                         attempt=self.attempt, call=self.call, pool=self.pool)
        return (_plain, (self.value,))

    def __repr__(self) -> str:
        # A pool that cannot send the result back quotes its repr (multiprocessing's MaybeEncodingError):
        # the user's value, as without chaos.
        return repr(self.value)


def _plain(value: Any) -> Any:
    return value


class ChaosFunction:
    """``func`` with chaos around it, for pools that know nothing of our sites."""

    def __init__(self, func: Callable, chaos: Chaos | str, seed: int | None = None, wrap_result: bool = False) -> None:
        self.func = func
        self.chaos = Chaos.from_spec(chaos, seed)
        self.wrap_result = wrap_result

    def arguments(self, task_index: int, *args: Any, attempt: int = 0) -> ChaosArgs:
        """Pack arguments so their unpickling in the worker visits ``args.unpickle``."""
        return ChaosArgs(self.chaos, task_index, args, attempt)

    def __call__(self, task_index: int | ChaosArgs, *args: Any, **kwargs: Any) -> Any:
        if isinstance(task_index, ChaosArgs):
            return self.run(task_index, task_index.args + args, kwargs)
        return self.run(ChaosArgs(self.chaos, task_index, ()), args, kwargs)

    def run(self, packed: ChaosArgs, args: tuple, kwargs: dict[str, Any]) -> Any:
        """Call the function on ``args`` as task ``packed`` names it, visiting the task sites around it."""
        self._visit(TASK_START, packed)
        value = self.func(*args, **kwargs)
        self._visit(TASK_END, packed)
        if not self.wrap_result:
            return value
        return ChaosResult(self.chaos, packed.task_index, value, packed.attempt, packed.call, packed.pool)

    def _visit(self, site: str, packed: ChaosArgs) -> None:
        self.chaos.visit(site, worker_id=_worker_number(), task_index=packed.task_index, attempt=packed.attempt,
                         call=packed.call, pool=packed.pool)
