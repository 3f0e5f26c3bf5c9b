"""`chaosstream verdict`, `report` and `history` are total: every input gets one code and one sentence.

No mocks: hand-built journals shaped like the ones `chaos run` writes (same keys, same `exception` lists),
fed to the real functions, the real `chaosstream` command in a subprocess and through Click's runner;
JUnit output is validated against tests/data/junit-10.xsd.
"""

import copy
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import pytest
from click.testing import CliRunner
from helpers.openmetrics import validate_openmetrics
from lxml import etree

from chaosstream.cli import USAGE_ERROR, main
from chaosstream.journal.history import analyse, grafana_annotations, openmetrics, record_of
from chaosstream.journal.junit import junit_xml
from chaosstream.journal.report import build, render_html, render_markdown
from chaosstream.journal.schema import SAFETY_EXTENSION, TIMELINE_EXTENSION, clean_text, preview
from chaosstream.journal.verdict import (
    CONFIG_ERROR,
    DEVIATED,
    INTERRUPTED,
    LABELS,
    NO_EVIDENCE,
    NOT_INJECTED,
    NOT_MET_BEFORE,
    PASSED,
    PRECEDENCE,
    ROLLBACK_FAILED,
    evaluate,
)
from chaosstream.journal.verdict import USAGE_ERROR as DOCUMENTED_USAGE_ERROR
from chaosstream.timeutil import parse_timestamp

XSD = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "data" / "junit-10.xsd")))
CHAOSSTREAM = [sys.executable, "-c", "from chaosstream.cli import run; run()"]
START = "2026-03-01T10:00:00.000000+00:00"


# -- journals shaped like chaoslib's -------------------------------------------------------------------
def _activity(name: str, kind: str, func: str, **extra: Any) -> Dict[str, Any]:
    act = {
        "type": kind,
        "name": name,
        "provider": {"type": "python", "module": "chaosstream.x", "func": func},
    }
    act.update(extra)
    return act


def _exception(type_and_message: str) -> List[str]:
    """What chaoslib records: a chained traceback whose last element is `ActivityFailed: Type: message`."""
    return [
        "Traceback (most recent call last):\n",
        '  File "/usr/lib/python3/site-packages/chaoslib/provider/python.py", line 56, in run_python_activity\n'
        "    return func(**arguments)\n",
        '  File "/app/chaosstream/probes/agents.py", line 90, in wait_for_agent_status\n'
        "    if status in (401, 403): raise SettingsError(  # source lines must not be classified\n",
        f"{type_and_message}\n",
        "\nDuring handling of the above exception, another exception occurred:\n\n",
        f"chaoslib.exceptions.ActivityFailed: {type_and_message}\n",
    ]


def run_entry(
    name: str,
    kind: str = "action",
    output: Any = None,
    error: Optional[str] = None,
    status: Optional[str] = "succeeded",
    duration: Any = 0.25,
    **extra: Any,
) -> Dict[str, Any]:
    func = "partition_agent" if kind == "action" else "wait_for_agent_status"
    run: Dict[str, Any] = {
        "activity": _activity(name, kind, func),
        "output": output,
        "start": "2026-03-01T10:00:01.500000+00:00",
    }
    if error is not None:
        run["status"], run["exception"] = "failed", _exception(error)
    elif status is not None:
        run["status"] = status
    run.update(end="2026-03-01T10:00:01.750000+00:00", duration=duration, **extra)
    return run


def hypothesis_probe(
    name: str = "agents-online", output: Any = True, error: Optional[str] = None
) -> Dict[str, Any]:
    probe = run_entry(name, "probe", output=output, error=error)
    probe["activity"]["tolerance"] = True
    probe["tolerance_met"] = error is None and output is True
    return probe


def state(*probes: Dict[str, Any]) -> Dict[str, Any]:
    return {"steady_state_met": all(p.get("tolerance_met") for p in probes), "probes": list(probes)}


