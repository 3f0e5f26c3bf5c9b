"""Everything a report shows, extracted once from a journal (and scrubbed of credentials)."""

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from chaosstream.controls.timeline import EXTENSION_NAME, parse_timestamp
from chaosstream.verdict import Verdict, describe_tolerance, evaluate

__all__ = ["HypothesisRow", "ActivityRow", "Recovery", "ReportData", "build"]


@dataclass
class HypothesisRow:
    """One hypothesis probe run (before or after the method)."""

    phase: str
    probe: str
    tolerance: str
    value: str
    met: Optional[bool]
    status: str


@dataclass
class ActivityRow:
    """One method or rollback activity with its timing."""

    phase: str
    name: str
    kind: str
    offset_s: Optional[float]
    duration_s: Optional[float]
    status: str
    error: str = ""


@dataclass
class Recovery:
    """A measured duration: a probe output key ending in `_s`."""

    phase: str
    activity: str
    key: str
    seconds: float


@dataclass
class ReportData:
    """The report's content."""

    title: str
    verdict: Verdict
    start: str
    duration_s: Optional[float]
    status: str
    hypothesis: List[HypothesisRow] = field(default_factory=list)
    activities: List[ActivityRow] = field(default_factory=list)
    recoveries: List[Recovery] = field(default_factory=list)
    timeline: Optional[Dict[str, Any]] = None
    safety: Optional[Dict[str, Any]] = None


def _text(value: Any, scrub: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return scrub(text if len(text) <= 200 else text[:197] + "...")


def _extension(journal: Mapping[str, Any], name: str) -> Optional[Dict[str, Any]]:
    for ext in journal.get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == name:
            return ext
    return None


def _recoveries(phase: str, run: Mapping[str, Any], out: List[Recovery]) -> None:
    output = run.get("output")
    if not isinstance(output, Mapping):
        return
    for key, value in output.items():
        if str(key).endswith("_s") and isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(Recovery(phase, str((run.get("activity") or {}).get("name")), str(key), float(value)))


def build(journal: Mapping[str, Any]) -> ReportData:
    """Extract the report's content from a journal."""
    verdict = evaluate(journal)
    scrub = verdict.scrub
    t0 = parse_timestamp(journal.get("start"))
    data = ReportData(
        title=scrub(verdict.title),
        verdict=verdict,
        start=str(journal.get("start") or ""),
        duration_s=journal.get("duration"),
        status=str(journal.get("status") or "missing"),
        timeline=_extension(journal, EXTENSION_NAME),
        safety=_extension(journal, "chaosstream-safety"),
    )
    states = journal.get("steady_states") or {}
    for phase in ("before", "after"):
        for probe in (states.get(phase) or {}).get("probes") or []:
            activity = probe.get("activity") or {}
            data.hypothesis.append(
                HypothesisRow(
                    phase,
                    scrub(str(activity.get("name"))),
                    _text(describe_tolerance(activity.get("tolerance")), scrub),
                    _text(probe.get("output"), scrub),
                    probe.get("tolerance_met"),
                    str(probe.get("status") or "interrupted"),
                )
            )
            _recoveries(phase, probe, data.recoveries)
    for phase, runs in (("method", journal.get("run") or []), ("rollback", journal.get("rollbacks") or [])):
        for run in runs:
            activity = run.get("activity") or {}
            start = parse_timestamp(run.get("start"))
            exc = run.get("exception")
            error = scrub(str(exc[-1]).strip()) if isinstance(exc, list) and exc else ""
            data.activities.append(
                ActivityRow(
                    phase,
                    scrub(str(activity.get("name"))),
                    str(activity.get("type") or "action"),
                    None if start is None or t0 is None else round(start - t0, 3),
                    run.get("duration"),
                    str(run.get("status") or "interrupted"),
                    error,
                )
            )
            _recoveries(phase, run, data.recoveries)
    return data
