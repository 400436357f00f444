"""A timeline as one self-contained HTML file: inline SVG, inline CSS, a few lines of inline script.

The size is bounded by the drawing, not by the log: a bar narrower than
``MIN_BAR_PX`` joins the bar bucket of its pixel column on its lane, and
neighbouring buckets of the same colour merge into one rectangle that says
how many tasks it holds (its colour: the most severe outcome inside).
Markers of one kind in one pixel column of a lane are one marker with a
count. So a lane holds at most a few elements per pixel column, whatever
the number of tasks. Hover shows an element's details; click pins them
under the timeline.
"""
from __future__ import annotations

import contextlib
import html
import math
import os
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .buckets import Bucket, Group
from .records import OUTCOMES, Abort, Bar, Marker, Timeline, plural

PLOT_WIDTH = 1100
"""Pixels of the time axis."""
MIN_BAR_PX = 1.0
"""Bars narrower than this are drawn as per-pixel buckets with counts."""
DENSE_MARKER_PX = 16
"""A lane with more markers of one kind than one per this many pixels draws them as thin ticks."""
LABEL_WIDTH = 150
LANE_HEIGHT = 28
BAR_TOP, BAR_HEIGHT = 7, 14
AXIS_HEIGHT = 30

COLOURS = {
    "finished": "#43a047", "exception": "#f9a825", "died": "#d32f2f", "timeout": "#8e24aa",
    "aborted": "#546e7a", "requeued": "#1e88e5", "open": "#bdbdbd",
}
OUTCOME_LABELS = {
    "finished": "finished", "exception": "failed: exception", "died": "died (worker died under it)",
    "timeout": "timed out", "aborted": "aborted", "requeued": "requeued (ran again elsewhere)",
    "open": "still running at the end of the log",
}
MARKER_LABELS = {
    "fault": "fault injected (chaos term)", "death": "worker died", "restart": "worker restarted",
    "exit": "worker exited", "backoff": "restart backoff", "abort": "map aborted (all lanes)",
}

_CSS = """
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:0 0 6px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px;margin:0 0 16px}
section.failed{border-left:5px solid #d32f2f}section.passed{border-left:5px solid #43a047}
.meta{color:#555;margin:2px 0}.summary{margin:6px 0;font-weight:500}.empty{color:#777;font-style:italic}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:6px 0;color:#444}
.legend span{display:inline-flex;align-items:center;gap:4px}
.sw{display:inline-block;width:14px;height:10px;border-radius:2px}
svg.tl{display:block;background:#fff;user-select:none}svg text{font-size:11px;fill:#333}
.lanebg{fill:#f4f6f8}.lane:nth-of-type(even) .lanebg{fill:#eceff1}.grid{stroke:#e0e0e0}
.bar,.agg,.marker{cursor:pointer}.bar:hover,.agg:hover,.marker:hover{stroke:#000;stroke-width:1}
.abort line{stroke:#b71c1c;stroke-width:2;stroke-dasharray:5 3}.abort text{fill:#b71c1c;font-weight:600}
.pinned{white-space:pre-wrap;font:12px monospace;background:#f5f5f5;padding:6px;min-height:1.4em;margin-top:6px}
#tip{position:absolute;display:none;pointer-events:none;background:#263238;color:#fff;padding:5px 7px;
border-radius:4px;font:12px monospace;white-space:pre;max-width:600px;z-index:9}
table.faults{border-collapse:collapse;margin:6px 0}table.faults td,table.faults th{padding:1px 8px;text-align:left}
pre.log{white-space:pre-wrap;background:#f5f5f5;padding:6px;max-height:240px;overflow:auto}
"""

# Hover shows data-d of the element under the mouse (or of its parent group); click pins it in the
# section's .pinned box. On load it marks <body> with what was drawn, which the browser test reads.
_SCRIPT = """
(function(){
var body=document.body,tip=document.getElementById('tip');
window.addEventListener('error',function(ev){body.setAttribute('data-errors',(body.getAttribute('data-errors')||'')
+ev.message+';');});
function find(el){while(el&&el.getAttribute){if(el.getAttribute('data-d'))return el;el=el.parentNode;}return null;}
document.addEventListener('mousemove',function(ev){var el=find(ev.target);if(!el){tip.style.display='none';return;}
tip.textContent=el.getAttribute('data-d');tip.style.display='block';tip.style.left=(ev.pageX+14)+'px';
tip.style.top=(ev.pageY+14)+'px';});
document.addEventListener('click',function(ev){var el=find(ev.target);if(!el)return;var s=el.closest('section');
var box=s&&s.querySelector('.pinned');if(box)box.textContent=el.getAttribute('data-d');});
function count(sel){return document.querySelectorAll(sel).length;}
function mark(){body.setAttribute('data-lanes',count('g.lane'));body.setAttribute('data-bars',count('.bar,.agg'));
body.setAttribute('data-markers',count('.marker'));body.setAttribute('data-aborts',count('g.abort'));
body.setAttribute('data-legends',count('.legend'));body.setAttribute('data-sections',count('section'));
body.setAttribute('data-load-ms',Math.round(performance.now()));body.setAttribute('data-rendered','1');}
if(document.readyState==='complete')mark();else window.addEventListener('load',mark);
})();
"""


