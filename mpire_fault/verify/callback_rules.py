"""The terminate rule of the pool machine: terminate() while a slow callback runs (``resolved-once``).

A mixin of ``machines.PoolMachine``. terminate() ends the pool, so the rule
closes it (checking ``no-orphans``) and gives the machine a fresh one.
"""
from __future__ import annotations

import threading
import time

from hypothesis import strategies as st
from hypothesis.stateful import rule

from .adapters import Hang
from .guarantees import SLOW_CALLBACK, Guarantee, Refused, grading, show
from .machine_parts import MachineParts
from .tasks import work


class CallbackRules(MachineParts):
    """``terminate_during_a_slow_callback``: every result resolves once, its hook runs once."""

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
            made = seen.get(index, [])
            value, error = answers[index]
            if len(made) != 1:
                self.violate(Guarantee.RESOLVED_ONCE, f"task {index} ({kind}): {len(made)} callback calls "
                                              f"{[name for name, _ in made]}, answer {show(value, error)}")
            elif (made[0][0] == "callback") != (error is None):
                self.violate(Guarantee.RESOLVED_ONCE, f"task {index} ({kind}): {made[0][0]} got {made[0][1]!r} "
                                              f"but get() gave {show(value, error)}")
            elif made[0][0] == "callback" and made[0][1] != value:
                self.violate(Guarantee.RESOLVED_ONCE,
                             f"task {index} ({kind}): callback got {made[0][1]!r}, get() {value!r}")
