"""The pytest plugin, exercised on small user suites with pytester (in subprocesses, bounded)."""
from __future__ import annotations

import json

import pytest

TASKS = """
def square(x):
    return x * x
"""

SUITE = """
from mpire_fault import WorkerPool, WorkerDiedError
from tasks import square

def test_robust():
    with WorkerPool(2, max_task_retries=10) as pool:
        results = [pool.apply_async(square, (x,)) for x in range(20)]
        assert [r.get(timeout=60) for r in results] == [x * x for x in range(20)]

def test_fragile():
    with WorkerPool(2) as pool:
        assert pool.map(square, range(30), chunk_size=1) == [x * x for x in range(30)]
"""

CONFTEST = """
import os, sys
sys.path.insert(0, os.path.dirname(__file__))
"""


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(tasks=TASKS, test_suite=SUITE, conftest=CONFTEST)
    return pytester


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=120)


def test_no_option_means_no_chaos(suite):
    result = run(suite)
    result.assert_outcomes(passed=2)
    assert "mp-chaos" not in result.stdout.str()


def test_chaos_header_summary_and_reproduce_line(suite):
    result = run(suite, "--mp-chaos=task.start=20%sigkill", "--mp-chaos-seed=7")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "mp-chaos: spec='task.start=20%sigkill' seed=7" in out
    assert "task.start=sigkill" in out
    assert "FAILED   test_suite.py::test_fragile" in out
    assert "reproduce: pytest " in out
    assert "-p no:cacheprovider -p no:randomly --mp-chaos=task.start=20%sigkill --mp-chaos-seed=7" in out
    assert "faults injected in this test" in out  # the failing test's report names the fault


def test_same_seed_same_journal(suite, tmp_path):
    reports = []
    for n in range(2):
        path = tmp_path / f"r{n}.json"
        run(suite, "--mp-chaos=task.start=20%sigkill", "--mp-chaos-seed=7", f"--mp-chaos-report={path}")
        data = json.loads(path.read_text())
        # apply tasks retried to success: which (task, attempt) pairs are hit depends on the seed alone
        # (a map that aborts stops at a point that depends on timing, so it is left out)
        reports.append(sorted((e["site"], e["action"], e["task_index"], e["attempt"])
                              for e in data["journal"] if e["nodeid"].endswith("test_robust")))
    assert reports[0] == reports[1] and reports[0]


def test_json_report(suite, tmp_path):
    path = tmp_path / "report.json"
    run(suite, "--mp-chaos=task.start[task=2,attempt=0]=sigkill", "--mp-chaos-seed=3", f"--mp-chaos-report={path}")
    data = json.loads(path.read_text())
    assert data["seed"] == 3 and data["spec"] == "task.start[task=2,attempt=0]=sigkill"
    outcomes = {t["nodeid"]: t["outcome"] for t in data["tests"]}
    assert outcomes == {"test_suite.py::test_robust": "passed", "test_suite.py::test_fragile": "failed"}
    assert {e["nodeid"] for e in data["journal"]} == set(outcomes)
    assert "--mp-chaos-seed=3" in data["reproduce"]


def test_default_mix_without_a_value(suite):
    result = run(suite, "--mp-chaos", "--mp-chaos-seed=1", "test_suite.py")
    out = result.stdout.str()
    assert "task.start=5%sigkill;task.start=5%exit(1)" in out