def journal(
    before: Optional[Dict[str, Any]] = None,
    method: Optional[List[Dict[str, Any]]] = None,
    after: Optional[Dict[str, Any]] = None,
    rollbacks: Optional[List[Dict[str, Any]]] = None,
    status: str = "completed",
    **extra: Any,
) -> Dict[str, Any]:
    """A passing game day unless told otherwise: partition an agent, wait for it offline, heal it."""
    method = method if method is not None else [
        run_entry("partition-agent", output={"partition_id": "p1", "pods": ["agent-b-0"]}),
        run_entry("wait-agent-offline", "probe", output={"status": "offline", "elapsed_s": 61.2}),
    ]  # fmt: skip
    rollbacks = (
        rollbacks if rollbacks is not None else [run_entry("heal-partition", output={"healed": ["p1"]})]
    )
    # `{}` means "no hypothesis run" (chaoslib writes null), None the default passing one
    before = None if before == {} else before if before is not None else state(hypothesis_probe())
    after = None if after == {} else after if after is not None else state(hypothesis_probe())
    out: Dict[str, Any] = {
        "chaoslib-version": "1.44.0",
        "platform": "Linux-6.1-x86_64",
        "node": "runner-1",
        "experiment": {
            "title": "Agent failover under partition",
            "description": "hand-built journal",
            "steady-state-hypothesis": {"title": "agents online", "probes": [hypothesis_probe()["activity"]]},
            "method": [
                copy.deepcopy(r["activity"])
                for r in method
                if isinstance(r, dict) and isinstance(r.get("activity"), dict)
            ],
            "rollbacks": [_activity("heal-partition", "action", "heal_agent_partition")],
            "runtime": {"rollbacks": {"strategy": "default"}, "hypothesis": {"strategy": "default"}},
        },
        "start": START,
        "status": status,
        "deviated": False,
        "steady_states": {"before": before, "after": after, "during": []},
        "run": method,
        "rollbacks": rollbacks,
        "end": "2026-03-01T10:01:05.000000+00:00",
        "duration": 65.0,
    }
    out.update(extra)
    return out


def with_(base: Dict[str, Any], path: str, value: Any) -> Dict[str, Any]:
    """A deep copy of `base` with the value at the dotted `path` (list indexes are numbers) replaced."""
    out = copy.deepcopy(base)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = out
    for key in parents:
        node = node[key]
    node[last] = value
    return out


def nested(depth: int, opener: str = "[", closer: str = "]") -> bytes:
    return (opener * depth + closer * depth).encode()


# -- CLI helpers ---------------------------------------------------------------------------------------
def cli(
    *args: str, timeout: float = 120, env: Optional[Dict[str, str]] = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        CHAOSSTREAM + list(args), capture_output=True, text=True, timeout=timeout, env=env, errors="replace"
    )


def write(tmp: Path, content: Union[bytes, Any], name: str = "journal.json") -> Path:
    path = tmp / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return path


def assert_one_clean_sentence(stdout: str, stderr: str, code: int) -> str:
    assert "Traceback" not in stdout + stderr and "internal error" not in stdout + stderr, stdout + stderr
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(f"verdict: {code} {LABELS[code]} - "), stdout
    sentence = last.split(" - ", 1)[1]
    assert sentence[0].isalpha() and sentence.rstrip().endswith((".", "?", "!")), sentence
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in stdout.replace("\n", "")), repr(stdout)
    return sentence


GOOD = journal()
CONTROL_NAME = "svc\x00\x01\x07\x1b[2J\x0b\x0c\x7f\x85\ufffe-healthy"

