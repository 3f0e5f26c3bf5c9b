"""JUnit XML for a judged journal, with the standard library only (valid against the Jenkins/Ant
junit-10 schema).

One testsuite per experiment; one testcase per hypothesis probe (before/after), per method and per
rollback activity, per objection that has no activity of its own (a rollback never played, a `during`
deviation, a malformed record), plus a final `verdict` testcase. Durations that are not finite,
non-negative numbers are written as `time="0"`; characters XML 1.0 forbids are stripped from every name,
message and value; every text is scrubbed of credentials by the verdict's scrubber.

This module takes the verdict as an argument and does not import `chaosstream.journal.verdict` (which
imports it for `chaosstream verdict --junit`).
"""

import socket
import xml.etree.ElementTree as ET
from typing import Any, Callable, Dict, Mapping, Optional

from chaosstream.journal.schema import (
    activity_name,
    as_dict,
    clean_text,
    dicts,
    get_dict,
    get_str,
    measured,
    number,
    preview,
    xml_text,
)
from chaosstream.timeutil import parse_time

__all__ = ["junit_xml"]

_PASSED = 0  # the verdict code of a pass
# Objections that say the run could not be judged properly are JUnit errors; the others are failures.
_ERROR_LABELS = {"interrupted", "configuration-error", "no-evidence"}
_MAX_SECONDS = 1e9  # ~31 years: anything longer is not a duration
# Bounded output for huge journals: the verdict testcase always states the outcome.
MAX_CASES = 2000  # per kind: passing activities, objections
MAX_PROPERTIES = 2000


def _seconds(value: Any) -> str:
    seconds = number(value)
    if seconds is None or seconds < 0 or seconds > _MAX_SECONDS:
        return "0"
    return f"{seconds:.3f}"


def _text(value: Any, scrub: Callable[[str], str], limit: int = 2000) -> str:
    return xml_text(scrub(clean_text(value if isinstance(value, str) else preview(value), limit)))


def _block(value: str, scrub: Callable[[str], str]) -> str:
    """Multi-line text (element content): newlines kept, everything else cleaned."""
    return xml_text(scrub("\n".join(clean_text(line, 2000) for line in value.splitlines()[:200])))


def junit_xml(journal: Any, verdict: Any) -> bytes:
    """JUnit XML of `verdict` (a `chaosstream.journal.verdict.Verdict`) for `journal` (any value)."""
    scrub = verdict.scrub
    journal = as_dict(journal)
    root = ET.Element("testsuites", name="chaosstream")
    suite = ET.SubElement(
        root, "testsuite", name=_text(verdict.title, scrub, 300) or "chaos experiment", tests="0", failures="0",
        errors="0",
    )  # fmt: skip
    props = ET.SubElement(suite, "properties")

    counts = {"properties": 0, "passed": 0, "problems": 0, "omitted": 0}

    def prop(name: str, value: Any) -> None:
        if counts["properties"] < MAX_PROPERTIES:
            counts["properties"] += 1
            ET.SubElement(props, "property", name=_text(name, scrub, 300), value=_text(value, scrub, 300))

    for key, value in (
        ("verdict", verdict.label),
        ("verdict_code", verdict.code),
        ("status", verdict.status),  # JSON spelling for non-strings: null, true, false
        ("deviated", verdict.deviated),
    ):
        prop(key, value)

    objections: Dict[Any, Any] = {}
    for finding in verdict.findings:
        if finding.code != _PASSED and finding.kind != "run":
            objections.setdefault((finding.phase, finding.name), finding)

    def case(
        classname: str, name: str, duration: Any, problem: Optional[Any], values: Mapping[str, str]
    ) -> bool:
        kind = "passed" if problem is None else "problems"
        if counts[kind] >= MAX_CASES:
            counts["omitted"] += 1
            return False
        counts[kind] += 1
        el = ET.SubElement(
            suite, "testcase", classname=_text(classname, scrub, 200), name=_text(name, scrub, 300) or "<unnamed>",
            time=_seconds(duration),
        )  # fmt: skip
        if problem is not None:
            tag = "error" if problem.label in _ERROR_LABELS else "failure"
            sub = ET.SubElement(el, tag, type=problem.label, message=_text(problem.message, scrub, 1000))
            sub.text = _block(problem.line(scrub), scrub)
        if values:
            out = ET.SubElement(el, "system-out")
            out.text = _block("\n".join(f"{k}={v}" for k, v in values.items()), scrub)
        return True

    def add(classname: str, phase: str, run: Mapping[str, Any], with_tolerance: bool = False) -> None:
        name = activity_name(run)
        problem = objections.pop((phase, name), None)
        if counts["passed" if problem is None else "problems"] >= MAX_CASES:
            counts["omitted"] += 1  # without computing what would not be written
            return
        values = problem.values if problem is not None and problem.values else measured(run, with_tolerance)
        if case(classname, name, run.get("duration"), problem, values):
            for key, value in values.items():
                prop(f"{phase}.{name}.{key}", value)

    states = get_dict(journal, "steady_states")
    for phase in ("before", "after"):
        for probe in dicts(get_dict(states, phase).get("probes")):
            add(f"steady-state.{phase}", phase, probe, with_tolerance=True)
    for run in dicts(journal.get("run")):
        add("method", "method", run)
    for run in dicts(journal.get("rollbacks")):
        add("rollbacks", "rollback", run)
    for (phase, name), finding in list(objections.items()):  # rollbacks never played, `during` misses, ...
        case(phase, name, None, finding, finding.values)
    counts["passed"] = counts["problems"] = 0  # the verdict testcase is always written
    case(
        "chaosstream",
        "verdict",
        journal.get("duration"),
        None if verdict.code == _PASSED else _Summary(verdict),
        {},
    )
    if counts["omitted"]:
        note = ET.SubElement(suite, "system-out")
        note.text = f"{counts['omitted']} more testcases were left out of this report (see the journal)."

    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", "0")
    suite.set("time", _seconds(journal.get("duration")))
    start = parse_time(journal.get("start")) if isinstance(journal.get("start"), str) else None
    if start is not None:
        suite.set("timestamp", start.strftime("%Y-%m-%dT%H:%M:%S"))
    suite.set("hostname", _text(get_str(journal, "node") or socket.gethostname(), scrub, 200))
    for attr in ("tests", "failures", "errors", "time"):
        root.set(attr, suite.get(attr, "0"))
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


class _Summary:
    """The verdict as a finding-like object for the final `verdict` testcase."""

    def __init__(self, verdict: Any) -> None:
        self.label = verdict.label
        self.message = verdict.summary
        self._sentence = verdict.sentence

    def line(self, scrub: Callable[[str], str]) -> str:
        return scrub(self._sentence)
