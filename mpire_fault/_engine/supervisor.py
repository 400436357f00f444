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

import ctypes
import logging
import os
import selectors
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import Death, PoolTerminatedError, SupervisorError, WorkerInitError, hook_error
from ..statistics import Counters
from .answers import Answers
from .child.orphans import preload
from .child.worker import PickledObjects, WorkerConfig
from .dispatch import Dispatcher
from .insights import TopTasks
from .jobs import Barrier, Job, Task, WorkerExits, WorkerSession
from .recorder import Recorder
from .restarts import Restarts
from .settlement import Settlement
from .slots import WorkerSlot
from .state import Mode, PoolSettings, PoolState, SharedArrays
from .watchdog import Watchdog
from .wire.codec import Serializer
from .wire.inherit import pickled_hooks
from .wire.protocol import PHASE_START, PROGRESS_FIELDS, KillReason
from .wire.shm import sweep, sweep_worker

log = logging.getLogger("mpire_fault")

__all__ = ["PoolSettings", "Supervisor"]


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class Supervisor(threading.Thread):
    """The parent's loop: reads its inbox, starts workers, dispatches, and reacts to what the selector saw."""

    def __init__(self, settings: PoolSettings, shared: SharedArrays, recorder: Recorder | None = None) -> None:
        super().__init__(name="mpire_fault-supervisor", daemon=True)
        self.state = PoolState(settings, shared, [WorkerSlot(i) for i in range(settings.n_jobs)],
                               start_up_time=[0.0] * settings.n_jobs, recorder=recorder)
        self.state.watched.update(self.state.slots)  # none has a process yet
        self.serializer = settings.serializer or Serializer(settings.use_dill)
        self.restarts = Restarts(self.state)
        self.settlement = Settlement(self.state, self.serializer, self.restarts)
        preload()
        self.watchdog = Watchdog(self.state)
        self.inbox: deque[tuple[Callable[..., None], tuple]] = deque()
        self.finished = threading.Event()
        self.terminated = False  # terminate() was called: map iterators still held by callers raise
        self._wake_r, self._wake_w = os.pipe()
        # The wake-up pipe lives as long as this object, not as long as the
        # loop: a caller may still post to a finished supervisor, and a
        # closed descriptor's number may already belong to another file.
        weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)
        self._wake_sent = False
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self.dispatcher = Dispatcher(self.state, self.selector, self.serializer.dumps, self.start_wanted_workers)
        self.answers = Answers(self.state, self.settlement, self.dispatcher, self.serializer, self.restarts)

    # what the pool reads
    @property
    def slots(self) -> list[WorkerSlot]:
        return self.state.slots

    @property
    def counters(self) -> Counters:
        return self.state.counters

    @property
    def insights(self) -> Any:
        return self.state.shared.insights

    @property
    def start_up_time(self) -> list[float]:
        return self.state.start_up_time

    @property
    def top_tasks(self) -> TopTasks:
        return self.state.top_tasks

    @property
    def insight_deaths(self) -> list[Death]:
        return self.state.counters.deaths[self.state.insight_deaths_from:]

    @property
    def exits(self) -> WorkerExits:
        """worker_exit's outcomes since the workers were last started from none (MPIRE's get_exit_results())."""
        return self.state.exits

    # ------------------------------------------------------------------ callers
    # Any thread may call these; each posts a command that the loop runs.
    def submit(self, tasks: list[Task]) -> None:
        """Queue tasks behind those already pending."""
        self._post(self._on_submit, tasks)

    def sync(self, timeout: float) -> None:
        """Let the loop hand out what was submitted before this, waiting at most ``timeout`` seconds.

        A caller that goes on pickling a map's chunks holds the GIL, and the
        loop gets it only after the switch interval (5 ms): every worker
        would wait that long for its first chunk. Waiting here gives it up.
        """
        done = threading.Event()
        self._post(self._on_sync, done)
        done.wait(timeout)

    def start_workers(self, session: WorkerSession) -> None:
        """Start the workers of ``session`` now, before any task asks for them.

        For a front door whose workers exist from its constructor on
        (``multiprocessing.Pool`` runs its initializer even if no task ever
        comes). Nothing happens if workers already run or a call started them.
        """
        self._post(self._on_start_workers, session)

    def barrier(self, barrier: Barrier) -> None:
        """Queue a graceful stop of every worker behind the pending tasks."""
        self._post(self._on_barrier, barrier)

    def abort(self, job: Job, kill_running: bool) -> None:
        """Abort a map call: nothing more of it starts; its running items are killed if asked."""
        self._post(self.settlement.abort, job, kill_running)

    def stop_task(self, job: Job, reason: str, error: BaseException) -> None:
        """Stop one apply task a front door no longer wants: it never starts, or its worker is killed (and
        replaced, not counted as a death); its result resolves with ``error``."""
        self._post(self.settlement.abort, job, True, reason, None, error)

    def terminate(self) -> None:
        """Kill every worker and fail everything pending; the loop ends once the workers are gone."""
        self.terminated = True
        self._post(self._on_terminate)

    def reset_insights(self) -> None:
        """Start the insights afresh (posted, so it runs before any task submitted after it)."""
        self._post(self._on_reset_insights)

    def _post(self, handler: Callable[..., None], *args: Any) -> None:
        """Hand a command to the loop.

        One wake-up byte covers every command posted until the loop drains it:
        the loop clears ``_wake_sent`` before it reads the inbox again, and a
        caller appends before it looks at the flag, so nothing waits unseen.
        """
        self.inbox.append((handler, args))
        if self._wake_sent:
            return
        self._wake_sent = True
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # already awake, or shutting down

    def live_workers(self) -> int:
        return sum(1 for s in self.slots if s.alive and s.ready)

    def has_processes(self) -> bool:
        """Whether any worker process of this pool exists now, started or starting (ask under ``start_lock``)."""
        return any(s.process is not None for s in self.slots)

    def worker_pids(self) -> dict[int, int]:
        """Pids of the workers that finished start-up and take tasks, by slot."""
        return {s.worker_id: s.pid for s in self.slots if s.alive and s.ready and s.pid}

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        state = self.state
        try:
            while True:
                self.read_inbox()
                if state.mode is Mode.FINISHING and not any(s.alive for s in state.slots) and not state.pending:
                    break
                self.start_wanted_workers()
                self.dispatcher.dispatch()
                ended = []
                seen = self.selector.select(self.watchdog.next_timeout())
                if not seen and state.recorder is not None:
                    state.recorder.flush()  # a quiet moment: nothing waits in the log's buffer
                for key, _ in seen:
                    what, slot = key.data
                    if what == "sentinel":
                        ended.append(slot)
                    else:
                        self.handle(what, slot)
                # Deaths seen together are settled in the order their items
                # began, so a map aborted by two deaths names the first one.
                progress = state.shared.progress
                for slot in sorted(ended, key=lambda s: progress[s.worker_id * PROGRESS_FIELDS + PHASE_START]):
                    self.on_exit(slot)
                self.watchdog.check_clocks()
        except BaseException as exc:  # our bug: fail every caller instead of leaving it waiting
            log.exception("mpire_fault supervisor crashed")
            self.settlement.fail_everything(SupervisorError(f"the pool's supervisor crashed: {exc!r}"), cause=exc)
        finally:
            self.kill_all(KillReason.SHUTDOWN)
            self._close_recorder()
            sweep(state.settings.shm_prefix and state.settings.shm_prefix + "r")  # results nobody read
            self.finished.set()
            self.selector.close()

    def _close_recorder(self) -> None:
        recorder, chaos = self.state.recorder, self.state.settings.chaos
        if recorder is None:
            return
        try:
            if chaos is not None:
                recorder.faults(chaos.journal())
        except Exception:  # noqa: BLE001 - the log's last lines must never keep finished from being set
            log.exception("mpire_fault could not copy the chaos journal into the event log")
        finally:
            recorder.close()

    def handle(self, what: str, slot: WorkerSlot | None) -> None:
        if what == "wake":
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
            self._wake_sent = False  # read_inbox runs before the loop sleeps again
        elif slot is None:
            raise SupervisorError(f"a {what!r} event without its worker slot")
        elif what == "result":
            self.read_results(slot)
        elif what == "write":
            self.dispatcher.flush(slot)

    def read_inbox(self) -> None:
        inbox = self.inbox
        while inbox:
            handler, args = inbox.popleft()
            handler(*args)

    def _on_submit(self, tasks: list[Task]) -> None:
        state = self.state
        if state.finishing:  # raced with terminate(): answer at once rather than keep work nobody will run
            for task in tasks:
                if not task.job.done:
                    task.job.on_error(task, PoolTerminatedError("the pool was terminated before this task ran"))
            return
        self.restarts.new_work()
        state.pending.extend(tasks)

    def _on_sync(self, done: threading.Event) -> None:
        self.start_wanted_workers()
        self.dispatcher.dispatch()
        done.set()

    def _on_start_workers(self, session: WorkerSession) -> None:
        state = self.state
        if state.mode is Mode.STOPPED and not state.pending:
            self.dispatcher.begin(session)

    def _on_barrier(self, barrier: Barrier) -> None:
        if self.state.finishing:
            barrier.event.set()
        else:
            self.state.pending.append(barrier)

    def _on_reset_insights(self) -> None:
        state = self.state
        if state.shared.insights is not None:
            ctypes.memset(state.shared.insights, 0, ctypes.sizeof(state.shared.insights))
        state.start_up_time[:] = [0.0] * len(state.start_up_time)
        state.top_tasks = TopTasks()
        state.insight_deaths_from = len(state.counters.deaths)

    def _on_terminate(self) -> None:
        self.state.mode = Mode.FINISHING
        self.kill_all(KillReason.TERMINATE)
        self.settlement.fail_everything(PoolTerminatedError("the pool was terminated while this task was pending"))

    # ------------------------------------------------------------------ workers
    def start_wanted_workers(self) -> None:
        state = self.state
        if state.mode is not Mode.RUNNING:
            return
        pending = state.pending
        while pending and not isinstance(pending[0], Barrier) and pending[0].job.done:
            pending.popleft()  # answered already (the items of a stopped call): dispatch would skip them too
        barrier = state.front_barrier()
        if barrier is not None and not barrier.keep_workers:
            # A graceful stop is next: it waits for the tasks still in ledgers, then stops every worker. A
            # worker started now (to replace one a stopped call killed) would only start up to be stopped,
            # and a shutdown would wait for both (seconds on a loaded machine).
            return
        now, close_fds = time.monotonic(), None
        vacant = [slot for slot in state.watched if slot.process is None]  # a slot without a process is watched
        for slot in sorted(vacant, key=lambda s: s.worker_id) if vacant else ():
            if slot.restart_at is not None and slot.restart_at > now:
                continue
            if close_fds is None:  # gathered once per pass, then grown by each new worker: not n^2
                close_fds = [self._wake_r, self._wake_w, self.selector.fileno()]
                for other in state.slots:
                    close_fds.extend(other.parent_fds())
            self.spawn(slot, close_fds)
            close_fds.extend(slot.parent_fds())

    def spawn(self, slot: WorkerSlot, close_fds: list[int]) -> None:
        """Start the process (or thread) of ``slot``; ``close_fds`` are the parent's fds a forked child must close."""
        s, session, shared = self.state.settings, self.state.session, self.state.shared
        assert session is not None, "workers start only once a call has set the session"
        cfg = WorkerConfig(
            worker_id=slot.worker_id,
            use_dill=s.use_dill,
            pass_worker_id=s.pass_worker_id,
            use_worker_state=s.use_worker_state,
            has_shared_objects=s.has_shared_objects,
            hooks_only_objects=s.hooks_only_objects,
            worker_lifespan=session.worker_lifespan,
            cpu_ids=s.cpu_ids[slot.worker_id],
            chaos=s.chaos,
            insights=s.enable_insights,
            close_fds=tuple(close_fds) if s.start_method == "fork" else (),
            in_thread=s.start_method == "threading",
            serializer=s.serializer,
            shm_prefix=s.shm_prefix,
            pool_size=len(self.state.slots),
            parent_pid=None if s.start_method == "forkserver" else os.getpid(),
        )
        user: Any = (session.worker_init, session.worker_exit)
        shared_objects = s.shared_objects
        if s.start_method in ("spawn", "forkserver"):
            try:
                user = pickled_hooks(self.serializer.dumps, user, session.function)
                if s.use_dill and shared_objects is not None:
                    shared_objects = PickledObjects(self.serializer.dumps(shared_objects))
            except Exception as exc:  # noqa: BLE001 - the user's hooks may fail to pickle in any way
                message = f"worker_init, worker_exit or shared_objects cannot be pickled: {exc!r}"
                self.settlement.give_up(hook_error(WorkerInitError, message, exc), exc)
                return
        try:
            slot.start(s.ctx, cfg, user, shared_objects, shared.progress, shared.cancelled, shared.insights, s.daemon)
        except Exception as exc:  # noqa: BLE001 - any start failure goes to the caller
            # The workers cannot be started at all (a daemonic process may not
            # have children; shared objects that cannot be pickled): the caller
            # gets that error itself, and the pool stays closable.
            self.settlement.give_up(exc, exc.__cause__)
            return
        assert slot.result_conn is not None and slot.sentinel is not None, "set by slot.start"
        self.selector.register(slot.result_conn.fileno(), selectors.EVENT_READ, ("result", slot))
        self.selector.register(slot.sentinel, selectors.EVENT_READ, ("sentinel", slot))
        self.state.watched.add(slot)  # on the start-up clock until it is ready
        if self.state.recorder is not None:
            self.state.recorder.worker_started(slot, s.start_method)

    def on_exit(self, slot: WorkerSlot) -> None:
        """A worker process ended: read what it said last, settle its ledger, let go of its pipes."""
        self.read_results(slot)
        sweep_worker(self.state.settings.shm_prefix, slot.pid)  # results it wrote and never announced
        self.settlement.worker_ended(slot)
        self.release(slot)

    def kill_all(self, reason: KillReason) -> None:
        for slot in self.state.slots:
            if slot.alive:
                slot.kill(reason)
        for slot in self.state.slots:
            if slot.alive:
                slot.reap(5.0)
                self.release(slot)

    def release(self, slot: WorkerSlot) -> None:
        self.state.watched.add(slot)  # without a process: wants one (start_wanted_workers), maybe after restart_at
        self.state.roomy.pop(slot, None)
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

    # ------------------------------------------------------------------ receiving
    def read_results(self, slot: WorkerSlot) -> None:
        if not slot.result_open or slot.result_conn is None:
            return
        answers, eof = slot.read_answers()
        if eof:
            # The worker is gone (a half-written last answer is dropped): its sentinel settles it.
            self.selector.unregister(slot.result_conn.fileno())
            slot.result_open = False
        handlers = self.answers.handlers
        for kind, *fields in answers:
            handlers[kind](slot, *fields)
