"""The callbacks of the pool machine (``resolved-once``): each task's hook runs once, with its answer.

A mixin of ``machines.PoolMachine``. Tasks the ``submit`` rule sends with
hooks record each call (``recording_hooks``), and when the task's answer is
in, exactly one of them must have run, once, with that answer
(``hooks_agree``; a second call arriving later is caught at teardown). The
terminate rule checks the same while terminate() comes during a slow
callback; terminate() ends the pool, so that rule closes it (checking
``no-orphans``) and gives the machine a fresh one.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from .adapters import Hang
from .guarantees import SLOW_CALLBACK, Guarantee, Refused, grading, show
from .machine_parts import MachineParts
from .tasks import work

RAISE_AFTER = 0.3  # how long the raising hook of a_callback_raises_with_answers_on_the_way runs before it raises
HOOK_WAIT = 1.0  # after get() answered: how long a pool may take to run that task's hook (an executor runs
# its done-callbacks after it wakes the waiter)


class HookRaised(Exception):
    """What the kit's raising callbacks raise."""


def hook_problem(made: list[tuple[str, object]], value: object, error: BaseException | None) -> str | None:
    """What is wrong with the hook calls ``made`` for a task that answered ``value`` or ``error``, or None."""
    if len(made) != 1:
        return f"{len(made)} callback calls {[name for name, _ in made]}, answer {show(value, error)}"
    name, given = made[0]
    if (name == "callback") != (error is None):
        return f"{name} got {given!r} but get() gave {show(value, error)}"
    if name == "callback" and given != value:
        return f"callback got {given!r}, get() {value!r}"
    if name == "error_callback" and not _same_error(given, error):
        return f"error_callback got {given!r}, get() raised {error!r}"
    return None


def _same_error(given: object, raised: BaseException | None) -> bool:
    """Whether an error_callback got the error get() raised: the same object, or (a pool that copies it on
    the way) an exception of the same type and message."""
    return given is raised or (isinstance(given, BaseException) and type(given) is type(raised)
                               and str(given) == str(raised))