# name -> (file content: bytes as they are, anything else as JSON; expected verdict code)
HOSTILE: Dict[str, Tuple[Any, int]] = {
    "well-formed-pass": (GOOD, PASSED),
    "empty-file": (b"", NO_EVIDENCE),
    "whitespace-only": (b" \n\t\n", NO_EVIDENCE),
    "binary-garbage": (bytes(range(256)) * 64, NO_EVIDENCE),
    "truncated-json": (json.dumps(GOOD)[:500].encode(), NO_EVIDENCE),
    "200000-nested-lists": (nested(200_000), NO_EVIDENCE),
    "200000-nested-objects": (b'{"a":' * 200_000 + b"1" + b"}" * 200_000, NO_EVIDENCE),
    "integer-with-5000-digits": (b'{"status": "completed", "duration": ' + b"9" * 5000 + b"}", NO_EVIDENCE),
    "json-null": (None, NO_EVIDENCE),
    "json-list": ([GOOD], NO_EVIDENCE),
    "json-string": ("completed", NO_EVIDENCE),
    "json-number": (0, NO_EVIDENCE),
    "empty-object": ({}, NO_EVIDENCE),
    "status-completed-alone": ({"status": "completed"}, NO_EVIDENCE),
    "not-a-journal-object": ({"hello": "world"}, NO_EVIDENCE),
    "no-hypothesis-no-method": (
        journal(
            method=[],
            rollbacks=[],
            before={},
            after={},
            steady_states={"before": None, "after": None, "during": []},
        ),
        NO_EVIDENCE,
    ),
    "hypothesis-only-nothing-injected": (journal(method=[], rollbacks=[]), NO_EVIDENCE),
    "dry-run-activities": (
        with_(
            journal(
                method=[run_entry("partition-agent"), run_entry("wait-agent-offline", "probe")],
                rollbacks=[run_entry("heal-partition")],
                before=state(dict(hypothesis_probe(), output=None)),
                after=state(dict(hypothesis_probe(), output=None)),
            ),
            "experiment.dry",
            "activities",
        ),
        NO_EVIDENCE,
    ),
    "dry-run-actions": (with_(GOOD, "experiment.dry", "actions"), NO_EVIDENCE),
    "steady-states-a-list": (with_(GOOD, "steady_states", [GOOD["steady_states"]["before"]]), NO_EVIDENCE),
    "run-a-string": (with_(GOOD, "run", "partition-agent"), NO_EVIDENCE),
    "run-null-and-number": (with_(GOOD, "run", [None, 1]), NO_EVIDENCE),
    "activity-a-string": (with_(GOOD, "run.0.activity", "partition-agent"), NO_EVIDENCE),
    "experiment-a-list": (with_(GOOD, "experiment", [GOOD["experiment"]]), NO_EVIDENCE),
    "probes-a-string": (with_(GOOD, "steady_states.after.probes", "agents-online"), NO_EVIDENCE),
    "status-a-number": (with_(GOOD, "status", 3), NO_EVIDENCE),
    "after-result-missing": (with_(GOOD, "steady_states.after.steady_state_met", None), NO_EVIDENCE),
    # a rollback record that cannot be read cannot show the fault was removed: 5 beats 7
    "rollbacks-an-object": (with_(GOOD, "rollbacks", {"heal-partition": "succeeded"}), ROLLBACK_FAILED),
    "activity-without-status": (with_(GOOD, "run.1.status", None), INTERRUPTED),
    "status-aborted": (with_(GOOD, "status", "aborted"), INTERRUPTED),
    "duration-slow": (
        with_(
            with_(with_(GOOD, "duration", "slow"), "run.0.duration", "slow"),
            "steady_states.after.probes.0.duration",
            [1],
        ),
        PASSED,
    ),
    "durations-nan-infinity-negative": (
        json.dumps(
            with_(
                with_(with_(GOOD, "duration", math.nan), "run.0.duration", math.inf), "run.1.duration", -3.5
            )
        ).encode(),
        PASSED,
    ),
    "control-characters-in-names": (
        with_(
            with_(GOOD, "steady_states.after.probes.0.activity.name", CONTROL_NAME),
            "experiment.title",
            "t\x00\x1b",
        ),
        PASSED,
    ),
    "lone-surrogate-in-name": (
        json.dumps(GOOD).replace('"partition-agent"', '"part\\ud800ition"').encode(),
        PASSED,
    ),
    "utf8-bom": (b"\xef\xbb\xbf" + json.dumps(GOOD).encode(), PASSED),
    # built without deepcopy: copying (and judging in-process) must stay below Python's recursion limit
    "output-nested-500-deep": (
        dict(GOOD, run=[GOOD["run"][0], dict(GOOD["run"][1], output=json.loads(nested(500)))]),
        PASSED,
    ),
}


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    tmp = tmp_path_factory.mktemp("hostile")
    return {name: write(tmp, content, f"{name}.json") for name, (content, _) in HOSTILE.items()}


def test_the_hostile_table_is_large_enough() -> None:
    assert len(HOSTILE) >= 20 and {code for _, code in HOSTILE.values()} >= {0, 4, 5, 7}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_verdict_cli_is_total(name: str, hostile_files: Dict[str, Path], tmp_path: Path) -> None:
    expected = HOSTILE[name][1]
    junit = tmp_path / "junit.xml"
    proc = cli("verdict", str(hostile_files[name]), "--junit", str(junit))
    assert proc.returncode == expected, proc.stdout + proc.stderr
    assert_one_clean_sentence(proc.stdout, proc.stderr, expected)
    doc = etree.parse(str(junit))
    XSD.assertValid(doc)
    for case in doc.iter("testcase"):
        assert (
            case.get("time") is None
            or math.isfinite(float(case.get("time")))
            and float(case.get("time")) >= 0
        )
    verdict_case = doc.find(".//testcase[@name='verdict']")
    assert (verdict_case.find("failure") is None and verdict_case.find("error") is None) == (
        expected == PASSED
    )


