"""Everything a report shows, extracted once from a journal (any JSON value), cleaned and scrubbed of
credentials. Fields of the wrong type are shown as missing; nothing here raises on a hostile journal.

All times are epoch seconds (UTC wall clock): the tables and the picture share one axis.

Objectives: a measured duration (a probe output key ending in `_s`) is compared with the bound of the
probe's `within` tolerance on that key, else with the wait-probe's `timeout` argument (its deadline).
`${name}` references are resolved from the configuration the run recorded (timeline control), else from
the experiment's configuration (a literal, or an `env` entry: the variable as set where the report is
rendered, else its default) - the source is always shown.
"""

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from chaosstream.journal.schema import (
    SAFETY_EXTENSION,
    SECRET_KEY_RE,
    STREAMS_EXTENSION,
    TIMELINE_EXTENSION,
    activity,
    activity_name,
    activity_type,
    as_dict,
    as_list,
    clean_text,
    describe_tolerance,
    dicts,
    exception_text,
    extension,
    get_dict,
    get_str,
    is_mapping,
    measured,
    number,
    preview,
)
from chaosstream.journal.verdict import DEVIATED, PASSED, Finding, Verdict, evaluate
from chaosstream.timeutil import parse_timestamp

__all__ = [
    "HypothesisRow",
    "ActivityRow",
    "Measurement",
    "FaultWindow",
    "ReportData",
    "build",
    "resolve",
    "seconds_text",
    "error_sentence",
    "MAX_ROWS",
]

MAX_ROWS = 2000  # per table: a report of a huge journal stays readable and bounded
_MAX_T = 1e11  # epoch seconds beyond year 5000 are not times
_REF_RE = re.compile(r"^\$\{([A-Za-z0-9_.\-]{1,100})\}$")
_FAULT_KEYS = ("expires_at", "partition_id", "previous_replicas", "pods")


@dataclass
class HypothesisRow:
    """One hypothesis probe run (before or after the method)."""

    phase: str
    probe: str
    tolerance: str
    value: str
    met: Optional[bool]
    status: str
    start_t: Optional[float] = None


@dataclass
class ActivityRow:
    """One activity (hypothesis probe, method activity or rollback) with its wall-clock span."""

    phase: str
    name: str
    kind: str
    start_t: Optional[float]
    end_t: Optional[float]
    duration_s: Optional[float]
    status: str
    error: str = ""


@dataclass
class Measurement:
    """A measured duration (probe output key ending in `_s`, or a wait-probe that ran out of time)
    beside its resolved objective."""

    phase: str
    activity: str
    key: str
    seconds: Optional[float]  # None: the condition was not reached (the probe failed)
    objective: Optional[float] = None
    objective_source: str = ""
    status: str = "succeeded"
    at_t: Optional[float] = None
    error: str = ""

    @property
    def name(self) -> str:
        return f"{self.activity} {self.key}"

    @property
    def margin(self) -> Optional[float]:
        if self.seconds is None or self.objective is None:
            return None
        return self.objective - self.seconds

    @property
    def met(self) -> Optional[bool]:
        if self.seconds is None:
            return False if self.status == "failed" else None
        return None if self.objective is None else self.seconds <= self.objective

    def sentence(self) -> str:
        """`recovery-time elapsed_s: 0.745 s - objective 30 s - 29.3 s to spare`."""
        goal = "no objective" if self.objective is None else f"objective {self.objective:g} s"
        if self.seconds is None:
            return f"{self.name}: not reached - {goal}" + (f" ({self.error})" if self.error else "")
        margin = self.margin
        text = f"{self.name}: {seconds_text(self.seconds)} s - {goal}"
        if margin is not None:
            text += (
                f" - {seconds_text(margin)} s to spare"
                if margin >= 0
                else f" - {seconds_text(-margin)} s OVER"
            )
        return text


