"""The timeline picture: inline SVG on the UTC wall-clock axis the report's tables use.

Rows, top to bottom: a legend; one row per activity (a Gantt chart: the name in the left gutter, the span
in the plot, failed activities red); one row per injected fault; one online/offline band per agent with
the fault window hatched on the agents it hit; sessions per state and commands per status as step charts;
the UTC time axis. The fault window is also shaded lightly across the whole plot. The verdict heads the
picture, so picture and verdict cannot disagree: a fault that was not injected is said so in its row.

Text never overlaps or clips: every label lives in its own row, names are cut to the gutter's width
(the full name is in a tooltip and the tables), legends wrap, time ticks are spaced by their width.
Elements carry `data-*` attributes (epoch seconds) so tests and tools can read the picture back.
The picture is bounded: at most `MAX_SAMPLES` samples (evenly thinned), `MAX_ROWS` activity rows and
`MAX_AGENTS` agent rows are drawn.
"""

import math
from html import escape
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from chaosstream.timeutil import clock

__all__ = ["timeline_svg", "status_steps", "STATUS_COLOURS", "STREAM_COLOURS", "text_width", "wrap", "W"]

STATUS_COLOURS = {"online": "#2e9d4f", "offline": "#d2342c", "draining": "#e0a21b", "absent": "#b9b9b9"}
# a monitored VNC stream: bytes flowing, a gap (no bytes: a frozen picture), the client reopening it
STREAM_COLOURS = {"up": "#2e9d4f", "gap": "#e0a21b", "reconnecting": "#d2342c", "connecting": "#b9b9b9"}
PHASE_COLOURS = {"method": "#3466c2", "rollback": "#8a3fb5", "hypothesis-before": "#7c8a99",
                 "hypothesis-after": "#7c8a99", "experiment": "#7c8a99"}  # fmt: skip
FAILED_COLOUR = "#d2342c"
FAULT_COLOUR = "#e07b1b"
LINE_COLOURS = ["#3466c2", "#e07b1b", "#2e9d4f", "#8a3fb5", "#d2342c", "#1ba3b5", "#7a5c3a", "#555555"]
W, LEFT, RIGHT = 820, 210, 16
FONT = 12  # px, every label
CHAR_W = 0.72 * FONT  # the width of a digit or lowercase letter, at most
MAX_SAMPLES, MAX_ROWS, MAX_AGENTS = 2000, 60, 40
ROW_H, AGENT_H = 18, 20


# Upper bounds of glyph advances in em, over the sans-serif fonts a browser may pick (Helvetica, Arial,
# Liberation Sans, DejaVu Sans - the widest), bold included: a label measured with these never takes
# more room than it was given, whatever font renders it.
_NARROW, _SEMI, _WIDE = set("il.,:;'|!`"), set("fjtrI()[]{}-/\\ "), set("mwMW@%")


def _em(char: str) -> float:
    if char in _NARROW:
        return 0.44
    if char in _SEMI:
        return 0.5
    if char in _WIDE:
        return 1.1
    if char.isascii():
        if char.islower() or char.isdigit():
            return 0.72
        if char.isupper():
            return 0.86
        return 0.9  # other punctuation: # & + = ? ~ ...
    return 1.3  # everything else (accents, CJK, emoji) as the widest


def text_width(text: str) -> float:
    """An upper bound of the width of `text` at FONT px (bold included)."""
    return sum(_em(c) for c in text) * FONT


def _cut(text: str, width: float) -> str:
    """`text`, cut with an ellipsis so that it fits in `width` px."""
    if text_width(text) <= width:
        return text
    budget = width - text_width("…")
    out = []
    for char in text:
        budget -= _em(char) * FONT
        if budget < 0:
            break
        out.append(char)
    return "".join(out).rstrip() + "…"


def wrap(text: str, width: float, max_lines: int = 4) -> List[str]:
    """Split `text` into lines no wider than `width` (by `text_width`), at spaces where possible."""
    lines: List[str] = []
    rest = text.strip()
    while rest and len(lines) < max_lines:
        if text_width(rest) <= width:
            lines.append(rest)
            rest = ""
            break
        chars = max(len(_cut(rest, width)) - 1, 1)  # what fits, without the ellipsis
        cut = rest.rfind(" ", 0, chars + 1)
        cut = cut if cut > chars // 2 else chars
        lines.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest and lines:
        lines[-1] = _cut(lines[-1] + " " + rest, width)
    return lines


