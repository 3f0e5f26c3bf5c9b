"""A strict CI verdict for a Chaos Toolkit journal: one exit code and one readable sentence.

`chaos run` exits 0 when the system was already broken before the method, when a method action failed,
and when a SIGTERM was swallowed inside an activity (chaostoolkit-facts B.3/B.4). `evaluate()` reads the
journal instead and returns one of these codes:

====  ===========================  ====================================================================
code  label                        meaning
====  ===========================  ====================================================================
0     passed                       the hypothesis held before and after the method, every activity
                                   succeeded, and something was measured after the fault was injected
1     deviated                     a *finding*: StreamSpace did not hold the hypothesis after (or
                                   during) the method, or a detection/assertion probe of the method
                                   failed (tolerance missed, or it raised because the condition was
                                   not met, e.g. a wait-probe timing out); the probe is named
2     steady-state-not-met-before  the system was not in steady state before the method: nothing was
                                   tested
3     fault-not-injected           a method action failed, or its output says the fault did not take
                                   effect (`"verified"`/`"effective"`/`"injected"`: false)
4     interrupted                  interrupted or aborted run, status missing, a signal (SIGTERM/SIGINT)
                                   received or swallowed inside an activity, an activity without
                                   status, a run refused because another run holds the run lock
5     rollback-failed              a rollback failed, was cut short or was not played: a fault may
                                   remain in the target
6     configuration-error          an activity (not a rollback) or the run lock failed because of
                                   configuration, credentials or permissions (a SettingsError,
                                   401/403/Forbidden, missing STREAMSPACE_* credentials, RBAC, a bad
                                   activity argument): fix the setup; the run says nothing about
                                   StreamSpace
7     no-evidence                  nothing to judge: no journal, an empty, unreadable, non-UTF-8 or
                                   malformed file (also JSON nested too deeply, or larger than
                                   256 MiB), not a JSON object, a dry run (`chaos run
                                   --dry ...`), no hypothesis probe and no method activity ran, the
                                   method ran nothing, nothing was measured after the fault, a
                                   declared hypothesis without any result, or a record of the
                                   journal has the wrong shape
64    (usage)                      the command line was wrong (`chaosstream` maps Click's usage errors)
====  ===========================  ====================================================================

Precedence when several apply: **5 > 4 > 6 > 7 > 2 > 3 > 1 > 0**.

* 5 first: a fault that may still be in place needs a human now, whatever else happened.
* 4: an interrupted run makes every other observation incomplete.
* 6: a setup error means the tool, not StreamSpace, failed; the fix is in the setup and every later
  observation is an artefact of it (a probe that cannot log in did not measure a deviation).
* 7: without evidence there is nothing to say about StreamSpace; a dry run's "results" are not results.
* 2: a system that was broken before the method makes the method's results meaningless.
* 3: a deviation (or its absence) without the intended fault is not caused by that fault.
* 1: only then is a deviation a finding about resilience; 0 needs evidence and no objection.

How a failed activity is classified: a probe of the hypothesis argues for 2 (before) or 1 (after,
during); a method *probe* argues for 1; a method *action* for 3; a rollback for 5. Whatever the phase, an
exception naming an interruption (InterruptExecution, SIGTERM, SIGINT, KeyboardInterrupt) argues for 4,
and - except in rollbacks - one phrased as a configuration/credential/permission error (the sentences of
`chaosstream.settings`, `chaosstream.clients.streamspace` and `chaosstream.clients.kube`) argues for 6.

Every input is judged: any JSON of any shape gets one of these codes and one sentence, in bounded time and
memory (see `chaosstream.journal.schema`); the verdict never passes without evidence.
"""

import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import click

from chaosstream.journal.junit import junit_xml
from chaosstream.journal.schema import (
    PREFLIGHT_EXTENSION,
    SAFETY_EXTENSION,
    activity,
    activity_name,
    activity_type,
    as_dict,
    as_list,
    clean_text,
    dicts,
    exception_text,
    extension,
    get_dict,
    get_dicts,
    get_list,
    get_str,
    is_mapping,
    measured,
    preview,
)
from chaosstream.journal.scrub import make_scrubber

