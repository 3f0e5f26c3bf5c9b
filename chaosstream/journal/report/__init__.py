"""`chaosstream report`: a self-contained HTML/Markdown report of a Chaos Toolkit journal.

What an SRE pastes into the post-mortem: the target, the strict verdict (`chaosstream.journal.verdict`)
in words with the deciding probes, every measured duration (probe output keys ending in `_s`) beside its
resolved objective and margin, the fault windows (injection to heal or expiry, per agent hit), findings
about StreamSpace apart from problems of the run or the tool, the tables, and in HTML an inline SVG
timeline on the same UTC clock (`svg.py`). It prints on A4 and reads at 1280 px (checked in Chromium by
tests/test_report_browser.py). No network access, no external assets, no scripts.

Like the verdict it is total: any file (missing, empty, binary, malformed, any JSON shape) gives a report
that renders what it can and states the verdict.
"""

import os
import sys
from typing import Optional

import click

from chaosstream.journal.report.model import ReportData, build
from chaosstream.journal.report.render import render_html, render_markdown
from chaosstream.journal.report.svg import timeline_svg
from chaosstream.journal.schema import is_mapping
from chaosstream.journal.verdict import judge_file

__all__ = ["ReportData", "build", "render_html", "render_markdown", "timeline_svg", "report_command"]


def _write(path: str, text: str) -> None:
    # errors="replace": a character UTF-8 cannot carry must not lose the report
    with open(path, "w", encoding="utf-8", errors="replace") as fh:
        fh.write(text)


@click.command("report")
@click.argument("journal_path", metavar="JOURNAL", type=click.Path())
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write the HTML report here.")
@click.option(
    "--markdown", "md_path", type=click.Path(dir_okay=False), help="Write the Markdown report here."
)
def report_command(journal_path: str, html_path: Optional[str], md_path: Optional[str]) -> None:
    """Render a journal as a self-contained HTML and/or Markdown report (Markdown to stdout if neither).

    The report always states the verdict (see `chaosstream verdict --help` for the codes). Exits 0 when
    the report was written (whatever the verdict; use `chaosstream verdict` to gate), 1 when there is no
    journal object to report on (the report, stating verdict 7, is still written) or a file cannot be
    written.
    """
    try:
        journal, verdict = judge_file(journal_path)
        data = build(journal if is_mapping(journal) else {}, verdict)
        html = render_html(data) if html_path else ""
        link = None
        if html_path and md_path:
            link = os.path.relpath(html_path, os.path.dirname(os.path.abspath(md_path)) or ".")
        markdown = render_markdown(data, link) if md_path or not html_path else ""
    except Exception as exc:  # a bug must not end in a traceback
        click.echo(
            f"Cannot render the report of {journal_path} (internal error {type(exc).__name__}).", err=True
        )
        sys.exit(1)
    try:
        if html_path:
            _write(html_path, html)
        if md_path:
            _write(md_path, markdown)
        if not html_path and not md_path:
            click.echo(markdown)
    except OSError as exc:
        click.echo(f"Cannot write the report: {exc.strerror or exc}.", err=True)
        sys.exit(1)
    click.echo(f"verdict {verdict.code} ({verdict.label}); report written")
    if not is_mapping(journal):
        reason = verdict.deciding[0].message if verdict.deciding else verdict.summary
        click.echo(f"No readable journal: {reason.rstrip('.')}.", err=True)
        sys.exit(1)