def _el(tag: str, text: Optional[str] = None, **kw: Any) -> str:
    """One SVG element; `text` becomes a <title> tooltip for shapes and the content for <text>."""
    attrs = " ".join(
        f'{k.rstrip("_").replace("_", "-")}="{escape(str(v), quote=True)}"'
        for k, v in kw.items()
        if v is not None
    )
    if text is None:
        return f"<{tag} {attrs}/>"
    inner = escape(text) if tag == "text" else f"<title>{escape(text)}</title>"
    return f"<{tag} {attrs}>{inner}</{tag}>"


def _fit(x: float, y: float, text: str, width: float, cls: str = "label", **kw: Any) -> str:
    """A left-anchored label cut to `width`; `data-right` records its room (checked in a browser)."""
    return _label(x, y, _cut(text, width), cls, data_right=f"{x + width:.1f}", **kw)


def _label(x: float, y: float, text: str, cls: str = "label", anchor: str = "start", **kw: Any) -> str:
    return _el("text", text, x=f"{x:.1f}", y=f"{y:.1f}", class_=cls, text_anchor=anchor, **kw)


def status_steps(
    samples: List[Mapping[str, Any]], agent: str, t_end: float
) -> List[Tuple[float, float, str]]:
    """Steps of one agent's status: each sample's status holds until the next sample."""
    with_agents = [s for s in samples if "agents" in s]
    bands: List[List[Any]] = []
    for i, sample in enumerate(with_agents):
        status = (
            next((a.get("status") for a in sample["agents"] if a.get("agentId") == agent), None) or "absent"
        )
        t = float(sample["t"])
        nxt = float(with_agents[i + 1]["t"]) if i + 1 < len(with_agents) else max(t, t_end)
        if bands and bands[-1][2] == status:
            bands[-1][1] = nxt
        else:
            bands.append([t, nxt, status])
    return [(b[0], b[1], b[2]) for b in bands]


def _series(samples: List[Mapping[str, Any]], key: str) -> Dict[str, List[Tuple[float, int]]]:
    names = sorted({name for s in samples for name in (s.get(key) or {})})[: len(LINE_COLOURS)]
    out: Dict[str, List[Tuple[float, int]]] = {n: [] for n in names}
    for s in samples:
        if key in s:
            for n in names:
                out[n].append((float(s["t"]), int((s.get(key) or {}).get(n, 0))))
    return out


def _legend(parts: List[str], y: float, items: Sequence[Tuple[str, str, str]]) -> float:
    """Lay out legend items (kind, colour, text) left to right, wrapping; returns the next free y."""
    x, right = 8.0, W - RIGHT
    for kind, colour, text in items:
        text = _cut(text, right - 8 - 34)
        width = 16 + text_width(text) + 18
        if x + width > right and x > 8:
            x, y = 8.0, y + 20
        if kind == "line":
            parts.append(_el("line", None, x1=f"{x:.1f}", x2=f"{x + 12:.1f}", y1=y - 4, y2=y - 4, stroke=colour,
                             stroke_width=3))  # fmt: skip
        elif kind == "diamond":
            parts.append(_el("path", None, d=f"M{x + 6:.1f},{y - 11} l6,6 l-6,6 l-6,-6 z", fill="#fff", stroke=colour,
                             stroke_width=1.5))  # fmt: skip
        elif kind == "outline":
            parts.append(_el("rect", None, x=f"{x + 1:.1f}", y=y - 9, width=10, height=10, fill="none",
                             stroke=colour, stroke_width=2.5, stroke_dasharray="4 2"))  # fmt: skip
        elif kind == "hatch":
            parts.append(_el("rect", None, x=f"{x:.1f}", y=y - 10, width=12, height=12, fill="url(#fault-hatch)",
                             stroke=colour))  # fmt: skip
        else:
            parts.append(_el("rect", None, x=f"{x:.1f}", y=y - 10, width=12, height=12, fill=colour))
        parts.append(_fit(x + 16, y, text, text_width(text), "legend"))
        x += width
    return y + 22