@pytest.mark.parametrize("name", list(HOSTILE))
def test_report_cli_is_total(name: str, hostile_files: Dict[str, Path], tmp_path: Path) -> None:
    expected = HOSTILE[name][1]
    html_path, md_path = tmp_path / "r.html", tmp_path / "r.md"
    result = CliRunner().invoke(
        main, ["report", str(hostile_files[name]), "--html", str(html_path), "--markdown", str(md_path)]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert f"verdict {expected} ({LABELS[expected]}); report written" in result.output
    is_object = isinstance(HOSTILE[name][0], dict) or HOSTILE[name][1] == PASSED
    assert result.exit_code == (0 if is_object else 1), result.output
    page = html_path.read_text(encoding="utf-8")
    assert f"Verdict {expected} ({LABELS[expected]})" in page and page.rstrip().endswith("</html>")
    assert f"**Verdict {expected} ({LABELS[expected]})**" in md_path.read_text(encoding="utf-8")
    assert "\x1b" not in page and "\x00" not in page


@pytest.mark.parametrize("name", list(HOSTILE))
def test_history_cli_is_total(name: str, hostile_files: Dict[str, Path], tmp_path: Path) -> None:
    expected = HOSTILE[name][1]
    out = {ext: tmp_path / f"h.{ext}" for ext in ("html", "md", "prom", "json")}
    result = CliRunner().invoke(
        main,
        ["history", str(hostile_files[name]), "--html", str(out["html"]), "--markdown", str(out["md"]),
         "--openmetrics", str(out["prom"]), "--grafana-annotations", str(out["json"])],
    )  # fmt: skip
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert f"verdict {expected} ({LABELS[expected]})" in result.output
    page = out["html"].read_text(encoding="utf-8")
    assert page.rstrip().endswith("</html>") and "\x1b" not in page and "\x00" not in page
    families = validate_openmetrics(out["prom"].read_text(encoding="utf-8"))
    assert [v for _, v in families["chaosstream_verdict_code"]] == [expected]
    assert isinstance(json.loads(out["json"].read_text()), list)


def test_history_of_every_hostile_file_at_once(hostile_files: Dict[str, Path], tmp_path: Path) -> None:
    folder = next(iter(hostile_files.values())).parent
    prom = tmp_path / "h.prom"
    result = CliRunner().invoke(main, ["history", str(folder), "--openmetrics", str(prom), "--window", "3"])
    assert result.exit_code == 0 and "internal error" not in result.output, result.output
    validate_openmetrics(prom.read_text(encoding="utf-8"))


def test_control_characters_are_stripped_from_junit_and_output(
    hostile_files: Dict[str, Path], tmp_path: Path
) -> None:
    junit = tmp_path / "junit.xml"
    proc = cli("verdict", str(hostile_files["control-characters-in-names"]), "--junit", str(junit))
    raw = junit.read_bytes()
    for bad in (b"\x00", b"\x01", b"\x07", b"\x1b", b"\x0b", b"\x0c", "\ufffe".encode()):
        assert bad not in raw
    names = [c.get("name") for c in etree.parse(str(junit)).iter("testcase")]
    assert "svc[2J -healthy" in names, names  # escapes dropped, line breaks one space, U+FFFE stripped
    assert "\x1b" not in proc.stdout


def test_nan_infinity_and_negative_durations_are_zero_in_junit(tmp_path: Path) -> None:
    bad = with_(with_(with_(GOOD, "duration", math.nan), "run.0.duration", math.inf), "run.1.duration", -3.5)
    bad = with_(bad, "rollbacks.0.duration", "slow")
    root = etree.fromstring(junit_xml(bad, evaluate(bad)))
    XSD.assertValid(etree.ElementTree(root))
    times = {c.get("name"): c.get("time") for c in root.iter("testcase")}
    assert times["partition-agent"] == times["wait-agent-offline"] == times["heal-partition"] == "0"
    assert times["agents-online"] == "0.250" and root.find("testsuite").get("time") == "0"


def test_deep_nesting_is_no_evidence_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, nested(200_000))
    proc = cli("verdict", str(path))
    assert proc.returncode == NO_EVIDENCE
    assert "nested too deeply" in assert_one_clean_sentence(proc.stdout, proc.stderr, NO_EVIDENCE)


