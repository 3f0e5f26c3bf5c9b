"""Probes about StreamSpace sessions: state in the API, pods in Kubernetes, recovery waits."""

import time
from typing import Any, Dict, List, Tuple

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosstream.arguments import seconds
from chaosstream.clients.database import query
from chaosstream.clients.kube import Cluster, pod_ready
from chaosstream.clients.streamspace import api_client
from chaosstream.polling import mapping_progress, poll_interval_of, wait_until
from chaosstream.selection import remember_fault_end, resolve_session_ids
from chaosstream.settings import resolve_settings

__all__ = [
    "session_state",
    "sessions_in_state",
    "sessions_survived",
    "all_sessions_running",
    "wait_for_sessions_state",
    "session_pods_running",
    "wait_for_session_pods",
]

SESSION_STATES = (
    "pending", "running", "hibernating", "hibernated", "waking", "terminating", "terminated", "failed", "deleted",
)  # fmt: skip


def _check_state(state: str) -> str:
    if state not in SESSION_STATES:
        raise ActivityFailed(f"Argument 'state' must be one of {', '.join(SESSION_STATES)}, not {state!r}.")
    return state


def session_state(
    session_id: str, timeout: float = 10.0, configuration: Configuration = None, secrets: Secrets = None
) -> str:
    """The state of one session as the API reports it (`GET /api/v1/sessions/:id` → `state`), e.g.
    `running`. Raises `ActivityFailed` for an unknown session.

    Tolerance example: `"running"`.
    """
    if not session_id:
        raise ActivityFailed(
            "Argument 'session_id' must be a session name such as admin-firefox-browser-1a2b3c4d."
        )
    settings = resolve_settings(configuration, secrets)
    with api_client(settings, timeout=seconds(timeout, "timeout")) as api:
        session = api.get_session(session_id)
    if session is None:
        raise ActivityFailed(f"Unknown session {session_id!r}: the API answered 404.")
    return str(session.get("state"))


