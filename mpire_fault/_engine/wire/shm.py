"""Big payloads through shared memory instead of the pipes.

Pickle protocol 5 hands every buffer that supports it (numpy arrays, and
``PickleBuffer`` objects) to a ``buffer_callback``, which may keep it out of
the pickle stream. When the buffers kept out of band add up to
``THRESHOLD`` or more, they are written into one POSIX shared-memory
segment (``/dev/shm``) and only the small pickle stream plus the segment's
name travel through the pipe. The reader maps the segment and hands views
of it to ``pickle.loads(..., buffers=...)``: numpy arrays come back as views
of the mapping, without a copy. ``bytes`` and ``bytearray`` have no
out-of-band form of their own; those of ``THRESHOLD`` or more are sent as
persistent ids that carry a ``PickleBuffer`` of them.

Who owns a segment, so none outlives its use (``/dev/shm`` is not freed by
a process ending):

* Arguments: the parent creates the segment while it pickles a task (in the
  caller's thread) and the task's payload object owns it: the name is
  unlinked when the payload is dropped, that is when the task was answered,
  failed or discarded. A task sent again after a worker's death keeps its
  payload, so the next worker maps the same segment. Workers map arguments
  copy-on-write (``MAP_PRIVATE``): a task that changes its argument in place
  and dies leaves the segment as it was for the retry. Argument segments are
  registered with multiprocessing's resource tracker, which unlinks them if
  the parent is killed (even by SIGKILL) before it could.
* Results: a worker creates the segment and names it after itself; the
  supervisor maps it and unlinks the name as soon as it reads the answer
  (``adopt``), so the memory lives exactly as long as the arrays that view
  it. What a worker wrote but never announced (it died in between) is
  unlinked by name after its death, and whatever is left when a pool's
  supervisor ends is unlinked then.
* Every name starts with ``mpf_<pid>_<start time>_<pid namespace>_``, the
  parent's identity: two containers sharing ``/dev/shm`` may both run a
  PID 1 started in the same clock tick. (The namespace comes third so that
  an older version, which reads the first two, still sees our parent alive.) Each new pool removes the segments
  of parents that no longer exist (a parent SIGKILLed while a worker was
  writing a result), but only those it can prove were made in its own PID
  namespace by its own uid (``_core/owners.py``): another container's pids
  cannot be looked up from here, and another user's segments are theirs.

The threading start method copies nothing and never comes here.
"""
from __future__ import annotations

import ctypes
import io
import itertools
import mmap
import os
import re
import sys
import weakref
from pickle import PickleBuffer
from typing import Any

from ..._platform.owners import ours, pid_namespace, start_ticks, sweepable_here

THRESHOLD = 1 << 20  # bytes of buffers in one payload from which shared memory pays off
MIN_BUFFER = 64 << 10  # smaller buffers are packed together when written
ALIGN = 64  # each buffer starts on a cache line: numpy needs aligned data for its fast paths
SCAN_BUDGET = 4096  # containers' elements looked at for big bytes objects (see _holds_big_bytes)
SHM_DIR = "/dev/shm"

try:
    import _posixshmem
except ImportError:  # not POSIX
    _posixshmem = None  # type: ignore[assignment]

AVAILABLE = _posixshmem is not None and sys.platform.startswith("linux") and os.path.isdir(SHM_DIR)

_pool_numbers = itertools.count()
_segment_numbers = itertools.count()
_NAME = re.compile(r"mpf_(\d+)_(\d+)_(\d+)_")  # pid, start ticks, pid namespace
_libc: Any = None


def pool_prefix() -> str | None:
    """A fresh name prefix for one pool's segments (None: shared memory unavailable here).

    Creating one also removes segments left by parents that no longer exist.
    """
    if not AVAILABLE:
        return None
    sweep_stale()
    # 0 and None where /proc cannot tell: such names are never swept by another pool, only by their own
    return f"mpf_{os.getpid()}_{start_ticks()}_{pid_namespace() or 0}_{next(_pool_numbers)}_"


# ---------------------------------------------------------------- mapping without a file descriptor
def _mmap(fd: int, size: int, private: bool) -> memoryview:
    """Map ``size`` bytes of ``fd``; unmapped when the last view of it is gone.

    ``mmap.mmap`` keeps a duplicate of the descriptor open for the life of
    the mapping, and results can be many and long-lived: a program holding a
    few thousand of them would run out of descriptors. libc's mmap keeps none.
    """
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        _libc = libc
    flags = mmap.MAP_PRIVATE if private else mmap.MAP_SHARED
    address = _libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, flags, fd, 0)
    if address is None or address == ctypes.c_void_p(-1).value:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mmap of a shared-memory segment failed: {os.strerror(errno)}")
    region = (ctypes.c_ubyte * size).from_address(address)
    # Not at interpreter exit: arrays may still view the region then.
    weakref.finalize(region, _libc.munmap, address, size).atexit = False
    return memoryview(region).cast("B")


def _open(name: str, private: bool, size: int) -> memoryview:
    fd = _posixshmem.shm_open("/" + name, os.O_RDONLY if private else os.O_RDWR, 0)
    try:
        return _mmap(fd, size, private)
    finally:
        os.close(fd)


