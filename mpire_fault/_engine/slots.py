"""One worker slot: a process, its two pipes and its ledger.

The slot number is the ``worker_id`` users see; a replacement keeps it. The
task pipe is written without blocking (a full 64 KiB pipe buffer, or a worker
that died, must never stop the supervisor), so outgoing bytes wait in
``outbuf`` until the pipe is writable.
"""
from __future__ import annotations

import fcntl
import os
import pickle
import signal
import struct
import time
from collections import deque
from multiprocessing.connection import Connection, Pipe
from typing import Any

from .child.threads import WorkerThread
from .child.worker import WorkerConfig, worker_main
from .jobs import Task
from .wire.inherit import start_lock
from .wire.protocol import (
    BATCH,
    IDLE,
    ITEM,
    NOT_BATCHED,
    PHASE,
    PROGRESS_FIELDS,
    STRUCK,
    TARGET_ITEM,
    TARGET_TASK,
    TASK_ID,
    KillReason,
)

_HEADER = struct.Struct("!i")
_BIG_HEADER = struct.Struct("!iQ")
_READ_SIZE = 1 << 20
_COALESCE = 1 << 16  # small frames queued together are joined into one write


def kill_tree(pid: int) -> None:
    """SIGKILL a worker and every process it started (a task's subprocess must not outlive it).

    The worker is stopped first, so it cannot start another child while its
    tree is listed; once it is dead its children are reparented and no longer
    found through it. psutil's ``kill`` checks that a pid was not reused.
    """
    import psutil  # only when the pool kills: most pools never do

    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for child in descendants:
        try:
            child.kill()
        except psutil.Error:
            pass


