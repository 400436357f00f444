"""What the gate hands back: a terminal table, JUnit XML, JSON and an HTML page of timelines.

JUnit: a scenario whose expectation failed, or that timed out, is a
``<failure>``; a malformed scenario or a crashed scenario process is an
``<error>`` (the gate could not judge it). Either makes the gate fail. A
scenario that needs an optional extra this install lacks is ``<skipped>``,
with the ``pip install`` line; it does not fail the gate.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import socket
import xml.etree.ElementTree as ET
from typing import Any, TextIO

from .._core.wording import counted
from .runner import STATUSES, ScenarioResult, gate_passed

_LABELS = {"passed": "PASS", "skipped": "SKIP", "failed": "FAIL", "invalid": "INVALID", "timeout": "TIMEOUT",
           "crashed": "CRASH"}
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_OBSERVED_KEYS = ("mode", "n_tasks", "seconds", "stats", "peak_rss", "executions", "journal", "map", "follow_up")


def label(result: ScenarioResult) -> str:
    return _LABELS.get(result.status, result.status.upper())


def counts(results: list[ScenarioResult]) -> dict[str, int]:
    out = {status: 0 for status in STATUSES}
    for result in results:
        out[result.status] = out.get(result.status, 0) + 1
    out["total"] = len(results)
    return out


def progress_line(result: ScenarioResult, done: int, total: int) -> str:
    width = len(str(total))
    text = f"[{done:>{width}}/{total}] {label(result):<7} {result.name} ({result.seconds:.1f} s)"
    reason = result.reason()
    return f"{text}  {reason}" if reason else text


def write_table(results: list[ScenarioResult], out: TextIO, seconds: float) -> None:
    """The summary table, then the full story of every scenario that did not pass."""
    name_width = max([len("scenario")] + [len(r.name) for r in results])
    out.write(f"{'scenario':<{name_width}}  {'result':<7}  {'time':>7}  {'checks':>6}  why\n")
    out.write(f"{'-' * name_width}  {'-' * 7}  {'-' * 7}  {'-' * 6}  {'-' * 30}\n")
    for r in results:
        passed = sum(c.passed for c in r.checks)
        checks = f"{passed}/{len(r.checks)}" if r.checks else "-"
        reason = r.reason().splitlines()[0] if r.reason() else ""
        if len(reason) > 100:
            reason = reason[:97] + "..."
        out.write(f"{r.name:<{name_width}}  {label(r):<7}  {r.seconds:>6.1f}s  {checks:>6}  {reason}\n")
    for r in results:
        if r.status in ("passed", "skipped"):  # a skip's one line, the install line, is in the table
            continue
        out.write(f"\n{label(r)} {r.name} ({r.path})\n")
        for problem in r.problems:
            out.write(f"  {problem}\n")
        for check in r.failed_checks:
            out.write(f"  {check}\n")
        if r.detail and r.status in ("timeout", "crashed"):
            out.write("  " + r.detail.replace("\n", "\n  ")[-4000:] + "\n")
    out.write(f"\n{verdict_line(results, seconds)}\n")


def verdict_line(results: list[ScenarioResult], seconds: float) -> str:
    """``PASSED: 31 passed, 3 skipped of 34 scenarios in 52.0 s`` (FAILED when the gate fails)."""
    c = counts(results)
    parts = [f"{c[s]} {s}" for s in STATUSES if c[s]]
    verdict = "PASSED" if gate_passed(results) else "FAILED"
    return f"{verdict}: {', '.join(parts) or 'no scenarios'} of {counted(c['total'], 'scenario')} in {seconds:.1f} s"


def to_dict(results: list[ScenarioResult], seconds: float) -> dict[str, Any]:
    """The JSON report."""
    return {
        "tool": "mpire-fault run",
        "format": 1,
        "passed": gate_passed(results),
        "seconds": round(seconds, 3),
        "counts": counts(results),
        "scenarios": [
            {
                "name": r.name,
                "path": r.path,
                "description": r.description,
                "status": r.status,
                "seconds": round(r.seconds, 3),
                "reason": r.reason(),
                "checks": [{"name": c.name, "passed": c.passed, "expected": c.expected, "actual": c.actual}
                           for c in r.checks],
                "problems": [{"path": p.path, "key": p.key, "message": p.message} for p in r.problems],
                "detail": r.detail,
                "observed": {k: r.observed[k] for k in _OBSERVED_KEYS if k in r.observed} if r.observed else None,
            }
            for r in results
        ],
    }


def write_json(results: list[ScenarioResult], path: str, seconds: float) -> None:
    _make_parent(path)
    with open(path, "w") as handle:
        json.dump(to_dict(results, seconds), handle, indent=2)
        handle.write("\n")


def to_junit(results: list[ScenarioResult], seconds: float) -> ET.ElementTree:
    """JUnit XML: one testsuite, one testcase per scenario."""
    c = counts(results)
    failures = c["failed"] + c["timeout"]
    errors = c["invalid"] + c["crashed"]
    root = ET.Element("testsuites", name="mpire-fault scenarios", tests=str(len(results)),
                      failures=str(failures), errors=str(errors), time=f"{seconds:.3f}")
    suite = ET.SubElement(root, "testsuite", name="mpire-fault scenarios", tests=str(len(results)),
                          failures=str(failures), errors=str(errors), skipped=str(c["skipped"]),
                          time=f"{seconds:.3f}",
                          timestamp=datetime.datetime.now().isoformat(timespec="seconds"),
                          hostname=socket.gethostname())
    for r in results:
        folder = os.path.basename(os.path.dirname(os.path.abspath(r.path))) or "scenarios"
        case = ET.SubElement(suite, "testcase", classname=folder, name=r.name, file=r.path, time=f"{r.seconds:.3f}")
        body = "\n".join([str(p) for p in r.problems] + [str(ch) for ch in r.checks] + ([r.detail] if r.detail else []))
        kind = {"failed": ("failure", "ExpectationFailed"), "timeout": ("failure", "Timeout"),
                "invalid": ("error", "InvalidScenario"), "crashed": ("error", "ScenarioCrashed")}.get(r.status)
        if kind is not None:
            ET.SubElement(case, kind[0], message=_xml_text(r.reason()), type=kind[1]).text = _xml_text(body)
        elif r.status == "skipped":
            ET.SubElement(case, "skipped", message=_xml_text(r.reason()))
        if r.checks:
            ET.SubElement(case, "system-out").text = _xml_text("\n".join(map(str, r.checks)))
    ET.indent(root)
    return ET.ElementTree(root)


def _xml_text(text: str) -> str:
    # Stack dumps and task output may hold control characters XML 1.0 forbids.
    return _NOT_XML.sub("\ufffd", text)


def write_junit(results: list[ScenarioResult], path: str, seconds: float) -> None:
    _make_parent(path)
    to_junit(results, seconds).write(path, encoding="utf-8", xml_declaration=True)


def _make_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)


def write_html(results: list[ScenarioResult], path: str, seconds: float) -> None:
    """One section per scenario, those that failed first, each with the timeline of its pools' events."""
    from ..timeline import build
    from ..timeline.html import Section, esc, timeline_html, write_page

    sections = []
    for r in sorted(results, key=lambda r: (r.status in ("passed", "skipped"), r.passed, r.name)):
        meta = [f"{label(r)} in {r.seconds:.1f} s · {r.path}"]
        if r.description:
            meta.append(r.description)
        meta += [str(p) for p in r.problems] + [str(c) for c in r.failed_checks]
        meta += [f"could not read an event log: {problem}" for problem in r.event_problems]
        if r.events:
            body = timeline_html(build(r.events))
        else:
            body = '<p class="empty">No events were recorded for this scenario.</p>'
        if r.detail and r.status in ("timeout", "crashed", "skipped"):
            body += f'<pre class="log">{esc(r.detail[-4000:])}</pre>'
        status = "failed" if r.status not in ("passed", "skipped") else r.status
        sections.append(Section(r.name, body, status, tuple(meta)))
    intro = f'<p class="meta">{esc(verdict_line(results, seconds))}</p>'
    _make_parent(path)
    write_page(path, "mpire-fault run: scenario timelines", sections, intro)