def _step_chart(
    parts: List[str],
    title: str,
    series: Dict[str, List[Tuple[float, int]]],
    x: Callable[[float], float],
    y0: float,
    h: float,
    kind: str,
    empty: str,
) -> float:
    """A step chart (counts hold until the next sample) with its legend; returns the next free y."""
    parts.append(_label(8, y0 + 13, title, "row-title"))
    parts.append(_el("rect", None, x=LEFT, y=y0, width=W - LEFT - RIGHT, height=h, class_="plot-bg"))
    if not series:
        parts.append(_fit(LEFT + 8, y0 + h / 2 + 4, empty, W - LEFT - RIGHT - 16, "note"))
        return y0 + h + 12
    top = max([v for pts in series.values() for _, v in pts] + [1])
    parts.append(_label(LEFT - 6, y0 + 12, str(top), "tick", "end"))
    parts.append(_label(LEFT - 6, y0 + h, "0", "tick", "end"))
    items = []
    for i, (name, pts) in enumerate(series.items()):
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        if not pts:
            continue

        def y(v: int) -> float:
            return y0 + h - 3 - (v / top) * (h - 8)

        path = f"M{x(pts[0][0]):.1f},{y(pts[0][1]):.1f}"
        for (_, _), (t, v) in zip(pts, pts[1:], strict=False):
            path += f" H{x(t):.1f} V{y(v):.1f}"
        path += f" H{x(pts[-1][0]):.1f}"
        parts.append(_el("path", None, d=path, stroke=colour, class_=f"series step {kind}", data_name=name))
        items.append(("line", colour, name))
    return _legend(parts, y0 + h + 18, items)


