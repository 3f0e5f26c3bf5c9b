"""Timeline control: samples StreamSpace in the background during a run and stores it in the journal.

Enable it in an experiment::

    "controls": [{"name": "chaosstream-timeline",
                  "provider": {"type": "python", "module": "chaosstream.controls.timeline",
                               "arguments": {"interval": 1.0}}}]

or globally with ``chaos run --control-file timeline.yaml``.

Every ``interval`` seconds a daemon thread records the agents (``agentId``, ``status``, heartbeat age in
seconds from ``lastHeartbeat``), the number of sessions per state, and - when a database DSN is configured
- the number of ``agent_commands`` per status. With a DSN both are scoped to the run (its sessions; the
commands created since it started), so a busy install costs the same per sample as an empty one. Activity starts/ends are recorded as markers (name, type,
phase, time, status). The journal gets ``extensions: [{"name": "chaosstream-timeline", "samples": [...],
"markers": [...], "errors": {...}, "target": {...}, "configuration": {...}}]`` - ``target`` names what the run
hit (API URL, namespace, agent Deployment, kube context, StreamSpace and chaosstream versions) and
``configuration`` is the experiment configuration as chaoslib resolved it (scalars; secret-looking keys
left out), so reports resolve ``${objective}`` references to the values the run used - attached in ``after_experiment_control`` and completed in
``cleanup_control`` (which runs before ``chaos run`` writes the journal), so rollbacks that another
control plays late are still on the timeline.

The control never fails or stops the run: every error is caught, counted and the last message kept
(scrubbed of credentials). Settings come from ``resolve_settings(configuration, secrets)``; controls
receive the whole secrets mapping, whose ``streamspace`` scope is picked.
"""

import datetime as dt
import logging
import threading
import time
from typing import Any, Dict, List, Optional

from chaoslib.exceptions import InterruptExecution
from chaoslib.types import Configuration, Experiment, Journal, Run, Secrets

from chaosstream.journal.schema import SECRET_KEY_RE, STREAMS_EXTENSION, TIMELINE_EXTENSION
from chaosstream.settings import Settings, redact, resolve_settings
from chaosstream.timeutil import epoch_iso, parse_timestamp

__all__ = [
    "configure_control",
    "before_experiment_control",
    "before_hypothesis_control",
    "before_method_control",
    "before_rollback_control",
    "before_activity_control",
    "after_activity_control",
    "after_experiment_control",
    "cleanup_control",
]

logger = logging.getLogger("chaostoolkit")
# On a busy install the tables hold other tenants and never-pruned history: with a DSN the timeline counts
# only this run — commands created since it started, and its own sessions — at a cost per sample that does
# not grow with what the install holds (indexed `created_at`, primary key).
_COMMANDS_SQL = "SELECT status, count(*) AS n FROM agent_commands WHERE created_at >= %s GROUP BY status"
_SESSIONS_SQL = "SELECT state, count(*) AS n FROM sessions WHERE id = ANY(%s) GROUP BY state"


def _default_interval(configuration: Any) -> float:
    """Sample twice per probe poll interval's worth of time (at least 0.2 s): fine enough to see an
    offline window with the sandbox's fast timers, light with StreamSpace's real ones."""
    try:
        from chaosstream.settings import resolve_settings

        return max(0.2, 2 * resolve_settings(configuration, None).poll_interval)
    except Exception:  # a bad configuration is the probes' business, not the sampler's
        return 1.0


