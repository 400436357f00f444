"""Task functions for the pool suite, importable by spawn and forkserver workers.

Every task that must be counted touches a marker file
``<directory>/<item>.<pid>.<uuid>`` when it starts, so a test can prove that
no task ran twice and none was lost, whatever happened to the workers.

The ``*Bomb`` objects explode at one serialization boundary each: ``ArgsBomb``
when a worker unpickles the task's arguments, ``ResultBomb`` when a worker
pickles the result, ``ParentBomb`` when the parent pickles the arguments or
unpickles the result.

What the tests read in the parent (marker counts, waits) is in ``observe.py``.
"""
from __future__ import annotations

import os
import signal
import sys
import time
import uuid

# ---------------------------------------------------------------------------
# Errors


class BoundaryError(Exception):
    """Raised by the bombs, so a test can tell "the original type" from any other error."""


class TaskError(Exception):
    """A task's own exception."""


# ---------------------------------------------------------------------------
# Marker files


def touch(directory: str, i: int, tag: str = "") -> None:
    name = f"{i}.{os.getpid()}.{uuid.uuid4().hex}{tag}"
    with open(os.path.join(directory, name), "w"):
        pass


def _die(action: str) -> None:
    """Perform one way of dying (or hanging) in a worker."""
    if action == "exit3":
        sys.exit(3)
    elif action == "os_exit0":
        os._exit(0)
    elif action == "os_exit5":
        os._exit(5)
    elif action == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "sigsegv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif action == "hang":
        time.sleep(60)
    elif action == "raise":
        raise BoundaryError("raised on purpose")
    elif action.startswith("os_exit"):
        os._exit(int(action[len("os_exit"):]))
    elif action.startswith("exit"):
        sys.exit(int(action[len("exit"):]))
    else:
        raise AssertionError(f"unknown action {action!r}")
    time.sleep(10)  # a signal is delivered asynchronously; never return from a death


# ---------------------------------------------------------------------------
# Bombs


def _explode_args(action: str, i: int):
    if action == "raise":
        raise BoundaryError(f"arguments of item {i} refuse to unpickle")
    _die(action)


class ArgsBomb:
    """Pickles fine in the parent; unpickling it in the worker raises or dies."""

    def __init__(self, action: str, i: int) -> None:
        self.action, self.i = action, i

    def __reduce__(self):
        return (_explode_args, (self.action, self.i))


def _refuse(*_args):
    raise AssertionError("a ResultBomb must never be unpickled")


class ResultBomb:
    """Returned by a task; pickling it in the worker raises or dies."""

    def __init__(self, action: str, i: int) -> None:
        self.action, self.i = action, i

    def __reduce__(self):
        if self.action == "raise":
            raise BoundaryError(f"result of item {self.i} refuses to pickle")
        _die(self.action)
        return (_refuse, ())


def _explode_in_parent(action: str, i: int):
    if action == "exit":
        raise SystemExit(f"SystemExit while unpickling the result of item {i}")
    raise BoundaryError(f"result of item {i} refuses to unpickle")


class ParentResultBomb:
    """Pickles fine in the worker; unpickling it (which only the parent does) raises."""

    def __init__(self, action: str, i: int) -> None:
        self.action, self.i = action, i

    def __reduce__(self):
        return (_explode_in_parent, (self.action, self.i))


def _slow_to_load(seconds: float, value):
    time.sleep(seconds)
    return value


class SlowToLoad:
    """A result whose unpickling (in the parent) takes ``seconds``."""

    def __init__(self, seconds: float, value) -> None:
        self.seconds, self.value = seconds, value

    def __reduce__(self):
        return (_slow_to_load, (self.seconds, self.value))


def return_slow_to_load(seconds: float, value):
    return SlowToLoad(seconds, value)


class ParentArgsBomb:
    """Refuses to be pickled in the parent (raising ``BoundaryError`` or ``SystemExit``)."""

    def __init__(self, action: str) -> None:
        self.action = action

    def __reduce__(self):
        if self.action == "exit":
            raise SystemExit("SystemExit while pickling the arguments")
        raise BoundaryError("arguments refuse to pickle")


# ---------------------------------------------------------------------------
# Tasks


def work(directory: str, i: int, action: str | None = None, delay: float = 0.0, bomb=None):
    """Touch a marker, nap, then die in the way ``action`` says (or return ``i``).

    ``bomb`` is only there to carry an ``ArgsBomb`` in the arguments.
    """
    touch(directory, i)
    if delay:
        time.sleep(delay)
    if action is None:
        return i
    if action.startswith("result:"):
        return ResultBomb(action[len("result:"):], i)
    if action.startswith("parent:"):
        return ParentResultBomb(action[len("parent:"):], i)
    _die(action)


def quick(x):
    return x


def square(x):
    return x * x


def getpid(_x=None):
    return os.getpid()


def sleep_then(seconds: float, value=None):
    time.sleep(seconds)
    return value


def nap_pid(seconds: float = 0.05):
    time.sleep(seconds)
    return os.getpid()


def raise_task_error(i):
    raise TaskError(f"task {i} failed on purpose")


