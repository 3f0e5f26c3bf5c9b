"""Stream continuity: N real VNC streams held open through the API, reconnecting as a browser would.

One daemon thread per session opens the stream (`clients.vnc`), then asks every `interval` seconds for
a 1×1 non-incremental framebuffer update — RFC 6143 §7.5.3 obliges the server to answer one, so a
healthy stream carries bytes every interval even on an idle desktop, at a few dozen bytes per request.
The user-visible outage is measured on those bytes: a *gap* is a stretch longer than `stall_after`
between two arrivals of RFB bytes, or any stretch across a reopened stream (from the last bytes of the old
one to the banner of the new one: the viewer showed the disconnection, however short), so it is measured to
one interval whether the socket died (the proxy closed it: agent restart, vnc_error) or stayed open while
nothing flowed (a partition leaves the UI socket open: the picture freezes).

Like noVNC, a closed stream is reopened after `retry_delay`; like a user facing a frozen picture, a
stream without bytes for `reload_after` seconds is closed and reopened. StreamSpace keeps one stream per
session (the proxy closes the older one, vnc_proxy.go:238): monitor sessions nobody watches.

The monitor's lifetime is bounded (`max_duration`); `stop()` ends every thread within about one
`interval`; the threads are daemons, so an interrupted `chaos run` never waits for them.
"""

import threading
import time
from typing import Any, Dict, List, Optional

from chaosstream.clients.vnc import VNCFailure, VNCStream
from chaosstream.settings import Settings, redact
from chaosstream.timeutil import epoch_iso

__all__ = ["StreamWatch", "Monitor", "start_monitor", "current_monitor", "stop_monitor", "journal_data"]


class StreamWatch:
    """What one session's stream did: byte arrivals folded into gaps, reconnections and failures."""

    def __init__(self, session_id: str, stall_after: float) -> None:
        self.session_id = session_id
        self.stall_after = stall_after
        self.lock = threading.Lock()
        self.first_bytes_at: Optional[float] = None
        self.last_bytes_at: Optional[float] = None
        self.gaps: List[List[float]] = []  # [start, end]: last bytes before, first bytes after
        self.events: List[Dict[str, Any]] = []  # state changes for the report: up | gap | reconnecting
        self.connects = 0
        self.failures: Dict[str, int] = {}
        self.last_error: Optional[str] = None
        self.handshake_ms: List[float] = []
        self.requests = 0
        self.bytes = 0
        self.state = "connecting"
        self.current: Optional[VNCStream] = None  # the open stream, for live byte and request counts

    def _event(self, t: float, state: str, reason: Optional[str] = None) -> None:
        if self.state == state:
            return
        self.state = state
        event: Dict[str, Any] = {"t": round(t, 3), "at": epoch_iso(t), "state": state}
        if reason:
            event["reason"] = reason
        self.events.append(event)

    def saw_bytes(self, t: float, reopened: bool = False) -> None:
        """RFB bytes arrived at `t`; `reopened`: the first bytes of a reopened stream — the user saw the
        desktop drop, however short the gap, so it counts whatever `stall_after` says."""
        with self.lock:
            if self.first_bytes_at is None:
                self.first_bytes_at = t
            elif self.last_bytes_at is not None and (reopened or t - self.last_bytes_at > self.stall_after):
                self.gaps.append([self.last_bytes_at, t])
                if self.state == "up":  # the gap was not seen while it lasted (one late read)
                    self._event(self.last_bytes_at, "gap")
            self.last_bytes_at = max(t, self.last_bytes_at or t)
            self._event(t, "up")

    def stalled(self, now: float) -> None:
        """No bytes for longer than `stall_after`: the picture froze (the socket may still be open)."""
        with self.lock:
            if (
                self.state == "up"
                and self.last_bytes_at is not None
                and now - self.last_bytes_at > self.stall_after
            ):
                self._event(self.last_bytes_at, "gap")

    def failed(self, failure: VNCFailure, now: float) -> None:
        with self.lock:
            self.failures[failure.reason] = self.failures.get(failure.reason, 0) + 1
            self.last_error = str(failure)
            if self.first_bytes_at is not None:
                if self.state == "up":
                    self._event(self.last_bytes_at or now, "gap")
                self._event(now, "reconnecting", failure.reason)

    def open_gap(self, now: float) -> Optional[List[float]]:
        """The gap still going on at `now` (no bytes for longer than `stall_after`), or None."""
        if self.last_bytes_at is not None and now - self.last_bytes_at > self.stall_after:
            return [self.last_bytes_at, now]
        return None

    def summary(self, now: float, fault_end: Optional[float]) -> Dict[str, Any]:
        with self.lock:
            gaps = [list(g) for g in self.gaps]
            current = self.open_gap(now)
            out: Dict[str, Any] = {
                "session": self.session_id,
                "up": self.first_bytes_at is not None and current is None,
                "ever_up": self.first_bytes_at is not None,
                "first_up_at": epoch_iso(self.first_bytes_at) if self.first_bytes_at else None,
                "interruptions": len(gaps) + (1 if current else 0),
                "longest_gap_s": round(
                    max([g[1] - g[0] for g in gaps + ([current] if current else [])], default=0.0), 3
                ),
                "outage_s": float(round(sum(g[1] - g[0] for g in gaps + ([current] if current else [])), 3)),
                "reconnects": max(self.connects - 1, 0),
                "connect_failures": dict(self.failures),
                "last_error": self.last_error,
                "handshake_ms": round(self.handshake_ms[0], 1) if self.handshake_ms else None,
                "gaps": [
                    {"from": epoch_iso(a), "to": epoch_iso(b), "s": round(b - a, 3)}
                    for a, b in gaps + ([current] if current else [])
                ][:50],
                "requests": self.requests + (self.current.requests_made if self.current else 0),
                "bytes": self.bytes + (self.current.bytes_received if self.current else 0),
            }
            out["reconnect_after_fault_s"] = _after(gaps, current, fault_end) if out["ever_up"] else None
            return out


