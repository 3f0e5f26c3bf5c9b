"""`chaosstream history`: one page across runs of scheduled checks, OpenMetrics and Grafana annotations.

Every journal (files, or folders of them) is judged with the strict verdict and read with the report's
model, so the history shows exactly what each run's report shows. Runs are grouped by experiment title and
ordered by start time. Per experiment:

* the verdict of each run;
* each measured duration over time against its objective;
* flags: a **regression** when a measured duration lies above the median of the previous `window` runs
  that tested resilience (verdict 0 or 1; at least `MIN_PRIOR` of them) by more than `max(RATIO x median, MIN_MARGIN_S)`; a **new finding** when a
  run deviates (verdict 1) on a probe that did not decide a deviation in the previous `window` runs;
  **over objective** when a duration exceeds its objective.

`--openmetrics` writes the latest run of each experiment as OpenMetrics text (verdict, measured seconds and
objective per probe, fault start/end timestamps, flags), replaced atomically so a textfile collector never
reads half a file; `--grafana-annotations` writes every fault window as Grafana annotations (epoch ms).

Total like the verdict: unreadable files are runs with verdict 7, never a crash.
"""

import json
import os
import re
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from html import escape
from typing import Any, Dict, List, Optional, Sequence, Tuple

import click

from chaosstream.journal.report.model import FaultWindow, Measurement, ReportData, build, seconds_text
from chaosstream.journal.report.render import CSS
from chaosstream.journal.report.svg import CHAR_W, FONT, text_width
from chaosstream.journal.schema import clean_text, is_mapping
from chaosstream.journal.verdict import DEVIATED, LABELS, NO_EVIDENCE, PASSED, judge_file
from chaosstream.timeutil import clock

__all__ = [
    "RunRecord",
    "collect",
    "load_run",
    "record_of",
    "analyse",
    "render_history_html",
    "render_history_markdown",
    "openmetrics",
    "pass_ratio",
    "grafana_annotations",
    "history_command",
    "slug",
    "RATIO",
    "MIN_MARGIN_S",
    "MIN_PRIOR",
    "MAX_JOURNALS",
]

RATIO, MIN_MARGIN_S, MIN_PRIOR = 0.25, 0.1, 3
MAX_JOURNALS = 5000
VERDICT_COLOURS = {0: "#2e9d4f", 1: "#d2342c", 2: "#e0a21b", 3: "#e0a21b", 4: "#7c8a99", 5: "#8a3fb5",
                   6: "#7c8a99", 7: "#b9b9b9"}  # fmt: skip


@dataclass
class RunRecord:
    """One journal, as the history needs it."""

    path: str
    title: str
    code: int
    summary: str
    start_t: Optional[float]
    end_t: Optional[float]
    measures: Dict[str, Measurement] = field(default_factory=dict)  # "probe measure [phase]" -> value
    deciding: List[str] = field(default_factory=list)  # probe names that decided a deviation
    faults: List[FaultWindow] = field(default_factory=list)
    flags: List[str] = field(default_factory=list)
    regressions: List[str] = field(default_factory=list)  # measure keys flagged

    @property
    def label(self) -> str:
        return LABELS[self.code]

    @property
    def when(self) -> str:
        return "unknown time" if self.start_t is None else clock(self.start_t, 0, date=True)


def _measure_key(m: Measurement) -> str:
    phase = "" if m.phase == "method" else f" [{m.phase}]"
    return f"{m.activity} {m.key}{phase}"