class UnpicklableError(Exception):
    """An exception carrying something that cannot be pickled."""

    def __init__(self, i):
        super().__init__(f"unpicklable error {i}")
        self.lock = __import__("threading").Lock()


def raise_unpicklable(i):
    raise UnpicklableError(i)


def echo_size(blob: bytes, i: int, action: str | None = None):
    """Return a payload as big as the argument (plus ``i``), or die."""
    if action is not None:
        _die(action)
    return i, len(blob), blob[:16] + blob[-16:], bytes(len(blob))


def die_once(directory: str, i: int):
    """SIGKILL the worker the first time it runs; succeed the second time."""
    flag = os.path.join(directory, f"died-once-{i}")
    touch(directory, i)
    try:
        fd = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return i
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)


def die_always(directory: str, i: int):
    touch(directory, i)
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)


def wait_for_file_then(path: str, action: str | None = None, limit: float = 10.0):
    """Block until ``path`` exists (bounded), then ``_die(action)`` (or return at once for None)."""
    if action is None:
        return None
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    _die(action)


def write_pid_and_sleep(path: str, seconds: float):
    """Announce our pid in ``path`` (atomically), then sleep."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(tmp, path)
    time.sleep(seconds)
    return "slept"


def kill_pid_from_file(path: str, delay: float = 0.0, limit: float = 10.0):
    """Wait for another worker's pid in ``path``, then ``delay`` s, and SIGKILL it (workers killing each other)."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.001)
    with open(path) as fh:
        victim = int(fh.read())
    if victim == os.getpid():  # the victim already finished, here: nobody to kill
        return None
    if delay:
        time.sleep(delay)
    os.kill(victim, signal.SIGKILL)
    return victim


def pid_then_big_result(path: str, size: int):
    """Announce our pid, then build and return ``size`` bytes (a sibling kills us somewhere along the way)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(tmp, path)
    return b"\x07" * size


def fork_grandchild_then(path: str, action: str, seconds: float = 20.0):
    """Fork a grandchild that outlives us (it holds copies of every fd we have), then ``_die(action)``."""
    pid = os.fork()
    if pid == 0:  # the grandchild: keep the inherited fds open for a while
        try:
            time.sleep(seconds)
        finally:
            os._exit(0)
    with open(f"{path}.tmp", "w") as fh:
        fh.write(str(pid))
    os.replace(f"{path}.tmp", path)
    _die(action)


def victim_or_killer(pid_file: str, which: int):
    """Item 0 announces its pid and sleeps; item 1 kills it."""
    return write_pid_and_sleep(pid_file, 30) if which == 0 else kill_pid_from_file(pid_file)


def nested_sum_of_squares(n: int) -> int:
    """Run a pool inside a worker (the outer pool must use daemon=False)."""
    from mpire_fault import WorkerPool

    with WorkerPool(2, start_method="fork") as inner:
        return sum(inner.map(square, range(n)))


def grow_memory(limit_mib: int, step_mib: int = 10):
    """Allocate and touch memory step by step up to ``limit_mib``, then hold it briefly."""
    blocks = []
    for _ in range(limit_mib // step_mib):
        block = bytearray(step_mib * 2**20)
        block[::4096] = b"\x01" * len(range(0, len(block), 4096))  # touch every page: real RSS
        blocks.append(block)
        time.sleep(0.01)
    time.sleep(5)  # the memory watchdog should have killed us by now
    return sum(len(b) for b in blocks)


def die_on(x, doomed):
    """Trivial (microseconds) except item ``doomed``, which SIGKILLs its worker: fast items run in batches."""
    if x == doomed:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def stamped_spin(shared, i, seconds):
    """Record when item i started (into a shared array), then spin for ``seconds``."""
    shared[i] = time.monotonic()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return i


def raise_on(x, doomed):
    if x == doomed:
        raise ValueError(f"item {x} refuses")
    return x


def sigkill_at(x: int, at: int = 37) -> int:
    """A trivial map item, except ``at``, which SIGKILLs its worker (mid-batch: the items before it are fast)."""
    if x == at:
        os.kill(os.getpid(), signal.SIGKILL)
    return x + 1


def meet_once(shared, worker_state, x):
    """MPIRE's test_dont_keep_alive: each worker's first item waits until every worker has one."""
    barrier, counter = shared
    if not worker_state.get("met"):
        with counter.get_lock():
            counter.value += 1
        worker_state["met"] = True
        barrier.wait(timeout=20)
    return x * 2


def start_subprocess_then_hang(path: str, seconds: float = 30.0):
    """Start a subprocess (``sleep``), write its pid to ``path``, then block, swallowing the soft timeout
    (as code with a broad ``except`` would), until the pool kills us."""
    import subprocess

    child = subprocess.Popen(["sleep", str(seconds)])
    with open(f"{path}.tmp", "w") as fh:
        fh.write(str(child.pid))
    os.replace(f"{path}.tmp", path)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except BaseException:  # noqa: BLE001, S110 - on purpose: only the hard kill ends this task
            pass


def start_or_die(path: str, which: int):
    """Item 0 starts a subprocess and hangs; item 1 waits for it, then kills its own worker (the map aborts)."""
    if which == 0:
        start_subprocess_then_hang(path)
        return 0
    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)
