"""`chaosstream verdict` on REAL journals produced by `chaos run` on tiny experiments."""

import json
import signal
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
from click.testing import CliRunner
from journal_fixtures import act, experiment, run_chaos
from lxml import etree

from chaosstream.journal.junit import junit_xml
from chaosstream.journal.verdict import (
    DEVIATED,
    INTERRUPTED,
    NO_EVIDENCE,
    NOT_INJECTED,
    NOT_MET_BEFORE,
    PASSED,
    ROLLBACK_FAILED,
    evaluate,
    verdict_command,
)

XSD = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "data" / "junit-10.xsd")))
SECRET = "hunter2-Very-Secret-Value"


def _scenario(name: str, tmp: Path) -> Tuple[int, Dict[str, Any], str]:
    flag = str(tmp / "broken")
    slow = act("inject-fault", "slow", seconds=20, ready=str(tmp / "ready"))
    if name == "all-good":
        return run_chaos(
            tmp, experiment(name, tmp, [act("noop", "value"), act("wait-recovered", "recovered", "probe")])
        )
    if name == "before-miss":
        return run_chaos(tmp, experiment(name, tmp, [act("noop", "value")], before_ok=False))
    if name == "action-raises":
        return run_chaos(
            tmp, experiment(name, tmp, [act("inject-fault", "fail", message="iptables: not found")])
        )
    if name == "after-deviates":
        return run_chaos(
            tmp, experiment(name, tmp, [act("break-service", "break_it", path=flag)], rollbacks=[])
        )
    if name == "rollback-raises":
        method = [act("partition-agent", "break_it", path=str(tmp / "other"))]
        return run_chaos(tmp, experiment(name, tmp, method, rollbacks=[act("heal-partition", "fail")]))
    if name == "sigterm":
        return run_chaos(tmp, experiment(name, tmp, [slow]), send=signal.SIGTERM, ready=tmp / "ready")
    if name == "sigint":
        return run_chaos(tmp, experiment(name, tmp, [slow]), send=signal.SIGINT, ready=tmp / "ready")
    if name == "during-deviates":
        method = [act("break-service", "break_it", path=flag), act("hold", "slow", seconds=1.0)]
        args = ["--hypothesis-strategy", "during-method-only", "--hypothesis-frequency", "0.2"]
        return run_chaos(tmp, experiment(name, tmp, method), args=args)
    raise AssertionError(name)


# scenario -> (chaos run exit code, strict verdict). The chaos codes document the gaps the verdict closes.
CASES = {
    "all-good": (0, PASSED),
    "before-miss": (0, NOT_MET_BEFORE),
    "action-raises": (0, NOT_INJECTED),
    "after-deviates": (1, DEVIATED),
    "rollback-raises": (0, ROLLBACK_FAILED),
    "sigterm": (0, INTERRUPTED),  # swallowed inside the python activity: chaos says completed
    "sigint": (1, ROLLBACK_FAILED),  # default strategy skips rollbacks on Ctrl-C: the fault may remain
    "during-deviates": (0, DEVIATED),
}


@pytest.fixture(scope="module")
def journals(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Tuple[int, Dict[str, Any], Path]]:
    out = {}
    for name in CASES:
        tmp = tmp_path_factory.mktemp(name)
        rc, journal, log = _scenario(name, tmp)
        assert journal, f"{name}: no journal written\n{log}"
        path = tmp / "journal.json"
        path.write_text(json.dumps(journal))
        out[name] = (rc, journal, path)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_real_journal_verdicts(journals: Dict[str, Any], name: str) -> None:
    chaos_rc, expected = CASES[name]
    rc, journal, _ = journals[name]
    assert rc == chaos_rc, f"chaos run exit code changed for {name}"
    verdict = evaluate(journal)
    assert verdict.code == expected, "\n".join(verdict.lines())


