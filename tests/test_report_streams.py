"""The report's VNC stream bands and "what users felt" sentences, from a real sandbox journal of agent-disconnect with
the stream monitor (tests/journal_fixtures/real/vnc-agent-disconnect.json), and from hostile extension shapes."""

import copy
import re

import pytest
from journal_fixtures.recorded import load

from chaosstream.journal.report import render_html, render_markdown
from chaosstream.journal.report.model import build


@pytest.fixture(scope="module")
def journal():
    return load("vnc-agent-disconnect")


def test_a_band_per_session_and_one_sentence_each(journal):
    (ext,) = [e for e in journal["extensions"] if e["name"] == "chaosstream-streams"]
    data = build(journal)
    assert set(data.streams["bands"]) == set(ext["events"])
    html = render_html(data)
    for session, rows in data.streams["bands"].items():
        states = [state for _, _, state in rows]
        assert states[0] in ("connecting", "up") and "up" in states
        assert "reconnecting" in states or "gap" in states, (session, states)  # the restart shows
        drawn = re.findall(rf'data-session="{re.escape(session)}" data-state="(\w+)"', html)
        assert drawn == states
    sentences = data.stream_sentences()
    assert len(sentences) == len(ext["events"])
    for sentence in sentences:
        assert re.search(r"the user lost the desktop for \d+(\.\d+)? s in \d+ interruption", sentence)
        assert sentence in html and sentence in render_markdown(data)


@pytest.mark.parametrize(
    "junk",
    [None, [], "x", {"events": "x"}, {"events": {"s": [{"t": "now", "state": "up"}, {"t": 1e30, "state": "up"}]}},
     {"events": {"s": [{"t": 1.0, "state": "<script>"}]}, "report": {"sessions": {"s": {"outage_s": "lots"}}}},
     {"events": {"<b>x</b>": [{"t": 1.0, "state": "up"}, {"t": 2.0, "state": "gap"}]}, "started": 5, "stopped": "y"}],
)  # fmt: skip
def test_hostile_stream_records_never_break_the_report(journal, junk):
    hostile = copy.deepcopy(journal)
    for ext in hostile["extensions"]:
        if ext["name"] == "chaosstream-streams":
            ext.clear()
            ext["name"] = "chaosstream-streams"
            if isinstance(junk, dict):
                ext.update(junk)
            else:
                ext["events"] = junk
    html = render_html(build(hostile))
    assert "<script>" not in html and "<b>x</b>" not in html
