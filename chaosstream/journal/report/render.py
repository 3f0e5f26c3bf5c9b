"""HTML (self-contained: inline CSS and SVG, no scripts, no network) and Markdown renderings of a report."""

from html import escape
from typing import Any, List, Optional, Sequence

from chaosstream.journal.report.model import ReportData
from chaosstream.journal.report.svg import timeline_svg
from chaosstream.journal.schema import number
from chaosstream.journal.verdict import LABELS

__all__ = ["render_html", "render_markdown"]

_CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d2329;max-width:1160px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde1e6}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #dde1e6;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f2f4f7}.ok{color:#1f7a3c;font-weight:bold}.bad{color:#b3261e;font-weight:bold}
.verdict{padding:10px 14px;border-radius:6px;margin:12px 0}.v0{background:#e5f4ea}.vbad{background:#fbe9e7}
code,pre{font:12px ui-monospace,Menlo,Consolas,monospace}pre{background:#f6f7f9;padding:8px;overflow-x:auto}
.muted{color:#66707a}
"""


def _num(value: Any, digits: int = 3) -> str:
    seconds = number(value)
    return "-" if seconds is None else f"{seconds:.{digits}f}"


def _met(value: Optional[bool]) -> str:
    return "yes" if value is True else "no" if value is False else "-"


def _rows(data: ReportData) -> Sequence[Sequence[Any]]:
    hyp = [(r.phase, r.probe, r.tolerance, r.value, _met(r.met), r.status) for r in data.hypothesis]
    acts = [
        (a.phase, a.name, a.kind, _num(a.offset_s), _num(a.duration_s), a.status, a.error)
        for a in data.activities
    ]
    recs = [(r.phase, r.activity, r.key, _num(r.seconds)) for r in data.recoveries]
    return hyp, acts, recs


def _html_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], status_col: Optional[int] = None
) -> str:
    if not rows:
        return '<p class="muted">None.</p>'
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>"]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ""
            if i == status_col:
                cls = ' class="ok"' if cell in ("succeeded", "yes") else ' class="bad"'
            cells.append(f"<td{cls}>{escape(str(cell))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out + ["</table>"])


def render_html(data: ReportData) -> str:
    """A standalone HTML page with the verdict, tables and the inline SVG timeline."""
    v, scrub = data.verdict, data.verdict.scrub
    hyp, acts, recs = _rows(data)
    lines = "\n".join(escape(line) for line in v.lines())
    errors = (data.timeline or {}).get("errors") or {}
    parts: List[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(data.title)} - chaosstream report</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(data.title)}</h1>",
        f'<p class="muted">started {escape(data.start)} · duration {_num(data.duration_s, 1)} s · '
        f"journal status {escape(data.status)}</p>",
        f'<div class="verdict {"v0" if v.code == 0 else "vbad"}"><strong>Verdict {v.code} '
        f"({escape(LABELS[v.code])})</strong>: {escape(scrub(v.summary))}</div>",
        f"<pre>{lines}</pre>",
        "<h2>Steady-state hypothesis</h2>",
        _html_table(["phase", "probe", "tolerance", "value", "met", "status"], hyp, status_col=4),
        "<h2>Activities</h2>",
        _html_table(["phase", "activity", "type", "start (s)", "duration (s)", "status", "error"], acts, 5),
        f'<p class="muted">{data.omitted} more rows left out (see the journal).</p>' if data.omitted else "",
        "<h2>Measured durations</h2>",
        _html_table(["phase", "activity", "measure", "seconds"], recs),
        "<h2>Timeline</h2>",
        timeline_svg(data.timeline, scrub),
    ]
    if errors.get("count"):
        parts.append(
            f'<p class="muted">Timeline sampler errors: {errors["count"]} (last: '
            f"{escape(scrub(str(errors.get('last'))))})</p>"
        )
    if data.safety:
        signals = ", ".join(
            f"{s.get('signal')} during {s.get('phase')}" for s in data.safety.get("signals") or []
        )
        parts.append(
            f'<p class="muted">Safety control: signals: {escape(signals or "none")}; rollbacks replayed: '
            f"{escape(str(data.safety.get('rollbacks_replayed')))}; lock: "
            f"{escape(scrub(str(data.safety.get('lock'))))}</p>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return "_None._"

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def render_markdown(data: ReportData, html_link: Optional[str] = None) -> str:
    """The same content as Markdown; the timeline picture is only linked (GitHub strips inline SVG)."""
    v, scrub = data.verdict, data.verdict.scrub
    hyp, acts, recs = _rows(data)
    out = [
        f"# {data.title}",
        "",
        f"Started {data.start}, duration {_num(data.duration_s, 1)} s, journal status `{data.status}`.",
        "",
        f"**Verdict {v.code} ({LABELS[v.code]})**: {scrub(v.summary)}",
        "",
        "```",
        *(line.replace("```", "'''") for line in v.lines()),  # a name must not close the fence
        "```",
        "",
        "## Steady-state hypothesis",
        "",
        _md_table(["phase", "probe", "tolerance", "value", "met", "status"], hyp),
        "",
        "## Activities",
        "",
        _md_table(["phase", "activity", "type", "start (s)", "duration (s)", "status", "error"], acts),
        f"\n_{data.omitted} more rows left out (see the journal)._\n" if data.omitted else "",
        "## Measured durations",
        "",
        _md_table(["phase", "activity", "measure", "seconds"], recs),
        "",
        "## Timeline",
        "",
    ]
    samples = len((data.timeline or {}).get("samples") or [])
    if html_link:
        out.append(f"The timeline picture ({samples} samples) is in the [HTML report]({html_link}).")
    else:
        out.append(f"{samples} timeline samples recorded; render the HTML report to see the picture.")
    return "\n".join(out) + "\n"