@dataclass
class FaultWindow:
    """A fault a method action injected: from the action's start to its heal (or expiry)."""

    action: str
    kind: str  # e.g. "partition (ephemeral)"
    targets: List[str]  # what the action names (pods, deployment)
    agents: List[str]  # timeline agents attributed to it (went down inside the window)
    start_t: float
    end_t: Optional[float]  # None: not healed within the journal
    end_reason: str  # "healed by heal-the-partition", "expired", "not healed in the journal"
    expires_t: Optional[float] = None
    injected: bool = True
    reason: str = ""  # why it was not injected

    def sentence(self, fmt_time: Callable[[float], str]) -> str:
        what = f"{self.kind} by {self.action!r}" + (f" on {', '.join(self.targets)}" if self.targets else "")
        if not self.injected:
            return f"NOT injected: {what} - {self.reason}"
        end = "open" if self.end_t is None else fmt_time(self.end_t)
        length = "" if self.end_t is None else f" ({seconds_text(self.end_t - self.start_t)} s)"
        return f"{what}: {fmt_time(self.start_t)} to {end}{length}, {self.end_reason}"


@dataclass
class ReportData:
    """The report's content."""

    title: str
    verdict: Verdict
    start: str
    duration_s: Optional[float]
    status: str
    start_t: Optional[float] = None
    end_t: Optional[float] = None
    target: List[Tuple[str, str]] = field(default_factory=list)
    hypothesis: List[HypothesisRow] = field(default_factory=list)
    activities: List[ActivityRow] = field(default_factory=list)
    measurements: List[Measurement] = field(default_factory=list)
    faults: List[FaultWindow] = field(default_factory=list)
    timeline: Optional[Dict[str, Any]] = None
    safety: Optional[Dict[str, Any]] = None
    omitted: int = 0  # rows left out beyond MAX_ROWS
    notes: List[str] = field(default_factory=list)  # where the timeline contradicts a probe
    observations: List[Tuple[str, str, float, str]] = field(default_factory=list)  # agent, status, t, probe
    # the stream monitor (chaosstream-streams): {"bands": {session: [(start, end, state)]}, "sessions":
    # {session: {"outage_s", "interruptions", "longest_gap_s", "reconnect_after_fault_s"}}}
    streams: Optional[Dict[str, Any]] = None

    def stream_sentences(self) -> List[str]:
        """What users felt, one sentence per monitored session ("users lost their desktop for N s")."""
        out = []
        for sid, s in ((self.streams or {}).get("sessions") or {}).items():
            if not s.get("ever_up"):
                out.append(
                    f"Session {sid}: the VNC stream never carried a picture ({s.get('last_error') or 'no bytes'})."
                )
                continue
            outage = s.get("outage_s") or 0.0
            text = f"Session {sid}: the user lost the desktop for {seconds_text(outage)} s"
            text += f" in {s.get('interruptions', 0)} interruption(s), longest {seconds_text(s.get('longest_gap_s') or 0.0)} s"
            back = s.get("reconnect_after_fault_s")
            if back is not None:
                text += f"; the stream was back {seconds_text(back)} s after the fault ended"
            elif not s.get("up"):
                text += "; the stream was still down at the end"
            out.append(text + ".")
        return out

    @property
    def recoveries(self) -> List[Measurement]:  # the old name
        return self.measurements

    @property
    def findings(self) -> List[Finding]:
        """What the run says about StreamSpace: the deviations, when they decided the verdict (1)."""
        if self.verdict.code != DEVIATED:
            return []
        return [f for f in self.verdict.findings if f.code == DEVIATED]

    @property
    def discounted(self) -> List[Finding]:
        """Deviations a higher verdict outranks (e.g. a probe that failed because the fault was not
        injected): shown with the problems, never as findings."""
        if self.verdict.code == DEVIATED:
            return []
        return [f for f in self.verdict.findings if f.code == DEVIATED]

    @property
    def problems(self) -> List[Finding]:
        """What went wrong with the run or the tool (codes 2-7), not about StreamSpace's resilience."""
        return [f for f in self.verdict.findings if f.code not in (PASSED, DEVIATED)]


