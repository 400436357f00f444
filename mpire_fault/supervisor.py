"""The supervisor: the parent's single loop that owns every worker.

    caller threads              supervisor thread                     worker i
    --------------              -----------------                     --------
    submit(Task) --> inbox --wake--> dispatch: pending --> ledger[i] ==task pipe==> runs tasks
                                                                                    in order
                                 <== read answers ===================== result pipe
                                 <== sentinel readable (process ended) =
                                 death: fail the ledger head, requeue
                                 the rest, restart slot i

One ``selectors`` wait covers the wake-up pipe, every result pipe, every
process sentinel and the task pipes that have bytes waiting, so a death is
seen within milliseconds and no step ever blocks on a worker.

The parent owns the ledger: for each worker the ordered tasks it was handed
and has not answered. A worker works through them in order, so at its death
the head is the task it was running (if the worker's progress slot says it
began it) and the rest were never started: they go back to the front of the
queue. Memory limits and timeouts are the only things checked on a clock.
"""
from __future__ import annotations

import logging
import os
import pickle
import selectors
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from .errors import PoolTerminatedError, SupervisorError, WorkerExitError, WorkerInitError
from .jobs import Barrier, Task, WorkerSession
from .serialization import Serializer, load_exception, with_boundary
from .settlement import RestartBackoff, Settlement
from .slots import WorkerSlot
from .watchdog import DEFAULT_EXIT_GRACE, Watchdog
from .worker import DONE, EXIT_FAILED, EXITED, FAILED, INIT_FAILED, LIFESPAN, READY, SKIPPED, STOP, TASK, WorkerConfig

log = logging.getLogger("mpire_fault")

PREFETCH = 2  # tasks handed to a worker at once: one running, one waiting in its pipe
# A second task waits behind the first only when tasks of that function are
# known to be short: a task queued behind a long one would sit there while
# another worker idles (head-of-line blocking), and a queued message cannot
# be taken back from a pipe without risking it running twice.
PREFETCH_BELOW = 0.005


@dataclass(frozen=True, slots=True)
class PoolSettings:
    n_jobs: int
    ctx: Any
    daemon: bool
    use_dill: bool
    pass_worker_id: bool
    use_worker_state: bool
    shared_objects: Any
    has_shared_objects: bool
    cpu_ids: tuple[tuple[int, ...] | None, ...]
    max_worker_memory: int | None
    max_task_retries: int
    backoff: RestartBackoff
    chaos: Any
    enable_insights: bool = False
    order_tasks: bool = False


