"""Actions on StreamSpace sessions through the API, and session pod kills through Kubernetes."""

import logging
import random
import re
from typing import Any, Dict, List

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosstream.arguments import flag, seconds, whole
from chaosstream.clients.kube import Cluster, check_namespace, pod_alive
from chaosstream.clients.streamspace import api_client
from chaosstream.faults import sessions as record
from chaosstream.selection import created_sessions, remember_killed, remember_sessions, resolve_session_ids
from chaosstream.settings import resolve_settings

__all__ = [
    "create_sessions",
    "terminate_session",
    "terminate_sessions",
    "hibernate_session",
    "wake_session",
    "kill_session_pod",
]

CHAOS_TAG = record.CHAOS_TAG
logger = logging.getLogger("chaostoolkit")
_AGENT_RE = re.compile(r"agent: ([^,)]+)")
_COMMAND_RE = re.compile(r"command: ([^,)]+)")


def create_sessions(
    count: int = 1,
    template: str = "firefox-browser",
    user: str = "admin",
    persistent_home: bool = False,
    memory: str = "512Mi",
    cpu: str = "250m",
    tags: List[str] = None,
    allow_unavailable: bool = False,
    max_count: int = 50,
    timeout: float = 30.0,
    users: str = None,
    lifetime: float = 3600.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Create `count` sessions (`POST /api/v1/sessions` → 202) of `template` for `user` — or, with
    `users` (names separated by commas, or a list), round-robin over them: StreamSpace gives every user
    the same default quota (5 sessions, 4000m in total), so larger experiments spread their sessions.

    Sessions are tagged `chaosstream` (plus `tags`) so that clean-up can find them, and remembered for
    later activities of the same run. `persistent_home` defaults to false: StreamSpace's PVC uses the
    storage class `standard` (`agents/k8s-agent/agent_k8s_operations.go`), which many clusters lack. With `allow_unavailable=true` a
    503 "No agents available" is counted instead of failing (to test placement while agents are down).

    The sessions are also recorded in the cluster before and as they are created (ConfigMap
    `chaosstream-sessions-<run>` in the namespace: their ids, the API, this run, an expiry `lifetime`
    seconds ahead, no secret), so that `chaosstream heal` terminates them if the run is killed before its
    rollbacks; `terminate_sessions` removes them from the record. Past its expiry the reaper CronJob
    (`heal --expired-only`) terminates them too, unless the run still holds the run lock.

    Returns `{"sessions": [names], "agents": {name: agentId}, "commands": {name: commandId},
    "unavailable": n, "record": "namespace/configmap"}` (the agent comes from the 202 `status.message`).
    """
    whole(count, "count", minimum=1)
    whole(max_count, "max_count", minimum=1)
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags)):
        raise ActivityFailed(f"Argument 'tags' must be a list of strings such as [\"chaos\"], not {tags!r}.")
    for name, value in (("template", template), ("user", user), ("memory", memory), ("cpu", cpu)):
        if not isinstance(value, str) or not value:
            raise ActivityFailed(f"Argument '{name}' must be a non-empty string, not {value!r}.")
    persistent_home = flag(persistent_home, "persistent_home")
    allow_unavailable = flag(allow_unavailable, "allow_unavailable")
    if count > max_count:
        raise ActivityFailed(
            f"Argument 'count' ({count}) exceeds 'max_count' ({max_count}): raise 'max_count' to allow it."
        )
    owners = _user_list(users) or [user]
    lifetime = seconds(lifetime, "lifetime")
    settings = resolve_settings(configuration, secrets)
    body = {
        "user": user,
        "template": template,
        "resources": {"memory": memory, "cpu": cpu},
        "persistentHome": bool(persistent_home),
        "tags": sorted({CHAOS_TAG, *(tags or [])}),
    }
    names: List[str] = []
    agents: Dict[str, str] = {}
    commands: Dict[str, str] = {}
    unavailable = 0
    timeout = seconds(timeout, "timeout")
    ns = settings.namespace
    cluster = Cluster(secrets, settings.kube_timeout)
    # Recorded before anything is created: a run killed after the first 202 still leaves a record.
    new_record = record.begin(cluster, ns, settings.api_url, lifetime)
    try:
        with api_client(settings, timeout=timeout) as api:
            for index in range(count):
                body["user"] = owners[(len(created_sessions("default")) + index) % len(owners)]
                response = api.create_session(body)
                if response.status_code == 503:
                    if not allow_unavailable:
                        raise ActivityFailed(
                            "StreamSpace answered 503 No agents available: no online agent can take a session."
                        )
                    unavailable += 1
                    continue
                data = api.object_of(response, "POST /api/v1/sessions")
                name = data.get("name")
                if not isinstance(name, str) or not name:
                    raise ActivityFailed("POST /api/v1/sessions answered 202 without a session 'name'.")
                names.append(name)
                record.add(cluster, ns, [name], settings.api_url, lifetime)
                status = data.get("status")
                message = str(status.get("message") or "") if isinstance(status, dict) else ""
                if match := _AGENT_RE.search(message):
                    agents[name] = match.group(1).strip()
                if match := _COMMAND_RE.search(message):
                    commands[name] = match.group(1).strip()
    finally:
        # Sessions made before a failure must still be found by the rollbacks of this run.
        remember_sessions("default", names)
        if new_record and not names:
            try:
                record.abandon(cluster, ns)
            except ActivityFailed as exc:  # never hide the failure that brought us here
                logger.warning(f"Could not remove the empty sessions record: {exc}")
    return {
        "sessions": names,
        "agents": agents,
        "commands": commands,
        "unavailable": unavailable,
        "record": f"{ns}/{record.record_name()}",
    }


def _user_list(users: Any) -> List[str]:
    if users is None or users == "":
        return []
    if isinstance(users, str):
        users = [u.strip() for u in users.split(",")]
    if not isinstance(users, list) or not all(isinstance(u, str) and u for u in users):
        raise ActivityFailed(f"Argument 'users' must be a list of user names (or 'a,b,c'), not {users!r}.")
    return users


class SessionRefused(ActivityFailed):
    """The API answered 404 (unknown session) or 409 (state does not allow it); `ended` when the session
    is gone or already terminating (nothing left to do for a clean-up)."""

    ended = False


def _session_command(
    method: str, suffix: str, session_id: str, settings: Any, timeout: float
) -> Dict[str, Any]:
    if not session_id or not isinstance(session_id, str):
        raise ActivityFailed(f"Argument 'session_id' must be a session name, not {session_id!r}.")
    with api_client(settings, timeout=timeout) as api:
        response = api.session_command(method, session_id, suffix)
        data = api.object_of(response, f"{method} /api/v1/sessions/:id{suffix}")
    if response.status_code == 404:
        refused = SessionRefused(f"Unknown session {session_id!r}: the API answered 404.")
        refused.ended = True
        raise refused
    if response.status_code == 409:
        reason = data.get("error") or data.get("message") or "conflict"
        refused = SessionRefused(
            f"StreamSpace refused {suffix or 'termination'} of session {session_id!r} (409: {reason})."
        )
        refused.ended = not suffix and "already" in str(reason).lower()
        raise refused
    return {
        "name": data.get("name", session_id),
        "commandId": data.get("commandId"),
        "status_code": response.status_code,
    }


def terminate_session(
    session_id: str, timeout: float = 30.0, configuration: Configuration = None, secrets: Secrets = None
) -> Dict[str, Any]:
    """Terminate a session (`DELETE /api/v1/sessions/:id` → 202 with a `commandId`).

    Returns `{"name", "commandId", "status_code": 202}`; raises `ActivityFailed` on 404 (unknown) and
    409 (no agent, or already terminating/terminated).
    """
    if not session_id:
        raise ActivityFailed("Argument 'session_id' must be a session name.")
    settings = resolve_settings(configuration, secrets)
    result = _session_command("DELETE", "", session_id, settings, seconds(timeout, "timeout"))
    _forget(settings, secrets, [session_id])
    return result


def _forget(settings: Any, secrets: Secrets, ids: List[str]) -> None:
    """Drop terminated sessions from the run's record (no Kubernetes call unless it holds them)."""
    record.forget(lambda: Cluster(secrets, settings.kube_timeout), settings.namespace, ids)


def terminate_sessions(
    session_ids: List[str] = None,
    tag: str = None,
    ignore_missing: bool = True,
    timeout: float = 30.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Terminate several sessions: `session_ids`, or those tagged `tag` (e.g. `chaosstream`, every
    session our experiments created), or those created earlier in this run. Good as a rollback.

    Returns `{"terminated": {name: commandId}, "skipped": {name: reason}}`.
    """
    settings = resolve_settings(configuration, secrets)
    timeout = seconds(timeout, "timeout")
    ignore_missing = flag(ignore_missing, "ignore_missing")
    # A rollback must not fail because the method never got to create anything.
    ids = resolve_session_ids(settings, session_ids, tag, required=False)
    done: Dict[str, Any] = {}
    skipped: Dict[str, str] = {}
    ended: List[str] = []
    try:
        for sid in ids:
            try:
                done[sid] = _session_command("DELETE", "", sid, settings, timeout)["commandId"]
                ended.append(sid)
            except SessionRefused as exc:
                # Only "unknown" (404) and "already terminating / no agent" (409) are skipped: an unreachable
                # API or rejected credentials must fail the rollback, not pass it with everything skipped.
                if exc.ended:
                    ended.append(sid)
                if not ignore_missing:
                    raise
                skipped[sid] = str(exc)
    finally:
        _forget(settings, secrets, ended)
    return {"terminated": done, "skipped": skipped}


def hibernate_session(
    session_id: str, timeout: float = 30.0, configuration: Configuration = None, secrets: Secrets = None
) -> Dict[str, Any]:
    """Hibernate a running session (`PUT /api/v1/sessions/:id/hibernate` → 202). 409 unless running.

    Returns `{"name", "commandId", "status_code"}`. Inverse: `wake_session`.
    """
    settings = resolve_settings(configuration, secrets)
    return _session_command("PUT", "/hibernate", session_id, settings, seconds(timeout, "timeout"))


def wake_session(
    session_id: str, timeout: float = 30.0, configuration: Configuration = None, secrets: Secrets = None
) -> Dict[str, Any]:
    """Wake a hibernated session (`PUT /api/v1/sessions/:id/wake` → 202). 409 unless hibernated.

    Returns `{"name", "commandId", "status_code"}`.
    """
    settings = resolve_settings(configuration, secrets)
    return _session_command("PUT", "/wake", session_id, settings, seconds(timeout, "timeout"))


def kill_session_pod(
    session_id: str = None,
    tag: str = None,
    grace_period: int = 0,
    max_pods: int = 1,
    namespace: str = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Delete the pod of a session (label `session=<id>`), as a node loss would. Without `session_id`,
    picks at random among the sessions tagged `tag` or created in this run. At most `max_pods`.

    The session Deployment replaces the pod; its PVC `<id>-home` is untouched. Returns
    `{"namespace", "killed": {session: pod}}`.
    """
    settings = resolve_settings(configuration, secrets)
    ns = check_namespace(namespace, settings.session_namespace)
    whole(max_pods, "max_pods", minimum=1)
    whole(grace_period, "grace_period", minimum=0)
    if session_id is not None and not isinstance(session_id, str):
        raise ActivityFailed(f"Argument 'session_id' must be a session name, not {session_id!r}.")
    ids = [session_id] if session_id else resolve_session_ids(settings, None, tag)
    cluster = Cluster(secrets, settings.kube_timeout)
    core = cluster.core
    killed: Dict[str, str] = {}
    for sid in random.sample(ids, len(ids)):
        if len(killed) >= max_pods:
            break
        pods = core.list_namespaced_pod(ns, label_selector=f"session={sid}").items
        alive = [p for p in pods if pod_alive(p)]
        if not alive:
            continue
        pod = alive[0].metadata.name
        remember_killed(sid, pod, cluster.claims_of(ns, alive[0]))
        core.delete_namespaced_pod(pod, ns, grace_period_seconds=grace_period)
        killed[sid] = pod
    if not killed:
        which = f"sessions {ids}" if ids else f"a session tagged {tag!r}" if tag else "the selected sessions"
        raise ActivityFailed(f"No running pod found for {which} in {ns}: check 'session_id' / 'tag'.")
    return {"namespace": ns, "killed": killed}