@dataclass(frozen=True, slots=True)
class Section:
    """A block of the page: a title, an outcome class (passed/failed/...), lines under it, and HTML."""

    title: str
    body: str
    status: str = ""
    meta: tuple[str, ...] = ()


def esc(value: Any) -> str:
    """``value`` as HTML text, any str: a lone surrogate (``os.fsdecode`` of a non-UTF-8 byte) becomes ``\\udcff``."""
    return html.escape(printable(str(value)), quote=True)


def printable(text: str) -> str:
    """``text`` with every code point UTF-8 cannot encode written as its escape, so the page can be written."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _seconds(value: float) -> str:
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.3g} ms"


def _details(data: dict[str, Any]) -> str:
    return "\n".join(f"{key}: {value}" for key, value in data.items() if value is not None)


def _tick_step(span: float, target: int = 10) -> float:
    raw = span / target
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def summary_text(timeline: Timeline) -> str:
    s = timeline.summary
    outcomes = ", ".join(f"{n} {name}" for name, n in s.outcomes.items())
    deaths = plural(s.deaths, "death") + (f" ({s.chaos_deaths} by chaos)" if s.chaos_deaths else "")
    parts = [plural(s.tasks, "task") + (f" ({outcomes})" if outcomes else ""), plural(s.faults, "fault"),
             deaths, plural(s.restarts, "restart"), plural(s.aborts, "abort")]
    if s.recovery_mean is not None:
        parts.append(f"mean death → replacement ready {_seconds(s.recovery_mean)} (over {s.recoveries})")
    parts.append(f"span {_seconds(s.duration)}")
    return " · ".join(parts)


def legend_html() -> str:
    items = [f'<span><i class="sw" style="background:{COLOURS[o]}"></i>{esc(OUTCOME_LABELS[o])}</span>'
             for o in OUTCOMES]
    shapes = {
        "fault": '<svg width="12" height="12"><path d="M6 1L11 6L6 11L1 6Z" fill="#ff6f00" stroke="#000" '
                 'stroke-width=".6"/></svg>',
        "death": '<svg width="12" height="12"><path d="M2 2L10 10M10 2L2 10" stroke="#b71c1c" '
                 'stroke-width="2.4"/></svg>',
        "restart": '<svg width="12" height="12"><path d="M6 1L11 11H1Z" fill="#00897b"/></svg>',
        "exit": '<svg width="12" height="12"><rect x="5" y="1" width="2" height="10" fill="#757575"/></svg>',
        "backoff": '<svg width="14" height="10"><rect width="14" height="10" fill="#b0bec5" '
                   'stroke="#78909c"/></svg>',
        "abort": '<svg width="12" height="12"><path d="M6 0V12" stroke="#b71c1c" stroke-width="2" '
                 'stroke-dasharray="3 2"/></svg>',
    }
    items += [f"<span>{shapes[k]}{esc(MARKER_LABELS[k])}</span>" for k in MARKER_LABELS]
    return f'<div class="legend">{"".join(items)}</div>'


class _Canvas:
    def __init__(self, timeline: Timeline, width: int) -> None:
        self.timeline = timeline
        self.width = width
        self.span = max(timeline.t1 - timeline.t0, 1e-9)
        self.scale = width / self.span
        self.parts: list[str] = []

    def x(self, t: float) -> float:
        return LABEL_WIDTH + (t - self.timeline.t0) * self.scale

    def lane_y(self, lane: int) -> int:
        return AXIS_HEIGHT + lane * LANE_HEIGHT


def _draw_bars(canvas: _Canvas, bars: Iterable[Bar], folded: Iterable[Bucket] = ()) -> tuple[list[str], int]:
    """SVG for the bars (and the buckets the model folded while reading), and how many aggregates were drawn."""
    out: list[str] = []
    t0, t1 = canvas.timeline.t0, canvas.timeline.t1
    columns: dict[int, dict[int, Bucket]] = defaultdict(dict)  # lane -> pixel column -> its thin bars
    for bar in bars:
        end = bar.end if bar.end is not None else t1
        x0 = canvas.x(bar.start)
        if canvas.x(end) - x0 >= MIN_BAR_PX:
            y = canvas.lane_y(bar.lane) + BAR_TOP
            text = _details({**bar.details(), "start": f"+{_seconds(bar.start - t0)}",
                             "took": _seconds((bar.end or bar.start) - bar.start)})
            out.append(f'<rect class="bar o-{bar.outcome}" x="{x0:.1f}" y="{y}" width="{canvas.x(end) - x0:.1f}" '
                       f'height="{BAR_HEIGHT}" data-d="{esc(text)}"/>')
            continue
        lane = columns[bar.lane]
        column = int(x0)
        bucket = lane.get(column)
        if bucket is None:
            bucket = lane[column] = Bucket(bar.lane, bar.start, bar.start)
        bucket.add(bar, bar.end if bar.end is not None else bar.start)
    for each in folded:  # a folded slot is under a quarter of a pixel: it lies in the column of its start
        lane = columns[each.lane]
        column = int(canvas.x(each.start))
        if column in lane:
            lane[column].merge(each)
        else:
            lane[column] = Bucket(each.lane, each.start, each.end)
            lane[column].merge(each)
    aggregates = 0
    for lane_index, lane in columns.items():
        runs: list[Bucket] = []  # neighbouring columns of the same colour are one rectangle
        previous = None
        for column in sorted(lane):
            bucket = lane[column]
            if runs and runs[-1].worst == bucket.worst and previous == column - 1:
                runs[-1].merge(bucket)
            else:
                runs.append(bucket)
            previous = column
        y = canvas.lane_y(lane_index) + BAR_TOP
        for run in runs:
            worst = run.worst
            x0 = canvas.x(run.start)
            width = max(canvas.x(run.end) - x0, MIN_BAR_PX if worst == "finished" else 1.5)
            # the most severe first: a died task is the one worth naming among 500 finished ones
            text = _details({
                "tasks": f"{run.count} (drawn together: each narrower than {MIN_BAR_PX:g} px)",
                "outcomes": ", ".join(f"{run.outcomes[o]} {o}" for o in OUTCOMES if run.outcomes.get(o)),
                "among them": "; ".join(f"{what} ({outcome})" for _, _, what, outcome in run.samples)
                + (" …" if run.count > len(run.samples) else ""),
                "from": f"+{_seconds(run.start - t0)} to +{_seconds(run.end - t0)}",
                "errors": "; ".join(sorted(run.errors)) or None,
            })
            out.append(f'<rect class="agg o-{worst}" x="{x0:.1f}" y="{y}" width="{width:.1f}" '
                       f'height="{BAR_HEIGHT}" data-d="{esc(text)}"/>')
            aggregates += 1
    return out, aggregates


def _marker_shape(kind: str, x: float, y: int) -> str:
    top, bottom = y + 2, y + LANE_HEIGHT - 2
    if kind == "fault":
        return f'<path d="M{x:.1f} {top}l5 5l-5 5l-5-5Z" fill="#ff6f00" stroke="#000" stroke-width=".6"/>'
    if kind == "death":
        return (f'<path d="M{x - 4:.1f} {y + 10}l8 8m0-8l-8 8" stroke="#b71c1c" stroke-width="2.4"/>'
                f'<rect x="{x - 5:.1f}" y="{y + 9}" width="10" height="10" fill="transparent"/>')
    if kind == "restart":
        return f'<path d="M{x:.1f} {bottom - 7}l5 7h-10Z" fill="#00897b"/>'
    if kind == "exit":
        return f'<rect x="{x - 1:.1f}" y="{top}" width="2" height="{LANE_HEIGHT - 4}" fill="#757575"/>'
    return ""


def _rug(kind: str, x: float, y: int) -> str:
    """A dense marker: a thin tick in the kind's row of the lane, so bars stay visible between them."""
    colour, top, height = {"fault": ("#ff6f00", 1, 6), "death": ("#b71c1c", BAR_TOP + BAR_HEIGHT, 6),
                           "restart": ("#00897b", BAR_TOP + BAR_HEIGHT + 3, 3)}.get(kind, ("#757575", 1, 5))
    return f'<rect x="{x - 0.75:.1f}" y="{y + top}" width="1.5" height="{height}" fill="{colour}"/>'