class Supervisor(Settlement, Watchdog, threading.Thread):
    def __init__(self, settings: PoolSettings, progress, cancelled, insights) -> None:
        super().__init__(name="mpire_fault-supervisor", daemon=True)
        self.settings = settings
        self.serializer = Serializer(settings.use_dill)
        self.progress = progress
        self.cancelled = cancelled
        self.insights = insights
        self.start_up_time = [0.0] * settings.n_jobs  # process start -> ready, summed per slot
        self.order_seq = 0
        self.durations: dict[str, float] = {}
        self.slots = [WorkerSlot(i) for i in range(settings.n_jobs)]
        self.pending: deque[Task | Barrier] = deque()
        self.inbox: deque[tuple] = deque()
        self.session: WorkerSession | None = None
        self.active = False
        self.blocked = False  # the restart budget ran out: no respawn until new work arrives
        self.finishing = False
        self.finished = threading.Event()
        self.crash: BaseException | None = None
        self.stats = {"restarts": 0, "tasks_completed": 0, "tasks_failed": 0, "tasks_requeued": 0, "deaths": []}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._next_memory_poll = 0.0

    # ------------------------------------------------------------------ callers
    def send(self, *command: Any) -> None:
        """Hand a command to the loop from any thread."""
        self.inbox.append(command)
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # already awake, or shutting down

    def live_workers(self) -> int:
        return sum(1 for s in self.slots if s.alive and s.ready)

    def worker_pids(self) -> dict[int, int]:
        """Pids of the workers that finished start-up and take tasks, by slot."""
        return {s.worker_id: s.pid for s in self.slots if s.alive and s.ready and s.pid}

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        try:
            while True:
                self.read_inbox()
                if self.finishing and not any(s.alive for s in self.slots) and not self.pending:
                    break
                self.start_wanted_workers()
                self.dispatch()
                for key, _ in self.selector.select(self.next_timeout()):
                    self.handle(*key.data)
                self.check_clocks()
        except BaseException as exc:  # our bug: fail every caller instead of leaving it waiting
            log.exception("mpire_fault supervisor crashed")
            self.crash = exc
            self.fail_everything(SupervisorError(f"the pool's supervisor crashed: {exc!r}"), cause=exc)
        finally:
            self.kill_all("shutdown")
            self.finished.set()
            self.selector.close()
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def handle(self, what: str, slot: WorkerSlot | None) -> None:
        if what == "wake":
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        elif what == "result":
            self.read_results(slot)
        elif what == "sentinel":
            self.on_exit(slot)
        elif what == "write":
            self.flush(slot)

    def read_inbox(self) -> None:
        while self.inbox:
            command, *args = self.inbox.popleft()
            if self.finishing and command in ("submit", "barrier"):
                # Raced with terminate(): answer at once rather than keep work nobody will run.
                if command == "barrier":
                    args[0].event.set()
                for task in args[0] if command == "submit" else ():
                    if not task.job.done:
                        task.job.on_error(task, PoolTerminatedError("the pool was terminated before this task ran"))
                continue
            if command == "submit":
                if self.blocked:
                    self.blocked = False
                    for slot in self.slots:
                        slot.failures = 0
                self.pending.extend(args[0])
            elif command == "barrier":
                self.pending.append(args[0])
            elif command == "abort":
                self.abort(*args)
            elif command == "terminate":
                self.finishing = True
                self.kill_all("terminate")
                self.fail_everything(PoolTerminatedError("the pool was terminated while this task was pending"))
            elif command == "kill":  # test hook: kill a worker the way the outside world would
                self.slots[args[0]].kill("external")

    # ------------------------------------------------------------------ workers
    def start_wanted_workers(self) -> None:
        if not self.active or self.blocked or self.finishing:
            return
        now = time.monotonic()
        for slot in self.slots:
            if slot.alive or (slot.restart_at is not None and slot.restart_at > now):
                continue
            self.spawn(slot)

    def spawn(self, slot: WorkerSlot) -> None:
        s, session = self.settings, self.session
        close_fds = [self._wake_r, self._wake_w, self.selector.fileno()]
        for other in self.slots:
            close_fds.extend(other.parent_fds())
        cfg = WorkerConfig(
            worker_id=slot.worker_id,
            use_dill=s.use_dill,
            pass_worker_id=s.pass_worker_id,
            use_worker_state=s.use_worker_state,
            has_shared_objects=s.has_shared_objects,
            worker_lifespan=session.worker_lifespan,
            cpu_ids=s.cpu_ids[slot.worker_id],
            chaos=s.chaos,
            insights=s.enable_insights,
            close_fds=tuple(close_fds) if s.ctx.get_start_method() == "fork" else (),
        )
        user = (session.worker_init, session.worker_exit, s.shared_objects)
        if s.ctx.get_start_method() != "fork":
            try:
                user = self.serializer.dumps(user)
            except Exception as exc:
                self.fail_pending(WorkerInitError(f"worker_init, worker_exit or shared_objects cannot be pickled: {exc!r}"), exc)
                self.blocked = True
                return
        slot.start(s.ctx, cfg, user, self.progress, self.cancelled, self.insights, s.daemon)
        self.selector.register(slot.result_conn.fileno(), selectors.EVENT_READ, ("result", slot))
        self.selector.register(slot.sentinel, selectors.EVENT_READ, ("sentinel", slot))

    def kill_all(self, reason: str) -> None:
        for slot in self.slots:
            if slot.alive:
                slot.kill(reason)
        for slot in self.slots:
            if slot.alive:
                slot.reap(5.0)
                self.release(slot)

    def release(self, slot: WorkerSlot) -> None:
        for fd in (slot.sentinel, slot.task_fd):
            if fd is not None:
                try:
                    self.selector.unregister(fd)
                except (KeyError, ValueError):
                    pass
        if slot.result_conn is not None and slot.result_open:
            try:
                self.selector.unregister(slot.result_conn.fileno())
            except (KeyError, ValueError, OSError):
                pass
        slot.close()

    # ------------------------------------------------------------------ sending
    def dispatch(self) -> None:
        while self.pending and not self.finishing or (self.pending and isinstance(self.pending[0], Barrier)):
            head = self.pending[0]
            if isinstance(head, Barrier):
                if not self.run_barrier(head):
                    return
                continue
            if head.job.done:
                self.pending.popleft()
                continue
            if not self.active:
                if any(s.alive for s in self.slots):
                    return  # an earlier graceful stop is still finishing
                self.session, self.active = head.job.session, True
                self.start_wanted_workers()
            elif head.job.session != self.session:
                self.pending.appendleft(Barrier(implicit=True))
                continue
            slot = self.pick_slot()
            if slot is None:
                return
            self.pending.popleft()
            self.order_seq += 1
            self.hand(slot, head)

    def pick_slot(self) -> WorkerSlot | None:
        if self.settings.order_tasks:  # MPIRE's order_tasks: chunk k goes to worker k % n_jobs
            slot = self.slots[self.order_seq % len(self.slots)]
            return slot if self.takes_work(slot) and self.has_room(slot) else None
        best = None
        for slot in self.slots:
            if self.takes_work(slot) and self.has_room(slot):
                if best is None or len(slot.ledger) < len(best.ledger):
                    best = slot
        return best

    def has_room(self, slot: WorkerSlot) -> bool:
        if not slot.ledger:
            return True
        if len(slot.ledger) >= PREFETCH:
            return False
        return self.durations.get(slot.ledger[-1].job.func_name, 1.0) < PREFETCH_BELOW

    def record_duration(self, slot: WorkerSlot, task: Task) -> None:
        """Keep a moving average of task durations per function (for ``has_room``)."""
        now = time.monotonic()
        spent = now - max(task.handed_at, slot.last_answer)
        slot.last_answer = now
        name = task.job.func_name
        previous = self.durations.get(name)
        self.durations[name] = spent if previous is None else 0.8 * previous + 0.2 * spent

    @staticmethod
    def takes_work(slot: WorkerSlot) -> bool:
        return slot.alive and slot.ready and not slot.stopping and not slot.retiring and not slot.kill_reason

    def hand(self, slot: WorkerSlot, task: Task) -> None:
        task.handed_at = time.monotonic()
        slot.ledger.append(task)
        timed = task.job.task_timeout is not None
        msg = (TASK, task.task_id, task.job.job_id, task.first_index, task.attempt, task.payload, timed)
        slot.queue_bytes(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))
        self.flush(slot)

    def flush(self, slot: WorkerSlot) -> None:
        if slot.task_fd is None:
            return
        done = slot.flush()
        if done and slot.write_registered:
            self.selector.unregister(slot.task_fd)
            slot.write_registered = False
        elif not done and not slot.write_registered:
            self.selector.register(slot.task_fd, selectors.EVENT_WRITE, ("write", slot))
            slot.write_registered = True

    def run_barrier(self, barrier: Barrier) -> bool:
        """Advance a graceful stop; True once it is complete and popped."""
        if any(s.ledger for s in self.slots):
            return False
        if not barrier.started:
            barrier.started = True
            self.active = False
            grace = (self.session.worker_exit_timeout if self.session else None) or DEFAULT_EXIT_GRACE
            for slot in self.slots:
                slot.restart_at = None
                if slot.alive:
                    slot.stopping = True
                    slot.stop_deadline = time.monotonic() + grace
                    slot.queue_bytes(pickle.dumps((STOP,)))
                    self.flush(slot)
        if any(s.alive for s in self.slots):
            return False
        self.pending.popleft()
        barrier.event.set()
        return True

    # ------------------------------------------------------------------ receiving
    def read_results(self, slot: WorkerSlot) -> None:
        conn = slot.result_conn
        while slot.result_open and conn.poll(0):
            try:
                msg = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                # EOF, or the worker died halfway through a message: its sentinel settles it.
                self.selector.unregister(conn.fileno())
                slot.result_open = False
                return
            self.on_message(slot, msg)

    def on_message(self, slot: WorkerSlot, msg: tuple) -> None:
        kind = msg[0]
        if kind == READY:
            slot.ready = True
            slot.failures = 0
            self.start_up_time[slot.worker_id] += time.monotonic() - slot.started_at
        elif kind == INIT_FAILED:
            slot.init_error = load_exception(msg[1], self.serializer)
        elif kind in (DONE, FAILED, SKIPPED):
            task = slot.ledger.popleft()
            if task.task_id != msg[1]:
                raise SupervisorError(f"worker {slot.worker_id} answered task {msg[1]} but its ledger head is {task.task_id}")
            self.record_duration(slot, task)
            slot.idle_deaths = 0
            if kind == DONE:
                self.stats["tasks_completed"] += 1
                if not task.job.done:
                    task.job.on_result(task, msg[2])
            elif kind == FAILED:
                _, _, offset, data, boundary = msg
                try:
                    exc = load_exception(data, self.serializer)
                except BaseException as problem:
                    exc = with_boundary(problem, "result")
                if boundary:
                    with_boundary(exc, boundary)
                self.fail_task(task, exc)
        elif kind == EXITED:
            slot.exit_reported = True
            barrier = self.pending[0] if self.pending and isinstance(self.pending[0], Barrier) else None
            if barrier is not None and not barrier.implicit:
                try:
                    barrier.exit_results.append(self.serializer.loads(msg[1]))
                except BaseException as exc:
                    barrier.errors.append(with_boundary(exc, "result"))
        elif kind == EXIT_FAILED:
            slot.exit_reported = True
            exc = load_exception(msg[1], self.serializer)
            if self.pending and isinstance(self.pending[0], Barrier):
                error = WorkerExitError(f"worker_exit failed on worker {slot.worker_id}: {exc!r}")
                error.__cause__ = exc
                self.pending[0].errors.append(error)
        elif kind == LIFESPAN:
            slot.retiring = True
