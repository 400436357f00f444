"""The joblib backend "mpire_fault": joblib's results and errors, scikit-learn's n_jobs=, and deaths.

joblib and scikit-learn come with the test extra; without joblib the module is skipped.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings

import pytest
from _children import children, wait_for_no_children

joblib = pytest.importorskip("joblib")

from joblib import Parallel, delayed, parallel_config  # noqa: E402

import mpire_fault.joblib  # noqa: E402,F401 - registers the backend
from mpire_fault import WorkerDiedError  # noqa: E402
from mpire_fault.joblib import MpireFaultBackend  # noqa: E402

from .joblib_tasks import fail_at, kill_self_at, nested_sum, square_plus  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def _stop_loky() -> None:
    """loky keeps its executor's workers for later calls; the suite's no-orphans guard wants them gone."""
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)


def _work() -> list:
    return [delayed(square_plus)(i, k=i % 4) for i in range(300)]


@pytest.fixture
def backend():
    """An active mpire_fault backend with two workers; shut down after the test."""
    with parallel_config(backend="mpire_fault", n_jobs=2) as config:
        yield config["backend"]
        config["backend"].shutdown()


def test_results_and_errors_match_loky_and_the_workers_stay_warm(backend):
    try:
        with parallel_config(backend="loky", n_jobs=2):
            expected = Parallel()(_work())
            with pytest.raises(KeyError) as loky_error:
                Parallel(batch_size=1)(delayed(fail_at)(i, 7) for i in range(20))
    finally:
        _stop_loky()

    assert Parallel()(_work()) == expected
    deadline = time.monotonic() + 10  # the call may finish on one worker while the other still starts
    while len(backend.statistics().worker_pids) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    pids = backend.statistics().worker_pids
    assert len(pids) == 2
    assert list(Parallel(return_as="generator")(_work())) == expected
    assert sorted(Parallel(return_as="generator_unordered")(_work())) == sorted(expected)
    assert backend.statistics().worker_pids == pids, "the workers must stay up between calls of one block"

    with pytest.raises(KeyError) as ours:
        Parallel(batch_size=1)(delayed(fail_at)(i, 7) for i in range(20))
    assert str(ours.value) == str(loky_error.value)
    assert Parallel()(_work()) == expected  # a task's error leaves the backend usable


def test_n_jobs_minus_one_is_every_cpu_and_one_runs_in_this_process():
    backend = MpireFaultBackend()
    assert backend.effective_n_jobs(-1) == joblib.cpu_count()
    assert backend.effective_n_jobs(-2) == max(joblib.cpu_count() - 1, 1)
    with pytest.raises(ValueError, match="n_jobs == 0"):
        backend.effective_n_jobs(0)
    with parallel_config(backend=backend, n_jobs=1):
        assert Parallel()(delayed(square_plus)(i) for i in range(3)) == [(0, 0), (1, None), (4, None)]
    assert backend.statistics().worker_pids == {}  # nothing was started for a sequential call


def test_nested_calls_run_on_threads_in_the_worker(backend):
    assert Parallel()(delayed(nested_sum)(n) for n in (3, 4)) == [("ThreadingBackend", 3), ("ThreadingBackend", 6)]


def test_scikit_learn_cross_val_score_runs_on_the_backend(backend):
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.model_selection import cross_val_score
    from sklearn.tree import DecisionTreeClassifier

    X, y = datasets.load_iris(return_X_y=True)
    sequential = cross_val_score(DecisionTreeClassifier(random_state=0), X, y, cv=4, n_jobs=1)
    scores = cross_val_score(DecisionTreeClassifier(random_state=0), X, y, cv=4, n_jobs=2)
    assert list(scores) == list(sequential)
    assert backend.statistics().tasks_completed >= 1, "the folds must have run on our workers"


def test_a_sigkilled_worker_fails_the_call_at_once_and_the_next_call_works(backend):
    started = time.monotonic()
    with pytest.raises(WorkerDiedError) as died:
        Parallel(batch_size=1)(delayed(kill_self_at)(i, 5) for i in range(400))
    elapsed = time.monotonic() - started
    # 400 items of 20 ms on 2 workers take 4 s; the error must come long before the rest ran
    assert elapsed < 2.0, f"the death reached the caller after {elapsed:.2f}s"
    assert died.value.signal_name == "SIGKILL"
    assert "kill_self_at: item 5 of its Parallel call" in died.value.task

    assert Parallel()(_work())[:3] == [(0, 0), (2, None), (6, None)]
    stats = backend.statistics()
    assert [death.exitcode for death in stats.deaths if death.reason is None] == [-9]
    with parallel_config(backend="mpire_fault", n_jobs=2) as config:
        try:
            assert Parallel()(delayed(abs)(-i) for i in range(5)) == [0, 1, 2, 3, 4]
        finally:
            config["backend"].shutdown()


def test_chaos_sigkill_is_journaled_and_retries_save_the_call():
    with parallel_config(backend="mpire_fault", n_jobs=2, chaos="task.start[task=3]=1*sigkill", chaos_seed=1,
                         max_task_retries=1) as config:
        backend = config["backend"]
        try:
            assert Parallel(batch_size=1)(delayed(abs)(-i) for i in range(8)) == list(range(8))
            stats = backend.statistics()
            assert [entry.action for entry in backend.chaos_journal()] == ["sigkill"]
        finally:
            backend.shutdown()
    assert len(stats.deaths) == 1 and stats.tasks_requeued == 1


def test_a_parallel_that_made_its_own_backend_stops_its_workers():
    before = children()
    # no parallel_config: Parallel makes the instance, and its workers end with the call
    assert Parallel(n_jobs=2, backend="mpire_fault")(delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]
    assert wait_for_no_children(before, 2.0) == []


def test_bad_options_are_refused_by_name():
    with pytest.raises(TypeError, match="no option 'chaoss'"):
        parallel_config(backend="mpire_fault", chaoss="task.start=sigkill")
    with pytest.raises(ValueError, match="start_method"):
        MpireFaultBackend(start_method="threading")
    with pytest.raises(ValueError, match="max_task_retries"):
        MpireFaultBackend(max_task_retries=-1)
    with pytest.raises(TypeError, match="parallel_config"), parallel_config(backend="mpire_fault", n_jobs=2):
        Parallel(max_task_retries=1)(delayed(abs)(i) for i in range(2))


def test_without_joblib_the_import_names_the_extra():
    code = ("import sys; sys.modules['joblib'] = None\n"
            "try:\n    import mpire_fault.joblib\n"
            "except ImportError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert 'pip install "mpire_fault[joblib]"' in done.stdout, done.stdout + done.stderr


def test_lambdas_are_refused_with_the_option_that_ships_them(backend):
    with pytest.raises(Exception) as refused:  # noqa: B017 - pickle's own error, whatever its type
        Parallel()(delayed(lambda x: x)(i) for i in range(4))
    assert "task-args" in refused.value.__notes__
    assert any("use_dill=True" in note for note in refused.value.__notes__)
    with parallel_config(backend="mpire_fault", n_jobs=2, use_dill=True) as config:
        try:
            assert Parallel()(delayed(lambda x: x + 1)(i) for i in range(4)) == [1, 2, 3, 4]
        finally:
            config["backend"].shutdown()


# Task functions of the tests below (module level: the workers find them by name): each next to its test.
def _interrupt_at(x: int, bad: int) -> int:
    if x == bad:
        raise KeyboardInterrupt(f"item {x}")
    return x


def test_a_keyboard_interrupt_raised_by_a_task_reaches_the_caller_and_kills_no_worker(backend):
    # joblib (and loky) hand a KeyboardInterrupt the function raised to the caller, as any error of a batch;
    # it used to end the worker, so the call failed with WorkerDiedError (exit code 1) instead.
    with pytest.raises(KeyboardInterrupt, match="item 3"):
        Parallel(batch_size=1)(delayed(_interrupt_at)(i, 3) for i in range(6))
    assert Parallel()(delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]
    assert not backend.statistics().deaths, "a KeyboardInterrupt raised by a task is the task's error, no death"


def _nested_warnings(_: int) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Parallel(n_jobs=2, backend="mpire_fault")(delayed(abs)(-i) for i in range(2))
    return [str(w.message) for w in caught]


def test_a_nested_call_in_a_worker_warns_in_joblibs_words(backend):
    # joblib's own process backends say "...-backed parallel loops cannot be nested"; filters written for
    # theirs (and joblib's own tests) look for those words.
    messages = Parallel()(delayed(_nested_warnings)(i) for i in range(2))
    for caught in messages:
        assert len(caught) == 1 and "backed parallel loops cannot be nested" in caught[0], caught


class _RefusesPickling:
    def __reduce__(self):
        raise RuntimeError("this object will not pickle")


def test_the_use_dill_hint_comes_only_where_dill_would_help(backend):
    with pytest.raises(RuntimeError, match="will not pickle") as refused:
        Parallel()(delayed(id)(_RefusesPickling()) for _ in range(2))
    assert "task-args" in refused.value.__notes__
    assert not any("use_dill" in note for note in refused.value.__notes__), refused.value.__notes__


_INITIALIZED: tuple | None = None  # set in a worker by _initialize; None in this process


def _initialize(value: str) -> None:
    global _INITIALIZED
    _INITIALIZED = (value, os.getpid())


def _initialized(_: int) -> tuple | None:
    time.sleep(0.01)
    return _INITIALIZED


def test_initializer_runs_in_each_worker_from_parallel_or_parallel_config():
    # joblib 1.6 hands initializer/initargs to loky's executor and multiprocessing's Pool, from Parallel(...)
    # or parallel_config(...); both used to be refused with TypeError here.
    results = Parallel(n_jobs=2, backend="mpire_fault", batch_size=1, initializer=_initialize,
                       initargs=("call",))(delayed(_initialized)(i) for i in range(8))
    assert {value for value, _ in results} == {"call"}
    with parallel_config(backend="mpire_fault", n_jobs=2, initializer=_initialize, initargs=("config",)) as config:
        try:
            first = Parallel(batch_size=1)(delayed(_initialized)(i) for i in range(8))
            assert {value for value, _ in first} == {"config"}
            pids = {pid for _, pid in first}
            again = Parallel(batch_size=1)(delayed(_initialized)(i) for i in range(8))
            assert {pid for _, pid in again} <= set(config["backend"].statistics().worker_pids.values()) | pids
            assert {value for value, _ in again} == {"config"}
            changed = Parallel(batch_size=1, initializer=_initialize, initargs=("changed",))(
                delayed(_initialized)(i) for i in range(8))
            assert {value for value, _ in changed} == {"changed"}, "new initargs: new workers that ran them"
            assert not {pid for _, pid in changed} & pids
        finally:
            config["backend"].shutdown()
    with pytest.raises(TypeError, match="initializer must be a callable"):
        Parallel(n_jobs=2, backend="mpire_fault", initializer=3)(delayed(abs)(i) for i in range(2))
