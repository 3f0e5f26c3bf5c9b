"""Probes about what users see: VNC streams through the API (`GET /api/v1/vnc/:sessionId`), as a browser opens them.

StreamSpace keeps one stream per session and closes the older one when a new one arrives
(api/internal/handlers/vnc_proxy.go:238): these probes take a session's stream away from whoever watches
it. Point them at the sessions the run created (the default), never at sessions people use. Sessions the
run's stream monitor holds are read from the monitor instead of being opened a second time.
"""

import time
from typing import Any, Dict, List, Tuple

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosstream.arguments import seconds, whole
from chaosstream.clients.vnc import VNCFailure, open_stream, streamable
from chaosstream.clients.vncmonitor import current_monitor
from chaosstream.polling import mapping_progress, poll_interval_of, wait_until
from chaosstream.selection import fault_end, fault_started, resolve_session_ids
from chaosstream.settings import Settings, resolve_settings

__all__ = ["vnc_handshake", "wait_for_vnc", "stream_continuity"]


def _ids(
    settings: Settings, session_id: str | None, session_ids: Any, tag: Any, required: bool
) -> Tuple[List[str], Dict[str, str]]:
    """The sessions to open, and those left out (another user's: the proxy streams only to the owner).
    Explicit ids are all kept: a 403 then says why."""
    if session_id is not None:
        if not isinstance(session_id, str) or not session_id:
            raise ActivityFailed(
                "Argument 'session_id' must be a session name such as admin-firefox-1a2b3c4d."
            )
        return [session_id], {}
    if session_ids:
        return resolve_session_ids(settings, session_ids, tag, required=required), {}
    ids = resolve_session_ids(settings, session_ids, tag, required=required)
    keep, others = streamable(settings, ids, settings.http_timeout)
    if ids and not keep and required:
        raise ActivityFailed(
            f"None of the selected sessions belongs to {settings.username}: StreamSpace's VNC proxy streams a "
            "session to its owner only; create sessions for that user or log in as their owner."
        )
    return keep, others


def _held(sid: str) -> Dict[str, Any] | None:
    """The run's monitor's view of a session it streams (None when it does not hold it)."""
    monitor = current_monitor()
    if monitor is None or not monitor.threads or monitor.stop_event.is_set() or sid not in monitor.watches:
        return None
    summary = monitor.watches[sid].summary(time.time(), None)
    if summary["up"]:
        return {"ok": True, "first_update_ms": summary["handshake_ms"], "source": "monitor"}
    return {
        "ok": False,
        "error": summary["last_error"] or f"VNC: session {sid}'s stream carries no bytes (monitor).",
        "source": "monitor",
    }


def _try(settings: Settings, sid: str, timeout: float) -> Dict[str, Any]:
    held = _held(sid)
    if held is not None:
        return held
    try:
        stream, handshake = open_stream(settings, sid, timeout)
    except VNCFailure as failure:
        return {"ok": False, "error": str(failure), "reason": failure.reason}
    stream.close()
    return {"ok": True, **handshake.as_dict()}