def _draw_markers(canvas: _Canvas, markers: Iterable[Marker], folded: Iterable[Group] = ()) -> list[str]:
    """A marker per kind and pixel column of a lane, with a count when several fall there (folded ones too)."""
    out: list[str] = []
    t0 = canvas.timeline.t0
    columns: dict[tuple[int, str, int], Group] = {}
    for marker in markers:
        if marker.kind == "backoff":
            x0 = canvas.x(marker.t)
            end = min(canvas.x(marker.t + marker.duration), LABEL_WIDTH + canvas.width)  # a delay of 1e300 s
            width = max(end - x0, 1.0)
            y = canvas.lane_y(marker.lane) + BAR_TOP + BAR_HEIGHT + 1
            text = _details({**marker.details, "at": f"+{_seconds(marker.t - t0)}"})
            out.append(f'<rect class="marker m-backoff" x="{x0:.1f}" y="{y}" width="{width:.1f}" height="5" '
                       f'fill="#b0bec5" stroke="#78909c" stroke-width=".5" data-d="{esc(text)}"/>')
            continue
        key = (marker.lane, marker.kind, int(canvas.x(marker.t)))
        group = columns.get(key)
        if group is None:
            group = columns[key] = Group(marker.lane, marker.kind, marker, marker.t, marker.t)
        group.add(marker.t, marker.label)
    _merge_folded(canvas, columns, folded, lambda g: (g.lane, g.kind))
    per_row: Counter[tuple[int, str]] = Counter()
    for group in columns.values():
        per_row[(group.lane, group.kind)] += group.count
    for (lane, kind, _column), group in columns.items():
        y = canvas.lane_y(lane)
        x = canvas.x(group.start)
        if group.count == 1:
            m = group.first
            text = _details({"what": m.label, **m.details, "at": f"+{_seconds(m.t - t0)}"})
        else:
            text = _details({"what": f"{group.count} × {MARKER_LABELS[kind]} in this pixel", "which": group.which(),
                             "at": f"+{_seconds(group.start - t0)} to +{_seconds(group.end - t0)}"})
        dense = per_row[(lane, kind)] > canvas.width / DENSE_MARKER_PX
        shape = _rug(kind, x, y) if dense else _marker_shape(kind, x, y)
        out.append(f'<g class="marker m-{kind}" data-d="{esc(text)}">{shape}</g>')
    return out


