"""The timeline picture: inline SVG built from the `chaosstream-timeline` journal extension.

Rows, top to bottom: activity spans with labels (method actions/probes, rollbacks, hypothesis probes),
one online/offline band per agent, sessions per state (lines), commands per status (lines). Every
activity start is also drawn as a vertical marker across the whole picture. Elements carry `data-*`
attributes (epoch seconds) so tests and tools can read the picture back.

The input is the cleaned extension of `chaosstream.journal.report.model` (finite times, typed fields);
the picture is bounded: at most `MAX_SAMPLES` samples (evenly thinned), `MAX_MARKERS` markers and
`MAX_AGENTS` agent rows are drawn.
"""

from html import escape
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

__all__ = ["timeline_svg", "STATUS_COLOURS"]

STATUS_COLOURS = {"online": "#2e9d4f", "offline": "#d2342c", "draining": "#e0a21b", "absent": "#b9b9b9"}
PHASE_COLOURS = {"method": "#3466c2", "rollback": "#8a3fb5", "hypothesis-before": "#7c8a99",
                 "hypothesis-after": "#7c8a99", "experiment": "#7c8a99"}  # fmt: skip
LINE_COLOURS = ["#3466c2", "#e07b1b", "#2e9d4f", "#8a3fb5", "#d2342c", "#1ba3b5", "#7a5c3a", "#555555"]
W, LEFT, RIGHT = 1100, 160, 20
MAX_SAMPLES, MAX_MARKERS, MAX_AGENTS = 2000, 1000, 40


def _f(value: float) -> str:
    return f"{value:.1f}"


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


