"""A map function that will not pickle still reaches workers started by fork.

MPIRE hands a map's function to the workers it starts for that call, and
under ``fork`` they inherit it with the rest of the parent's memory: a
lambda, a nested function or a bound method of an object holding a lock
just works. Our chunks carry the function pickled, which refuses those. So
when pickling fails under ``fork``, the function is put in a table that
every worker forked from now on inherits, and the chunks carry its key
instead. The entry lives as long as the call.

Workers forked before the call (a ``keep_alive`` pool's) do not have the
entry; their tasks fail with an error that says so and what to do instead
(MPIRE's pickling of new map parameters fails for them too).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

_BY_KEY: dict[int, Callable] = {}
_keys = itertools.count(1)


def _lookup(key: int, name: str) -> Callable:
    """Unpickling an ``Inherited`` in a worker: the function itself, from the worker's copy of the table."""
    func = _BY_KEY.get(key)
    if func is None:
        raise RuntimeError(
            f"the map function {name} cannot be pickled, and this worker was started before the call that "
            f"passed it: with start_method='fork' such a function reaches only workers started for its call. "
            f"Use keep_alive=False, use_dill=True, or a function defined at module level")
    return func


class Inherited:
    """Stands for a function in ``_BY_KEY`` on its way to a forked worker."""

    __slots__ = ("key", "name")

    def __init__(self, key: int, name: str) -> None:
        self.key = key
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (_lookup, (self.key, self.name))


def _nothing() -> None:
    return None


def shippable(func: Callable, dumps: Callable[[Any], Any], start_method: str) -> tuple[Any, Callable[[], None]]:
    """What a map's chunks carry for ``func``, and what to call once the call ends.

    ``func`` itself whenever it pickles (the common case costs one pickling
    of a reference); under ``fork`` otherwise an ``Inherited`` key.
    """
    if start_method != "fork":
        return func, _nothing
    try:
        dumps(func)
    except Exception:  # noqa: BLE001 - any pickling failure: fork can hand the function over without pickling
        key = next(_keys)
        _BY_KEY[key] = func
        name = getattr(func, "__qualname__", None) or repr(func)

        def release() -> None:
            _BY_KEY.pop(key, None)

        return Inherited(key, name), release
    return func, _nothing
