"""Everything a report shows, extracted once from a journal (any JSON value), cleaned and scrubbed of
credentials. Fields of the wrong type are shown as missing; nothing here raises on a hostile journal."""

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional

from chaosstream.journal.schema import (
    SAFETY_EXTENSION,
    TIMELINE_EXTENSION,
    activity,
    activity_name,
    as_dict,
    clean_text,
    describe_tolerance,
    dicts,
    exception_text,
    extension,
    get_dict,
    get_str,
    is_mapping,
    number,
    preview,
)
from chaosstream.journal.verdict import Verdict, evaluate
from chaosstream.timeutil import parse_timestamp

__all__ = ["HypothesisRow", "ActivityRow", "Recovery", "ReportData", "build", "MAX_ROWS"]

MAX_ROWS = 2000  # per table: a report of a huge journal stays readable and bounded


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
    omitted: int = 0  # rows left out beyond MAX_ROWS


def _text(value: Any, scrub: Callable[[str], str], limit: int = 200) -> str:
    return clean_text(scrub(clean_text(value if isinstance(value, str) else preview(value, limit), limit)))


def _recoveries(phase: str, run: Mapping[str, Any], out: List[Recovery], scrub: Callable[[str], str]) -> None:
    output = run.get("output")
    if not is_mapping(output):
        return
    for index, (key, value) in enumerate(output.items()):
        if index >= 50 or len(out) >= MAX_ROWS:
            return
        seconds = number(value)
        if isinstance(key, str) and key.endswith("_s") and seconds is not None:
            out.append(Recovery(phase, _text(activity_name(run), scrub), _text(key, scrub, 80), seconds))


def _timeline(ext: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The timeline extension as the renderers expect it: samples and markers with finite times, agents,
    session and command counts of the right types; errors as a count and a string."""
    if ext is None:
        return None
    samples = []
    for sample in dicts(ext.get("samples")):
        t = number(sample.get("t"))
        if t is None or abs(t) > 1e11:
            continue
        clean: Dict[str, Any] = {"t": t}
        if "agents" in sample:
            clean["agents"] = [
                {"agentId": get_str(a, "agentId") or None, "status": get_str(a, "status", "absent", 40)}
                for a in dicts(sample.get("agents"))[:200]
            ]
        for key in ("sessions", "commands"):
            if key in sample:
                counts = as_dict(sample.get(key))
                clean[key] = {
                    clean_text(str(k), 40): int(min(max(number(v) or 0.0, 0.0), 1e9))
                    for k, v in list(counts.items())[:20]
                    if number(v) is not None
                }
        samples.append(clean)
    markers = []
    for marker in dicts(ext.get("markers")):
        t = number(marker.get("t"))
        if t is None or abs(t) > 1e11:
            continue
        markers.append(
            {
                "event": marker.get("event") if marker.get("event") in ("start", "end") else None,
                "name": get_str(marker, "name", "<unnamed>"),
                "type": get_str(marker, "type", "", 20) or None,
                "phase": get_str(marker, "phase", "", 40) or None,
                "status": get_str(marker, "status", "", 40) or None,
                "t": t,
            }
        )
    errors = get_dict(ext, "errors")
    count = number(errors.get("count"))
    return {
        "samples": samples,
        "markers": markers,
        "errors": {
            "count": int(count) if count and count > 0 else 0,
            "last": get_str(errors, "last", "", 500),
        },
    }


def _safety(ext: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    if ext is None:
        return None
    signals = [
        {"signal": get_str(s, "signal", "?", 20), "phase": get_str(s, "phase", "?", 40)}
        for s in dicts(ext.get("signals"))[:50]
    ]
    replayed = ext.get("rollbacks_replayed")
    return {
        "signals": signals,
        "rollbacks_replayed": replayed if isinstance(replayed, bool) else None,
        "lock": clean_text(preview(ext.get("lock"), 300)),
    }


def build(journal: Any, verdict: Optional[Verdict] = None) -> ReportData:
    """Extract the report's content from a journal (any value); `verdict` defaults to `evaluate(journal)`."""
    verdict = verdict if verdict is not None else evaluate(journal)
    scrub = verdict.scrub
    journal = as_dict(journal)
    start = journal.get("start")
    t0 = parse_timestamp(start)
    duration = number(journal.get("duration"))
    data = ReportData(
        title=_text(verdict.title, scrub),
        verdict=verdict,
        start=_text(start, scrub, 40) if isinstance(start, str) else "",
        duration_s=duration if duration is not None and duration >= 0 else None,
        status=_text(journal.get("status"), scrub, 40)
        if isinstance(journal.get("status"), str)
        else "missing",
        timeline=_timeline(extension(journal, TIMELINE_EXTENSION)),
        safety=_safety(extension(journal, SAFETY_EXTENSION)),
    )
    states = get_dict(journal, "steady_states")
    for phase in ("before", "after"):
        for probe in dicts(get_dict(states, phase).get("probes")):
            if len(data.hypothesis) >= MAX_ROWS:
                data.omitted += 1
                continue
            met = probe.get("tolerance_met")
            data.hypothesis.append(
                HypothesisRow(
                    phase,
                    _text(activity_name(probe), scrub),
                    _text(describe_tolerance(activity(probe).get("tolerance")), scrub),
                    _text(probe.get("output"), scrub),
                    met if isinstance(met, bool) else None,
                    get_str(probe, "status", "interrupted", 40),
                )
            )
            _recoveries(phase, probe, data.recoveries, scrub)
    for phase, key in (("method", "run"), ("rollback", "rollbacks")):
        for run in dicts(journal.get(key)):
            if len(data.activities) >= MAX_ROWS:
                data.omitted += 1
                continue
            began = parse_timestamp(run.get("start"))
            exc = exception_text(run)
            seconds = number(run.get("duration"))
            data.activities.append(
                ActivityRow(
                    phase,
                    _text(activity_name(run), scrub),
                    get_str(activity(run), "type", "action", 20),
                    None if began is None or t0 is None else round(began - t0, 3),
                    seconds if seconds is not None and seconds >= 0 else None,
                    get_str(run, "status", "interrupted", 40),
                    _text(exc, scrub, 300) if exc else "",
                )
            )
            _recoveries(phase, run, data.recoveries, scrub)
    return data
