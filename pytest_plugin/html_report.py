"""``--mp-chaos-report=PATH.html``: one page, a section per test that saw a fault, failing tests first.

The faults come from the journals (every fault, today); the timelines from
the pools' event logs in ``MP_CHAOS_EVENTS_DIR`` (``<pid>-<pool>.jsonl``,
each event naming its test), grouped by test. A test with faults but no
events gets its fault table and a note that no pool events were recorded.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

_FAILED = ("failed", "error")


def write_html_report(path: str, *, spec: str | None, seed: int, reproduce: str | None,
                      journal: list[dict[str, Any]], outcomes: dict[str, str], events_dir: str | None,
                      extras: dict[str, dict[str, Any]] | None = None) -> None:
    """Write the page; ``journal`` entries carry their test's ``nodeid``.

    ``extras`` (``foreign.test_extras``): per test, what foreign pools did;
    their faults become timeline markers too, one lane per worker pid (a
    foreign pool writes no events of its own).
    """
    from mpire_fault.timeline import build, group_by_test, read_folder
    from mpire_fault.timeline.html import Section, esc, timeline_html, write_page

    extras = extras or {}
    events, problems = read_folder(events_dir) if events_dir else ([], [])
    by_test = group_by_test(events)
    for nodeid, marks in _foreign_events(journal).items():
        by_test.setdefault(nodeid, []).extend(marks)
    faults: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in journal:
        faults[entry["nodeid"]].append(entry)
    event_faults = {test for test, group in by_test.items()
                    if test is not None and any(e["kind"] == "fault_injected" for e in group)}
    tests = sorted(set(faults) | event_faults,
                   key=lambda nodeid: (outcomes.get(nodeid, "?") not in _FAILED, nodeid))
    sections = []
    for nodeid in tests:
        outcome = outcomes.get(nodeid, "?")
        group = by_test.get(nodeid, [])
        body = _fault_table(faults.get(nodeid, []), esc)
        if group:
            body += timeline_html(build(group))
        else:
            body += ('<p class="empty">No pool events were recorded for this test (pools write them into '
                     'MP_CHAOS_EVENTS_DIR once they emit events).</p>')
        meta: tuple[str, ...] = (f"outcome: {outcome.upper()} · faults in the journal: "
                                 f"{len(faults.get(nodeid, []))} · pool events: {len(group)}",)
        foreign = extras.get(nodeid)
        if foreign:
            struck = ", ".join(f"{kind} x{count}" for kind, count in foreign.get("pools", {}).items())
            meta += (f"pools struck: {struck or 'none'} · caller saw: {foreign.get('caller_saw')}",)
            if foreign.get("hang_verdict"):
                meta += (str(foreign["hang_verdict"]),)
        sections.append(Section(nodeid, body, "failed" if outcome in _FAILED else outcome, meta))
    if not sections:
        note = "No test saw a fault." + ("" if events else " No events were recorded.")
        sections.append(Section("Nothing to show", f'<p class="empty">{esc(note)}</p>', "empty"))
    failed = sum(1 for outcome in outcomes.values() if outcome in _FAILED)
    lines = [f"spec: {spec}   seed: {seed}", f"tests: {len(outcomes)} run, {failed} failed, {len(tests)} saw a fault; "
             f"faults injected: {len(journal)}; pool events: {len(events)}"]
    if reproduce:
        lines.append(f"reproduce: {reproduce}")
    lines += [f"could not read an event log: {problem}" for problem in problems]
    intro = "".join(f'<p class="meta">{esc(line)}</p>' for line in lines)
    write_page(path, "mp-chaos report", sections, intro)


def _foreign_events(journal: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Timeline events for faults in foreign pools, per test: a fault marker on a lane per worker pid."""
    from mpire_fault.chaos.patching import LABELS

    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in journal:
        if entry.get("pool"):
            found[entry["nodeid"]].append({
                "t": entry["time"], "kind": "fault_injected", "pool": LABELS.get(entry["pool"], entry["pool"]),
                "worker_id": f"pid {entry['pid']}", "pid": entry["pid"], "site": entry["site"],
                "action": entry["action"], "term": f"{entry['site']}={entry['action']}",
                "task_id": entry["task_index"], "test": entry["nodeid"]})
    return found


def _fault_table(entries: list[dict[str, Any]], esc: Any) -> str:
    if not entries:
        return ""
    rows = "".join(f"<tr><td>{esc(e['site'])}={esc(e['action'])}</td><td>{esc(e['task_index'])}</td>"
                   f"<td>{esc(e['worker_id'])}</td><td>{esc(e['pid'])}</td><td>{esc(e.get('pool') or 'mpire_fault')}"
                   f"</td><td>{esc(e['rule'])}</td></tr>"
                   for e in entries[:200])
    more = f'<p class="meta">… and {len(entries) - 200} more</p>' if len(entries) > 200 else ""
    return ('<table class="faults"><tr><th>fault</th><th>task</th><th>worker</th><th>pid</th><th>pool</th>'
            '<th>rule</th></tr>'
            f"{rows}</table>{more}")
