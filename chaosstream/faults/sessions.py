"""The sessions a run created, recorded in the cluster, so that a heal can terminate them after the run died.

One ConfigMap per run and namespace, `chaosstream-sessions-<hash of the run id>`, labelled as our faults
are (`app.kubernetes.io/managed-by=chaosstream`, `chaosstream.io/record=sessions`) and annotated with the
run that made it (`chaosstream.io/owner`) and its expiry (`chaosstream.io/expires-at`). Its data:
`sessions` (a JSON list of session ids) and `api` (the API URL they were created on, user info removed).
It holds no credential: a heal terminates the sessions through the StreamSpace API with its own
credentials, and only on the API it is configured for (a ConfigMap must never be able to send our
credentials elsewhere).

`create_sessions` writes the record before its first `POST /api/v1/sessions` (and removes it if it
created nothing), then again after each session; the run's `terminate_sessions` / `terminate_session`
drop what they terminated and delete the record once it is empty. The local dead-man reaper has no
StreamSpace credentials and leaves session records to `chaosstream heal`, `heal_all` and the reaper
CronJob (which reads the credentials Secret when it exists).
"""

import hashlib
import json
import logging
import threading
import time
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit, urlunsplit

from chaoslib.exceptions import ActivityFailed

from chaosstream.clients.kube import Cluster, KubeError
from chaosstream.clients.streamspace import api_client
from chaosstream.faults.records import (
    EXPIRES_ANNOTATION,
    MANAGED_BY,
    OWNER_ANNOTATION,
    RECORD_LABEL,
    RUN_ID,
    Fault,
)
from chaosstream.settings import Settings, redact
from chaosstream.timeutil import epoch_iso, iso, parse_time

__all__ = [
    "CHAOS_TAG",
    "RECORD_KIND",
    "SELECTOR",
    "record_name",
    "public_url",
    "begin",
    "add",
    "abandon",
    "forget",
    "has_credentials",
    "fault_of",
    "terminate",
]

CHAOS_TAG = "chaosstream"  # every session create_sessions makes carries it
RECORD_KIND = "sessions"
SELECTOR = f"app.kubernetes.io/managed-by=chaosstream,{RECORD_LABEL}={RECORD_KIND}"

logger = logging.getLogger("chaostoolkit")

# What this process recorded, per namespace: {"ids": [...], "expires": epoch, "api": url}.
_STATE: Dict[str, Dict[str, Any]] = {}
_LOCK = threading.Lock()


def record_name(run_id: str = RUN_ID) -> str:
    """The ConfigMap of one run (a DNS-1123 name; the run id itself holds '/')."""
    return f"chaosstream-sessions-{hashlib.sha256(run_id.encode()).hexdigest()[:12]}"


