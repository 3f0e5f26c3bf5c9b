"""A strict CI verdict for a Chaos Toolkit journal, with distinct exit codes and JUnit XML.

`chaos run` exits 0 when the system was already broken before the method, when a method action failed,
and when a SIGTERM was swallowed inside an activity (chaostoolkit-facts B.3/B.4). `evaluate()` reads the
journal instead and returns one of these codes:

====  ===============================  ==========================================================
code  label                            meaning
====  ===============================  ==========================================================
0     passed                           hypothesis met before and after, every activity succeeded
1     deviated                         the hypothesis missed after the method (or during it)
2     steady-state-not-met-before      the system was not in steady state before the method
3     action-failed                    a method activity failed: the fault was not (fully) injected
4     interrupted                      interrupted, aborted or failed run; a swallowed SIGTERM;
                                       an activity without status; no journal at all
5     rollback-failed                  a rollback failed or was not played: a fault may remain
====  ===============================  ==========================================================

Precedence when several apply: **5 > 4 > 2 > 3 > 1**. A fault that may still be in place needs a human
first; an interrupted run makes every other observation incomplete; a broken system before the method
means the method's results say nothing; a failed injection means a deviation (or its absence) was not
caused by the intended fault; only then is a deviation a finding about resilience.
"""

import json
import os
import re
import socket
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import click
from lxml import etree

from chaosstream.settings import redact, resolve_settings

__all__ = [
    "PASSED",
    "DEVIATED",
    "NOT_MET_BEFORE",
    "ACTION_FAILED",
    "INTERRUPTED",
    "ROLLBACK_FAILED",
    "LABELS",
    "PRECEDENCE",
    "Finding",
    "Verdict",
    "evaluate",
    "load_journal",
    "junit_xml",
    "make_scrubber",
    "verdict_command",
]

PASSED, DEVIATED, NOT_MET_BEFORE, ACTION_FAILED, INTERRUPTED, ROLLBACK_FAILED = 0, 1, 2, 3, 4, 5
LABELS: Dict[int, str] = {
    PASSED: "passed",
    DEVIATED: "deviated",
    NOT_MET_BEFORE: "steady-state-not-met-before",
    ACTION_FAILED: "action-failed",
    INTERRUPTED: "interrupted",
    ROLLBACK_FAILED: "rollback-failed",
}
PRECEDENCE: Sequence[int] = (ROLLBACK_FAILED, INTERRUPTED, NOT_MET_BEFORE, ACTION_FAILED, DEVIATED)

_INTERRUPT_RE = re.compile(r"InterruptExecution|SIGTERM|SIGINT|KeyboardInterrupt")
_SECRET_KEY_RE = re.compile(r"(?i)(token|password|passwd|secret|api[_-]?key|authorization|dsn|credential)")
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_LONG_TOKEN_RE = re.compile(r"(?i)\b(token|password|secret|api[_-]?key)(\s*[=:]\s*)([^\s,;'\"]+)")
# Rollback names/funcs share a word with the action they revert ("partition-agent" / "heal-partition");
# these words carry no pairing information.
_STOPWORDS = {
    "heal", "restore", "undo", "revert", "rollback", "remove", "delete", "stop", "start", "agent", "agents",
    "the", "and", "all", "to", "of", "a", "by", "for", "on", "in", "uncordon", "unpause", "resume",
}  # fmt: skip


@dataclass
class Finding:
    """One probe or activity (or the run itself) and the verdict code it argues for (0 = evidence of pass)."""

    code: int
    phase: str  # before | during | after | method | rollback | run
    kind: str  # probe | action | run
    name: str
    message: str
    values: Dict[str, Any] = field(default_factory=dict)

    def line(self, scrub: Callable[[str], str]) -> str:
        """A one-line, scrubbed rendering with the measured values."""
        head = "PASS" if self.code == PASSED else LABELS[self.code].upper()
        where = self.phase if self.kind == self.phase else f"{self.phase} {self.kind}"
        text = f"[{head}] {where} {self.name!r}: {self.message}"
        if self.values:
            text += " | " + " ".join(f"{k}={_compact(v)}" for k, v in self.values.items())
        return scrub(text)