def sessions_in_state(
    state: str = "running",
    user: str = None,
    timeout: float = 10.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Sessions in `state` (optionally of one `user`), from `GET /api/v1/sessions`.

    Returns `{"count": n, "names": [...]}`.
    Tolerance example: `{"type": "range", "range": [5, 1000], "target": "count"}`.
    """
    _check_state(state)
    settings = resolve_settings(configuration, secrets)
    with api_client(settings, timeout=seconds(timeout, "timeout")) as api:
        sessions = api.list_sessions(user)
    names = sorted(s["name"] for s in sessions if s.get("state") == state)
    return {"count": len(names), "names": names}


def _survival(settings: Any, secrets: Secrets, ids: List[str], timeout: float) -> Dict[str, Any]:
    with api_client(settings, timeout=timeout) as api:
        states = {}
        for name in ids:
            session = api.get_session(name)
            states[name] = None if session is None else session.get("state")
    missing = [n for n, s in states.items() if s is None]
    not_running = {n: s for n, s in states.items() if s not in (None, "running")}
    return {
        "ok": not missing and not not_running,
        "checked": len(ids),
        "missing": missing,
        "not_running": not_running,
    }


def sessions_survived(
    session_ids: List[str] = None,
    tag: str = None,
    raise_on_failure: bool = False,
    timeout: float = 10.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Whether the sessions (by `session_ids`, by `tag`, or those `create_sessions` made in this run)
    still exist and are `running` in the API. Before the run created any, it holds with `checked: 0`.

    With `raise_on_failure=true` (for a method, where no tolerance applies) a lost session raises
    `ActivityFailed` naming it.

    Returns `{"ok": bool, "checked": n, "missing": [...], "not_running": {name: state}}`.
    Tolerance example: `{"type": "probe", ... "func": "all_true", "arguments": {"keys": ["ok"]}}`.
    """
    settings = resolve_settings(configuration, secrets)
    ids = resolve_session_ids(settings, session_ids, tag, required=False)
    result = _survival(settings, secrets, ids, seconds(timeout, "timeout"))
    if raise_on_failure and not result["ok"]:
        raise ActivityFailed(
            f"Sessions did not survive: missing {result['missing']}, not running {result['not_running']}."
        )
    return result


def all_sessions_running(
    session_ids: List[str] = None,
    tag: str = None,
    timeout: float = 10.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """True when every selected session (see `sessions_survived`) is `running`. Tolerance example: `true`."""
    return bool(sessions_survived(session_ids, tag, False, timeout, configuration, secrets)["ok"])


def wait_for_sessions_state(
    state: str = "running",
    session_ids: List[str] = None,
    tag: str = None,
    timeout: float = 120.0,
    poll_interval: float = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Wait until every selected session is in `state`; returns as soon as they are, with the time it took.

    With a database DSN configured every poll is one SQL query for all the selected sessions (the API's
    own source of truth; no per-session request, whatever the install holds; one API request at the start
    checks the API settings), and `terminated` also
    accepts a session whose row is gone (or `deleted`). Without a DSN each poll asks
    `GET /api/v1/sessions/:id` per selected session and a 404 counts as `terminated` (the real
    `GetSession` also answers 404 on a database error: configure the DSN to tell them apart).

    Returns `{"state", "count", "elapsed_s", "polls", "source": "db"|"api"}`; raises `ActivityFailed` on
    timeout, naming the sessions still elsewhere.
    Tolerance example: `{"type": "probe", ... "func": "within", "arguments": {"target": "elapsed_s", "upper": 30}}`.
    """
    _check_state(state)
    timeout = seconds(timeout, "timeout")
    settings = resolve_settings(configuration, secrets)
    interval = poll_interval_of(settings, poll_interval)
    ids = resolve_session_ids(settings, session_ids, tag)

    def describe(last):
        others = {n: s for n, s in (last or {}).items() if s != state}
        return f"Sessions did not all reach '{state}' within {timeout:g}s: {others}."

    progress = mapping_progress("sessions", state)
    if settings.db_dsn:
        # one API request up front: wrong credentials or URL fail here, not silently behind the DB path
        with api_client(settings, timeout=min(settings.http_timeout, timeout)) as api:
            api.get_session(ids[0])

        def check_db():
            rows = query(
                settings, "SELECT id, state FROM sessions WHERE id = ANY(%s)", (ids,), timeout=timeout
            )
            found = {r["id"]: r["state"] for r in rows}
            states = {}
            for name in ids:
                current = found.get(name)
                if state == "terminated" and current in (None, "deleted"):
                    current = "terminated"  # the row is gone: terminated for certain
                states[name] = current
            return all(s == state for s in states.values()), states

        _, elapsed, polls = wait_until(check_db, timeout, interval, describe, progress)
        return {"state": state, "count": len(ids), "elapsed_s": elapsed, "polls": polls, "source": "db"}
    # One slow request must not outlast the wait's own timeout.
    with api_client(settings, timeout=min(settings.http_timeout, timeout)) as api:

        def check():
            states = {}
            for name in ids:
                session = api.get_session(name)
                states[name] = (
                    "terminated"
                    if session is None and state == "terminated"
                    else (session or {}).get("state")
                )
            return all(s == state for s in states.values()), states

        _, elapsed, polls = wait_until(check, timeout, interval, describe, progress)
    return {"state": state, "count": len(ids), "elapsed_s": elapsed, "polls": polls, "source": "api"}


def _ready_pods(core: Any, ns: str, ids: List[str]) -> Tuple[Dict[str, Any], List[str]]:
    pods: Dict[str, Any] = {}
    missing: List[str] = []
    for sid in ids:
        items = core.list_namespaced_pod(ns, label_selector=f"session={sid}").items
        ready = [p for p in items if pod_ready(p)]
        if ready:
            pods[sid] = ready[0]
        else:
            missing.append(sid)
    return pods, missing


def _elsewhere(settings: Any, ids: List[str], region: str) -> Dict[str, Any]:
    """The sessions among `ids` that StreamSpace placed on an agent outside `region` (another cluster
    dialling the same control plane: its selector has no cluster affinity, agent_selector.go), whose pods
    are therefore not in this kube context: {session: agent id}."""
    if not region or not ids:
        return {}
    rows = query(
        settings,
        "SELECT s.id, s.agent_id FROM sessions s JOIN agents a ON a.agent_id = s.agent_id"
        " WHERE s.id = ANY(%s) AND a.region IS DISTINCT FROM %s",
        (ids, region),
    )
    return {r["id"]: r["agent_id"] for r in rows}


def session_pods_running(
    session_ids: List[str] = None,
    tag: str = None,
    namespace: str = None,
    raise_on_failure: bool = False,
    region: str = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Whether each selected session has a Running, Ready, non-terminating pod (label `session=<id>`)
    in Kubernetes, and which one. Before the run created any session, it holds with no pods.

    With `region` (the REGION of this cluster's agents), sessions StreamSpace placed on another cluster's
    agents are listed under `elsewhere` and not looked for in this kube context (their pods are there).
    With `raise_on_failure=true` (for a method) a session without a ready pod raises `ActivityFailed`.

    Returns `{"ok": bool, "pods": {session: pod name}, "missing": [sessions without a ready pod],
    "elsewhere": {session: agent}}`.
    Tolerance example: `{"type": "probe", ... "func": "all_true", "arguments": {"keys": ["ok"]}}`.
    """
    settings = resolve_settings(configuration, secrets)
    ns = namespace or settings.session_namespace
    ids = resolve_session_ids(settings, session_ids, tag, required=False)
    elsewhere = _elsewhere(settings, ids, region)
    here = [sid for sid in ids if sid not in elsewhere]
    ready, missing = _ready_pods(Cluster(secrets, settings.kube_timeout).core, ns, here)
    if raise_on_failure and missing:
        raise ActivityFailed(f"Sessions without a ready pod in {ns}: {missing}.")
    return {
        "ok": not missing,
        "pods": {sid: p.metadata.name for sid, p in ready.items()},
        "missing": missing,
        "elsewhere": elsewhere,
    }


def wait_for_session_pods(
    session_ids: List[str] = None,
    tag: str = None,
    namespace: str = None,
    timeout: float = 120.0,
    poll_interval: float = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Wait until every selected session has a Running and Ready pod again (after `kill_session_pod`,
    a *new* pod: the killed one does not count), and check it mounts the same home volume.

    Returns `{"elapsed_s", "polls", "pods": {session: pod}, "claims": {session: [PVC names]},
    "same_volume": bool}`; raises `ActivityFailed` on timeout, or when a new pod mounts a different PVC
    than the killed one did (the session's home would be lost).
    Tolerance example: `{"type": "probe", ... "func": "within", "arguments": {"target": "elapsed_s", "upper": 60}}`.
    """
    from chaosstream.selection import killed_pods

    timeout = seconds(timeout, "timeout")
    settings = resolve_settings(configuration, secrets)
    interval = poll_interval_of(settings, poll_interval)
    ns = namespace or settings.session_namespace
    ids = resolve_session_ids(settings, session_ids, tag)
    killed = killed_pods()
    cluster = Cluster(secrets, timeout)
    core = cluster.core

    def check():
        ready, missing = _ready_pods(core, ns, ids)
        fresh = {sid: p for sid, p in ready.items() if p.metadata.name != (killed.get(sid) or {}).get("pod")}
        return len(fresh) == len(ids), (fresh, missing)

    def describe(last):
        return f"Sessions without a new ready pod after {timeout:g}s: {sorted(set(ids) - set((last or ({}, []))[0]))}."

    (fresh, _), elapsed, polls = wait_until(
        check, timeout, interval, describe, mapping_progress("session pods", "ready (missing listed)")
    )
    remember_fault_end("session pods ready", time.time())
    claims = {sid: cluster.claims_of(ns, p) for sid, p in fresh.items()}
    changed = {
        sid: (killed[sid]["claims"], claims[sid])
        for sid in claims
        if sid in killed and killed[sid]["claims"] != claims[sid]
    }
    if changed:
        raise ActivityFailed(
            f"New session pods mount other volumes than the killed ones (before, after): {changed}."
        )
    return {
        "elapsed_s": elapsed,
        "polls": polls,
        "pods": {sid: p.metadata.name for sid, p in fresh.items()},
        "claims": claims,
        "same_volume": True,
    }
