"""Chaos for pools that never heard of us: wrap their task functions at the submit boundary.

``Patches(chaos, kinds).install()`` replaces the submitting methods of
``multiprocessing.pool.Pool`` (``apply_async``, ``_map_async`` behind
``map``/``map_async``/``starmap``/``starmap_async``, ``imap``,
``imap_unordered``), ``concurrent.futures.ProcessPoolExecutor`` (``submit``,
``map``), loky's executor (standalone ``loky`` and the copy joblib ships in
``joblib.externals.loky``, whose ``submit`` joblib's default backend calls)
and ``mpire.WorkerPool`` (``apply_async``, ``map``, ``map_unordered``,
``imap``, ``imap_unordered``). Each replacement hands the pool a
``StruckFunction`` and arguments packed in ``ChaosArgs``, so the worker
visits ``args.unpickle``, ``task.start``, ``task.end`` and ``result.pickle``
with the same ``Chaos`` (spec, seed, COUNT budgets, journal) as our own
pools. The value a task returns is unpickled as itself, so callers see the
same results and exceptions when no fault fires. ``uninstall()`` puts back
the exact attributes it found.

Task indices follow our pools: per pool instance, ``apply``/``submit`` tasks
are numbered in submission order, a map call's items by their position, and
the ``call`` (pool ordinal << 32 | map call ordinal) keeps two calls from
rolling the same dice. Classes whose module is not imported yet are patched
the moment it is imported (a small ``sys.meta_path`` finder), so nothing is
imported that the user's code does not import. Our own pools are left to
their built-in chaos, and so are thread pools (a ``sigkill`` in a thread
would kill the caller).

No pytest here: the plugin, the ``.pth`` start-up hook
(``_mpire_fault_chaos_hook``) and users call this module.
"""
from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from _mpire_fault_chaos_hook import AfterImport

from . import env as environment
from .core import Chaos
from .foreign import ChaosArgs, ChaosFunction

KINDS = ("multiprocessing", "concurrent.futures", "loky", "mpire", "mpire_fault")
FOREIGN_KINDS = KINDS[:4]
LABELS = {
    "multiprocessing": "multiprocessing.Pool",
    "concurrent.futures": "concurrent.futures.ProcessPoolExecutor",
    "loky": "loky/joblib executor",
    "mpire": "mpire.WorkerPool",
    "mpire_fault": "mpire_fault pool",
}
# The packages whose presence makes a kind available (found without importing them).
_PROBES = {
    "multiprocessing": ("multiprocessing",),
    "concurrent.futures": ("concurrent.futures",),
    "loky": ("loky", "joblib"),
    "mpire": ("mpire",),
    "mpire_fault": ("mpire_fault",),
}
# Packed arguments travel under this keyword when the pool passes an item as keywords (mpire's dict items).
_KWARG = "__mp_chaos_args__"
SEEN_FILE = "seen.jsonl"  # in the state directory: what callers of struck pools saw


def available_kinds() -> tuple[str, ...]:
    """The kinds whose library is installed here."""
    return tuple(kind for kind in KINDS if any(_installed(name) for name in _PROBES[kind]))


def _installed(name: str) -> bool:
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def parse_kinds(text: str | None, name: str = "--mp-chaos-pools") -> tuple[str, ...]:
    """``"multiprocessing,loky"`` as a tuple of kinds; None or blank: every available kind.

    An unknown name is a ValueError naming it; a known kind whose library is
    not installed is dropped silently.
    """
    available = available_kinds()
    if text is None or not text.strip():
        return available
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    for kind in wanted:
        if kind not in KINDS:
            raise ValueError(f"{name}: unknown pool kind {kind!r}; expected a comma list of {', '.join(KINDS)}")
    return tuple(kind for kind in KINDS if kind in wanted and kind in available)


