"""A map's function reaches its workers as MPIRE's does: once per worker and call, not once per chunk.

MPIRE hands a map's function to the workers it starts for that call, and
under ``fork`` they inherit it with the rest of the parent's memory: nothing
is pickled, a lambda or a bound method of an object holding a lock just
works, and the function is the very object that ``worker_init`` and
``worker_exit`` (inherited the same way) see. So a bound method that keeps
state on its instance keeps it across the chunks of the call, and
``worker_exit=obj.report`` reports it. Workers that already run (a
``keep_alive`` pool's) get the function pickled, once per call.

Here every map call puts its function under a key of its own. Under fork it
also goes in a table that every worker forked from then on inherits, and a
chunk carries only the key. When workers forked before the call may get its
chunks, the chunks also carry the function pickled (pickled once); a worker
unpickles it at the first chunk of the call and keeps it for the others, so
state kept on the function's instance lasts the call there too (MPIRE's
kept-alive workers unpickle the new function once as well). A function that
will not pickle reaches only the workers forked for its call; the others
fail its chunks with an error that says what to do instead. Under spawn and
forkserver a worker started for the call gets the function pickled together
with the hooks (``WorkerSession.function``, ``adopt``): one pickle, shared
objects, as MPIRE's map parameters.
"""
from __future__ import annotations

import itertools
import os
import pickle
import threading
from collections.abc import Callable
from typing import Any

_BY_KEY: dict[int, Callable] = {}  # the parent's table; a forked worker has a copy
_LOADED: dict[int, Callable] = {}  # in a worker: the function of its current call, when it came pickled
_keys = itertools.count(1)
_loads: list[Callable[[bytes], Any]] = [pickle.loads]  # the worker's codec (dill with use_dill)

_START_LOCK = threading.Lock()


def start_lock() -> threading.Lock:
    """The lock every pool of this process holds while it forks a worker."""
    return _START_LOCK


def _reset_start_lock() -> None:
    # A forked worker inherits the lock held by the thread that forked it;
    # a pool created inside that worker needs a fresh one.
    global _START_LOCK
    _START_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_start_lock)


def use_loads(loads: Callable[[bytes], Any]) -> None:
    """Called by each worker process: how the pickled functions of ``Shipped`` are read."""
    _loads[0] = loads


def adopt(key: int, func: Callable) -> None:
    """In a spawned worker: the call's function, unpickled together with the hooks it may share objects with."""
    _LOADED.clear()
    _LOADED[key] = func


def _lookup(key: int, name: str, data: bytes | None) -> Callable:
    """Unpickling a ``Shipped`` in a worker: the function itself, the same object for every chunk of the call."""
    func = _BY_KEY.get(key)
    if func is not None:
        return func
    func = _LOADED.get(key)
    if func is not None:
        return func
    if data is None:
        raise RuntimeError(
            f"the map function {name} cannot be pickled, and this worker was started before the call that "
            f"passed it: with start_method='fork' such a function reaches only workers started for its call. "
            f"Use keep_alive=False, use_dill=True, or a function defined at module level")
    func = _loads[0](data)
    _LOADED.clear()  # one call at a time per worker: the previous call's function goes
    _LOADED[key] = func
    return func


class Shipped:
    """Stands for a map call's function in its chunks: a key, and the function pickled when a worker may need it.

    ``error`` is what pickling the function raised where every worker needs
    it pickled: each chunk's pickling raises it, so the call fails as any
    chunk that will not pickle does.
    """

    __slots__ = ("key", "name", "data", "error")

    def __init__(self, key: int, name: str, data: bytes | None, error: BaseException | None = None) -> None:
        self.key = key
        self.name = name
        self.data = data
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        if self.error is not None:
            raise self.error
        return (_lookup, (self.key, self.name, self.data))


def pickled_hooks(dumps: Callable[[Any], bytes], hooks: tuple, function: tuple[int, Callable] | None) -> bytes:
    """A spawned worker's hooks, pickled with the call's map function (key, function) when that pickles too.

    The worker ``adopt``s the function; one that will not pickle stays with
    the chunks, whose pickling then fails the call and says why.
    """
    if function is not None:
        try:
            return dumps((*hooks, *function))
        except Exception:  # noqa: BLE001 - any failure: the hooks alone, as before
            pass
    return dumps(hooks)


def _nothing() -> None:
    return None


def shippable(func: Callable, serializer: Any, start_method: str,
              workers_running: Callable[[], bool]) -> tuple[Any, Callable[[], None], tuple[int, Callable] | None]:
    """What a map's chunks carry for ``func``, what to call once the call ends, and what goes with the hooks.

    The function is pickled in band (the bytes go with every chunk that
    carries them). ``workers_running`` tells whether the pool has worker
    processes now; it is asked under the lock every pool holds while it
    forks, so no fork falls between putting ``func`` in the table and
    asking. Under ``threading`` the workers share the function itself; under
    spawn and forkserver the third value, (key, function), is pickled with
    the hooks of each worker started for the call (``WorkerSession.function``).
    """
    if start_method == "threading":
        return func, _nothing, None
    dumps = serializer.inband_dumps
    key, name = next(_keys), getattr(func, "__qualname__", None) or repr(func)
    if start_method != "fork":
        try:
            shipped = Shipped(key, name, dumps(func))
        except BaseException as exc:  # noqa: BLE001 - even SystemExit from a __reduce__: raised by each chunk
            shipped = Shipped(key, name, None, exc)
        return shipped, _nothing, (key, func)
    with start_lock():
        _BY_KEY[key] = func
        older = workers_running()
    data = None
    if older:
        try:
            data = dumps(func)
        except Exception:  # noqa: BLE001 - any pickling failure: only the workers forked from now on can run it
            data = None

    def release() -> None:
        _BY_KEY.pop(key, None)

    return Shipped(key, name, data), release, None
