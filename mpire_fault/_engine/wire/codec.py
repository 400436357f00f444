"""Serialization at the four process boundaries.

Arguments are pickled in the parent (``task-args``), unpickled in the worker
(``task-args``), results pickled in the worker (``result``) and unpickled in
the parent (``result``). A failure at any of them fails that one task with
the original exception and a note naming the boundary; it never fails the
pool. ``use_dill=True`` swaps pickle for dill so lambdas and closures work.
"""
from __future__ import annotations

import copyreg
import io
import pickle
from collections.abc import Callable
from typing import Any

from ..._core.remote import RESULT, TASK_ARGS, Codec
from . import shm

__all__ = ["RESULT", "TASK_ARGS", "Codec", "Serializer", "as_multiprocessing"]


class Serializer:
    """``dumps``/``loads`` for user payloads, backed by pickle or dill.

    With ``segments``, ``dumps`` puts big buffers in shared memory and may
    return a ``shm.Shared`` instead of bytes; ``loads`` accepts bytes and
    every form ``shm`` produces. ``inband_dumps`` always returns bytes.
    """

    __slots__ = ("use_dill", "dumps", "loads", "inband_dumps")

    def __init__(self, use_dill: bool = False, segments: shm.Segments | None = None) -> None:
        self.use_dill = use_dill
        codec: Any = pickle
        if use_dill:
            import dill

            codec = dill

        def inband_dumps(obj: Any) -> bytes:
            try:
                return codec.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001 - retried as multiprocessing pickles, else this error
                return as_multiprocessing(codec, obj, pickle.HIGHEST_PROTOCOL, None, exc)

        plain_loads = codec.loads

        def loads(data: Any) -> Any:
            if type(data) is bytes:
                return plain_loads(data)
            return data.load(codec) if isinstance(data, (shm.Shared, shm.Mapped, shm.Inline)) else plain_loads(data)

        self.inband_dumps = inband_dumps
        self.loads: Callable[[Any], Any] = loads
        if segments is None:
            self.dumps: Callable[[Any], Any] = inband_dumps
            return
        codec_dumps, out_of_band, threshold = codec.dumps, shm.out_of_band, shm.THRESHOLD

        def dumps(obj: Any) -> Any:
            buffers: list = []
            try:
                data = codec_dumps(obj, protocol=5, buffer_callback=buffers.append)  # every buffer out of band
            except Exception as exc:  # noqa: BLE001 - retried as multiprocessing pickles, else this error
                buffers.clear()
                data = as_multiprocessing(codec, obj, 5, buffers.append, exc)
            if buffers or len(data) >= threshold:
                return out_of_band(obj, data, buffers, codec, segments)
            return data  # the common case: no buffer at all, small

        self.dumps = dumps

    def __reduce__(self):
        # Segments stay behind: they name (and may own) segments of the process that made them.
        return (Serializer, (self.use_dill,))


_DICT_VIEWS = tuple(type(getattr({}, name)()) for name in ("items", "keys", "values"))


def _as_list(view: Any) -> tuple[Any, tuple]:
    return list, (list(view),)


def as_multiprocessing(codec: Any, obj: Any, protocol: int, buffer_callback: Callable | None,
                       error: Exception) -> bytes:
    """``obj`` pickled with the reducers multiprocessing's queues add, or ``error`` if that fails too.

    MPIRE sends through those queues, so what they can send must go here too:
    a dict view (``d.items()`` as a result) arrives as a list, as
    ``multiprocessing.managers`` makes it; sockets and connections travel as
    multiprocessing hands them over. Only a failed plain pickling pays for it.
    """
    from multiprocessing.reduction import ForkingPickler

    table = dict(copyreg.dispatch_table)
    table.update(ForkingPickler._extra_reducers)  # type: ignore[attr-defined]
    for view in _DICT_VIEWS:
        table.setdefault(view, _as_list)
    buffer = io.BytesIO()
    try:
        pickler = codec.Pickler(buffer, protocol=protocol, buffer_callback=buffer_callback)
        pickler.dispatch_table = table
        pickler.dump(obj)
    except Exception:  # noqa: BLE001 - the first error is the one that explains
        raise error from None
    return buffer.getvalue()