@pytest.mark.parametrize("name", list(CASES))
def test_cli_exit_code_and_junit_validates(journals: Dict[str, Any], name: str, tmp_path: Path) -> None:
    _, journal, path = journals[name]
    junit = tmp_path / "junit.xml"
    result = CliRunner().invoke(verdict_command, [str(path), "--junit", str(junit)])
    assert result.exit_code == CASES[name][1], result.output
    assert result.output.strip().splitlines()[-1].startswith(f"verdict: {CASES[name][1]} ")
    doc = etree.parse(str(junit))
    XSD.assertValid(doc)
    suite = doc.getroot().find("testsuite")
    assert suite.get("name") == name
    names = [c.get("name") for c in suite.findall("testcase")]
    for probe in (journal["steady_states"].get("before") or {}).get("probes", []):
        assert probe["activity"]["name"] in names
    for run in journal.get("run", []) + journal.get("rollbacks", []):
        assert run["activity"]["name"] in names
    verdict_case = suite.find("testcase[@name='verdict']")
    assert (verdict_case.find("failure") is None and verdict_case.find("error") is None) == (
        CASES[name][1] == 0
    )


def test_deciding_lines_show_measured_values(journals: Dict[str, Any]) -> None:
    lines = evaluate(journals["before-miss"][1]).lines()
    assert any(
        "'service-healthy'" in line and "value=false" in line and "tolerance=true" in line for line in lines
    )
    good = evaluate(journals["all-good"][1]).lines()
    assert any("elapsed_s=1.25" in line for line in good)


def test_rollback_failure_names_what_it_reverts(journals: Dict[str, Any]) -> None:
    text = "\n".join(evaluate(journals["rollback-raises"][1]).lines())
    assert "'heal-partition'" in text and "meant to revert method action 'partition-agent'" in text


def test_junit_failure_messages_and_properties(journals: Dict[str, Any]) -> None:
    deviated = journals["after-deviates"][1]
    root = etree.fromstring(junit_xml(deviated, evaluate(deviated)))
    failing = root.find(".//testcase[@classname='steady-state.after']")
    assert failing.find("failure").get("type") == "deviated"
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["verdict"] == "deviated" and props["verdict_code"] == "1"
    assert props["after.service-healthy.value"] == "false"
    good = etree.fromstring(junit_xml(journals["all-good"][1], evaluate(journals["all-good"][1])))
    assert {p.get("name"): p.get("value") for p in good.iter("property")}[
        "method.wait-recovered.elapsed_s"
    ] == "1.25"


def test_precedence_rollback_beats_interrupt_beats_action(journals: Dict[str, Any]) -> None:
    sigterm = journals["sigterm"][1]
    mixed = dict(sigterm, run=sigterm["run"] + journals["action-raises"][1]["run"])
    assert evaluate(mixed).code == INTERRUPTED
    mixed["rollbacks"] = journals["rollback-raises"][1]["rollbacks"]
    assert evaluate(mixed).code == ROLLBACK_FAILED
    deviated_and_failed = dict(journals["after-deviates"][1], run=journals["action-raises"][1]["run"])
    assert evaluate(deviated_and_failed).code == NOT_INJECTED


def test_missing_journal_is_no_evidence_and_still_writes_junit(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    result = CliRunner().invoke(verdict_command, [str(tmp_path / "nope.json"), "--junit", str(junit)])
    assert result.exit_code == NO_EVIDENCE
    assert "no journal at" in result.output
    XSD.assertValid(etree.parse(str(junit)))


def test_secrets_are_never_printed(tmp_path: Path) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.abcdefghijkl"
    exp = experiment(
        "secrets",
        tmp_path,
        [
            act("leaky", "value", v={"password": SECRET, "note": f"token={token}", "elapsed_s": 2.5}),
            act("inject", "fail", message=f"login failed for admin:{SECRET}@db with Bearer {token}"),
        ],
        extra={"secrets": {"streamspace": {"password": SECRET}}},
    )
    _, journal, _ = run_chaos(tmp_path, exp)
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(journal))
    junit = tmp_path / "junit.xml"
    result = CliRunner().invoke(verdict_command, [str(path), "--junit", str(junit)])
    assert result.exit_code == NOT_INJECTED
    for text in (result.output, junit.read_text()):
        assert SECRET not in text and token not in text
    assert "elapsed_s=2.5" in result.output or "elapsed_s" in junit.read_text()