def _spans(markers: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Pair start/end markers (per activity name, in order)."""
    open_: Dict[Tuple[Any, Any], Mapping[str, Any]] = {}
    spans: List[Dict[str, Any]] = []
    for m in sorted(markers, key=lambda m: m.get("t") or 0):
        key = (m.get("name"), m.get("phase"))
        if m.get("event") == "start":
            open_[key] = m
        elif m.get("event") == "end" and key in open_:
            start = open_.pop(key)
            spans.append(dict(start, end=m.get("t"), status=m.get("status")))
    for start in open_.values():  # started, never ended: interrupted
        spans.append(dict(start, end=None, status="interrupted"))
    return sorted(spans, key=lambda s: s["t"])


def _bands(samples: List[Mapping[str, Any]], agent: str) -> List[Tuple[float, float, str]]:
    """Merge consecutive samples of one agent into (start, end, status) bands; a band lasts until the
    next sample that shows a different status."""
    bands: List[List[Any]] = []
    with_agents = [s for s in samples if "agents" in s]
    for i, sample in enumerate(with_agents):
        status = (
            next((a.get("status") for a in sample["agents"] if a.get("agentId") == agent), None) or "absent"
        )
        t = float(sample["t"])
        nxt = float(with_agents[i + 1]["t"]) if i + 1 < len(with_agents) else t
        if bands and bands[-1][2] == status:
            bands[-1][1] = nxt
        else:
            if bands:
                bands[-1][1] = t
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


def _line_chart(
    parts: List[str],
    title: str,
    series: Dict[str, List[Tuple[float, int]]],
    x: Callable,
    y0: float,
    h: float,
    kind: str,
) -> None:
    parts.append(f'<text x="8" y="{y0 + 14}" class="row-title">{escape(title)}</text>')
    parts.append(f'<rect x="{LEFT}" y="{y0}" width="{W - LEFT - RIGHT}" height="{h}" class="plot-bg"/>')
    if not series:
        parts.append(f'<text x="{LEFT + 8}" y="{y0 + h / 2}" class="note">no data</text>')
        return
    top = max([v for pts in series.values() for _, v in pts] + [1])
    parts.append(f'<text x="{LEFT - 6}" y="{y0 + 10}" class="tick" text-anchor="end">{top}</text>')
    parts.append(f'<text x="{LEFT - 6}" y="{y0 + h}" class="tick" text-anchor="end">0</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        coords = " ".join(f"{x(t):.1f},{y0 + h - (v / top) * (h - 6):.1f}" for t, v in pts)
        parts.append(
            _el("polyline", None, points=coords, stroke=colour, class_="series " + kind, data_name=name)
        )
        lx = LEFT + 8 + i * 120
        parts.append(f'<rect x="{lx}" y="{y0 + h + 6}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 14}" y="{y0 + h + 15}" class="legend">{escape(name)}</text>')


def timeline_svg(timeline: Optional[Mapping[str, Any]], scrub: Callable[[str], str] = str) -> str:
    """Render the timeline extension as a standalone `<svg>` element (empty note if there is none)."""
    samples = sorted((timeline or {}).get("samples") or [], key=lambda s: s.get("t") or 0)
    if len(samples) > MAX_SAMPLES:  # thin evenly, keep the last one (the end state)
        step = len(samples) / MAX_SAMPLES
        samples = [samples[int(i * step)] for i in range(MAX_SAMPLES - 1)] + [samples[-1]]
    markers = list((timeline or {}).get("markers") or [])[:MAX_MARKERS]
    times = [float(s["t"]) for s in samples] + [float(m["t"]) for m in markers if m.get("t") is not None]
    if not times:
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="600" height="40" class="timeline">'
            '<text x="8" y="24">No timeline recorded (enable chaosstream.controls.timeline).</text></svg>'
        )
    t0, t1 = min(times), max(times)
    span = max(t1 - t0, 1e-3)

    def x(t: float) -> float:
        return LEFT + (float(t) - t0) / span * (W - LEFT - RIGHT)

    activities = _spans(markers)
    agents = sorted({a.get("agentId") for s in samples for a in s.get("agents") or [] if a.get("agentId")})
    agents = agents[:MAX_AGENTS]
    sessions, commands = _series(samples, "sessions"), _series(samples, "commands")
    lane_h = 18 * max(3, min(len(activities), 6)) + 20
    agents_y = 30 + lane_h
    sessions_y = agents_y + 24 * len(agents) + 30
    commands_y = sessions_y + 140 + 40
    height = commands_y + 100 + 60
    parts: List[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{W}" height="{height}" '
        f'viewBox="0 0 {W} {height}" data-t0="{t0}" data-t1="{t1}">',
        "<style>.row-title{font:bold 12px sans-serif}.label,.legend,.tick,.note{font:11px sans-serif}"
        ".plot-bg{fill:#f6f7f9}.series{fill:none;stroke-width:2}.marker{stroke-width:1;stroke-dasharray:4 3}"
        ".band{stroke:#fff;stroke-width:.5}.activity{opacity:.85}</style>",
        f'<text x="8" y="18" class="row-title">Timeline (t0 = first sample/marker, {span:.1f} s)</text>',
        '<text x="8" y="44" class="row-title">Activities</text>',
    ]
    for i, act in enumerate(activities):  # spans, labels and vertical markers
        colour = PHASE_COLOURS.get(str(act.get("phase")), "#7c8a99")
        ay = 30 + 18 * (i % max(3, min(len(activities), 6)))
        t, end = float(act["t"]), float(act["end"] if act.get("end") is not None else t1)
        name = scrub(str(act.get("name")))
        kw = dict(
            data_name=name,
            data_phase=act.get("phase"),
            data_type=act.get("type"),
            data_status=act.get("status"),
        )
        tip = f"{name} ({act.get('phase')}): {act.get('status')}"
        parts.append(
            _el("rect", tip, x=_f(x(t)), y=ay, width=_f(max(x(end) - x(t), 2)), height=12, fill=colour,
                class_="activity", data_start=t, data_end=end, **kw)
        )  # fmt: skip
        parts.append(_el("text", name, x=_f(x(t) + 3), y=ay + 10, class_="label"))
        if act.get("phase") in ("method", "rollback"):
            parts.append(
                _el("line", None, x1=_f(x(t)), x2=_f(x(t)), y1=ay, y2=height - 40, stroke=colour,
                    class_="marker marker-start", data_t=t, data_event="start", **kw)
            )  # fmt: skip
            if act.get("end") is not None:
                parts.append(
                    _el("line", None, x1=_f(x(end)), x2=_f(x(end)), y1=agents_y, y2=height - 40, stroke=colour,
                        opacity=".45", class_="marker marker-end", data_t=end, data_event="end", **kw)
                )  # fmt: skip
    parts.append(_el("text", "Agents", x=8, y=agents_y - 6, class_="row-title"))
    for row, agent in enumerate(agents):
        y = agents_y + row * 24
        label = scrub(str(agent))
        parts.append(_el("text", label, x=8, y=y + 15, class_="label"))
        for start, stop, status in _bands(samples, agent):
            parts.append(
                _el("rect", f"{label}: {status} {stop - start:.1f} s", x=_f(x(start)), y=y,
                    width=_f(max(x(stop) - x(start), 1)), height=20, fill=STATUS_COLOURS.get(status, "#777"),
                    class_=f"band band-{status}", data_agent=label, data_status=status, data_start=start,
                    data_end=stop)
            )  # fmt: skip
    _line_chart(parts, "Sessions by state", sessions, x, sessions_y, 140, "sessions")
    _line_chart(parts, "Commands by status", commands, x, commands_y, 100, "commands")
    axis_y = height - 32
    parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{axis_y}" y2="{axis_y}" stroke="#333"/>')
    step = max(1, round(span / 10))
    tick = 0
    while tick <= span + 1e-6:
        parts.append(
            f'<text x="{x(t0 + tick):.1f}" y="{axis_y + 14}" class="tick" text-anchor="middle">{tick}s</text>'
        )
        tick += step
    parts.append("</svg>")
    return "\n".join(parts)
