"""What a user reads when a test fails under chaos: their line, the error, the faults; none of our frames."""
from __future__ import annotations

import pytest

CONFTEST = """
import os, sys
sys.path.insert(0, os.path.dirname(__file__))
"""

TASKS = """
def square(x):
    return x * x
"""

# Each test's pool loses a worker to chaos; each call form the traceback can pass through.
SUITE = """
import pytest
from mpire_fault import WorkerPool
from tasks import square

@pytest.mark.mp_chaos("task.start[task=2]=sigkill")
def test_map_dies():
    with WorkerPool(n_jobs=2) as pool:
        assert pool.map(square, range(6), chunk_size=1) == [x * x for x in range(6)]

@pytest.mark.mp_chaos("task.start[task=2]=sigkill")
def test_imap_dies():
    with WorkerPool(n_jobs=2) as pool:
        assert list(pool.imap_unordered(square, range(6), chunk_size=1)) is not None

@pytest.mark.mp_chaos("task.start[task=0]=sigkill")
def test_apply_dies():
    with WorkerPool(n_jobs=1) as pool:
        assert pool.apply(square, (3,)) == 9
"""


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(tasks=TASKS, test_suite=SUITE, conftest=CONFTEST)
    return pytester


def failure_sections(text: str) -> dict[str, list[str]]:
    """Each failing test's section of the report, by test name."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("_") and line.endswith("_") and line.strip("_ "):  # ____ test_name ____
            current = line.strip("_ ")
            sections[current] = []
        elif line.startswith("="):  # the next part of the report: the summary
            current = None
        elif current is not None:
            sections[current].append(line)
    return sections


def test_a_failure_under_chaos_shows_the_users_line_and_the_error_not_our_frames(suite):
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist",
                                        timeout=120)
    result.assert_outcomes(failed=3)
    text = result.stdout.str()
    sections = failure_sections(text)
    assert set(sections) == {"test_map_dies", "test_imap_dies", "test_apply_dies"}, text
    for lines in sections.values():
        body = "\n".join(lines)
        assert "mpire_fault/" not in body and "run_map" not in body, body
        assert any(line.startswith("E ") and "WorkerDiedError" in line for line in lines), body
        assert "mp-chaos: faults injected in this test" in body and "=sigkill (task" in body, body
        assert len(lines) < 20, body  # was 90 lines for the map, most of them the map loop's source


def test_the_summary_names_the_marker_specs_that_ran_when_no_spec_was_given(suite):
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist",
                                        "--mp-chaos-seed=5", timeout=120)
    result.assert_outcomes(failed=3)
    summary = result.stdout.str().split("= mp-chaos =")[1]
    assert "spec: None" not in summary
    assert "@pytest.mark.mp_chaos('task.start[task=2]=sigkill'): 2 tests\n" in summary
    assert "@pytest.mark.mp_chaos('task.start[task=0]=sigkill'): 1 test\n" in summary
    assert "test_map_dies: 1 fault\n" in summary and "fault(s)" not in summary
    assert "--mp-chaos-seed=5" in summary and "--mp-chaos=" not in summary  # the markers bring the spec back


def test_a_report_without_any_chaos_says_so(pytester):
    pytester.makepyfile(test_plain="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist",
                                           "--mp-chaos-report=report.json", timeout=60)
    result.assert_outcomes(passed=1)
    assert "no chaos ran, so the report" in result.stdout.str()
    assert "--mp-chaos[=SPEC] or mark tests with @pytest.mark.mp_chaos(SPEC)" in result.stdout.str()