# ---------------------------------------------------------------------------------------------- the wrapper
class StruckFunction(ChaosFunction):
    """The user's function as a struck pool runs it: finds its ``ChaosArgs`` wherever the pool put it.

    Pools add arguments of their own in front (mpire's worker id, shared
    objects, worker state), so the packed arguments are looked for among the
    positional arguments, or under ``_KWARG`` for an item passed as keywords.
    Two of them are equal when they would do the same thing, so MPIRE's
    ``keep_alive`` (which restarts workers when the function changes) sees
    the same function from call to call, as without chaos.
    """

    def __init__(self, func: Callable, chaos: Chaos, kind: str) -> None:
        super().__init__(func, chaos, wrap_result=True)
        self.kind = kind
        functools.update_wrapper(self, func, updated=())  # __name__, __doc__, __wrapped__ for introspection

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        packed = kwargs.pop(_KWARG, None)
        if packed is None:
            for position, arg in enumerate(args):
                if isinstance(arg, ChaosArgs):
                    packed, args = arg, (*args[:position], *arg.args, *args[position + 1:])
                    break
        if packed is None:  # a call we did not pack (the pool called it some other way): no chaos
            return self.func(*args, **kwargs)
        return self.run(packed, args, kwargs)

    def _key(self) -> tuple:
        return (self.func, self.kind, self.chaos.spec, self.chaos.seed, self.chaos.state_dir)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        try:
            return hash(self._key())
        except TypeError:  # an unhashable callable
            return id(self.func)

    def __repr__(self) -> str:
        return f"<chaos-struck {self.func!r}>"


def _already_struck(func: Any) -> bool:
    """A function some chaos layer wrapped already (ours, or one a map wrapper handed to submit)."""
    if isinstance(func, ChaosFunction):
        return True
    return isinstance(func, functools.partial) and (
        _already_struck(func.func) or any(isinstance(arg, ChaosFunction) for arg in func.args))


# ---------------------------------------------------------------------------------------------- per pool
class _PoolCalls:
    """The numbering of one pool's tasks: apply tasks in submission order, map calls from 1."""

    def __init__(self, ordinal: int, kind: str) -> None:
        self.scope = ordinal << 32
        self.kind = kind
        self._apply = itertools.count()
        self._calls = itertools.count(1)
        self._lock = threading.Lock()

    def next_apply(self) -> tuple[int, int]:
        with self._lock:
            return next(self._apply), self.scope

    def next_call(self) -> int:
        with self._lock:
            return self.scope | next(self._calls)


@dataclass
class _Plan:
    """How one submission is struck."""

    patches: Patches
    calls: _PoolCalls
    function: StruckFunction
    chaos: Chaos
    kind: str
    method: str

    def pack(self, index: int, args: tuple, call: int) -> ChaosArgs:
        return ChaosArgs(self.chaos, index, args, call=call, pool=self.kind)

    def error_callback(self, user: Callable | None) -> Callable:
        def error_callback(exc: BaseException) -> None:
            self.patches.saw(self, exc)
            if user is not None:
                user(exc)
        return error_callback

    def watch_future(self, future: Any) -> Any:
        def done(finished: Any) -> None:
            if not finished.cancelled() and finished.exception() is not None:
                self.patches.saw(self, finished.exception())
        future.add_done_callback(done)
        return future

    def watch_iterator(self, results: Iterator) -> Iterator:
        try:
            yield from results
        except BaseException as exc:
            self.patches.saw(self, exc)
            raise

    def watch_call(self, run: Callable[[], Any]) -> Any:
        try:
            return run()
        except BaseException as exc:
            self.patches.saw(self, exc)
            raise


