"""`chaosstream history` over ten runs of the same experiment, derived from REAL sandbox journals
(`journal_fixtures/recorded.py`): some slower, one deviated. It flags the regressions and the new finding,
and only those; its OpenMetrics output is valid OpenMetrics text; its Grafana annotations are the fault
windows of the journals."""

import json
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from click.testing import CliRunner
from helpers.openmetrics import validate_openmetrics
from journal_fixtures.recorded import load, shifted, with_measure
from lxml import html

from chaosstream.cli import main
from chaosstream.timeutil import parse_timestamp

# run index -> recovery-time elapsed_s (None: the recorded deviated run)
RECOVERY = [0.11, 0.12, 0.10, 0.11, 0.13, 0.12, 0.20, 0.95, None, 1.2]
SLOW = {7, 9}  # 0.20 at run 6 is slower, but within the margin (median 0.115 + 0.1 s)
DEVIATED_RUN = 8
SLUG = "heartbeat-timeout-under-a-network-partition-the-agent-is-mar"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, List[Dict]]:
    folder = tmp_path_factory.mktemp("runs")
    journals = []
    for i, seconds in enumerate(RECOVERY):
        base = load("deviated") if seconds is None else with_measure(load("passed"), "recovery-time", seconds)
        journal = shifted(base, i * 6 * 3600)  # every six hours
        (folder / f"journal-{i:02}.json").write_text(json.dumps(journal))
        journals.append(journal)
    return folder, journals


