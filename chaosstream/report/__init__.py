"""`chaosstream report`: a self-contained HTML/Markdown report of a Chaos Toolkit journal.

It shows the strict verdict (`chaosstream.verdict`), the hypothesis table, activity timings, every
measured duration (probe output keys ending in `_s`) and, in HTML, an inline SVG timeline built from the
`chaosstream-timeline` journal extension. No network access, no external assets, no scripts.
"""

import os
import sys
from typing import Optional

import click

from chaosstream.report.model import ReportData, build
from chaosstream.report.render import render_html, render_markdown
from chaosstream.report.svg import timeline_svg
from chaosstream.verdict import load_journal

__all__ = ["ReportData", "build", "render_html", "render_markdown", "timeline_svg", "report_command"]


@click.command("report")
@click.argument("journal_path", metavar="JOURNAL", type=click.Path(dir_okay=False))
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write the HTML report here.")
@click.option(
    "--markdown", "md_path", type=click.Path(dir_okay=False), help="Write the Markdown report here."
)
def report_command(journal_path: str, html_path: Optional[str], md_path: Optional[str]) -> None:
    """Render a journal as a self-contained HTML and/or Markdown report (Markdown to stdout if neither).

    Exits 0 when the report was written (whatever the verdict; use `chaosstream verdict` to gate), 1 when
    the journal cannot be read or a file cannot be written.
    """
    journal = load_journal(journal_path)
    if not journal:
        click.echo(f"No readable journal at {journal_path}: did `chaos run` finish?", err=True)
        sys.exit(1)
    data = build(journal)
    try:
        if html_path:
            with open(html_path, "w", encoding="utf-8") as fh:
                fh.write(render_html(data))
        link = None
        if html_path and md_path:
            link = os.path.relpath(html_path, os.path.dirname(os.path.abspath(md_path)) or ".")
        if md_path:
            with open(md_path, "w", encoding="utf-8") as fh:
                fh.write(render_markdown(data, link))
        if not html_path and not md_path:
            click.echo(render_markdown(data))
    except OSError as exc:
        click.echo(f"Cannot write the report: {exc}", err=True)
        sys.exit(1)
    click.echo(f"verdict {data.verdict.code} ({data.verdict.label}); report written")