def collect(paths: Sequence[str]) -> List[str]:
    """Journal files: each PATH that is a file, and the `*.json` files under each folder (recursively,
    sorted) except JSON lists (such as the `--grafana-annotations` file kept next to the journals); at
    most MAX_JOURNALS."""
    found: List[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                found += [
                    os.path.join(root, f)
                    for f in sorted(files)
                    if f.endswith(".json") and not _is_list(os.path.join(root, f))
                ]
        elif os.path.exists(path):
            found.append(path)
    return found[:MAX_JOURNALS]


def _is_list(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return False
    return head.startswith(b"[")


def load_run(path: str) -> RunRecord:
    """Judge and read one journal; never raises (an unreadable file is verdict 7)."""
    try:
        journal, verdict = judge_file(path)
        return record_of(build(journal if is_mapping(journal) else {}, verdict), path)
    except Exception as exc:  # a bug must not lose the history
        return RunRecord(path, "unreadable", NO_EVIDENCE, f"internal error {type(exc).__name__}", None, None)


def record_of(data: ReportData, path: str = "") -> RunRecord:
    """The history's view of one report."""
    verdict = data.verdict
    record = RunRecord(
        path,
        data.title,
        verdict.code,
        verdict.scrub(verdict.summary),
        data.start_t,
        data.end_t,
        faults=data.faults,
    )
    for m in data.measurements:
        record.measures.setdefault(_measure_key(m), m)
    if verdict.code == DEVIATED:
        record.deciding = sorted({f.name for f in verdict.deciding})
    return record


def pass_ratio(runs: List[RunRecord], window: int) -> Tuple[int, int]:
    """(passed, tested) over the last `window` runs that tested resilience (verdict 0 or 1)."""
    tested = [r for r in runs if r.code in (PASSED, DEVIATED)][-window:]
    return sum(1 for r in tested if r.code == PASSED), len(tested)


def analyse(runs: List[RunRecord], window: int = 10) -> Dict[str, List[RunRecord]]:
    """Group by experiment, order by start, and set each run's flags. Returns title -> runs."""
    groups: Dict[str, List[RunRecord]] = {}
    for run in runs:
        groups.setdefault(run.title, []).append(run)
    for group in groups.values():
        group.sort(key=lambda r: (r.start_t is None, r.start_t or 0.0, r.path))
        for index, run in enumerate(group):
            # only runs that tested resilience (verdict 0 or 1) measure StreamSpace: the others neither
            # set the baseline nor regress
            previous = [p for p in group[:index] if p.code in (PASSED, DEVIATED)][-window:]
            if run.code not in (PASSED, DEVIATED):
                continue
            for key, m in run.measures.items():
                if m.seconds is not None and m.objective is not None and m.seconds > m.objective:
                    run.flags.append(
                        f"{key}: {seconds_text(m.seconds)} s is over its objective {m.objective:g} s"
                    )
                prior = [p.measures[key].seconds for p in previous if key in p.measures]
                prior = [v for v in prior if v is not None]
                if m.seconds is None or len(prior) < MIN_PRIOR:
                    continue
                median = statistics.median(prior)
                limit = median + max(RATIO * median, MIN_MARGIN_S)
                if m.seconds > limit:
                    run.regressions.append(key)
                    run.flags.append(
                        f"REGRESSION {key}: {seconds_text(m.seconds)} s, median of the previous {len(prior)} runs "
                        f"{seconds_text(median)} s (limit {seconds_text(limit)} s)"
                    )
            if run.code == DEVIATED:
                known = {name for p in previous if p.code == DEVIATED for name in p.deciding}
                new = [name for name in run.deciding if name not in known]
                if new:
                    run.flags.append(f"NEW FINDING: {', '.join(new)} deviated ({run.summary})")
    return groups


# -- HTML --------------------------------------------------------------------------------------------
CW, CH, CL, CR, CT, CB = 820, 180, 92, 16, 14, 46  # chart size and margins


def _chart(key: str, runs: List[RunRecord]) -> str:
    """One measured duration over the runs (x: run order, labelled with UTC times), objective dashed."""
    values = [(i, r.measures[key]) for i, r in enumerate(runs) if key in r.measures]
    seconds = [m.seconds for _, m in values if m.seconds is not None]
    objectives = [m.objective for _, m in values if m.objective is not None]
    top = max(seconds + objectives + [0.001]) * 1.1
    n = max(len(runs) - 1, 1)
    label_w = text_width("12-01 15:23:00") + 16
    inset = label_w / 2

    def x(i: int) -> float:
        return CL + inset + i / n * (CW - CL - CR - 2 * inset)

    def y(v: float) -> float:
        return CT + (1 - v / top) * (CH - CT - CB)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {CW} {CH}" width="{CW}" height="{CH}" '
        f'data-measure="{escape(key, quote=True)}">',
        f"<style>text{{font-family:Helvetica,Arial,sans-serif;font-size:{FONT}px}}.tick{{fill:#333}}"
        ".obj{stroke:#b3261e;stroke-dasharray:6 4;stroke-width:1.5}.line{fill:none;stroke:#3466c2;stroke-width:2}"
        ".grid{stroke:#dde1e6}</style>",
        f'<rect x="{CL}" y="{CT}" width="{CW - CL - CR}" height="{CH - CT - CB}" fill="#f6f7f9"/>',
    ]
    for frac in (0, 0.5, 1):
        v = top * frac
        parts.append(f'<line class="grid" x1="{CL}" x2="{CW - CR}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>')
        parts.append(f'<text class="tick" x="{CL - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3g} s</text>')
    every = max(1, int(-(-label_w * len(runs) // (CW - CL - CR))))
    for i, run in enumerate(runs):
        if i % every == 0 and run.start_t is not None:
            parts.append(
                f'<text class="tick" x="{x(i):.1f}" y="{CH - CB + 18}" text-anchor="middle">'
                f"{escape(clock(run.start_t, 0, date=True)[5:])}</text>"
            )
    parts.append(f'<text class="tick" x="{CW - CR}" y="{CH - 6}" text-anchor="end">run start (UTC)</text>')
    if objectives:
        obj = objectives[-1]
        parts.append(f'<line class="obj" x1="{CL}" x2="{CW - CR}" y1="{y(obj):.1f}" y2="{y(obj):.1f}"/>')
        note = f"objective {obj:g} s"
        label_y = y(obj) - 5 if y(obj) - 5 - FONT >= CT + 2 else y(obj) + FONT + 3  # clear of the line
        parts.append(
            f'<text class="tick" x="{CL + 6}" y="{label_y:.1f}" fill="#b3261e">{escape(note)}</text>'
        )
    points = [(x(i), y(m.seconds)) for i, m in values if m.seconds is not None]
    if len(points) > 1:
        parts.append(
            '<polyline class="line" points="' + " ".join(f"{a:.1f},{b:.1f}" for a, b in points) + '"/>'
        )
    for i, m in values:
        run = runs[i]
        tip = (
            f"{run.when}: "
            + ("not reached" if m.seconds is None else f"{seconds_text(m.seconds)} s")
            + f", verdict {run.code} {run.label}"
        )
        if m.seconds is None:  # the condition was never reached: a cross on the top edge (grey: no test)
            cross = "#d2342c" if run.code in (PASSED, DEVIATED) else "#7c8a99"
            parts.append(
                f'<g class="missed" data-run="{i}"><title>{escape(tip)}</title>'
                f'<path d="M{x(i) - 6:.1f},{CT - 2} l12,12 m0,-12 l-12,12" stroke="{cross}" stroke-width="2.5"/></g>'
            )
            continue
        regression = key in run.regressions
        colour = (
            "#d2342c" if regression or (m.objective is not None and m.seconds > m.objective) else "#3466c2"
        )
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(m.seconds):.1f}" r="{6 if regression else 4}" fill="{colour}" '
            f'stroke="{"#000" if regression else colour}" stroke-width="{2 if regression else 0}" '
            f'class="point{" regression" if regression else ""}" data-run="{i}" data-seconds="{m.seconds}">'
            f"<title>{escape(tip)}</title></circle>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _strip(runs: List[RunRecord]) -> str:
    """The verdict of each run: one coloured cell per run with its code."""
    n = len(runs)
    cell = min(40.0, (CW - CL - CR) / max(n, 1))
    height = 44
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {CW} {height}" width="{CW}" height="{height}">',
        f"<style>text{{font-family:Helvetica,Arial,sans-serif;font-size:{FONT}px}}</style>",
        '<text x="8" y="26" font-weight="bold">verdicts</text>',
    ]
    for i, run in enumerate(runs):
        x = CL + i * cell
        parts.append(
            f'<rect x="{x:.1f}" y="6" width="{cell - 3:.1f}" height="30" fill="{VERDICT_COLOURS.get(run.code, "#777")}" '
            f'class="verdict-cell" data-code="{run.code}"><title>{escape(run.when)}: {run.code} {run.label}</title></rect>'
        )
        if cell >= CHAR_W + 6:
            parts.append(
                f'<text x="{x + (cell - 3) / 2:.1f}" y="26" text-anchor="middle" fill="#fff">{run.code}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts)


def render_history_html(groups: Dict[str, List[RunRecord]], window: int) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>chaosstream history</title><style>{CSS}</style></head><body>",
        "<h1>Run history</h1>",
        f'<p class="muted">{sum(len(g) for g in groups.values())} runs, {len(groups)} experiment(s); all times UTC. '
        f"A regression is a duration above the median of the previous {window} runs that tested resilience "
        f"(verdict 0 or 1; at least {MIN_PRIOR}) by more "
        f"than {RATIO:.0%} of it and at least {MIN_MARGIN_S:g} s; a new finding is a deviation on a probe that did not "
        "deviate in those runs.</p>",
    ]
    for title, runs in groups.items():
        counts = {code: sum(1 for r in runs if r.code == code) for code in sorted({r.code for r in runs})}
        flagged = [r for r in runs if r.flags]
        parts += [
            f"<h2>{escape(title)}</h2>",
            "<p>" + escape(", ".join(f"{n} {LABELS[c]}" for c, n in counts.items())) + "</p>",
        ]
        passed, tested = pass_ratio(runs, window)
        if tested:
            parts.append(
                f"<p><strong>Pass rate: {passed / tested:.0%}</strong> ({passed} of the last {tested} runs that "
                "tested resilience passed; runs with verdicts 2-7 tested nothing and are not counted)</p>"
            )
        latest = runs[-1]
        cls = "v0" if latest.code == PASSED and not latest.flags else "vbad"
        parts.append(
            f'<div class="verdict {cls}"><strong>Latest run {escape(latest.when)}: verdict {latest.code} '
            f"({escape(latest.label)})</strong>: {escape(latest.summary)}"
            + (
                '<ul class="small">' + "".join(f"<li>{escape(f)}</li>" for f in latest.flags) + "</ul>"
                if latest.flags
                else ""
            )
            + "</div>"
        )
        parts.append("<figure>" + _strip(runs) + "</figure>")
        parts.append(
            '<p class="muted small">Charts: a blue dot per run is the measured duration; a red dot is over its '
            "objective; a ringed dot is a regression; a red cross on the top edge means the condition was not "
            "reached (the probe failed), a grey one that it was not reached in a run that tested nothing (verdict "
            "2-7: such runs are not compared either); the dashed red line is the objective. Hover a point for its run.</p>"
        )
        keys = sorted({k for r in runs for k in r.measures}, key=lambda k: ("[" in k, k))
        for key in keys:
            parts.append(f"<h3>{escape(key)}</h3><figure>{_chart(key, runs)}</figure>")
        parts.append("<h3>Flags</h3>")
        parts.append(
            '<ul class="items">'
            + "".join(f"<li>{escape(r.when)}: {escape(f)}</li>" for r in flagged for f in r.flags)
            + "</ul>"
            if flagged
            else '<p class="muted">None.</p>'
        )
        head = ["run start (UTC)", "verdict"] + keys + ["journal"]
        rows = []
        for r in runs:
            row = [r.when, f"{r.code} {r.label}"]
            for k in keys:
                m = r.measures.get(k)
                row.append(
                    ""
                    if m is None
                    else "not reached"
                    if m.seconds is None
                    else f"{seconds_text(m.seconds)} s"
                )
            rows.append(row + [os.path.basename(r.path)])
        parts.append(
            "<h3>Runs</h3><table><tr>" + "".join(f'<th class="long">{escape(h)}</th>' for h in head) + "</tr>"
        )
        for r, row in zip(runs, rows, strict=True):
            cells = []
            for i, c in enumerate(row):
                bad = (i == 1 and r.code != PASSED) or (
                    2 <= i < len(row) - 1 and keys[i - 2] in r.regressions
                )
                cls = "long bad" if bad else "long"
                cells.append(f'<td class="{cls}">{escape(c)}</td>')
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_history_markdown(groups: Dict[str, List[RunRecord]], window: int) -> str:
    out = [
        "# Run history",
        "",
        f"All times UTC; regressions against the median of the previous {window} runs.",
        "",
    ]
    for title, runs in groups.items():
        keys = sorted({k for r in runs for k in r.measures}, key=lambda k: ("[" in k, k))
        out += [f"## {title}", "", "| run start | verdict | " + " | ".join(keys) + " | flags |",
                "|" + "---|" * (len(keys) + 3)]  # fmt: skip
        for r in runs:
            cells = [r.when, f"{r.code} {r.label}"]
            for k in keys:
                m = r.measures.get(k)
                cells.append(
                    "" if m is None else "not reached" if m.seconds is None else f"{seconds_text(m.seconds)}"
                )
            cells.append("; ".join(r.flags))
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
    return "\n".join(out) + "\n"


# -- OpenMetrics and Grafana ------------------------------------------------------------------------------
_NAME_RE = re.compile(r"[^a-zA-Z0-9_]")


def slug(title: str) -> str:
    """A label-friendly name of an experiment title."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-") or "experiment"


def _lv(value: str) -> str:
    return clean_text(value, 200).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**kw: str) -> str:
    return "{" + ",".join(f'{k}="{_lv(v)}"' for k, v in kw.items()) + "}"


def _num_text(value: float) -> str:
    return repr(float(value))


def openmetrics(groups: Dict[str, List[RunRecord]], window: int = 10) -> str:
    """The latest run of each experiment as OpenMetrics text (ends with `# EOF`)."""
    families: Dict[str, Tuple[str, str, List[str]]] = {
        "chaosstream_verdict_code": ("", "Strict verdict of the latest run: 0 passed, 1 deviated (a finding), 2-7 the run says nothing about resilience.", []),
        "chaosstream_run_passed": ("", "1 when the latest run passed (verdict 0).", []),
        "chaosstream_run_start_timestamp_seconds": ("seconds", "Start of the latest run (epoch).", []),
        "chaosstream_probe_measured_seconds": ("seconds", "A duration the latest run measured (probe output key ending in _s).", []),
        "chaosstream_probe_objective_seconds": ("seconds", "The objective of that duration, resolved from the experiment configuration.", []),
        "chaosstream_probe_regression": ("", "1 when the duration is a regression against the previous runs.", []),
        "chaosstream_fault_start_timestamp_seconds": ("seconds", "Injection of a fault by the latest run (epoch).", []),
        "chaosstream_fault_end_timestamp_seconds": ("seconds", "Heal or expiry of that fault (epoch).", []),
        "chaosstream_pass_ratio": ("", "Share of the last --window runs that tested resilience (verdict 0 or 1) and passed.", []),
        "chaosstream_new_finding": ("", "1 when the latest run deviated on a probe that did not deviate in the previous runs.", []),
    }  # fmt: skip

    def add(family: str, labels: str, value: float) -> None:
        families[family][2].append(f"{family}{labels} {_num_text(value)}")

    for title, runs in groups.items():
        run, exp = runs[-1], slug(title)
        add("chaosstream_verdict_code", _labels(experiment=exp, title=title, verdict=run.label), run.code)
        add("chaosstream_run_passed", _labels(experiment=exp), 1 if run.code == PASSED else 0)
        passed, tested = pass_ratio(runs, window)
        if tested:
            add("chaosstream_pass_ratio", _labels(experiment=exp), passed / tested)
        add(
            "chaosstream_new_finding",
            _labels(experiment=exp),
            1 if any(f.startswith("NEW FINDING") for f in run.flags) else 0,
        )
        if run.start_t is not None:
            add("chaosstream_run_start_timestamp_seconds", _labels(experiment=exp), run.start_t)
        for key, m in run.measures.items():
            labels = _labels(experiment=exp, probe=m.activity, measure=m.key, phase=m.phase)
            if m.seconds is not None:
                add("chaosstream_probe_measured_seconds", labels, m.seconds)
                add("chaosstream_probe_regression", labels, 1 if key in run.regressions else 0)
            if m.objective is not None:
                add("chaosstream_probe_objective_seconds", labels, m.objective)
        for index, fault in enumerate(run.faults):
            if not fault.injected:
                continue
            labels = _labels(experiment=exp, action=fault.action, fault=fault.kind, index=str(index))
            add("chaosstream_fault_start_timestamp_seconds", labels, fault.start_t)
            if fault.end_t is not None:
                add("chaosstream_fault_end_timestamp_seconds", labels, fault.end_t)
    out: List[str] = []
    for name, (unit, help_text, samples) in families.items():
        out.append(f"# TYPE {name} gauge")
        if unit:
            out.append(f"# UNIT {name} {unit}")
        out.append(f"# HELP {name} {help_text}")
        out += list(dict.fromkeys(samples))  # a label set appears once
    return "\n".join(out + ["# EOF"]) + "\n"


def grafana_annotations(groups: Dict[str, List[RunRecord]]) -> List[Dict[str, Any]]:
    """Every fault window as a Grafana annotation: {time, timeEnd, tags, text}, times in epoch ms."""
    out: List[Dict[str, Any]] = []
    for title, runs in groups.items():
        for run in runs:
            for fault in run.faults:
                start = int(round(fault.start_t * 1000))
                end = int(round((fault.end_t if fault.end_t is not None else fault.start_t) * 1000))
                state = "injected" if fault.injected else "not-injected"
                text = f"{title}: {fault.sentence(lambda t: clock(t, 1))} - verdict {run.code} {run.label}"
                out.append({"time": start, "timeEnd": max(end, start),
                            "tags": ["chaosstream", slug(title), f"verdict-{run.label}", state], "text": text})  # fmt: skip
    return sorted(out, key=lambda a: a["time"])


def _write_atomic(path: str, text: str) -> None:
    """Write next to `path` and rename: readers (a textfile collector) never see half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".chaosstream-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@click.command("history")
@click.argument("paths", metavar="PATH...", nargs=-1, required=True, type=click.Path())
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write the history page here.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), help="Write it as Markdown here.")
@click.option("--openmetrics", "om_path", type=click.Path(dir_okay=False),
              help="Write the latest run of each experiment as OpenMetrics text (textfile collector, Pushgateway).")  # fmt: skip