def _ticks(t0: float, t1: float) -> List[Tuple[float, str]]:
    """Axis ticks spaced by their labels' width: `HH:MM:SS` (with a fraction below 1 s steps), or
    `MM-DD HH:MM` when the axis spans more than a day."""
    span = max(t1 - t0, 1e-3)
    days = span > 86400

    def text(t: float, step: float) -> str:
        if days:
            return clock(t, 0, date=True)[5:16]
        return clock(t, 0 if step >= 1 else 1)

    label_w = text_width(text(t0, 1) + "0") + 24
    fits = max(int((W - LEFT - RIGHT) // label_w), 2)
    steps = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
    step = next((s for s in steps if span / s <= fits), 0.0)
    if not step:  # longer than the table: whole days
        step = math.ceil(span / fits / 86400) * 86400
    first = math.ceil(t0 / step) * step
    out: List[Tuple[float, str]] = []
    t = first
    while t <= t1 + 1e-6 and len(out) < 50:
        out.append((t, text(t, step)))
        t += step
    if not out:  # a fraction of a second: one tick in the middle
        out.append(((t0 + t1) / 2, clock((t0 + t1) / 2, 2)))
    return out


def timeline_svg(
    timeline: Optional[Mapping[str, Any]],
    scrub: Callable[[str], str] = str,
    activities: Sequence[Any] = (),
    faults: Sequence[Any] = (),
    headline: str = "",
    failed_headline: bool = False,
    observations: Sequence[Tuple[str, str, float, str]] = (),
    streams: Optional[Mapping[str, Any]] = None,
) -> str:
    """Render the timeline as a standalone `<svg>` element (a note if nothing was recorded).
    `streams` (the report's stream monitor record) adds one band per monitored session.

    `activities` are the report's ActivityRow, `faults` its FaultWindow (both on epoch seconds);
    `headline` is the verdict sentence drawn on top."""
    samples = sorted((timeline or {}).get("samples") or [], key=lambda s: s.get("t") or 0)
    if len(samples) > MAX_SAMPLES:  # thin evenly, keep the last one (the end state)
        step = len(samples) / MAX_SAMPLES
        samples = [samples[int(i * step)] for i in range(MAX_SAMPLES - 1)] + [samples[-1]]
    acts = [a for a in activities if a.start_t is not None][:MAX_ROWS]
    times = [float(s["t"]) for s in samples] + [a.start_t for a in acts] + [a.end_t for a in acts if a.end_t]
    times += [f.start_t for f in faults if f.injected] + [f.end_t for f in faults if f.injected and f.end_t]
    times += [o[2] for o in observations]
    stream_bands = dict(list(((streams or {}).get("bands") or {}).items())[:MAX_AGENTS])
    times += [t for rows in stream_bands.values() for start, end, _ in rows for t in (start, end)]
    if not timeline and not acts:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {W} 40" width="{W}" height="40">'
            '<text x="8" y="24" class="note">No timeline recorded (enable chaosstream.controls.timeline).</text></svg>'
        )
    if not times:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {W} 40" width="{W}" height="40">'
            '<text x="8" y="24" class="note">The timeline recorded no sample and no activity.</text></svg>'
        )
    t0, t1 = min(times), max(times)
    pad = max((t1 - t0) * 0.01, 0.05)
    t0, t1 = t0 - pad, t1 + pad
    span = t1 - t0

    def x(t: float) -> float:
        return LEFT + (float(t) - t0) / span * (W - LEFT - RIGHT)

    body: List[str] = []
    y = 20.0
    body.append(_label(8, y, f"Timeline, UTC {clock(t0, 0, date=True)[:10]}", "row-title"))
    y += 20
    for line in wrap(headline, W - 16, max_lines=8) if headline else []:
        body.append(_fit(8, y, line, W - 16, "headline bad" if failed_headline else "headline"))
        y += 18
    legend = [
        ("box", PHASE_COLOURS["hypothesis-before"], "hypothesis probe"),
        ("box", PHASE_COLOURS["method"], "method activity"),
        ("box", PHASE_COLOURS["rollback"], "rollback"),
        ("box", FAILED_COLOUR, "failed activity"),
        ("hatch", FAULT_COLOUR, "fault window (injection to heal/expiry)"),
        ("outline", FAULT_COLOUR, "fault window on the agent it hit"),
        ("box", STATUS_COLOURS["online"], "agent online (sampled from the API)"),
        ("box", STATUS_COLOURS["offline"], "agent offline"),
        ("diamond", "#1d2329", "status a probe saw"),
        ("box", STATUS_COLOURS["draining"], "draining"),
        ("box", STATUS_COLOURS["absent"], "not listed"),
    ]
    if stream_bands:
        legend += [
            ("box", STREAM_COLOURS["up"], "stream up (bytes flowing)"),
            ("box", STREAM_COLOURS["gap"], "stream gap (frozen picture)"),
            ("box", STREAM_COLOURS["reconnecting"], "stream reconnecting"),
        ]
    y = _legend(body, y + 6, legend)
    plot_top = y
    shades: List[str] = []
    # -- activities: one row each ----------------------------------------------------------------------
    body.append(_label(8, y + 13, "Activities", "row-title"))
    y += ROW_H
    for act in acts:
        colour = FAILED_COLOUR if act.status != "succeeded" else PHASE_COLOURS.get(act.phase, "#7c8a99")
        name = scrub(act.name)
        end = act.end_t if act.end_t is not None else t1
        body.append(_fit(16, y + 12, name, LEFT - 24, "label", data_row="activity"))
        tip = f"{name} ({act.phase} {act.kind}): {act.status}, {clock(act.start_t, 2)} to " + (
            clock(act.end_t, 2) if act.end_t is not None else "no end"
        )
        body.append(
            _el("rect", tip, x=f"{x(act.start_t):.1f}", y=f"{y + 2:.1f}", width=f"{max(x(end) - x(act.start_t), 3):.1f}",
                height=ROW_H - 5, fill=colour, class_=f"activity status-{act.status}", data_name=name,
                data_phase=act.phase, data_type=act.kind, data_status=act.status, data_start=act.start_t,
                data_end=act.end_t)
        )  # fmt: skip
        y += ROW_H
    if len(activities) > len(acts):
        body.append(
            _label(16, y + 12, f"{len(activities) - len(acts)} more activities: see the table", "note")
        )
        y += ROW_H
    # -- faults ----------------------------------------------------------------------------------------
    if faults:
        body.append(_label(8, y + 13, "Faults", "row-title"))
        y += ROW_H
    for fault in list(faults)[:MAX_ROWS]:
        body.append(_fit(16, y + 12, fault.kind, LEFT - 24, "label", data_row="fault"))
        if not fault.injected:
            note = f"NOT INJECTED: {fault.action} failed - {fault.reason}"
            body.append(
                _fit(LEFT + 6, y + 12, note, W - LEFT - RIGHT - 12, "note bad", data_fault="not-injected")
            )
            y += ROW_H
            continue
        end = fault.end_t if fault.end_t is not None else t1
        tip = f"{fault.kind} by {fault.action}: {clock(fault.start_t, 2)} to {clock(end, 2)}, {fault.end_reason}"
        body.append(
            _el("rect", tip, x=f"{x(fault.start_t):.1f}", y=f"{y + 2:.1f}", width=f"{max(x(end) - x(fault.start_t), 3):.1f}",
                height=ROW_H - 5, fill="url(#fault-hatch)", stroke=FAULT_COLOUR, class_="fault",
                data_action=fault.action, data_start=fault.start_t, data_end=fault.end_t,
                data_agents=" ".join(fault.agents))
        )  # fmt: skip
        shades.append(
            _el("rect", None, x=f"{x(fault.start_t):.1f}", y=f"{plot_top:.1f}", width=f"{max(x(end) - x(fault.start_t), 3):.1f}",
                height="__PLOT_H__", class_="fault-shade", data_start=fault.start_t, data_end=fault.end_t)
        )  # fmt: skip
        y += ROW_H
    # -- agents ----------------------------------------------------------------------------------------
    agents = sorted({a.get("agentId") for s in samples for a in s.get("agents") or [] if a.get("agentId")})
    body.append(_label(8, y + 13, "Agents", "row-title"))
    y += ROW_H
    if not agents:
        errors = (timeline or {}).get("errors") or {}
        why = (
            "No timeline recorded (enable chaosstream.controls.timeline): only the activities are drawn"
            if not timeline
            else f"No agent was sampled ({errors.get('count')} sampler errors; last: {scrub(str(errors.get('last')))})"
            if errors.get("count")
            else "No agent was sampled: the API listed none"
        )
        body.append(_fit(LEFT + 8, y + 14, why, W - LEFT - RIGHT - 16, "note"))
        y += AGENT_H + 4
    for agent in agents[:MAX_AGENTS]:
        label = scrub(str(agent))
        body.append(_fit(16, y + 14, label, LEFT - 24, "label", data_row="agent"))
        for start, stop, status in status_steps(samples, agent, t1 - pad):
            body.append(
                _el("rect", f"{label}: {status} {clock(start, 1)} to {clock(stop, 1)} ({stop - start:.1f} s)",
                    x=f"{x(start):.1f}", y=f"{y:.1f}", width=f"{max(x(stop) - x(start), 1):.1f}", height=AGENT_H - 2,
                    fill=STATUS_COLOURS.get(status, "#777"), class_=f"band band-{status}", data_agent=label,
                    data_status=status, data_start=start, data_end=stop)
            )  # fmt: skip
        for fault in faults:
            if fault.injected and agent in fault.agents:
                end = fault.end_t if fault.end_t is not None else t1
                body.append(
                    _el("rect", f"fault window on {label}", x=f"{x(fault.start_t):.1f}", y=f"{y:.1f}",
                        width=f"{max(x(end) - x(fault.start_t), 3):.1f}", height=AGENT_H - 2, fill="none",
                        stroke=FAULT_COLOUR, stroke_width=2.5, stroke_dasharray="6 3", class_="fault-agent", data_agent=label, data_start=fault.start_t,
                        data_end=fault.end_t)
                )  # fmt: skip
        for seen, status, t, probe in observations:
            if seen == agent:
                cx, cy = x(t), y + (AGENT_H - 2) / 2
                body.append(
                    _el("path", f"{probe} saw {label} {status} at {clock(t, 2)}", d=f"M{cx:.1f},{cy - 7:.1f} l7,7 l-7,7 l-7,-7 z",
                        fill=STATUS_COLOURS.get(status, "#777"), stroke="#1d2329", stroke_width=1.5, class_="observation",
                        data_agent=label, data_status=status, data_t=t, data_probe=probe)
                )  # fmt: skip
        y += AGENT_H + 4
    if len(agents) > MAX_AGENTS:
        body.append(_label(16, y + 12, f"{len(agents) - MAX_AGENTS} more agents not drawn", "note"))
        y += ROW_H
    # -- VNC streams: one band per monitored session --------------------------------------------------
    if stream_bands:
        body.append(_label(8, y + 13, "VNC streams", "row-title"))
        y += ROW_H
    for session, rows in stream_bands.items():
        label = scrub(str(session))
        body.append(_fit(16, y + 14, label, LEFT - 24, "label", data_row="stream"))
        for start, stop, state in rows:
            body.append(
                _el("rect", f"{label}: stream {state} {clock(start, 2)} to {clock(stop, 2)} ({stop - start:.2f} s)",
                    x=f"{x(start):.1f}", y=f"{y:.1f}", width=f"{max(x(stop) - x(start), 1):.1f}", height=AGENT_H - 2,
                    fill=STREAM_COLOURS.get(state, "#777"), class_=f"band stream stream-{state}", data_session=label,
                    data_state=state, data_start=start, data_end=stop)
            )  # fmt: skip
        y += AGENT_H + 4
    # -- sessions and commands -------------------------------------------------------------------------
    y += 10
    sessions = _series(samples, "sessions")
    sampled_sessions = any("sessions" in s for s in samples)
    y = _step_chart(
        body, "Sessions by state", sessions, x, y, 80, "sessions",
        "No sessions existed during the run" if sampled_sessions else "Sessions were not sampled (the API did not answer)",
    )  # fmt: skip
    commands = _series(samples, "commands")
    sampled_commands = any("commands" in s for s in samples)
    y = _step_chart(
        body, "Commands by status", commands, x, y + 6, 60, "commands",
        "The command queue was empty throughout" if sampled_commands
        else "Commands not sampled: no database DSN (STREAMSPACE_DB_DSN) was configured",
    )  # fmt: skip
    # -- axis ------------------------------------------------------------------------------------------
    axis_y = y + 4
    plot_h = axis_y - plot_top
    grid: List[str] = []
    body.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{axis_y:.1f}" y2="{axis_y:.1f}" stroke="#333"/>')
    for tick, text in _ticks(t0, t1):
        grid.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{plot_top:.1f}" y2="{axis_y:.1f}" class="grid"/>'
        )
        half = text_width(text) / 2
        if x(tick) - half >= 0 and x(tick) + half <= W:  # a label that would be clipped is left out
            body.append(_label(x(tick), axis_y + 16, text, "tick", "middle", data_t=tick))
    body.append(_label(W - RIGHT, axis_y + 34, "time (UTC)", "tick", "end"))
    height = axis_y + 44
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {W} {height:.0f}" '
        f'width="{W}" height="{height:.0f}" data-t0="{t0}" data-t1="{t1}">',
        '<defs><pattern id="fault-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="6" height="6" fill="{FAULT_COLOUR}" fill-opacity=".18"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{FAULT_COLOUR}" stroke-width="2.5"/></pattern></defs>',
        f"<style>text{{font-family:Helvetica,Arial,sans-serif;font-size:{FONT}px}}.row-title{{font-weight:bold}}"
        ".headline{font-weight:bold}.bad{fill:#b3261e}.note{fill:#555}.tick{fill:#333}"
        ".plot-bg{fill:#f6f7f9}.series{fill:none;stroke-width:2}.grid{stroke:#dde1e6;stroke-width:1}"
        f".fault-shade{{fill:{FAULT_COLOUR};fill-opacity:.08}}.band{{stroke:#fff;stroke-width:.5}}</style>",
    ]
    return "\n".join(
        head + grid + [s.replace("__PLOT_H__", f"{plot_h:.1f}") for s in shades] + body + ["</svg>"]
    )
