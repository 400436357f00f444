"""``pytest --mp-chaos`` strikes pools that never heard of mpire_fault (pytester suites, in bounded subprocesses).

The user suites below use multiprocessing.Pool, ProcessPoolExecutor,
joblib (loky) and mpire.WorkerPool and never mention mpire_fault.
"""
from __future__ import annotations

import json
import re
import time

import pytest

TASKS = """
def square(x):
    return x * x
"""

# Leftover workers would be reparented away from the outer test's no-orphans check: the inner suite checks itself.
CONFTEST = """
import os, sys, time
import psutil
import pytest
sys.path.insert(0, os.path.dirname(__file__))

def _workers():
    return {p.pid for p in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline() or []) and p.status() != psutil.STATUS_ZOMBIE}

@pytest.fixture(autouse=True)
def no_workers_left():
    yield
    deadline = time.monotonic() + 10
    while _workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _workers(), "workers left behind"
"""

POOLS = """
import concurrent.futures.process
import multiprocessing
import pytest
from tasks import square

def test_multiprocessing():
    with multiprocessing.Pool(2) as pool:
        pool.map(square, range(6))

def test_executor():
    with concurrent.futures.ProcessPoolExecutor(2) as executor:
        with pytest.raises(concurrent.futures.process.BrokenProcessPool):
            [f.result(timeout=60) for f in [executor.submit(square, x) for x in range(6)]]

def test_joblib():
    from joblib import Parallel, delayed
    from joblib.externals.loky.process_executor import TerminatedWorkerError
    with pytest.raises(TerminatedWorkerError):
        Parallel(n_jobs=2)(delayed(square)(x) for x in range(6))

def test_mpire():
    import mpire
    with mpire.WorkerPool(2) as pool:
        # MPIRE 2.10.2: every unfinished task fails with this RuntimeError
        with pytest.raises(RuntimeError, match="died unexpectedly"):
            pool.map(square, range(6))

def test_unharmed_without_a_fault():
    with multiprocessing.Pool(2) as pool:
        assert pool.map(square, range(2)) == [0, 1]
"""


def run(pytester, *args, timeout=120):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=timeout)


@pytest.fixture
def suite(pytester):
    pytest.importorskip("loky")
    pytest.importorskip("joblib")
    pytest.importorskip("mpire")
    pytester.makepyfile(tasks=TASKS, conftest=CONFTEST, test_pools=POOLS)
    return pytester


def test_every_kind_of_pool_is_struck(suite, tmp_path):
    report = tmp_path / "r.json"
    started = time.monotonic()
    # pytest-timeout armed at 60 s: the hang verdict (3 s after the fault) must come first
    result = run(suite, "-p", "timeout", "--timeout=60", "--mp-chaos=task.start[task=2]=sigkill",
                 "--mp-chaos-seed=1", "--mp-chaos-hang-after=3", f"--mp-chaos-report={report}")
    assert time.monotonic() - started < 60
    out = result.stdout.str()
    result.assert_outcomes(passed=4, failed=1)
    assert "mp-chaos hang verdict: multiprocessing.Pool: worker pid" in out
    assert "was SIGKILLed by chaos during task 2 (task.start)" in out
    assert "stacks of the waiting threads:" in out and "--- MainThread" in out
    assert "reproduce: pytest " in out and "Timeout" not in out
    data = json.loads(report.read_text())
    struck = {(e["nodeid"].split("::")[1], e["pool"], e["task_index"]) for e in data["journal"]}
    assert struck == {("test_multiprocessing", "multiprocessing", 2), ("test_executor", "concurrent.futures", 2),
                      ("test_joblib", "loky", 2), ("test_mpire", "mpire", 2)}
    tests = {t["nodeid"].split("::")[1]: t for t in data["tests"]}
    assert tests["test_multiprocessing"]["caller_saw"] == "hang verdict"
    assert tests["test_multiprocessing"]["hang_verdict"].startswith("mp-chaos hang verdict: multiprocessing.Pool")
    assert tests["test_executor"]["caller_saw"] == "concurrent.futures: BrokenProcessPool"
    assert tests["test_joblib"]["caller_saw"] == "loky: TerminatedWorkerError"
    assert tests["test_mpire"]["caller_saw"] == "mpire: RuntimeError"
    assert "caller_saw" not in tests["test_unharmed_without_a_fault"]
    assert "mp-chaos: foreign pools" in out


