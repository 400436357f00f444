"""Rules about what a pool must not leave behind or keep doing: a worker_init that always fails, segments
in /dev/shm, and workers of a parent that was SIGKILLed.

A mixin of ``machines.PoolMachine``. The parent's death cannot happen to the process that grades (it
must live to give the verdict), so it happens to a small parent program (``orphan_probe``) that
starts the same adapter's pool, keeps some of its workers busy, and is SIGKILLed from here; every
process it started must then be gone within ``PARENT_BOUND``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .adapter_base import CLOSE_BOUND, REAP_BOUND, SETTLE_CAP, Hang, bounded, kill_and_wait
from .guarantees import Guarantee, Refused, grading, show
from .machine_parts import MachineParts
from .tasks import InitFailed, failing_init, work, work_big

BIG = 3 << 19  # 1.5 MiB: over the 1 MiB from which our pool puts arguments in shared memory
SHM_DIR = "/dev/shm"
SHM_SETTLE = 1.0  # after the last answer: how long a segment may take to go (its owner is freed by then)
PARENT_BOUND = 3.0  # after the parent's SIGKILL: how long its pool's processes may take to exit
MAX_PARENT_PROBES = 2  # per example: the opening's (fork, one busy worker) and one drawn
PROBE_START = 20.0  # how long the parent program may take to start its pool (spawn imports in every worker)


def segments(prefix: str | None) -> list[str]:
    if not prefix or not os.path.isdir(SHM_DIR):
        return []
    return sorted(name for name in os.listdir(SHM_DIR) if name.startswith(prefix))


def blob(kind: str):
    if kind == "numpy":
        try:
            import numpy
        except ImportError:
            return bytes(BIG)
        return numpy.zeros(BIG // 8)
    return bytes(BIG)


class ResourceRules(MachineParts):
    """init-gives-up, no-shm-leak, parent-death."""

    # ------------------------------------------------------------------ init-gives-up
    @grading(Guarantee.INIT_GIVES_UP)
    @precondition(lambda self: "worker_init" in self.adapter.features)
    @rule()
    def a_worker_init_that_always_fails(self) -> None:
        index = self.new_index()
        what = f"task {index} on a fresh pool whose worker_init always raises InitFailed"
        total = self.bound + CLOSE_BOUND + SETTLE_CAP + REAP_BOUND + 2.0
        try:
            value = bounded(lambda: self.adapter.call_with_init(failing_init, work, ("ok", self.markers, index, 0.0),
                                                                self.bound), total, "call_with_init")
        except Hang as exc:
            self.hang(f"{what}: no answer ({exc}); the pool respawns its workers forever")
            return
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the pool's answer
            if not isinstance(exc, InitFailed):
                self.violate(Guarantee.INIT_GIVES_UP, f"{what} got {show(None, exc)}, not an error of the hook's "
                                                      "own class (InitFailed)")
            elif self.adapter.death_error == "WorkerDiedError" and type(exc).__name__ != "WorkerInitError" and not any(
                    k.__name__ == "WorkerInitError" for k in type(exc).__mro__):
                self.violate(Guarantee.INIT_GIVES_UP, f"{what} got {show(None, exc)}, not a WorkerInitError")
            return
        self.violate(Guarantee.INIT_GIVES_UP, f"{what} returned {value!r}")

    # ------------------------------------------------------------------ no-shm-leak
    @grading(Guarantee.NO_SHM_LEAK)
    @precondition(lambda self: "shared_memory" in self.adapter.features)
    @rule(kind=st.sampled_from(["bytes", "numpy"]),
          applies=st.lists(st.sampled_from(["ok", "echo", "sigkill", "raise"]), max_size=3),
          map_with=st.sampled_from([None, "ok", "echo", "sigkill", "raise"]), size=st.integers(1, 5))
    def big_arguments(self, kind: str, applies: list[str], map_with: str | None, size: int) -> None:
        """Big arguments (and results, for ``echo``) through apply, some dying, and a map whose first item may
        die or raise at once (the items queued behind it are dropped by the abort); then nothing may be left."""
        self.wait_for_results()
        big = blob(kind)
        handles = []
        for task in applies:
            index = self.new_index()
            try:
                handles.append((index, task, self.adapter.submit(work_big, (task, self.markers, index, 0.0, big))))
            except Exception as exc:  # noqa: BLE001 - a refusal is this task's answer
                handles.append((index, task, Refused(exc)))
        for index, task, handle in handles:
            self.answer(handle, self.bound, f"task {index} ({task}, big argument) never answered")
        if map_with is not None:
            # the first item answers at once; the rest take long enough that some are still queued then
            items = [(map_with, self.markers, self.new_index(), 0.0, big)] + [
                ("echo" if map_with == "echo" else "ok", self.markers, self.new_index(), 0.15, big)
                for _ in range(size - 1)]
            try:
                self.adapter.map(work_big, items, self.bound)
            except Hang:
                self.hang(f"map of {size} items with big arguments never returned")
                return
            except Exception:  # noqa: BLE001, S110 - an aborted map is part of the plan
                pass
            if map_with in ("sigkill", "raise"):
                self.map_aborted = True
        del big, handles
        what = (f"after apply tasks {applies} and a map of {size} ({map_with}) with big {kind} arguments"
                if map_with else f"after apply tasks {applies} with big {kind} arguments")
        self.check_no_segments(what)

    def check_no_segments(self, what: str) -> None:
        prefix = self.adapter.shm_prefix()
        deadline = time.monotonic() + SHM_SETTLE
        left = segments(prefix)
        while left and time.monotonic() < deadline:
            time.sleep(0.02)
            left = segments(prefix)
        if left:
            self.violate(Guarantee.NO_SHM_LEAK, f"{what}, every task answered: {len(left)} segments left in "
                                                f"{SHM_DIR}: {left[:3]}")

    # ------------------------------------------------------------------ parent-death
    @grading(Guarantee.PARENT_DEATH)
    # A probe is a program of its own, whatever else the example did: a second drawn one adds nothing a next
    # example would not, and costs a Python start and a pool (a Dask cluster: seconds of CPU).
    @precondition(lambda self: self.parents_killed < MAX_PARENT_PROBES)
    @rule(start_method=st.sampled_from(["fork", "spawn", "forkserver"]), busy=st.integers(0, 2))
    def the_parent_is_sigkilled(self, start_method: str, busy: int) -> None:
        self.parents_killed += 1
        if "start_methods" not in self.adapter.features:
            start_method = "default"
        options = {} if start_method == "default" else {"start_method": start_method}
        cls = self.adapter_cls
        command = [sys.executable, "-m", "mpire_fault.verify.orphan_probe", f"{cls.__module__}:{cls.__qualname__}",
                   json.dumps(options), str(busy), self.markers]
        what = f"a parent with a {self.adapter.name} pool ({start_method}, {busy} busy workers), SIGKILLed"
        try:
            proc = bounded(lambda: _start_probe(command), PROBE_START, "starting the parent program")
        except Hang as exc:
            self.hang(f"{what}: {exc}")
            return
        try:
            line = _read_line(proc, PROBE_START)
            if line is None:
                err = _drain(proc)
                raise RuntimeError(f"the parent program did not start its pool within {PROBE_START} s: {err[-300:]}")
            try:
                family = psutil.Process(proc.pid).children(recursive=True)
            except psutil.Error:
                family = []
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(REAP_BOUND)
            deadline = time.monotonic() + PARENT_BOUND
            while True:
                left = [p for p in family if _running(p)]
                if not left or time.monotonic() >= deadline:
                    break
                time.sleep(0.02)
            if left:
                shown = ", ".join(f"{p.pid} ({_name(p)})" for p in left[:4])
                self.violate(Guarantee.PARENT_DEATH, f"{what}: {len(left)} of its {len(family)} processes still ran "
                                                     f"{PARENT_BOUND} s later: {shown}")
            kill_and_wait([p.pid for p in left], REAP_BOUND)
        finally:
            if proc.poll() is None:
                proc.kill()
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever of the probe is left, in its session
            except OSError:
                pass
            _drain(proc)


def _start_probe(command: list[str]) -> subprocess.Popen:
    """Popen under our pools' start lock: a worker forked while Popen waits for the exec would inherit the
    pipe Popen reads the exec's outcome from, and Popen would wait for that worker to die (forever)."""
    from .._engine.wire.inherit import start_lock

    with start_lock():
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _name(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())[-60:]
    except psutil.Error:
        return "?"


def _read_line(proc: subprocess.Popen, timeout: float) -> str | None:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box and box[0] else None


def _drain(proc: subprocess.Popen) -> str:
    try:
        _, err = proc.communicate(timeout=REAP_BOUND)
        return err or ""
    except (subprocess.TimeoutExpired, ValueError, OSError):
        return ""