@pytest.mark.parametrize(
    "target, needle",
    [("missing.json", "no journal at"), (".", "is a directory")],
    ids=["missing-file", "directory"],
)
def test_unreadable_paths_are_no_evidence(tmp_path: Path, target: str, needle: str) -> None:
    junit = tmp_path / "junit.xml"
    proc = cli("verdict", str(tmp_path / target), "--junit", str(junit))
    assert proc.returncode == NO_EVIDENCE and needle in proc.stdout, proc.stdout + proc.stderr
    assert_one_clean_sentence(proc.stdout, proc.stderr, NO_EVIDENCE)
    XSD.assertValid(etree.parse(str(junit)))


def test_usage_errors_exit_64_and_help_documents_every_code() -> None:
    proc = cli("verdict")
    assert proc.returncode == USAGE_ERROR == DOCUMENTED_USAGE_ERROR == 64
    helptext = cli("verdict", "--help").stdout
    for code in (0, 1, 2, 3, 4, 5, 6, 7, 64):
        assert re.search(rf"^\s+{code}\s+\w", helptext, re.MULTILINE), code
    assert "5 > 4 > 6 > 7 > 2 > 3 > 1 > 0" in helptext
    assert list(PRECEDENCE) == [5, 4, 6, 7, 2, 3, 1]
    import chaosstream.journal.verdict as module

    assert "5 > 4 > 6 > 7 > 2 > 3 > 1 > 0" in (module.__doc__ or "")
    commands = cli("--help").stdout
    assert "verdict" in commands and "report" in commands and "history" in commands