# ---------------------------------------------------------------------------------------------- patches
class Patches:
    """The submit boundaries of foreign pools, wrapped with one ``Chaos`` while installed.

    ``chaos=None`` reads ``MP_CHAOS`` (and the seed, state and journal
    variables) at the first submission, so an interpreter that never
    submits a task never makes a ``Chaos``.
    """

    def __init__(self, chaos: Chaos | None = None, kinds: Iterable[str] | None = None) -> None:
        self._chaos = chaos
        self.kinds = tuple(parse_kinds(None) if kinds is None else kinds)
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown:
            raise ValueError(f"unknown pool kind {unknown[0]!r}; expected one of {', '.join(KINDS)}")
        self._saved: list[tuple[type, str, Any]] = []  # (class, name, what its __dict__ held or _MISSING)
        self._pools: weakref.WeakKeyDictionary[Any, _PoolCalls] = weakref.WeakKeyDictionary()
        self._ordinals = itertools.count()
        self._lock = threading.Lock()
        self._watcher: AfterImport | None = None
        self._pending: dict[str, tuple[str, str, tuple[str, ...]]] = {}  # module -> (kind, owner, methods)
        self.installed = False

    @property
    def chaos(self) -> Chaos | None:
        if self._chaos is None:
            self._chaos = Chaos.from_env()
        return self._chaos

    # ------------------------------------------------------------------ install / uninstall
    def install(self) -> Patches:
        if self.installed:
            return self
        self.installed = True
        pending = {}
        for kind in self.kinds:
            for module, owner, methods in _TARGETS.get(kind, ()):
                if module in sys.modules:
                    self._patch_module(kind, module, owner, methods)
                else:
                    pending[module] = (kind, owner, methods)
        if pending:
            self._pending = pending
            self._watcher = AfterImport(self._watching, self._loaded)
            sys.meta_path.insert(0, self._watcher)
        return self

    def _watching(self, module: str) -> bool:
        return self.installed and module in self._pending

    def _loaded(self, module: Any) -> None:
        """A watched module ran for the first time, after install: patch it now."""
        target = self._pending.pop(module.__name__, None)
        if target is not None and self.installed:
            kind, owner, methods = target
            self._patch_module(kind, module.__name__, owner, methods)

    def uninstall(self) -> None:
        if not self.installed:
            return
        self.installed = False
        if self._watcher is not None:
            try:
                sys.meta_path.remove(self._watcher)
            except ValueError:
                pass
            self._watcher = None
        for cls, name, original in reversed(self._saved):
            if original is _MISSING:
                try:
                    delattr(cls, name)
                except AttributeError:
                    pass
            else:
                setattr(cls, name, original)
        self._saved.clear()

    def __enter__(self) -> Patches:
        return self.install()

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()

    def _patch_module(self, kind: str, module_name: str, owner: str, methods: tuple[str, ...]) -> None:
        if not self.installed:
            return
        module = sys.modules.get(module_name)
        cls = getattr(module, owner, None)
        if not isinstance(cls, type):
            return
        for name in methods:
            original = cls.__dict__.get(name, _MISSING)
            if original is _MISSING:
                continue
            replacement = _WRAPPERS[(kind, name)](self, kind, name, original, module)
            functools.update_wrapper(replacement, original)
            replacement.__mp_chaos_original__ = original  # type: ignore[attr-defined]
            self._saved.append((cls, name, original))
            setattr(cls, name, replacement)

    # ------------------------------------------------------------------ deciding what to strike
    def plan(self, pool: Any, kind: str, method: str, func: Any) -> _Plan | None:
        """How to strike this submission, or None to leave it alone."""
        if not self.installed or _already_struck(func) or not callable(func):
            return None
        if type(pool).__module__.partition(".")[0] == "mpire_fault":
            return None  # our own front doors carry their own chaos
        chaos = self.chaos
        if chaos is None:
            return None
        with self._lock:
            calls = self._pools.get(pool)
            if calls is None:
                calls = self._pools[pool] = _PoolCalls(next(self._ordinals), kind)
        return _Plan(self, calls, StruckFunction(func, chaos, kind), chaos, kind, method)

    def pools(self) -> list[tuple[str, Any]]:
        """(kind, pool) of every live pool struck while installed."""
        with self._lock:
            return [(calls.kind, pool) for pool, calls in list(self._pools.items())]

    def saw(self, plan: _Plan, exc: BaseException) -> None:
        """Note what a caller of a struck pool was handed (a line in the state directory's ``seen.jsonl``)."""
        record = {"time": time.time(), "pool": plan.kind, "method": plan.method, "pid": os.getpid(),
                  "seen": type(exc).__name__, "message": str(exc)[:300]}
        try:
            line = (json.dumps(record, sort_keys=True) + "\n").encode()
            fd = os.open(os.path.join(plan.chaos.state_dir, SEEN_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError:  # a report line is not worth failing the user's call
            pass


_MISSING = object()


def read_seen(state_dir: str) -> list[dict[str, Any]]:
    """What callers of struck pools saw, from a state directory (see ``Patches.saw``)."""
    try:
        with open(os.path.join(state_dir, SEEN_FILE), encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except (OSError, ValueError):
        return []


def worker_pids(kind: str, pool: Any) -> list[int]:
    """The worker processes a pool holds right now (best effort, from each library's own bookkeeping)."""
    try:
        if kind == "multiprocessing":
            workers = [process.pid for process in (getattr(pool, "_pool", None) or [])]
        elif kind in ("concurrent.futures", "loky"):
            workers = list((getattr(pool, "_processes", None) or {}).keys())
        elif kind == "mpire":
            workers = [getattr(worker, "pid", None) for worker in (getattr(pool, "_workers", None) or [])]
        else:
            workers = []
    except Exception:  # noqa: BLE001 - private attributes of another library: whatever they hold, no crash
        return []
    return [pid for pid in workers if isinstance(pid, int)]


# ---------------------------------------------------------------------------------------------- the wrappers
# Each factory gets (patches, kind, method name, original function, module) and returns the replacement.

def _mp_apply_async(patches: Patches, kind: str, name: str, original: Callable, module: Any) -> Callable:
    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):  # noqa: B006 - as the original
        plan = None if isinstance(self, module.ThreadPool) else patches.plan(self, kind, name, func)
        if plan is None:
            return original(self, func, args, kwds, callback, error_callback)
        index, call = plan.calls.next_apply()
        return original(self, plan.function, (plan.pack(index, tuple(args), call),), kwds, callback,
                        plan.error_callback(error_callback))
    return apply_async


def _mp_map_async(patches: Patches, kind: str, name: str, original: Callable, module: Any) -> Callable:
    def _map_async(self, func, iterable, mapper, chunksize=None, callback=None, error_callback=None):
        plan = None if isinstance(self, module.ThreadPool) else patches.plan(self, kind, "map", func)
        if plan is None:
            return original(self, func, iterable, mapper, chunksize, callback, error_callback)
        call = plan.calls.next_call()
        if mapper is module.starmapstar:  # starmap unpacks each item: keep it unpacked, inside our package
            packed = [(plan.pack(index, tuple(item), call),) for index, item in enumerate(iterable)]
        else:
            packed = [plan.pack(index, (item,), call) for index, item in enumerate(iterable)]
        return original(self, plan.function, packed, mapper, chunksize, callback, plan.error_callback(error_callback))
    return _map_async


def _mp_imap(patches: Patches, kind: str, name: str, original: Callable, module: Any) -> Callable:
    def imap(self, func, iterable, chunksize=1):
        plan = None if isinstance(self, module.ThreadPool) else patches.plan(self, kind, name, func)
        if plan is None:
            return original(self, func, iterable, chunksize)
        call = plan.calls.next_call()
        packed = (plan.pack(index, (item,), call) for index, item in enumerate(iterable))  # lazy, as imap is
        return original(self, plan.function, packed, chunksize)
    return imap


def _executor_submit(patches: Patches, kind: str, name: str, original: Callable, module: Any) -> Callable:
    def submit(self, fn, /, *args, **kwargs):
        plan = patches.plan(self, kind, name, fn)
        if plan is None:
            return original(self, fn, *args, **kwargs)
        index, call = plan.calls.next_apply()
        return plan.watch_future(original(self, plan.function, plan.pack(index, args, call), **kwargs))
    return submit


def _executor_map(patches: Patches, kind: str, name: str, original: Callable, module: Any) -> Callable:
    def map(self, fn, *iterables, **kwargs):  # noqa: A001 - the method's name
        plan = patches.plan(self, kind, name, fn)
        if plan is None:
            return original(self, fn, *iterables, **kwargs)
        call = plan.calls.next_call()
        packed = (plan.pack(index, args, call) for index, args in enumerate(zip(*iterables, strict=False)))
        # map submits its chunks through submit, which sees our function and leaves it alone
        return plan.watch_iterator(original(self, plan.function, packed, **kwargs))
    return map


def _is_ndarray(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def _mpire_item(plan: _Plan, index: int, item: Any, call: int) -> Any:
    """An item packed so MPIRE's argument rule (dict: keywords, iterable: unpacked, else one argument) still holds."""
    if isinstance(item, dict):
        return {**item, _KWARG: plan.pack(index, (), call)}
    if isinstance(item, Iterable) and not isinstance(item, (str, bytes)) and not _is_ndarray(item):
        return (plan.pack(index, tuple(item), call),)
    return (plan.pack(index, (item,), call),)


def _mpire_plan(patches: Patches, pool: Any, kind: str, name: str, func: Any) -> _Plan | None:
    params = getattr(pool, "pool_params", None)
    if getattr(params, "start_method", None) == "threading":
        return None  # workers are threads of the caller
    return patches.plan(pool, kind, name, func)


def _mpire_apply_async(patches: Patches, kind: str, name: str, original: Callable, module: Any) -> Callable:
    def apply_async(self, func, args=(), kwargs=None, callback=None, error_callback=None, *rest, **more):
        plan = _mpire_plan(patches, self, kind, name, func)
        if plan is None:
            return original(self, func, args, kwargs, callback, error_callback, *rest, **more)
        index, call = plan.calls.next_apply()
        if isinstance(args, dict) and kwargs is None:
            positional, keywords = (), args
        elif isinstance(args, Iterable) and not isinstance(args, (str, bytes)) and not _is_ndarray(args):
            positional, keywords = tuple(args), kwargs
        else:
            positional, keywords = (args,), kwargs
        return original(self, plan.function, (plan.pack(index, positional, call),), keywords or {}, callback,
                        plan.error_callback(error_callback), *rest, **more)
    return apply_async


def _mpire_map(patches: Patches, kind: str, name: str, original: Callable, module: Any) -> Callable:
    lazy = name.startswith("imap")

    def mapper(self, func, iterable_of_args, iterable_len=None, *rest, **more):
        plan = None if _is_ndarray(iterable_of_args) else _mpire_plan(patches, self, kind, name, func)
        if plan is None:  # numpy input is chunked by MPIRE itself into sub-arrays: left alone
            return original(self, func, iterable_of_args, iterable_len, *rest, **more)
        if iterable_len is None and hasattr(iterable_of_args, "__len__"):
            iterable_len = len(iterable_of_args)  # MPIRE sizes its chunks from it, as without chaos
        call = plan.calls.next_call()
        packed = (_mpire_item(plan, index, item, call) for index, item in enumerate(iterable_of_args))
        if lazy:
            return plan.watch_iterator(original(self, plan.function, packed, iterable_len, *rest, **more))
        return plan.watch_call(lambda: original(self, plan.function, packed, iterable_len, *rest, **more))
    mapper.__name__ = name
    return mapper


_TARGETS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "multiprocessing": [("multiprocessing.pool", "Pool", ("apply_async", "_map_async", "imap", "imap_unordered"))],
    "concurrent.futures": [("concurrent.futures.process", "ProcessPoolExecutor", ("submit", "map"))],
    "loky": [("loky.process_executor", "ProcessPoolExecutor", ("submit", "map")),
             ("joblib.externals.loky.process_executor", "ProcessPoolExecutor", ("submit", "map"))],
    "mpire": [("mpire.pool", "WorkerPool", ("apply_async", "map", "map_unordered", "imap", "imap_unordered"))],
}
_WRAPPERS: dict[tuple[str, str], Callable[..., Callable]] = {
    ("multiprocessing", "apply_async"): _mp_apply_async,
    ("multiprocessing", "_map_async"): _mp_map_async,
    ("multiprocessing", "imap"): _mp_imap,
    ("multiprocessing", "imap_unordered"): _mp_imap,
    ("concurrent.futures", "submit"): _executor_submit,
    ("concurrent.futures", "map"): _executor_map,
    ("loky", "submit"): _executor_submit,
    ("loky", "map"): _executor_map,
    ("mpire", "apply_async"): _mpire_apply_async,
    **{("mpire", name): _mpire_map for name in ("map", "map_unordered", "imap", "imap_unordered")},
}


# ---------------------------------------------------------------------------------------------- entry points
_from_environment: Patches | None = None


def install_from_environment(environ: Mapping[str, str] | None = None) -> Patches | None:
    """Patch foreign pools in this interpreter when ``MP_CHAOS`` asks (the ``.pth`` hook calls this).

    Nothing happens when ``MP_CHAOS`` is unset or empty, or when
    ``MP_CHAOS_SUBPROCESS=0``. ``MP_CHAOS_POOLS`` picks the kinds (default:
    every installed one). Never raises: a bad value is one line on stderr,
    not a broken interpreter.
    """
    global _from_environment
    environ = os.environ if environ is None else environ
    if not environ.get(environment.SPEC, "").strip() or environ.get(environment.SUBPROCESS, "").strip() == "0":
        return None
    if _from_environment is not None and _from_environment.installed:
        return _from_environment
    try:
        kinds = parse_kinds(environ.get(environment.POOLS), environment.POOLS)
    except ValueError as exc:
        sys.stderr.write(f"mpire_fault chaos: foreign pools not patched: {exc}\n")
        return None
    _from_environment = Patches(None, [kind for kind in kinds if kind in FOREIGN_KINDS]).install()
    return _from_environment
