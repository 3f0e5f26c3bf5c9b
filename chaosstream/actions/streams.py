"""Hold users' VNC streams open through the run (the stream continuity monitor) and stop it."""

from typing import Any, Dict, List

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosstream import arguments
from chaosstream.clients.vnc import streamable
from chaosstream.clients.vncmonitor import Monitor, start_monitor, stop_monitor
from chaosstream.polling import wait_until
from chaosstream.selection import fault_end, resolve_session_ids
from chaosstream.settings import resolve_settings

__all__ = ["monitor_streams", "stop_stream_monitor"]


def monitor_streams(
    session_ids: List[str] = None,
    tag: str = None,
    max_streams: int = 20,
    interval: float = None,
    stall_after: float = None,
    reload_after: float = None,
    retry_delay: float = None,
    timeout: float = None,
    max_duration: float = 3600.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Open one VNC stream per selected session (`session_ids`, `tag`, or those this run created; at most
    `max_streams`) through the API and keep them open in the background for the rest of the run, as a
    user's browser would; read what they lived through with the probe `stream_continuity`, stop them with
    `stop_stream_monitor` (put it in `rollbacks`). With the timeline control enabled, the journal also gets
    a `chaosstream-streams` extension (per-session state changes for `chaosstream report`).

    Every `interval` seconds (default `streamspace_poll_interval`) each stream asks for a 1×1 framebuffer
    update, which an RFB server must answer: a stretch without bytes longer than `stall_after` (default
    3 × interval, at least 0.5 s: a busy network's jitter is not an outage) is user-visible outage, and so
    is any gap across a reopened stream (the viewer showed the disconnection). A closed stream is reopened after `retry_delay`
    (default: interval; StreamSpace's own viewer asks the user to refresh, vnc-viewer.html:169, so this is
    the outage of a user who refreshes at once); a stream without bytes for `reload_after` (default 10 ×
    interval, at least 2 s) is reopened as a user would reload a frozen page. The threads stop at
    `stop_stream_monitor`, after `max_duration` seconds, or with the process.

    StreamSpace keeps one stream per session and closes the older one (vnc_proxy.go:238): monitor only
    sessions nobody watches (the run's own), and do not run two monitors on the same sessions.

    Without explicit `session_ids`, sessions of other users than the configured one are left out
    (`not_owned`): the proxy streams a session to its owner only, admins included.

    Returns once every stream shows a picture (at most 10 intervals):
    `{"streams": n, "flowing", "first_picture_s", "sessions": [...], "interval_s", "stall_after_s",
    "reload_after_s", "not_owned"}`.
    """
    settings = resolve_settings(configuration, secrets)
    max_streams = arguments.whole(max_streams, "max_streams", minimum=1, maximum=200)
    interval = (
        arguments.seconds(interval, "interval") if interval is not None else float(settings.poll_interval)
    )
    stall_after = (
        arguments.seconds(stall_after, "stall_after") if stall_after is not None else max(3 * interval, 0.5)
    )
    reload_after = (
        arguments.seconds(reload_after, "reload_after")
        if reload_after is not None
        else max(10 * interval, 2.0, stall_after)
    )
    retry_delay = (
        arguments.seconds(retry_delay, "retry_delay", allow_zero=True)
        if retry_delay is not None
        else interval
    )
    timeout = arguments.seconds(timeout, "timeout") if timeout is not None else float(settings.http_timeout)
    max_duration = arguments.seconds(max_duration, "max_duration")
    ids = resolve_session_ids(settings, session_ids, tag)
    others: Dict[str, str] = {}
    if not session_ids:  # the proxy streams a session to its owner only (vnc_proxy.go:153-159)
        ids, others = streamable(settings, ids, settings.http_timeout)
        if not ids:
            raise ActivityFailed(
                f"None of the selected sessions belongs to {settings.username}: StreamSpace's VNC proxy streams "
                "a session to its owner only; create sessions for that user."
            )
    ids = ids[:max_streams]
    monitor = start_monitor(
        Monitor(settings, ids, interval, stall_after, reload_after, retry_delay, timeout, max_duration)
    )
    # Return once every stream shows a picture (or after 10 polls): a fault injected right after this
    # action must cut streams that were up, or the outage it causes reads 0. A stream that never starts
    # is `stream_continuity`'s to report.
    try:
        _, waited, _ = wait_until(
            lambda: (monitor.flowing(), None),
            min(timeout, 10 * interval),
            max(interval / 2, 0.02),
            lambda _: "not every stream showed a picture",
        )
        first_picture: Any = round(waited, 3)
    except ActivityFailed:
        first_picture = None
    return {
        "streams": len(ids),
        "flowing": first_picture is not None,
        "first_picture_s": first_picture,
        "sessions": ids,
        "interval_s": interval,
        "stall_after_s": stall_after,
        "reload_after_s": max(reload_after, stall_after),
        "not_owned": others,
    }


def stop_stream_monitor(configuration: Configuration = None, secrets: Secrets = None) -> Dict[str, Any]:
    """Stop the run's stream monitor (safe to run twice, or without one: then `{"streams": 0}`) and return
    its final report (see `stream_continuity`). Put it in `rollbacks`."""
    monitor = stop_monitor()
    if monitor is None:
        return {"streams": 0}
    end = fault_end()
    report = monitor.report(end["at"] if end else None)
    report.pop("sessions", None)
    return report