__all__ = [
    "PASSED",
    "DEVIATED",
    "NOT_MET_BEFORE",
    "NOT_INJECTED",
    "INTERRUPTED",
    "ROLLBACK_FAILED",
    "CONFIG_ERROR",
    "NO_EVIDENCE",
    "USAGE_ERROR",
    "LABELS",
    "PRECEDENCE",
    "MAX_JOURNAL_BYTES",
    "Finding",
    "Verdict",
    "JournalUnreadable",
    "evaluate",
    "read_journal",
    "load_journal",
    "judge_file",
    "is_config_error",
    "verdict_command",
]

PASSED, DEVIATED, NOT_MET_BEFORE, NOT_INJECTED, INTERRUPTED, ROLLBACK_FAILED = 0, 1, 2, 3, 4, 5
CONFIG_ERROR, NO_EVIDENCE = 6, 7
USAGE_ERROR = 64  # documented here, raised by `chaosstream.cli.run`
LABELS: Dict[int, str] = {
    PASSED: "passed",
    DEVIATED: "deviated",
    NOT_MET_BEFORE: "steady-state-not-met-before",
    NOT_INJECTED: "fault-not-injected",
    INTERRUPTED: "interrupted",
    ROLLBACK_FAILED: "rollback-failed",
    CONFIG_ERROR: "configuration-error",
    NO_EVIDENCE: "no-evidence",
}
PRECEDENCE: Sequence[int] = (
    ROLLBACK_FAILED,
    INTERRUPTED,
    CONFIG_ERROR,
    NO_EVIDENCE,
    NOT_MET_BEFORE,
    NOT_INJECTED,
    DEVIATED,
)
# A journal is read whole; anything bigger than this is not judged (bounded memory).
MAX_JOURNAL_BYTES = 256 * 1024 * 1024
MAX_LINES = 25  # deciding findings printed before "... and N more"

_INTERRUPT_RE = re.compile(r"InterruptExecution|SIGTERM|SIGINT|KeyboardInterrupt")
# The sentences chaosstream (settings, StreamSpace client, Kubernetes client, safety control) and chaoslib
# use for configuration, credential and permission errors.
_CONFIG_RE = re.compile(
    "|".join(
        [
            r"\bSettingsError\b",
            r"\bConfiguration '[^']*' (?:must|has)\b",
            r"\bSecret '[^']*' (?:must|is set but)\b",
            r"\bsecrets scope must be\b",
            r"\bexperiment's 'configuration' must be\b",
            r"\bArgument '[^']*' (?:must|exceeds)\b",
            r"\bNo (?:StreamSpace credentials|database DSN is configured|namespace given)\b",
            r"\binvalid credentials\b",
            r"\brejected the (?:login|token)\b",
            r"\bdid not accept the credentials\b",
            r"\bgrant the missing verb\b",
            r"\bis 'streamspace_api_url' really\b",
            r"\bneeds the admin role\b",
            r"\blacks the RBAC verbs\b",
            r"\brefused access to\b",
            r"\((?:HTTP )?40[13]\b",
            r"\bHTTP 40[13]\b",
            r"\b(?:Forbidden|Unauthori[sz]ed)\b",
            r"\bpermission denied\b",
            r"\baccess denied\b",
            r"\bpassword authentication failed\b",
            r"\bKUBECONFIG names\b",
            r"\bCannot build a Kubernetes client\b",
            r"\boutside the allowed blast radius\b",
            r"\bmakes reference to an environment key that does not exist\b",
            r"\bSTREAMSPACE_[A-Z0-9_]+\b[^.]{0,80}\b(?:is not set|not set|is missing|missing|is required|must be set)\b",
            r"\b(?:missing|unset|not set)\b[^.]{0,80}\bSTREAMSPACE_[A-Z0-9_]+",
        ]
    ),
    re.IGNORECASE,
)
_VERIFY_KEYS = ("verified", "effective", "injected")
_JOURNAL_KEYS = {
    "chaoslib-version",
    "experiment",
    "status",
    "steady_states",
    "run",
    "rollbacks",
    "start",
    "end",
    "duration",
    "deviated",
    "extensions",
}
_STATUSES = {"completed", "failed", "interrupted", "aborted"}
_DRY = {  # `chaos run --dry MODE`: what the journal then lacks
    "activities": "no activity was executed",
    "actions": "no action was executed, so no fault was injected",
    "probes": "no probe was executed, so nothing was measured",
    "pause": "the pauses were skipped, so the timing of the experiment was not the one designed",
}
# Rollback names/funcs share a word with the action they revert ("partition-agent" / "heal-partition");
# these words carry no pairing information.
_STOPWORDS = {
    "heal", "restore", "undo", "revert", "rollback", "remove", "delete", "stop", "start", "agent", "agents",
    "the", "and", "all", "to", "of", "a", "by", "for", "on", "in", "uncordon", "unpause", "resume",
}  # fmt: skip