def _write(fd: int, view: memoryview, offset: int) -> None:
    written = 0
    while written < view.nbytes:  # one pwrite moves at most 2 GiB
        written += os.pwrite(fd, view[written:], offset + written)


def _unlink(name: str) -> bool:
    try:
        _posixshmem.shm_unlink("/" + name)
        return True
    except OSError:  # already gone, or not ours
        return False


# ---------------------------------------------------------------- what travels through the pipe
def _persistent_load(pid: tuple) -> Any:
    is_bytearray, buffer = pid
    return bytearray(buffer) if is_bytearray else bytes(buffer)


def _unpickle(codec: Any, data: bytes, buffers: list, has_ids: bool) -> Any:
    if not has_ids:
        return codec.loads(data, buffers=buffers)
    unpickler = codec.Unpickler(io.BytesIO(data), buffers=buffers)
    unpickler.persistent_load = _persistent_load
    return unpickler.load()


class Shared:
    """A pickle whose big buffers are in a shared-memory segment (what ``Serializer.dumps`` returns for them).

    Pickled (into a pipe message) it becomes a plain reference: the name,
    the buffers' places, and the pickle stream. Only the object the parent
    created owns the segment (a finalizer unlinks it when the object goes).
    """

    __slots__ = ("name", "size", "layout", "data", "has_ids", "__weakref__")

    def __init__(self, name: str, size: int, layout: tuple, data: bytes, has_ids: bool) -> None:
        self.name, self.size, self.layout, self.data, self.has_ids = name, size, layout, data, has_ids

    def __reduce__(self) -> tuple:  # a reference, without the finalizer
        return (Shared, (self.name, self.size, self.layout, self.data, self.has_ids))

    def load(self, codec: Any) -> Any:
        """Map the segment copy-on-write and unpickle (a worker reading its arguments)."""
        view = _open(self.name, True, self.size)
        return _unpickle(codec, self.data, [view[start:start + n] for start, n in self.layout], self.has_ids)

    def adopt(self) -> Mapped:
        """Map the segment and unlink its name: the mapping is now the only way to it (the parent, on a result)."""
        try:
            view = _open(self.name, False, self.size)
        except OSError as exc:
            return Mapped(None, self.layout, self.data, self.has_ids, exc)
        finally:
            _unlink(self.name)
        return Mapped(view, self.layout, self.data, self.has_ids)


class Mapped:
    """A result already mapped into the parent; its segment has no name any more."""

    __slots__ = ("view", "layout", "data", "has_ids", "error")

    def __init__(self, view: memoryview | None, layout: tuple, data: bytes, has_ids: bool,
                 error: BaseException | None = None) -> None:
        self.view, self.layout, self.data, self.has_ids, self.error = view, layout, data, has_ids, error

    def load(self, codec: Any) -> Any:
        if self.error is not None:
            raise self.error
        view = self.view
        assert view is not None  # mapped in __init__ whenever error is None
        return _unpickle(codec, self.data, [view[start:start + n] for start, n in self.layout], self.has_ids)


class Inline:
    """Out-of-band buffers that were too small (or found no room in ``/dev/shm``): copied into the message."""

    __slots__ = ("data", "buffers", "has_ids")

    def __init__(self, data: bytes, buffers: list, has_ids: bool) -> None:
        self.data, self.buffers, self.has_ids = data, buffers, has_ids

    def __reduce__(self) -> tuple:
        return (Inline, (self.data, self.buffers, self.has_ids))

    def load(self, codec: Any) -> Any:
        return _unpickle(codec, self.data, self.buffers, self.has_ids)

    def adopt(self) -> Inline:  # nothing to take over
        return self


# ---------------------------------------------------------------- writing segments
def _release_arguments(name: str) -> None:
    _unlink(name)
    try:
        from multiprocessing import resource_tracker

        resource_tracker.unregister("/" + name, "shared_memory")
    except Exception:  # noqa: BLE001 - interpreter shutdown
        pass


class Segments:
    """Creates the segments of one side: a pool's arguments (owned, tracked) or one worker's results."""

    __slots__ = ("prefix", "owned")

    def __init__(self, prefix: str, owned: bool) -> None:
        self.prefix, self.owned = prefix, owned

    @classmethod
    def arguments(cls, pool_prefix: str) -> Segments:
        return cls(pool_prefix + "a", owned=True)

    @classmethod
    def results(cls, pool_prefix: str) -> Segments:
        """In a worker process: names that say which worker wrote them, so its death can clean up."""
        return cls(f"{pool_prefix}r{os.getpid()}_", owned=False)

    def export(self, data: bytes, buffers: list[memoryview], has_ids: bool) -> Shared:
        layout, size = [], 0
        for view in buffers:
            layout.append((size, view.nbytes))
            size += -(-view.nbytes // ALIGN) * ALIGN
        name = f"{self.prefix}{next(_segment_numbers)}"
        fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, size)
            packed, packed_at = bytearray(), 0  # small buffers go in one write
            for view, (offset, n) in zip(buffers, layout, strict=True):
                if n < MIN_BUFFER:
                    if not packed:
                        packed_at = offset
                    packed += bytes(offset - packed_at - len(packed))
                    packed += view
                    continue
                if packed:
                    _write(fd, memoryview(packed), packed_at)
                    packed = bytearray()
                _write(fd, view, offset)
            if packed:
                _write(fd, memoryview(packed), packed_at)
        except BaseException:
            _unlink(name)
            raise
        finally:
            os.close(fd)
        shared = Shared(name, size, tuple(layout), data, has_ids)
        if self.owned:
            from multiprocessing import resource_tracker

            resource_tracker.register("/" + name, "shared_memory")  # unlinks it if this process is killed
            weakref.finalize(shared, _release_arguments, name)
        return shared