@pytest.fixture(scope="module")
def outputs(runs: Tuple[Path, List[Dict]], tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    out = tmp_path_factory.mktemp("history")
    paths = {
        k: out / name for k, name in (("html", "h.html"), ("md", "h.md"), ("om", "h.prom"), ("gf", "a.json"))
    }
    result = CliRunner().invoke(
        main,
        [
            "history", str(runs[0]), "--html", str(paths["html"]), "--markdown", str(paths["md"]),
            "--openmetrics", str(paths["om"]), "--grafana-annotations", str(paths["gf"]), "--window", "5",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    paths["stdout"] = out / "stdout.txt"
    paths["stdout"].write_text(result.output)
    return paths


def _rows(page: Path) -> List[List[str]]:
    doc = html.parse(str(page))
    return [[td.text_content() for td in tr.findall("td")] for tr in doc.iter("tr") if tr.findall("td")]


def test_regressions_and_the_new_finding_are_flagged(outputs: Dict[str, Path]) -> None:
    md = outputs["md"].read_text()
    lines = [line for line in md.splitlines() if line.startswith("| 2026-")]
    assert len(lines) == 10
    for i, line in enumerate(lines):
        flags = line.rsplit("|", 2)[-2]
        assert ("REGRESSION recovery-time elapsed_s" in flags) == (i in SLOW), (i, line)
        assert ("NEW FINDING: offline-detection-time" in flags) == (i == DEVIATED_RUN), (i, line)
    assert "| 1 deviated |" in lines[DEVIATED_RUN] and lines[0].count("| 0 passed |") == 1
    # the latest run (9) is slow: the command says so
    stdout = outputs["stdout"].read_text()
    assert "10 runs; latest" in stdout and "verdict 0 (passed)" in stdout
    assert "REGRESSION recovery-time elapsed_s: 1.200 s, median of the previous 5 runs" in stdout


def test_history_page(outputs: Dict[str, Path]) -> None:
    doc = html.parse(str(outputs["html"]))
    cells = doc.getroot().findall(".//svg[@class='chart']//rect[@class='verdict-cell']")
    assert [int(c.get("data-code")) for c in cells] == [1 if i == DEVIATED_RUN else 0 for i in range(10)]
    chart = doc.getroot().find(".//svg[@data-measure='recovery-time elapsed_s']")
    assert chart is not None
    ringed = [int(p.get("data-run")) for p in chart.iter("circle") if "regression" in p.get("class")]
    assert set(ringed) == SLOW
    points = {int(p.get("data-run")): float(p.get("data-seconds")) for p in chart.iter("circle")}
    assert points[7] == 0.95 and points[0] == 0.11
    assert "objective 5 s" in chart.xpath("string(.)")
    text = doc.getroot().text_content()
    assert "NEW FINDING: offline-detection-time" in text and "REGRESSION recovery-time" in text


def test_openmetrics_is_valid_and_describes_the_latest_run(outputs: Dict[str, Path], runs) -> None:
    text = outputs["om"].read_text()
    families = validate_openmetrics(text)
    assert families["chaosstream_pass_ratio"] == [('{experiment="' + SLUG + '"}', 0.8)]  # 4 of the last 5
    verdict = families["chaosstream_verdict_code"]
    assert len(verdict) == 1 and verdict[0][1] == 0 and 'verdict="passed"' in verdict[0][0]
    measured = {lab: v for lab, v in families["chaosstream_probe_measured_seconds"]}
    key = next(lab for lab in measured if 'probe="recovery-time"' in lab)
    assert measured[key] == 1.2
    objective = {lab: v for lab, v in families["chaosstream_probe_objective_seconds"]}
    assert objective[key] == 5.0  # ${reconnect_objective} as the sandbox run resolved it
    assert dict(families["chaosstream_probe_regression"])[key] == 1
    latest = runs[1][-1]
    partition = next(r for r in latest["run"] if r["activity"]["name"] == "partition-the-agent-from-the-api")
    (start,) = [v for _, v in families["chaosstream_fault_start_timestamp_seconds"]]
    (end,) = [v for _, v in families["chaosstream_fault_end_timestamp_seconds"]]
    assert start == pytest.approx(parse_timestamp(partition["start"]))
    heal = next(r for r in latest["run"] if r["activity"]["name"] == "heal-the-partition")
    assert end == pytest.approx(parse_timestamp(heal["end"]))
    parser = pytest.importorskip("prometheus_client.openmetrics.parser")
    names = {f.name for f in parser.text_string_to_metric_families(text)}
    assert "chaosstream_verdict_code" in names and "chaosstream_probe_measured_seconds" in names
    # the classic text format (node_exporter's textfile collector, the Pushgateway) reads it too
    from prometheus_client.parser import text_string_to_metric_families as classic

    samples = {
        s.name: s.value for f in classic(text) for s in f.samples if s.name == "chaosstream_verdict_code"
    }
    assert samples == {"chaosstream_verdict_code": 0}


def test_the_validator_rejects_broken_openmetrics(outputs: Dict[str, Path]) -> None:
    text = outputs["om"].read_text()
    for broken in (
        text.replace("# EOF\n", ""),
        text.replace('probe="recovery-time"', 'probe="recovery"time"', 1),
        text.replace("# TYPE chaosstream_run_passed gauge\n", ""),
        text + "chaosstream_verdict_code 1\n",
    ):
        with pytest.raises(AssertionError):
            validate_openmetrics(broken)


def test_grafana_annotations_are_the_fault_windows(outputs: Dict[str, Path], runs) -> None:
    annotations = json.loads(outputs["gf"].read_text())
    assert isinstance(annotations, list) and len(annotations) == 10
    for note, journal in zip(annotations, runs[1], strict=True):
        assert set(note) == {"time", "timeEnd", "tags", "text"}
        partition = next(
            r for r in journal["run"] if r["activity"]["name"] == "partition-the-agent-from-the-api"
        )
        assert note["time"] == round(parse_timestamp(partition["start"]) * 1000)
        assert isinstance(note["timeEnd"], int) and note["time"] < note["timeEnd"] < note["time"] + 60_000
        assert "chaosstream" in note["tags"] and "injected" in note["tags"]
    assert "verdict-deviated" in annotations[DEVIATED_RUN]["tags"]
    assert "network partition" in annotations[0]["text"]


def test_outputs_kept_next_to_the_journals_are_not_runs(runs, tmp_path: Path) -> None:
    """The CronJob keeps the annotations and the metrics in the journals' folder: the next run's history
    must not count them as (unreadable) runs."""
    folder = runs[0]
    notes = folder / "annotations.json"
    args = [
        "history",
        str(folder),
        "--grafana-annotations",
        str(notes),
        "--openmetrics",
        str(folder / "m.prom"),
    ]
    for _ in range(2):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert "10 runs; latest" in result.output and "no-evidence" not in result.output
    notes.unlink()
    (folder / "m.prom").unlink()


def test_history_without_journals_and_with_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["history", str(tmp_path)])
    assert result.exit_code == 1 and "No journal found" in result.output
    result = CliRunner().invoke(main, ["history", str(tmp_path / "gone.json")])
    assert result.exit_code == 1 and "No such file or folder" in result.output
    journal = tmp_path / "one.json"
    journal.write_text(json.dumps(load("not-injected")))
    result = CliRunner().invoke(main, ["history", str(journal)])  # Markdown to stdout
    assert result.exit_code == 0 and "| 3 fault-not-injected |" in result.output
