"""``--mp-chaos-hang-after=SECONDS``: a test still running that long after a fault it caused fails with a verdict.

A ``multiprocessing.Pool`` whose worker dies in the middle of a task never
returns to the caller, so the verdict cannot come from the test's own
thread. One daemon thread per pytest process watches the running test's
journal file; when the latest fault is older than the bound and the test is
still running, it writes the verdict (what struck which pool, the stacks of
the waiting threads, the reproduce line) and interrupts the main thread the
way pytest-timeout's signal method does: ``SIGALRM``, whose handler raises
the failure there. Our handler is installed only while a test phase runs,
on top of whatever handler was there (pytest-timeout's): a ``SIGALRM`` that
is not ours goes on to it, so pytest-timeout still fires when no fault
happened. Killing the pool's workers first would be worse: a worker killed
while holding the pool's queue lock wedges ``Pool.terminate()``, which the
test's ``with`` block runs on the way out. The workers are reaped after the
test instead (``reap``), and killed outright when the interrupted test hangs
again (a second fire, a few seconds later).
"""
from __future__ import annotations

import _signal
import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest

POLL = 0.2  # seconds between looks at the journal
REFIRE = 5.0  # seconds between a fire and the next, when the test still does not end
MAX_FIRES = 3
_ACTIONS = {"sigkill": "SIGKILLed", "sigterm": "sent SIGTERM", "sigsegv": "crashed with SIGSEGV"}


_SUPPORTED = hasattr(signal, "pthread_kill") and hasattr(signal, "SIGALRM")


def supported() -> bool:
    return _SUPPORTED


class Watch:
    """The running test, as the watchdog sees it."""

    def __init__(self, nodeid: str, journal_path: str, hang_after: float, pools: Callable[[], list[tuple[str, Any]]],
                 reproduce: Callable[[], str]) -> None:
        self.nodeid = nodeid
        self.journal_path = journal_path
        self.hang_after = hang_after
        self.pools = pools
        self.reproduce = reproduce
        self.lock = threading.Lock()
        self.armed = False  # our SIGALRM handler is installed (a test phase is running)
        self.verdict: str | None = None  # the failure text, once fired
        self._pending = False  # fired and not yet raised in the main thread
        self.fires = 0
        self.fired_at = 0.0
        self.last_fault: float | None = None
        self.killed: list[int] = []
        self._size = -1
        self._main = threading.main_thread().ident
        self.on_main = threading.current_thread() is threading.main_thread()

    # ---------------------------------------------------------------- main thread
    def take(self) -> str | None:
        with self.lock:
            if not self._pending:
                return None
            self._pending = False
            return self.verdict

    # ---------------------------------------------------------------- watchdog thread
    def poll(self, now: float) -> None:
        self._read_faults()
        if self.last_fault is None or now < self.last_fault + self.hang_after:
            return
        if self.fires >= MAX_FIRES or (self.fires and now < self.fired_at + REFIRE):
            return
        if self.fires:  # the interrupted test hangs again (a pool's cleanup): its workers must go now
            self._kill_workers()
        with self.lock:
            if not self.armed or not self.on_main:
                return
            if self.verdict is None:
                self.verdict = self._describe(now)
            self._pending = True
            self.fires += 1
            self.fired_at = now
            assert self._main is not None
            signal.pthread_kill(self._main, signal.SIGALRM)

    def _read_faults(self) -> None:
        try:
            size = os.stat(self.journal_path).st_size
        except OSError:
            return
        if size == self._size:
            return
        self._size = size
        from mpire_fault.chaos.journal import read

        entries = read(self.journal_path)
        if entries:
            self.last_fault = max(entry.time for entry in entries)

    def _describe(self, now: float) -> str:
        from mpire_fault.chaos.journal import read
        from mpire_fault.chaos.patching import LABELS

        entries = read(self.journal_path)
        last = max(entries, key=lambda entry: entry.time)
        pool = LABELS.get(last.pool or "mpire_fault", last.pool or "pool")
        name = last.action.partition("(")[0]
        what = _ACTIONS.get(name, f"struck by {last.action}")
        task = f"task {last.task_index}" if last.task_index is not None else "no task"
        lines = [f"mp-chaos hang verdict: {pool}: worker pid {last.pid} was {what} by chaos during {task} "
                 f"({last.site}); the call has not returned for {now - last.time:.0f} s "
                 f"(--mp-chaos-hang-after={self.hang_after:g})."]
        if len(entries) > 1:
            lines.append(f"faults in this test: {len(entries)}, the first "
                         f"{entries[0].site}={entries[0].action} in pid {entries[0].pid}")
        lines.append(f"reproduce: {self.reproduce()}")
        lines.append("")
        lines.append("stacks of the waiting threads:")
        lines.extend(_stacks())
        return "\n".join(lines)

    def _kill_workers(self) -> None:
        for kind, pool in self.pools():
            self.killed.extend(kill_workers(kind, pool))


