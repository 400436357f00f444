"""Timelines of pool runs: event logs (``mpire_fault.events``) drawn as one self-contained HTML file.

``model.build`` turns events into lanes, bars and markers; ``html`` draws
them. ``write_timeline`` is the whole path for one log; ``read_folder``
gathers the per-pool logs a chaos run leaves in ``MP_CHAOS_EVENTS_DIR``.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from typing import Any

from ..events import EventLogError, read_events
from .html import Section, timeline_html, write_page
from .model import Timeline, build

_PHASES = (" (setup)", " (call)", " (teardown)")
__all__ = ["Timeline", "build", "write_timeline", "read_folder", "group_by_test", "Section", "timeline_html",
           "write_page"]


def write_timeline(events: Iterable[dict[str, Any]], path: str, title: str = "mpire_fault timeline", *,
                   in_order: bool = False) -> Timeline:
    """Draw ``events`` into the HTML file ``path`` (see ``build`` for ``in_order``); the timeline drawn is returned."""
    timeline = build(events, in_order=in_order)
    write_page(path, title, [Section("Timeline", timeline_html(timeline))])
    return timeline


def read_folder(folder: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every event of every ``*.jsonl`` file in ``folder``, and one line per file that could not be read.

    A report must not fail because one pool left a broken log: that file is
    named in the problems and the rest is drawn.
    """
    events: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return events, problems
    for name in names:
        if not name.endswith(".jsonl"):
            continue
        path = os.path.join(folder, name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                events.extend(read_events(path))
            except (OSError, EventLogError) as exc:
                problems.append(f"{name}: {exc}")
        problems += [f"{name}: {w.message}" for w in caught]
    return events, problems


def group_by_test(events: list[dict[str, Any]]) -> dict[str | None, list[dict[str, Any]]]:
    """Events per pytest node id (the ``test`` field; None for events outside any test)."""
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for event in events:
        test = event.get("test")
        if isinstance(test, str):
            for phase in _PHASES:  # a raw PYTEST_CURRENT_TEST value: the node id and its phase
                test = test.removesuffix(phase)
        groups.setdefault(test, []).append(event)
    return groups