def is_config_error(text: str) -> bool:
    """Whether an error sentence is a configuration, credential or permission error."""
    return bool(_CONFIG_RE.search(text[:4000]))


@dataclass
class Finding:
    """One probe or activity (or the run itself) and the verdict code it argues for (0 = evidence of pass)."""

    code: int
    phase: str  # before | during#N | after | method | rollback | run
    kind: str  # probe | action | run
    name: str
    message: str
    values: Dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return LABELS[self.code]

    def line(self, scrub: Callable[[str], str]) -> str:
        """A one-line, scrubbed, printable rendering with the measured values."""
        head = "PASS" if self.code == PASSED else self.label.upper()
        where = self.phase if self.kind == self.phase else f"{self.phase} {self.kind}"
        text = f"[{head}] {where} {self.name!r}: {self.message}"
        if self.values:
            text += " | " + " ".join(f"{k}={v}" for k, v in self.values.items())
        return clean_text(scrub(text), 2000)


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
        """The findings that decided the code (for a pass: every probe and activity)."""
        return [f for f in self.findings if f.code == self.code]

    @property
    def sentence(self) -> str:
        """`verdict: <code> <label> - <summary>`, scrubbed and printable."""
        return clean_text(self.scrub(f"verdict: {self.code} {self.label} - {self.summary}"), 2000)

    def lines(self, limit: int = MAX_LINES) -> List[str]:
        """Human-readable lines: one per deciding probe/activity (at most `limit`), then the verdict."""
        deciding = self.deciding
        out = [f.line(self.scrub) for f in deciding[:limit]]
        if len(deciding) > limit:
            out.append(f"... and {len(deciding) - limit} more")
        out.append(self.sentence)
        return out


class JournalUnreadable(Exception):
    """The journal file cannot be read as JSON; the message is one sentence."""


# -- evaluation ----------------------------------------------------------------------------------------
def _failure(run: Mapping[str, Any], fallback: int, phase: str) -> Tuple[int, str]:
    """The code a failed activity argues for, and its message."""
    exc = exception_text(run)
    shown = exc or "no exception recorded"
    if _INTERRUPT_RE.search(exc):
        return INTERRUPTED, f"a signal was swallowed inside the activity ({shown})"
    if phase != "rollback" and is_config_error(exc):
        return CONFIG_ERROR, f"configuration, credential or permission error: {shown}"
    return fallback, shown


def _status(run: Mapping[str, Any]) -> Optional[str]:
    value = run.get("status")
    return value if isinstance(value, str) else None


def _dry_activity(run: Mapping[str, Any]) -> bool:
    """chaoslib skips an activity whose own `dry` covers its type."""
    dry = activity(run).get("dry")
    kind = activity_type(run)
    return (
        dry is True
        or dry == "activities"
        or (dry == "actions" and kind == "action")
        or (dry == "probes" and kind == "probe")
    )


