"""One small interface over each pool's own API, so the same machines grade them all.

Every wait has a bound: a call that does not answer in time raises ``Hang``,
and ``close()`` is bounded too (``CLOSE_BOUND`` for the pool's own shutdown,
however it blocks, then SIGKILL of every worker process still alive), so a
pool that hangs is a verdict, never a stuck run.

``features`` says what an adapter can express; a guarantee that needs a
feature the pool lacks is graded "unsupported", never "pass".

The interface and its bounds are in ``adapter_base``, the adapters for our
own pools in ``our_adapters``, those for the peers in ``peer_adapters``, those
for our front doors (each the peer adapter of the class it replaces, with
ours swapped in) in ``frontdoor_adapters``; every name is importable from
here, with the registry of pools the kit knows.
"""
from __future__ import annotations

import importlib.util

from .. import backends
from .adapter_base import CLOSE_BOUND, FEATURES, REAP_BOUND, SETTLE_BOUND, Adapter, Hang, bounded, kill_and_wait
from .frontdoor_adapters import MpireFaultExecutorAdapter, MpireFaultJoblibAdapter, MpireFaultStdPoolAdapter
from .our_adapters import MpireFaultAdapter, MpireFaultDaskAdapter
from .peer_adapters import DaskAdapter, FuturesAdapter, LokyAdapter, MpireAdapter, MultiprocessingAdapter, PebbleAdapter

__all__ = ["ADAPTERS", "CLOSE_BOUND", "FEATURES", "REAP_BOUND", "SETTLE_BOUND", "Adapter", "DaskAdapter",
           "FuturesAdapter", "Hang", "LokyAdapter", "MpireAdapter", "MpireFaultAdapter", "MpireFaultDaskAdapter",
           "MpireFaultExecutorAdapter", "MpireFaultJoblibAdapter", "MpireFaultStdPoolAdapter", "MultiprocessingAdapter",
           "PebbleAdapter", "available", "bounded", "kill_and_wait", "missing"]


ADAPTERS: dict[str, type[Adapter]] = {
    "mpire_fault": MpireFaultAdapter,
    "multiprocessing": MultiprocessingAdapter,
    "concurrent.futures": FuturesAdapter,
    "loky": LokyAdapter,
    "mpire": MpireAdapter,
    "pebble": PebbleAdapter,
    "dask": DaskAdapter,
    "mpire_fault-dask": MpireFaultDaskAdapter,
    # the front doors, each graded through the calls of the class it replaces (listed just above)
    "mpire_fault.Pool": MpireFaultStdPoolAdapter,
    "mpire_fault.ProcessPoolExecutor": MpireFaultExecutorAdapter,
    "mpire_fault.joblib": MpireFaultJoblibAdapter,
}
_DASK = backends.BACKENDS[backends.DASK]
# pool name: (the module it needs, the extra of ours that installs it)
_NEEDS = {"loky": ("loky", "peers"), "mpire": ("mpire", "peers"), "pebble": ("pebble", "peers"),
          "dask": ("distributed", "dask"),
          "mpire_fault-dask": (_DASK.requires or "distributed", _DASK.extra or "dask"),
          "mpire_fault.joblib": ("joblib", "joblib")}


def available() -> list[str]:
    """Pool names whose package is installed here."""
    return [name for name in ADAPTERS if missing(name) is None]


def missing(name: str) -> str | None:
    """Why pool ``name`` cannot be graded here (its package is not installed, and how to install it), or None."""
    if name not in _NEEDS:
        return None
    module, extra = _NEEDS[name]
    if importlib.util.find_spec(module) is not None:
        return None
    return f"pool {name} needs the package {module}, which is not installed: pip install 'mpire_fault[{extra}]'"
