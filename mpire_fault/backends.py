"""The one registry of backend names: where a ``WorkerPool(backend=...)`` runs its workers.

A backend is a class with WorkerPool's API (``contract.PoolBackend``) that
runs the tasks somewhere: the local engine (processes or threads of this
machine) or a Dask cluster. Front doors name a backend and never import it:
the class is loaded by its dotted path when a pool is made, so the local
engine and Dask never import each other, and an optional backend whose
package is missing costs nothing until it is asked for. The scenarios, the
kit and every error message read their names from here.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backend:
    """A backend: its name, its class (``"module:Class"``) and what it needs installed."""

    name: str
    target: str
    requires: str | None = None  # the import name of the package it needs beyond ours
    extra: str | None = None  # our optional extra that installs it

    def missing(self) -> str | None:
        """Why this backend cannot run here (and the install line), or None."""
        if self.requires is None or importlib.util.find_spec(self.requires) is not None:
            return None
        return (f"backend={self.name!r} needs the package {self.requires!r}, which is not installed: "
                f'pip install "mpire_fault[{self.extra}]"')

    def load(self) -> type:
        """The backend's class (raises ImportError with the install line when its package is missing)."""
        reason = self.missing()
        if reason is not None:
            raise ImportError(reason)
        module, _, name = self.target.partition(":")
        cls: type = getattr(importlib.import_module(module), name)
        return cls


LOCAL = "local"
DASK = "dask"
BACKENDS: dict[str, Backend] = {
    LOCAL: Backend(LOCAL, "mpire_fault.pool:WorkerPool"),
    DASK: Backend(DASK, "mpire_fault.dask_backend.pool:DaskPool", requires="distributed", extra="dask"),
}


def named(name: object) -> Backend:
    """The backend called ``name``; a ValueError naming the choices for anything else."""
    found = BACKENDS.get(name) if isinstance(name, str) else None
    if found is None:
        choices = ", ".join(repr(known) for known in BACKENDS)
        raise ValueError(f"backend must be one of {choices}, got {name!r}")
    return found