class _Judge:
    """Collects the findings for one journal."""

    def __init__(self, journal: Mapping[str, Any]) -> None:
        self.journal = journal
        self.findings: List[Finding] = []
        self.hypothesis_probes = 0  # probe runs with a status, any phase
        self.measured_after = 0  # after/during hypothesis probes and method probes with a status
        self.method_runs = 0  # method activities with a status
        self.actions_ran = 0  # method actions that succeeded
        self.method_actions: List[Mapping[str, Any]] = []  # method action records, any status

    def add(self, code: int, phase: str, kind: str, name: str, message: str, values: Any = None) -> None:
        self.findings.append(Finding(code, phase, kind, name, clean_text(message, 600), values or {}))

    def malformed(self, where: str, value: Any, expected: str) -> None:
        if value is None:
            message = f"the journal has no {where}"
        else:
            message = f"the journal's {where} is {_type(value)}, not {expected}: it cannot be read"
        self.add(NO_EVIDENCE, "run", "run", where, message)

    # -- hypothesis --------------------------------------------------------------------------------------
    def hypothesis(
        self, phase: str, state: Any, miss_code: int, record_passes: bool = True, require_result: bool = True
    ) -> None:
        if state is None:
            return
        if not is_mapping(state):
            self.malformed(f"steady_states.{phase}", state, "an object")
            return
        raw = state.get("probes")
        if raw is not None and not isinstance(raw, list):
            self.malformed(f"steady_states.{phase}.probes", raw, "a list")
        before = len(self.findings)
        for index, probe in enumerate(as_list(raw)):
            if not is_mapping(probe):
                self.malformed(f"steady_states.{phase}.probes[{index}]", probe, "an activity record")
                continue
            self.hypothesis_probe(phase, probe, miss_code)
        if not record_passes:  # counted as evidence, not shown
            self.findings[before:] = [f for f in self.findings[before:] if f.code != PASSED]
        objections = [f for f in self.findings[before:] if f.code != PASSED]
        met = state.get("steady_state_met")
        if met is False and not objections:
            self.add(miss_code, phase, "run", "steady-state-hypothesis", "steady state not met")
        elif met is not True and met is not False and not objections and require_result:
            self.add(
                NO_EVIDENCE, phase, "run", "steady-state-hypothesis",
                f"the {phase} hypothesis has no result (steady_state_met is {_type(met)})",
            )  # fmt: skip

    def hypothesis_probe(self, phase: str, probe: Mapping[str, Any], miss_code: int) -> None:
        name = activity_name(probe)
        values = measured(probe, with_tolerance=True)
        status = _status(probe)
        if "status" not in probe or probe.get("status") is None:
            self.add(INTERRUPTED, phase, "probe", name, "interrupted (no status)", values)
            return
        if status not in ("succeeded", "failed"):
            self.add(
                NO_EVIDENCE,
                phase,
                "probe",
                name,
                f"unknown status {preview(probe.get('status'), 60)}",
                values,
            )
            return
        self.hypothesis_probes += 1
        if phase != "before":
            self.measured_after += 1
        if _dry_activity(probe):
            self.add(NO_EVIDENCE, phase, "probe", name, "not executed (dry activity)", values)
        elif status == "failed":
            code, message = _failure(probe, miss_code, phase)
            self.add(code, phase, "probe", name, f"probe raised: {message}", values)
        elif probe.get("tolerance_met") is False:
            self.add(miss_code, phase, "probe", name, "tolerance not met", values)
        else:
            self.add(PASSED, phase, "probe", name, "tolerance met", values)

    # -- method and rollbacks --------------------------------------------------------------------------
    def runs(self, key: str) -> List[Mapping[str, Any]]:
        raw = self.journal.get(key)
        if raw is not None and not isinstance(raw, list):
            self.malformed(key, raw, "a list")
        out = []
        for index, run in enumerate(as_list(raw)):
            if not is_mapping(run):
                self.malformed(f"{key}[{index}]", run, "an activity record")
            elif not is_mapping(run.get("activity")):
                self.malformed(f"{key}[{index}].activity", run.get("activity"), "an object")
            else:
                out.append(run)
        return out

    def method(self, runs: List[Mapping[str, Any]]) -> None:
        for run in runs:
            name, kind = activity_name(run), activity_type(run)
            values = measured(run)
            if kind is None:
                what = preview(activity(run).get("type"), 60)
                self.add(
                    NO_EVIDENCE, "method", "run", name, f"activity type {what} is neither probe nor action"
                )
                continue
            if run.get("status") is None:
                self.add(INTERRUPTED, "method", kind, name, "interrupted while running (no status)", values)
                continue
            status = _status(run)
            if status not in ("succeeded", "failed"):
                what = preview(run.get("status"), 60)
                self.add(NO_EVIDENCE, "method", kind, name, f"unknown status {what}", values)
                continue
            self.method_runs += 1
            if kind == "probe":
                self.measured_after += 1
            if _dry_activity(run):
                self.add(NO_EVIDENCE, "method", kind, name, "not executed (dry activity)", values)
            elif status == "failed":
                fallback = DEVIATED if kind == "probe" else NOT_INJECTED
                code, message = _failure(run, fallback, "method")
                prefix = "detection probe failed" if kind == "probe" else "action failed"
                if code == DEVIATED:
                    message = f"{prefix}: {message}"
                elif code == NOT_INJECTED:
                    message = f"{prefix}, the fault was not injected: {message}"
                self.add(code, "method", kind, name, message, values)
            elif kind == "probe" and run.get("tolerance_met") is False:
                self.add(DEVIATED, "method", kind, name, "tolerance not met", values)
            elif kind == "action" and _unverified(run.get("output")):
                self.actions_ran += 1
                self.add(
                    NOT_INJECTED,
                    "method",
                    kind,
                    name,
                    "its verification says the fault did not take effect",
                    values,
                )
            else:
                if kind == "action":
                    self.actions_ran += 1
                self.add(PASSED, "method", kind, name, "succeeded", values)

    def rollbacks(self, runs: List[Mapping[str, Any]], declared_actions: List[Mapping[str, Any]]) -> None:
        words = _action_words(declared_actions)
        for run in runs:
            name, kind = activity_name(run), activity_type(run) or "action"
            values = measured(run)
            reverts = _reverts(activity(run), words)
            if run.get("status") is None:
                msg = f"rollback was cut short (no status); {reverts}: that fault may remain"
                self.add(ROLLBACK_FAILED, "rollback", kind, name, msg, values)
                continue
            if _status(run) == "succeeded" and not _dry_activity(run):
                self.add(PASSED, "rollback", kind, name, "succeeded", values)
                continue
            if _dry_activity(run):
                why = "not executed (dry activity)"
            elif _status(run) == "failed":
                why = f"rollback failed ({exception_text(run) or 'no exception recorded'})"
            else:
                why = f"rollback has unknown status {preview(run.get('status'), 60)}"
            msg = f"{why}; {reverts}: that fault may remain"
            self.add(ROLLBACK_FAILED, "rollback", kind, name, msg, values)
            if _INTERRUPT_RE.search(exception_text(run)):
                msg = f"a signal was swallowed inside the rollback ({exception_text(run)})"
                self.add(INTERRUPTED, "rollback", kind, name, msg, values)

    def missing_rollbacks(self, experiment: Mapping[str, Any], played: List[Mapping[str, Any]]) -> None:
        """Declared rollbacks that never ran although the method ran actions: their faults may remain."""
        declared = get_dicts(experiment, "rollbacks")
        strategy = get_dict(get_dict(experiment, "runtime"), "rollbacks").get("strategy", "default")
        if not declared or not self.method_actions or strategy == "never":
            return
        if strategy == "deviated" and self.journal.get("deviated") is not True:
            return
        names = {activity_name(r) for r in played}
        injected = _action_words([activity(r) for r in self.method_actions])
        for rollback in declared:
            name = get_str(rollback, "name") or get_str(rollback, "ref") or "<unnamed>"
            if name not in names:
                msg = f"rollback was not played; {_reverts(rollback, injected)}: that fault may remain"
                self.add(ROLLBACK_FAILED, "rollback", "action", name, msg)

    # -- the run as a whole ------------------------------------------------------------------------------
    def safety(self) -> bool:
        """Findings from the safety control's extension; True if it explains an interrupted status."""
        pre = extension(self.journal, PREFLIGHT_EXTENSION)
        if pre is not None and pre.get("refused"):
            text = pre["refused"] if isinstance(pre["refused"], str) else preview(pre["refused"])
            self.add(CONFIG_ERROR, "run", "run", "preflight", f"refused to start: {text}")
            return True
        ext = extension(self.journal, SAFETY_EXTENSION)
        if ext is None:
            return False
        for sig in dicts(ext.get("signals")):
            msg = (
                f"received {get_str(sig, 'signal', '?')} during {get_str(sig, 'phase', '?')} "
                f"at {get_str(sig, 'at', '?')}"
            )
            self.add(INTERRUPTED, "run", "run", "signal", msg)
        refused = ext.get("refused")
        if refused:
            text = refused if isinstance(refused, str) else preview(refused)
            code = CONFIG_ERROR if is_config_error(text) else INTERRUPTED
            self.add(code, "run", "run", "run-lock", f"refused to start: {text}")
            return True
        return False

    def status(self, explained: bool, has_experiment: bool) -> Optional[str]:
        status = self.journal.get("status")
        if status is None:
            if has_experiment and not explained:
                self.add(
                    INTERRUPTED, "run", "run", "experiment", "run status is missing: the run did not finish"
                )
            return None
        if not isinstance(status, str) or status not in _STATUSES:
            self.add(NO_EVIDENCE, "run", "run", "experiment", f"unknown run status {preview(status, 60)}")
            return status if isinstance(status, str) else None
        if status in ("interrupted", "aborted") and not explained:
            self.add(INTERRUPTED, "run", "run", "experiment", f"run status is {status}")
        elif status == "failed" and not any(
            f.code in (NOT_MET_BEFORE, DEVIATED, CONFIG_ERROR) for f in self.findings
        ):
            self.add(INTERRUPTED, "run", "run", "experiment", "run failed for an unforeseen reason")
        return status

    def evidence(self, before_ok: bool, runs: List[Mapping[str, Any]], declared_probes: int) -> None:
        """Never a pass without evidence."""
        if declared_probes and not self.hypothesis_probes:
            self.add(
                NO_EVIDENCE, "run", "run", "steady-state-hypothesis",
                f"the experiment declares a steady-state hypothesis ({declared_probes} probes) but the journal "
                "records no result of it",
            )  # fmt: skip
        if not self.hypothesis_probes and not self.method_runs:
            self.add(
                NO_EVIDENCE, "run", "run", "journal",
                "no hypothesis probe and no method activity ran: nothing was tested",
            )  # fmt: skip
        elif not runs and before_ok:
            self.add(
                NO_EVIDENCE, "method", "run", "method", "the method ran no activity: no fault was injected"
            )
        elif self.actions_ran and not self.measured_after:
            self.add(
                NO_EVIDENCE, "after", "run", "steady-state-hypothesis",
                "nothing was measured after the fault was injected (no hypothesis after the method, no "
                "method probe)",
            )  # fmt: skip