class _Timeline:
    """The sampler thread and everything it recorded."""

    def __init__(self, interval: Optional[float], configuration: Any, secrets: Any) -> None:
        self.interval = max(
            float(interval if interval is not None else _default_interval(configuration)), 0.05
        )
        self.configuration, self.secrets = configuration, secrets
        self.data: Dict[str, Any] = {
            "name": TIMELINE_EXTENSION,
            "interval_s": self.interval,
            "started": epoch_iso(time.time()),
            "samples": [],
            "markers": [],
            "errors": {"count": 0, "last": None},
        }
        self.phase = "experiment"
        self.hypothesis_runs = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None
        self.settings: Optional[Settings] = None

    # -- sampling --------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._loop, name=TIMELINE_EXTENSION, daemon=True)
            self.thread.start()

    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                self.sample()
                self.stop.wait(max(self.interval - (time.monotonic() - started), 0.0))
        finally:
            self._close_db()

    def _error(self, exc: BaseException) -> None:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        with self.lock:
            self.data["errors"]["count"] += 1
            self.data["errors"]["last"] = redact(f"{type(exc).__name__}: {text}", self.settings)[:500]

    def sample(self) -> None:
        """Take one sample; any failure is counted and the rest of the sample is still taken."""
        now = time.time()
        entry: Dict[str, Any] = {"t": now, "at": epoch_iso(now)}
        try:
            if self.settings is None:
                self.settings = resolve_settings(self.configuration, self.secrets)
        except Exception as exc:  # a bad configuration must not break the run
            self._error(exc)
            return
        from chaosstream.clients.streamspace import api_client

        try:
            with api_client(
                self.settings, timeout=min(self.settings.http_timeout, max(self.interval, 2.0))
            ) as api:
                agents = api.list_agents()
                # stamp the sample when the answer arrived: the state it shows is at least that recent
                now = time.time()
                entry.update(t=now, at=epoch_iso(now), agents=[self._agent(a, now) for a in agents])
                if not self.settings.db_dsn:  # without a DSN, the API's (unpaginated) list
                    sessions: Dict[str, int] = {}
                    for s in api.list_sessions():
                        state = str(s.get("state") or "unknown")
                        sessions[state] = sessions.get(state, 0) + 1
                    entry["sessions"] = sessions
                self._version_once(api)
        except Exception as exc:
            self._error(exc)
        if self.settings.db_dsn:
            try:
                from chaosstream.clients.database import query
                from chaosstream.selection import run_sessions, run_started

                since = run_started().astimezone(dt.UTC).replace(tzinfo=None)
                rows = query(self.settings, _COMMANDS_SQL, (since,))
                entry["commands"] = {str(r["status"]): int(r["n"]) for r in rows}
                rows = query(self.settings, _SESSIONS_SQL, (run_sessions(),))
                entry["sessions"] = {str(r["state"]): int(r["n"]) for r in rows}
            except Exception as exc:
                self._error(exc)
        if len(entry) > 2:
            with self.lock:
                self.data["samples"].append(entry)

    def _describe_target(self) -> None:
        """Record what this run targets and the configuration as chaoslib resolved it (scalars only, no
        secret-looking keys), so a report can name the target and resolve `${objective}` references."""
        settings = self.settings
        target: Dict[str, Any] = {
            "api_url": redact(settings.api_url, settings),
            "namespace": settings.namespace,
            "agent_deployment": settings.agent_deployment,
            "chaosstream_version": _version(),
            "kube_context": _kube_context(self.secrets),
        }
        configuration = {}
        for key, value in (self.configuration or {}).items():
            if isinstance(key, str) and not SECRET_KEY_RE.search(key):
                if isinstance(value, (str, int, float, bool)) or value is None:
                    configuration[key] = redact(value, settings) if isinstance(value, str) else value
        with self.lock:
            self.data["target"] = target
            self.data["configuration"] = configuration

    def _version_once(self, api: Any) -> None:
        """StreamSpace's version (`GET /version`), asked once, on a sample's own client."""
        target = self.data.get("target")
        if not isinstance(target, dict) or "streamspace_version" in target:
            return
        target["streamspace_version"] = None  # asked: older releases have no /version, that is no error
        try:
            body = api.call("GET", "/version").json()
        except Exception:
            return
        version = body.get("version") if isinstance(body, dict) else None
        target["streamspace_version"] = str(version)[:80] if version else None

    @staticmethod
    def _agent(agent: Dict[str, Any], now: float) -> Dict[str, Any]:
        beat = parse_timestamp(agent.get("lastHeartbeat"))
        return {
            "agentId": agent.get("agentId"),
            "status": agent.get("status"),
            "heartbeat_age_s": None if beat is None else round(max(now - beat, 0.0), 3),
        }

    def _close_db(self) -> None:
        try:
            from chaosstream.clients.database import close_connections

            close_connections()
        except Exception:  # nothing to close, or psycopg missing
            pass

    def finish(self) -> None:
        """Stop the thread and take a last sample so the end state is on the picture."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=self.interval + 15)
            self.thread = None
            # described at the end, not the start: it imports the Kubernetes client, which would delay
            # the first samples; the last sample then asks StreamSpace's version
            if self.settings is not None:
                try:
                    self._describe_target()
                except Exception as exc:
                    self._error(exc)
            self.sample()
            self._close_db()
        self.data["ended"] = epoch_iso(time.time())

    # -- markers ---------------------------------------------------------------------------------------
    def mark(self, event: str, activity: Any, status: Optional[str] = None, run: Any = None) -> None:
        activity = activity if isinstance(activity, dict) else {}
        now = time.time()
        marker: Dict[str, Any] = {
            "event": event,
            "name": activity.get("name"),
            "type": activity.get("type"),
            "phase": self.phase,
            "t": now,
            "at": epoch_iso(now),
        }
        if event == "end":
            marker["status"] = status
        with self.lock:
            self.data["markers"].append(marker)


def _version() -> Optional[str]:
    try:
        from chaosstream import __version__

        return str(__version__)
    except Exception:
        return None


def _kube_context(secrets: Any) -> Optional[str]:
    """The Kubernetes context the run uses: KUBERNETES_CONTEXT, in-pod, or the kubeconfig's current one."""
    import os

    scope = secrets.get("kubernetes") if isinstance(secrets, dict) else None
    if isinstance(scope, dict) and isinstance(scope.get("KUBERNETES_CONTEXT"), str):
        return scope["KUBERNETES_CONTEXT"]
    if os.environ.get("KUBERNETES_CONTEXT"):
        return os.environ["KUBERNETES_CONTEXT"]
    if os.environ.get("CHAOSTOOLKIT_IN_POD") == "true":
        return "in-cluster"
    try:
        from kubernetes import config

        _, current = config.list_kube_config_contexts()
        return str(current.get("name")) if current else None
    except Exception:  # no kubeconfig: unknown
        return None


