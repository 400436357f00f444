"""The same faults for foreign pools: wrap the task function.

``multiprocessing.Pool``, ``ProcessPoolExecutor``, loky, mpire and pebble do
not call our injection sites, so ``ChaosFunction`` carries them: it is
picklable, and calling ``wrapped(task_index, *args)`` in any worker visits
``task.start`` and ``task.end`` for that task. Arguments and results can be
wrapped too, so ``args.unpickle`` and ``result.pickle`` strike while the
foreign pool (de)serializes them.
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

    def __init__(self, chaos: Chaos, task_index: int, args: tuple, attempt: int = 0) -> None:
        self.chaos, self.task_index, self.args, self.attempt = chaos, task_index, args, attempt

    def __getstate__(self) -> dict[str, Any]:
        return {"chaos": self.chaos, "task_index": self.task_index, "args": self.args, "attempt": self.attempt,
                "origin": os.getpid()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.chaos, self.task_index, self.args = state["chaos"], state["task_index"], state["args"]
        self.attempt = state["attempt"]
        if os.getpid() != state["origin"]:  # only where the arguments arrive, not in the parent
            self.chaos.visit(ARGS_UNPICKLE, worker_id=_worker_number(), task_index=self.task_index,
                             attempt=self.attempt)


class ChaosResult:
    """A result whose pickling in the worker visits ``result.pickle``."""

    def __init__(self, chaos: Chaos, task_index: int, value: Any, attempt: int = 0) -> None:
        self.chaos, self.task_index, self.value, self.attempt = chaos, task_index, value, attempt

    def __reduce__(self):
        self.chaos.visit(RESULT_PICKLE, worker_id=_worker_number(), task_index=self.task_index,
                         attempt=self.attempt)
        return (_plain, (self.value,))


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
            index, args, attempt = task_index.task_index, task_index.args + args, task_index.attempt
        else:
            index, attempt = task_index, 0
        self.chaos.visit(TASK_START, worker_id=_worker_number(), task_index=index, attempt=attempt)
        value = self.func(*args, **kwargs)
        self.chaos.visit(TASK_END, worker_id=_worker_number(), task_index=index, attempt=attempt)
        return ChaosResult(self.chaos, index, value, attempt) if self.wrap_result else value
