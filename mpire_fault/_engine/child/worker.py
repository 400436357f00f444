"""The worker process: its main loop and its chaos injection sites.

A worker reads task messages from its own pipe, strictly in order, and
answers each on its own result pipe. It never touches a queue shared with
other workers, so its death cannot leave a lock held that others need.

Before it begins a task it writes the task's id, the item it is on, the
phase and the time into its slot of a shared array (``progress``). The
parent reads that slot after a death to tell "died while running item 37"
from "died before it even received the task", and to time ``task_timeout``
per item. Before each item it also reads the shared ``cancelled`` table so
no further item of an aborted map starts.
"""
from __future__ import annotations

import faulthandler
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..._core.arguments import APPLY, FIXED_STYLES, MPIRE, arguments_of, uniform_style
from ..._core.remote import RESULT, TASK_ARGS, dump_exception, summarize
from ...chaos import vocabulary as sites
from ...errors import TaskTimeoutError
from ...exception import TaskInterrupted
from ..insights import TaskClock, describe_args
from ..wire.codec import Serializer
from ..wire.inherit import adopt, use_loads
from ..wire.protocol import (
    EXIT_TARGET,
    EXIT_TIME,
    EXITING,
    IDLE,
    INIT_TARGET,
    INIT_TIME,
    INITIALIZING,
    INSIGHT_FIELDS,
    ITEM,
    MAX_BATCH,
    PHASE,
    PHASE_START,
    PICKLING,
    PROGRESS_FIELDS,
    RUNNING,
    SOFT_TIMEOUT,
    STOP,
    STRUCK,
    TARGET_ITEM,
    TARGET_TASK,
    TASK_ID,
    UNPICKLING,
    UPDATE,
    WAIT_TIME,
    done,
    exit_failed,
    exited,
    failed,
    flag_offset,
    init_failed,
    ready,
    retiring,
    skipped,
    top_tasks,
)
from ..wire.shm import Segments
from .orphans import die_with_parent, release_forkserver
from .runners import CALL_ABORTED, run_batches, run_items


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What a worker needs to know; everything user-supplied travels in ``user``."""

    worker_id: int
    use_dill: bool
    pass_worker_id: bool
    use_worker_state: bool
    has_shared_objects: bool
    worker_lifespan: int | None
    cpu_ids: tuple[int, ...] | None
    chaos: Any
    close_fds: tuple[int, ...]
    insights: bool = False
    in_thread: bool = False  # start_method="threading": a thread of the parent, not a process
    serializer: Any = None  # the parent's own, for threads (see threads.py); None: pickle or dill by use_dill
    shm_prefix: str | None = None  # big results go to shared memory under this prefix (see shm.py)
    pool_size: int = 1  # n_jobs: sizes the worker's pipes (slots.pipe_size)
    parent_pid: int | None = None  # the process that forks this worker; None: the forkserver (see orphans.py)
    # The shared objects are worker_init's and worker_exit's alone (multiprocessing.Pool's initargs, handed
    # over as the process starts): tasks are called without them.
    hooks_only_objects: bool = False


@dataclass(frozen=True, slots=True)
class PickledObjects:
    """Shared objects pickled with dill in the parent (``use_dill=True`` with spawn or forkserver).

    Without dill, shared objects travel as a plain argument of the process,
    so multiprocessing pickles them while it starts the process: the one
    moment it lets Locks, Events, Values and Conditions through.
    """

    data: bytes


class _Worker:
    def __init__(self, cfg: WorkerConfig, user: Any, shared_objects: Any, task_conn, result_conn, progress,
                 cancelled, insights) -> None:
        self.cfg = cfg
        segments = Segments.results(cfg.shm_prefix) if cfg.shm_prefix else None
        self.serializer = cfg.serializer or Serializer(cfg.use_dill, segments)
        if not cfg.in_thread:
            use_loads(self.serializer.loads)  # how a map's function arrives pickled (inherit.Shipped)
        if isinstance(user, bytes):
            user = self.serializer.loads(user)
        self.worker_init, self.worker_exit, *function = user
        if function:  # spawn: the call's map function, unpickled with the hooks so they share objects
            adopt(*function)
        self.lifespan = cfg.worker_lifespan  # a later call may change it and worker_exit (UPDATE)
        if isinstance(shared_objects, PickledObjects):
            shared_objects = self.serializer.loads(shared_objects.data)
        self.task_conn = task_conn
        self.result_conn = result_conn
        self.progress = progress
        self.progress_view = memoryview(progress).cast("B").cast("d")  # stores from C code (run_batches)
        self.flags = memoryview(progress).cast("B")
        self.flag_positions: tuple[list[int], list[int]] | None = None  # made by the first batched chunk
        self.base = cfg.worker_id * PROGRESS_FIELDS
        self.cancelled = cancelled
        self.insights = insights if cfg.insights else None
        self.insight_base = cfg.worker_id * INSIGHT_FIELDS
        self.chaos = cfg.chaos
        if self.chaos is not None and not cfg.in_thread:  # threads share the parent's Chaos: never theirs to mark
            self.chaos.on_strike = self.struck
        worker_id = (cfg.worker_id,) if cfg.pass_worker_id else ()
        objects = (shared_objects,) if cfg.has_shared_objects else ()
        state: tuple[dict, ...] = ({},) if cfg.use_worker_state else ()
        self.hook_preamble = (*worker_id, *objects, *state)  # what worker_init and worker_exit are called with
        self.preamble = (*worker_id, *(() if cfg.hooks_only_objects else objects), *state)  # what tasks get first
        # With insights on, each answer is preceded by the tasks that entered
        # this worker's longest five (see insights.py); off, no clock exists
        # and ``send`` is the plain one: nothing is timed, wrapped or sent.
        self.clock = TaskClock(insights, cfg.worker_id, len(self.preamble)) if self.insights is not None else None
        self.send: Callable[[tuple], None] = self._send if self.clock is None else self._send_after_top_tasks
        self.handled = 0  # items counted towards worker_lifespan (see perform)
        self.retired = False  # worker_lifespan reached: worker_exit, then the end

    def _send(self, message: tuple) -> None:
        self.result_conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def _send_after_top_tasks(self, message: tuple) -> None:
        assert self.clock is not None
        fresh = self.clock.take_fresh()
        if fresh:
            self._send(top_tasks(fresh))
        self._send(message)

    def mark(self, task_id: float, index: float, phase: float) -> None:
        p, b = self.progress, self.base
        p[b + TASK_ID] = task_id
        p[b + ITEM] = index
        p[b + PHASE] = phase
        p[b + PHASE_START] = time.monotonic()

    def struck(self, action: str) -> None:
        self.progress[self.base + STRUCK] = 1.0

    def visit(self, site: str, task_index: int | None = None, attempt: int = 0, call: int = 0) -> None:
        if self.chaos is not None:
            self.chaos.visit(site, worker_id=self.cfg.worker_id, task_index=task_index, attempt=attempt, call=call)

    def record(self, field: int, seconds: float) -> None:
        if self.insights is not None:
            self.insights[self.insight_base + field] += seconds

    def on_interrupt(self, signum: int = 0, frame: Any = None) -> None:
        """The parent's soft timeout (SIGUSR1): raise inside whatever it is aimed at, if that still runs.

        The parent writes its target (a task id and item, or a hook) into our
        progress slot before it signals; a signal that arrives after the
        target finished finds another phase or item there and does nothing,
        so it can never strike the next task.
        """
        p, b = self.progress, self.base
        phase, target = p[b + PHASE], p[b + TARGET_TASK]
        if phase == RUNNING and target == p[b + TASK_ID] and p[b + TARGET_ITEM] == p[b + ITEM]:
            raise TaskInterrupted(None, self.cfg.worker_id, killed=False)  # also MPIRE's InterruptWorker
        if phase == INITIALIZING and target == INIT_TARGET:
            raise TimeoutError(f"worker_init on worker {self.cfg.worker_id} exceeded worker_init_timeout")
        if phase == EXITING and target == EXIT_TARGET:
            raise TimeoutError(f"worker_exit on worker {self.cfg.worker_id} exceeded worker_exit_timeout")

    def run(self) -> None:
        began = time.perf_counter()
        try:  # an exception injected at 'init' is a worker_init failure like any other
            self.visit(sites.INIT)
            if self.worker_init is not None:
                self.mark(-1, -1, INITIALIZING)
                self.worker_init(*self.hook_preamble)
                self.mark(-1, -1, IDLE)
        except Exception as exc:  # noqa: BLE001 - whatever worker_init raised is an init failure
            self.mark(-1, -1, IDLE)
            exc = _hook_timeout(exc, f"worker_init on worker {self.cfg.worker_id} exceeded worker_init_timeout")
            self.send(init_failed(dump_exception(exc, self.serializer)))
            return
        if self.worker_init is not None:  # as MPIRE: no hook, no init time (not even our own start-up's)
            self.record(INIT_TIME, time.perf_counter() - began)
        self.send(ready(os.getpid()))
        timed = self.insights is not None
        while True:
            if self.chaos is not None and not self.task_conn.poll(0):
                self.visit(sites.IDLE)
            began = time.perf_counter() if timed else 0.0
            try:
                data = self.task_conn.recv_bytes()
            except (EOFError, OSError):
                if self.cfg.in_thread:
                    return
                os._exit(0)  # the parent is gone: nobody is left to run worker_exit for
            kind, *fields = pickle.loads(data)
            if kind == STOP:
                self.stop()
                return
            if kind == UPDATE:
                self.worker_exit, self.lifespan = self.serializer.loads(fields[0])
                if self.lifespan is not None and self.handled >= self.lifespan:  # the new lifespan is already over
                    self.retired = True
                    self.send(retiring(self.handled))
                    self.stop()
                    return
                continue
            if timed:
                self.record(WAIT_TIME, time.perf_counter() - began)
            self.perform(*fields)  # working time and items: counted per call by self.clock
            self.mark(-1, -1, IDLE)
            if self.retired:
                self.stop()
                return

    def answer(self, message: tuple, counted: int) -> None:
        """Send a task's answer; ``counted`` items count towards ``worker_lifespan``.

        RETIRING goes out before the answer that reaches the lifespan: a
        caller woken by that answer must find the supervisor already knowing
        this worker is about to run worker_exit (a keep_alive call waits for it).
        """
        self.handled += counted
        lifespan = self.lifespan
        if lifespan is not None and self.handled >= lifespan:
            self.retired = True
            self.send(retiring(self.handled))
        self.send(message)

    def perform(self, task_id: int, job_id: int, first_index: int, attempt: int, payload: bytes,
                 timed: bool = True, call: int = 0) -> None:
        """Run one task and answer it, counting what MPIRE counts towards ``worker_lifespan``.

        MPIRE's worker adds ``len(results)`` per chunk: every item whose
        result (or, for apply, whose exception) it sent. A map chunk that
        raised or was aborted sends none (MPIRE's worker stops right there),
        and neither does an apply task its timeout interrupted.
        """
        self.mark(task_id, first_index, UNPICKLING)
        try:
            self.visit(sites.ARGS_UNPICKLE, first_index, attempt, call)
            func, kind, items = self.serializer.loads(payload)
        except Exception as exc:  # noqa: BLE001 - whatever unpickling raised fails this task
            self.answer(failed(task_id, 0, dump_exception(exc, self.serializer), TASK_ARGS, summarize(exc)), 0)
            return
        # The task clock starts here, after the arguments (and the function's
        # module) were loaded: importing numpy is not the task's time.
        self.mark(task_id, first_index, RUNNING)
        if self.clock is not None:
            func = self.clock.wrap(func)
        results: list[Any] = []
        if self.chaos is None and kind != APPLY and not self.preamble and not timed:
            # MPIRE's rule looks at the items' types; multiprocessing's rules fix the style by themselves.
            style = uniform_style(items) if kind == MPIRE else FIXED_STYLES[kind]
            if style is not None:
                outcome = run_batches(func, items, first_index, job_id, style, results, self.progress_view,
                                      self.flags, self._flag_positions(), self.base, self.cancelled)
            else:
                outcome = self._run_items(func, kind, items, first_index, job_id, attempt, timed, results, call)
        else:
            outcome = self._run_items(func, kind, items, first_index, job_id, attempt, timed, results, call)
        if outcome is CALL_ABORTED:
            self.answer(skipped(task_id), 0)
            return
        if outcome is not None:  # the exception of item first_index + len(results)
            # A soft timeout is told apart here, so the parent never unpickles an error to learn it.
            soft_timeout = isinstance(outcome, TaskTimeoutError)
            context = "" if soft_timeout else self._context(kind, items, len(results))
            self.answer(failed(task_id, len(results), dump_exception(outcome, self.serializer, context),
                               SOFT_TIMEOUT if soft_timeout else None, summarize(outcome)),
                        1 if kind == APPLY and not soft_timeout else 0)
            return
        self.mark(task_id, first_index, PICKLING)
        try:
            self.visit(sites.RESULT_PICKLE, first_index, attempt, call)
            data = self.serializer.dumps(results)
        except Exception as exc:  # noqa: BLE001 - whatever pickling the result raised fails this task
            # MPIRE counts results before they are pickled on their way out
            self.answer(failed(task_id, 0, dump_exception(exc, self.serializer), RESULT, summarize(exc)), len(results))
            return
        self.answer(done(task_id, data), len(results))

    def _context(self, kind: str, items: Any, at: int) -> str:
        """MPIRE's first lines of a task's remote traceback: the worker, and the arguments of the item that raised."""
        try:
            args, kwargs = arguments_of(kind, items[at])
            shown = describe_args(args, kwargs, "\n")
        except Exception:  # noqa: BLE001 - the item's error matters, not a failure to describe it
            return ""
        return f"Exception occurred in Worker-{self.cfg.worker_id} with the following arguments:\n{shown}\n"

    def _flag_positions(self) -> tuple[list[int], list[int]]:
        """The byte offsets of this worker's two flag areas, as lists: iterating them makes no int per item."""
        if self.flag_positions is None:
            first, second = (list(range(flag_offset(self.base, area), flag_offset(self.base, area) + MAX_BATCH))
                             for area in (0, 1))
            self.flag_positions = (first, second)
        return self.flag_positions

    def _run_items(self, func: Callable, kind: str, items: list, first_index: int, job_id: int, attempt: int,
                   timed: bool, results: list, call: int) -> Any:
        visit = self.visit if self.chaos is not None else None
        return run_items(func, kind, items, first_index, job_id, attempt, timed, results, call, self.progress,
                         self.base, self.cancelled, self.preamble, visit)

    def stop(self) -> None:
        if self.lifespan is not None and self.handled == 0:
            # A life that replaced a retired worker and ran no task before the
            # stop: MPIRE's worker runs worker_exit only if it ran a task, so
            # such a life gives no exit value. (Without a lifespan every worker
            # still runs it: MPIRE deals chunks round-robin, so each of its
            # workers gets one, where ours go to whichever worker is free.)
            self.send(exited(None))
            return
        value = None
        began = time.perf_counter()
        try:
            self.visit(sites.EXIT)
            if self.worker_exit is not None:
                self.mark(-1, -1, EXITING)
                value = self.worker_exit(*self.hook_preamble)
            self.mark(-1, -1, IDLE)
        except Exception as exc:  # noqa: BLE001 - whatever worker_exit raised is an exit failure
            self.mark(-1, -1, IDLE)
            exc = _hook_timeout(exc, f"worker_exit on worker {self.cfg.worker_id} exceeded worker_exit_timeout")
            self.send(exit_failed(dump_exception(exc, self.serializer)))
            return
        if self.worker_exit is None:
            self.send(exited(None))  # no worker_exit, no exit value
            return
        self.record(EXIT_TIME, time.perf_counter() - began)
        try:
            data = self.serializer.dumps(value)
        except Exception as exc:  # noqa: BLE001 - whatever pickling worker_exit's value raised is an exit failure
            self.send(exit_failed(dump_exception(exc, self.serializer)))
            return
        self.send(exited(data))


def _hook_timeout(exc: Exception, message: str) -> Exception:
    """A thread worker's soft timeout lands in a hook as the task's interrupt: name the hook instead."""
    if isinstance(exc, TaskTimeoutError) and exc.timeout is None and not exc.killed:
        return TimeoutError(message)
    return exc


def worker_main(cfg: WorkerConfig, user: Any, task_conn, result_conn, progress, cancelled, insights,
                shared_objects: Any = None) -> None:
    """Entry point of every worker: a process (fork, spawn, forkserver) or a thread (threading)."""
    if not cfg.in_thread:
        # Ctrl-C goes to the whole process group; the parent decides what
        # stops. Ignored first, so a worker still starting prints no traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        die_with_parent(cfg.parent_pid)
        release_forkserver()
        for fd in cfg.close_fds:  # fork: the parent's ends of other workers' pipes
            try:
                os.close(fd)
            except OSError:
                pass
        try:  # a crash should leave a Python stack on stderr; sys.stderr may be a capture object without fileno
            faulthandler.enable(file=sys.__stderr__ or sys.stderr, all_threads=False)
        except (AttributeError, ValueError, OSError):
            pass
        if cfg.cpu_ids:
            os.sched_setaffinity(0, cfg.cpu_ids)
    try:
        worker = _Worker(cfg, user, shared_objects, task_conn, result_conn, progress, cancelled, insights)
    except Exception as exc:  # noqa: BLE001 - shared objects / hooks failed to unpickle: an init failure
        result_conn.send_bytes(pickle.dumps(init_failed(dump_exception(exc, Serializer(cfg.use_dill)))))
        return
    if not cfg.in_thread:
        signal.signal(signal.SIGUSR1, worker.on_interrupt)
    try:
        worker.run()
    finally:
        result_conn.close()
        if cfg.in_thread:
            task_conn.close()
