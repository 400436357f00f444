"""The Dask backend: ``DaskPool`` runs WorkerPool's API on a ``distributed`` cluster.

``distributed`` is an optional dependency (``pip install mpire_fault[dask]``);
without it, importing this package works and creating a ``DaskPool`` raises
ImportError saying what to install.
"""
from __future__ import annotations

from typing import Any

try:
    from .pool import DaskPool
except ImportError as _missing:  # distributed (or dask) is not installed
    _reason = _missing

    class DaskPool:  # type: ignore[no-redef]
        """Placeholder that explains how to get the Dask backend."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError(
                "the dask backend needs the 'distributed' package: pip install mpire_fault[dask] "
                f"({_reason})"
            ) from _reason

__all__ = ["DaskPool"]
