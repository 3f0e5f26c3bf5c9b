"""The game-day report and the history page, rendered in headless Chromium from REAL sandbox journals:
nothing overflows its container, no two labels of a picture overlap and none is clipped - at 1280 px and in
print layout (A4: 210 mm - 2 x 12 mm margins = 703 px). Also checks, from the DOM, that each report says
what its verdict says, in the text and in the picture.

Screenshots (and A4 PDFs) land in `reports/screenshots/` (git-ignored), one per case and layout:
`{passed,deviated,not-injected,three-agents,history}-{1280,print}.png` and `*.pdf`.
"""

import json
from pathlib import Path
from typing import Dict, Iterator

import pytest
from click.testing import CliRunner
from helpers import ROOT
from helpers.browser import Browser
from journal_fixtures.recorded import load, shifted, with_measure

from chaosstream.cli import main

SHOTS = ROOT / "reports" / "screenshots"
CASES = ("passed", "deviated", "not-injected", "three-agents")
EXTRA = ("real-timers", "vnc-agent-disconnect")  # real timers: a 47 s partition; stream bands per session
LAYOUTS = {"1280": (1280, "screen"), "print": (703, "print")}


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pages")
    out: Dict[str, Path] = {}
    for name in CASES + EXTRA:
        journal = tmp / f"{name}.json"
        journal.write_text(json.dumps(load(name)))
        page = tmp / f"{name}.html"
        result = CliRunner().invoke(main, ["report", str(journal), "--html", str(page)])
        assert result.exit_code == 0, result.output
        out[name] = page
    runs = tmp / "runs"
    runs.mkdir()
    base = load("passed")
    for i, seconds in enumerate([0.11, 0.12, 0.1, 0.13, 0.11, 0.9]):
        (runs / f"run-{i:02}.json").write_text(
            json.dumps(shifted(with_measure(base, "recovery-time", seconds), i * 3600))
        )
    (runs / "run-06.json").write_text(json.dumps(shifted(load("deviated"), 6 * 3600)))
    (runs / "run-07.json").write_text(json.dumps(shifted(load("not-injected"), 7 * 3600)))
    out["history"] = tmp / "history.html"
    result = CliRunner().invoke(main, ["history", str(runs), "--html", str(out["history"])])
    assert result.exit_code == 0, result.output
    many = tmp / "many"  # a year of weekly runs: ticks thin out, verdict cells shrink
    many.mkdir()
    for i in range(52):
        journal = load("deviated") if i % 13 == 5 else with_measure(base, "recovery-time", 0.1 + (i % 7) / 50)
        (many / f"run-{i:02}.json").write_text(json.dumps(shifted(journal, i * 7 * 86400)))
    out["history-many"] = tmp / "history-many.html"
    result = CliRunner().invoke(main, ["history", str(many), "--html", str(out["history-many"])])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = Browser()
    try:
        yield b
    finally:
        b.close()


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", CASES + EXTRA + ("history", "history-many"))
def test_layout_in_chromium(name: str, layout: str, pages: Dict[str, Path], browser: Browser) -> None:
    width, media = LAYOUTS[layout]
    browser.open(pages[name].resolve().as_uri(), width, media)
    result = browser.layout()
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(SHOTS / f"{name}-{layout}.png", width)
    if layout == "print":
        browser.pdf(SHOTS / f"{name}.pdf")
    assert result["width"] == width
    assert result["svgs"] >= 1 and result["texts"] >= 20, result  # the check saw the pictures
    assert result["count"] == 0, "\n".join(result["problems"])


def _text_of(browser: Browser, selector: str) -> str:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll({json.dumps(selector)})).map(e => e.textContent).join('\\n')"
    )


