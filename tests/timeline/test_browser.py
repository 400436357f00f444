"""The page in a real browser: Debian's chromium, headless, from the command line (no Playwright needed).

``--dump-dom`` gives the DOM after the load event: the page's own script then
has marked ``<body>`` with what it found drawn (lanes, bars, markers, aborts,
legend), with any script error it caught, and with ``performance.now()`` at
load. ``--enable-logging=stderr`` prints every console message as a
``CONSOLE`` line; the page writes none, so any such line is a failure.
Without chromium the tests skip, except under ``CI=true`` where they fail.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mpire_fault.timeline import write_timeline

from .synthetic import chaos_run

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
BROWSER_TIMEOUT = 90
LOAD_BOUND = 10.0  # seconds; the goal is < 2 s, the bound leaves room for a loaded two-core CI box


@pytest.fixture
def chromium():
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed, and CI=true: the browser tests must run in CI "
                        "(.ci/run installs it with apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


def browse(chromium: str, tmp_path: Path, page: Path, *extra: str) -> tuple[str, str, float]:
    """stdout, stderr and wall seconds of one headless chromium run; its whole process group goes afterwards."""
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    command = [chromium, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra,
               page.as_uri()]
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=BROWSER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        pytest.fail(f"chromium did not finish within {BROWSER_TIMEOUT} s")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # helpers (zygote, gpu) must not outlive the test
        except ProcessLookupError:
            pass
    return out, err, time.monotonic() - started


def body_marks(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, f"no <body> in the dumped DOM: {dom[:500]!r}"
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', body.group(1)))


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_a_chaos_run_renders_with_no_console_errors_and_a_screenshot(chromium, tmp_path):
    page = tmp_path / "run.html"
    write_timeline(chaos_run(n_tasks=160, n_workers=4, fault_rate=0.12, seed=3, abort_at_task=90, then=60),
                   str(page), "A synthetic chaos run")
    dom, err, _ = browse(chromium, tmp_path, page, "--dump-dom")
    marks = body_marks(dom)
    assert marks.get("rendered") == "1", marks
    assert "errors" not in marks, marks["errors"]
    assert not console_lines(err), console_lines(err)
    assert marks["lanes"] == "4" and marks["aborts"] == "1" and marks["legends"] == "1"
    assert int(marks["bars"]) > 50 and int(marks["markers"]) > 10
    shot = tmp_path / "x.png"
    browse(chromium, tmp_path, page, f"--screenshot={shot}", "--window-size=1400,900")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000  # a blank page compresses to far less


def test_the_checks_catch_a_script_error(chromium, tmp_path):
    """The page's error hook and the console scan both see a broken script: the test above can fail."""
    page = tmp_path / "run.html"
    write_timeline(chaos_run(n_tasks=20, seed=1), str(page))
    page.write_text(page.read_text().replace("</body>", "<script>notAFunction()</script></body>"))
    dom, err, _ = browse(chromium, tmp_path, page, "--dump-dom")
    assert "notAFunction" in body_marks(dom).get("errors", "")
    assert any("notAFunction" in line for line in console_lines(err))


def test_a_10000_task_report_is_small_and_loads_fast(chromium, tmp_path, record_property):
    page = tmp_path / "big.html"
    write_timeline(chaos_run(n_tasks=10_000, n_workers=4, fault_rate=0.1, seed=1), str(page))
    size = page.stat().st_size
    assert size < 5_000_000
    dom, err, wall = browse(chromium, tmp_path, page, "--dump-dom")
    marks = body_marks(dom)
    assert marks.get("rendered") == "1" and "errors" not in marks and not console_lines(err)
    load = int(marks["load-ms"]) / 1000
    record_property("report_bytes", size)
    record_property("load_seconds", load)
    record_property("chromium_wall_seconds", round(wall, 2))
    print(f"10 000-task report: {size / 1e6:.2f} MB, loaded in {load:.3f} s in the page "
          f"({wall:.2f} s for the whole headless chromium run)")
    assert load < LOAD_BOUND, f"the page took {load:.1f} s to load (goal < 2 s)"
