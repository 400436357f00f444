"""The backend contract: WorkerPool's API as every backend implements it.

A backend (the local engine, Dask) subclasses ``PoolBackend`` and defines
its abstract methods: ``apply_async`` and ``_chunks`` (declared in
``CallForms``, which writes the call forms ``apply``, ``map``, ``imap``...
once over them) and the lifecycle and observation methods below.
A backend that lacks a method cannot be instantiated, so a new method of
the API reaches every backend or none.

Constructor options are part of the contract too. Each backend takes
WorkerPool's every keyword and, for each, either honours it or refuses a
value it cannot honour with a ValueError that names the option
(``refuse_unless``): an option is never accepted and silently ignored.
``REFUSED`` lists, per backend, the options it refuses when they differ from
WorkerPool's default; ``tests/test_backend_conformance.py`` holds every
backend to it, option by option, with a behavioural probe for each option a
backend says it honours.
"""
from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

from ..statistics import PoolStatistics
from .calls import CallForms
from .insights_text import format_insights


class PoolBackend(CallForms, abc.ABC):
    """What a backend of WorkerPool's API must provide (see the module docstring)."""

    #: WorkerPool options this backend refuses when given a value other than WorkerPool's default.
    REFUSED: ClassVar[frozenset[str]] = frozenset()

    # ------------------------------------------------------------------ lifecycle
    @abc.abstractmethod
    def stop_and_join(self, keep_alive: bool = False) -> None:
        """Wait for every submitted task, then stop the workers (``keep_alive=True``: keep them)."""

    def join(self, keep_alive: bool = False) -> None:
        """Alias of ``stop_and_join``, as in MPIRE."""
        self.stop_and_join(keep_alive)

    @abc.abstractmethod
    def terminate(self) -> None:
        """Stop everything now; pending results become ready with an error."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.terminate()

    # ------------------------------------------------------------------ MPIRE's setters
    @abc.abstractmethod
    def pass_on_worker_id(self, pass_on: bool = True) -> None: ...

    @abc.abstractmethod
    def set_shared_objects(self, shared_objects: Any = None) -> None: ...

    @abc.abstractmethod
    def set_use_worker_state(self, use_worker_state: bool = True) -> None: ...

    @abc.abstractmethod
    def set_keep_alive(self, keep_alive: bool = True) -> None: ...

    @abc.abstractmethod
    def set_order_tasks(self, order_tasks: bool = True) -> None: ...

    # ------------------------------------------------------------------ observation
    @property
    @abc.abstractmethod
    def ctx(self) -> Any:
        """The multiprocessing context of the workers (MPIRE's ``pool.ctx``), or a refusal naming ``ctx``."""

    @abc.abstractmethod
    def statistics(self) -> PoolStatistics:
        """A snapshot of this pool's health."""

    @abc.abstractmethod
    def get_insights(self) -> dict[str, Any]:
        """MPIRE's insights dict (``{}`` with insights off)."""

    def print_insights(self) -> None:
        """Print MPIRE's insights summary (or its "no profiling stats" line)."""
        print(format_insights(self.get_insights()))

    @abc.abstractmethod
    def get_exit_results(self) -> list[Any]:
        """The return values of ``worker_exit``."""

    @abc.abstractmethod
    def chaos_journal(self) -> list[Any]:
        """Faults the chaos layer injected into this pool's workers so far."""


def refuse_unless(backend: str, given: Mapping[str, bool], why: str) -> None:
    """Raise a ValueError naming every option in ``given`` that is True (given, and not honoured here)."""
    names = [name for name, refused in given.items() if refused]
    if names:
        raise ValueError(f"{', '.join(names)} cannot be honoured with backend={backend!r} ({why})")