def _big_bytes_id(obj: Any) -> Any:
    kind = type(obj)
    if (kind is bytes or kind is bytearray) and len(obj) >= THRESHOLD:
        return (kind is bytearray, PickleBuffer(obj))
    return None


def _holds_big_bytes(obj: Any) -> bool:
    """Whether a bytes or bytearray of ``THRESHOLD`` or more sits near the top of ``obj``.

    Pickle writes those in band and offers no hook for them short of a
    persistent id, which costs a Python call per object; so they are looked
    for first, four levels deep (a map item's arguments, an apply's args and
    kwargs, a result's fields) and in at most ``SCAN_BUDGET`` elements. One
    deeper or further along simply travels through the pipe, as before.
    """
    budget = SCAN_BUDGET
    level = [obj]
    for _ in range(5):
        deeper = []
        for item in level:
            kind = type(item)
            if kind is bytes or kind is bytearray:
                if len(item) >= THRESHOLD:
                    return True
            elif kind is tuple or kind is list or kind is dict:
                values = item.values() if kind is dict else item
                if len(values) > budget:
                    values = list(itertools.islice(values, budget))
                budget -= len(values)
                deeper.extend(values)
                if budget <= 0:
                    break
        if not deeper:
            return False
        level = deeper
    return False


def _pickle_filtered(obj: Any, codec: Any, with_ids: bool) -> tuple[bytes, list[memoryview]]:
    """Pickle again, keeping out of band only contiguous buffers of ``MIN_BUFFER`` or more."""
    kept: list[memoryview] = []

    def keep(buffer: PickleBuffer) -> bool:
        try:
            raw = buffer.raw()
        except BufferError:  # not contiguous: in band
            return True
        if raw.nbytes < MIN_BUFFER:
            return True
        kept.append(raw)
        return False

    stream = io.BytesIO()
    pickler = codec.Pickler(stream, protocol=5, buffer_callback=keep)
    if with_ids:
        pickler.persistent_id = _big_bytes_id
    pickler.dump(obj)
    return stream.getvalue(), kept


def out_of_band(obj: Any, data: bytes, buffers: list[PickleBuffer], codec: Any, segments: Segments) -> Any:
    """The rest of ``Serializer.dumps`` once ``data`` has buffers out of band or is big.

    ``data`` was pickled with every buffer out of band (collecting them costs
    nothing per object; deciding which to keep would cost a Python call each).
    Returns bytes, an ``Inline`` or a ``Shared``.
    """
    has_ids = False
    if len(data) >= THRESHOLD and _holds_big_bytes(obj):
        (data, views), has_ids = _pickle_filtered(obj, codec, True), True
    else:
        try:
            views = [buffer.raw() for buffer in buffers]
        except BufferError:  # a non-contiguous buffer must go back in band
            data, views = _pickle_filtered(obj, codec, False)
    if not views:
        return data
    if sum(view.nbytes for view in views) >= THRESHOLD:
        try:
            return segments.export(data, views, has_ids)
        except OSError:  # /dev/shm full or not writable: the pipe still works
            pass
    # Copied now, since the caller may change its array before the message is
    # sent; writable ones as bytearray, or their arrays would come back read-only.
    return Inline(data, [bytes(view) if view.readonly else bytearray(view) for view in views], has_ids)


# ---------------------------------------------------------------- cleaning up
def _names(start: str) -> list[str]:
    return [name for name in os.listdir(SHM_DIR) if name.startswith(start)]


def sweep(start: str | None) -> int:
    """Unlink every segment whose name starts with ``start``; how many were."""
    if not start or not AVAILABLE:
        return 0
    return sum(_unlink(name) for name in _names(start))


def sweep_worker(pool_prefix: str | None, pid: int | None) -> int:
    """A worker ended: unlink the results it wrote and never announced."""
    return sweep(f"{pool_prefix}r{pid}_") if pool_prefix and pid is not None else 0


def sweep_stale() -> int:
    """Unlink segments of parents that no longer exist (killed before they could clean up).

    Only our own: made in our PID namespace, by our uid (see ``_core/owners.py``).
    """
    namespace = sweepable_here()
    if namespace is None:
        return 0
    removed = 0
    for name in _names("mpf_"):
        match = _NAME.match(name)
        if (match and int(match[3]) == namespace and start_ticks(int(match[1])) != match[2]
                and ours(os.path.join(SHM_DIR, name))):
            removed += _unlink(name)
    return removed
