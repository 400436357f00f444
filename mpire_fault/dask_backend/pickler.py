"""How the Dask backend pickles what crosses to and from its workers (functions, arguments, results, errors)."""
from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import cloudpickle


class Pickler:
    """cloudpickle (so lambdas and closures work, as they do under fork) or dill, and their loaders."""

    def __init__(self, use_dill: bool = False) -> None:
        self.use_dill = use_dill
        if use_dill:
            import dill

            self.dumps: Callable[[Any], bytes] = lambda obj: dill.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            self.loads: Callable[[bytes], Any] = dill.loads
        else:
            self.dumps = lambda obj: cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            self.loads = pickle.loads

    def __reduce__(self):
        return (Pickler, (self.use_dill,))
