"""`chaosstream report`: self-contained HTML/Markdown from a REAL journal with a recorded timeline."""

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest
from click.testing import CliRunner
from helpers.browser import chromium
from journal_fixtures import act, experiment, run_chaos
from journal_fixtures.fake_api import PASSWORD, USERNAME, FakeStreamSpace
from lxml import etree, html

from chaosstream.journal.report import build, render_html, report_command

SVG_NS = "{http://www.w3.org/2000/svg}"
INTERVAL = 0.1


@pytest.fixture(scope="module")
def partition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Dict[str, Any], Path]]:
    """A game day against the fake API: agent-b is cut off, measured, then healed by the rollback."""
    tmp = tmp_path_factory.mktemp("partition")
    fake = FakeStreamSpace(tmp / "state.json").start()
    state = str(tmp / "state.json")
    method = [
        act("partition-agent", "set_agent", state_file=state, agent_id="agent-b", status="offline", hold=0.8),
        act("wait-agent-offline", "recovered", "probe", elapsed_s=0.7),
    ]
    heal = act("heal-partition", "set_agent", state_file=state, agent_id="agent-b", status="online", hold=0.4)
    controls = [
        {
            "name": "timeline",
            "provider": {
                "type": "python",
                "module": "chaosstream.controls.timeline",
                "arguments": {"interval": INTERVAL},
            },
        }
    ]
    extra = {
        "configuration": {"streamspace_api_url": fake.url},
        "secrets": {"streamspace": {"username": USERNAME, "password": PASSWORD}},
    }
    exp = experiment(
        "Heartbeat timeout under partition", tmp, method, rollbacks=[heal], controls=controls, extra=extra
    )
    try:
        rc, journal, log = run_chaos(tmp, exp)
    finally:
        fake.stop()
    assert rc == 0, log
    path = tmp / "journal.json"
    path.write_text(json.dumps(journal))
    yield journal, path


@pytest.fixture(scope="module")
def rendered(
    partition: Tuple[Dict[str, Any], Path], tmp_path_factory: pytest.TempPathFactory
) -> Dict[str, Path]:
    out = tmp_path_factory.mktemp("report")
    html_path, md_path = out / "report.html", out / "report.md"
    result = CliRunner().invoke(
        report_command, [str(partition[1]), "--html", str(html_path), "--markdown", str(md_path)]
    )
    assert result.exit_code == 0, result.output
    return {"html": html_path, "md": md_path}


def _svg(html_path: Path) -> Any:
    doc = html.parse(str(html_path))
    svg = doc.getroot().find(".//svg")
    assert svg is not None, "no inline <svg> in the report"
    # re-parse the SVG on its own with the XML parser, as a browser would treat it
    return etree.fromstring(etree.tostring(svg, method="xml"))


def test_html_is_self_contained(rendered: Dict[str, Path]) -> None:
    text = rendered["html"].read_text()
    assert "<script" not in text and "<link" not in text and "@import" not in text
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    target = {
        u for u in urls if u.startswith("http://127.0.0.1:")
    }  # the API URL, as text in the target block
    assert urls - target <= {"http://www.w3.org/2000/svg"}, urls
    assert all(f"<dd>{u}</dd>" in text for u in target)
    assert "href=" not in text
    assert not re.search(r"\bsrc=", text)
    assert PASSWORD not in text


def test_report_content(rendered: Dict[str, Path], partition: Tuple[Dict[str, Any], Path]) -> None:
    text = rendered["html"].read_text()
    for needle in (
        "Verdict 0 (passed)",
        "service-healthy",
        "partition-agent",
        "heal-partition",
        "elapsed_s",
        "0.700",
    ):
        assert needle in text
    md = rendered["md"].read_text()
    assert "**Verdict 0 (passed)**" in md and "| wait-agent-offline | elapsed_s | method |" in md
    assert "wait-agent-offline elapsed_s: 0.700 s - no objective" in md
    assert "| before | service-healthy | true | true | yes | succeeded |" in md
    assert "[HTML report](report.html)" in md and "<svg" not in md


def test_svg_shows_the_partition_window(
    rendered: Dict[str, Path], partition: Tuple[Dict[str, Any], Path]
) -> None:
    svg = _svg(rendered["html"])

    def span(name: str) -> Tuple[float, float]:
        rect = svg.find(f".//{SVG_NS}rect[@class='activity status-succeeded'][@data-name='{name}']")
        assert rect is not None, name
        return float(rect.get("data-start")), float(rect.get("data-end"))

    (t_part, _), (t_heal, t_heal_end) = span("partition-agent"), span("heal-partition")
    offline = svg.findall(f".//{SVG_NS}rect[@data-agent='agent-b'][@data-status='offline']")
    assert len(offline) == 1, "exactly one offline band for the partitioned agent"
    band = offline[0]
    b0, b1 = float(band.get("data-start")), float(band.get("data-end"))
    # sampled every INTERVAL s: the band starts within one sample of the partition and ends by the heal
    assert t_part - INTERVAL <= b0 <= t_heal, (t_part, b0, t_heal)
    assert t_heal <= b1 <= t_heal_end + 2 * INTERVAL, (t_heal, b1, t_heal_end)
    # the picture agrees with the data: the band starts after the partition's start on the x axis
    part = svg.find(f".//{SVG_NS}rect[@data-name='partition-agent']")
    assert float(part.get("x")) - 15 <= float(band.get("x"))
    assert not svg.findall(f".//{SVG_NS}rect[@data-agent='agent-a'][@data-status='offline']")
    states = {
        p.get("data-name") for p in svg.findall(f".//{SVG_NS}path") if "sessions" in (p.get("class") or "")
    }
    assert states == {"running", "pending"}
    labels = {t.text for t in svg.iter(f"{SVG_NS}text")}
    assert {"partition-agent", "heal-partition", "agent-a", "agent-b", "running", "pending"} <= labels