def _merge_folded(canvas: _Canvas, columns: dict[Any, Group], folded: Iterable[Group], row: Any) -> None:
    """Add groups the model folded to the page's columns: a folded slot lies in the column of its start."""
    for each in folded:
        key = (*row(each), int(canvas.x(each.start)))
        group = columns.get(key)
        if group is None:
            columns[key] = Group(each.lane, each.kind, each.first, each.start, each.end)
            columns[key].merge(each)
        else:
            group.merge(each)


def timeline_svg(timeline: Timeline, width: int = PLOT_WIDTH) -> str:
    """The SVG drawing of a timeline (lanes, bars, markers, aborts, time axis)."""
    canvas = _Canvas(timeline, width)
    lanes = timeline.lanes
    height = AXIS_HEIGHT + len(lanes) * LANE_HEIGHT + 4
    total = LABEL_WIDTH + width + 10
    parts = [f'<svg class="tl" xmlns="http://www.w3.org/2000/svg" width="{total}" height="{height}" '
             f'viewBox="0 0 {total} {height}">',
             "<style>" + "".join(f".o-{o}{{fill:{c}}}" for o, c in COLOURS.items()) + "</style>"]
    step = _tick_step(canvas.span)
    tick = 0.0
    while tick <= canvas.span + 1e-12:
        x = canvas.x(timeline.t0 + tick)
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{AXIS_HEIGHT - 4}" y2="{height}"/>'
                     f'<text x="{x:.1f}" y="{AXIS_HEIGHT - 8}" text-anchor="middle">{esc(_axis(tick, step))}</text>')
        tick += step
    for lane in lanes:
        y = canvas.lane_y(lane.index)
        restarts = max(lane.processes - 1, 0)
        pids = ", ".join(map(str, lane.pids)) + (" …" if lane.processes > len(lane.pids) else "")
        text = _details({"lane": lane.label, "pool": lane.pool, "worker id": lane.worker_id, "pids": pids or None,
                         "processes started": lane.processes})
        parts.append(f'<g class="lane" data-d="{esc(text)}"><rect class="lanebg" x="{LABEL_WIDTH}" y="{y}" '
                     f'width="{width}" height="{LANE_HEIGHT - 2}"/><text x="6" y="{y + 17}">{esc(lane.label)}'
                     f'{f" ↻{restarts}" if restarts else ""}</text></g>')
    bars, _ = _draw_bars(canvas, timeline.bars, timeline.buckets)
    parts += bars
    parts += _draw_markers(canvas, timeline.markers, timeline.marker_groups)
    parts += _draw_aborts(canvas, timeline.aborts, height, timeline.abort_groups)
    parts.append("</svg>")
    return "".join(parts)