def _after(
    gaps: List[List[float]], current: Optional[List[float]], fault_end: Optional[float]
) -> Optional[float]:
    """Seconds from the fault's end until the stream carried bytes again: 0 when it was flowing then,
    None while it still has not come back (or when no fault end is known)."""
    if fault_end is None:
        return None
    if current is not None and current[0] <= fault_end:
        return None
    for start, end in gaps:
        if start <= fault_end < end:
            return round(end - fault_end, 3)
    return 0.0


class Monitor:
    """The threads holding one stream per session, and what they measured."""

    def __init__(
        self,
        settings: Settings,
        session_ids: List[str],
        interval: float,
        stall_after: float,
        reload_after: float,
        retry_delay: float,
        timeout: float,
        max_duration: float,
    ) -> None:
        self.settings = settings
        self.interval = interval
        self.reload_after = max(reload_after, stall_after)
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.started = time.time()
        self.deadline = time.monotonic() + max_duration
        self.stop_event = threading.Event()
        self.watches = {sid: StreamWatch(sid, stall_after) for sid in session_ids}
        self.threads: List[threading.Thread] = []
        self.stopped_at: Optional[float] = None
        self.journal: Dict[str, Any] = {}

    def start(self) -> "Monitor":
        for sid, watch in self.watches.items():
            thread = threading.Thread(
                target=self._run, args=(watch,), name=f"chaosstream-vnc-{sid}", daemon=True
            )
            thread.start()
            self.threads.append(thread)
        return self

    def _running(self) -> bool:
        return not self.stop_event.is_set() and time.monotonic() < self.deadline

    def _run(self, watch: StreamWatch) -> None:
        while self._running():
            stream = VNCStream(self.settings, watch.session_id, self.timeout)
            watch.current = stream
            try:
                hs = stream.handshake()
                with watch.lock:
                    watch.connects += 1
                    watch.handshake_ms.append(hs.first_update_s * 1000)
                watch.saw_bytes(stream.first_bytes_at or time.time(), reopened=watch.connects > 1)
                watch.saw_bytes(stream.last_bytes_at or time.time())
                self._hold(stream, watch)
            except VNCFailure as failure:
                watch.failed(failure, time.time())
            except Exception as exc:  # never let a thread die silently: count it as a failure
                text = redact(f"{type(exc).__name__}: {exc}", self.settings)[:300]
                watch.failed(
                    VNCFailure(f"VNC: monitor error on session {watch.session_id} ({text}).", "protocol"),
                    time.time(),
                )
            finally:
                with watch.lock:
                    watch.current = None
                    watch.requests += stream.requests_made
                    watch.bytes += stream.bytes_received
                stream.close()
            self.stop_event.wait(self.retry_delay)

    def _hold(self, stream: VNCStream, watch: StreamWatch) -> None:
        """Ask for a 1×1 update every interval until the stream breaks, stalls past `reload_after`, or
        the monitor stops."""
        outstanding = 0
        while self._running():
            if outstanding < 2:  # a frozen stream must not pile requests up behind it
                stream.request_update(incremental=False, width=1, height=1)
                outstanding += 1
            seen = stream.last_bytes_at
            try:
                stream.read_update(time.monotonic() + self.interval)
                outstanding -= 1
            except VNCFailure as failure:
                if failure.reason != "timeout":
                    raise
                now = time.time()
                watch.stalled(now)
                if stream.last_bytes_at is not None and now - stream.last_bytes_at > self.reload_after:
                    raise VNCFailure(
                        f"VNC: session {watch.session_id}'s stream carried nothing for {self.reload_after:g}s "
                        "(frozen picture): reopened, as a user would reload.",
                        "stalled",
                    ) from None
                continue
            if stream.last_bytes_at is not None and stream.last_bytes_at != seen:
                watch.saw_bytes(stream.last_bytes_at)
            self.stop_event.wait(max(0.0, self.interval - (time.time() - (stream.last_bytes_at or 0))))

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=self.interval + 2.0)
        if self.stopped_at is None:
            self.stopped_at = time.time()

    def flowing(self, since: Optional[float] = None) -> bool:
        """Every stream carries bytes now (and, with `since`, has carried bytes at or after `since`)."""
        now = time.time()
        for watch in self.watches.values():
            with watch.lock:
                last = watch.last_bytes_at
                if last is None or watch.open_gap(now) is not None or (since is not None and last < since):
                    return False
        return True

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def report(self, fault_end: Optional[float] = None) -> Dict[str, Any]:
        """Per session and in total; `fault_end` (epoch) is when the run's fault ended, if known."""
        now = self.stopped_at or time.time()
        sessions = [w.summary(now, fault_end) for w in self.watches.values()]
        after = [s["reconnect_after_fault_s"] for s in sessions]
        return {
            "streams": len(sessions),
            "all_up": all(s["up"] for s in sessions),
            "never_up": [s["session"] for s in sessions if not s["ever_up"]],
            "interruptions": sum(s["interruptions"] for s in sessions),
            "outage_s_max": max((s["outage_s"] for s in sessions), default=0.0),
            "outage_s_total": float(round(sum(s["outage_s"] for s in sessions), 3)),
            "longest_gap_s": max((s["longest_gap_s"] for s in sessions), default=0.0),
            "fault_end_at": epoch_iso(fault_end) if fault_end else None,
            "reconnect_after_fault_s_max": (
                None if fault_end is None or any(a is None for a in after) else max(after, default=0.0)
            ),
            "watched_s": round(now - self.started, 3),
            "interval_s": self.interval,
            "stall_after_s": next(iter(self.watches.values())).stall_after if self.watches else None,
            "requests": sum(s["requests"] for s in sessions),
            "running": not self.stop_event.is_set(),
            "sessions": {s["session"]: s for s in sessions},
        }

    def events(self) -> Dict[str, List[Dict[str, Any]]]:
        out = {}
        for sid, watch in self.watches.items():
            with watch.lock:
                out[sid] = list(watch.events)
        return out


