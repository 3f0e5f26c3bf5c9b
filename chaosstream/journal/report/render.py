"""HTML (self-contained: inline CSS and SVG, no scripts, no network) and Markdown renderings of a report.

Both carry the same content in the same order: verdict in words with the deciding probes, the target,
measured durations beside their objectives, the faults and their windows, (HTML) the timeline picture,
findings about StreamSpace apart from problems of the run or the tool, then the tables. Every time is UTC
wall-clock time, as on the picture's axis.
"""

from html import escape
from typing import Any, Dict, List, Optional, Sequence

from chaosstream.journal.report.model import ReportData, error_sentence, seconds_text
from chaosstream.journal.report.svg import MAX_AGENTS, MAX_SAMPLES, status_steps, timeline_svg
from chaosstream.journal.schema import clean_text, number
from chaosstream.journal.verdict import LABELS, PASSED
from chaosstream.timeutil import clock

__all__ = ["render_html", "render_markdown", "CSS"]

CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;padding:20px;color:#1d2329;
max-width:1200px}
h1{font-size:22px;margin:0 0 4px;overflow-wrap:anywhere}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #dde1e6}\nh2,h3,p,li,dt,dd,.verdict{overflow-wrap:anywhere}
table{border-collapse:collapse;margin:6px 0;width:100%}
td,th{border:1px solid #dde1e6;padding:3px 6px;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f2f4f7}td.num{text-align:right;white-space:nowrap}td.long{overflow-wrap:anywhere;min-width:6em}th.long{overflow-wrap:anywhere}.ok{color:#1f7a3c;font-weight:bold}
.bad{color:#b3261e;font-weight:bold}.verdict{padding:10px 14px;border-radius:6px;margin:12px 0}
.v0{background:#e5f4ea;border-left:6px solid #2e9d4f}.vbad{background:#fbe9e7;border-left:6px solid #d2342c}
.verdict ul{margin:6px 0 0;padding-left:20px}.verdict li{overflow-wrap:anywhere}
dl.target{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 14px;margin:6px 0}
dl.target dt{font-weight:bold}dl.target dd{margin:0;overflow-wrap:anywhere}
.muted{color:#66707a}.small{font-size:12px}ul.items li{overflow-wrap:anywhere;margin:2px 0}
figure{margin:8px 0}svg.timeline,svg.chart{width:100%;max-width:1100px;height:auto;display:block}
@page{size:A4;margin:12mm}
@media print{body{font-size:10pt;padding:0;max-width:none}table{font-size:8.5pt}td,th{padding:2px 4px}h2{break-after:avoid}tr,figure,.verdict{break-inside:avoid}}
"""


def _num(value: Any, digits: int = 3) -> str:
    seconds = number(value)
    return "-" if seconds is None else f"{seconds:.{digits}f}"


def _t(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else clock(value, digits)


def _met(value: Optional[bool]) -> str:
    return "yes" if value is True else "no" if value is False else "-"


def _when(data: ReportData) -> str:
    if data.start_t is None:
        return f"started {data.start or 'at an unknown time'}"
    text = f"{clock(data.start_t, 0, date=True)} UTC"
    if data.end_t is not None:
        text += f" to {clock(data.end_t, 0)}"
    if data.duration_s is not None:
        text += f" ({seconds_text(data.duration_s)} s)"
    return text


def _measure_rows(data: ReportData) -> List[List[str]]:
    rows = []
    for m in data.measurements:
        margin = m.margin
        if m.seconds is None:
            result = "not reached"
        elif margin is None:
            result = "no objective"
        else:
            result = (
                f"{seconds_text(margin)} s to spare" if margin >= 0 else f"{seconds_text(-margin)} s over"
            )
        rows.append(
            [
                m.activity,
                m.key,
                m.phase,
                _t(m.at_t),
                "-" if m.seconds is None else f"{seconds_text(m.seconds)} s",
                "-" if m.objective is None else f"{m.objective:g} s",
                result,
                m.objective_source or (m.error if m.seconds is None else ""),
            ]
        )
    return rows


_MEASURE_HEAD = ["probe", "measure", "phase", "at (UTC)", "measured", "objective", "margin", "objective from"]
_ACT_HEAD = ["phase", "activity", "type", "start (UTC)", "end (UTC)", "duration", "status", "error"]
_HYP_HEAD = ["phase", "probe", "tolerance", "value", "met", "status"]


def _act_rows(data: ReportData) -> List[List[str]]:
    return [
        [a.phase, a.name, a.kind, _t(a.start_t), _t(a.end_t), "-" if a.duration_s is None else f"{seconds_text(a.duration_s)} s",
         a.status, a.error]
        for a in data.activities
    ]  # fmt: skip


def _hyp_rows(data: ReportData) -> List[List[str]]:
    return [[r.phase, r.probe, r.tolerance, r.value, _met(r.met), r.status] for r in data.hypothesis]


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], status_col: Optional[int] = None,
                num_cols: Sequence[int] = (), long_cols: Sequence[int] = ()) -> str:  # fmt: skip
    if not rows:
        return '<p class="muted">None.</p>'
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>"]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = "num" if i in num_cols else "long" if i in long_cols else ""
            if i == status_col:
                good = cell in ("succeeded", "yes") or str(cell).endswith("to spare")
                cls += " ok" if good else " bad" if cell not in ("-", "no objective") else ""
            attr = f' class="{cls.strip()}"' if cls.strip() else ""
            cells.append(f"<td{attr}>{escape(str(cell))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out + ["</table>"])


def _deciding(data: ReportData) -> List[str]:
    v = data.verdict
    deciding = v.deciding
    if v.code == PASSED:  # the probes that showed it held; the actions are in the tables
        deciding = [f for f in deciding if f.kind == "probe"] or deciding
    items = [_line(f, v.scrub) for f in deciding[:25]]
    if len(deciding) > 25:
        items.append(f"... and {len(deciding) - 25} more")
    return items


def _safety_sentence(data: ReportData) -> str:
    s = data.safety
    if not s:
        return "The safety control was not enabled: no run lock, no signal handling record."
    signals = ", ".join(f"{x['signal']} during {x['phase']}" for x in s["signals"]) or "none"
    lock = s.get("lock_where") or "no lock recorded"
    state = []
    if s.get("lock_acquired"):
        state.append(f"acquired ({s['lock_acquired']})")
    if s.get("lock_released") is not None:
        state.append("released" if s["lock_released"] else "NOT released")
    replayed = {True: "yes", False: "no", None: "unknown"}[s.get("rollbacks_replayed")]
    return (
        f"Safety control: run lock {lock}{', ' + ', '.join(state) if state else ''}; signals received: "
        f"{signals}; rollbacks replayed by the control: {replayed}."
    )


def _headline(data: ReportData) -> str:
    v = data.verdict
    text = f"Verdict {v.code} ({LABELS[v.code]}): {v.scrub(v.summary)}"
    deciding = [f for f in v.deciding if f.kind != "run"] if v.code != PASSED else []
    if deciding:
        first = deciding[0]
        when = next((a.end_t for a in data.activities if a.name == first.name and a.end_t), None)
        message = error_sentence(first.message)
        text += f" Deciding: {first.name}" + (f" at {clock(when, 1)}" if when else "") + f": {message}"
    if data.notes:
        text += f" Timeline check: {data.notes[0]}"
    return text


def _problem_lines(data: Any, scrub: Any, errors: Dict[str, Any]) -> List[str]:
    """Problems of the run or the tool (never findings about StreamSpace), for HTML and Markdown alike."""
    sampler = []
    if errors.get("count"):
        sampler = [f"Timeline sampler errors: {errors['count']} (last: {scrub(str(errors.get('last')))})"]
    return (
        [f"Timeline check: {note}" for note in data.notes]
        + [_line(f, scrub) for f in data.problems]
        + [f"(not counted as a finding) {_line(f, scrub)}" for f in data.discounted]
        + sampler
    )


def render_html(data: ReportData) -> str:
    """A standalone HTML page; the same content as `render_markdown`, plus the timeline picture."""
    v, scrub = data.verdict, data.verdict.scrub
    errors = (data.timeline or {}).get("errors") or {}
    parts: List[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(data.title)} - chaosstream report</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(data.title)}</h1>",
        f'<p class="muted">{escape(_when(data))} · journal status {escape(data.status)} · all times UTC</p>',
        f'<div class="verdict {"v0" if v.code == 0 else "vbad"}"><strong>Verdict {v.code} '
        f"({escape(LABELS[v.code])})</strong>: {escape(scrub(v.summary))}",
        '<ul class="small">'
        + "".join(f"<li>{escape(line)}</li>" for line in _deciding(data))
        + "</ul></div>",
        "<h2>Target</h2>",
        '<dl class="target">'
        + "".join(f"<dt>{escape(k)}</dt><dd>{escape(val)}</dd>" for k, val in data.target)
        + "</dl>",
        "<h2>Measured durations and objectives</h2>",
        '<ul class="items">'
        + "".join(f"<li>{escape(m.sentence())}</li>" for m in data.measurements)
        + "</ul>"
        if data.measurements
        else '<p class="muted">No duration was measured.</p>',
        _html_table(_MEASURE_HEAD, _measure_rows(data), status_col=6, num_cols=(3, 4, 5), long_cols=(0, 7)),
        *(
            ["<h2>What users felt: VNC streams</h2>", _items(data.stream_sentences(), "")]
            if data.streams
            else []
        ),
        "<h2>Faults</h2>",
        '<ul class="items">'
        + "".join(
            f'<li class="{"" if f.injected else "bad"}">{escape(f.sentence(lambda t: clock(t, 2)))}'
            + (f" - agents affected: {escape(', '.join(f.agents))}" if f.agents else "")
            + "</li>"
            for f in data.faults
        )
        + "</ul>"
        if data.faults
        else '<p class="muted">No fault-injecting action recorded.</p>',
        "<h2>Timeline</h2>",
        "<figure>"
        + timeline_svg(
            data.timeline,
            scrub,
            data.activities,
            data.faults,
            _headline(data),
            v.code != PASSED,
            data.observations,
            data.streams,
        )
        + "</figure>",
        "<h2>Findings about StreamSpace</h2>",
        _items([_line(f, scrub) for f in data.findings], _no_findings(data)),
        "<h2>Problems with the run or the tool</h2>",
        _items(
            _problem_lines(data, scrub, errors),
            "None.",
        ),
        "<h2>Steady-state hypothesis</h2>",
        _html_table(_HYP_HEAD, _hyp_rows(data), status_col=4, long_cols=(1, 2, 3)),
        "<h2>Activities</h2>",
        _html_table(_ACT_HEAD, _act_rows(data), status_col=6, num_cols=(3, 4, 5), long_cols=(1, 7)),
        f'<p class="muted">{data.omitted} more rows left out (see the journal).</p>' if data.omitted else "",
        f'<p class="muted small">{escape(_safety_sentence(data))}</p>',
        "</body></html>",
    ]
    return "\n".join(parts)


def _line(finding: Any, scrub: Any) -> str:
    """A finding in words: name, where, what, and its simple measured values (structured outputs are in
    the tables, never shown as raw dicts), without the exception class prefixes chaoslib repeats."""
    f = finding
    where = f.phase if f.kind == f.phase else f"{f.phase} {f.kind}"
    simple = [f"{k}={v}" for k, v in f.values.items() if k != "tolerance" and not v.startswith(("{", "["))]
    text = f"{f.name} ({where}): {error_sentence(f.message)}"
    return clean_text(scrub(text + (f" - {', '.join(simple)}" if simple else "")), 2000)


def _agent_steps(data: ReportData) -> List[str]:
    """The agent status steps of the picture, in words."""
    samples = sorted((data.timeline or {}).get("samples") or [], key=lambda s: s["t"])[:MAX_SAMPLES]
    agents = sorted({a["agentId"] for s in samples for a in s.get("agents") or [] if a.get("agentId")})
    if not samples:
        return []
    end = samples[-1]["t"]
    out = []
    for agent in agents[:MAX_AGENTS]:
        steps = ", ".join(
            f"{status} {clock(a, 1)}-{clock(b, 1)}" for a, b, status in status_steps(samples, agent, end)
        )
        out.append(f"{data.verdict.scrub(agent)}: {steps}")
    return out


def _no_findings(data: ReportData) -> str:
    if data.verdict.code == PASSED:
        return "None: StreamSpace held every checked property."
    if data.discounted:
        return (
            f"None counted: verdict {data.verdict.code} ({LABELS[data.verdict.code]}) outranks the probe "
            "failures listed under the problems, so they say nothing about StreamSpace's resilience."
        )
    return f"None: verdict {data.verdict.code} ({LABELS[data.verdict.code]}) - see the problems below."


def _items(lines: Sequence[str], empty: str) -> str:
    if not lines:
        return f'<p class="muted">{escape(empty)}</p>'
    return '<ul class="items">' + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return "_None._"

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _md_list(lines: Sequence[str], empty: str) -> str:
    return "\n".join(f"- {line.replace('`', chr(39))}" for line in lines) if lines else f"_{empty}_"


def render_markdown(data: ReportData, html_link: Optional[str] = None) -> str:
    """The same content as Markdown; the timeline picture is only linked (GitHub strips inline SVG)."""
    v, scrub = data.verdict, data.verdict.scrub
    errors = (data.timeline or {}).get("errors") or {}
    out = [
        f"# {data.title}",
        "",
        f"{_when(data)}, journal status `{data.status}`; all times UTC.",
        "",
        f"**Verdict {v.code} ({LABELS[v.code]})**: {scrub(v.summary)}",
        "",
        _md_list(_deciding(data), "nothing decided"),
        "",
        "## Target",
        "",
        _md_table(["target", "value"], data.target),
        "",
        "## Measured durations and objectives",
        "",
        _md_list([m.sentence() for m in data.measurements], "No duration was measured."),
        "",
        _md_table(_MEASURE_HEAD, _measure_rows(data)),
        "",
        *(
            ["## What users felt: VNC streams", "", _md_list(data.stream_sentences(), ""), ""]
            if data.streams
            else []
        ),
        "## Faults",
        "",
        _md_list(
            [
                f.sentence(lambda t: clock(t, 2))
                + (f" - agents affected: {', '.join(f.agents)}" if f.agents else "")
                for f in data.faults
            ],  # fmt: skip
            "No fault-injecting action recorded.",
        ),
        "",
        "## Timeline",
        "",
    ]
    samples = len((data.timeline or {}).get("samples") or [])
    if html_link:
        out.append(f"The timeline picture ({samples} samples) is in the [HTML report]({html_link}).")
    else:
        out.append(f"{samples} timeline samples recorded; render the HTML report to see the picture.")
    out += ["", _md_list(_agent_steps(data), "No agent was sampled.")]
    out += [
        "",
        "## Findings about StreamSpace",
        "",
        _md_list([_line(f, scrub) for f in data.findings], _no_findings(data)),
        "",
        "## Problems with the run or the tool",
        "",
        _md_list(
            _problem_lines(data, scrub, errors),
            "None.",
        ),
        "",
        "## Steady-state hypothesis",
        "",
        _md_table(_HYP_HEAD, _hyp_rows(data)),
        "",
        "## Activities",
        "",
        _md_table(_ACT_HEAD, _act_rows(data)),
        f"\n_{data.omitted} more rows left out (see the journal)._\n" if data.omitted else "",
        "",
        _safety_sentence(data),
    ]
    return "\n".join(out) + "\n"