def test_pools_option_limits_the_kinds(suite):
    result = run(suite, "--mp-chaos=task.start[task=2]=sigkill", "--mp-chaos-pools=concurrent.futures",
                 "--mp-chaos-hang-after=3", "test_pools.py::test_executor", "test_pools.py::test_multiprocessing")
    result.assert_outcomes(passed=2)  # multiprocessing is not struck: its map returns


@pytest.mark.parametrize("args, words", [
    (["--mp-chaos-pools=multiprocessing,bogus"], "--mp-chaos-pools: unknown pool kind 'bogus'"),
    (["--mp-chaos-hang-after=soon"], "--mp-chaos-hang-after must be a number of seconds >= 0, got 'soon'"),
])
def test_bad_values_are_usage_errors(pytester, args, words):
    result = run(pytester, "--mp-chaos=idle=off", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert words in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_classes_are_untouched_without_chaos_and_after_it(pytester):
    pytester.makepyfile(tasks=TASKS, conftest=CONFTEST, test_identity="""
import concurrent.futures.process, multiprocessing.pool
import mpire.pool
import joblib.externals.loky.process_executor as loky_executor
import pytest
from tasks import square

CLASSES = [multiprocessing.pool.Pool, concurrent.futures.process.ProcessPoolExecutor,
           loky_executor.ProcessPoolExecutor, mpire.pool.WorkerPool]
BEFORE = {(cls, name): value for cls in CLASSES for name, value in vars(cls).items()}

def test_plain():
    assert {(cls, name): value for cls in CLASSES for name, value in vars(cls).items()} == BEFORE

@pytest.mark.mp_chaos("task.start[task=99]=sigkill")
def test_struck():
    assert multiprocessing.pool.Pool.apply_async is not BEFORE[(multiprocessing.pool.Pool, "apply_async")]
    with concurrent.futures.process.ProcessPoolExecutor(1) as executor:
        assert executor.submit(square, 3).result(timeout=60) == 9

def test_after():
    assert {(cls, name): value for cls in CLASSES for name, value in vars(cls).items()} == BEFORE
""")
    pytest.importorskip("mpire")
    pytest.importorskip("joblib")
    run(pytester, "-p", "no:randomly").assert_outcomes(passed=3)


def test_a_script_run_by_the_test_is_struck_too(pytester):
    pytester.makepyfile(conftest=CONFTEST, test_script="""
import subprocess, sys, textwrap

SCRIPT = textwrap.dedent('''
    import multiprocessing
    def square(x):
        return x * x
    if __name__ == "__main__":
        with multiprocessing.Pool(2) as pool:
            try:
                print(pool.apply_async(square, (3,)).get(timeout=60))
            except KeyError as exc:
                print("KeyError", exc)
''')

def test_script(tmp_path, mp_chaos):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("KeyError"), out.stdout + out.stderr
    assert [(e.site, e.pool, e.pid != 0) for e in mp_chaos] == [("task.start", "multiprocessing", True)]
""")
    run(pytester, "--mp-chaos=task.start[task=0]=raise(KeyError)").assert_outcomes(passed=1)


def test_pytest_timeout_still_fires_when_no_fault_happened(pytester):
    pytester.makepyfile(test_slow="""
import time

def test_slow():
    time.sleep(30)
""")
    result = run(pytester, "-p", "timeout", "--timeout=2", "--mp-chaos=task.start=sigkill", "--mp-chaos-hang-after=1")
    result.assert_outcomes(failed=1)
    assert "Timeout" in result.stdout.str() and "hang verdict" not in result.stdout.str()


def test_html_report_shows_foreign_faults_on_lanes_by_pid(suite, tmp_path):
    report = tmp_path / "r.html"
    run(suite, "--mp-chaos=task.start[task=2]=sigkill", f"--mp-chaos-report={report}",
        "test_pools.py::test_executor").assert_outcomes(passed=1)
    page = report.read_text()
    assert "pools struck: concurrent.futures x1 · caller saw: concurrent.futures: BrokenProcessPool" in page
    assert re.search(r"worker pid \d+", page), "a lane per worker pid"
    assert "<th>pool</th>" in page