class CallbackRules(MachineParts):
    """Hooks on submitted tasks, and ``terminate_during_a_slow_callback``: every result resolves once, its
    hook runs once."""

    def recording_hooks(self, index: int, raising: bool = False,
                        after: float = 0.0) -> dict[str, Callable[[Any], None]]:
        """``callback`` and ``error_callback`` for task ``index`` that record each call in ``hook_calls``; with
        ``raising``, each then raises HookRaised, ``after`` seconds later (a user's bug, which must cost the
        pool nothing)."""
        made = self.hook_calls[index] = []

        def raise_if_asked(name: str) -> None:
            if raising:
                time.sleep(after)
                raise HookRaised(f"the {name} of task {index} raises on purpose")

        def callback(value: Any) -> None:
            made.append(("callback", value))  # list.append is atomic: hooks may run on any thread
            raise_if_asked("callback")

        def error_callback(error: Any) -> None:
            made.append(("error_callback", error))
            raise_if_asked("error_callback")

        return {"callback": callback, "error_callback": error_callback}

    def hooks_agree(self, index: int, kind: str, value: object, error: BaseException | None) -> None:
        """Task ``index`` answered: if it was sent with recording hooks, exactly one ran, once, with the answer."""
        made = self.hook_calls.get(index)
        if made is None:
            return
        deadline = time.monotonic() + HOOK_WAIT
        while not made and time.monotonic() < deadline:
            time.sleep(0.005)
        problem = hook_problem(list(made), value, error)
        if problem:
            self.violate(Guarantee.RESOLVED_ONCE, f"task {index} ({kind}): {problem}")

    def no_hook_ran_twice(self) -> None:
        """At teardown: a hook that ran again after its task's answer was checked."""
        twice = {index: [name for name, _ in made] for index, made in self.hook_calls.items() if len(made) > 1}
        if twice:
            self.violate(Guarantee.RESOLVED_ONCE, f"callbacks that ran more than once: {twice}")

    @grading(Guarantee.RESOLVED_ONCE)
    @rule(behind=st.integers(1, 3), kind=st.sampled_from(["ok", "raise"]))
    def a_callback_raises_with_answers_on_the_way(self, behind: int, kind: str) -> None:
        """A task whose hook raises after RAISE_AFTER, and ``behind`` tasks with hooks whose answers arrive while
        it runs (none submitted after them): their hooks must still run, and their results answer."""
        self.wait_for_results()
        self.enqueue(kind, 0.0, hooks="raise", raise_after=RAISE_AFTER)  # its answer judged as any task's
        for _ in range(behind):
            self.enqueue("ok", 0.05, hooks="record")
        self.wait_for_results()

    @grading()
    @rule(others=st.lists(st.sampled_from(["ok", "raise", "sigkill"]), max_size=3))
    def terminate_during_a_slow_callback(self, others: list[str]) -> None:
        """A slow callback runs, terminate() comes, every result must resolve once; then a fresh pool."""
        calls: dict[int, list[tuple[str, object]]] = {}
        lock = threading.Lock()
        in_slow_callback = threading.Event()

        def hooks(index: int, slow: bool):
            def callback(value):
                with lock:
                    calls.setdefault(index, []).append(("callback", value))
                if slow:
                    in_slow_callback.set()
                    time.sleep(SLOW_CALLBACK)

            def error_callback(error):
                with lock:
                    calls.setdefault(index, []).append(("error_callback", error))

            return {"callback": callback, "error_callback": error_callback}

        # the first answers at once (its callback is the slow one); the second is still running at terminate()
        plan = [("ok", 0.0), ("ok", 5.0)] + [(kind, 0.02) for kind in others]
        # terminate() ends the pool: use ours, then start a fresh one (two live pools could not tell
        # their worker processes apart, which no-orphans needs)
        self.wait_for_results()
        pool = self.adapter
        handles: dict[int, tuple[str, object]] = {}
        answers: dict[int, tuple[object, BaseException | None]] = {}
        try:
            for n, (kind, nap) in enumerate(plan):
                index = self.new_index()
                try:
                    handle = pool.submit(work, (kind, self.markers, index, nap), **hooks(index, slow=n == 0))
                except Exception as exc:  # noqa: BLE001 - whatever the pool raised is its answer
                    handle = Refused(exc)
                handles[index] = (kind, handle)
            if not in_slow_callback.wait(self.bound):
                self.hang(f"the callback of task {min(handles)} did not run within {self.bound} s")
            stopper = threading.Thread(target=pool.terminate, args=(SLOW_CALLBACK + self.bound,), daemon=True)
            stopper.start()
            for index, (kind, handle) in handles.items():
                try:
                    if isinstance(handle, Refused):
                        raise handle.error
                    answers[index] = (pool.get(handle, SLOW_CALLBACK + self.bound), None)
                except Hang:
                    self.hang(f"task {index} ({kind}) was not answered within {SLOW_CALLBACK + self.bound} s "
                              "of terminate()")
                except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the pool raised is its answer
                    answers[index] = (None, exc)
            stopper.join(SLOW_CALLBACK + self.bound)
            time.sleep(0.3)  # a second callback for an answered task would come now
        finally:
            if self.hung is None:  # a hang leaves the pool to teardown's close
                left = pool.close()
                self.adapter = self.new_adapter()
                self.after_idle_kill = self.map_aborted = False
        if left:
            self.violate(Guarantee.NO_ORPHANS,
                         f"processes left after terminate() and close: {left}: {pool.left_behind}")
        with lock:
            seen = {index: list(made) for index, made in calls.items()}
        for index, (kind, _) in handles.items():
            problem = hook_problem(seen.get(index, []), *answers[index])
            if problem:
                self.violate(Guarantee.RESOLVED_ONCE, f"task {index} ({kind}): {problem}")