def _stacks() -> list[str]:
    """The innermost frames of every thread but the watchdog, the main thread (the waiting test) first."""
    me, main = threading.get_ident(), threading.main_thread().ident
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    lines = []
    frames = sorted(sys._current_frames().items(), key=lambda pair: pair[0] != main)
    for ident, frame in frames:
        if ident == me:
            continue
        lines.append(f"--- {names.get(ident, '<unknown>')} ({ident}) ---")
        lines.extend(line.rstrip("\n") for line in traceback.format_stack(frame)[-6:])
    return lines


def kill_workers(kind: str, pool: Any) -> list[int]:
    """SIGKILL the worker processes ``pool`` holds; the pids that were signalled."""
    from mpire_fault.chaos.patching import worker_pids

    killed = []
    for pid in worker_pids(kind, pool):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except OSError:
            pass
    return killed


def reap(pools: list[tuple[str, Any]], timeout: float = 5.0) -> list[int]:
    """After a hang verdict: close each struck pool within ``timeout``, then kill whatever workers are left."""
    def close(kind: str, pool: Any) -> None:
        with contextlib.suppress(Exception):
            if kind == "multiprocessing":
                pool.terminate()
            elif kind in ("concurrent.futures", "loky"):
                pool.shutdown(wait=False, cancel_futures=True)
            elif kind == "mpire":
                pool.terminate()

    closers = [threading.Thread(target=close, args=pair, name="mp-chaos-reap", daemon=True) for pair in pools]
    for closer in closers:
        closer.start()
    deadline = time.monotonic() + timeout
    for closer in closers:
        closer.join(max(0.0, deadline - time.monotonic()))
    killed: list[int] = []
    for kind, pool in pools:
        killed.extend(kill_workers(kind, pool))
    return killed


# -------------------------------------------------------------------- the watchdog thread
_current: Watch | None = None
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _run() -> None:
    while True:
        time.sleep(POLL)
        with _lock:
            watch = _current
        if watch is not None:
            try:
                watch.poll(time.time())
            except Exception as exc:  # noqa: BLE001 - the watchdog must outlive a bad journal line
                sys.stderr.write(f"mp-chaos hang watchdog: {exc!r}\n")


def start(watch: Watch) -> Watch:
    global _current, _thread
    with _lock:
        _current = watch
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="mp-chaos-hang-watchdog", daemon=True)
            _thread.start()
    return watch


def stop(watch: Watch) -> None:
    global _current
    with _lock:
        if _current is watch:
            _current = None


# Our SIGALRM handler, installed at the first phase of a watched test and left in place while nothing else
# wants SIGALRM; the phase's watch is armed in ``_armed``. A phase pays one getsignal and two flag changes:
# signal.signal() and getsignal() convert every handler to and from an enum (about 20 us a phase).
_armed: Watch | None = None
_beneath: Any = signal.SIG_DFL  # the handler ours was installed on top of (pytest-timeout's, or the default)


def _on_alarm(signum: int, frame: Any) -> Any:
    watch = _armed
    if watch is not None:
        verdict = watch.take()
        if verdict is not None:
            __tracebackhide__ = True
            pytest.fail(verdict, pytrace=False)
    previous = _beneath
    if callable(previous):  # pytest-timeout's timer, or the user's own alarm
        return previous(signum, frame)
    if previous == signal.SIG_DFL:
        _signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGALRM)
    return None


def arm(watch: Watch | None) -> bool:
    """Let the watchdog interrupt the main thread with ``watch``'s verdict until ``disarm``; True if armed."""
    global _armed, _beneath
    if watch is None or not watch.on_main or not _SUPPORTED:
        return False
    current = _signal.getsignal(signal.SIGALRM)
    if current is not _on_alarm:  # first use, or another handler (pytest-timeout's, per phase) went on top
        _beneath = current
        _signal.signal(signal.SIGALRM, _on_alarm)
    _armed = watch
    with watch.lock:
        watch.armed = True
    return True


def disarm(watch: Watch) -> None:
    """The phase ended: no verdict is raised from here on. A handler ours covers gets its place back."""
    global _armed
    with watch.lock:
        watch.armed = False
    _armed = None
    if callable(_beneath) and _signal.getsignal(signal.SIGALRM) is _on_alarm:
        _signal.signal(signal.SIGALRM, _beneath)  # its owner (pytest-timeout) restores what it replaced


def release() -> None:
    """End of the session: the handler that was there before ours."""
    if _SUPPORTED and _signal.getsignal(signal.SIGALRM) is _on_alarm:
        _signal.signal(signal.SIGALRM, _beneath)