def _draw_aborts(canvas: _Canvas, aborts: Iterable[Abort], height: int, folded: Iterable[Group] = ()) -> list[str]:
    """One line per pixel column holding aborts, with how many and why: 100 000 aborts are at most one per pixel."""
    t0 = canvas.timeline.t0
    columns: dict[tuple[int], Group] = {}
    for abort in aborts:
        key = (int(canvas.x(abort.t)),)
        group = columns.get(key)
        if group is None:
            group = columns[key] = Group(-1, "abort", abort, abort.t, abort.t)
        group.add(abort.t, abort.reason)
    _merge_folded(canvas, columns, folded, lambda g: ())
    out = []
    dense = len(columns) > canvas.width / DENSE_MARKER_PX  # no room for a word per line
    for _column, group in sorted(columns.items()):
        x = canvas.x(group.start)
        if group.count == 1:
            a = group.first
            text = _details({"what": "map aborted", "why": a.reason, "error": a.error, "pool": a.pool,
                             "worker": a.worker_id, "call id in the log": a.call, "at": f"+{_seconds(a.t - t0)}"})
        else:
            text = _details({"what": f"{group.count} map aborts in this pixel", "why": group.which(),
                             "at": f"+{_seconds(group.start - t0)} to +{_seconds(group.end - t0)}"})
        label = plural(group.count, "abort") if group.count > 1 else "abort"
        word = "" if dense else f'<text x="{x + 4:.1f}" y="{AXIS_HEIGHT + 10}">{esc(label)}</text>'
        out.append(f'<g class="abort" data-d="{esc(text)}"><line x1="{x:.1f}" x2="{x:.1f}" y1="{AXIS_HEIGHT - 2}" '
                   f'y2="{height}"/><rect x="{x - 4:.1f}" y="{AXIS_HEIGHT}" width="8" height="{height - AXIS_HEIGHT}"'
                   f' fill="transparent"/>{word}</g>')
    return out


def _axis(tick: float, step: float) -> str:
    if step >= 1:
        return f"{tick:g} s"
    if step >= 0.001:
        return f"{tick * 1000:g} ms"
    return f"{tick * 1e6:.0f} µs"


def timeline_html(timeline: Timeline, width: int = PLOT_WIDTH) -> str:
    """Summary line, legend, drawing and the box click pins details into; or a note when nothing was recorded."""
    if timeline.empty:
        return '<p class="empty">No events were recorded.</p>'
    return (f'<p class="summary">{esc(summary_text(timeline))}</p>{legend_html()}'
            f'<div style="overflow-x:auto">{timeline_svg(timeline, width)}</div>'
            '<div class="pinned">click a bar or a marker to keep its details here</div>')


def page(title: str, sections: list[Section], intro: str = "") -> str:
    """The whole HTML document."""
    blocks = []
    for section in sections:
        meta = "".join(f'<p class="meta">{esc(line)}</p>' for line in section.meta)
        blocks.append(f'<section class="{esc(section.status)}"><h2>{esc(section.title)}</h2>{meta}'
                      f"{section.body}</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1>{intro}{''.join(blocks)}<div id=\"tip\"></div>"
            f"<script>{_SCRIPT}</script></body></html>\n")


def write_page(path: str, title: str, sections: list[Section], intro: str = "") -> None:
    """Write the page whole or not at all: into a new file beside ``path``, renamed over it once complete.

    A failure (an unwritable folder, a full disk) raises ``OSError`` and
    leaves ``path`` as it was, never a 0-byte or half page.
    """
    data = page(title, sections, intro).encode("utf-8", "backslashreplace")  # esc() already made it encodable
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as handle:  # "x": never another's file; the umask gives the usual mode
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