def _summary(results: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    ok = [r for r in results.values() if r.get("ok")]
    return {
        "ok": len(ok) == len(results),
        "checked": len(results),
        "failed": sorted(s for s, r in results.items() if not r.get("ok")),
        "banner_ms_max": max((r["banner_ms"] for r in ok if "banner_ms" in r), default=None),
        "first_update_ms_max": max((r["first_update_ms"] or 0.0 for r in ok), default=None),
        "sessions": results,
    }


def vnc_handshake(
    session_id: str = None,
    session_ids: List[str] = None,
    tag: str = None,
    timeout: float = 10.0,
    raise_on_failure: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Open each session's VNC stream through the API as a browser does (`/api/v1/vnc/:id`, JWT in the
    Authorization header), run the RFB 3.8 handshake and wait for the first framebuffer update (of the
    top-left 64×64 pixels), then close it. Which sessions: `session_id`, `session_ids`, `tag`, or those this
    run created (none yet: holds with `checked: 0`); without explicit ids, sessions of other users than the
    configured one are left out and listed in `not_owned` (the proxy streams a session to its owner only).

    Each failure is one sentence naming VNC: 409 "session X is not running (state …)", 503 "no agent can
    carry the stream" (agent not connected), 403 (only the owner may stream: use the owner's credentials),
    a closed stream (the agent's tunnel failed, e.g. no `pods/portforward`), a timeout.

    The proxy allows one stream per session and closes the older one: do not probe sessions people watch.

    Returns `{"ok", "checked", "failed": [...], "banner_ms_max", "first_update_ms_max", "sessions": {id:
    {"ok", "upgrade_ms", "banner_ms", "first_update_ms", ...} or {"ok": false, "error"}}}`; with
    `raise_on_failure=true` (for a method) a failed stream raises `ActivityFailed` with its sentence.
    Tolerance example: `{"type": "probe", ... "func": "all_true", "arguments": {"keys": ["ok"]}}`.
    """
    timeout = seconds(timeout, "timeout")
    settings = resolve_settings(configuration, secrets)
    ids, others = _ids(settings, session_id, session_ids, tag, False)
    results = {sid: _try(settings, sid, timeout) for sid in ids}
    summary = _summary(results)
    if others:
        summary["not_owned"] = others
    if raise_on_failure and not summary["ok"]:
        raise ActivityFailed(" ".join(results[s]["error"] for s in summary["failed"][:5]))
    return summary


def wait_for_vnc(
    session_ids: List[str] = None,
    tag: str = None,
    timeout: float = 60.0,
    poll_interval: float = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Wait until every selected session (see `vnc_handshake`) streams: a full RFB handshake and a first
    framebuffer update through the API. Returns as soon as all have streamed once, with the time it took;
    sessions that streamed are not opened again. Without explicit `session_ids`, sessions of other users
    than the configured one are left out (`not_owned`): the proxy streams a session to its owner only.

    Returns `{"elapsed_s", "polls", "sessions": {id: handshake}, "first_update_ms_max"}`; raises
    `ActivityFailed` on timeout with each failing session's last sentence (e.g. "VNC: the API closed the
    stream of session X while waiting for the RFB banner").
    Tolerance example: `{"type": "probe", ... "func": "within", "arguments": {"target": "elapsed_s", "upper": 10}}`.
    """
    timeout = seconds(timeout, "timeout")
    settings = resolve_settings(configuration, secrets)
    interval = poll_interval_of(settings, poll_interval)
    ids, others = _ids(settings, None, session_ids, tag, True)
    started = time.monotonic()
    done: Dict[str, Dict[str, Any]] = {}
    last: Dict[str, Dict[str, Any]] = {}

    def check():
        for sid in ids:
            if sid in done:
                continue
            left = max(timeout - (time.monotonic() - started), 0.5)
            result = _try(settings, sid, min(left, max(settings.http_timeout, 1.0)))
            if result.get("reason") in (
                "auth",
                "forbidden",
            ):  # credentials and owners do not change by waiting
                raise ActivityFailed(result["error"])
            (done if result["ok"] else last)[sid] = result
            if result["ok"]:
                last.pop(sid, None)
        return len(done) == len(ids), {
            sid: ("streaming" if sid in done else last[sid]["error"]) for sid in ids
        }

    def describe(states):
        failing = {sid: text for sid, text in (states or {}).items() if text != "streaming"}
        shown = " ".join(f"[{sid}] {text}" for sid, text in list(failing.items())[:5])
        return f"VNC did not stream for {len(failing)} session(s) within {timeout:g}s: {shown}"

    _, elapsed, polls = wait_until(
        check, timeout, interval, describe, mapping_progress("VNC streams", "streaming")
    )
    summary = _summary(done)
    result = {
        "elapsed_s": elapsed,
        "polls": polls,
        "first_update_ms_max": summary["first_update_ms_max"],
        "sessions": done,
    }
    if others:
        result["not_owned"] = others
    return result


def stream_continuity(
    wait: float = 0.0,
    observe: float = 0.0,
    max_reconnect_s: float = None,
    max_interruptions: int = None,
    raise_on_failure: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """What the run's stream monitor (`monitor_streams`) measured so far — per session and in total: the
    interruptions, the longest gap, the user-visible outage in seconds (stretches without RFB bytes longer
    than its `stall_after`), reconnections, and `reconnect_after_fault_s`: seconds from the end of the run's
    fault (the latest heal/restore, agent reconnection or new session pod) until the stream carried bytes
    again (0 when it never stopped; null while it is still down).

    With `wait` > 0 it first waits up to `wait` seconds for every stream to carry bytes again (early exit),
    so a probe right after a recovery reads the return rather than the outage still going on.
    With `observe` > 0 it first watches the streams for `observe` seconds (a soak: "no drop during a
    5-minute session"), returning early at the first interruption.
    With `max_reconnect_s` (for a method, where tolerances are not evaluated) it waits until every stream is
    back or `max_reconnect_s` after the fault's end has passed, and raises `ActivityFailed` naming VNC and
    the sessions when a stream was not back within it (or no fault end is known). With `max_interruptions`
    it raises when the streams had more interruptions than that.
    With `raise_on_failure=true` a stream still down (or never up) raises `ActivityFailed` naming it.

    Returns `{"streams", "all_up", "never_up", "interruptions", "outage_s_max", "outage_s_total",
    "longest_gap_s", "reconnect_after_fault_s_max", "fault_end_at", "sessions": {id: {...}}, ...}`.
    Tolerance example: `{"type": "probe", ... "func": "within", "arguments": {"target":
    "reconnect_after_fault_s_max", "upper": 5}}`.
    """
    wait = seconds(wait, "wait", allow_zero=True) if wait else 0.0
    if max_reconnect_s is not None:
        max_reconnect_s = seconds(max_reconnect_s, "max_reconnect_s")
    if max_interruptions is not None:
        max_interruptions = whole(max_interruptions, "max_interruptions")
    observe = seconds(observe, "observe", allow_zero=True) if observe else 0.0
    monitor = current_monitor()
    if monitor is None:
        raise ActivityFailed(
            "No stream monitor in this run: run the action monitor_streams earlier in the same experiment."
        )
    settings = resolve_settings(configuration, secrets)
    until = time.monotonic() + observe
    while observe and time.monotonic() < until and monitor.alive and not monitor.report()["interruptions"]:
        time.sleep(min(settings.poll_interval, 0.2, max(until - time.monotonic(), 0.0)))
    deadline = time.monotonic() + wait
    end = fault_end()
    if max_reconnect_s is not None and end is not None:  # wait until the objective has passed, at most
        deadline = max(
            deadline, time.monotonic() + (end["at"] + max_reconnect_s - time.time()) + monitor.interval
        )
    # back = bytes seen since the fault ended (a stream the fault cut may not look cut yet: its socket's
    # close or its stall is noticed a moment later), else simply flowing now
    since = end["at"] if (max_reconnect_s is not None and end is not None) else None
    while time.monotonic() < deadline and not monitor.flowing(since) and monitor.alive:
        time.sleep(min(settings.poll_interval, 0.2))
    end = fault_end()
    report = monitor.report(end["at"] if end else None)
    if end:
        report["fault_end"] = end["what"]
    if observe:
        report["observed_s"] = round(observe - max(until - time.monotonic(), 0.0), 3)
    sessions = report["sessions"]
    if (max_interruptions is not None or max_reconnect_s is not None) and report["never_up"]:
        shown = "; ".join(f"{s}: {sessions[s]['last_error'] or 'no bytes'}" for s in report["never_up"][:5])
        raise ActivityFailed(f"VNC: streams never carried a picture ({shown}).")
    if max_interruptions is not None and report["interruptions"] > max_interruptions:
        hit = [
            f"{s} lost the desktop for {v['outage_s']} s (longest gap {v['longest_gap_s']} s)"
            for s, v in sessions.items()
            if v["interruptions"]
        ]
        raise ActivityFailed(
            f"VNC: {report['interruptions']} stream interruption(s), at most {max_interruptions} allowed: "
            + "; ".join(hit[:5])
            + "."
        )
    if max_reconnect_s is not None:
        if end is None:
            down = [s for s, v in sessions.items() if not v["up"]]
            now = f"{len(down)} of {len(sessions)} stream(s) down now" + (
                f" ({', '.join(down[:5])})" if down else ""
            )
            raise ActivityFailed(
                "VNC: the run's fault never ended (no agent came back, no new session pod, no heal or restore "
                f"was seen), so the streams' return cannot be timed; {now}."
                if fault_started() is not None
                else f"VNC: this run injected no fault to time the streams' return from; {now}."
            )
        late = {
            s: v["reconnect_after_fault_s"]
            for s, v in sessions.items()
            if v["reconnect_after_fault_s"] is None or v["reconnect_after_fault_s"] > max_reconnect_s
        }
        if late:
            shown = "; ".join(
                f"{s} "
                + (
                    f"back after {a} s"
                    if a is not None
                    else f"still down ({sessions[s]['last_error'] or 'no bytes'})"
                )
                for s, a in list(late.items())[:5]
            )
            raise ActivityFailed(
                f"VNC: streams not back within {max_reconnect_s:g} s of the fault's end ({end['what']}): {shown}."
            )
    if raise_on_failure and not report["all_up"]:
        down = [s for s, v in report["sessions"].items() if not v["up"]]
        errors = "; ".join(f"{s}: {report['sessions'][s]['last_error'] or 'no bytes'}" for s in down[:5])
        raise ActivityFailed(f"VNC streams down for {len(down)} session(s) ({errors}).")
    return report