@click.option("--grafana-annotations", "grafana_path", type=click.Path(dir_okay=False),
              help="Write every fault window as Grafana annotation JSON.")  # fmt: skip
@click.option("--window", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Previous runs a duration is compared with (their median).")  # fmt: skip
def history_command(
    paths: Tuple[str, ...], html_path: Optional[str], md_path: Optional[str], om_path: Optional[str],
    grafana_path: Optional[str], window: int,
) -> None:  # fmt: skip
    """Render the history of runs: journals (PATH is a file, or a folder of `*.json` journals).

    Prints one line per experiment (latest verdict) and every flag of the latest runs; Markdown to stdout
    when no output file is given. Exits 0 when the outputs were written (whatever the verdicts: gate on
    `chaosstream verdict`), 1 when no journal was found or a file cannot be written.
    """
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        click.echo("No such file or folder: " + ", ".join(missing) + " (skipped).", err=True)
    files = collect(paths)
    if not files:
        click.echo("No journal found in " + ", ".join(paths) + ".", err=True)
        sys.exit(1)
    try:
        groups = analyse([load_run(f) for f in files], window)
        outputs = {
            html_path: render_history_html(groups, window) if html_path else "",
            md_path: render_history_markdown(groups, window) if md_path else "",
            om_path: openmetrics(groups, window) if om_path else "",
            grafana_path: json.dumps(grafana_annotations(groups), indent=1) + "\n" if grafana_path else "",
        }
    except Exception as exc:  # a bug must not end in a traceback
        click.echo(f"Cannot render the history (internal error {type(exc).__name__}).", err=True)
        sys.exit(1)
    try:
        for path, text in outputs.items():
            if path:
                _write_atomic(path, text)
    except OSError as exc:
        click.echo(f"Cannot write the history: {exc.strerror or exc}.", err=True)
        sys.exit(1)
    if not any(outputs):
        click.echo(render_history_markdown(groups, window))
    for title, runs in groups.items():
        latest = runs[-1]
        click.echo(f"{title}: {len(runs)} runs; latest {latest.when} verdict {latest.code} ({latest.label})")
        for flag in latest.flags:
            click.echo(f"  {flag}")