def _type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {preview(value, 40)}"
    return names.get(type(value), f"a {type(value).__name__}")


def _unverified(output: Any) -> bool:
    out = as_dict(output)
    return any(out.get(key) is False for key in _VERIFY_KEYS)


def _words(act: Mapping[str, Any]) -> set:
    text = f"{get_str(act, 'name')} {get_str(get_dict(act, 'provider'), 'func')}".lower()
    return {w for w in re.split(r"[^a-z0-9]+", text) if len(w) > 2 and w not in _STOPWORDS}


def _action_words(actions: Sequence[Mapping[str, Any]]) -> List[Tuple[str, set]]:
    """(name, words) of the first 200 actions: computed once per journal, not once per rollback."""
    return [(get_str(a, "name", "<unnamed>"), _words(a)) for a in list(actions)[:200]]


def _reverts(rollback: Mapping[str, Any], actions: List[Tuple[str, set]]) -> str:
    """Best guess of the method action a rollback undoes (shared words in names/funcs)."""
    mine = _words(rollback)
    best = max(actions, key=lambda a: len(mine & a[1]), default=None)
    if best is not None and mine & best[1]:
        return f"meant to revert method action {best[0]!r}"
    names = ", ".join(repr(name) for name, _ in actions[:5])
    if len(actions) > 5:
        names += f" and {len(actions) - 5} more"
    return f"meant to revert what the method injected ({names})" if names else "no method action ran"