def seconds_text(value: float) -> str:
    """Seconds for people: 3 decimals below 10 s, 1 above."""
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


EXC_PREFIX_RE = re.compile(r"\b(?:chaoslib|chaosstream)(?:\.\w+)+\.(?:ActivityFailed|\w+Error): ")


def error_sentence(text: str) -> str:
    """An exception line without the class names chaoslib chains in front of the message."""
    return EXC_PREFIX_RE.sub("", text)


def _text(value: Any, scrub: Callable[[str], str], limit: int = 200) -> str:
    return clean_text(scrub(clean_text(value if isinstance(value, str) else preview(value, limit), limit)))


def _resolved_refs(text: str, journal: Mapping[str, Any], recorded: Mapping[str, Any]) -> str:
    """`${name}` references in a description followed by their resolved value: `${objective}=30`."""

    def one(match: "re.Match[str]") -> str:
        value, _ = resolve(match.group(0), journal, recorded)
        return match.group(0) if value is None else f"{match.group(0)}={value:g}"

    return re.sub(r"\$\{[A-Za-z0-9_.\-]{1,100}\}", one, text[:2000])


def _output_text(run: Mapping[str, Any], scrub: Callable[[str], str]) -> str:
    """A probe's output for people: `key=value, ...` for an object, the value otherwise."""
    values = measured(run)
    values.pop("duration_s", None)
    if not is_mapping(run.get("output")):
        return _text(values.get("value", "-"), scrub, 300)
    return _text(", ".join(f"{k}={v}" for k, v in values.items()) or "-", scrub, 300)


def _time(value: Any) -> Optional[float]:
    t = parse_timestamp(value)
    return t if t is not None and abs(t) < _MAX_T else None


# -- configuration -----------------------------------------------------------------------------------
def resolve(raw: Any, journal: Mapping[str, Any], recorded: Mapping[str, Any]) -> Tuple[Optional[float], str]:
    """A number from a literal or a `${name}` reference, and where it came from."""
    value = number(raw)
    if value is not None:
        return value, "literal"
    if isinstance(raw, str):
        literal = _parse_float(raw)
        if literal is not None:
            return literal, "literal"
        match = _REF_RE.match(raw.strip())
        if not match:
            return None, ""
        name = match.group(1)
        if name in recorded:
            value = (
                _parse_float(recorded[name]) if isinstance(recorded[name], str) else number(recorded[name])
            )
            if value is not None:
                return value, f"${{{name}}} as the run resolved it"
        declared = get_dict(get_dict(journal, "experiment"), "configuration").get(name)
        value = number(declared) if not isinstance(declared, str) else _parse_float(declared)
        if value is not None:
            return value, f"${{{name}}} from the experiment"
        if is_mapping(declared) and declared.get("type") == "env":
            key = get_str(declared, "key", "", 100)
            try:
                env = os.environ.get(key) if key else None
            except ValueError:
                env = None
            value = _parse_float(env) if env else None
            if value is not None:
                return value, f"${{{name}}} = ${key} where the report was rendered"
            value = _parse_float(declared.get("default"))
            if value is not None:
                return value, f"${{{name}}}: default of ${key} (the run may have overridden it)"
    return None, ""


def _parse_float(value: Any) -> Optional[float]:
    if isinstance(value, str):
        try:
            return number(float(value.strip()[:40]))
        except ValueError:
            return None
    return number(value)