_timeline: Optional[_Timeline] = None


def _guard(fn: Any) -> Any:
    """Run a hook body and swallow anything: the timeline must never change the run's outcome."""
    try:
        return fn()
    except InterruptExecution:  # a signal (safety control) landed here: not ours to swallow
        raise
    except Exception:
        logger.debug("chaosstream-timeline: hook failed", exc_info=True)
        if _timeline is not None:
            with _timeline.lock:
                _timeline.data["errors"]["count"] += 1
        return None


def configure_control(
    interval: float = None, configuration: Configuration = None, secrets: Secrets = None, **_: Any
) -> None:
    """Prepare a fresh timeline for this run."""

    def init() -> None:
        global _timeline
        if _timeline is not None:
            _timeline.stop.set()
        _timeline = _Timeline(interval, configuration, secrets)

    _guard(init)


def before_experiment_control(
    context: Experiment,
    interval: float = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
    **_: Any,
) -> None:
    """Start the background sampler."""

    def start() -> None:
        global _timeline
        if _timeline is None:
            _timeline = _Timeline(interval, configuration, secrets)
        _timeline.phase = "experiment"
        _timeline.start()

    _guard(start)


def before_hypothesis_control(context: Any = None, **_: Any) -> None:
    """Track whether hypothesis probes run before or after the method."""

    def phase() -> None:
        if _timeline is not None:
            _timeline.phase = "hypothesis-before" if _timeline.hypothesis_runs == 0 else "hypothesis-after"
            _timeline.hypothesis_runs += 1

    _guard(phase)


def before_method_control(context: Any = None, **_: Any) -> None:
    """Activities from now on are method activities."""
    _guard(lambda: setattr(_timeline, "phase", "method") if _timeline is not None else None)


def before_rollback_control(context: Any = None, **_: Any) -> None:
    """Activities from now on are rollbacks."""
    _guard(lambda: setattr(_timeline, "phase", "rollback") if _timeline is not None else None)


def before_activity_control(context: Any = None, **_: Any) -> None:
    """Marker: an activity starts."""
    _guard(lambda: _timeline.mark("start", context) if _timeline is not None else None)


def after_activity_control(context: Any = None, state: Run = None, **_: Any) -> None:
    """Marker: an activity ended (with its status; none means it was interrupted)."""
    status = state.get("status") if isinstance(state, dict) else None
    _guard(lambda: _timeline.mark("end", context, status or "interrupted") if _timeline is not None else None)


def after_experiment_control(context: Experiment = None, state: Journal = None, **_: Any) -> None:
    """Attach the (still growing) timeline to the journal's `extensions`."""

    def attach() -> None:
        if _timeline is None or not isinstance(state, dict):
            return
        extensions = state.get("extensions")
        if not isinstance(extensions, list):
            extensions = state["extensions"] = []
        if not any(e is _timeline.data for e in extensions):
            extensions.append(_timeline.data)
        _attach_streams(extensions)

    _guard(attach)


def _attach_streams(extensions: List[Any]) -> None:
    """The stream monitor's record (`chaosstream-streams`), if the run started one: attached once, then
    completed in place at cleanup (after the rollbacks stopped the monitor)."""
    from chaosstream.clients.vncmonitor import journal_data
    from chaosstream.selection import fault_end

    end = fault_end()
    data = journal_data(STREAMS_EXTENSION, end["at"] if end else None)
    if data is not None and not any(e is data for e in extensions):
        extensions.append(data)


def cleanup_control(**_: Any) -> None:
    """Stop the sampler and take the final sample (before `chaos run` writes the journal); stop a stream
    monitor the rollbacks left running and complete its record."""
    _guard(lambda: _timeline.finish() if _timeline is not None else None)
    _guard(_finish_streams)


def _finish_streams() -> None:
    from chaosstream.clients.vncmonitor import journal_data, stop_monitor
    from chaosstream.selection import fault_end

    if stop_monitor() is not None:
        end = fault_end()
        journal_data(STREAMS_EXTENSION, end["at"] if end else None)


def samples() -> List[Dict[str, Any]]:
    """The samples recorded so far (for tests and other controls)."""
    return list(_timeline.data["samples"]) if _timeline is not None else []