@dataclass
class Verdict:
    """The outcome of one journal: exit code, label, a summary sentence and the findings behind it."""

    code: int
    summary: str
    title: str
    status: Optional[str]
    deviated: bool
    findings: List[Finding]
    scrub: Callable[[str], str] = field(default=lambda s: s, repr=False)

    @property
    def label(self) -> str:
        """The verdict's name, e.g. `rollback-failed`."""
        return LABELS[self.code]

    @property
    def deciding(self) -> List[Finding]:
        """The findings that decided the code (for a pass: every hypothesis probe)."""
        return [f for f in self.findings if f.code == self.code]

    def lines(self) -> List[str]:
        """Human-readable lines: one per deciding probe/activity, then the verdict line."""
        out = [f.line(self.scrub) for f in self.deciding]
        out.append(self.scrub(f"verdict: {self.code} {self.label} - {self.summary}"))
        return out


# -- helpers -------------------------------------------------------------------------------------------
def _compact(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mask(value: Any) -> Any:
    """Replace the values of secret-looking keys in nested outputs."""
    if isinstance(value, Mapping):
        return {k: ("***" if _SECRET_KEY_RE.search(str(k)) and v else _mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def _secret_strings(journal: Mapping[str, Any]) -> List[str]:
    """Literal secret values declared in the experiment (inline, or env references that are set)."""
    found: List[str] = []
    scopes = (journal.get("experiment") or {}).get("secrets") or {}
    for scope in scopes.values() if isinstance(scopes, Mapping) else ():
        for value in scope.values() if isinstance(scope, Mapping) else ():
            if isinstance(value, str) and len(value) >= 4:
                found.append(value)
            elif isinstance(value, Mapping) and value.get("type") == "env":
                env = os.environ.get(str(value.get("key")), "")
                if len(env) >= 4:
                    found.append(env)
    return found


def make_scrubber(journal: Mapping[str, Any]) -> Callable[[str], str]:
    """A function that removes credentials from text: `redact()`, known secrets, JWTs and `token=...`."""
    try:
        settings = resolve_settings({}, {})  # picks up STREAMSPACE_* secrets from the environment
    except Exception:  # a malformed environment must not stop the verdict
        settings = None
    literals = sorted(set(_secret_strings(journal)), key=len, reverse=True)

    def scrub(text: str) -> str:
        out = redact(text, settings)
        for value in literals:
            out = out.replace(value, "***")
        out = _JWT_RE.sub("***", out)
        return _LONG_TOKEN_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}***", out)

    return scrub


def _exception_text(run: Mapping[str, Any]) -> str:
    exc = run.get("exception")
    if isinstance(exc, list):
        lines = [str(x).strip() for x in exc if str(x).strip()]
        return lines[-1] if lines else ""
    return str(exc or "")


def _name(run: Mapping[str, Any]) -> str:
    return str((run.get("activity") or {}).get("name") or "<unnamed>")


def describe_tolerance(tolerance: Any) -> Any:
    """A short, readable form of a tolerance: probe tolerances as `func(arg=value, ...)` without the
    `value` chaoslib injects into their arguments; other tolerances as they are."""
    if isinstance(tolerance, Mapping) and tolerance.get("type") == "probe":
        provider = tolerance.get("provider") or {}
        args = {k: v for k, v in (provider.get("arguments") or {}).items() if k != "value"}
        shown = ", ".join(f"{k}={v}" for k, v in args.items())
        return f"{provider.get('func', tolerance.get('name', 'probe'))}({shown})"
    return tolerance


def _measured(run: Mapping[str, Any], with_tolerance: bool = False) -> Dict[str, Any]:
    values: Dict[str, Any] = {}
    output = _mask(run.get("output"))
    if isinstance(output, Mapping):
        values.update({str(k): v for k, v in output.items()})
    elif output is not None:
        values["value"] = output
    if with_tolerance:
        values["tolerance"] = describe_tolerance(_mask((run.get("activity") or {}).get("tolerance")))
    if run.get("duration") is not None:
        values["duration_s"] = round(float(run["duration"]), 3)
    return values


def _words(activity: Mapping[str, Any]) -> set:
    provider = activity.get("provider") or {}
    text = f"{activity.get('name', '')} {provider.get('func', '')}".lower()
    return {w for w in re.split(r"[^a-z0-9]+", text) if len(w) > 2 and w not in _STOPWORDS}


def _reverts(rollback: Mapping[str, Any], actions: Sequence[Mapping[str, Any]]) -> str:
    """Best guess of the method action a rollback undoes (shared words in names/funcs)."""
    mine = _words(rollback)
    best = max(actions, key=lambda a: len(mine & _words(a)), default=None)
    if best is not None and mine & _words(best):
        return f"meant to revert method action {best.get('name')!r}"
    names = ", ".join(repr(a.get("name")) for a in actions)
    return f"meant to revert what the method injected ({names})" if names else "no method action ran"


def _hypothesis(phase: str, state: Mapping[str, Any], miss_code: int, findings: List[Finding]) -> bool:
    """Add findings for one hypothesis run; return whether the steady state was met."""
    met = bool(state.get("steady_state_met"))
    for probe in state.get("probes") or []:
        values = _measured(probe, with_tolerance=True)
        if "status" not in probe:
            findings.append(
                Finding(INTERRUPTED, phase, "probe", _name(probe), "interrupted (no status)", values)
            )
        elif probe.get("status") != "succeeded":
            msg = f"probe raised: {_exception_text(probe)}"
            code = INTERRUPTED if _INTERRUPT_RE.search(msg) else miss_code
            findings.append(Finding(code, phase, "probe", _name(probe), msg, values))
        elif probe.get("tolerance_met") is False:
            findings.append(Finding(miss_code, phase, "probe", _name(probe), "tolerance not met", values))
        else:
            findings.append(Finding(PASSED, phase, "probe", _name(probe), "tolerance met", values))
    if not met and not any(f.code == miss_code and f.phase == phase for f in findings):
        findings.append(Finding(miss_code, phase, "run", "steady-state-hypothesis", "steady state not met"))
    return met


def _activities(phase: str, runs: Iterable[Mapping[str, Any]], findings: List[Finding], **ctx: Any) -> None:
    for run in runs:
        activity = run.get("activity") or {}
        kind = str(activity.get("type") or "action")
        values = _measured(run)
        if "status" not in run:
            findings.append(
                Finding(INTERRUPTED, phase, kind, _name(run), "interrupted while running", values)
            )
            continue
        if run.get("status") == "succeeded":
            findings.append(Finding(PASSED, phase, kind, _name(run), "succeeded", values))
            continue
        exc = _exception_text(run)
        if phase == "rollback":
            msg = f"rollback failed ({exc}); {_reverts(activity, ctx['actions'])}: that fault may remain"
            findings.append(Finding(ROLLBACK_FAILED, phase, kind, _name(run), msg, values))
        if _INTERRUPT_RE.search(exc):
            msg = f"a signal was swallowed inside the activity ({exc})"
            findings.append(Finding(INTERRUPTED, phase, kind, _name(run), msg, values))
        elif phase == "method":
            findings.append(Finding(ACTION_FAILED, phase, kind, _name(run), f"failed: {exc}", values))


def _missing_rollbacks(journal: Mapping[str, Any], findings: List[Finding]) -> None:
    """Declared rollbacks that never ran although the method ran actions: their faults may remain."""
    experiment = journal.get("experiment") or {}
    declared = [r for r in experiment.get("rollbacks") or [] if isinstance(r, Mapping)]
    actions = [r for r in journal.get("run") or [] if (r.get("activity") or {}).get("type") == "action"]
    strategy = ((experiment.get("runtime") or {}).get("rollbacks") or {}).get("strategy", "default")
    if not declared or not actions or strategy == "never":
        return
    if strategy == "deviated" and not journal.get("deviated"):
        return
    played = {_name(r) for r in journal.get("rollbacks") or []}
    injected = [a.get("activity") or {} for a in actions]
    for rollback in declared:
        name = str(rollback.get("name") or rollback.get("ref") or "<unnamed>")
        if name not in played:
            msg = f"rollback was not played; {_reverts(rollback, injected)}: that fault may remain"
            findings.append(Finding(ROLLBACK_FAILED, "rollback", "action", name, msg))


def _safety(journal: Mapping[str, Any]) -> Mapping[str, Any]:
    for ext in journal.get("extensions") or []:
        if isinstance(ext, Mapping) and ext.get("name") == "chaosstream-safety":
            return ext
    return {}


def evaluate(journal: Mapping[str, Any]) -> Verdict:
    """Read a Chaos Toolkit journal and return the strict verdict (see the module docstring)."""
    journal = journal if isinstance(journal, Mapping) else {}
    findings: List[Finding] = []
    status = journal.get("status")
    states = journal.get("steady_states") or {}
    actions_declared = [
        a for a in (journal.get("experiment") or {}).get("method") or [] if isinstance(a, Mapping)
    ]

    before, after = states.get("before"), states.get("after")
    if isinstance(before, Mapping):
        _hypothesis("before", before, NOT_MET_BEFORE, findings)
    for index, during in enumerate(states.get("during") or []):
        if isinstance(during, Mapping) and not during.get("steady_state_met"):
            _hypothesis(f"during#{index + 1}", during, DEVIATED, findings)
    if isinstance(after, Mapping):
        _hypothesis("after", after, DEVIATED, findings)
    elif journal.get("deviated"):
        findings.append(Finding(DEVIATED, "after", "run", "steady-state-hypothesis", "journal says deviated"))

    _activities("method", journal.get("run") or [], findings)
    _activities("rollback", journal.get("rollbacks") or [], findings, actions=actions_declared)
    _missing_rollbacks(journal, findings)

    safety = _safety(journal)
    for sig in safety.get("signals") or []:
        msg = f"received {sig.get('signal')} during {sig.get('phase')} at {sig.get('at')}"
        findings.append(Finding(INTERRUPTED, "run", "run", "signal", msg))
    if safety.get("refused"):
        findings.append(
            Finding(INTERRUPTED, "run", "run", "run-lock", f"refused to start: {safety['refused']}")
        )
    if status in ("interrupted", "aborted") or status is None:
        findings.append(
            Finding(INTERRUPTED, "run", "run", "experiment", f"run status is {status or 'missing'}")
        )
    elif status == "failed" and not any(f.code in (NOT_MET_BEFORE, DEVIATED) for f in findings):
        findings.append(
            Finding(INTERRUPTED, "run", "run", "experiment", "run failed for an unforeseen reason")
        )

    code = next((c for c in PRECEDENCE if any(f.code == c for f in findings)), PASSED)
    summary = _summary(code, [f for f in findings if f.code == code])
    title = str((journal.get("experiment") or {}).get("title") or "chaos experiment")
    return Verdict(
        code, summary, title, status, bool(journal.get("deviated")), findings, make_scrubber(journal)
    )


def _summary(code: int, deciding: List[Finding]) -> str:
    names = ", ".join(sorted({repr(f.name) for f in deciding if f.kind != "run"})) or "the run"
    return {
        PASSED: "steady state met before and after the method; every activity succeeded.",
        DEVIATED: f"the steady state deviated ({names}): a weakness may have been found.",
        NOT_MET_BEFORE: f"the system was not in steady state before the method ({names}); nothing was tested.",
        ACTION_FAILED: f"method activity failed ({names}): the fault was not injected as planned.",
        INTERRUPTED: f"the run was interrupted or aborted ({names}); its results are incomplete.",
        ROLLBACK_FAILED: f"rollback failed or was not played ({names}): a fault may remain - check the target now.",
    }[code]


def load_journal(path: str) -> Dict[str, Any]:
    """Load a journal file; a missing or unreadable one yields an empty journal (verdict 4)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


# -- JUnit ---------------------------------------------------------------------------------------------
def _seconds(value: Any) -> str:
    try:
        return f"{max(float(value), 0.0):.3f}"
    except (TypeError, ValueError):
        return "0.000"


def _case(
    suite: Any, classname: str, name: str, run: Mapping[str, Any], problem: Optional[Finding], scrub: Callable
) -> Dict[str, Any]:
    case = etree.SubElement(
        suite, "testcase", classname=classname, name=name, time=_seconds(run.get("duration"))
    )
    if problem is not None:
        tag = "error" if problem.code == INTERRUPTED else "failure"
        el = etree.SubElement(case, tag, type=LABELS[problem.code], message=scrub(problem.message))
        el.text = scrub(problem.line(scrub))
    values = problem.values if problem is not None else _measured(run, with_tolerance="tolerance_met" in run)
    if values:
        out = etree.SubElement(case, "system-out")
        out.text = scrub("\n".join(f"{k}={_compact(v)}" for k, v in values.items()))
    return values


def junit_xml(journal: Mapping[str, Any], verdict: Optional[Verdict] = None) -> bytes:
    """JUnit XML (Jenkins/Ant junit-10 schema): one testsuite per experiment, one testcase per hypothesis
    probe (before/after), per method and per rollback activity, plus a `verdict` testcase."""
    verdict = verdict or evaluate(journal)
    scrub = verdict.scrub
    root = etree.Element("testsuites", name="chaosstream")
    suite = etree.SubElement(root, "testsuite", name=verdict.title, tests="0", failures="0", errors="0")
    props = etree.SubElement(suite, "properties")

    def prop(name: str, value: Any) -> None:
        etree.SubElement(props, "property", name=name, value=scrub(_compact(value)))

    for key, value in (
        ("verdict", verdict.label),
        ("verdict_code", verdict.code),
        ("status", verdict.status),
    ):
        prop(key, value)
    prop("deviated", verdict.deviated)

    by_key: Dict[Any, Finding] = {}
    for f in verdict.findings:
        if f.code != PASSED and f.kind != "run":
            by_key.setdefault((f.phase, f.name), f)

    def add(classname: str, phase: str, run: Mapping[str, Any]) -> None:
        values = _case(suite, classname, _name(run), run, by_key.pop((phase, _name(run)), None), scrub)
        for key, value in values.items():
            prop(f"{phase}.{_name(run)}.{key}", value)

    states = journal.get("steady_states") or {}
    for phase in ("before", "after"):
        for probe in (states.get(phase) or {}).get("probes") or []:
            add(f"steady-state.{phase}", phase, probe)
    for run in journal.get("run") or []:
        add("method", "method", run)
    for run in journal.get("rollbacks") or []:
        add("rollbacks", "rollback", run)
    for (phase, name), finding in list(by_key.items()):  # e.g. rollbacks never played, during deviations
        _case(suite, f"{phase}", name, {}, finding, scrub)
    problem = (
        None if verdict.code == PASSED else Finding(verdict.code, "run", "run", "verdict", verdict.summary)
    )
    _case(suite, "chaosstream", "verdict", {"duration": journal.get("duration")}, problem, scrub)

    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", "0")
    suite.set("time", _seconds(journal.get("duration")))
    suite.set("timestamp", str(journal.get("start") or "")[:19])
    suite.set("hostname", str(journal.get("node") or socket.gethostname()))
    for attr in ("tests", "failures", "errors", "time"):
        root.set(attr, suite.get(attr))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# -- CLI -----------------------------------------------------------------------------------------------
@click.command("verdict")
@click.argument("journal_path", metavar="JOURNAL", type=click.Path(dir_okay=False))
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), help="Write JUnit XML to this file.")
def verdict_command(journal_path: str, junit_path: Optional[str]) -> None:
    """Strict CI verdict for a `chaos run` journal.

    Exit codes: 0 passed, 1 deviated, 2 steady state not met before the method, 3 a method action
    failed, 4 interrupted/aborted run (or no journal), 5 a rollback failed or was not played (a fault
    may remain). Precedence: 5 > 4 > 2 > 3 > 1.
    """
    journal = load_journal(journal_path)
    verdict = evaluate(journal)
    if not journal:
        verdict.findings.append(
            Finding(
                INTERRUPTED, "run", "run", "journal", f"no readable journal at {journal_path}: the run died?"
            )
        )
    for line in verdict.lines():
        click.echo(line)
    if junit_path:
        try:
            with open(junit_path, "wb") as fh:
                fh.write(junit_xml(journal, verdict))
        except OSError as exc:
            click.echo(f"cannot write JUnit XML to {junit_path}: {exc}", err=True)
    sys.exit(verdict.code)