def public_url(url: str) -> str:
    """The API URL without user info (a URL may carry a password), as recorded and compared."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/"), "", ""))


def _body(namespace: str, state: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": record_name(),
            "namespace": namespace,
            "labels": {**MANAGED_BY, RECORD_LABEL: RECORD_KIND},
            "annotations": {
                OWNER_ANNOTATION: RUN_ID,
                EXPIRES_ANNOTATION: epoch_iso(state["expires"], "seconds"),
            },
        },
        "data": {"sessions": json.dumps(state["ids"]), "api": state["api"]},
    }


def _write(cluster: Cluster, namespace: str, state: Dict[str, Any]) -> None:
    """Create or update the record (the cluster may have lost it: another sandbox, a manual delete)."""
    body = _body(namespace, state)
    try:
        cluster.core.patch_namespaced_config_map(record_name(), namespace, body)
    except KubeError as exc:
        if exc.status != 404:
            raise
        cluster.core.create_namespaced_config_map(namespace, body)


def begin(cluster: Cluster, namespace: str, api_url: str, lifetime: float) -> bool:
    """Make sure the run's record exists before a session is created (one Kubernetes call, which also
    proves the record can be written); True when this call created it."""
    with _LOCK:
        state = _STATE.get(namespace)
        fresh = state is None
        if fresh:
            state = {"ids": [], "expires": time.time() + lifetime, "api": public_url(api_url)}
        snapshot = {**state, "ids": list(state["ids"])}
    try:
        if fresh:
            try:
                cluster.core.create_namespaced_config_map(namespace, _body(namespace, snapshot))
            except KubeError as exc:
                if exc.status != 409:
                    raise
                fresh = False  # written by this run a moment ago (a concurrent call): same content
        else:
            try:  # unchanged content: proves the record can still be written
                cluster.core.patch_namespaced_config_map(record_name(), namespace, _body(namespace, snapshot))
            except KubeError as exc:
                if exc.status != 404:
                    raise
                # gone: a heal terminated what it named (or another cluster): start a new record
                with _LOCK:
                    state["ids"] = []
                    state["expires"] = time.time() + lifetime
                    snapshot = {**state, "ids": []}
                cluster.core.create_namespaced_config_map(namespace, _body(namespace, snapshot))
    except ActivityFailed as exc:
        inner = str(exc).rstrip(".")
        raise ActivityFailed(
            f"Nothing was created: the sessions record could not be written ({inner})."
        ) from None
    with _LOCK:
        _STATE.setdefault(namespace, state)
    return fresh


def add(cluster: Cluster, namespace: str, ids: List[str], api_url: str, lifetime: float) -> None:
    """Record sessions just created (and push the record's expiry to at least `lifetime` from now)."""
    if not ids:
        return
    with _LOCK:
        state = _STATE.setdefault(namespace, {"ids": [], "expires": 0.0, "api": public_url(api_url)})
        state["ids"] += [i for i in ids if i not in state["ids"]]
        state["expires"] = max(state["expires"], time.time() + lifetime)
        snapshot = {**state, "ids": list(state["ids"])}
    _write(cluster, namespace, snapshot)


def abandon(cluster: Cluster, namespace: str) -> None:
    """Remove a record `begin` created when no session was created after all."""
    with _LOCK:
        state = _STATE.get(namespace)
        if state is None or state["ids"]:
            return
        _STATE.pop(namespace)
    _delete(cluster, namespace, record_name())


def forget(cluster_factory: Any, namespace: str, ids: List[str]) -> None:
    """Drop terminated sessions from the run's record; delete it once empty. Best effort: a record left
    behind only names ended sessions, which a heal recognises and removes."""
    with _LOCK:
        state = _STATE.get(namespace)
        if state is None or not any(i in state["ids"] for i in ids):
            return
        state["ids"] = [i for i in state["ids"] if i not in ids]
        empty = not state["ids"]
        if empty:
            _STATE.pop(namespace)
        snapshot = {**state, "ids": list(state["ids"])}
    try:
        cluster = cluster_factory()
        if empty:
            _delete(cluster, namespace, record_name())
        else:
            _write(cluster, namespace, snapshot)
    except ActivityFailed as exc:
        logger.warning(f"Could not update the sessions record {namespace}/{record_name()}: {exc}")


def _delete(cluster: Cluster, namespace: str, name: str) -> None:
    try:
        cluster.core.delete_namespaced_config_map(name, namespace)
    except KubeError as exc:
        if exc.status != 404:
            raise


def _ids(raw: Any) -> Optional[List[str]]:
    """The session ids a record holds, or None when it is not a JSON list of names."""
    try:
        ids = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        return None
    return ids


def fault_of(config_map: Any) -> Fault:
    """The ledger's view of one session record."""
    meta = config_map.metadata
    annotations = meta.annotations or {}
    data = config_map.data or {}
    return Fault(
        RECORD_KIND,
        meta.namespace,
        meta.name,
        meta.name,
        annotations.get(EXPIRES_ANNOTATION),
        {"sessions": _ids(data.get("sessions")), "api": data.get("api") or ""},
        config_map,
        annotations.get(OWNER_ANNOTATION),
    )


def has_credentials(settings: Optional[Settings]) -> bool:
    """Whether `settings` can log in to the StreamSpace API (a token, or a user name and password)."""
    return settings is not None and bool(settings.token or (settings.username and settings.password))


def terminate(cluster: Cluster, fault: Fault, settings: Settings, refused: List[str]) -> str:
    """Terminate the sessions of one record through the API, then delete the record. Returns what was
    done ("" when every session had ended already); raises one sentence for what could not be done (the
    record then keeps the sessions still to terminate). A recorded session older than the record is not
    ours: it is left running, dropped from the record and named in `refused` (not retried: it is final)."""
    where = f"ConfigMap {fault.namespace}/{fault.target}"
    ids = fault.record.get("sessions")
    if ids is None:
        raise ActivityFailed(
            f"{where} does not hold a JSON list of session ids: inspect it and delete it by hand."
        )
    if not ids:  # the run died between writing its record and creating a session
        _delete(cluster, fault.namespace, fault.target)
        return ""
    api = fault.record.get("api") or ""
    if api != public_url(settings.api_url):
        raise ActivityFailed(
            f"the sessions of {where} were created on {api or 'an unnamed API'}, not on "
            f"{redact(public_url(settings.api_url))}: run heal with STREAMSPACE_API_URL={api} to terminate them."
        )
    done: List[str] = []
    retry: List[str] = []  # refused (409) while still running: kept in the record for the next heal
    problems: List[str] = []
    written = _written_at(fault)
    with api_client(settings, timeout=settings.http_timeout) as client:
        for sid in ids:
            older = _older_than_record(client.get_session(sid), written)
            if older:  # not this run's: dropped from the record, named, left running
                refused.append(
                    f"session {sid} of {where} was created at {older}, before the record was written "
                    f"({iso(written)})"
                )
                continue
            response = client.session_command("DELETE", sid)  # 404: gone; 409 "already ...": ending
            if response.status_code == 202:
                done.append(sid)
            elif response.status_code == 409 and "already" not in response.text.lower():
                retry.append(sid)
                text = redact(" ".join(response.text.split())[:120], settings)
                problems.append(f"StreamSpace refused to terminate {sid} (409: {text})")
    _keep(cluster, fault, retry)
    if problems:
        healed = f" (terminated: {', '.join(done)})" if done else ""
        raise ActivityFailed(f"{where}: {'; '.join(problems)}{healed}")
    if not done:
        return ""
    return f"sessions {', '.join(done)} terminated through {api} ({where} removed)"


# The control plane's database clock against the kube-apiserver's: a real session is created after its
# record (create_sessions writes the record first), so only a session older by more than this is refused.
CLOCK_SLACK_S = 30.0


def _written_at(fault: Fault) -> Any:
    """When the record's ConfigMap was created (kube-apiserver clock), or None when unknown."""
    meta = getattr(fault.obj, "metadata", None)
    return parse_time(getattr(meta, "creation_timestamp", None))


def _older_than_record(session: Optional[Dict[str, Any]], written: Any) -> str:
    """The session's createdAt when it predates the record (a record lists only sessions created after
    it was written: anyone able to write ConfigMaps could otherwise list another tenant's session), else
    "". StreamSpace's session response has no tags to check instead (contract §3, object S)."""
    if session is None or written is None:
        return ""
    created = parse_time(session.get("createdAt"))
    if created is None or (written - created).total_seconds() <= CLOCK_SLACK_S:
        return ""
    return iso(created)


def _keep(cluster: Cluster, fault: Fault, ids: List[str]) -> None:
    """Leave only `ids` in the record (nothing left: delete it)."""
    if not ids:
        _delete(cluster, fault.namespace, fault.target)
        return
    cluster.core.patch_namespaced_config_map(
        fault.target, fault.namespace, {"data": {"sessions": json.dumps(ids)}}
    )