def _exists(pid: int | None) -> bool:
    """Whether ``pid`` is a process (a zombie counts: we can still reap it)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def frame(payload: bytes) -> bytes:
    """Frame bytes the way ``Connection.recv_bytes`` on the worker side reads them."""
    if len(payload) < 0x7FFFFFFF:
        return _HEADER.pack(len(payload)) + payload
    return _BIG_HEADER.pack(-1, len(payload)) + payload


# A whole chunk of a map (12 500 small ints pickle to about 60 KiB) should
# fit in a pipe, so the supervisor can queue a worker's next chunks while it
# runs one, and a worker can answer without waiting for the supervisor to
# read. Linux gives 64 KiB by default; a user's pipes beyond 64 MiB in all
# (pipe-user-pages-soft) are cut to one page each, so a pool keeps its
# pipes under 16 MiB together.
_PIPES_TOTAL = 16 << 20
_PIPE_MAX = 1 << 20
_PIPE_DEFAULT = 1 << 16


def pipe_size(n_workers: int) -> int:
    """The capacity asked for each of a worker's two pipes in a pool of ``n_workers``."""
    return max(_PIPE_DEFAULT, min(_PIPE_MAX, _PIPES_TOTAL // (2 * max(1, n_workers))))


def _widen(fd: int, size: int) -> None:
    if size <= _PIPE_DEFAULT:
        return
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
    except (AttributeError, OSError):  # not Linux, or over the system's limit: the default pipe still works
        pass


def _pidfd(pid: int) -> int | None:
    """A file descriptor readable once ``pid`` has ended (Linux 5.3+), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


class WorkerSlot:
    def __init__(self, worker_id: int) -> None:
        self.worker_id = worker_id
        self.process: Any = None
        self.pid: int | None = None
        self.task_fd: int | None = None
        self.result_conn: Connection | None = None
        self.sentinel: int | None = None
        self.pidfd: int | None = None
        self.ledger: deque[Task] = deque()
        self.outbuf: deque[memoryview] = deque()
        self.inbuf = bytearray()  # answers read from the result pipe, up to an incomplete frame
        self.start_failures = 0  # start-ups in a row that ended before ready (see restarts.py)
        self.idle_deaths = 0  # deaths in a row of a ready worker that owned no task (see restarts.py)
        self.write_registered = False
        self.result_open = False
        self.last_answer = 0.0
        self._new_life(0.0)

    def _new_life(self, started_at: float) -> None:
        """What each process of this slot starts with afresh."""
        self.ready = False
        self.started_at = started_at
        self.stopping = False
        self.stop_deadline: float | None = None
        self.retiring = False
        self.kill_reason: KillReason | None = None
        self.exit_reported = False
        self.init_error: bytes | None = None  # what worker_init raised, pickled (dump_exception)
        self.restart_at: float | None = None
        self.rss = 0  # its own memory (USS) at the last poll: see watchdog.poll_memory
        self.shared_rss = 0  # the part of its RSS it shared with other processes, at the last full reading
        self.next_uss = 0.0  # when to read its own memory in full again
        self.ps: Any = None
        self.interrupted: tuple[float, float] | None = None  # the soft timeout's target, once sent
        self.hard_deadline: float | None = None  # kill if the interrupted target still runs then

    # ------------------------------------------------------------------ the slot's life
    # A slot's process goes: started -> ready (worker_init done) -> asked to stop or retiring (worker_exit
    # runs, on the clock) -> ended (settled, then released: the slot wants a new process). A kill can come
    # at any point (kill_reason says why). Every change of these flags happens in the methods below.
    @property
    def alive(self) -> bool:
        return self.process is not None

    def became_ready(self) -> None:
        """worker_init succeeded: tasks may come."""
        self.ready = True

    def ask_to_stop(self, grace: float) -> None:
        """A graceful stop: worker_exit runs next, and must be done within ``grace`` seconds."""
        self.stopping = True
        self.stop_deadline = time.monotonic() + grace

    def retire(self, grace: float) -> None:
        """worker_lifespan reached: the worker runs worker_exit and ends, within ``grace`` seconds."""
        self.retiring = True
        self.stop_deadline = time.monotonic() + grace

    def ended(self) -> bool:
        """The process ended: no longer ready (statistics() must not count it); returns whether it had been."""
        was_ready, self.ready = self.ready, False
        return was_ready

    def past_hard_deadline(self, now: float) -> bool:
        """A soft timeout was sent and its grace period is over: time for the kill."""
        return self.hard_deadline is not None and now > self.hard_deadline

    def off_the_clock(self) -> bool:
        """A live, ready worker with no deadline and no timed task: nothing of it is checked against time."""
        return (self.process is not None and self.ready and self.kill_reason is None and self.stop_deadline is None
                and self.hard_deadline is None and not any(task.job.task_timeout for task in self.ledger))

    @property
    def takes_work(self) -> bool:
        """Started, ready, and neither stopping, retiring nor condemned."""
        return (self.process is not None and self.ready and not self.stopping and not self.retiring
                and self.kill_reason is None)

    def parent_fds(self) -> list[int]:
        fds = []
        if self.task_fd is not None:
            fds.append(self.task_fd)
        if self.result_conn is not None and not self.result_conn.closed:
            fds.append(self.result_conn.fileno())
        if self.pidfd is not None:
            fds.append(self.pidfd)
        return fds

    def start(self, ctx, cfg: WorkerConfig, user: Any, shared_objects: Any, progress, cancelled, insights,
              daemon: bool) -> None:
        # The worker's ends of its pipes (and of its sentinel) exist in the
        # parent only until process.start() returns. A fork by another
        # pool's supervisor in that window would copy them into a foreign
        # worker, and this worker's death (EOF, sentinel) would go unseen
        # for as long as that worker lives: the pool would hang. So every
        # pool in the process starts its workers one at a time.
        with start_lock():
            self._start(ctx, cfg, user, shared_objects, progress, cancelled, insights, daemon)

    def _start(self, ctx, cfg: WorkerConfig, user: Any, shared_objects: Any, progress, cancelled, insights,
               daemon: bool) -> None:
        read_fd, write_fd = os.pipe()
        result_reader, result_writer = Pipe(duplex=False)
        size = pipe_size(cfg.pool_size)
        _widen(write_fd, size)
        _widen(result_writer.fileno(), size)
        task_reader = Connection(read_fd, writable=False)
        base = self.worker_id * PROGRESS_FIELDS
        progress[base + TASK_ID] = -1.0
        progress[base + ITEM] = -1.0
        progress[base + BATCH] = NOT_BATCHED
        progress[base + PHASE] = IDLE
        progress[base + TARGET_TASK] = -1.0
        progress[base + STRUCK] = 0.0
        launch = WorkerThread if cfg.in_thread else ctx.Process
        process = launch(
            target=worker_main,
            args=(cfg, user, task_reader, result_writer, progress, cancelled, insights, shared_objects),
            name=f"mpire_fault-worker-{self.worker_id}",
            daemon=daemon,
        )
        try:
            process.start()
        except BaseException:
            os.close(write_fd)
            result_reader.close()
            task_reader.close()
            result_writer.close()
            raise
        if not cfg.in_thread:
            # The child holds its own copies now; closing ours is what lets
            # either side see EOF when the other one dies. (A thread shares
            # them: it closes its ends itself when it ends.)
            task_reader.close()
            result_writer.close()
        os.set_blocking(write_fd, False)
        self.process = process
        self.pid = process.pid
        self.task_fd = write_fd
        self.result_conn = result_reader
        self.result_open = True
        os.set_blocking(result_reader.fileno(), False)
        self.inbuf.clear()
        # multiprocessing's sentinel is a pipe that reads EOF only once every
        # copy of its write end is closed: a grandchild the task forked (and
        # left running) holds one, and the worker's death would go unseen
        # for as long as it lives. A pidfd is readable when the process ends.
        self.pidfd = None if cfg.in_thread else _pidfd(process.pid)
        self.sentinel = self.pidfd if self.pidfd is not None else process.sentinel
        self._new_life(time.monotonic())
        self.outbuf.clear()

    def read_answers(self) -> tuple[list[tuple], bool]:
        """Drain the result pipe without blocking: the complete answers, and whether it reached EOF.

        One read takes every answer waiting (several tasks' results arrive in
        one system call), and no selector is built per message as
        ``Connection.poll`` would. Frames are ``Connection.send_bytes``' own.
        """
        conn = self.result_conn
        assert conn is not None, "read_answers on a slot without a worker"
        fd, eof = conn.fileno(), False
        while True:
            try:
                chunk = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                break
            except OSError:
                eof = True
                break
            if not chunk:
                eof = True
                break
            self.inbuf += chunk
            if len(chunk) < _READ_SIZE:
                break  # the pipe is (very likely) empty: spare the system call that would say so
        answers, pos, buf = [], 0, self.inbuf
        with memoryview(buf) as view:
            while len(buf) - pos >= 4:
                size, head = _HEADER.unpack_from(buf, pos)[0], 4
                if size == -1:
                    if len(buf) - pos < 12:
                        break
                    size, head = _BIG_HEADER.unpack_from(buf, pos)[1], 12
                if len(buf) - pos - head < size:
                    break
                answers.append(pickle.loads(view[pos + head:pos + head + size]))
                pos += head + size
        del buf[:pos]
        return answers, eof

    def queue_bytes(self, payload: bytes) -> None:
        if self.outbuf and len(payload) < _COALESCE and len(self.outbuf[-1]) < _COALESCE:
            self.outbuf[-1] = memoryview(bytes(self.outbuf[-1]) + frame(payload))  # small frames: one write
        else:
            self.outbuf.append(memoryview(frame(payload)))

    def flush(self) -> bool:
        """Write what the pipe takes now; True when everything went out."""
        fd = self.task_fd
        while self.outbuf and fd is not None:
            view = self.outbuf[0]
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                return False
            except (BrokenPipeError, OSError):
                # The worker is gone; its sentinel will tell the whole story.
                self.outbuf.clear()
                return True
            if written == len(view):
                self.outbuf.popleft()
            else:
                self.outbuf[0] = view[written:]
        return True

    def kill(self, reason: KillReason) -> None:
        if self.process is None:
            return
        if isinstance(self.process, WorkerThread):
            self.kill_reason = self.kill_reason or reason
            self.process.kill()
            return
        if self.process.exitcode is not None:  # polls without blocking: fork's waitpid, forkserver's sentinel
            # It died on its own before we got to it (a chaos SIGKILL racing a map abort, say): that is a
            # death to count and report as such, not one of our kills.
            return
        if self.kill_reason is None:
            self.kill_reason = reason
        kill_tree(self.process.pid)

    def interrupt(self, progress, target_task: float, target_item: float, grace: float) -> None:
        """The soft timeout: aim it at (task, item) or a hook, then signal; kill if it still runs after ``grace``."""
        base = self.worker_id * PROGRESS_FIELDS
        progress[base + TARGET_TASK] = target_task
        progress[base + TARGET_ITEM] = target_item
        self.interrupted = (target_task, target_item)
        self.hard_deadline = time.monotonic() + grace
        if isinstance(self.process, WorkerThread):
            self.process.interrupt()
            return
        try:
            os.kill(self.process.pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass

    def reap(self, timeout: float) -> None:
        """Wait (bounded) until the process has ended and its exit code is known.

        Not ``process.join``: that waits on the sentinel pipe, which a
        grandchild left behind by a task may hold open long after the worker
        itself died.
        """
        deadline = time.monotonic() + timeout
        while self.process.exitcode is None and not getattr(self.process, "abandoned", False):
            if time.monotonic() >= deadline or not _exists(self.process.pid):
                # gone without a trace: something else in this process reaped it (psutil.wait_procs,
                # os.wait), and no exit code will ever come; waiting out the bound would stall the loop
                return
            time.sleep(0.005)

    def close(self) -> None:
        """Release the parent's ends after the process has ended."""
        if self.task_fd is not None:
            try:
                os.close(self.task_fd)
            except OSError:
                pass
        if self.result_conn is not None:
            self.result_conn.close()
        if self.process is not None:
            try:
                self.process.close()
            except ValueError:
                pass
        if self.pidfd is not None:
            try:
                os.close(self.pidfd)
            except OSError:
                pass
            self.pidfd = None
        self.process = None
        self.task_fd = None
        self.result_conn = None
        self.result_open = False
        self.inbuf.clear()
        self.sentinel = None
        self.ready = False
        self.outbuf.clear()
        self.write_registered = False
