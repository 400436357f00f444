"""``mpire-fault timeline EVENTS.jsonl [-o OUT.html]``: draw an event log as one self-contained HTML file.

Exit codes: 0 written, 2 bad input (a missing or unreadable file, a
malformed line, an output that cannot be written), always with one line on
stderr and no traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

EXIT_OK, EXIT_USAGE = 0, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``mpire-fault timeline``."""
    parser.add_argument("events", metavar="EVENTS.jsonl", help="an event log (JSON lines, see docs/events.md)")
    parser.add_argument("-o", "--output", metavar="OUT.html",
                        help="where to write the HTML (default: EVENTS with .html instead of its suffix)")
    parser.add_argument("--title", default=None, help="the page title (default: the log's file name)")


def _error(message: str) -> int:
    # printable: a file name or a line from the log may hold a lone surrogate, which stderr cannot encode
    from .html import printable

    print(printable(f"mpire-fault timeline: error: {message}"), file=sys.stderr)
    return EXIT_USAGE


def main(namespace: argparse.Namespace) -> int:
    """Read, check and draw the log; 0 when the page was written, 2 for bad input."""
    from ..events import EventLogError, iter_events
    from .html import Section, printable, timeline_html, write_page
    from .model import build
    from .records import plural

    source = namespace.events
    output = namespace.output or os.path.splitext(source)[0] + ".html"
    if os.path.isdir(source):
        return _error(f"{source} is a folder; expected an event log file")
    if os.path.abspath(output) == os.path.abspath(source):
        return _error(f"the output {output} would overwrite the log; give -o")
    count = 0

    def counted(events: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        nonlocal count
        for count, event in enumerate(events, 1):  # noqa: B007 - count is read after the loop
            yield event

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # one line at a time, in the log's own order: a 200 MB log never sits in memory
            timeline = build(counted(iter_events(source)), in_order=True)
        except FileNotFoundError:
            return _error(f"{source}: no such file")
        except EventLogError as exc:
            return _error(str(exc))
        except OSError as exc:
            return _error(f"{source}: cannot read it ({exc.strerror or exc})")
    for warning in caught:
        print(printable(f"mpire-fault timeline: warning: {warning.message}"), file=sys.stderr)
    title = namespace.title or f"Timeline of {os.path.basename(source)}"
    try:
        write_page(output, title, [Section("Timeline", timeline_html(timeline))])
    except OSError as exc:
        return _error(f"cannot write {output}: {exc.strerror or exc}")
    s = timeline.summary
    print(printable(f"{output}: {plural(count, 'event')}, {plural(s.tasks, 'task')}, {plural(s.faults, 'fault')}, "
                    f"{plural(s.deaths, 'death')}, {plural(s.restarts, 'restart')}, {plural(s.aborts, 'abort')} "
                    f"({os.path.getsize(output) / 1e6:.2f} MB)"))
    return EXIT_OK
