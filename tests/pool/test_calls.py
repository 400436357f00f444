"""Callbacks, argument validation, lazy inputs and map details (chunks, ordering) under deaths."""
from __future__ import annotations

import itertools
import os
import signal
import threading
import time

import pytest

from mpire_fault import WorkerDiedError, WorkerPool

from . import observe, tasks
from .observe import runs, wait_recovered

# ---------------------------------------------------------------------------
# Callbacks


class Recorder:
    """Collects callback calls from the callback thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: list = []
        self.errors: list = []

    def value(self, v) -> None:
        with self.lock:
            self.values.append(v)

    def error(self, e) -> None:
        with self.lock:
            self.errors.append(e)


def test_callbacks_called_exactly_once(start_method, markers):
    rec = Recorder()
    with WorkerPool(2, start_method=start_method) as pool:
        results = [
            pool.apply_async(tasks.work, (markers, i, "sigkill" if i == 2 else ("raise" if i == 4 else None), 0.02),
                             callback=rec.value, error_callback=rec.error)
            for i in range(8)
        ]
        for r in results:
            r.wait(timeout=30)
        assert all(r.ready() for r in results)  # ready only after its callback ran
        assert sorted(rec.values) == [0, 1, 3, 5, 6, 7]
        assert len(rec.errors) == 2
        assert sorted(type(e).__name__ for e in rec.errors) == ["BoundaryError", "WorkerDiedError"]
        died = next(e for e in rec.errors if isinstance(e, WorkerDiedError))
        assert "#2 " in died.task
        wait_recovered(pool)
        pool.stop_and_join()
    assert sorted(rec.values) == [0, 1, 3, 5, 6, 7] and len(rec.errors) == 2  # still once each


def _raise(_arg):
    raise ValueError("a callback that raises")


def test_raising_callbacks_do_not_break_the_pool(start_method, markers, caplog):
    with WorkerPool(2, start_method=start_method) as pool:
        ok = pool.apply_async(tasks.square, (3,), callback=_raise, error_callback=_raise)
        bad = pool.apply_async(tasks.work, (markers, 0, "os_exit5"), callback=_raise, error_callback=_raise)
        assert ok.get(timeout=30) == 9
        with pytest.raises(WorkerDiedError):
            bad.get(timeout=30)
        rec = Recorder()
        later = [pool.apply_async(tasks.square, (i,), callback=rec.value) for i in range(4)]
        assert [r.get(timeout=30) for r in later] == [0, 1, 4, 9]
        assert sorted(rec.values) == [0, 1, 4, 9]
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_submitting_from_inside_a_callback(start_method):
    with WorkerPool(2, start_method=start_method) as pool:
        inner: list = []
        chained: list = []

        def resubmit(value):
            inner.append(pool.apply_async(tasks.square, (value,)))
            if value < 100:  # a chain of callbacks submitting from callbacks
                inner.append(pool.apply_async(tasks.square, (value + 1,), callback=resubmit))
            chained.append(value)

        first = pool.apply_async(tasks.square, (2,), callback=resubmit)
        assert first.get(timeout=30) == 4
        observe.wait_until(lambda: any(v >= 100 for v in chained), what="the callback chain")
        assert chained[:3] == [4, 25, 676]
        assert all(r.get(timeout=30) is not None for r in list(inner))


def test_error_callback_submits_a_replacement(start_method, markers):
    with WorkerPool(2, start_method=start_method) as pool:
        retried: list = []
        bad = pool.apply_async(tasks.work, (markers, 0, "sigkill"),
                               error_callback=lambda e: retried.append(pool.apply_async(tasks.square, (9,))))
        with pytest.raises(WorkerDiedError):
            bad.get(timeout=30)
        assert len(retried) == 1 and retried[0].get(timeout=30) == 81


# ---------------------------------------------------------------------------
# Argument validation


@pytest.mark.parametrize("kwargs,name", [
    ({"n_jobs": -1}, "n_jobs"),
    ({"n_jobs": 0}, "n_jobs"),
    ({"n_jobs": "2"}, "n_jobs"),
    ({"n_jobs": 1.5}, "n_jobs"),
    ({"start_method": "bogus"}, "start_method"),
    ({"max_task_retries": -1}, "max_task_retries"),
    ({"max_worker_memory": 0}, "max_worker_memory"),
])
def test_bad_constructor_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        WorkerPool(**{"n_jobs": 1, **kwargs})


@pytest.mark.parametrize("call", ["apply_async", "map", "imap_unordered"])
@pytest.mark.parametrize("name,value", [("task_timeout", -1), ("task_timeout", 0), ("worker_init_timeout", -0.5)])
def test_bad_call_arguments(call, name, value):
    with WorkerPool(1, start_method="fork") as pool:
        with pytest.raises(ValueError, match=name):
            if call == "apply_async":
                pool.apply_async(tasks.square, (1,), **{name: value})
            else:
                list(getattr(pool, call)(tasks.square, range(3), **{name: value}))
        with pytest.raises(ValueError, match="chunk_size"):
            pool.map(tasks.square, range(3), chunk_size=0)
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


# ---------------------------------------------------------------------------
# Lazy inputs


class Pulled:
    """An input generator that records how far it was pulled."""

    def __init__(self, limit: int | None = None) -> None:
        self.count = 0
        self.limit = limit

    def __iter__(self):
        for i in itertools.count() if self.limit is None else range(self.limit):
            self.count += 1
            yield i


@pytest.mark.filterwarnings("ignore:Failed to obtain length:RuntimeWarning")  # no len(): chunks of 4, as MPIRE
def test_infinite_generator_with_imap(start_method):
    source = Pulled()
    with WorkerPool(2, start_method=start_method) as pool:
        results = pool.imap(tasks.square, iter(source))
        assert list(itertools.islice(results, 10)) == [i * i for i in range(10)]
        results.close()
        assert source.count < 10 + 50, f"the infinite input was pulled {source.count} times"
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_ordered_imap_does_not_read_ahead_behind_a_slow_item(start_method):
    """Regression: results of later items waiting for a slow first one must not let the input run ahead.

    imap keeps order, so results after a slow item wait in a buffer; those
    count as active until they are yielded, or an infinite input would be
    pulled (and its results buffered) without bound.
    """
    source = Pulled()

    def items():
        for i in source:
            yield (1.0 if i == 0 else 0.0, i)

    with WorkerPool(2, start_method=start_method) as pool:
        results = pool.imap(tasks.sleep_then, items(), chunk_size=1)
        assert list(itertools.islice(results, 3)) == [0, 1, 2]
        results.close()
        assert source.count < 30, f"the input was pulled {source.count} times while item 0 ran"


@pytest.mark.filterwarnings("ignore:Failed to obtain length:RuntimeWarning")  # no len(): chunks of 4, as MPIRE
def test_generator_is_pulled_lazily(start_method):
    source = Pulled(limit=2000)
    with WorkerPool(2, start_method=start_method) as pool:
        results = pool.imap_unordered(tasks.square, iter(source), max_tasks_active=4)
        first = next(results)
        assert first in {i * i for i in range(source.count)}
        assert source.count <= 20, f"{source.count} items pulled before the first result"
        rest = list(results)
        assert sorted([first] + rest) == [i * i for i in range(2000)]
        assert source.count == 2000


@pytest.mark.filterwarnings("ignore:Failed to obtain length:RuntimeWarning")  # no len(): chunks of 4, as MPIRE
def test_death_stops_pulling_the_generator(start_method, markers):
    pulled = Pulled(limit=10_000)

    def items():
        for i in pulled:
            yield (markers, i, "sigkill" if i == 3 else None, 0.01)

    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(WorkerDiedError) as info:
            pool.map(tasks.work, items())
        assert "item 3 " in info.value.task
        assert pulled.count < 200
        assert max(runs(markers).values()) == 1


# ---------------------------------------------------------------------------
# Map details under deaths


def test_death_inside_a_chunk_names_the_item(start_method, markers):
    items = [(markers, i, "os_exit3" if i == 5 else None) for i in range(12)]
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(WorkerDiedError) as info:
            pool.map(tasks.work, items, chunk_size=4)
        assert "item 5 (work, chunk of items 4-7)" in info.value.task and info.value.exitcode == 3
        counts = runs(markers)
        assert max(counts.values()) == 1
        assert counts[4] == counts[5] == 1 and counts[6] == counts[7] == 0  # the rest of its chunk never started


def test_imap_yields_nothing_after_the_death(start_method, markers):
    items = [(markers, i, "sigkill" if i == 5 else None, 0.02) for i in range(30)]
    seen = []
    with WorkerPool(2, start_method=start_method) as pool:
        with pytest.raises(WorkerDiedError):
            for value in pool.imap(tasks.work, items, chunk_size=1):
                seen.append(value)
        assert seen == list(range(len(seen))) and len(seen) <= 5  # in order, and nothing from past the death
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_busy_worker_killed_from_outside_aborts_the_map(start_method, markers):
    pid_file = f"{markers}/victim.pid"
    with WorkerPool(2, start_method=start_method) as pool:
        items = [(pid_file, 30)] + [(f"{markers}/x{i}", 0.01) for i in range(3)]
        outcome: list = []

        def consume():  # the map runs in a thread while the test kills its busy worker
            try:
                outcome.extend(pool.imap_unordered(tasks.write_pid_and_sleep, items, chunk_size=1))
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread, which asserts on it
                outcome.append(exc)

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        victim = observe.wait_until(lambda: os.path.exists(pid_file) and open(pid_file).read(), what="victim pid")
        os.kill(int(victim), signal.SIGKILL)
        thread.join(30)
        assert not thread.is_alive()
        exc = outcome[-1]
        assert isinstance(exc, WorkerDiedError), outcome
        assert exc.pid == int(victim) and "item 0 " in exc.task and exc.exitcode == -9
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]



def test_map_death_leaves_concurrent_apply_tasks_alone(start_method, markers):
    """A map aborted by a death stops its own items only; apply tasks queued around it all succeed once."""
    with WorkerPool(2, start_method=start_method) as pool:
        applied = [pool.apply_async(tasks.work, (markers, 100 + i, None, 0.03)) for i in range(10)]
        with pytest.raises(WorkerDiedError) as info:
            pool.map(tasks.work, [(markers, i, "sigkill" if i == 2 else None, 0.03) for i in range(20)], chunk_size=1)
        assert "item 2 " in info.value.task
        assert [r.get(timeout=30) for r in applied] == [100 + i for i in range(10)]
        counts = runs(markers)
        assert all(counts[100 + i] == 1 for i in range(10)) and max(counts.values()) == 1


def test_worker_lifespan_with_a_death(start_method, markers):
    """Workers retiring after every task or two (worker_lifespan) and a death: still exactly once."""
    with WorkerPool(2, start_method=start_method) as pool:
        assert pool.map(tasks.quick, range(10), worker_lifespan=1, chunk_size=1) == list(range(10))
        with pytest.raises(WorkerDiedError) as info:
            pool.map(tasks.work, [(markers, i, "os_exit0" if i == 7 else None) for i in range(20)],
                     worker_lifespan=2, chunk_size=1)
        assert "item 7 " in info.value.task and info.value.exitcode == 0
        assert max(runs(markers).values()) == 1
        assert pool.map(tasks.square, range(5), worker_lifespan=1) == [0, 1, 4, 9, 16]


@pytest.fixture
def python_ctrl_c():
    """Python's own SIGINT handler for the test. A process a shell without job control starts in the
    background (nohup cmd &) inherits SIGINT ignored, and interrupt_main() then does nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("mode", ["map", "imap"])