# The run's monitor: one per `chaos run` process (activities share it, as they share `selection`).
_LOCK = threading.Lock()
_CURRENT: List[Optional[Monitor]] = [None]


def start_monitor(monitor: Monitor) -> Monitor:
    """Make `monitor` the run's monitor (stopping the previous one) and start it."""
    with _LOCK:
        previous, _CURRENT[0] = _CURRENT[0], monitor
    if previous is not None:
        previous.stop()
    return monitor.start()


def current_monitor() -> Optional[Monitor]:
    with _LOCK:
        return _CURRENT[0]


def stop_monitor() -> Optional[Monitor]:
    """Stop the run's monitor (it keeps what it measured for the journal); None if there is none."""
    monitor = current_monitor()
    if monitor is not None:
        monitor.stop()
    return monitor


def journal_data(name: str, fault_end: Optional[float]) -> Optional[Dict[str, Any]]:
    """The journal extension of the run's monitor (report and per-session state changes), or None.
    The same mapping is updated in place on every call, so a copy attached early is completed later."""
    monitor = current_monitor()
    if monitor is None:
        return None
    with _LOCK:
        monitor.journal.update(
            name=name,
            started=epoch_iso(monitor.started),
            stopped=epoch_iso(monitor.stopped_at) if monitor.stopped_at else None,
            report=monitor.report(fault_end),
            events=monitor.events(),
        )
        return monitor.journal