def _objective(run: Mapping[str, Any], key: str, journal: Mapping[str, Any], recorded: Mapping[str, Any]):
    act = activity(run)
    tolerance = as_dict(act.get("tolerance"))
    provider = get_dict(tolerance, "provider")
    if tolerance.get("type") == "probe" and get_str(provider, "func") == "within":
        arguments = get_dict(provider, "arguments")
        target = arguments.get("target")
        if target in (key, None, "") and get_str(arguments, "unit", "s") == "s":
            value, source = resolve(arguments.get("upper"), journal, recorded)
            if value is not None:
                return value, f"tolerance upper bound, {source}"
    arguments = get_dict(get_dict(act, "provider"), "arguments")
    if key == "elapsed_s" and "timeout" in arguments:
        value, source = resolve(arguments.get("timeout"), journal, recorded)
        if value is not None:
            return value, f"probe deadline (timeout), {source}"
    return None, ""


def _measure(
    phase: str,
    run: Mapping[str, Any],
    out: List[Measurement],
    scrub: Callable[[str], str],
    journal: Mapping[str, Any],
    recorded: Mapping[str, Any],
) -> None:
    output = run.get("output")
    name = _text(activity_name(run), scrub)
    at = _time(run.get("end"))
    if is_mapping(output):
        for index, (key, value) in enumerate(output.items()):
            if index >= 50 or len(out) >= MAX_ROWS:
                return
            seconds = number(value)
            if isinstance(key, str) and key.endswith("_s") and seconds is not None and key != "duration_s":
                objective, source = _objective(run, key, journal, recorded)
                out.append(
                    Measurement(
                        phase, name, _text(key, scrub, 80), seconds, objective, source, "succeeded", at
                    )
                )
        return
    if run.get("status") == "failed" and activity_type(run) == "probe" and len(out) < MAX_ROWS:
        provider = get_dict(activity(run), "provider")
        if str(get_str(provider, "func")).startswith("wait_for"):  # a wait-probe ran out of time
            objective, source = _objective(run, "elapsed_s", journal, recorded)
            error = _text(error_sentence(exception_text(run)), scrub, 300)
            out.append(Measurement(phase, name, "elapsed_s", None, objective, source, "failed", at, error))