def test_ctrl_c_during_a_map_stops_it_promptly(start_method, markers, mode, python_ctrl_c):
    """KeyboardInterrupt in the caller aborts the call: running items are killed, not awaited (as MPIRE does)."""
    import _thread

    items = [(markers, i, None, 30) for i in range(4)]
    with WorkerPool(2, start_method=start_method) as pool:
        timer = threading.Timer(0.5, _thread.interrupt_main)
        began = time.monotonic()
        try:
            with pytest.raises(KeyboardInterrupt):
                timer.start()
                if mode == "map":
                    pool.map(tasks.work, items, chunk_size=1)
                else:
                    for _ in pool.imap(tasks.work, items, chunk_size=1):
                        pass
        finally:
            timer.cancel()
        assert time.monotonic() - began < 10, "the interrupted call waited for its 30 s items"
        assert max(runs(markers).values(), default=1) == 1
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_input_generator_raising_aborts_the_map(start_method, markers):
    def items():
        for i in range(100):
            if i == 3:
                raise LookupError("the input broke")
            yield (markers, i, None, 30 if i < 2 else 0)

    with WorkerPool(2, start_method=start_method) as pool:
        began = time.monotonic()
        with pytest.raises(LookupError, match="the input broke"):
            pool.map(tasks.work, items(), chunk_size=1)
        assert time.monotonic() - began < 10
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]