def _no_journal(message: str, journal: Any = None) -> Verdict:
    finding = Finding(NO_EVIDENCE, "run", "run", "journal", clean_text(message, 600))
    scrub = make_scrubber(journal if is_mapping(journal) else {})
    return Verdict(
        NO_EVIDENCE, _summary(NO_EVIDENCE, [finding]), "chaos experiment", None, False, [finding], scrub
    )


def evaluate(journal: Any) -> Verdict:
    """Read a Chaos Toolkit journal (any value) and return the strict verdict (see the module docstring)."""
    if not is_mapping(journal):
        return _no_journal(f"the journal is {_type(journal)}, not a JSON object")
    if not journal:
        return _no_journal("the journal is an empty object")
    if not _JOURNAL_KEYS & set(k for k in journal if isinstance(k, str)):
        return _no_journal("the JSON object has none of a Chaos Toolkit journal's fields", journal)

    judge = _Judge(journal)
    raw_experiment = journal.get("experiment")
    has_experiment = is_mapping(raw_experiment)
    if not has_experiment:
        judge.malformed("experiment", raw_experiment, "an object")
    experiment = as_dict(raw_experiment)
    for dry in (experiment.get("dry"), journal.get("dry")):
        if dry is not None and dry is not False and dry != "":
            skipped = _DRY.get(dry, "it is a rehearsal") if isinstance(dry, str) else "it is a rehearsal"
            judge.add(
                NO_EVIDENCE, "run", "run", "dry-run", f"a dry run (--dry {preview(dry, 40)}): {skipped}"
            )

    states = journal.get("steady_states")
    if states is not None and not is_mapping(states):
        judge.malformed("steady_states", states, "an object")
    states = as_dict(states)
    judge.hypothesis("before", states.get("before"), NOT_MET_BEFORE)
    before_ok = not any(f.code != PASSED and f.phase == "before" for f in judge.findings)
    during = states.get("during")
    if during is not None and not isinstance(during, list):
        judge.malformed("steady_states.during", during, "a list")
    for index, state in enumerate(as_list(during)):  # every iteration is evidence; only misses are shown
        judge.hypothesis(f"during#{index + 1}", state, DEVIATED, record_passes=False, require_result=False)
    # after a failed `before` chaoslib stops: an after hypothesis without result is then expected
    judge.hypothesis("after", states.get("after"), DEVIATED, require_result=before_ok)
    if states.get("after") is None and journal.get("deviated") is True:
        judge.add(DEVIATED, "after", "run", "steady-state-hypothesis", "journal says deviated")

    runs = judge.runs("run")
    judge.method_actions = [r for r in runs if activity_type(r) == "action"]
    judge.method(runs)
    rollbacks = judge.runs("rollbacks")
    declared_actions = [a for a in get_dicts(experiment, "method")][:1000]
    judge.rollbacks(rollbacks, declared_actions)
    judge.missing_rollbacks(experiment, rollbacks)

    explained = judge.safety()
    status = judge.status(explained, has_experiment)
    declared_probes = len(get_list(get_dict(experiment, "steady-state-hypothesis"), "probes"))
    judge.evidence(before_ok, runs, declared_probes)

    findings = judge.findings
    code = next((c for c in PRECEDENCE if any(f.code == c for f in findings)), PASSED)
    scrub = make_scrubber(journal)
    summary = _summary(code, [f for f in findings if f.code == code])
    title = get_str(experiment, "title", "chaos experiment")
    return Verdict(code, summary, title, status, journal.get("deviated") is True, findings, scrub)


