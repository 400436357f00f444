"""``mpire-fault timeline``: a page for a good log; one line and exit code 2 for bad input."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from mpire_fault.cli import main


def test_a_good_log_gives_a_page(fixtures, tmp_path, capsys):
    out = tmp_path / "out.html"
    assert main(["timeline", str(fixtures / "restarts.jsonl"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{out}: 28 events, 6 tasks, 1 fault, 2 deaths, 1 restart, 1 abort")
    page = out.read_text()
    assert "Timeline of restarts.jsonl" in page and page.count('class="lane"') == 2


def test_the_default_output_is_next_to_the_log(fixtures, tmp_path):
    log = tmp_path / "run.jsonl"
    shutil.copy(fixtures / "restarts.jsonl", log)
    assert main(["timeline", str(log), "--title", "My run"]) == 0
    assert "<title>My run</title>" in (tmp_path / "run.html").read_text()


def test_a_truncated_last_line_is_a_warning_not_an_error(fixtures, tmp_path, capsys):
    assert main(["timeline", str(fixtures / "truncated.jsonl"), "-o", str(tmp_path / "t.html")]) == 0
    assert "warning: " in capsys.readouterr().err and (tmp_path / "t.html").exists()


@pytest.mark.parametrize("name, words", [
    ("missing.jsonl", "missing.jsonl: no such file"),
    ("malformed.jsonl", "malformed.jsonl, line 2: not JSON"),
])
def test_bad_input_is_one_line_and_exit_2(fixtures, tmp_path, name, words):
    done = subprocess.run([sys.executable, "-m", "mpire_fault", "timeline", str(fixtures / name), "-o",
                           str(tmp_path / "x.html")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("mpire-fault timeline: error: ") and words in done.stderr
    assert not (tmp_path / "x.html").exists()


def test_a_folder_and_an_unwritable_output_are_errors(fixtures, tmp_path, capsys):
    assert main(["timeline", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["timeline", str(fixtures / "restarts.jsonl"), "-o", str(tmp_path / "no" / "such" / "x.html")]) == 2
    assert "cannot write" in capsys.readouterr().err