def test_a_path_swallowed_by_the_option_is_a_usage_error(suite):
    result = run(suite, "--mp-chaos", "test_suite.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "looks like a test path" in result.stderr.str()


@pytest.mark.parametrize("args, words", [
    (["--mp-chaos=task.start=explode"], "unknown action 'explode'"),
    (["--mp-chaos=idle=off", "--mp-chaos-seed=-4"], "--mp-chaos-seed must be a non-negative integer"),
    (["--mp-chaos=idle=off", "--mp-chaos-seed=abc"], "--mp-chaos-seed must be a non-negative integer"),
])
def test_bad_values_fail_at_startup(suite, args, words):
    result = run(suite, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert words in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_marker_and_fixture(pytester):
    pytester.makepyfile(tasks=TASKS, conftest=CONFTEST, test_marked="""
import pytest
from mpire_fault import WorkerPool, WorkerDiedError
from tasks import square

@pytest.mark.mp_chaos("task.start[task=1]=sigkill")
def test_marked(mp_chaos):
    with WorkerPool(2) as pool:
        results = [pool.apply_async(square, (x,)) for x in range(3)]
        with pytest.raises(WorkerDiedError):
            results[1].get(timeout=60)
        assert results[2].get(timeout=60) == 4
    assert [(e.site, e.action, e.task_index) for e in mp_chaos] == [("task.start", "sigkill", 1)]
    assert mp_chaos.by_site() == {"task.start": 1}

def test_unmarked_has_no_chaos(mp_chaos):
    with WorkerPool(2) as pool:
        assert pool.map(square, range(5)) == [0, 1, 4, 9, 16]
    assert len(mp_chaos) == 0

def test_chaos_pool_fixture(chaos_pool, mp_chaos):
    assert chaos_pool.map(square, range(3)) == [0, 1, 4]
""")
    result = run(pytester)
    result.assert_outcomes(passed=3)


def test_markers_are_documented(pytester):
    result = run(pytester, "--markers")
    assert "mp_chaos(spec)" in result.stdout.str()


def test_help_lists_the_options(pytester):
    # argparse %-formats help texts: the default mix's "5%sigkill" once broke `pytest --help` whole
    result = run(pytester, "--help")
    assert result.ret == 0, result.stderr.str()
    out = result.stdout.str()
    assert "--mp-chaos=[SPEC]" in out and "--mp-chaos-seed" in out and "--mp-chaos-report" in out
    assert "5%sigkill" in out


def test_ini_settings(suite, tmp_path):
    suite.makeini(f"""
[pytest]
mp_chaos = task.start[task=0]=raise(ValueError)
mp_chaos_seed = 5
mp_chaos_report = {tmp_path / 'ini.json'}
""")
    result = run(suite)
    result.assert_outcomes(passed=0, failed=2)
    assert "seed=5" in result.stdout.str()
    assert json.loads((tmp_path / "ini.json").read_text())["seed"] == 5


def test_subprocesses_started_by_a_test_get_the_chaos(pytester):
    pytester.makepyfile(test_sub="""
import json, subprocess, sys, textwrap

PROGRAM = textwrap.dedent('''
    from mpire_fault import WorkerPool, WorkerDiedError
    def square(x):
        return x * x
    if __name__ == "__main__":
        with WorkerPool(2) as pool:
            r = pool.apply_async(square, (0,))
            try:
                r.get(timeout=60)
                print("survived")
            except WorkerDiedError:
                print("died")
''')

def test_child_program(tmp_path, mp_chaos):
    script = tmp_path / "child.py"
    script.write_text(PROGRAM)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "died"
    assert [e.site for e in mp_chaos] == ["task.start"]
""")
    result = run(pytester, "--mp-chaos=task.start[task=0]=sigkill", "--mp-chaos-seed=2")
    result.assert_outcomes(passed=1)


def test_xdist_gives_one_seed_and_one_merged_report(suite, tmp_path):
    pytest.importorskip("xdist")
    path = tmp_path / "x.json"
    result = run(suite, "-n", "2", "--mp-chaos=task.start=20%sigkill", "--mp-chaos-seed=7", f"--mp-chaos-report={path}")
    result.assert_outcomes(passed=1, failed=1)
    data = json.loads(path.read_text())
    assert data["seed"] == 7 and len(data["tests"]) == 2
    serial = tmp_path / "s.json"
    run(suite, "--mp-chaos=task.start=20%sigkill", "--mp-chaos-seed=7", f"--mp-chaos-report={serial}")
    def key(report):
        return sorted((e["task_index"], e["attempt"]) for e in report["journal"] if e["nodeid"].endswith("test_robust"))

    assert key(data) == key(json.loads(serial.read_text()))
