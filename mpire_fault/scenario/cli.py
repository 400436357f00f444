"""``mpire-fault run PATH... [--junit PATH] [--json PATH] [--html PATH]``: the resilience gate.

Runs every scenario (files, or folders searched for ``*.toml``) in a process
of its own with a hard timeout, shows progress, prints a table, writes the
reports, and exits 0 only when every scenario passed (or was skipped: its
backend needs an optional extra this install lacks, and at least one other
passed), 2 for bad input (the command line, or a scenario file that is
malformed: INVALID), 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from .._core.cli_types import positive_count
from .._core.wording import counted
from .loader import discover
from .report import progress_line, write_html, write_json, write_junit, write_table
from .runner import gate_passed, run_scenarios

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``mpire-fault run``."""
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="scenario files (.toml) or folders holding them (searched recursively)")
    parser.add_argument("--junit", metavar="PATH", help="write a JUnit XML report to PATH")
    parser.add_argument("--json", metavar="PATH", help="write a JSON report to PATH")
    parser.add_argument("--html", metavar="PATH",
                        help="write an HTML page to PATH: a timeline of the pools' events per scenario")
    parser.add_argument("-j", "--jobs", type=positive_count, default=min(2, os.cpu_count() or 1), metavar="N",
                        help="scenarios run at the same time (default: %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines, only the table")


def _usage_error(message: str) -> int:
    print(f"mpire-fault run: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _writable(path: str) -> str | None:
    """Why a report could not be written to ``path``, or None."""
    if os.path.isdir(path):
        return f"{path} is a folder; expected a file name"
    parent = os.path.dirname(os.path.abspath(path))
    existing = parent
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        return f"cannot write {path}: {existing} is not a writable folder"
    return None


def main(namespace: argparse.Namespace) -> int:
    """Run the gate; 0 when every scenario passed (or was skipped), 2 for bad input (any INVALID), 1 otherwise."""
    try:
        paths = discover(namespace.paths)
    except FileNotFoundError as exc:
        return _usage_error(str(exc))
    if not paths:
        return _usage_error(f"no scenario files (*.toml) in {', '.join(namespace.paths)}")
    for option in ("junit", "json", "html"):
        target = getattr(namespace, option, None)
        problem = target and _writable(target)
        if problem:
            return _usage_error(f"--{option}: {problem}")
    jobs = getattr(namespace, "jobs", 2)
    quiet = getattr(namespace, "quiet", False)
    if not quiet:
        print(f"mpire-fault run: {counted(len(paths), 'scenario')}, {min(jobs, len(paths))} at a time", file=sys.stderr,
              flush=True)

    def on_result(result, done: int, total: int) -> None:
        if not quiet:
            print(progress_line(result, done, total), file=sys.stderr, flush=True)

    started = time.monotonic()
    html_path = getattr(namespace, "html", None)
    results = run_scenarios(paths, jobs, on_result, events=bool(html_path))
    seconds = time.monotonic() - started
    write_table(results, sys.stdout, seconds)
    if namespace.junit:
        write_junit(results, namespace.junit, seconds)
    if namespace.json:
        write_json(results, namespace.json, seconds)
    if html_path:
        write_html(results, html_path, seconds)
    sys.stdout.flush()
    if any(r.status == "invalid" for r in results):
        return EXIT_USAGE  # the input is wrong: the other scenarios ran, but the gate did not run what was asked
    return EXIT_PASSED if gate_passed(results) else EXIT_FAILED