def _summary(code: int, deciding: List[Finding]) -> str:
    named = sorted({repr(f.name) for f in deciding if f.kind != "run"})
    names = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "") or "the run"
    first = deciding[0].message if deciding else ""
    return {
        PASSED: "steady state met before and after the method; every activity succeeded.",
        DEVIATED: f"StreamSpace did not hold the hypothesis ({names}): a weakness may have been found.",
        NOT_MET_BEFORE: f"the system was not in steady state before the method ({names}); nothing was tested.",
        NOT_INJECTED: f"the fault was not injected ({names}); the run says nothing about resilience.",
        INTERRUPTED: f"the run was interrupted or aborted ({names}); its results are incomplete.",
        ROLLBACK_FAILED: f"rollback failed or was not played ({names}): a fault may remain - check the target now.",
        CONFIG_ERROR: f"configuration, credential or permission error ({names}): fix the setup and run "
        "again; the run says nothing about StreamSpace.",
        NO_EVIDENCE: f"no evidence to judge: {first if first.endswith(('.', '?', '!')) else first + '.'}",
    }[code]


# -- reading -------------------------------------------------------------------------------------------
def read_journal(path: str) -> Any:
    """Parse a journal file (`-` is standard input); raises `JournalUnreadable` with one sentence."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_JOURNAL_BYTES + 1)
        else:
            with open(path, "rb") as fh:
                data = fh.read(MAX_JOURNAL_BYTES + 1)
    except FileNotFoundError:
        raise JournalUnreadable(f"no journal at {path}: did `chaos run` finish?") from None
    except IsADirectoryError:
        raise JournalUnreadable(f"{path} is a directory, not a journal file") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise JournalUnreadable(f"cannot read the journal {path} ({reason})") from None
    if len(data) > MAX_JOURNAL_BYTES:
        raise JournalUnreadable(f"the journal {path} is larger than {MAX_JOURNAL_BYTES // 2**20} MiB")
    if not data.strip():
        raise JournalUnreadable(f"the journal {path} is empty: the run died before writing it?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JournalUnreadable(f"the journal {path} is not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise JournalUnreadable(f"the journal {path} is JSON nested too deeply to read") from None
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc).splitlines()[0][:120]
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise JournalUnreadable(f"the journal {path} is not valid JSON ({reason}{where})") from None
    except MemoryError:
        raise JournalUnreadable(f"the journal {path} is too large to read") from None


def load_journal(path: str) -> Dict[str, Any]:
    """The journal object of a file, or `{}` when it is missing, unreadable or not an object."""
    try:
        data = read_journal(path)
    except JournalUnreadable:
        return {}
    return data if isinstance(data, dict) else {}


def judge_file(path: str) -> Tuple[Any, Verdict]:
    """Read and judge a journal file: (the parsed JSON or None, the verdict). Never raises for the
    journal's sake: an unreadable file is verdict 7."""
    try:
        journal = read_journal(path)
    except JournalUnreadable as exc:
        return None, _no_journal(clean_text(str(exc), 600))
    return journal, evaluate(journal)