# -- timeline ----------------------------------------------------------------------------------------
def _timeline(ext: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The timeline extension as the renderers expect it: samples and markers with finite times, agents,
    session and command counts of the right types; errors as a count and a string."""
    if ext is None:
        return None
    samples = []
    for sample in dicts(ext.get("samples")):
        t = number(sample.get("t"))
        if t is None or abs(t) > _MAX_T:
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
        if t is None or abs(t) > _MAX_T:
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
            "count": int(min(count, 1e9)) if count and count > 0 else 0,
            "last": get_str(errors, "last", "", 500),
        },
    }


_STREAM_STATES = ("connecting", "up", "gap", "reconnecting")


def _streams(ext: Optional[Mapping[str, Any]], scrub: Callable[[str], str]) -> Optional[Dict[str, Any]]:
    """The stream monitor's record as the renderers expect it: per session, bands (start, end, state) from
    the monitor's start (connecting) to its stop, and the numbers of its report."""
    if ext is None:
        return None
    started = _time(ext.get("started"))
    stopped = _time(ext.get("stopped"))
    report = get_dict(ext, "report")
    summaries = get_dict(report, "sessions")
    bands: Dict[str, List[Tuple[float, float, str]]] = {}
    sessions: Dict[str, Dict[str, Any]] = {}
    for sid, events in list(get_dict(ext, "events").items())[:MAX_ROWS]:
        name = _text(sid, scrub, 200)
        points = []
        for event in dicts(events)[:5000]:
            t = number(event.get("t"))
            state = event.get("state")
            if t is not None and abs(t) <= _MAX_T and state in _STREAM_STATES:
                points.append((t, state))
        points.sort(key=lambda p: p[0])
        end = stopped if stopped is not None else (points[-1][0] if points else started)
        if started is not None and (not points or points[0][0] > started):
            points.insert(0, (started, "connecting"))
        rows = []
        for i, (t, state) in enumerate(points):
            nxt = points[i + 1][0] if i + 1 < len(points) else max(end or t, t)
            if nxt > t:
                rows.append((t, nxt, state))
        bands[name] = rows
        summary = as_dict(summaries.get(sid))
        sessions[name] = {
            key: summary.get(key)
            for key in (
                "up",
                "ever_up",
                "interruptions",
                "outage_s",
                "longest_gap_s",
                "reconnect_after_fault_s",
            )
            if isinstance(summary.get(key), (int, float, bool)) or summary.get(key) is None
        }
        error = summary.get("last_error")
        sessions[name]["last_error"] = _text(error, scrub, 300) if isinstance(error, str) else None
    return {"bands": bands, "sessions": sessions}


def _safety(ext: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    if ext is None:
        return None
    signals = [
        {"signal": get_str(s, "signal", "?", 20), "phase": get_str(s, "phase", "?", 40)}
        for s in dicts(ext.get("signals"))[:50]
    ]
    replayed = ext.get("rollbacks_replayed")
    lock = as_dict(ext.get("lock"))
    return {
        "signals": signals,
        "rollbacks_replayed": replayed if isinstance(replayed, bool) else None,
        "lock_where": get_str(lock, "where", "", 200),
        "lock_acquired": get_str(lock, "acquired", "", 40),
        "lock_released": lock.get("released") if isinstance(lock.get("released"), bool) else None,
    }


def _target(
    journal: Mapping[str, Any], ext: Mapping[str, Any], scrub: Callable[[str], str]
) -> List[Tuple[str, str]]:
    recorded = get_dict(ext, "target")
    config = get_dict(ext, "configuration")
    declared = get_dict(get_dict(journal, "experiment"), "configuration")

    def pick(key: str, config_key: str) -> str:
        value = get_str(recorded, key, "", 300) or get_str(config, config_key, "", 300)
        if not value:
            entry = declared.get(config_key)
            if isinstance(entry, str):
                value = clean_text(entry, 300)
            elif is_mapping(entry) and entry.get("type") == "env":
                default = get_str(entry, "default", "", 200)
                value = f"{default} (default; not recorded by the run)" if default else ""
        return _text(value, scrub, 300) if value else "unknown"

    return [
        ("StreamSpace API", pick("api_url", "streamspace_api_url")),
        ("Kubernetes context", _text(get_str(recorded, "kube_context", "unknown", 200), scrub)),
        ("Namespace", pick("namespace", "streamspace_namespace")),
        ("Agent Deployment", pick("agent_deployment", "streamspace_agent_deployment")),
        (
            "StreamSpace version",
            _text(get_str(recorded, "streamspace_version", "unknown (the API did not tell)", 80), scrub),
        ),
        ("chaosstream version", _text(get_str(recorded, "chaosstream_version", "unknown", 40), scrub)),
        ("Chaos Toolkit library", _text(get_str(journal, "chaoslib-version", "unknown", 40), scrub)),
        ("Runner host", _text(get_str(journal, "node", "unknown", 100), scrub)),
    ]


# -- faults ------------------------------------------------------------------------------------------
def _fault_kind(run: Mapping[str, Any]) -> str:
    output = as_dict(run.get("output"))
    func = get_str(get_dict(activity(run), "provider"), "func", "fault", 60)
    method = get_str(output, "method", "", 40)
    if "partition" in func:
        return f"network partition ({method})" if method else "network partition"
    if "previous_replicas" in output or "scale" in func:
        return "scale-down"
    if func == "restart_agent":
        return "agent restart"
    if func.startswith("kill_"):
        return "pod kill"
    return func.replace("_", " ")


_ONE_OFF = ("kill_agent_pod", "kill_session_pod", "restart_agent")  # faults that are over when done


def _is_restore(run: Mapping[str, Any]) -> bool:
    """`scale_agents(replicas=-1)` (or up to at least the previous count): a heal, not a fault."""
    output = as_dict(run.get("output"))
    replicas, previous = number(output.get("replicas")), number(output.get("previous_replicas"))
    arg = number(get_dict(get_dict(activity(run), "provider"), "arguments").get("replicas"))
    return arg == -1 or (replicas is not None and previous is not None and replicas >= previous)


def _heals(run: Mapping[str, Any], func: str, pid: str) -> bool:
    """Whether a later activity ended the fault: a heal that reports what it healed (the partition's id
    when there is one), or an agent Deployment scaled back."""
    if run.get("status") != "succeeded":
        return False
    if get_str(get_dict(activity(run), "provider"), "func") == "scale_agents" and func == "scale_agents":
        return _is_restore(run)
    healed = [h for h in as_list(as_dict(run.get("output")).get("healed")) if isinstance(h, str)]
    return bool(healed) and (not pid or any(pid in h for h in healed))


def _faults(
    journal: Mapping[str, Any],
    samples: List[Mapping[str, Any]],
    scrub: Callable[[str], str],
    end_t: Optional[float],
) -> List[FaultWindow]:
    """The faults the method's actions injected, from their outputs: a partition or a scale-down lasts
    until a heal (or its own expiry), a pod kill or restart is over when the action is."""
    out: List[FaultWindow] = []
    method = [r for r in dicts(journal.get("run"))[:MAX_ROWS] if is_mapping(r.get("activity"))]
    later = method + [r for r in dicts(journal.get("rollbacks"))[:MAX_ROWS] if is_mapping(r.get("activity"))]
    agents_seen = sorted({a["agentId"] for s in samples for a in s.get("agents") or [] if a.get("agentId")})
    for run in method:
        if activity_type(run) != "action":
            continue
        output = as_dict(run.get("output"))
        func = get_str(get_dict(activity(run), "provider"), "func", "", 80)
        faulty = (
            any(k in output for k in _FAULT_KEYS) or func in ("partition_agent", "scale_agents") + _ONE_OFF
        )
        if not faulty or "heal" in func or (func == "scale_agents" and _is_restore(run)):
            continue
        start = _time(run.get("start"))
        if start is None:
            continue
        name = _text(activity_name(run), scrub)
        names = (
            as_list(output.get("pods"))
            or as_list(output.get("killed"))
            or as_list(output.get("previous_pods"))
        )
        targets = [_text(p, scrub, 120) for p in names[:10] if isinstance(p, str)]
        if not targets and (get_str(output, "deployment") or get_str(output, "name")):
            targets = [_text(get_str(output, "deployment") or get_str(output, "name"), scrub, 120)]
        unverified = any(output.get(k) is False for k in ("verified", "effective", "injected"))
        if run.get("status") != "succeeded" or unverified:
            reason = error_sentence(exception_text(run)) or "its verification says it did not take effect"
            kind = _fault_kind(run)
            out.append(
                FaultWindow(name, kind, targets, [], start, None, "", None, False, _text(reason, scrub, 300))
            )
            continue
        expires = _time(output.get("expires_at"))
        if func in _ONE_OFF:
            end, reason = _time(run.get("end")) or start, "a one-off fault: over when the action ended"
            expires = None
        else:
            pid = get_str(output, "partition_id", "", 80)
            heal_t, heal_name = None, ""
            for other in later:
                other_start = _time(other.get("start"))
                if other is run or other_start is None or other_start < start:
                    continue
                if _heals(other, func, pid):
                    heal_t, heal_name = (
                        _time(other.get("end")) or other_start,
                        _text(activity_name(other), scrub),
                    )
                    break
            if heal_t is not None and (expires is None or heal_t <= expires):
                end, reason = heal_t, f"healed by {heal_name!r}"
            elif expires is not None and (end_t is None or expires <= end_t):
                end, reason = expires, "expired (its own timer)"
            elif expires is not None:
                end, reason = expires, "expires after the run ended"
            else:
                end, reason = None, "not healed within the journal"
        window_end = end if end is not None else (end_t or start)
        # the control plane notices a fault late (heartbeat timeouts; a restarted pod reconnects): the
        # agents that went down inside the window or shortly after it are the ones it hit
        agents = _affected(samples, start, window_end + (30.0 if func in _ONE_OFF else 10.0))
        if not agents and len(agents_seen) == 1:
            agents = agents_seen
        out.append(FaultWindow(name, _fault_kind(run), targets, agents, start, end, reason, expires))
    return out


def _affected(samples: List[Mapping[str, Any]], start: float, end: float) -> List[str]:
    """Agents seen not online inside [start, end] after being online before or at its start."""
    online_before, down = set(), []
    for sample in samples:
        t = sample["t"]
        for agent in sample.get("agents") or []:
            aid, status = agent.get("agentId"), agent.get("status")
            if not aid:
                continue
            if t <= start and status == "online":
                online_before.add(aid)
            elif start < t <= end + 1e-6 and status != "online" and aid not in down:
                down.append(aid)
    return [a for a in down if a in online_before or not online_before][:20]


# -- build -------------------------------------------------------------------------------------------
def build(journal: Any, verdict: Optional[Verdict] = None) -> ReportData:
    """Extract the report's content from a journal (any value); `verdict` defaults to `evaluate(journal)`."""
    verdict = verdict if verdict is not None else evaluate(journal)
    scrub = verdict.scrub
    journal = as_dict(journal)
    start = journal.get("start")
    t0 = _time(start)
    t1 = _time(journal.get("end"))
    duration = number(journal.get("duration"))
    ext = extension(journal, TIMELINE_EXTENSION) or {}
    recorded = {
        k: v
        for k, v in list(get_dict(ext, "configuration").items())[:500]
        if isinstance(k, str) and not SECRET_KEY_RE.search(k)
    }
    timeline = _timeline(extension(journal, TIMELINE_EXTENSION))
    data = ReportData(
        title=_text(verdict.title, scrub),
        verdict=verdict,
        start=_text(start, scrub, 40) if isinstance(start, str) else "",
        duration_s=duration if duration is not None and duration >= 0 else None,
        status=_text(journal.get("status"), scrub, 40)
        if isinstance(journal.get("status"), str)
        else "missing",
        start_t=t0,
        end_t=t1
        if t1 is not None
        else (t0 + duration if t0 is not None and duration and duration > 0 else None),
        target=_target(journal, ext, scrub),
        timeline=timeline,
        safety=_safety(extension(journal, SAFETY_EXTENSION)),
        streams=_streams(extension(journal, STREAMS_EXTENSION), scrub),
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
                    _resolved_refs(
                        _text(describe_tolerance(activity(probe).get("tolerance")), scrub), journal, recorded
                    ),
                    _output_text(probe, scrub),
                    met if isinstance(met, bool) else None,
                    get_str(probe, "status", "interrupted", 40),
                    _time(probe.get("start")),
                )
            )
            _row(data, f"hypothesis-{phase}", probe, scrub)
            _measure(f"hypothesis {phase}", probe, data.measurements, scrub, journal, recorded)
    for phase, key in (("method", "run"), ("rollback", "rollbacks")):
        for run in dicts(journal.get(key)):
            if len(data.activities) >= MAX_ROWS:
                data.omitted += 1
                continue
            _row(data, phase, run, scrub)
            _measure(phase, run, data.measurements, scrub, journal, recorded)
    data.activities.sort(key=lambda a: (a.start_t is None, a.start_t or 0.0))
    samples = (timeline or {}).get("samples") or []
    data.faults = _faults(journal, sorted(samples, key=lambda s: s["t"]), scrub, data.end_t)
    data.notes = _cross_check(journal, samples, data.faults, scrub, recorded)
    data.observations = _observations(journal, scrub)
    return data


def _observations(
    journal: Mapping[str, Any], scrub: Callable[[str], str]
) -> List[Tuple[str, str, float, str]]:
    """What probes saw of an agent (`{"agentId", "status"}` outputs) and when: drawn on the agent rows,
    so the sampled bands and the probes' own observations share the picture."""
    out = []
    states = get_dict(journal, "steady_states")
    runs = dicts(get_dict(states, "before").get("probes")) + dicts(journal.get("run"))
    runs += dicts(get_dict(states, "after").get("probes"))
    for run in runs[:MAX_ROWS]:
        output = as_dict(run.get("output"))
        agent, status, at = (
            get_str(output, "agentId", "", 200),
            get_str(output, "status", "", 40),
            _time(run.get("end")),
        )
        if agent and status and at is not None and run.get("status") == "succeeded":
            out.append((_text(agent, scrub), status, at, _text(activity_name(run), scrub)))
    return out


def _cross_check(
    journal: Mapping[str, Any],
    samples: List[Mapping[str, Any]],
    faults: List[FaultWindow],
    scrub: Callable[[str], str],
    recorded: Mapping[str, Any],
) -> List[str]:
    """A failed `wait_for_agent_status` whose status the timeline shows reached during its wait: the
    picture would contradict the verdict, so the report says which to doubt."""
    notes: List[str] = []
    for run in dicts(journal.get("run"))[:MAX_ROWS]:
        provider = get_dict(activity(run), "provider")
        if run.get("status") != "failed" or get_str(provider, "func") != "wait_for_agent_status":
            continue
        start, end = _time(run.get("start")), _time(run.get("end"))
        if start is None or end is None:
            continue
        arguments = get_dict(provider, "arguments")
        wanted = get_str(arguments, "status", "online", 40)
        prefix = get_str(arguments, "agent_id", "", 200) or get_str(arguments, "agent_id_prefix", "", 200)
        match = _REF_RE.match(prefix)
        if match:
            prefix = get_str(recorded, match.group(1), "", 200)
        seen: Dict[str, float] = {}
        for sample in samples:
            if start <= sample["t"] <= end:
                for agent in sample.get("agents") or []:
                    aid = agent.get("agentId")
                    if aid and agent.get("status") == wanted and aid.startswith(prefix) and aid not in seen:
                        seen[aid] = sample["t"]
        if not seen:
            continue
        from chaosstream.timeutil import clock

        hit = sorted({a for f in faults for a in f.agents})
        name = _text(activity_name(run), scrub)
        reached = ", ".join(f"{_text(a, scrub)} at {clock(t, 1)}" for a, t in seen.items())
        note = (
            f"The timeline contradicts {name!r}: it failed waiting for an agent {wanted!r}, yet {reached} "
            f"was {wanted} during its wait ({clock(start, 1)} to {clock(end, 1)})."
        )
        if prefix:
            note += f" The probe watches one agent (the newest matching {_text(prefix, scrub)!r})"
            note += f"; the fault hit {', '.join(hit)}." if hit else "."
        note += " With several agents it may have watched another one: check the experiment's agent selection before treating this as a finding."
        notes.append(note)
    return notes[:20]


def _row(data: ReportData, phase: str, run: Mapping[str, Any], scrub: Callable[[str], str]) -> None:
    began, ended = _time(run.get("start")), _time(run.get("end"))
    seconds = number(run.get("duration"))
    exc = exception_text(run)
    data.activities.append(
        ActivityRow(
            phase,
            _text(activity_name(run), scrub),
            get_str(activity(run), "type", "action", 20),
            began,
            ended if ended is not None and (began is None or ended >= began) else None,
            seconds if seconds is not None and seconds >= 0 else None,
            get_str(run, "status", "interrupted", 40),
            _text(error_sentence(exc), scrub, 300) if exc else "",
        )
    )