def test_each_report_reads_right_on_its_own(pages: Dict[str, Path], browser: Browser) -> None:
    """Verdict, picture headline, faults and objectives agree, from the DOM of each report."""
    expect = {
        "passed": ("Verdict 0 (passed)", True),
        "deviated": ("Verdict 1 (deviated)", True),
        "three-agents": ("Verdict 1 (deviated)", True),
        "not-injected": ("Verdict 3 (fault-not-injected)", False),
    }
    for name, (verdict, injected) in expect.items():
        browser.open(pages[name].resolve().as_uri(), 1280)
        headline = _text_of(browser, "svg.timeline text.headline")
        assert headline.startswith(verdict), (name, headline)
        # the 3-agent picture shows the partitioned agent offline while the probe failed: said in the picture
        assert ("Timeline check" in headline.replace("\n", " ")) == (name == "three-agents"), headline
        assert verdict in _text_of(browser, ".verdict")
        hatched = int(browser.evaluate("document.querySelectorAll('svg.timeline rect.fault').length"))
        not_injected = _text_of(browser, "svg.timeline text[data-fault='not-injected']")
        if injected:
            assert hatched == 1 and not not_injected, name
        else:  # the picture says so too, and draws no fault window
            assert hatched == 0 and "NOT INJECTED" in not_injected, name
            assert "None counted" in _text_of(browser, "p.muted"), (
                "a deviation without the fault is no finding"
            )
        body = _text_of(browser, "body")
        assert "${" not in _text_of(browser, "ul.items"), "objectives are resolved"
        assert "objective 5 s" in body and "to spare" in body  # reconnect objective resolved from the run
        assert "{'" not in body and '{"name"' not in body, "no raw dicts"
    # the three-agent run: the fault window sits on the partitioned agent only
    browser.open(pages["three-agents"].resolve().as_uri(), 1280)
    agents = browser.evaluate(
        "Array.from(document.querySelectorAll('svg.timeline rect.fault-agent')).map(e => e.dataset.agent).join(',')"
    )
    assert agents == "k8s-sandbox-2"


HOSTILE_NAMES = {
    "offline-detection-time": "W" * 90,
    "try-to-place-a-session": "日本語のアクティビティ名前" * 6,
    "heal-the-partition": "🔥" * 50,
    "recovery-time": "MMMM-IIII " * 12,
    "k8s-sandbox-2": "Ｗ" * 40 + "-2",
    "k8s-sandbox-3": "x" * 250,
    "streamspace-k8s-agent-2-bw2s7mx67t-67jjb": "P" * 300,
}


def test_hostile_names_never_overflow_or_overlap(tmp_path: Path, browser: Browser) -> None:
    """Names as wide as a journal can make them (W, CJK, emoji, capitals, hundreds of characters) in
    activities, agents, pods, session states and the title: still no overflow, no overlap, no clipping."""
    text = json.dumps(load("three-agents"), ensure_ascii=False)
    for old, new in HOSTILE_NAMES.items():
        text = text.replace(f'"{old}"', json.dumps(new, ensure_ascii=False))
        text = text.replace(old, new)
    journal = json.loads(text)
    journal["experiment"]["title"] = "Ｗ" * 200
    for run in journal["run"]:  # absurd measurements: long numbers in tables and chart labels
        if isinstance(run.get("output"), dict) and "elapsed_s" in run["output"]:
            run["output"]["elapsed_s"] = 123456789.123
    for i, sample in enumerate(journal["extensions"][1]["samples"]):
        sample["sessions"] = {"W" * 60: i % 3, "🔥" * 30: 1, "running": 2}
        sample["commands"] = {"M" * 80: i % 2}
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(journal))
    pages = {"report": tmp_path / "r.html", "history": tmp_path / "h.html"}
    assert CliRunner().invoke(main, ["report", str(path), "--html", str(pages["report"])]).exit_code == 0
    assert CliRunner().invoke(main, ["history", str(path), "--html", str(pages["history"])]).exit_code == 0
    for page in pages.values():
        for width, media in LAYOUTS.values():
            browser.open(page.resolve().as_uri(), width, media)
            result = browser.layout()
            assert result["count"] == 0, f"{page.name} at {width} px:\n" + "\n".join(result["problems"])
    browser.open(pages["report"].resolve().as_uri(), 1280)
    labels = _text_of(browser, "svg.timeline text")
    assert "WWWW" in labels and "…" in labels  # drawn, and cut to fit