def test_report_without_timeline(tmp_path: Path) -> None:
    _, journal, _ = run_chaos(tmp_path, experiment("plain", tmp_path, [act("noop", "value")]))
    page = render_html(build(journal))
    assert "No timeline recorded" in page and "Verdict 0" in page


def test_report_missing_journal(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        report_command, [str(tmp_path / "none.json"), "--markdown", str(tmp_path / "r.md")]
    )
    assert result.exit_code == 1 and "No readable journal" in result.output


def test_renders_in_headless_chromium(rendered: Dict[str, Path], tmp_path: Path) -> None:
    browser = chromium()
    png = tmp_path / "report.png"
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={png}", "--window-size=1200,1600", rendered["html"].resolve().as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert png.exists(), proc.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a blank 1200x1600 page is far smaller


def test_recorded_runs_objectives_faults_and_cross_checks() -> None:
    """From REAL sandbox journals: objectives resolved as the run resolved them, fault windows from the
    action outputs, and the three-agent contradiction (the picture shows the partitioned agent offline
    while the detection probe, watching the newest agent, failed) called out instead of left to the reader."""
    from journal_fixtures.recorded import load

    from chaosstream.journal.verdict import DEVIATED, NOT_INJECTED
    from chaosstream.timeutil import parse_timestamp

    passed = build(load("passed"))
    by_name = {m.activity: m for m in passed.measurements if m.phase == "method"}
    assert by_name["offline-detection-time"].objective == 4.0  # ${offline_threshold} of the sandbox run
    assert by_name["recovery-time"].objective == 5.0  # ${reconnect_objective}
    assert "as the run resolved it" in by_name["recovery-time"].objective_source
    assert by_name["recovery-time"].sentence().endswith("s to spare")
    (fault,) = passed.faults
    journal = load("passed")
    heal = next(r for r in journal["run"] if r["activity"]["name"] == "heal-the-partition")
    assert (
        fault.injected and fault.end_t == parse_timestamp(heal["end"]) and fault.agents == ["k8s-sandbox-1"]
    )
    assert not passed.notes and not passed.findings and not passed.problems

    three = build(load("three-agents"))
    assert three.verdict.code == DEVIATED and three.faults[0].agents == ["k8s-sandbox-2"]
    assert len(three.notes) == 1 and "k8s-sandbox-2" in three.notes[0]
    assert not build(load("deviated")).notes  # one agent that never went offline: a real finding

    real = build(load("real-timers"))  # the band stays green (the API said online) until detection
    offline = [o for o in real.observations if o[1] == "offline"]
    assert [(o[0], o[3]) for o in offline] == [("k8s-sandbox-1", "offline-detection-time")]
    (window,) = real.faults
    assert window.start_t < offline[0][2] < window.end_t and window.end_t - window.start_t > 40
    svg = etree.fromstring(render_html(real).split("<figure>")[1].split("</figure>")[0].encode())
    marks = svg.findall(f".//{SVG_NS}path[@class='observation'][@data-status='offline']")
    assert len(marks) == 1 and float(marks[0].get("data-t")) == offline[0][2]

    (scale_down,) = build(load("total-agent-outage")).faults  # healed by scaling the Deployment back
    journal = load("total-agent-outage")
    back = next(r for r in journal["run"] if r["activity"]["name"] == "bring-the-agents-back")
    assert scale_down.kind == "scale-down" and scale_down.end_t == parse_timestamp(back["end"])
    assert scale_down.agents == ["k8s-sandbox-1"] and "bring-the-agents-back" in scale_down.end_reason
    (restart,) = build(load("agent-disconnect")).faults  # a one-off: over when the action is
    assert (
        restart.kind == "agent restart"
        and "one-off" in restart.end_reason
        and restart.end_t - restart.start_t < 5
    )

    not_injected = build(load("not-injected"))
    assert not_injected.verdict.code == NOT_INJECTED
    assert [f.injected for f in not_injected.faults] == [False]
    assert not not_injected.findings and not_injected.discounted  # the failed detection is no finding


@pytest.mark.parametrize("span", [1e-4, 0.3, 5, 47.9, 600, 7200, 3 * 86400, 400 * 86400, 1e9])
def test_time_ticks_fit_any_span(span: float) -> None:
    """The axis of any journal (a blink, a game day, a hostile year-long one): at least one tick, labels
    spaced wider than they are, and each label carries its date when the axis spans days."""
    from chaosstream.journal.report.svg import LEFT, RIGHT, W, _ticks, text_width

    t0 = 1796138607.4
    ticks = _ticks(t0, t0 + span)
    assert ticks and len(ticks) <= 50
    placed = [(LEFT + (t - t0) / span * (W - LEFT - RIGHT), text) for t, text in ticks]
    for (a, ta), (b, tb) in zip(placed, placed[1:], strict=False):
        assert b - a > (text_width(ta) + text_width(tb)) / 2, (ta, tb)
    assert all(("-" in text) == (span > 86400) for _, text in ticks)