# -- CLI -----------------------------------------------------------------------------------------------
_HELP = """Strict CI verdict for a `chaos run` journal (JOURNAL; `-` reads standard input).

Prints the probes and activities that decided, then one line `verdict: CODE LABEL - sentence`, and exits
with CODE:

\b
  0  passed: hypothesis held before and after, every activity succeeded
  1  deviated: StreamSpace did not hold the hypothesis after (or during)
     the method, or a detection probe of the method failed - a finding
  2  steady state not met before the method: nothing was tested
  3  fault not injected: a method action failed, or its verification
     says the fault did not take effect
  4  interrupted: interrupted/aborted run, a signal, an activity without
     status, a run refused by the run lock
  5  rollback failed or was not played: a fault may remain
  6  configuration, credential or permission error (SettingsError,
     401/403/Forbidden, missing STREAMSPACE_* credentials, RBAC, a run
     refused by the preflight control)
  7  no evidence: no/empty/unreadable/malformed journal, not a JSON
     object, a dry run, nothing ran or nothing was measured
  64 the command line was wrong

Precedence when several apply: 5 > 4 > 6 > 7 > 2 > 3 > 1 > 0 (a fault left behind first, then an
incomplete run, a broken setup, missing evidence, a broken system before the method, a fault that was not
injected, and only then a deviation).
"""


@click.command("verdict", help=_HELP)
@click.argument("journal_path", metavar="JOURNAL", type=click.Path())
@click.option(
    "--junit", "junit_path", type=click.Path(dir_okay=False), help="Also write JUnit XML to this file."
)
def verdict_command(journal_path: str, junit_path: Optional[str]) -> None:
    try:
        journal, verdict = judge_file(journal_path)
        lines, code = verdict.lines(), verdict.code
        xml = junit_xml(journal, verdict) if junit_path else b""
    except Exception as exc:  # a bug must never read as a verdict (exit 1 would say "deviated")
        lines = [
            f"verdict: {NO_EVIDENCE} {LABELS[NO_EVIDENCE]} - chaosstream could not judge {journal_path} "
            f"(internal error {type(exc).__name__}); please report it."
        ]
        code, xml = NO_EVIDENCE, b""
    _emit(lines)
    if junit_path and xml:
        try:
            with open(junit_path, "wb") as fh:
                fh.write(xml)
        except OSError as exc:
            _emit([f"Cannot write JUnit XML to {junit_path}: {exc.strerror or exc}."], err=True)
    sys.exit(code)


def _emit(lines: List[str], err: bool = False) -> None:
    """Print; a closed pipe (`chaosstream verdict j | head -1`) must not change the exit code."""
    try:
        for line in lines:
            click.echo(line, err=err)
        (sys.stderr if err else sys.stdout).flush()
    except OSError:  # BrokenPipeError and friends: nobody reads any more
        try:  # point the dead descriptor at /dev/null so the interpreter's last flush succeeds too
            os.dup2(os.open(os.devnull, os.O_WRONLY), (sys.stderr if err else sys.stdout).fileno())
        except (OSError, ValueError):
            pass
