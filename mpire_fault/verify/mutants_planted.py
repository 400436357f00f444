"""The third catalogue: bugs planted in the engine by someone who had not read the kit's rules.

A helper session planted 17 single-spot bugs that neither catalogue holds
and ran ``verify`` (50 examples) on each: 13 passed. These are the ones a
guarantee now catches (G8's checks of what a hook gets and of a hook that raises, G22 and
G23 came from them);
the others, and why they are not graded, are in the commit history and in
docs/guarantees.md's "What the kit does not grade". Targets are resolved as
in the second catalogue (``mutant_base.patched_at``).
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from .guarantees import Guarantee
from .mutant_base import Mutant, patched_at


def error_callback_gets_value() -> AbstractContextManager[None]:
    """A task's error that came pickled from its worker reaches the error_callback as the (missing) value: None."""
    def make(original):
        def _load_then_hook(self) -> None:
            hook = self._error_callback
            if hook is not None:
                self._error_callback = lambda error: hook(self._value)
            original(self)
        return _load_then_hook

    return patched_at("mpire_fault._core.results:AsyncResult._load_then_hook", make)


def callback_exception_escapes() -> AbstractContextManager[None]:
    """A callback's exception is not caught: it ends the callback thread, and the hooks queued behind it wait
    for the next callback to start a new one (their results are never ready if none comes)."""
    def make(original):
        def _run_hook(self, hook, arg) -> None:
            try:
                hook(arg)
            finally:
                self._event.set()
        return _run_hook

    return patched_at("mpire_fault._core.results:AsyncResult._run_hook", make)


def retry_one_short() -> AbstractContextManager[None]:
    """max_task_retries=R reruns a task whose worker died R - 1 times, not R."""
    return patched_at("mpire_fault._engine.jobs:ApplyJob.retries_after_death",
                      lambda original: lambda self, task, retries: task.attempt < retries - 1)


def lifespan_one_late() -> AbstractContextManager[None]:
    """A worker retires one task after its worker_lifespan (the check counts > where it should count >=)."""
    def make(original):
        def answer(self, message: tuple, counted: int) -> Any:
            lifespan = self.lifespan
            self.lifespan = None if lifespan is None else lifespan + 1
            try:
                return original(self, message, counted)
            finally:
                self.lifespan = lifespan
        return answer

    return patched_at("mpire_fault._engine.child.worker:_Worker.answer", make)


PLANTED: dict[str, Mutant] = {m.name: m for m in [
    Mutant("error-callback-gets-value", error_callback_gets_value, (Guarantee.RESOLVED_ONCE,)),
    Mutant("callback-exception-escapes", callback_exception_escapes, (Guarantee.RESOLVED_ONCE,)),
    Mutant("retry-one-short", retry_one_short, (Guarantee.RETRIES,)),
    Mutant("lifespan-one-late", lifespan_one_late, (Guarantee.LIFESPAN,)),
]}