def test_stdin_is_a_journal_path() -> None:
    proc = subprocess.run(
        CHAOSSTREAM + ["verdict", "-"], input=json.dumps(GOOD), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == PASSED, proc.stdout + proc.stderr


def test_journal_tools_import_and_write_junit_without_lxml(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    junit = tmp_path / "junit.xml"
    code = (
        "import sys; sys.modules['lxml'] = None\n"
        "import chaosstream.cli, chaosstream.journal.verdict, chaosstream.journal.junit, chaosstream.journal.report\n"
        "assert 'verdict' in chaosstream.cli.main.commands and 'report' in chaosstream.cli.main.commands\n"
        f"sys.argv = ['chaosstream', 'verdict', {str(path)!r}, '--junit', {str(junit)!r}]\n"
        "chaosstream.cli.run()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == PASSED, proc.stdout + proc.stderr
    XSD.assertValid(etree.parse(str(junit)))


# -- 1 vs 3 vs 6 (and 2) ---------------------------------------------------------------------------------
SETTINGS_ERROR = (
    "chaosstream.settings.SettingsError: Configuration 'streamspace_namespace' must be a Kubernetes namespace "
    "name, not 'Bad Name!'."
)
LOGIN_401 = (
    "chaoslib.exceptions.ActivityFailed: The StreamSpace API rejected the login of user 'admin' (401 Invalid "
    "credentials): check the 'username'/'password' secrets (STREAMSPACE_USERNAME/STREAMSPACE_PASSWORD)."
)
NO_CREDENTIALS = (
    "chaoslib.exceptions.ActivityFailed: No StreamSpace credentials: set 'token', or 'username' and 'password', "
    'in the \'streamspace\' secrets scope (and list "secrets": ["streamspace"] on the activity), or '
    "STREAMSPACE_TOKEN / STREAMSPACE_USERNAME / STREAMSPACE_PASSWORD."
)
RBAC_403 = (
    "chaosstream.clients.kube.KubeError: Kubernetes refused NetworkPolicy streamspace/chaosstream-p1 (403: "
    'networkpolicies.networking.k8s.io is forbidden: User "ci" cannot create resource): grant the missing '
    "verb to the service account or kubeconfig user (deploy/kubernetes/rbac.yaml lists what chaosstream needs)."
)
ADMIN_403 = (
    "chaoslib.exceptions.ActivityFailed: The StreamSpace API refused GET /api/v1/admin/agents (403): the user "
    "needs the admin role."
)
BAD_ARGUMENT = (
    "chaoslib.exceptions.ActivityFailed: Argument 'status' must be one of online, offline, not 'up'."
)
WAIT_TIMEOUT = (
    "chaoslib.exceptions.ActivityFailed: Agent agent-b did not become offline within 90 s (last status "
    "online): StreamSpace did not notice the partition."
)
NO_IPTABLES = (
    "chaoslib.exceptions.ActivityFailed: Partition by exec failed in streamspace/agent-b-0 container k8s-agent "
    "(exit 127: sh: iptables: not found); the stock agent image has no iptables and no NET_ADMIN: use method "
    "'ephemeral'."
)
API_DOWN = (
    "chaoslib.exceptions.ActivityFailed: Cannot reach the StreamSpace API at http://streamspace-api:8000 "
    "([Errno 111] Connection refused): check 'streamspace_api_url' (STREAMSPACE_API_URL) and that the API is "
    "running."
)
SIGTERM_SWALLOWED = (
    "chaoslib.exceptions.ActivityFailed: chaoslib.exceptions.InterruptExecution: SIGTERM signal received"
)

PARTITION = run_entry("partition-agent", output={"partition_id": "p1"})
WAIT = run_entry("wait-agent-offline", "probe", output={"status": "offline", "elapsed_s": 61.2})

CLASSIFY: Dict[str, Tuple[Dict[str, Any], int, str]] = {
    # a detection/assertion probe of the method failed: a finding, the probe named
    "method-wait-probe-times-out": (
        journal(method=[PARTITION, run_entry("wait-agent-offline", "probe", error=WAIT_TIMEOUT)]),
        DEVIATED,
        "'wait-agent-offline'",
    ),
    "method-probe-tolerance-missed": (
        journal(method=[PARTITION, dict(WAIT, tolerance_met=False)]),
        DEVIATED,
        "'wait-agent-offline'",
    ),
    "after-hypothesis-missed": (
        journal(after=state(hypothesis_probe(output=False))),
        DEVIATED,
        "'agents-online'",
    ),
    # the fault was not injected
    "method-action-fails": (
        journal(method=[run_entry("partition-agent", error=NO_IPTABLES), WAIT]),
        NOT_INJECTED,
        "'partition-agent'",
    ),
    "method-action-unverified": (
        journal(
            method=[run_entry("partition-agent", output={"partition_id": "p1", "verified": False}), WAIT]
        ),
        NOT_INJECTED,
        "'partition-agent'",
    ),
    "action-failure-beats-probe-failure": (
        journal(
            method=[
                run_entry("partition-agent", error=NO_IPTABLES),
                run_entry("wait-agent-offline", "probe", error=WAIT_TIMEOUT),
            ]
        ),
        NOT_INJECTED,
        "'partition-agent'",
    ),
    # configuration, credentials, permissions
    "method-action-settings-error": (
        journal(method=[run_entry("partition-agent", error=SETTINGS_ERROR), WAIT]),
        CONFIG_ERROR,
        "'partition-agent'",
    ),
    "method-action-rbac-403": (
        journal(method=[run_entry("partition-agent", error=RBAC_403), WAIT]),
        CONFIG_ERROR,
        "'partition-agent'",
    ),
    "method-probe-bad-argument": (
        journal(method=[PARTITION, run_entry("wait-agent-offline", "probe", error=BAD_ARGUMENT)]),
        CONFIG_ERROR,
        "'wait-agent-offline'",
    ),
    "before-probe-login-401": (
        journal(
            method=[],
            rollbacks=[],
            before=state(hypothesis_probe(error=LOGIN_401)),
            after={},
            status="failed",
        ),
        CONFIG_ERROR,
        "'agents-online'",
    ),
    "before-probe-no-credentials": (
        journal(
            method=[],
            rollbacks=[],
            before=state(hypothesis_probe(error=NO_CREDENTIALS)),
            after={},
            status="failed",
        ),
        CONFIG_ERROR,
        "'agents-online'",
    ),
    "before-probe-admin-403": (
        journal(
            method=[],
            rollbacks=[],
            before=state(hypothesis_probe(error=ADMIN_403)),
            after={},
            status="failed",
        ),
        CONFIG_ERROR,
        "'agents-online'",
    ),
    "config-error-beats-failed-action": (
        journal(
            method=[
                run_entry("partition-agent", error=NO_IPTABLES),
                run_entry("wait-agent-offline", "probe", error=ADMIN_403),
            ]
        ),
        CONFIG_ERROR,
        "'wait-agent-offline'",
    ),
    # not steady before: a real observation about the target, not a setup error
    "before-probe-tolerance-missed": (
        journal(method=[], rollbacks=[], before=state(hypothesis_probe(output=False)), after={}),
        NOT_MET_BEFORE,
        "'agents-online'",
    ),
    "before-probe-api-down": (
        journal(
            method=[], rollbacks=[], before=state(hypothesis_probe(error=API_DOWN)), after={}, status="failed"
        ),
        NOT_MET_BEFORE,
        "'agents-online'",
    ),
    # higher codes
    "signal-swallowed-in-action": (
        journal(method=[run_entry("partition-agent", error=SIGTERM_SWALLOWED), WAIT]),
        INTERRUPTED,
        "'partition-agent'",
    ),
    "interrupted-beats-config-error": (
        journal(method=[run_entry("partition-agent", error=SETTINGS_ERROR), WAIT], status="interrupted"),
        INTERRUPTED,
        "the run",
    ),
    "rollback-failed-beats-everything": (
        journal(
            method=[run_entry("partition-agent", error=SETTINGS_ERROR), WAIT],
            rollbacks=[run_entry("heal-partition", error=RBAC_403)],
            status="interrupted",
        ),
        ROLLBACK_FAILED,
        "'heal-partition'",
    ),
    "rollback-cut-short": (
        journal(rollbacks=[run_entry("heal-partition", status=None)]),
        ROLLBACK_FAILED,
        "'heal-partition'",
    ),
    "rollback-never-played": (journal(rollbacks=[]), ROLLBACK_FAILED, "'heal-partition'"),
    "nothing-measured-after-the-fault": (
        journal(
            method=[PARTITION],
            after={},
            steady_states={"before": state(hypothesis_probe()), "after": None, "during": []},
        ),
        NO_EVIDENCE,
        "nothing was measured after the fault",
    ),
}


@pytest.mark.parametrize("name", list(CLASSIFY))
def test_failure_classification(name: str) -> None:
    data, expected, needle = CLASSIFY[name]
    verdict = evaluate(data)
    text = "\n".join(verdict.lines())
    assert verdict.code == expected, text
    assert needle in verdict.summary or needle in text, text


def test_classification_through_the_cli(tmp_path: Path) -> None:
    for name in ("method-wait-probe-times-out", "method-action-fails", "before-probe-login-401"):
        data, expected, needle = CLASSIFY[name]
        proc = cli("verdict", str(write(tmp_path, data, f"{name}.json")))
        assert proc.returncode == expected, proc.stdout + proc.stderr
        assert needle in assert_one_clean_sentence(proc.stdout, proc.stderr, expected)


def test_safety_refusals() -> None:
    held = (
        "Another chaosstream experiment already runs against this StreamSpace target: the run lock is held by "
        "runner/1/abc for experiment 'first' until 2026-03-01T10:10:00Z; refusing to start."
    )
    rbac = (
        "chaosstream-safety cannot take the run lock: Kubernetes refused access to ConfigMaps in streamspace (403); "
        "grant configmaps get/create/update/delete (deploy/kubernetes/rbac.yaml) or set the control argument lock "
        "to false."
    )
    for refused, expected in ((held, INTERRUPTED), (rbac, CONFIG_ERROR)):
        data = journal(
            method=[], rollbacks=[], before={}, after={}, status="interrupted",
            steady_states={"before": None, "after": None, "during": []},
            extensions=[{"name": SAFETY_EXTENSION, "signals": [], "refused": refused, "lock": {}}],
        )  # fmt: skip
        assert evaluate(data).code == expected, evaluate(data).lines()


# -- totality of the functions themselves --------------------------------------------------------------
HOSTILE_VALUES: List[Any] = [
    None,
    "x",
    -1,
    math.nan,
    math.inf,
    [],
    {},
    [None, 1],
    {"a": [1]},
    True,
    False,
    "\x00\ud800",
]


def _paths(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return
    for key, child in items:
        if isinstance(key, str) and "." in key:
            continue
        path = f"{prefix}{key}"
        yield path
        yield from _paths(child, path + ".")


def test_every_field_of_a_journal_may_have_any_type() -> None:
    """Each field of a full journal (with a timeline and a safety report), replaced by each hostile value:
    evaluate, JUnit (schema-valid), the report model and both renderings never raise."""
    base = journal(
        extensions=[
            {
                "name": TIMELINE_EXTENSION,
                "samples": [
                    {
                        "t": 1772359200.0,
                        "agents": [{"agentId": "agent-b", "status": "online"}],
                        "sessions": {"running": 2},
                    },
                    {
                        "t": 1772359201.0,
                        "agents": [{"agentId": "agent-b", "status": "offline"}],
                        "commands": {"pending": 1},
                    },
                ],
                "markers": [
                    {
                        "event": "start",
                        "name": "partition-agent",
                        "type": "action",
                        "phase": "method",
                        "t": 1772359200.5,
                    },
                    {
                        "event": "end",
                        "name": "partition-agent",
                        "phase": "method",
                        "t": 1772359200.8,
                        "status": "succeeded",
                    },
                ],
                "errors": {"count": 1, "last": "boom"},
            },
            {
                "name": SAFETY_EXTENSION,
                "signals": [],
                "rollbacks_replayed": False,
                "lock": {"where": "ConfigMap streamspace/chaosstream-run-lock", "released": True},
                "refused": None,
            },
        ]
    )
    assert evaluate(base).code == PASSED
    paths = list(_paths(base))
    assert len(paths) > 100
    seen = set()
    started = time.monotonic()
    for path in paths:
        for value in HOSTILE_VALUES:
            data = with_(base, path, value)
            verdict = evaluate(data)
            seen.add(verdict.code)
            assert verdict.code in LABELS and "\n" not in verdict.sentence, (path, value)
            XSD.assertValid(etree.ElementTree(etree.fromstring(junit_xml(data, verdict))))
            report = build(data, verdict)
            assert f"Verdict {verdict.code} " in render_html(report) and render_markdown(report)
            groups = analyse([record_of(report, "j.json")])
            assert openmetrics(groups).endswith("# EOF\n") and isinstance(grafana_annotations(groups), list)
    assert time.monotonic() - started < 240
    assert {PASSED, DEVIATED, NOT_MET_BEFORE, INTERRUPTED, ROLLBACK_FAILED, NO_EVIDENCE} <= seen, seen


def test_evaluate_accepts_any_python_value() -> None:
    deep: Any = []
    for _ in range(5000):  # deeper than json.loads would ever return
        deep = [deep]
    for value in (
        deep,
        {"run": deep, "status": "completed"},
        {
            "experiment": {"title": deep, "method": deep},
            "status": "completed",
            "steady_states": {"before": deep},
        },
        object(),
        b"\x00",
        1j,
    ):
        verdict = evaluate(value)
        assert verdict.code == NO_EVIDENCE and "\n" not in verdict.sentence
    assert preview(deep, 40).startswith("[[[") and len(preview(deep, 40)) <= 40
    assert clean_text("a\x00b\x1bc\ud800\nd", 10) == "abc\ufffd d"


def test_parse_timestamp_keeps_the_offset_of_fractional_timestamps() -> None:
    assert parse_timestamp("2024-01-01T00:00:00.123+02:00") == pytest.approx(1704060000.123)
    assert parse_timestamp("2024-01-01T00:00:00.123456789Z") == pytest.approx(1704067200.123456)
    assert parse_timestamp("2024-01-01 00:00:00") == 1704067200.0
    for bad in (None, 5, "", "soon", "x" * 10_000, ["2024-01-01T00:00:00Z"]):
        assert parse_timestamp(bad) is None


# -- bounded time and memory -----------------------------------------------------------------------------
def test_a_40_mb_journal_is_judged_and_reported_in_under_30_seconds(tmp_path: Path) -> None:
    runs = []
    for i in range(400):
        kind = "probe" if i % 2 else "action"
        output = {
            "log": f"line {i} " + "x" * 100_000,
            "elapsed_s": 1.5,
            "nested": json.loads(nested(200).decode()),
        }
        runs.append(run_entry(f"step-{i}", kind, output=output))
    runs += [run_entry(f"small-{i}", "probe", output={"i": i}) for i in range(20_000)]
    path = write(tmp_path, journal(method=runs))
    assert path.stat().st_size > 40_000_000
    started = time.monotonic()
    proc = cli("verdict", str(path), "--junit", str(tmp_path / "junit.xml"), timeout=60)
    report = cli(
        "report",
        str(path),
        "--html",
        str(tmp_path / "r.html"),
        "--markdown",
        str(tmp_path / "r.md"),
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == PASSED, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert report.returncode == 0, report.stderr[-2000:]
    assert elapsed < 30, f"judging and reporting a 40 MB journal took {elapsed:.1f} s"
    assert len(proc.stdout) < 60_000  # bounded output: the deciding lines are capped
    XSD.assertValid(etree.parse(str(tmp_path / "junit.xml")))
    assert (tmp_path / "junit.xml").stat().st_size < 5_000_000
    assert os.path.getsize(tmp_path / "r.html") < 10_000_000
